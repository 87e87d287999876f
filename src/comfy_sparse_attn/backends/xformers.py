"""xformers: ``memory_efficient_attention`` with a block-diagonal bias.

One packed batch of size 1 with ``BlockDiagonalMask.from_seqlens(q_lens,
kv_lens)`` (causal: ``BlockDiagonalCausalFromBottomRightMask``, bottom-right
aligned as DESIGN.md section 4 wants).  GQA uses xformers' 5-D form
``[1, T, H_kv, H / H_kv, D]`` with k / v expanded (a view, no copy).  The
bias needs the lengths on the host: the validation's host copies are reused.
"""
from __future__ import annotations

_fmha = None


def load():
    global _fmha
    import xformers
    from xformers.ops import fmha

    _fmha = fmha
    return getattr(xformers, "__version__", "?")


def _lengths(cu):
    c = cu if isinstance(cu, list) else cu.tolist()
    return [c[i + 1] - c[i] for i in range(len(c) - 1)]


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, host_q=None, host_kv=None, **_):
    if _fmha is None:
        load()
    bias_mod = _fmha.attn_bias
    cls = bias_mod.BlockDiagonalCausalFromBottomRightMask if causal else bias_mod.BlockDiagonalMask
    bias = cls.from_seqlens(q_seqlen=_lengths(host_q if host_q is not None else cu_seqlens_q),
                            kv_seqlen=_lengths(host_kv if host_kv is not None else cu_seqlens_kv))
    scale = float(softmax_scale) if softmax_scale else None
    h, hkv = q.shape[1], k.shape[1]
    if h == hkv:
        res = _fmha.memory_efficient_attention(q[None], k[None], v[None], attn_bias=bias,
                                               scale=scale)[0]
    else:
        rep = h // hkv
        q5 = q.reshape(1, q.shape[0], hkv, rep, q.shape[2])
        k5 = k[None, :, :, None].expand(1, k.shape[0], hkv, rep, k.shape[2])
        v5 = v[None, :, :, None].expand(1, v.shape[0], hkv, rep, v.shape[2])
        res = _fmha.memory_efficient_attention(q5, k5, v5, attn_bias=bias, scale=scale)
        res = res.reshape(q.shape[0], h, v.shape[2])
    if out is None:
        return res
    out.copy_(res)
    return out
