"""Writes the BPE benchmark text: the repository's own sources and docs (English + code) interleaved
with the multilingual strings of the qwen2-tokenizer fixture and the Chinese system message of the
Qwen chat fixtures, repeated to --mb megabytes. Deterministic, no downloads."""
import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=float, default=4.0)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    files = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "src").rglob("*.cpp"),
                    *(ROOT / "src").rglob("*.h"), *(ROOT / "bench").glob("*.py")])
    code = [f.read_text(encoding="utf-8", errors="replace") for f in files if f.is_file()]
    fixtures = ROOT / "tests" / "data" / "fixtures"
    ref = json.loads((fixtures / "qwen2-tokenizer" / "reference.json").read_text(encoding="utf-8"))
    # The fixture's hard strings minus the ones built to differ between slow and fast tokenizers.
    strings = [c["text"] for c in ref["inputs"]["cases_input"] if c["name"] not in ("nfc_across_special_boundary",)]
    chat = json.loads((fixtures / "internvl-chat-qwen2-tiny" / "reference.json").read_text(encoding="utf-8"))
    system = chat["config_summary"]["system_message"]
    parts, size, i = [], 0, 0
    target = int(a.mb * 1e6)
    while size < target:
        chunk = code[i % len(code)] + "\n" + strings[i % len(strings)] + "\n" + system + "\n"
        parts.append(chunk)
        size += len(chunk.encode())
        i += 1
    Path(a.out).write_text("".join(parts), encoding="utf-8")


if __name__ == "__main__":
    main()
