"""Peer for bench/decoder_bench.cpp: Hugging Face transformers with the same shapes, random weights,
greedy generate with KV cache, same threads. InternLM2 shapes run as LlamaForCausalLM (InternLM2 is
LLaMA with a fused wqkv; transformers has no InternLM2 class); Qwen2.5 shapes as Qwen2ForCausalLM."""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SHAPES = {
    "internlm2-1.8b": dict(hidden_size=2048, num_attention_heads=16, num_key_value_heads=8, intermediate_size=8192,
                           num_hidden_layers=24, vocab_size=92553),
    "internlm2-7b": dict(hidden_size=4096, num_attention_heads=32, num_key_value_heads=8, intermediate_size=14336,
                         num_hidden_layers=32, vocab_size=92553),
    "qwen2.5-0.5b": dict(hidden_size=896, num_attention_heads=14, num_key_value_heads=2, intermediate_size=4864,
                         num_hidden_layers=24, vocab_size=151674),
    "qwen2.5-7b": dict(hidden_size=3584, num_attention_heads=28, num_key_value_heads=4, intermediate_size=18944,
                       num_hidden_layers=28, vocab_size=151674),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="internlm2-1.8b", choices=SHAPES)
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new", type=int, default=32)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    if a.shape.startswith("qwen"):
        config = Qwen2Config(rms_norm_eps=1e-6, rope_theta=1e6, max_position_embeddings=32768,
                             tie_word_embeddings=False, use_sliding_window=False, **SHAPES[a.shape])
        model_class = Qwen2ForCausalLM
    else:
        config = LlamaConfig(rms_norm_eps=1e-5, rope_theta=1e6, max_position_embeddings=32768, attention_bias=False,
                             tie_word_embeddings=False, **SHAPES[a.shape])
        model_class = LlamaForCausalLM
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)
    with torch.device(a.device):  # random weights drawn where they live
        model = model_class(config).eval()
    torch.set_default_dtype(torch.float32)
    ids = torch.randint(config.vocab_size, (1, a.prompt)).to(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    with torch.inference_mode():
        model.generate(ids[:, :8], max_new_tokens=8, do_sample=False)  # warm-up
        sync()
        # Prefill: best of three (reported), the median is what the decode figure subtracts.
        prefills = []
        for _ in range(3):
            t0 = time.perf_counter()
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)
            sync()
            prefills.append(time.perf_counter() - t0)
        prefill = min(prefills)
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=a.new + 1, min_new_tokens=a.new + 1, do_sample=False)
        sync()
        total = time.perf_counter() - t0
    decode = max(total - sorted(prefills)[1], 1e-9)
    print(json.dumps({"impl": "transformers-" + __import__("transformers").__version__, "shape": a.shape,
                      "dtype": a.dtype, "device": a.device, "threads": torch.get_num_threads(), "prompt": a.prompt, "new": a.new,
                      "prefill_s": round(prefill, 3), "prefill_tok_s": round(a.prompt / prefill, 1),
                      "decode_s": round(decode, 3), "decode_tok_s": round(a.new / decode, 2)}))


if __name__ == "__main__":
    main()
