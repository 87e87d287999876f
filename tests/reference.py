"""Float64 reference, input builders and case tables shared by the attention test suites.

- ``reference`` / ``rel_err`` / ``TOL``: the float64 per-sequence math every backend is
  compared with (docs/ARCHITECTURE.md, "The contract"), and the tolerance per dtype.
- ``CPU_CASES`` / ``GPU_CASES``: the odd shapes every backend must take (head dims 16 to
  256, D_v != D, GQA / MQA, cross lengths, zero-length sequences, B = 1, strided views,
  thousands of tiny sequences); GPU cases are longer so that tiles fill.
- ``build_case(table, name, ...)``: one case's inputs; ``case_seed(name, ...)``: a seed
  that depends only on its arguments (never ``hash(str)``, which changes per process).
- ``poisoned(q, v)``: an output tensor full of NaN, so a backend that skips a row fails.
"""
from __future__ import annotations

import math
import zlib

import torch


def cu_from_lengths(lengths, device="cpu"):
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    if lengths:
        cu[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0).to(torch.int32)
    return cu.to(device)


def reference(q, k, v, cu_q, cu_kv, *, softmax_scale=None, causal=False):
    """Per-sequence float64 attention: (out [T_q, H, D_v] float64, lse [H, T_q] float64).

    The contract of docs/ARCHITECTURE.md: GQA by h // (H / H_kv), bottom-right causal,
    rows with no visible key give zeros and lse = -inf.
    """
    q64, k64, v64 = q.double().cpu(), k.double().cpu(), v.double().cpu()
    tq, h, d = q64.shape
    hkv, dv = k64.shape[1], v64.shape[2]
    scale = softmax_scale if softmax_scale else 1.0 / math.sqrt(d)
    out = torch.zeros(tq, h, dv, dtype=torch.float64)
    lse = torch.full((h, tq), -math.inf, dtype=torch.float64)
    a, b = cu_q.tolist(), cu_kv.tolist()
    rep = h // hkv
    for s in range(len(a) - 1):
        lq, lk = a[s + 1] - a[s], b[s + 1] - b[s]
        if lq == 0 or lk == 0:
            continue
        qs = q64[a[s]:a[s + 1]].transpose(0, 1)                       # [H, Lq, D]
        ks = k64[b[s]:b[s + 1]].transpose(0, 1).repeat_interleave(rep, 0)  # [H, Lk, D]
        vs = v64[b[s]:b[s + 1]].transpose(0, 1).repeat_interleave(rep, 0)
        scores = scale * qs @ ks.transpose(1, 2)                        # [H, Lq, Lk]
        if causal:
            i = torch.arange(lq)[:, None]
            j = torch.arange(lk)[None, :]
            scores = scores.masked_fill(j > i + (lk - lq), -math.inf)
        m = scores.amax(-1, keepdim=True)
        ok = torch.isfinite(m)
        m = torch.where(ok, m, torch.zeros_like(m))
        p = torch.exp(scores - m)
        z = p.sum(-1, keepdim=True)
        o = (p @ vs) / torch.where(z > 0, z, torch.ones_like(z))
        out[a[s]:a[s + 1]] = o.transpose(0, 1)
        lse[:, a[s]:a[s + 1]] = torch.where(ok[..., 0], (m + torch.log(z))[..., 0],
                                            torch.full_like(m[..., 0], -math.inf))
    return out, lse


def rel_err(out, ref):
    out = out.double().cpu()
    if not torch.isfinite(out).all():
        return math.inf
    denom = ref.norm()
    if denom == 0:
        return out.norm().item()
    return ((out - ref).norm() / denom).item()


TOL = {torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def make_case(lq, lk=None, *, h=4, hkv=None, d=32, dv=None, dtype=torch.float32,
              device="cpu", seed=0, packed_qkv=False):
    """Random packed inputs; packed_qkv gives q/k/v as unbind views of [T, 3, H, D]."""
    lk = lq if lk is None else lk
    hkv = hkv or h
    dv = dv or d
    g = torch.Generator().manual_seed(seed)
    tq, tk = sum(lq), sum(lk)
    if packed_qkv:
        assert lq == lk and hkv == h and dv == d
        qkv = torch.randn(tq, 3, h, d, generator=g, dtype=torch.float32).to(dtype).to(device)
        q, k, v = qkv.unbind(1)
    else:
        q = torch.randn(tq, h, d, generator=g).to(dtype).to(device)
        k = torch.randn(tk, hkv, d, generator=g).to(dtype).to(device)
        v = torch.randn(tk, hkv, dv, generator=g).to(dtype).to(device)
    return (q, k, v, cu_from_lengths(lq, device), cu_from_lengths(lk, device),
            max(lq, default=0), max(lk, default=0))


SAGE_TOL = 5e-2  # int8-quantized Q.K^T (sage2)

# The odd shapes, once: name -> (spec for CPU runs, what GPU runs change).  CPU specs are
# small (the whole table runs in seconds on two cores); GPU runs lengthen the sequences so
# that tiles fill.
_CASES = {
    "basic": (dict(lq=[5, 17, 1, 33], d=32), {}),
    "B=1": (dict(lq=[40], d=64), dict(lq=[300])),
    "gqa": (dict(lq=[7, 9], h=8, hkv=2, d=16), dict(lq=[7, 90], d=64)),
    "mqa": (dict(lq=[7, 9], h=4, hkv=1, d=40), dict(lq=[70, 9])),
    "dv != d": (dict(lq=[6, 11], d=72, dv=24), dict(lq=[6, 110])),
    "cross lengths": (dict(lq=[3, 20, 8], lk=[15, 2, 8], d=96), dict(lq=[3, 200, 8],
                                                                    lk=[150, 2, 8])),
    "zero-length": (dict(lq=[0, 4, 0, 3, 0], lk=[2, 0, 0, 5, 3], d=16),
                    dict(lq=[0, 40, 0, 3, 0], lk=[20, 0, 0, 50, 3], d=64)),
    "d16": (dict(lq=[9, 4], d=16, h=2), dict(lq=[129, 4])),
    "d40": (dict(lq=[9, 4], d=40, h=2), dict(lq=[9, 77])),
    "d128": (dict(lq=[9, 4], d=128, h=2), dict(lq=[129, 64])),
    "d160": (dict(lq=[9, 4], d=160, h=2), dict(lq=[9, 100])),
    "d256": (dict(lq=[9, 4], d=256, h=2), dict(lq=[9, 70])),
    "packed qkv views": (dict(lq=[12, 5, 30], d=64, packed_qkv=True), dict(lq=[12, 5, 300])),
    "many tiny": (dict(lq=[1 + (i * 7) % 9 for i in range(1500)], d=16, h=2),
                  dict(lq=[1 + (i * 7) % 40 for i in range(1500)], d=64, h=4)),
    "many windows": (dict(lq=[16 + (i * 37) % 97 for i in range(40)], d=64, h=4),
                     dict(lq=[16 + (i * 37) % 497 for i in range(40)])),
}
CPU_CASES = {name: cpu for name, (cpu, _) in _CASES.items()}
GPU_CASES = {name: dict(cpu, **gpu) for name, (cpu, gpu) in _CASES.items()}

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def case_seed(*parts):
    """A seed from the case's name and options, the same in every process and on every
    machine (CRC-32 of their text; ``hash(str)`` is salted per process)."""
    return zlib.crc32(repr(parts).encode()) % 100_000


def build_case(table, name, *, dtype=torch.float32, device="cpu", seed=None):
    """make_case for ``table[name]``; the seed defaults to ``case_seed(name, dtype)``."""
    spec = dict(table[name])
    lq = spec.pop("lq")
    lk = spec.pop("lk", None)
    if seed is None:
        seed = case_seed(name, str(dtype))
    return make_case(lq, lk, dtype=dtype, device=device, seed=seed, **spec)


def poisoned(q, v):
    """An output buffer [T_q, H, D_v] of q's dtype and device, full of NaN."""
    return torch.full((q.shape[0], q.shape[1], v.shape[2]), math.nan, dtype=q.dtype,
                      device=q.device)
