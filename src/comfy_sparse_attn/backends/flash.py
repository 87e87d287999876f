"""flash: FlashAttention's varlen forward.

FA3 (``flash_attn_interface``, Hopper builds) when it imports and the device
is SM 9.x, else FA2/FA4's ``flash_attn.flash_attn_varlen_func``.  Always
called with keyword arguments: FA4's positional order differs from FA2's.
fp16/bf16 only: a float32 call runs as bfloat16 and is cast back (what the
original package did), so its error is bf16's.  Causal is bottom-right
aligned (FlashAttention >= 2.1), the package's convention.  LSE comes
back as ``[H, T_q]`` float32 with ``return_attn_probs=True``.
"""
from __future__ import annotations

_fa2 = None
_fa3 = None


def load():
    """Import what is there (ImportError if neither); returns a version string."""
    global _fa2, _fa3
    try:
        import flash_attn_interface

        _fa3 = flash_attn_interface.flash_attn_varlen_func
    except ImportError:
        _fa3 = None
    try:
        import flash_attn

        _fa2 = flash_attn.flash_attn_varlen_func
        ver = getattr(flash_attn, "__version__", "?")
    except ImportError:
        if _fa3 is None:
            raise
        ver = None
    return ", ".join(x for x in (ver and "flash_attn " + ver, _fa3 and "FA3 interface") if x)


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, return_lse=False, **_):
    import torch

    if _fa2 is None and _fa3 is None:
        load()
    fn = _fa2
    if _fa3 is not None and (fn is None or torch.cuda.get_device_capability(q.device)[0] == 9):
        fn = _fa3
    dtype = q.dtype
    if dtype == torch.float32:
        q, k, v = q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16)
    res = fn(q=q, k=k, v=v, cu_seqlens_q=cu_seqlens_q, cu_seqlens_k=cu_seqlens_kv,
             max_seqlen_q=int(max_seqlen_q), max_seqlen_k=int(max_seqlen_kv),
             softmax_scale=float(softmax_scale) if softmax_scale else None, causal=bool(causal),
             return_attn_probs=bool(return_lse))
    lse = None
    if isinstance(res, tuple):  # FA2 with return_attn_probs, FA3 (out, lse), FA4
        res, lse = res[0], (res[1] if len(res) > 1 else None)
    if out is None:
        out = res.to(dtype) if res.dtype != dtype else res
    else:
        out.copy_(res)
    if return_lse:
        if lse is None:
            raise RuntimeError("this flash-attn build returned no LSE")
        return out, lse.float()
    return out
