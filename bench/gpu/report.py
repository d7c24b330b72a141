"""Joins the GPU check's JSON outputs (bench/gpu/check.sh) into one markdown table.
   report.py DIR   (reads DIR/*.jsonl written by check.sh; a missing or failed step shows as n/a)"""
import json
import os
import sys


def records(path):
    out = []
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def first(path):
    r = records(path)
    return r[-1] if r else None


def fmt(x, spec=".2f"):
    return "n/a" if x is None else format(x, spec)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def main(d):
    lines = []
    machine = first(os.path.join(d, "machine.jsonl")) or {}
    copy_gbs, mm_tflops = machine.get("copy_gbs"), machine.get("matmul_tflops")
    lines.append(f"GPU: {machine.get('machine', 'n/a')}, torch {machine.get('torch', 'n/a')}; measured device-to-device "
                 f"copy {fmt(copy_gbs, '.0f')} GB/s (read + write), bf16 8192^3 matmul {fmt(mm_tflops, '.0f')} TFLOP/s")
    lines.append("")
    lines.append("| check | internvl-cpp | peer | ours / peer | target | note |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    peers = {r["case"]: r for r in records(os.path.join(d, "sdpa.jsonl"))}
    for r in records(os.path.join(d, "attention.jsonl")):
        p = peers.get(r["case"], {})
        best = p.get("sdpa_best_ms")
        if r["kind"] == "prefill":
            ours = f"{r['flops'] / r['ours_ms'] / 1e9:.0f} TFLOP/s ({r['ours_ms']:.3f} ms)"
            peer = f"{r['flops'] / best / 1e9:.0f} TFLOP/s ({best:.3f} ms, {p.get('sdpa_best')})" if best else "n/a"
            target = ">= 1.0x"
        else:
            ours = f"{r['bytes'] / r['ours_ms'] / 1e6:.0f} GB/s ({r['ours_ms']:.3f} ms)"
            peer = f"{r['bytes'] / best / 1e6:.0f} GB/s ({best:.3f} ms, {p.get('sdpa_best')})" if best else "n/a"
            target = ">= 2x at long KV"
        lines.append(f"| {r['case']} | {ours} | {peer} | {fmt(ratio(best, r['ours_ms']))}x | {target} | "
                     f"rel err {r['rel_err']:.1e}; ATen SDPA in-process {r['aten_sdpa_ms']:.3f} ms |")
    vit = first(os.path.join(d, "vit_ours.jsonl"))
    vit_aten = first(os.path.join(d, "vit_ours_aten.jsonl"))
    vit_peer = first(os.path.join(d, "vit_peer.jsonl"))
    if vit or vit_peer:
        ours_ips = vit and vit["images_per_s"]
        mfu = None
        if vit and mm_tflops:
            mfu = vit["flops_per_image"] * ours_ips / 1e12 / mm_tflops
        peer_ips = vit_peer and vit_peer["images_per_s"]
        peer_mfu = None if not (vit and vit_peer and mm_tflops) else vit["flops_per_image"] * peer_ips / 1e12 / mm_tflops
        lines.append(f"| InternViT-6B-224 batch 32 bf16 | {fmt(ours_ips)} img/s (MFU {fmt(mfu and mfu * 100, '.0f')}%) | "
                     f"{vit_peer['impl'] if vit_peer else 'transformers'} sdpa {fmt(peer_ips)} img/s "
                     f"(MFU {fmt(peer_mfu and peer_mfu * 100, '.0f')}%) | {fmt(ratio(ours_ips, peer_ips))}x | >= 1.3x | "
                     f"kernels off (ATen): {fmt(vit_aten and vit_aten['images_per_s'])} img/s; MFU vs the measured matmul |")
    dec = first(os.path.join(d, "dec_ours.jsonl"))
    dec_aten = first(os.path.join(d, "dec_ours_aten.jsonl"))
    dec_peer = first(os.path.join(d, "dec_peer.jsonl"))
    if dec or dec_peer:
        tok = dec and dec["decode_tok_s"]
        roof = None
        if dec and copy_gbs:
            # copy_gbs counts the bytes read and written, i.e. the memory traffic a decode step's reads share.
            roof = copy_gbs * 1e9 / (dec["weight_bytes"] + dec["kv_bytes"])
        nominal = None if not dec else 3.35e12 / (dec["weight_bytes"] + dec["kv_bytes"])
        peer_tok = dec_peer and dec_peer["decode_tok_s"]
        lines.append(f"| 8B InternLM2-shaped decode, batch 1 bf16 | {fmt(tok)} tok/s | "
                     f"{dec_peer['impl'] if dec_peer else 'transformers'} generate {fmt(peer_tok)} tok/s | "
                     f"{fmt(ratio(tok, peer_tok))}x | >= 85% of roofline | roofline {fmt(roof, '.0f')} tok/s "
                     f"(weights + KV bytes at the measured copy bandwidth) -> {fmt(ratio(tok, roof) and ratio(tok, roof) * 100, '.0f')}%; "
                     f"nominal H100 SXM 3.35 TB/s: {fmt(nominal, '.0f')} tok/s; graphs {dec and dec.get('graphs')}; "
                     f"kernels off (ATen, eager): {fmt(dec_aten and dec_aten['decode_tok_s'])} tok/s |")
    steps = os.path.join(d, "steps.txt")
    if os.path.exists(steps):
        lines.append("")
        lines.append("Steps (exit status, seconds): " + "; ".join(l.strip() for l in open(steps) if l.strip()))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1])
