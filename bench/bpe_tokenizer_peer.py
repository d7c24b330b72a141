"""Peer for bench/bpe_tokenizer_bench.cpp: the Rust `tokenizers` package (Hugging Face's fast
tokenizer) on the same tokenizer.json and the same documents, one thread. Prints one JSON line."""
import argparse
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402


def documents(text, size):
    # The same cut as the C++ side: ~size bytes, at the next newline.
    data = text.encode("utf-8")
    out, start = [], 0
    while start < len(data):
        end = min(len(data), start + size)
        nl = data.find(b"\n", end)
        end = len(data) if nl < 0 else nl + 1
        out.append(data[start:end].decode("utf-8"))
        start = end
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    p.add_argument("--text", required=True)
    p.add_argument("--doc-bytes", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    t0 = time.perf_counter()
    tok = tokenizers.Tokenizer.from_file(os.path.join(a.tokenizer, "tokenizer.json"))
    load_s = time.perf_counter() - t0
    text = open(a.text, encoding="utf-8", newline="").read()  # keep \r\n as written
    docs = documents(text, a.doc_bytes)
    nbytes = len(text.encode("utf-8"))
    times, encoded = [], []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        encoded = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        times.append(time.perf_counter() - t0)
    # FNV-1a over (id + 1) per id and 0 per document: the C++ side prints the same.
    h, mask = 0xCBF29CE484222325, (1 << 64) - 1
    for ids in encoded:
        for i in ids:
            h = ((h ^ (i + 1)) * 0x100000001B3) & mask
        h = (h * 0x100000001B3) & mask
    best = min(times)
    ids_total = sum(len(ids) for ids in encoded)
    print(json.dumps({"impl": f"tokenizers {tokenizers.__version__}", "load_s": round(load_s, 4), "bytes": nbytes,
                      "docs": len(docs), "tokens": ids_total, "ids_fnv": f"{h:016x}", "first_s": round(times[0], 4), "encode_s": round(best, 4),
                      "mb_s": round(nbytes / best / 1e6, 2)}))


if __name__ == "__main__":
    main()
