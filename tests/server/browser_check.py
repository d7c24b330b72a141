"""Drives internvl-server's web page in headless Chromium (tests/server/browser_test.cpp runs it).

The page's results are checked against direct API calls: the streamed chat answer must equal a
unary /v1/chat/completions answer (greedy) for the same messages, and the search grid must list
what /v1/search returns, with every thumbnail loaded. Exit status 0 when every check passes.
Every wait is bounded; Selenium Manager is never used (driver and browser paths are given).
"""

import argparse
import base64
import json
import mimetypes
import os
import signal
import sys
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 60


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def api(base_url, path, body, api_key):
    request = urllib.request.Request(base_url + path, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Authorization", "Bearer " + api_key)
    try:
        with urllib.request.urlopen(request, timeout=WAIT_S) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        raise CheckFailed(f"POST {path} answered {e.code}: {e.read().decode(errors='replace')}")


def data_url(path):
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        return f"data:{kind};base64," + base64.b64encode(f.read()).decode()


def start_browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("INTERNVL_CHROMIUM", "/usr/bin/chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(os.environ.get("INTERNVL_CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(WAIT_S)
    driver.set_script_timeout(WAIT_S)
    return driver


def wait_for(driver, what, condition, timeout=WAIT_S):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))
    except TimeoutException:
        error = driver.find_element(By.ID, "error")
        shown = error.get_property("textContent") if error.is_displayed() else ""
        raise CheckFailed(f"timed out after {timeout} s waiting for {what}" + (f"; the page shows: {shown}" if shown else ""))


def shown_error(driver):
    error = driver.find_element(By.ID, "error")
    return error.get_property("textContent") if error.is_displayed() else ""


def set_value(driver, element_id, value):
    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(str(value))


def open_page(driver, args, view):
    driver.get(args.url + "/")
    wait_for(driver, f"#{view} to show", lambda d: d.find_element(By.ID, view).is_displayed())


# Without the key the page must show the server's 401 message; then the key is typed in and
# must survive a reload (localStorage).
def check_api_key(driver, args, view, act):
    check(driver.find_element(By.ID, "api-key").get_property("value") == "", "the API key field starts non-empty")
    act()
    wait_for(driver, "the 401 message", lambda d: "HTTP 401" in shown_error(d))
    message = shown_error(driver)
    check("API key" in message, f"the 401 message does not mention the API key: {message!r}")
    driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}-401.png"))
    print(f"without the key the page says: {message!r}")
    set_value(driver, "api-key", args.api_key)
    open_page(driver, args, view)
    kept = driver.find_element(By.ID, "api-key").get_property("value")
    check(kept == args.api_key, f"the API key was not kept across a reload (field: {kept!r})")


def chat_turn(driver, args, question, image):
    if image:
        driver.find_element(By.ID, "image-input").send_keys(os.path.abspath(image))
        wait_for(driver, "the attached image's preview",
                 lambda d: d.execute_script(
                     "const i = document.querySelectorAll('#attachments img');"
                     "return i.length === 1 && i[0].complete && i[0].naturalWidth > 0;"))
    before = len(driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant"))
    driver.find_element(By.ID, "question").send_keys(question)
    # Counts the answer's text updates, to report how many streamed pieces were shown.
    driver.execute_script(
        "window.__updates = 0;"
        "new MutationObserver(() => window.__updates++)"
        ".observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});")
    driver.find_element(By.ID, "send").click()
    wait_for(driver, "the assistant message", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#messages .message.assistant")) > before)
    message = driver.find_elements(By.CSS_SELECTOR, "#messages .message.assistant")[-1]
    wait_for(driver, "the streamed answer to finish",
             lambda d: message.get_attribute("data-state") != "streaming" or shown_error(d))
    error = shown_error(driver)
    check(not error and message.get_attribute("data-state") == "done",
          f"the answer did not complete (state {message.get_attribute('data-state')}): {error}")
    check(not driver.find_element(By.ID, "send").get_property("disabled"), "Send stays disabled after the answer")
    answer = message.find_element(By.CSS_SELECTOR, ".text").get_property("textContent")
    print(f"shown answer ({driver.execute_script('return window.__updates')} DOM updates): {answer!r}")
    return answer


def run_chat(driver, args):
    open_page(driver, args, "chat-view")
    if args.api_key:
        def ask():
            set_value(driver, "question", "hello")
            driver.find_element(By.ID, "send").click()
        check_api_key(driver, args, "chat-view", ask)
    if not driver.find_element(By.ID, "settings").get_property("open"):
        driver.find_element(By.CSS_SELECTOR, "#settings summary").click()
    set_value(driver, "max-tokens", args.max_tokens)

    # Records the page's request bodies: each turn must send the whole conversation.
    driver.execute_script(
        "window.__chatBodies = [];"
        "const fetch0 = window.fetch;"
        "window.fetch = (url, init) => {"
        "  if (String(url).endsWith('/v1/chat/completions')) window.__chatBodies.push(JSON.parse(init.body));"
        "  return fetch0(url, init);"
        "};")
    questions = [args.question, "Describe it in one sentence."]
    messages = []
    for turn, question in enumerate(questions):
        image = args.image if turn == 0 else None
        shown = chat_turn(driver, args, question, image)
        content = [{"type": "image_url", "image_url": {"url": data_url(image)}}] if image else []
        content.append({"type": "text", "text": question})
        messages.append({"role": "user", "content": content})
        sent = driver.execute_script("return window.__chatBodies;")
        check(len(sent) == turn + 1, f"turn {turn + 1}: the page sent {len(sent)} chat requests in all")
        check(sent[-1].get("stream") is True and sent[-1].get("max_tokens") == args.max_tokens,
              f"turn {turn + 1}: the request is not streamed with max_tokens {args.max_tokens}: "
              f"stream={sent[-1].get('stream')}, max_tokens={sent[-1].get('max_tokens')}")
        check(sent[-1].get("messages") == messages,
              f"turn {turn + 1}: the page sent other messages than the conversation so far: "
              f"{json.dumps(sent[-1].get('messages'))[:400]}")
        unary = api(args.url, "/v1/chat/completions",
                    {"messages": messages, "max_tokens": args.max_tokens, "temperature": 0}, args.api_key)
        expected = unary["choices"][0]["message"]["content"]
        check(expected != "", f"turn {turn + 1}: the unary answer is empty; nothing to compare")
        check(shown == expected, f"turn {turn + 1}: the page shows {shown!r}, the unary request answers {expected!r}")
        messages.append({"role": "assistant", "content": expected})

    shown_images = driver.execute_script(
        "return Array.from(document.querySelectorAll('#messages .message.user img')).map(i => i.naturalWidth);")
    check(len(shown_images) == 1 and shown_images[0] > 0, f"the user message's image is not shown: {shown_images}")
    driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}.png"))

    driver.find_element(By.ID, "new-chat").click()
    check(len(driver.find_elements(By.CSS_SELECTOR, "#messages .message")) == 0, "New chat left messages behind")
    check_stop(driver, args)


def health(base_url):
    with urllib.request.urlopen(base_url + "/health", timeout=WAIT_S) as response:
        return json.load(response)


# Stop aborts the fetch: the partial answer stays (and is sent as history with the next turn),
# the page is ready again and the server, seeing the client gone, frees its slot.
def check_stop(driver, args):
    set_value(driver, "max-tokens", 4000)
    driver.find_element(By.ID, "question").send_keys("Count to a thousand.")
    driver.find_element(By.ID, "send").click()
    wait_for(driver, "the first streamed text",
             lambda d: d.execute_script(
                 "const m = document.querySelector('#messages .message.assistant');"
                 "return m && m.querySelector('.text').textContent.length > 0;"))
    driver.find_element(By.ID, "stop").click()
    message = driver.find_element(By.CSS_SELECTOR, "#messages .message.assistant")
    wait_for(driver, "the answer to stop", lambda d: message.get_attribute("data-state") != "streaming")
    state = message.get_attribute("data-state")
    check(state == "stopped", f"after Stop the answer is {state!r}, not 'stopped': {shown_error(driver)}")
    check(not driver.find_element(By.ID, "send").get_property("disabled"), "Send stays disabled after Stop")
    check(driver.find_element(By.ID, "stop").get_property("disabled"), "Stop stays enabled after Stop")
    check(not shown_error(driver), f"Stop shows an error: {shown_error(driver)}")
    wait_for(driver, "the server to free the stopped request's slot", lambda d: health(args.url)["running"] == 0)
    partial = message.find_element(By.CSS_SELECTOR, ".text").get_property("textContent")
    print(f"Stop: the answer stopped after {len(partial)} characters")
    driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}-stopped.png"))

    set_value(driver, "max-tokens", args.max_tokens)
    chat_turn(driver, args, "Go on.", None)
    sent = driver.execute_script("return window.__chatBodies;")[-1]["messages"]
    check([m["role"] for m in sent] == ["user", "assistant", "user"] and sent[1]["content"] == partial,
          f"the turn after Stop does not send the stopped answer as history: {json.dumps(sent)[:400]}")


def search_results(driver, args, start):
    results = driver.find_element(By.ID, "results")
    driver.execute_script("arguments[0].dataset.state = '';", results)
    start()
    wait_for(driver, "the search results", lambda d: results.get_attribute("data-state") in ("done", "error"))
    check(results.get_attribute("data-state") == "done", f"the search failed: {shown_error(driver)}")
    wait_for(driver, "every thumbnail to load",
             lambda d: d.execute_script(
                 "const i = Array.from(document.querySelectorAll('#results .result img'));"
                 "return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0);"))
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#results .result')).map(r => [r.dataset.id, Number(r.dataset.row)]);")


def expected_results(args, query):
    answer = api(args.url, "/v1/search", {"query": query, "k": args.k}, args.api_key)
    return [[hit["id"], hit["row"]] for hit in answer["data"]]


def run_search(driver, args):
    open_page(driver, args, "search-view")
    if args.api_key:
        def search():
            set_value(driver, "search-query", args.query)
            driver.find_element(By.ID, "search-button").click()
        check_api_key(driver, args, "search-view", search)
    set_value(driver, "search-k", args.k)
    set_value(driver, "search-query", args.query)

    shown = search_results(driver, args, lambda: driver.find_element(By.ID, "search-button").click())
    expected = expected_results(args, args.query)
    check(len(expected) > 1, f"the direct search found {len(expected)} result(s); too few to check the order")
    check(shown == expected, f"text search: the page shows {shown}, /v1/search answers {expected}")
    print(f"text search: {len(shown)} results with thumbnails, as /v1/search")
    driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}.png"))

    def by_image():
        driver.find_element(By.ID, "search-image").send_keys(os.path.abspath(args.image))
        wait_for(driver, "the query image's preview",
                 lambda d: len(d.find_elements(By.CSS_SELECTOR, "#search-image-preview img")) == 1)
        driver.find_element(By.ID, "search-button").click()
    shown = search_results(driver, args, by_image)
    expected = expected_results(args, {"type": "image_url", "image_url": {"url": data_url(args.image)}})
    check(shown == expected, f"image search: the page shows {shown}, /v1/search answers {expected}")
    check(shown[0][0] == os.path.realpath(args.image) or os.path.basename(shown[0][0]) == os.path.basename(args.image),
          f"image search: the query image itself is not the top hit: {shown[0]}")
    print(f"image search: {len(shown)} results with thumbnails, as /v1/search")
    driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}-image.png"))


def run_no_index(driver, args):
    driver.get(args.url + "/")
    notice = driver.find_element(By.ID, "notice")
    wait_for(driver, "the no-index notice", lambda d: notice.is_displayed())
    text = notice.get_property("textContent")
    check("--index" in text, f"the notice does not mention --index: {text!r}")
    check(not driver.find_element(By.ID, "search-view").is_displayed(), "the search view shows without an index")
    check(not driver.find_element(By.ID, "chat-view").is_displayed(), "the chat view shows for a retrieval model")
    driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}.png"))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--mode", required=True, choices=["chat", "search", "no-index"])
    parser.add_argument("--image", help="an image file (chat: attached; search: the image query)")
    parser.add_argument("--screenshots", required=True, help="folder for the PNG screenshots")
    parser.add_argument("--name", help="screenshot name (default: the mode)")
    parser.add_argument("--api-key", default="", help="the server's --api-key: also check the page without it")
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--question", default="What is in the image?")
    parser.add_argument("--query", default="a photo of an animal")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--timeout", type=int, default=300, help="bound on the whole run, seconds")
    args = parser.parse_args()
    args.name = args.name or args.mode
    os.makedirs(args.screenshots, exist_ok=True)

    def out_of_time(signum, frame):
        raise CheckFailed(f"the whole check took longer than {args.timeout} s")
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.timeout)

    driver = start_browser()
    try:
        {"chat": run_chat, "search": run_search, "no-index": run_no_index}[args.mode](driver, args)
    except Exception as e:  # a Selenium error is a failed check as well: same report
        try:
            driver.save_screenshot(os.path.join(args.screenshots, f"{args.name}-failed.png"))
            for entry in driver.get_log("browser"):
                print(f"browser console: {entry['level']} {entry['message']}", file=sys.stderr)
        except Exception:  # the report matters more than the extras
            pass
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        driver.quit()
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
