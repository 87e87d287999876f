"""Python side of the native kernels: allocate outputs, hand tensors to C.

The C core (``_C``) borrows every tensor through DLPack, validates all of it
(shapes, dtypes, devices, strides, cu_seqlens values) before any kernel runs,
and raises a ``ValueError`` / ``TypeError`` naming the bad argument.  This
module only allocates the output (and LSE), picks the thread count or CUDA
stream, and makes the host copy of ``cu_seqlens`` that lets C check device
values before a GPU kernel could read out of bounds.
"""
from __future__ import annotations

from . import _C

_export = None


def _exporter():
    """The fastest way to hand a torch tensor to C as a DLPack capsule.

    ``Tensor.__dlpack__`` is Python code that costs ~3.5 us per tensor with its
    device query; torch's own C exporter costs ~0.3 us.  Going through it also
    lets autograd-tracked inputs through (C only reads them).  Objects that are
    not torch tensors are passed as they are: C calls their ``__dlpack__``.
    """
    global _export
    if _export is None:
        import torch

        fast = getattr(torch._C, "_to_dlpack_versioned", None) or getattr(torch._C, "_to_dlpack",
                                                                           None)
        tensor = torch.Tensor

        def export(t):
            if fast is not None and isinstance(t, tensor):
                return fast(t)
            return t

        _export = export
    return _export


def _host_copies(q, cu_seqlens_q, cu_seqlens_kv, check_cu_seqlens):
    """Host copies of CUDA cu_seqlens for validation (one small D2H copy each).

    Skipped while a CUDA graph is being captured (a copy would break capture)
    or when the caller opts out; the kernels then clamp every length on the
    device, so a bad value still cannot read out of bounds.
    """
    if getattr(getattr(q, "device", None), "type", None) != "cuda" or not check_cu_seqlens:
        return None, None
    import torch

    if torch.cuda.is_current_stream_capturing():
        return None, None
    if not (isinstance(cu_seqlens_q, torch.Tensor) and isinstance(cu_seqlens_kv, torch.Tensor)
            and cu_seqlens_q.device.type == "cuda" and cu_seqlens_kv.device.type == "cuda"):
        return None, None  # wrong type or device: C reports it clearly
    both = torch.cat([cu_seqlens_q.reshape(-1), cu_seqlens_kv.reshape(-1)]).cpu()
    n = cu_seqlens_q.numel()
    return both[:n], both[n:]


_MAKE = object()  # host copies not given: make them here


def validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
             softmax_scale=None, lse=None, out=None, check_cu_seqlens=True, host_q=_MAKE,
             host_kv=_MAKE):
    """Run the C validation only (no kernel): raises on any bad argument.

    host_q / host_kv: host copies of CUDA cu_seqlens the caller already made
    (or None: values not checked on the host); by default they are made here."""
    if host_q is _MAKE or host_kv is _MAKE:
        host_q, host_kv = _host_copies(q, cu_seqlens_q, cu_seqlens_kv, check_cu_seqlens)
    hq, hk = host_q, host_kv
    x = _exporter()
    _C.attention("validate", x(q), x(k), x(v), None if out is None else x(out), x(cu_seqlens_q),
                 x(cu_seqlens_kv), int(max_seqlen_q), int(max_seqlen_kv), _scale_arg(softmax_scale),
                 False, None if lse is None else x(lse), None if hq is None else x(hq),
                 None if hk is None else x(hk), 1, 0)


def _scale_arg(softmax_scale):
    if softmax_scale is None:
        return 0.0
    s = float(softmax_scale)
    if not s > 0.0:
        raise ValueError("softmax_scale must be a positive number, got %r" % (softmax_scale,))
    return s


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
                     softmax_scale=None, causal=False, return_lse=False, num_threads=None,
                     out=None, check_cu_seqlens=True):
    """Native varlen attention (C on CPU, CUDA C on GPU).

    q: [T_q, H, D], k: [T_kv, H_kv, D], v: [T_kv, H_kv, D_v]; cu_seqlens_*: int32
    [B+1].  Returns out [T_q, H, D_v] in q's dtype, or (out, lse) with lse
    float32 [H, T_q] when return_lse.
    """
    import torch

    if q.dim() != 3 or v.dim() != 3:
        validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv)
    if out is None:
        out = torch.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype, device=q.device)
    lse = None
    if return_lse:
        lse = torch.empty((q.shape[1], q.shape[0]), dtype=torch.float32, device=q.device)
    scale = _scale_arg(softmax_scale)
    x = _exporter()
    lse_c = None if lse is None else x(lse)
    if q.device.type == "cuda":
        hq, hk = _host_copies(q, cu_seqlens_q, cu_seqlens_kv, check_cu_seqlens)
        stream = torch.cuda.current_stream(q.device).cuda_stream
        _C.attention("cuda", x(q), x(k), x(v), x(out), x(cu_seqlens_q), x(cu_seqlens_kv),
                     int(max_seqlen_q), int(max_seqlen_kv), scale, bool(causal), lse_c,
                     None if hq is None else x(hq), None if hk is None else x(hk), 1, stream)
    else:
        threads = int(num_threads) if num_threads else torch.get_num_threads()
        _C.attention("cpu", x(q), x(k), x(v), x(out), x(cu_seqlens_q), x(cu_seqlens_kv),
                     int(max_seqlen_q), int(max_seqlen_kv), scale, bool(causal), lse_c, None, None,
                     threads, 0)
    return (out, lse) if return_lse else out
