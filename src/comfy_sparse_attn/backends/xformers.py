"""xformers: ``memory_efficient_attention`` with a block-diagonal bias.

One packed batch of size 1 with ``BlockDiagonalMask.from_seqlens(q_lens,
kv_lens)`` (causal: ``BlockDiagonalCausalFromBottomRightMask``, bottom-right
aligned, the package's convention).  GQA uses xformers' 5-D form
``[1, T, H_kv, H / H_kv, D]`` with k / v expanded (a view, no copy).  The
bias needs the lengths on the host: dispatch's one host copy is reused.
"""
from __future__ import annotations

_fmha = None


def load():
    global _fmha
    import xformers
    from xformers.ops import fmha

    _fmha = fmha
    return getattr(xformers, "__version__", "?")


def _lengths(c):
    return [c[i + 1] - c[i] for i in range(len(c) - 1)]


def needs_host_lengths(*_):
    return True


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, host_q=None, host_kv=None, host_lengths=None, **_):
    from .sdpa import _host_values

    if _fmha is None:
        load()
    bias_mod = _fmha.attn_bias
    cls = bias_mod.BlockDiagonalCausalFromBottomRightMask if causal else bias_mod.BlockDiagonalMask
    bias = cls.from_seqlens(
        q_seqlen=_lengths(_host_values(cu_seqlens_q, host_q, host_lengths, 0)),
        kv_seqlen=_lengths(_host_values(cu_seqlens_kv, host_kv, host_lengths, 1)))
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
