"""Backend dispatch for ``dispatch_varlen_attention``, decided per call.

Python gathers the facts only Python can see: which libraries import (once
per process), the compute capability of the tensor's *own* device, ComfyUI's
attention flags, whether autograd is recording, and the overrides.  The C
core (``csrc/core/dispatch.c``) holds every backend's constraints as data and
returns the candidates in priority order plus, for each backend left out, the
reason.  That answer is cached per input signature (device, dtype, D, D_v,
H, H_kv, causal, LSE, grad, overrides), so a repeated call costs a dict
lookup.

Order of work in a call:
1. validation in C (DESIGN.md section 5) before any backend runs; for the
   native backend the kernel's own entry point does exactly this check
   before touching anything, so it is not done twice;
2. the cached candidate list for the signature;
3. the first candidate runs; one that raises on valid input is reported once
   (a warning naming it and the error), skipped for that signature from
   then on, and the next candidate runs;
4. no candidate left: ``NoCapableBackendError`` listing every backend and
   why it declined or failed.

Overrides, strongest first: ``backend=`` argument, ``use_backend(...)``
context (this thread), the ``COMFY_SPARSE_ATTN_BACKEND`` environment
variable, ComfyUI's explicit flags.  ``COMFY_SPARSE_ATTN_EXACT=1`` or
``use_backend(exact=True)`` excludes lossy backends (sage2).
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading

from . import _C, _comfy, _native

log = logging.getLogger("comfy_sparse_attn")

ENV_BACKEND = "COMFY_SPARSE_ATTN_BACKEND"
ENV_EXACT = "COMFY_SPARSE_ATTN_EXACT"

BACKENDS = tuple(_C.dispatch_backends())      # names by backend id (C order)
_ID = {name: i for i, name in enumerate(BACKENDS)}
_AUTO = ("", "auto", None)
_DEVICE_CODE = {"cpu": 1, "cuda": 2}
_LIBRARY_BACKENDS = ("sage2", "flash", "xformers")

_local = threading.local()
_lock = threading.Lock()


class NoCapableBackendError(RuntimeError):
    """No backend can run this call; the message lists why each declined."""


BackendChoice = collections.namedtuple("BackendChoice", "backend reason declined signature")
BackendChoice.__doc__ = """The last dispatch decision: backend name, why it was chosen, a
dict {backend: why it was not chosen} and the input signature it was cached under."""

_last = BackendChoice(None, "no call yet", {}, None)


# ---------------------------------------------------------------------------
# Facts: libraries (imported once), devices, dtypes.
# ---------------------------------------------------------------------------
_loaded = {}        # backend -> (ok: bool, version or error text)
_sm_cache = {}      # cuda device index -> major*10+minor
_dtype_code = None  # torch dtype -> csa_dtype


_adapters = {}


def _adapter(name):
    mod = _adapters.get(name)
    if mod is None:
        mod = _adapters[name] = _adapter_module(name)
    return mod


def _adapter_module(name):
    if name == "sdpa":
        from .backends import sdpa

        return sdpa
    if name == "native":
        from .backends import native

        return native
    if name == "sage2":
        from .backends import sage2

        return sage2
    if name == "flash":
        from .backends import flash

        return flash
    from .backends import xformers

    return xformers


def _probe(name):
    """(available, version or why not) of a backend's library, imported once."""
    got = _loaded.get(name)
    if got is not None:
        return got
    with _lock:
        got = _loaded.get(name)
        if got is None:
            if name == "sdpa":
                try:
                    import torch

                    got = (True, "torch " + torch.__version__)
                except ImportError as e:
                    got = (False, "torch does not import: %s" % e)
            else:
                try:
                    got = (True, _adapter(name).load())
                except Exception as e:  # noqa: BLE001 - any import failure means absent
                    got = (False, "%s: %s" % (type(e).__name__, e))
            _loaded[name] = got
    return got


# sageattention 1.x (the Triton release on PyPI, 1.0.6): its non-causal varlen
# kernel loads the keys past a sequence's end as zeros but does not mask their
# scores, so each padded key adds exp(0 - m) to the softmax denominator: wrong
# output whenever L_kv is not a multiple of its key block (measured on H200:
# rel err 0.15-0.6 on windows of 16-512 tokens; slat-self 1.3e-2).  Its causal
# kernel masks correctly.  So with 1.x, sage2 takes causal calls only.
_SAGE1_NONCAUSAL = ("sageattention 1.x: its non-causal varlen kernel does not mask the keys "
                    "past each sequence's end (wrong results); only causal calls use it")


def _sage1():
    ok, ver = _probe("sage2")
    return ok and str(ver).startswith("1.")


def _available_mask(device_type):
    """Bit per backend whose library imports.  On CPU the GPU-only libraries are
    never imported (they cannot take a CPU call; dispatch.c says so)."""
    mask = 0
    for name in BACKENDS:
        if name == "native":
            mask |= 1 << _ID[name]
        elif device_type == "cuda" or name == "sdpa":
            if _probe(name)[0]:
                mask |= 1 << _ID[name]
        else:
            got = _loaded.get(name)
            if got is None or got[0]:
                mask |= 1 << _ID[name]  # unknown on CPU: the device rule explains
    return mask


def _sm(device):
    idx = device.index
    sm = _sm_cache.get(idx)
    if sm is None:
        import torch

        if idx is None:
            idx = torch.cuda.current_device()
        major, minor = torch.cuda.get_device_capability(idx)
        sm = _sm_cache[device.index] = major * 10 + minor
    return sm


def _dtypes():
    global _dtype_code
    if _dtype_code is None:
        import torch

        _dtype_code = {torch.float32: 1, torch.float16: 2, torch.bfloat16: 3}
    return _dtype_code


# ---------------------------------------------------------------------------
# Overrides.
# ---------------------------------------------------------------------------
def _check_name(name):
    if name not in _ID:
        raise ValueError("unknown backend %r; choose from %s (or 'auto')"
                         % (name, ", ".join(BACKENDS)))
    return name


@contextlib.contextmanager
def use_backend(name=None, *, exact=None):
    """Force a backend (name, or None / "auto" for automatic choice) and/or the
    exact-only mode for calls made inside the block, on this thread."""
    if name not in _AUTO:
        _check_name(name)
    prev = (getattr(_local, "forced", None), getattr(_local, "exact", None))
    _local.forced = None if name in _AUTO else name
    if exact is not None:
        _local.exact = bool(exact)
    try:
        yield
    finally:
        _local.forced, _local.exact = prev


def _forced(backend):
    if backend not in _AUTO:
        return _check_name(backend)
    forced = getattr(_local, "forced", None)
    if forced:
        return forced
    env = os.environ.get(ENV_BACKEND, "").strip().lower()
    if env and env != "auto":
        if env not in _ID:
            raise ValueError("%s=%r names no backend; choose from %s or auto"
                             % (ENV_BACKEND, env, ", ".join(BACKENDS)))
        return env
    return None


def _exact_only():
    exact = getattr(_local, "exact", None)
    if exact is not None:
        return exact
    return os.environ.get(ENV_EXACT, "").strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------
# Selection (C) and its per-signature cache.
# ---------------------------------------------------------------------------
_plans = {}      # signature -> (order names, declined {name: why}, policy)
_failed = {}     # signature -> {name: error text} for backends that raised at run time
_NONE = {}


def _plan(device, dtype_code, d, dv, h, hkv, causal, lengths_equal, lse, grad, exact, forced):
    prefer, disabled, flags = _comfy.comfy_flags()
    sig = (device.type, device.index, dtype_code, d, dv, h, hkv, causal, lengths_equal, lse, grad,
           exact, forced, flags)
    plan = _plans.get(sig)
    if plan is None:
        sm = _sm(device) if device.type == "cuda" else 0
        dis = 0
        for name in disabled:
            dis |= 1 << _ID[name]
        avail = _available_mask(device.type)
        sage_bit = 1 << _ID["sage2"]
        sage_note = None
        if not causal and avail & sage_bit and _sage1():
            avail &= ~sage_bit
            sage_note = _SAGE1_NONCAUSAL
        order, reasons, policy = _C.dispatch_select(
            _DEVICE_CODE[device.type], sm, dtype_code, d, dv, h, hkv, int(causal),
            int(lengths_equal), int(lse), int(grad), int(exact),
            avail, dis, _ID[prefer] if prefer else -1,
            _ID[forced] if forced else -1, int(bool(_C.have_cuda())))
        declined = {}
        for i, why in enumerate(reasons):
            if why:
                name = BACKENDS[i]
                if name == "sage2" and sage_note and why.endswith("does not import"):
                    why = sage_note
                elif why.endswith("does not import") and name in _loaded and not _loaded[name][0]:
                    why = "%s (%s)" % (why, _loaded[name][1])
                if "ComfyUI" in why and flags:
                    why = "%s (%s)" % (why, " ".join(flags))
                declined[name] = why
        plan = (sig, (tuple(BACKENDS[i] for i in order), declined, policy))
        _plans[sig] = plan
    return plan  # (the cached signature tuple itself, so callers can compare by identity)


def _no_backend(declined, failed):
    lines = []
    for name in BACKENDS:
        if name in failed:
            lines.append("  %s: failed at run time: %s" % (name, failed[name]))
        elif name in declined:
            lines.append("  %s: %s" % (name, declined[name]))
    return NoCapableBackendError("no backend can run this call:\n" + "\n".join(lines))


# ---------------------------------------------------------------------------
# The call.
# ---------------------------------------------------------------------------
def _host_lists(q, cu_q, cu_kv, check):
    """Host copies of CUDA cu_seqlens (one D2H copy) for validation and for the
    adapters that need lengths on the host; None when skipped."""
    return _native._host_copies(q, cu_q, cu_kv, check)


def _validate(q, k, v, cu_q, cu_kv, max_q, max_kv, softmax_scale, out, hq, hk):
    """C validation (no kernel) with host copies already made (or None)."""
    _native.validate(q, k, v, cu_q, cu_kv, max_q, max_kv, softmax_scale=softmax_scale, out=out,
                     host_q=hq, host_kv=hk)


def _run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, softmax_scale, causal,
         return_lse, backend, out, check_cu_seqlens):
    global _last
    # Facts from the tensors' metadata.  Anything odd (not a tensor, wrong
    # rank, unsupported dtype or device) goes to the C validation, which
    # raises the precise error.
    try:
        device = q.device
        dtype_code = _dtypes()[q.dtype]
        _, h, d = q.shape
        hkv = k.shape[1]
        dv = v.shape[2]
        dev_code = _DEVICE_CODE[device.type]
        if not (h > 0 and d > 0 and hkv > 0 and dv > 0):
            raise ValueError("empty head dimension")
    except (AttributeError, KeyError, ValueError, TypeError, IndexError):
        _native.validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                         softmax_scale=softmax_scale, out=out)
        raise  # validation should have raised; if not, the original error stands
    del dev_code
    grad = False
    if q.requires_grad or k.requires_grad or v.requires_grad:
        import torch

        grad = torch.is_grad_enabled()
    forced = _forced(backend)
    exact = False if forced else _exact_only()  # an explicit backend beats the mode
    cuda = device.type == "cuda"
    lengths_equal = cu_seqlens_q is cu_seqlens_kv

    # Validation before any backend.  The CUDA host copies serve validation,
    # the causal-alignment fact and the adapters that need host lengths.
    validated = False
    hq = hk = None
    if cuda or causal and not lengths_equal:
        hq, hk = _host_lists(q, cu_seqlens_q, cu_seqlens_kv, check_cu_seqlens)
    if causal and not lengths_equal:
        import torch

        if hq is not None:
            lengths_equal = torch.equal(hq, hk)
        elif not cuda and isinstance(cu_seqlens_q, torch.Tensor) and isinstance(
                cu_seqlens_kv, torch.Tensor) and cu_seqlens_q.shape == cu_seqlens_kv.shape:
            lengths_equal = torch.equal(cu_seqlens_q, cu_seqlens_kv)

    sig, (order, declined, policy) = _plan(device, dtype_code, d, dv, h, hkv, bool(causal),
                                           bool(lengths_equal), bool(return_lse), grad, exact,
                                           forced)
    failed = _failed.get(sig, _NONE) if _failed else _NONE
    for name in order:
        if name in failed:
            continue
        if name != "native" and not validated:
            _validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                      softmax_scale, out, hq, hk)
            validated = True
        try:
            res = _adapter(name).run(
                q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                softmax_scale=softmax_scale, causal=causal, out=out, return_lse=return_lse,
                host_q=hq, host_kv=hk, lengths_equal=lengths_equal,
                check_cu_seqlens=check_cu_seqlens and not validated)
        except (ValueError, TypeError) as e:
            if name == "native" and not validated:
                raise  # the C validation refused the input: the caller's error
            err = e
        except Exception as e:  # noqa: BLE001 - a failing backend falls through
            err = e
        else:
            if _last.signature is not sig or _last.backend != name:
                why = ("forced (%s)" % name if forced else
                       "first capable backend in priority order" + (
                           " after %s failed" % ", ".join(failed) if failed else ""))
                _last = BackendChoice(name, why, dict(declined, **{
                    f: "failed at run time: " + t for f, t in failed.items()}), sig)
            return res
        text = "%s: %s" % (type(err).__name__, err)
        log.warning("comfy_sparse_attn: backend %r failed on valid input and is skipped for "
                    "this input signature from now on: %s", name, text)
        with _lock:
            failed = dict(_failed.get(sig, {}))
            failed[name] = text
            _failed[sig] = failed
    if not validated:
        # Nothing ran (no candidate): still report bad input as bad input.
        _validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                  softmax_scale, out, hq, hk)
    _last = BackendChoice(None, "no capable backend", dict(declined), sig)
    raise _no_backend(declined, failed)


def dispatch_varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                              *, softmax_scale=None, causal=False, return_lse=False,
                              backend=None, out=None, check_cu_seqlens=True):
    """Varlen attention over packed sequences, routed to the best backend.

    q: [T_q, H, D]; k: [T_kv, H_kv, D]; v: [T_kv, H_kv, D_v]; cu_seqlens_q /
    cu_seqlens_kv: int32 [B+1] cumulative lengths; max_seqlen_*: longest
    sequence.  Returns [T_q, H, D_v] in q's dtype (and float32 lse [H, T_q]
    when return_lse).  backend: a name from ``list_backends()`` or None /
    "auto".  out: optional preallocated [T_q, H, D_v] output.
    check_cu_seqlens=False skips the device-to-host copy that checks CUDA
    cu_seqlens values (the native CUDA kernels then clamp every length).

    Under ``torch.compile`` the call is one custom op
    (``torch.ops.comfy_sparse_attn.varlen_attention``), so tracing does not
    break the graph; the backend is chosen when the op runs.
    """
    if _compiling():
        res, lse = _op()(q, k, v, cu_seqlens_q, cu_seqlens_kv, int(max_seqlen_q),
                         int(max_seqlen_kv), float(softmax_scale or 0.0), bool(causal),
                         bool(return_lse), "" if backend in _AUTO else str(backend))
        if out is not None:
            out.copy_(res)
            res = out
        return (res, lse) if return_lse else res
    return _run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, softmax_scale,
                causal, return_lse, backend, out, check_cu_seqlens)


# ---------------------------------------------------------------------------
# torch custom op (registered on first use of this module with torch present).
# ---------------------------------------------------------------------------
_OP = None


def _compiling():
    try:
        import torch.compiler as tc
    except ImportError:
        return False
    return tc.is_compiling()


def _register_op():
    import torch

    schema = ("(Tensor q, Tensor k, Tensor v, Tensor cu_seqlens_q, Tensor cu_seqlens_kv, "
              "int max_seqlen_q, int max_seqlen_kv, float softmax_scale, bool causal, "
              "bool return_lse, str backend) -> (Tensor, Tensor)")

    @torch.library.custom_op("comfy_sparse_attn::varlen_attention", mutates_args=(),
                             schema=schema)
    def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                         softmax_scale, causal, return_lse, backend):
        res = _run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                   softmax_scale or None, causal, return_lse, backend or None, None, True)
        if return_lse:
            return res[0], res[1]
        return res, q.new_empty((0,), dtype=torch.float32)

    @varlen_attention.register_fake
    def _(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, softmax_scale,
          causal, return_lse, backend):
        out = q.new_empty((q.shape[0], q.shape[1], v.shape[2]))
        lse = q.new_empty((q.shape[1], q.shape[0]) if return_lse else (0,), dtype=torch.float32)
        return out, lse

    return varlen_attention


def _op():
    global _OP
    if _OP is None:
        with _lock:
            if _OP is None:
                _OP = _register_op()
    return _OP


try:  # register eagerly so tracing finds it; importing this module means torch use
    import torch as _torch  # noqa: F401

    _op()
except ImportError:
    pass


# ---------------------------------------------------------------------------
# Reports.
# ---------------------------------------------------------------------------
def get_varlen_backend():
    """The last decision on this process: ``BackendChoice(backend, reason,
    declined, signature)``; ``backend`` is None before any call."""
    return _last


def list_backends(device=None):
    """Every backend: whether its library imports (and version, or why not),
    its constraints, and whether it would take a typical call on ``device``
    (default: "cuda" when torch sees a GPU, else "cpu") and if not, why.

    Returns {name: {"available", "version", "why_not", "usable", "why_unusable",
    "constraints", "rank"}} in priority order for that device."""
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    for name in BACKENDS:
        _probe(name)
    _, (order, declined, policy) = _plan(device, _dtypes()[dtype], 64, 64, 8, 8, False, True,
                                         False, False, _exact_only(), None)
    rows = {}
    ranked = list(order) + [n for n in BACKENDS if n not in order]
    for rank, name in enumerate(ranked):
        ok, info = _probe(name)
        rows[name] = {
            "available": ok,
            "version": info if ok else None,
            "why_not": None if ok else info,
            "usable": name in order,
            "why_unusable": declined.get(name),
            "constraints": _C.dispatch_caps(_ID[name]),
            "rank": rank,
        }
    rows["native"]["policy"] = policy
    return rows


def _reset_for_tests():
    global _last
    _plans.clear()
    _failed.clear()
    _last = BackendChoice(None, "no call yet", {}, None)
