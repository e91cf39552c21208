#!/usr/bin/env python3
"""torch.matmul at the matrix-product shapes of `arwkv-bench gpu-ops`, on the same GPU, so that both
figures sit side by side: bf16 operands and bf16 output (torch's usual training product; ours reads
fp32 activations and writes fp32), median of 10 timed products after 3 warm-ups, fresh random data.

    python3 bench/gpu-torch-matmul.py [--arwkv GPU_OPS_OUTPUT]

With --arwkv, the output of `arwkv-bench gpu-ops` is read back and each shape gets the ratio
arwkv / torch (the issue's goal: at least 0.70 at every training shape)."""
import argparse
import re
import sys

import torch

SHAPES = [  # name, hidden, kv width, mlp, vocab
    ("0.5b", 896, 128, 4864, 151936),
    ("1.5b", 1536, 256, 8960, 151936),
    ("7b", 3584, 512, 18944, 152064),
]
M = 8192


def median_ms(fn, reps=10):
    for _ in range(3):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for a, b in ev:
        a.record()
        fn()
        b.record()
    torch.cuda.synchronize()
    t = sorted(a.elapsed_time(b) for a, b in ev)
    return t[reps // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arwkv", help="output of arwkv-bench gpu-ops to compare with")
    args = ap.parse_args()
    dev = torch.device("cuda")
    print(f"# torch {torch.__version__} on {torch.cuda.get_device_name(0)}, bf16 in, bf16 out")
    print(f"  {'model':6} {'proj':8} {'pass':4} {'M':>7} {'N':>7} {'K':>7} {'ms':>9} {'TFLOP/s':>9}")
    torch_tf = {}
    for name, C, kv, mlp, vocab in SHAPES:
        for proj, N, K in (("q,o", C, C), ("k,v", kv, C), ("gate,up", mlp, C), ("down", C, mlp), ("head", vocab, C)):
            W = torch.empty(N, K, device=dev, dtype=torch.bfloat16).uniform_(-0.05, 0.05)
            x = torch.empty(M, K, device=dev, dtype=torch.bfloat16).uniform_(-1, 1)
            dy = torch.empty(M, N, device=dev, dtype=torch.bfloat16).uniform_(-1, 1)
            for pas, fn, (gm, gn, gk) in (
                ("fwd", lambda: torch.matmul(x, W.t()), (M, N, K)),
                ("dx", lambda: torch.matmul(dy, W), (M, K, N)),
                ("dW", lambda: torch.matmul(dy.t(), x), (N, K, M)),
            ):
                ms = median_ms(fn)
                tf = 2.0 * gm * gn * gk / (ms * 1e-3) / 1e12
                torch_tf[(name, proj, pas)] = tf
                print(f"  {name:6} {proj:8} {pas:4} {gm:7d} {gn:7d} {gk:7d} {ms:9.3f} {tf:9.1f}", flush=True)
            del W, x, dy
            torch.cuda.empty_cache()
    if not args.arwkv:
        return 0
    ours = {}
    pat = re.compile(r"^\s+(\S+)\s+(\S+)\s+(fwd|dx|dW)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)")
    with open(args.arwkv) as f:
        for line in f:
            m = pat.match(line)
            if m:
                ours[(m.group(1), m.group(2), m.group(3))] = float(m.group(8))
    print("\n# arwkv-bench gpu-ops against torch.matmul (TFLOP/s; goal: arwkv/torch >= 0.70)")
    print(f"  {'model':6} {'proj':8} {'pass':4} {'arwkv':>9} {'torch':>9} {'ratio':>7}")
    worst = None
    for key, tt in torch_tf.items():
        if key not in ours:
            continue
        r = ours[key] / tt
        worst = r if worst is None else min(worst, r)
        print(f"  {key[0]:6} {key[1]:8} {key[2]:4} {ours[key]:9.1f} {tt:9.1f} {r:7.2f}{'' if r >= 0.7 else '  < 0.70'}")
    if worst is not None:
        print(f"  lowest ratio {worst:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
