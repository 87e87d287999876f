"""Per-sequence torch SDPA: the path that works wherever torch does.

Each packed sequence becomes one ``F.scaled_dot_product_attention`` call on
views of the packed tensors, so memory stays O(T): no ``[T_q, T_kv]`` mask is
ever built.  Causal with ``L_q != L_kv`` is bottom-right aligned (query row i
sees key j iff j <= i + L_kv - L_q); SDPA's own ``is_causal`` is top-left, so
that case runs in query chunks with a boolean mask of at most
``_CHUNK x L_kv`` per chunk.
"""
from __future__ import annotations

_CHUNK = 1024


def _sdpa_kwargs_support():
    import inspect

    import torch.nn.functional as F

    try:
        params = inspect.signature(F.scaled_dot_product_attention).parameters
        return "enable_gqa" in params
    except (TypeError, ValueError):  # builtins without a signature: try it
        return True


_HAS_GQA = None


def _attend(qh, kh, vh, scale, mask=None, is_causal=False):
    """qh [H, Lq, D], kh/vh [H_kv, Lk, D]: SDPA with GQA handled."""
    import torch.nn.functional as F

    global _HAS_GQA
    rep = qh.shape[0] // kh.shape[0]
    if rep > 1:
        if _HAS_GQA is None:
            _HAS_GQA = _sdpa_kwargs_support()
        if _HAS_GQA:
            return F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, is_causal=is_causal,
                                                  scale=scale, enable_gqa=True)
        kh = kh.repeat_interleave(rep, 0)
        vh = vh.repeat_interleave(rep, 0)
    return F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, is_causal=is_causal,
                                          scale=scale)


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
                     softmax_scale=None, causal=False, out=None):
    import torch

    d = q.shape[-1]
    scale = float(softmax_scale) if softmax_scale else d ** -0.5
    if out is None:
        out = torch.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype, device=q.device)
    cq = cu_seqlens_q.tolist()
    ck = cu_seqlens_kv.tolist()
    for i in range(len(cq) - 1):
        a, b, c, e = cq[i], cq[i + 1], ck[i], ck[i + 1]
        lq, lk = b - a, e - c
        if lq == 0:
            continue
        if lk == 0:
            out[a:b].zero_()
            continue
        qh = q[a:b].transpose(0, 1)
        kh = k[c:e].transpose(0, 1)
        vh = v[c:e].transpose(0, 1)
        if not causal or lq == lk:
            o = _attend(qh, kh, vh, scale, is_causal=bool(causal))
            out[a:b] = o.transpose(0, 1)
            continue
        # Bottom-right causal: row r sees keys [0, r + off]; rows with
        # r + off < 0 see nothing and output zeros.
        off = lk - lq
        first = max(0, -off)
        if first > 0:
            out[a:a + min(first, lq)].zero_()
        for r0 in range(first, lq, _CHUNK):
            r1 = min(lq, r0 + _CHUNK)
            kmax = r1 - 1 + off + 1  # keys visible to the chunk's last row
            rows = torch.arange(r0, r1, device=q.device)[:, None]
            cols = torch.arange(kmax, device=q.device)[None, :]
            mask = cols <= rows + off
            o = _attend(qh[:, r0:r1], kh[:, :kmax], vh[:, :kmax], scale, mask=mask)
            out[a + r0:a + r1] = o.transpose(0, 1)
    return out
