"""Backend selection for dispatch_varlen_attention (foundation version).

Validation runs in C before any backend, so bad input never reaches a kernel.
Backends: ``native`` (our C / CUDA C kernels) and ``sdpa`` (per-sequence torch
SDPA, the last-resort tier that works wherever torch does).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading

from . import _native

log = logging.getLogger("comfy_sparse_attn")

ENV_BACKEND = "COMFY_SPARSE_ATTN_BACKEND"
_local = threading.local()
_last = {"backend": None, "reason": "no call yet"}


class NoCapableBackendError(RuntimeError):
    """No backend can run this call; the message lists why each declined."""


def _native_reason(q, causal, return_lse):
    from . import _C

    if q.device.type == "cuda" and not _C.have_cuda():
        return "this build has no CUDA kernels"
    if q.shape[-1] > 256:
        return "head dim %d > 256" % q.shape[-1]
    return None


def _sdpa_reason(q, causal, return_lse):
    if return_lse:
        return "per-sequence SDPA does not return the LSE"
    return None


_BACKENDS = {"native": _native_reason, "sdpa": _sdpa_reason}
_ORDER = ("native", "sdpa")


def list_backends():
    """Every backend with whether it is present and why not."""
    from . import _C

    return {
        "native": {"available": True, "cuda": bool(_C.have_cuda()), "cpu_isa": _C.cpu_isa()},
        "sdpa": {"available": True},
    }


def get_varlen_backend():
    """(name, reason) of the last dispatch on this process."""
    return _last["backend"], _last["reason"]


@contextlib.contextmanager
def use_backend(name):
    """Force a backend for calls made inside the block (this thread only)."""
    if name not in _BACKENDS:
        raise ValueError("unknown backend %r; choose from %s" % (name, ", ".join(_ORDER)))
    prev = getattr(_local, "forced", None)
    _local.forced = name
    try:
        yield
    finally:
        _local.forced = prev


def dispatch_varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                              *, softmax_scale=None, causal=False, return_lse=False,
                              backend=None, out=None):
    """Varlen attention over packed sequences, routed to the best backend.

    q: [T_q, H, D]; k: [T_kv, H_kv, D]; v: [T_kv, H_kv, D_v]; cu_seqlens_q /
    cu_seqlens_kv: int32 [B+1] cumulative lengths; max_seqlen_*: longest
    sequence.  Returns [T_q, H, D_v] in q's dtype (and float32 lse [H, T_q]
    when return_lse).
    """
    _native.validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                     softmax_scale=softmax_scale, out=out)
    forced = backend or getattr(_local, "forced", None) or os.environ.get(ENV_BACKEND) or None
    names = (forced,) if forced else _ORDER
    reasons = {}
    for name in names:
        check = _BACKENDS.get(name)
        if check is None:
            raise ValueError("unknown backend %r; choose from %s" % (name, ", ".join(_ORDER)))
        why = check(q, causal, return_lse)
        if why:
            reasons[name] = why
            continue
        _last["backend"], _last["reason"] = name, "forced" if forced else "first capable"
        if name == "native":
            return _native.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                            max_seqlen_kv, softmax_scale=softmax_scale,
                                            causal=causal, return_lse=return_lse, out=out,
                                            check_cu_seqlens=False)
        from .backends import sdpa

        return sdpa.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                     max_seqlen_kv, softmax_scale=softmax_scale, causal=causal,
                                     out=out)
    raise NoCapableBackendError("no backend can run this call: " +
                                "; ".join("%s: %s" % kv for kv in reasons.items()))
