"""Python side of the native kernels and of the cu_seqlens checks.

The C core (``_C``) borrows every tensor through DLPack, validates all of it
(shapes, dtypes, devices, strides, cu_seqlens values where they are on the
host) before any kernel runs, and raises a ``ValueError`` / ``TypeError``
naming the bad argument.  This module allocates the output (and LSE), picks
the thread count or CUDA stream, and owns the two ways device ``cu_seqlens``
are kept from reading out of bounds:

* host check: one device-to-host copy of both arrays (a sync), every value
  checked in C before anything runs; the error is raised by that call;
* device sanitizer (``_C.cuda_sanitize_cu_seqlens``, CUDA builds): one small
  kernel, no sync, writes clamped copies that every backend reads and ORs
  what was wrong into a per-device flag in pinned host memory.  The flag is
  read (a plain memory read, no sync) at the start of the next call on that
  device, and by :func:`check_cu_seqlens_errors`, which synchronizes first.
"""
from __future__ import annotations

import ctypes
import weakref

from . import _C

_export = None


def _exporter():
    """The fastest way to hand a torch tensor to C as a DLPack capsule.

    ``Tensor.__dlpack__`` is Python code that queries the device each time;
    torch's own C exporter is several times cheaper and also lets
    autograd-tracked inputs through (C only reads them).  Objects that are
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


# ---------------------------------------------------------------------------
# Host copies (one D2H copy for both arrays).
# ---------------------------------------------------------------------------
# Host copies of device cu_seqlens, remembered per pair of tensors: inside a
# model every layer passes the same cu_seqlens tensors, and a path that reads
# the lengths on the host (per-sequence SDPA, xformers) would otherwise copy
# them -- a sync that drains the GPU queue -- at every layer.  A copy is
# reused only for the very same tensor objects (weak references: a new
# tensor at a recycled address is another object) whose version counters
# have not moved: torch bumps a tensor's (and its views') counter on every
# in-place write it performs, so a changed value is copied again.  Writes
# torch does not see (through a raw pointer or a DLPack consumer) are not
# noticed: check_cu_seqlens=True always copies afresh.  Inference tensors
# (made under torch.inference_mode(), as in ComfyUI) keep no version
# counter, so nothing would tell a change: they are copied at every call.
_host_cache = {}  # (id(cu_q), id(cu_kv)) -> (weakref q, weakref kv, versions, host q, host kv)
_HOST_CACHE_MAX = 64


def host_copies(cu_seqlens_q, cu_seqlens_kv, fresh=False):
    """CPU copies of both cu_seqlens in one device-to-host copy (a sync; none
    when the same tensors, unchanged, were copied before and not ``fresh``),
    or (None, None) when they are not int32 device tensors (validation then
    names what is wrong with them) or a CUDA graph is being captured."""
    import torch

    if not (isinstance(cu_seqlens_q, torch.Tensor) and isinstance(cu_seqlens_kv, torch.Tensor)
            and cu_seqlens_q.dtype == torch.int32 and cu_seqlens_kv.dtype == torch.int32
            and cu_seqlens_q.dim() == 1 and cu_seqlens_kv.dim() == 1):
        return None, None
    if cu_seqlens_q.device.type == "cpu":
        return cu_seqlens_q.contiguous(), cu_seqlens_kv.contiguous()
    if cu_seqlens_q.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return None, None
    return remembered_host_copies(cu_seqlens_q, cu_seqlens_kv, fresh, _copy_to_host)


def _copy_to_host(cu_seqlens_q, cu_seqlens_kv):
    import torch

    both = torch.cat([cu_seqlens_q, cu_seqlens_kv.to(cu_seqlens_q.device)]).cpu()
    n = cu_seqlens_q.shape[0]
    return both[:n], both[n:]


def remembered_host_copies(cu_q, cu_kv, fresh, copy):
    """copy(cu_q, cu_kv), or what it gave for these very tensors, unchanged
    since (see above); fresh: always copy (and remember the new copy)."""
    key = (id(cu_q), id(cu_kv))
    try:
        versions = (cu_q._version, cu_kv._version)
    except RuntimeError:  # inference tensors: no version counter, nothing remembered
        versions = None
    got = None if fresh or versions is None else _host_cache.get(key)
    if got is not None and got[0]() is cu_q and got[1]() is cu_kv and got[2] == versions:
        return got[3], got[4]
    hq, hk = copy(cu_q, cu_kv)
    if versions is not None:
        if len(_host_cache) >= _HOST_CACHE_MAX:
            _host_cache.clear()
        try:
            _host_cache[key] = (weakref.ref(cu_q), weakref.ref(cu_kv), versions, hq, hk)
        except TypeError:  # a tensor subclass without weak references: not remembered
            pass
    return hq, hk


# ---------------------------------------------------------------------------
# Device sanitizer and its per-device violation flag.
# ---------------------------------------------------------------------------
_flags = {}  # cuda device index -> (pinned int32 [1] tensor, ctypes view of it, its capsule)

# Bits of the flag, as the extension exports them (CU_Q_START, ...); the
# sanitizer's contract (bits 0-3 for q, 8-11 for kv) where it does not.
_VIOLATIONS = (("START", 0, "{cu}[0] != 0"), ("DECREASE", 1, "{cu} decreases"),
               ("TOTAL", 2, "{cu}[-1] != {t} (the number of packed tokens)"),
               ("MAXLEN", 3, "a sequence is longer than {m}"))


def have_sanitizer():
    return hasattr(_C, "cuda_sanitize_cu_seqlens")


def _flag(index):
    """(pinned flag tensor, ctypes int32 view, DLPack capsule) of a device.

    The capsule is made once: C only borrows it (never consumes it), and the
    flag tensor lives as long as the process."""
    got = _flags.get(index)
    if got is None:
        import torch

        t = torch.zeros(1, dtype=torch.int32, pin_memory=True)
        got = _flags.setdefault(index, (t, ctypes.c_int32.from_address(t.data_ptr()),
                                        _exporter()(t)))
    return got


# Current CUDA stream of a device as a raw handle.  torch.cuda.current_stream()
# builds a Stream object on every call; torch's C getter returns the integer.
_raw_stream_fn = None


def raw_stream(index):
    """cudaStream_t (as an int) of the current stream on CUDA device ``index``."""
    global _raw_stream_fn
    fn = _raw_stream_fn
    if fn is None:
        import torch

        fn = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        if fn is None:
            def fn(idx):
                return torch.cuda.current_stream(idx).cuda_stream
        _raw_stream_fn = fn
    return fn(index)


_capturing_fn = None


def capturing():
    """Whether the current CUDA stream is capturing a graph."""
    global _capturing_fn
    fn = _capturing_fn
    if fn is None:
        import torch

        fn = getattr(torch._C, "_cuda_isCurrentStreamCapturing", None) or \
            torch.cuda.is_current_stream_capturing
        _capturing_fn = fn
    return fn()


# Where the sanitizer writes its clamped copies: one int32 buffer per
# (device, stream), grown on demand, reused by every later call on that
# stream.  Reuse is safe because every reader of a call's copies (the
# kernel, a library's varlen op) runs on the same stream as the sanitizer:
# stream order puts call n+1's sanitizer after call n's readers.  A buffer
# is never shared between streams (that would race), and while a CUDA graph
# is captured each call gets a fresh buffer from torch's allocator (the
# graph keeps its own memory; a replay must not share ours).
_scratch = {}  # (device index, stream) -> (int32 tensor, its capsule, entries, {n: views})


def scratch(device, stream, n):
    """(capsule, q view, kv view) of an int32 buffer of >= 2n entries for
    sanitizing B + 1 = n entries on ``device`` / ``stream``; the views are
    its first two runs of n entries (made once per n)."""
    got = _scratch.get((device.index, stream))
    if got is not None and got[2] >= 2 * n and not capturing():
        views = got[3].get(n)
        if views is None:
            if len(got[3]) > 64:
                got[3].clear()
            views = got[3][n] = (got[0][:n], got[0][n:2 * n])
        return got[1], views[0], views[1]
    import torch

    if capturing():
        t = torch.empty(2 * n, dtype=torch.int32, device=device)
        return _exporter()(t), t[:n], t[n:]
    size = max(2 * n, 256)
    if got is not None:
        size = max(size, 2 * got[2])
    t = torch.empty(size, dtype=torch.int32, device=device)
    _scratch[(device.index, stream)] = (t, _exporter()(t), size, {})
    return scratch(device, stream, n)


def describe_violations(bits, device="cuda"):
    """The ValueError text for a sanitizer flag value."""
    what = []
    for which, shift, cu, t, m in (("Q", 0, "cu_seqlens_q", "T_q", "max_seqlen_q"),
                                   ("KV", 8, "cu_seqlens_kv", "T_kv", "max_seqlen_kv")):
        for name, bit, text in _VIOLATIONS:
            mask = getattr(_C, "CU_%s_%s" % (which, name), 1 << (bit + shift))
            if bits & mask:
                what.append(text.format(cu=cu, t=t, m=m))
    return ("invalid cu_seqlens in an earlier attention call on %s: %s.  That call read "
            "clamped lengths (no out-of-bounds access) and its output is not meaningful; pass "
            "check_cu_seqlens=True to raise in the faulty call itself"
            % (device, "; ".join(what) or "flags 0x%x" % bits))


def raise_pending(device):
    """Raise the ValueError recorded on ``device`` by earlier sanitizer runs
    that have finished, and clear it.  No sync: reads pinned host memory."""
    got = _flags.get(device.index)
    if got is None:
        return
    bits = got[1].value
    if bits:
        got[1].value = 0
        raise ValueError(describe_violations(bits, "cuda:%s" % device.index))


def check_cu_seqlens_errors(device=None):
    """Synchronize ``device`` (default: the current CUDA device) and raise the
    ``ValueError`` of any call whose cu_seqlens the device sanitizer found
    invalid since the last report.  Does nothing without CUDA."""
    import torch

    if not torch.cuda.is_available():
        return
    device = torch.device("cuda", torch.cuda.current_device()) if device is None else \
        torch.device(device)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    torch.cuda.synchronize(device)
    raise_pending(device)


def sanitize(q, k, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv):
    """Clamped copies of CUDA cu_seqlens for every backend to read: one kernel
    on the current stream, no sync, written into the stream's scratch buffer.
    Violations go to the device's flag."""
    dev = q.device
    n = cu_seqlens_q.shape[0]
    if dev.type == "cuda":
        stream = raw_stream(dev.index)
        _, sq, skv = scratch(dev, stream, n)
    else:  # a stand-in sanitizer (tests): no stream, a buffer of its own
        import torch

        stream = 0
        buf = torch.empty(2 * n, dtype=torch.int32, device=dev)
        sq, skv = buf[:n], buf[n:]
    x = _exporter()
    _C.cuda_sanitize_cu_seqlens(x(cu_seqlens_q), x(cu_seqlens_kv), x(sq), x(skv),
                                _flag(dev.index)[2], int(q.shape[0]), int(k.shape[0]),
                                int(max_seqlen_q), int(max_seqlen_kv), stream)
    return sq, skv


# ---------------------------------------------------------------------------
# Validation and the native call.
# ---------------------------------------------------------------------------
_MAKE = object()  # host copies not given: make them here


def validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
             softmax_scale=None, lse=None, out=None, check_cu_seqlens=True, host_q=_MAKE,
             host_kv=_MAKE):
    """Run the C validation only (no kernel): raises on any bad argument.

    host_q / host_kv: host copies of device cu_seqlens the caller already made
    (or None: values not checked on the host); by default they are made here
    when check_cu_seqlens."""
    if host_q is _MAKE or host_kv is _MAKE:
        host_q = host_kv = None
        if check_cu_seqlens and getattr(getattr(cu_seqlens_q, "device", None), "type",
                                        "cpu") != "cpu":
            host_q, host_kv = host_copies(cu_seqlens_q, cu_seqlens_kv, fresh=True)
    x = _exporter()
    _C.attention("validate", q=x(q), k=x(k), v=x(v), out=None if out is None else x(out),
                 cu_seqlens_q=x(cu_seqlens_q), cu_seqlens_kv=x(cu_seqlens_kv),
                 max_seqlen_q=int(max_seqlen_q), max_seqlen_kv=int(max_seqlen_kv),
                 softmax_scale=_scale_arg(softmax_scale), lse=None if lse is None else x(lse),
                 cu_seqlens_q_host=None if host_q is None else x(host_q),
                 cu_seqlens_kv_host=None if host_kv is None else x(host_kv))


def _scale_arg(softmax_scale):
    if softmax_scale is None:
        return 0.0
    s = float(softmax_scale)
    if not s > 0.0:
        raise ValueError("softmax_scale must be a positive number, got %r" % (softmax_scale,))
    return s


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
                     softmax_scale=None, causal=False, return_lse=False, out=None,
                     num_threads=None, check_cu_seqlens=True, cu_seqlens_q_host=None,
                     cu_seqlens_kv_host=None):
    """Native varlen attention (C on CPU, CUDA C on GPU).

    q: [T_q, H, D], k: [T_kv, H_kv, D], v: [T_kv, H_kv, D_v]; cu_seqlens_*: int32
    [B+1].  Returns out [T_q, H, D_v] in q's dtype, or (out, lse) with lse
    float32 [H, T_q] when return_lse.  CUDA cu_seqlens: values given in
    cu_seqlens_*_host (CPU int32) are checked; else check_cu_seqlens=True
    copies them to the host (one sync) to check them; with False the kernel
    clamps every length on the device.
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
        hq, hk = cu_seqlens_q_host, cu_seqlens_kv_host
        if hq is None and check_cu_seqlens:
            hq, hk = host_copies(cu_seqlens_q, cu_seqlens_kv, fresh=True)
        stream = raw_stream(q.device.index)
        _C.attention("cuda", q=x(q), k=x(k), v=x(v), out=x(out), cu_seqlens_q=x(cu_seqlens_q),
                     cu_seqlens_kv=x(cu_seqlens_kv), max_seqlen_q=int(max_seqlen_q),
                     max_seqlen_kv=int(max_seqlen_kv), softmax_scale=scale, causal=bool(causal),
                     lse=lse_c, cu_seqlens_q_host=None if hq is None else x(hq),
                     cu_seqlens_kv_host=None if hk is None else x(hk), stream=stream)
    else:
        threads = int(num_threads) if num_threads else torch.get_num_threads()
        _C.attention("cpu", q=x(q), k=x(k), v=x(v), out=x(out), cu_seqlens_q=x(cu_seqlens_q),
                     cu_seqlens_kv=x(cu_seqlens_kv), max_seqlen_q=int(max_seqlen_q),
                     max_seqlen_kv=int(max_seqlen_kv), softmax_scale=scale, causal=bool(causal),
                     lse=lse_c, num_threads=threads)
    return (out, lse) if return_lse else out
