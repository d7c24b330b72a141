"""Drives internvl-server with the official `openai` Python client, as a user's program would.

usage: openai_session.py BASE_URL SCENARIO.json RESULTS.json [TRANSCRIPT.txt]

SCENARIO is a list of requests written by the C++ test (openai_client_test.cpp); every request
is sent through the client and what the client returns is written to RESULTS (same order), so
the test can compare it with the library's in-process answers. The transcript is what a person
would see.
"""
import base64
import json
import struct
import sys

import openai


def chat(client, req, transcript):
    kwargs = dict(model=req["model"], messages=req["messages"], max_tokens=req["max_tokens"])
    for key in ("temperature", "top_p", "seed", "stop"):
        if key in req:
            kwargs[key] = req[key]
    extra = {"return_token_ids": True}
    if "extra" in req:
        extra.update(req["extra"])
    out = {}
    if req.get("stream"):
        stream = client.chat.completions.create(stream=True, stream_options={"include_usage": True},
                                                extra_body=extra, **kwargs)
        text, finish, usage, token_ids, prompt_ids, chunks = "", None, None, None, None, 0
        for chunk in stream:
            chunks += 1
            extra_fields = chunk.model_extra or {}
            if "prompt_token_ids" in extra_fields and extra_fields["prompt_token_ids"]:
                prompt_ids = extra_fields["prompt_token_ids"]
            if chunk.usage is not None:
                usage = chunk.usage.model_dump()
            for choice in chunk.choices:
                if choice.delta and choice.delta.content:
                    text += choice.delta.content
                if choice.finish_reason:
                    finish = choice.finish_reason
                    token_ids = (choice.model_extra or {}).get("token_ids")
        out.update(content=text, finish_reason=finish, usage=usage, token_ids=token_ids,
                   prompt_token_ids=prompt_ids, chunks=chunks)
    else:
        resp = client.chat.completions.create(extra_body=extra, **kwargs)
        choice = resp.choices[0]
        out.update(content=choice.message.content, finish_reason=choice.finish_reason,
                   usage=resp.usage.model_dump(), token_ids=(choice.model_extra or {}).get("token_ids"),
                   prompt_token_ids=(resp.model_extra or {}).get("prompt_token_ids"), object=resp.object,
                   role=choice.message.role)
    last_user = [m for m in req["messages"] if m["role"] == "user"][-1]["content"]
    if isinstance(last_user, list):
        shown = " ".join(p["text"] if p["type"] == "text" else "[image]" for p in last_user)
    else:
        shown = last_user
    transcript.append(f">>> [{req['name']}{' stream' if req.get('stream') else ''}] user: {shown}")
    transcript.append(f"<<< assistant: {out['content']!r}  (finish_reason={out['finish_reason']}, "
                      f"usage={out['usage']})")
    return out


def embeddings(client, req, transcript):
    kwargs = dict(model=req["model"], input=req["input"])
    if req.get("encoding_format"):
        kwargs["encoding_format"] = req["encoding_format"]
    resp = client.embeddings.create(**kwargs)
    rows = []
    for item in sorted(resp.data, key=lambda d: d.index):
        if isinstance(item.embedding, str):
            # An explicit encoding_format="base64" is handed back undecoded: little-endian float32.
            raw = base64.b64decode(item.embedding)
            rows.append(list(struct.unpack(f"<{len(raw) // 4}f", raw)))
        else:
            rows.append([float(x) for x in item.embedding])
    transcript.append(f">>> [{req['name']}] embeddings of {len(req['input'])} inputs, "
                      f"encoding_format={req.get('encoding_format') or 'client default (base64)'}")
    transcript.append(f"<<< {len(rows)} x {len(rows[0])}, row 0 starts {rows[0][:3]}")
    return {"embeddings": rows, "model": resp.model, "usage": resp.usage.model_dump()}


def main():
    base_url, scenario_path, results_path = sys.argv[1:4]
    transcript_path = sys.argv[4] if len(sys.argv) > 4 else None
    client = openai.OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=300)
    transcript = [f"models: {[m.id for m in client.models.list().data]}"]
    results = []
    with open(scenario_path) as f:
        scenario = json.load(f)
    for req in scenario:
        if req["kind"] == "chat":
            results.append(chat(client, req, transcript))
        elif req["kind"] == "embeddings":
            results.append(embeddings(client, req, transcript))
        elif req["kind"] == "error":
            # A request the server must refuse: the client raises with the server's error object.
            try:
                client.chat.completions.create(model=req["model"], messages=req["messages"], max_tokens=4)
                results.append({"raised": False})
            except openai.APIStatusError as e:
                body = e.body if isinstance(e.body, dict) else {}
                results.append({"raised": True, "status": e.status_code, "error": body})
                transcript.append(f">>> [{req['name']}] refused: HTTP {e.status_code} {body}")
    with open(results_path, "w") as f:
        json.dump(results, f)
    text = "\n".join(transcript) + "\n"
    if transcript_path:
        with open(transcript_path, "w") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
