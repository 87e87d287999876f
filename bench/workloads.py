"""The standard varlen-attention workloads (workloads.json), as tensors.

Shared by the CPU benchmark (bench_cpu.py) and the GPU one: ``load("cpu")``
or ``load("gpu")`` gives Workload objects, ``make_inputs`` the packed q, k, v
and cu_seqlens for one dtype and device.

Length rule (identical to shared/bench/workloads.json): a literal list, or
{n, lo, hi, seed} meaning one random.Random(seed) drawing n values with
.randint(lo, hi) in order; kv lengths default to the q lengths.
FLOPs = 4 * sum(Lq_i * Lkv_i) * H * D (non-causal).
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PATH = os.path.join(HERE, "workloads.json")


def lengths(spec):
    """A length spec -> list of ints (see the module docstring)."""
    if isinstance(spec, dict):
        rng = random.Random(spec["seed"])
        return [rng.randint(spec["lo"], spec["hi"]) for _ in range(spec["n"])]
    return [int(x) for x in spec]


@dataclass
class Workload:
    name: str
    q_lens: list
    kv_lens: list
    H: int
    H_kv: int
    D: int
    dtypes: list

    @property
    def flops(self):
        return 4 * sum(a * b for a, b in zip(self.q_lens, self.kv_lens)) * self.H * self.D

    @property
    def total_q(self):
        return sum(self.q_lens)

    @property
    def total_kv(self):
        return sum(self.kv_lens)

    def describe(self):
        n = len(self.q_lens)
        if n <= 3:
            seqs = "q " + "/".join(map(str, self.q_lens))
            if self.kv_lens != self.q_lens:
                seqs += ", kv " + "/".join(map(str, self.kv_lens))
        else:
            seqs = "%d seqs of %d-%d" % (n, min(self.q_lens), max(self.q_lens))
        return "%s, H%d D%d" % (seqs, self.H, self.D)


def load(section, path=DEFAULT_PATH):
    with open(path) as f:
        data = json.load(f)
    out = []
    for w in data[section]:
        q = lengths(w["q"])
        kv = lengths(w["kv"]) if w.get("kv") is not None else list(q)
        dt = w["dtype"] if isinstance(w["dtype"], list) else [w["dtype"]]
        out.append(Workload(w["name"], q, kv, w["H"], w["H_kv"], w["D"], dt))
    return out


def cu_seqlens(lens, device="cpu"):
    import torch

    cu = [0]
    for n in lens:
        cu.append(cu[-1] + n)
    return torch.tensor(cu, dtype=torch.int32, device=device)


def make_inputs(w, dtype, device="cpu", seed=0):
    """Packed q [T_q, H, D], k/v [T_kv, H_kv, D], cu_seqlens, max lengths."""
    import torch

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    g = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(w.total_q, w.H, w.D, generator=g).to(device=device, dtype=dtype)
    k = torch.randn(w.total_kv, w.H_kv, w.D, generator=g).to(device=device, dtype=dtype)
    v = torch.randn(w.total_kv, w.H_kv, w.D, generator=g).to(device=device, dtype=dtype)
    return (q, k, v, cu_seqlens(w.q_lens, device), cu_seqlens(w.kv_lens, device),
            max(w.q_lens), max(w.kv_lens))
