"""Writes the committed seed corpora under corpus/<target>/ (run from this folder; needs Pillow,
numpy). Small inputs on purpose: the fuzzers mutate them."""
import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "data" / "fixtures"


def st(tensors, metadata=None):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def put(target, name, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


f32 = np.arange(6, dtype="<f4").tobytes()
put("safetensors", "single", b"\0" + st([("a", "F32", [2, 3], f32), ("b", "I64", [], struct.pack("<q", 7)),
                                         ("e", "BF16", [0], b"")], {"format": "pt"}))
put("safetensors", "dtypes", b"\0" + st([(n, d, [2], b"\1" * (2 * s)) for n, d, s in
                                         [("u8", "U8", 1), ("f16", "F16", 2), ("bf16", "BF16", 2), ("f64", "F64", 8),
                                          ("b", "BOOL", 1), ("f8", "F8_E4M3", 1)]]))
index = json.dumps({"metadata": {"total_size": 24}, "weight_map": {"a": "s1.safetensors", "b": "s1.safetensors"}})
put("safetensors", "sharded", b"\1" + index.encode() + b"\n--\n" + st([("a", "F32", [2, 3], f32), ("b", "F32", [0], b"")]))

for fixture in ("internvl-14b-tiny", "internvl-chat-internlm2-tiny", "internvl-chat-llama-tiny"):
    put("config", fixture + ".json", (FIXTURES / fixture / "config.json").read_bytes())

rng = np.random.default_rng(0)
pixels = rng.integers(0, 256, (9, 13, 3), dtype=np.uint8)
for fmt, ext, mode in [("PNG", "png", "RGB"), ("PNG", "png", "L"), ("PNG", "png", "RGBA"), ("PNG", "png", "P"),
                       ("JPEG", "jpg", "RGB"), ("JPEG", "jpg", "L"), ("JPEG", "jpg", "CMYK"), ("GIF", "gif", "P"),
                       ("BMP", "bmp", "RGB"), ("WEBP", "webp", "RGB"), ("TIFF", "tif", "RGB"), ("PPM", "ppm", "RGB")]:
    buf = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buf, fmt)
    put("image", f"{mode.lower()}.{ext}", buf.getvalue())
buf = io.BytesIO()
Image.fromarray(pixels).save(buf, "JPEG", progressive=True)
put("image", "progressive.jpg", buf.getvalue())
buf = io.BytesIO()
Image.fromarray((rng.integers(0, 65536, (5, 4))).astype(np.uint16)).save(buf, "PNG")
put("image", "grey16.png", buf.getvalue())
shutil.copy(HERE.parent / "data" / "images" / "animated_12x10.gif", HERE / "corpus" / "image" / "animated.gif")

texts = ["Hello, world!", "<image>\nWhat is in the picture?", "<|im_start|>user\nhi<|im_end|>", "  spaces  \t\n",
         "naïve café ✓ 中文 😀", "<s></s><unk>", "don't . , ! ?"]
for i, text in enumerate(texts):
    for selector in (0, 4 + 1, 8 + 2):
        put("tokenizer", f"text{i}_{selector}", bytes([selector]) + text.encode())
for selector in (12, 13, 14 + 2):
    put("tokenizer", f"ids_{selector}", bytes([selector]) + np.array([1, 2, 100, 260, 65535, 5, 0x7FFF], "<u2").tobytes())

bpe_texts = ["Hello, world!", "<|im_start|>user\n<image>\nhi<|im_end|>\n", "  spaces \t\n\n  x", "naïve café 中文 😀 Å",
             "<|im_end|>\u0338 <think>x</think>", "I'M it's don't 12345", "def f(x):\n    return x**2\n"]
for i, text in enumerate(bpe_texts):
    for selector in (0, 1 + 6 + 16, 8 + 1):
        put("tokenizer_bpe", f"text{i}_{selector}", bytes([selector]) + text.encode())
for selector in (2, 4 + 8, 4 + 16):
    # partial UTF-8, continuation bytes, special ids, out of range
    put("tokenizer_bpe", f"ids_{selector}", bytes([selector]) + np.array([160, 121, 254, 172, 253, 6258, 246, 222, 222, 6400, 65535, 64], "<u2").tobytes())

emb = rng.standard_normal((3, 4)).astype("<f4")
meta = {"format": "internvl-embedding-index", "version": "1", "model_id": "InternVLModel:0123456789abcdef",
        "mode": "c", "dim": "4", "ids": json.dumps(["a.jpg", "b.jpg", "c.jpg"])}
put("index", "three_rows", st([("embeddings", "F32", [3, 4], emb.tobytes())], meta))
put("index", "empty", st([("embeddings", "F32", [0, 4], b"")], dict(meta, ids="[]")))
