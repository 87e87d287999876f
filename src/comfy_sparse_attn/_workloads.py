"""The standard varlen-attention workloads (``workloads.json``, shipped with the package).

One list, used by ``python -m comfy_sparse_attn bench``, the scripts in ``bench/`` and the
tests.  Two sections: ``"gpu"`` and ``"cpu"`` (CPU-sized versions of the same shapes).

Length rule: a literal list, or ``{n, lo, hi, seed}`` meaning one ``random.Random(seed)``
drawing ``n`` values with ``.randint(lo, hi)`` in order (the same lengths on every machine
and Python version); kv lengths default to the q lengths (self-attention).
FLOPs = 4 * sum(Lq_i * Lkv_i) * H * D (non-causal).
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads.json")
SECTIONS = ("gpu", "cpu")


def lengths(spec):
    """A length spec (list, or {n, lo, hi, seed}) -> list of ints; None stays None."""
    if spec is None:
        return None
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
        """One short line: the sequences, heads and head dim."""
        n = len(self.q_lens)
        if n <= 3:
            seqs = "q " + "/".join(map(str, self.q_lens))
            if self.kv_lens != self.q_lens:
                seqs += ", kv " + "/".join(map(str, self.kv_lens))
        else:
            lo, hi = min(self.q_lens), max(self.q_lens)
            seqs = "%d seqs of %s" % (n, lo if lo == hi else "%d-%d" % (lo, hi))
        heads = "H%d" % self.H if self.H == self.H_kv else "H%d/%d" % (self.H, self.H_kv)
        return "%s, %s D%d" % (seqs, heads, self.D)


def read(path=None):
    """The raw JSON document (default: the package's own workloads.json)."""
    with open(path or DEFAULT_PATH) as f:
        return json.load(f)


def load(section, path=None):
    """The workloads of one section as Workload objects, in file order."""
    out = []
    for w in read(path)[section]:
        q = lengths(w["q"])
        kv = lengths(w.get("kv"))
        dt = w["dtype"] if isinstance(w["dtype"], list) else [w["dtype"]]
        out.append(Workload(w["name"], q, list(q) if kv is None else kv, w["H"], w["H_kv"],
                            w["D"], list(dt)))
    return out


def cu_seqlens(lens, device="cpu"):
    """int32 [B+1] cumulative lengths."""
    import torch

    cu = torch.zeros(len(lens) + 1, dtype=torch.int32)
    if lens:
        cu[1:] = torch.tensor(lens, dtype=torch.int64).cumsum(0).to(torch.int32)
    return cu.to(device)


def make_inputs(w, dtype, device="cpu", seed=0):
    """Packed q [T_q, H, D], k/v [T_kv, H_kv, D], both cu_seqlens and max lengths, drawn
    from a CPU generator seeded with ``seed`` (the same numbers on every device)."""
    import torch

    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    g = torch.Generator(device="cpu").manual_seed(seed)
    q = torch.randn(w.total_q, w.H, w.D, generator=g).to(device=device, dtype=dtype)
    k = torch.randn(w.total_kv, w.H_kv, w.D, generator=g).to(device=device, dtype=dtype)
    v = torch.randn(w.total_kv, w.H_kv, w.D, generator=g).to(device=device, dtype=dtype)
    return (q, k, v, cu_seqlens(w.q_lens, device), cu_seqlens(w.kv_lens, device),
            max(w.q_lens, default=0), max(w.kv_lens, default=0))
