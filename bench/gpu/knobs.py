"""Native kernel timed under several tuning knobs (environment variables the
launcher reads), interleaved round by round so clock drift hits every
configuration alike:

    python3 bench/gpu/knobs.py tiny-seqs:STAGES=2,3:HEADS_PER_CTA=8,4,2 windows:STAGES=2,3

Each argument: a workload of peers' workloads.json, then knobs NAME=v1,v2
(COMFY_SPARSE_ATTN_CUDA_ prefix implied: TILE, HEADS_PER_CTA, STAGES); every combination is timed (median ms of CUDA
event timings, 7 rounds of 10 calls, no host check of cu_seqlens).
"""
import itertools
import os
import sys

import torch

from comfy_sparse_attn import _C, _native
from profile_case import W, lengths  # noqa: F401  (same workload file)
import json


def inputs(w):
    lq = lengths(w["q"])
    lk = lengths(w["kv"]) or lq
    dt = getattr(torch, w["dtype"])
    q = torch.randn(sum(lq), w["H"], w["D"], device="cuda", dtype=dt)
    k = torch.randn(sum(lk), w["H_kv"], w["D"], device="cuda", dtype=dt)
    v = torch.randn(sum(lk), w["H_kv"], w["D"], device="cuda", dtype=dt)
    cq = torch.tensor([0] + lq, device="cuda").cumsum(0).to(torch.int32)
    ck = torch.tensor([0] + lk, device="cuda").cumsum(0).to(torch.int32)
    return q, k, v, cq, ck, max(lq), max(lk)


def main():
    with open(W) as f:
        ws = {w["name"]: w for w in json.load(f)["gpu"]}
    for arg in sys.argv[1:]:
        name, *knobs = arg.split(":")
        keys = ["COMFY_SPARSE_ATTN_CUDA_" + k.split("=")[0] for k in knobs]
        vals = [k.split("=")[1].split(",") for k in knobs]
        combos = list(itertools.product(*vals)) or [()]
        x = inputs(ws[name])
        times = {c: [] for c in combos}
        for rnd in range(8):
            for c in combos:
                os.environ.update(dict(zip(keys, c)))
                _C.cuda_knobs_reload()
                for _ in range(2 if rnd == 0 else 0):  # warm-up round
                    _native.varlen_attention(*x, check_cu_seqlens=False)
                ev = [torch.cuda.Event(enable_timing=True) for _ in range(11)]
                ev[0].record()
                for i in range(10):
                    _native.varlen_attention(*x, check_cu_seqlens=False)
                    ev[i + 1].record()
                torch.cuda.synchronize()
                if rnd > 0:
                    times[c] += [ev[i].elapsed_time(ev[i + 1]) for i in range(10)]
                for k in keys:
                    del os.environ[k]
                _C.cuda_knobs_reload()
        for c in combos:
            t = sorted(times[c])
            print("| %s | %s | %.3f | %.3f |" % (
                name, " ".join("%s=%s" % (k[len("COMFY_SPARSE_ATTN_CUDA_"):], v) for k, v in zip(keys, c)) or "default",
                t[len(t) // 2], t[len(t) // 10]))


if __name__ == "__main__":
    main()
