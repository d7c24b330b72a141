"""Writes the committed seed corpora under corpus/<target>/ (run from this folder; needs Pillow,
numpy). Small inputs on purpose: the fuzzers mutate them."""
import base64
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

# server_request: first byte 0/3 chat, 1 embeddings, 2 search (+4: the entry's small limits), then the body.
png = b"\x89PNG\r\n\x1a\n" + bytes(range(0, 256, 7))  # the parser only decodes the base64
data_url = "data:image/png;base64," + base64.b64encode(png).decode()
jpeg_url = "data:image/jpeg;base64," + base64.b64encode(png[:31]).decode()
image = {"type": "image_url", "image_url": {"url": data_url, "detail": "auto"}}
server_bodies = {
    "chat_text": (0, {"model": "internvl", "messages": [{"role": "user", "content": "Hello, who are you?"}]}),
    "chat_stream_sampling": (3, {"messages": [{"role": "system", "content": "Answer briefly."},
                                              {"role": "user", "content": "Tell me a joke."}],
                                 "stream": True, "stream_options": {"include_usage": True}, "temperature": 0.7,
                                 "top_p": 0.9, "top_k": 40, "seed": 1, "max_tokens": 64,
                                 "stop": ["\n\nUser:", "</s>"], "n": 1, "logprobs": False}),
    "chat_image": (0, {"messages": [{"role": "user", "content": [{"type": "text", "text": "What is in the image?"},
                                                                  image]}], "max_completion_tokens": 32}),
    "chat_two_images": (0, {"messages": [{"role": "user", "content": [
        image, {"type": "image_url", "image_url": {"url": jpeg_url}}, {"type": "text", "text": "Compare them."}]}],
        "max_tiles": 6, "return_token_ids": True}),
    "chat_placeholders": (3, {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "First <image> then <image>: what changed?"}, image, {"type": "image_url",
                                                                                          "image_url": "img.png"}]}]}),
    "chat_multi_turn": (0, {"messages": [
        {"role": "developer", "content": "You are InternVL."}, {"role": "user", "content": [image, {
            "type": "text", "text": "Describe it."}]},
        {"role": "assistant", "content": "A small picture."}, {"role": "user", "content": "More"},
        {"role": "user", "content": [{"type": "text", "text": "details, please."}]}], "temperature": 0,
        "max_tokens": None, "tools": []}),
    "chat_stream_text": (6, {"messages": [{"role": "user", "content": " \u3000 Hello\u00a0 END world \n\t"}],
                             "stop": ["END", "o w"], "stream": True}),
    "chat_too_many_images": (6, {"messages": [{"role": "user", "content": [image, image, image, image]}]}),
    "chat_bad_field": (0, {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"},
                                                                     {"type": "input_audio"}]}], "n": 2}),
    "embeddings_float": (1, {"model": "internvl-c", "input": ["a photo of a cat", "a photo of a dog"],
                             "encoding_format": "float"}),
    "embeddings_base64_images": (4, {"model": "internvl-g", "input": [image, {"type": "text", "text": "a cat"},
                                                                      {"type": "image_url", "image_url": jpeg_url}],
                                     "encoding_format": "base64", "mode": "g", "dimensions": 256}),
    "embeddings_string": (1, {"input": "hello", "normalize": False, "mode": "C"}),
    "embeddings_token_ids": (1, {"input": [[1, 2, 3]]}),
    "search_text": (2, {"model": "internvl-c", "query": "a red car", "k": 5}),
    "search_image": (5, {"query": {"type": "image_url", "image_url": {"url": jpeg_url}}, "k": 3}),
    "search_k_too_large": (5, {"query": {"type": "text", "text": "x"}, "k": 50}),
}
for name, (selector, body) in server_bodies.items():
    put("server_request", name, bytes([selector]) + json.dumps(body, ensure_ascii=selector % 2 == 0).encode())
