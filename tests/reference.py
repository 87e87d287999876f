"""Float64 reference and input builders shared by the attention test suites."""
from __future__ import annotations

import math

import torch


def cu_from_lengths(lengths, device="cpu"):
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    if lengths:
        cu[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0).to(torch.int32)
    return cu.to(device)


def reference(q, k, v, cu_q, cu_kv, *, softmax_scale=None, causal=False):
    """Per-sequence float64 attention: (out [T_q, H, D_v] float64, lse [H, T_q] float64).

    Exactly DESIGN.md section 4: GQA by h // (H / H_kv), bottom-right causal,
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
