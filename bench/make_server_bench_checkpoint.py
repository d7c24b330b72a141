#!/usr/bin/env python3
"""Writes a random-weight InternVL-Chat checkpoint with Qwen2.5-0.5B's LLM shape for server_bench.

The tiny Qwen2 chat fixture supplies the tokenizer, the template and the vision tower; its
llm_config gets Qwen2.5-0.5B's sizes (hidden 896, 24 layers, 14 heads, 2 kv heads, intermediate
4864) but keeps the fixture's vocab_size, so the fixture tokenizer still fits (the real model's
151936-row embedding and lm_head are therefore not timed). Weights are N(0, std) with norms at 1,
so the decode cost is that of the real shape; the text it produces is meaningless.

  .venv/bin/python bench/make_server_bench_checkpoint.py OUT_DIR [--std 0.02] [--seed 0]
"""
import argparse
import ctypes
import json
import shutil
import struct
from pathlib import Path

import torch

FIXTURE = Path(__file__).resolve().parent.parent / "tests/data/fixtures/internvl-chat-qwen2-tiny"
QWEN25_05B = dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                  intermediate_size=4864)


def read_header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def llm_shapes(cfg):
    # Qwen2 names as the fixture has them; q/k/v carry biases, o_proj does not.
    h, inter, vocab = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    kv = cfg["num_key_value_heads"] * (h // cfg["num_attention_heads"])
    shapes = {
        "language_model.model.embed_tokens.weight": [vocab, h],
        "language_model.lm_head.weight": [vocab, h],
        "language_model.model.norm.weight": [h],
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"language_model.model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": [h],
            p + "post_attention_layernorm.weight": [h],
            p + "self_attn.q_proj.weight": [h, h], p + "self_attn.q_proj.bias": [h],
            p + "self_attn.k_proj.weight": [kv, h], p + "self_attn.k_proj.bias": [kv],
            p + "self_attn.v_proj.weight": [kv, h], p + "self_attn.v_proj.bias": [kv],
            p + "self_attn.o_proj.weight": [h, h],
            p + "mlp.gate_proj.weight": [inter, h],
            p + "mlp.up_proj.weight": [inter, h],
            p + "mlp.down_proj.weight": [h, inter],
        })
    return shapes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--std", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in FIXTURE.iterdir():
        # reference.* are the fixture's expected outputs; they would not match these weights.
        if f.is_file() and f.suffix != ".safetensors" and not f.name.startswith("reference"):
            shutil.copy(f, out / f.name)

    config = json.loads((FIXTURE / "config.json").read_text())
    config["llm_config"].update(QWEN25_05B)
    config["hidden_size"] = QWEN25_05B["hidden_size"]
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    h = QWEN25_05B["hidden_size"]

    shapes = {}
    for name, info in read_header(FIXTURE / "model.safetensors").items():
        if name.startswith("vision_model.") or name.startswith("mlp1."):
            shapes[name] = list(info["shape"])
    # mlp1 = LayerNorm, Linear(vit*4 -> llm), GELU, Linear(llm -> llm): outputs move to 896.
    shapes["mlp1.1.weight"][0] = h
    shapes["mlp1.1.bias"] = [h]
    shapes["mlp1.3.weight"] = [h, h]
    shapes["mlp1.3.bias"] = [h]
    shapes.update(llm_shapes(config["llm_config"]))

    gen = torch.Generator().manual_seed(args.seed)
    tensors = {}
    for name in sorted(shapes):
        shape = shapes[name]
        # Norm and layer-scale weights at 1 keep activations in range through 24 layers.
        is_norm = name.endswith(("layernorm.weight", "norm.weight", "norm1.weight", "norm2.weight", ".ls1", ".ls2")) \
            or name == "mlp1.0.weight"
        if is_norm:
            t = torch.ones(shape)
        elif name.endswith(".bias"):
            t = torch.zeros(shape)
        else:
            t = torch.randn(shape, generator=gen) * args.std
        tensors[name] = t.to(torch.bfloat16).contiguous()

    # safetensors by hand (the package is not in the venv): u64 header size, JSON header, data.
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(out / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for t in tensors.values():
            f.write(ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()))
    print(f"{out}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()) / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
