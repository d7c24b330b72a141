"""Peer for attention_bench: torch.nn.functional.scaled_dot_product_attention on the same cases,
each SDPA backend tried (flash, memory-efficient, cuDNN, math), the best kept. Decode cases try
GQA through enable_gqa and through expanded keys/values (expanded outside the timing). Prints one
JSON line per case with the same "case" labels as attention_bench. Also measures the machine:
  --machine   prints {"copy_gbs": device-to-device copy bandwidth (read + write bytes),
                      "matmul_tflops": bf16 8192^3 matmul}  (the roofline and MFU references)
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
PREFILL = [(32, 25, 257, 128, False), (8, 25, 1025, 128, False), (32, 16, 257, 64, False), (8, 16, 1025, 64, False),
           (4, 32, 2048, 128, True)]
DECODE = [(1, 32, 8, 4096, 128), (1, 32, 8, 16384, 128), (16, 32, 8, 4096, 128), (32, 16, 8, 16384, 64)]


def median_ms(fn, iters):
    for _ in range(3):
        fn()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop))
    times.sort()
    return times[len(times) // 2]


def best_of(variants, iters):
    """variants: {name: fn}; returns (best ms, name, {name: ms or error})."""
    results = {}
    for name, fn in variants.items():
        try:
            results[name] = round(median_ms(fn, iters), 5)
        except Exception as e:  # a backend that does not take these inputs
            results[name] = "n/a: " + str(e).split("\n")[0][:80]
    timed = {k: v for k, v in results.items() if isinstance(v, float)}
    if not timed:
        return None, None, results
    best = min(timed, key=timed.get)
    return timed[best], best, results


def attention(iters):
    opts = dict(device="cuda", dtype=torch.bfloat16)
    torch.manual_seed(0)
    for b, h, n, d, causal in PREFILL:
        q, k, v = (torch.randn(b, h, n, d, **opts) for _ in range(3))

        def run(backend):
            def fn():
                with sdpa_kernel([backend]):
                    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            return fn
        ms, name, results = best_of({k_: run(v_) for k_, v_ in BACKENDS.items()}, iters)
        print(json.dumps({"case": f"prefill B{b} H{h} L{n} d{d}" + (" causal" if causal else ""), "sdpa_best_ms": ms,
                          "sdpa_best": name, "sdpa_all": results}), flush=True)
        del q, k, v
    for b, h, hkv, n, d in DECODE:
        q = torch.randn(b, h, 1, d, **opts)
        k, v = (torch.randn(b, hkv, n, d, **opts) for _ in range(2))
        ke, ve = k.repeat_interleave(h // hkv, 1), v.repeat_interleave(h // hkv, 1)
        variants = {}
        for name, backend in BACKENDS.items():
            def gqa(backend=backend):
                with sdpa_kernel([backend]):
                    F.scaled_dot_product_attention(q, k, v, enable_gqa=True)

            def expanded(backend=backend):
                with sdpa_kernel([backend]):
                    F.scaled_dot_product_attention(q, ke, ve)
            variants[name + "+gqa"] = gqa
            variants[name + "+expanded"] = expanded
        ms, name, results = best_of(variants, iters)
        print(json.dumps({"case": f"decode B{b} H{h}/{hkv} KV{n} d{d}", "sdpa_best_ms": ms, "sdpa_best": name,
                          "sdpa_all": results}), flush=True)
        del q, k, v, ke, ve


def machine():
    x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")  # 1 GiB, well past L2
    y = torch.empty_like(x)
    copy_ms = median_ms(lambda: y.copy_(x), 20)
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    mm_ms = median_ms(lambda: a @ b, 20)
    print(json.dumps({"machine": torch.cuda.get_device_name(), "torch": torch.__version__,
                      "copy_gbs": round(2 * x.numel() / copy_ms / 1e6, 1),
                      "matmul_tflops": round(2 * 8192 ** 3 / mm_ms / 1e9, 1)}), flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--machine", action="store_true")
    a = p.parse_args()
    machine() if a.machine else attention(a.iters)
