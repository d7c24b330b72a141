"""Peer for bench/intern_vit_bench.cpp: Hugging Face transformers' InternVLVisionModel (sdpa)
at the same shapes, random weights, same thread count. Prints the same JSON fields."""
import argparse
import json
import statistics
import time

import torch
from transformers import InternVLVisionConfig, InternVLVisionModel

SHAPES = {
    "300m": dict(hidden_size=1024, num_attention_heads=16, intermediate_size=4096, num_hidden_layers=24,
                 image_size=448, norm_type="layer_norm", attention_bias=True, use_qk_norm=False),
    "6b": dict(hidden_size=3200, num_attention_heads=25, intermediate_size=12800, num_hidden_layers=48,
               image_size=224, norm_type="rms_norm", attention_bias=False, use_qk_norm=True),
}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--shape", default="300m", choices=SHAPES)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = p.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    s = dict(SHAPES[a.shape])
    size = s.pop("image_size")
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    config = InternVLVisionConfig(image_size=[size, size], patch_size=[14, 14], use_mean_pooling=False, **s)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)  # build in the target dtype: a 6B model in fp32 would not fit
    with torch.device(a.device):  # random weights drawn where they live
        model = InternVLVisionModel(config).eval()
    torch.set_default_dtype(torch.float32)
    pixels = torch.randn(a.batch, 3, size, size).to(a.device, dtype)
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.iters):
            t0 = time.perf_counter()
            out = model(pixel_values=pixels).last_hidden_state
            float(out.float().sum())
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"impl": "transformers-" + __import__("transformers").__version__, "shape": a.shape,
                      "batch": a.batch, "dtype": a.dtype, "device": a.device, "threads": torch.get_num_threads(),
                      "median_s": round(med, 4), "min_s": round(times[0], 4),
                      "images_per_s": round(a.batch / med, 3)}))


if __name__ == "__main__":
    main()
