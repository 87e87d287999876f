"""One native call per named workload of peers' workloads.json, for
`ncu -k regex:csa__attn_fwd` (stall reasons, pipe use) on the device:

    python3 bench/gpu/profile_case.py slat-self tiny-seqs patches-hd16
"""
import json
import os
import random
import sys

import torch

from comfy_sparse_attn import _native

HERE = os.path.dirname(os.path.abspath(__file__))
W = os.path.join(HERE, "..", "..", ".carry", "bench", "workloads.json")


def lengths(spec):
    if spec is None or isinstance(spec, list):
        return spec
    rng = random.Random(spec["seed"])
    return [rng.randint(spec["lo"], spec["hi"]) for _ in range(spec["n"])]


def main():
    with open(W) as f:
        ws = {w["name"]: w for w in json.load(f)["gpu"]}
    for name in sys.argv[1:]:
        w = ws[name]
        lq = lengths(w["q"])
        lk = lengths(w["kv"]) or lq
        dt = getattr(torch, w["dtype"])
        q = torch.randn(sum(lq), w["H"], w["D"], device="cuda", dtype=dt)
        k = torch.randn(sum(lk), w["H_kv"], w["D"], device="cuda", dtype=dt)
        v = torch.randn(sum(lk), w["H_kv"], w["D"], device="cuda", dtype=dt)
        cq = torch.tensor([0] + lq, device="cuda").cumsum(0).to(torch.int32)
        ck = torch.tensor([0] + lk, device="cuda").cumsum(0).to(torch.int32)
        _native.varlen_attention(q, k, v, cq, ck, max(lq), max(lk), check_cu_seqlens=False)
        torch.cuda.synchronize()
        print(name, "done")


if __name__ == "__main__":
    main()
