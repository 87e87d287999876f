"""sage2: SageAttention's ``sageattn_varlen`` (int8 Q.K^T, so lossy: ~1e-2).

Argument mapping (sageattention 1.0.6 / 2.x): ``sageattn_varlen(q, k, v,
cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, is_causal=,
sm_scale=, smooth_k=)``.  Its causal mask is top-left aligned ("only
applicable when qo_len == kv_len"), which dispatch.c knows.

Its ``smooth_k=True`` subtracts the mean key in place (``k -= km``), which
would change the caller's ``k``: we subtract it out of place here and pass
``smooth_k=False``.  Softmax is shift-invariant per query row, so removing
one vector common to every key changes nothing but the quantization error.
"""
from __future__ import annotations

_fn = None


def load():
    """Import the library (raises ImportError when absent); returns its version."""
    global _fn
    import sageattention

    _fn = sageattention.sageattn_varlen
    return _version()


def _version():
    try:
        from importlib.metadata import version

        return version("sageattention")
    except Exception:  # noqa: BLE001 - a version is only for display
        return "?"


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, **_):
    if _fn is None:
        load()
    k = k - k.mean(dim=0, keepdim=True)
    res = _fn(q, k, v, cu_seqlens_q, cu_seqlens_kv, int(max_seqlen_q), int(max_seqlen_kv),
              is_causal=bool(causal), sm_scale=float(softmax_scale) if softmax_scale else None,
              smooth_k=False)
    if out is None:
        return res
    out.copy_(res)
    return out
