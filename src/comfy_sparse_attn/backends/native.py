"""native: our own kernels (C on CPU, CUDA C on GPU) through the extension."""
from __future__ import annotations


def load():
    from .. import _C

    return "cuda kernels: %s, cpu isa: %s" % ("yes" if _C.have_cuda() else "no", _C.cpu_isa())


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, return_lse=False, host_q=None, host_kv=None, **_):
    """Dispatch validated (or sanitized) cu_seqlens already; host values it
    has are handed on so that nothing is copied twice."""
    from .. import _native

    return _native.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                    max_seqlen_kv, softmax_scale=softmax_scale, causal=causal,
                                    return_lse=return_lse, out=out, check_cu_seqlens=False,
                                    cu_seqlens_q_host=host_q, cu_seqlens_kv_host=host_kv)
