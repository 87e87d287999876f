"""Backend dispatch for ``dispatch_varlen_attention``, decided per call.

Python gathers the facts only Python can see: which libraries import (once
per process) and their versions, the device class and compute capability of
the tensor's *own* device, ComfyUI's attention flags, whether autograd is
recording, and the overrides.  The C core (``csrc/core/dispatch.c``) holds
every backend's constraints as data and returns the candidates in priority
order plus, for each backend left out, the reason.  That answer is cached
per input signature, and a call that ran is remembered under a key of
every fact it read: a repeated call is looked up in C first, and when the
native kernel runs it, done there entirely (see "The fast path" below).

Order of work in a call the full path decides:

1. type checks (a ``TypeError`` naming the argument for anything that is
   not a tensor, or a meta tensor);
2. ``cu_seqlens`` (docs/ARCHITECTURE.md has the whole story):
   - on the CPU with q on a GPU: checked on the host (no sync) and copied to
     the device asynchronously;
   - on a CUDA device, by default: sanitized on the device by one small
     kernel (no sync); every backend reads the clamped copies; a remembered
     native call skips that kernel, its attention kernel checks the raw
     values itself (it clamps every bound it reads); a violation raises
     ``ValueError`` at the next call on that device (or from
     ``check_cu_seqlens_errors``).  When the chosen backend needs the lengths
     on the host anyway, or ``check_cu_seqlens=True``, or there is no
     sanitizer (a build without CUDA kernels, ROCm, mps, ...): one copy to
     the host, checked there, error raised by this call;
3. validation in C before any backend runs (the native CPU kernel's own
   entry point does exactly this check, so it is not done twice);
4. the cached candidate list for the signature; the first candidate runs.
   One that raises on valid input is reported (a warning naming it and the
   error) and skipped for that signature for a while (``RETRY_AFTER_S``,
   doubling on each repeated failure), then tried again.  Failures that are
   not the backend's fault (out of memory, CUDA-graph capture, interrupts)
   propagate and mark nothing.  An adapter that cannot take this particular
   call raises ``Declined`` and the next one runs;
5. no candidate left: ``NoCapableBackendError`` listing every backend and
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
import re
import threading
import time

from . import _C, _comfy, _native
from .backends import Declined, adapter as _adapter_module
from .backends import native as _native_adapter

log = logging.getLogger("comfy_sparse_attn")

ENV_BACKEND = "COMFY_SPARSE_ATTN_BACKEND"
ENV_EXACT = "COMFY_SPARSE_ATTN_EXACT"

_ID = dict(_C.BACKEND)                                  # name -> backend id (C order)
BACKENDS = tuple(sorted(_ID, key=_ID.get))              # names by backend id
_DEV = dict(_C.DEVICE)                                  # "cpu" -> csa_device_type, ...
_AUTO = ("", "auto", None)
_NATIVE_RUN = _native_adapter.run
_RUN_CPU = _C.RUN_CPU
_RUN_VALIDATE = _C.RUN_VALIDATE

# A backend that failed on valid input is skipped for its signature for this
# long, doubled on every further failure, up to RETRY_MAX_S.
RETRY_AFTER_S = 60.0
RETRY_MAX_S = 3600.0


class _Local(threading.local):
    """Per-thread overrides of use_backend(); class defaults, so reading one
    on a thread that never set it costs no AttributeError."""
    forced = None
    exact = None
    ctx = None  # (forced, exact) while a use_backend() block is active


_local = _Local()

# os.environ.get costs a key encoding and a mapping lookup per read; the
# mapping keeps its encoded data in a plain dict that every change to
# os.environ updates, so a call reads that dict directly where it exists
# (so does the fast path's key, in C).
_env_data = getattr(os.environ, "_data", None)
_env_key = getattr(os.environ, "encodekey", None)
if _env_data is None or _env_key is None:
    _env_data = None


_ENV_BACKEND_KEY = _env_key(ENV_BACKEND) if _env_data is not None else None
_ENV_EXACT_KEY = _env_key(ENV_EXACT) if _env_data is not None else None


def _getenv(name, key):
    if _env_data is not None:
        raw = _env_data.get(key)
        return "" if raw is None else os.fsdecode(raw)
    return os.environ.get(name, "")
_lock = threading.Lock()


class NoCapableBackendError(RuntimeError):
    """No backend can run this call; the message lists why each declined."""


BackendChoice = collections.namedtuple("BackendChoice", "backend reason declined signature")
BackendChoice.__doc__ = """The last dispatch decision: ``backend`` (name, or None), ``reason``
(why it was chosen), ``declined`` ({backend: why it was not chosen}) and ``signature`` (a
:class:`Signature`: the input facts the decision was made and cached for)."""

Signature = collections.namedtuple(
    "Signature", "device dtype head_dim head_dim_v heads heads_kv causal lengths_equal lse "
                 "grad exact_only forced comfy_flags rows")
Signature.__doc__ = """The facts of a call that decide its backend: device ("cuda:0"), dtype
("float16"), head_dim, head_dim_v, heads, heads_kv, causal, lengths_equal (every L_q == L_kv
is known), lse (requested), grad (autograd recording), exact_only, forced (backend name or
None), comfy_flags (ComfyUI attention flags seen) and rows (the shape of the query rows from B
and T_q alone: "one", "few-long", "many-long" or "short" sequences)."""

_ROWS = ("one", "few-long", "many-long", "short")  # csa__rows_class, by value

_last = BackendChoice(None, "no call yet", {}, None)

_Plan = collections.namedtuple("_Plan", "key signature order declined policy choices")
_Failure = collections.namedtuple("_Failure", "text count until")


# ---------------------------------------------------------------------------
# Facts: libraries (imported once), devices, dtypes.
# ---------------------------------------------------------------------------
_loaded = {}        # backend -> (ok: bool, version or error text)
_sm_cache = {}      # cuda device index -> major*10+minor
_cuda_ok = {}       # cuda device index -> (native CUDA usable, why not)
_dtype_code = None  # torch dtype -> csa_dtype
_adapters = {}
_tensor = None


def _adapter(name):
    mod = _adapters.get(name)
    if mod is None:
        mod = _adapters[name] = _adapter_module(name)
    return mod


def _probe(name):
    """(available, version or why not) of a backend's library, imported once."""
    got = _loaded.get(name)
    if got is not None:
        return got
    with _lock:
        got = _loaded.get(name)
        if got is None:
            try:
                got = (True, _adapter(name).load())
            except Exception as e:  # noqa: BLE001 - any import failure means absent
                got = (False, "%s: %s" % (type(e).__name__, e))
            _loaded[name] = got
    return got


_MAJOR = re.compile(r"(\d+)\.")


def _lib_major(name):
    """Major version of a backend's imported library (0: unknown / absent)."""
    ok, ver = _loaded.get(name, (False, ""))
    m = _MAJOR.search(str(ver)) if ok else None
    return int(m.group(1)) if m else 0


def _available_mask(gpu):
    """Bit per backend whose library imports.  Off NVIDIA GPUs the GPU-only
    libraries are never imported (they cannot take the call; dispatch.c says
    so)."""
    mask = 0
    for name in BACKENDS:
        if name == "native":
            mask |= 1 << _ID[name]
        elif gpu or name == "sdpa":
            if _probe(name)[0]:
                mask |= 1 << _ID[name]
        else:
            got = _loaded.get(name)
            if got is None or got[0]:
                mask |= 1 << _ID[name]  # unknown here: the device rule explains
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


def _native_cuda(device):
    """(native CUDA kernels usable on this device, why not)."""
    got = _cuda_ok.get(device.index)
    if got is None:
        if not _C.have_cuda():
            got = (False, "this build of comfy-sparse-attn has no CUDA kernels")
        elif hasattr(_C, "cuda_status"):
            import torch

            idx = device.index if device.index is not None else torch.cuda.current_device()
            ok, why = _C.cuda_status(idx)
            got = (bool(ok), why or "")
        else:
            got = (True, "")
        _cuda_ok[device.index] = got
    return got


def _dtypes():
    global _dtype_code
    if _dtype_code is None:
        import torch

        _dtype_code = {getattr(torch, n): c for n, c in _C.DTYPE.items() if hasattr(torch, n)}
    return _dtype_code


_dev_codes = {}


def _device_code(device):
    """csa_device_type of a torch device; ROCm (torch says "cuda") is ROCM."""
    code = _dev_codes.get(device.type)
    if code is None:
        code = _DEV.get(device.type, _DEV["other"])
        if device.type == "cuda":
            import torch

            if getattr(torch.version, "hip", None):
                code = _DEV["rocm"]
        _dev_codes[device.type] = code
    return code


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
    prev = (_local.forced, _local.exact, _local.ctx)
    _local.forced = None if name in _AUTO else name
    if exact is not None:
        _local.exact = bool(exact)
    _local.ctx = (_local.forced, _local.exact)
    try:
        yield
    finally:
        _local.forced, _local.exact, _local.ctx = prev


def _forced(backend):
    if backend not in _AUTO:
        return _check_name(backend)
    forced = _local.forced
    if forced:
        return forced
    env = _getenv(ENV_BACKEND, _ENV_BACKEND_KEY).strip().lower()
    if env and env != "auto":
        if env not in _ID:
            raise ValueError("%s=%r names no backend; choose from %s or auto"
                             % (ENV_BACKEND, env, ", ".join(BACKENDS)))
        return env
    return None


def _exact_only():
    exact = _local.exact
    if exact is not None:
        return exact
    return _getenv(ENV_EXACT, _ENV_EXACT_KEY).strip().lower() in ("1", "true", "yes", "on")


# ---------------------------------------------------------------------------
# Selection (C) and its per-signature cache.
# ---------------------------------------------------------------------------
_plans = {}      # key tuple -> _Plan
_failed = {}     # key tuple -> {name: _Failure} for backends that raised at run time
_NONE = {}


def _plan(device, dtype_code, d, dv, h, hkv, causal, lengths_equal, lse, grad, exact, forced,
          rows=0):
    prefer, disabled, flags = _comfy.comfy_flags()
    key = (device.type, device.index, dtype_code, d, dv, h, hkv, causal, lengths_equal, lse, grad,
           exact, forced, flags, rows)
    plan = _plans.get(key)
    if plan is None:
        plan = _make_plan(key, device, dtype_code, d, dv, h, hkv, causal, lengths_equal, lse,
                          grad, exact, forced, prefer, disabled, flags, rows)
        _plans[key] = plan
    return plan


def _make_plan(key, device, dtype_code, d, dv, h, hkv, causal, lengths_equal, lse, grad, exact,
               forced, prefer, disabled, flags, rows):
    code = _device_code(device)
    nvidia = code == _DEV["cuda"]
    sm = _sm(device) if nvidia else 0
    native_ok, native_why = _native_cuda(device) if nvidia else (False, "")
    dis = 0
    for name in disabled:
        dis |= 1 << _ID[name]
    avail = _available_mask(nvidia)
    order, reasons, policy = _C.dispatch_select(
        device_type=code, sm=sm, dtype=dtype_code, head_dim=d, head_dim_v=dv, heads=h,
        heads_kv=hkv, causal=causal, lengths_equal=lengths_equal, lse=lse, grad=grad,
        exact_only=exact, available=avail, disabled=dis,
        prefer=_ID[prefer] if prefer else -1, forced=_ID[forced] if forced else -1,
        native_cuda=native_ok, native_cuda_why=native_why,
        lib_major=tuple(_lib_major(n) for n in BACKENDS), rows=rows)
    declined = {}
    for i, why in enumerate(reasons):
        if why:
            name = BACKENDS[i]
            if why.endswith("does not import") and name in _loaded and not _loaded[name][0]:
                why = "%s (%s)" % (why, _loaded[name][1])
            if "ComfyUI" in why and flags:
                why = "%s (%s)" % (why, " ".join(flags))
            declined[name] = why
    dev = device.type if device.index is None else "%s:%d" % (device.type, device.index)
    dt = next((n for n, c in _C.DTYPE.items() if c == dtype_code), str(dtype_code))
    sig = Signature(dev, dt, d, dv, h, hkv, causal, lengths_equal, lse, grad, exact, forced, flags,
                    _ROWS[rows])
    return _Plan(key, sig, tuple(BACKENDS[i] for i in order), declined, policy, {})


def _choice(plan, name, skipped):
    """The BackendChoice for running ``name``; the same state gives the same
    record (cached per plan when nothing was skipped)."""
    if not skipped:
        got = plan.choices.get(name)
        if got is not None:
            return got
    forced = plan.signature.forced
    if forced:
        why = "forced: requested by backend=, use_backend() or %s" % ENV_BACKEND
    else:
        why = "the first backend in priority order that can take this call"
        if name == "native" or "native" in plan.order:
            why += "; %s" % plan.policy
    declined = dict(plan.declined)
    if skipped:
        why += "; skipped: %s" % ", ".join(skipped)
        declined.update(skipped)
    got = BackendChoice(name, why, declined, plan.signature)
    if not skipped:
        plan.choices[name] = got
    return got


def _no_backend(declined, failed):
    lines = []
    for name in BACKENDS:
        if name in failed:
            lines.append("  %s: %s" % (name, failed[name]))
        elif name in declined:
            lines.append("  %s: %s" % (name, declined[name]))
    return NoCapableBackendError("no backend can run this call:\n" + "\n".join(lines))


def _not_the_backends_fault(err, device):
    """Out of memory and CUDA-graph capture: the call's circumstances, not a
    defect of the backend.  (KeyboardInterrupt is no Exception: never caught.)"""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    if isinstance(err, RuntimeError) and "out of memory" in str(err).lower():
        return True
    if device.type == "cuda":
        import torch

        if torch.cuda.is_current_stream_capturing():
            return True
    return False


def _record_failure(key, name, err):
    text = "%s: %s" % (type(err).__name__, err)
    with _lock:
        per = dict(_failed.get(key, {}))
        prev = per.get(name)
        count = prev.count + 1 if prev else 1
        wait = min(RETRY_AFTER_S * 2 ** (count - 1), RETRY_MAX_S)
        per[name] = _Failure(text, count, time.monotonic() + wait)
        _failed[key] = per
        _fast.clear()  # repeated calls go through the full path (and skip it) again
    log.warning("comfy_sparse_attn: backend %r failed on valid input (%s); skipped for this "
                "input signature for %.0f s, then tried again", name, text, wait)


def _clear_failure(key, name):
    with _lock:
        per = dict(_failed.get(key, {}))
        if per.pop(name, None) is not None:
            _fast.clear()
            log.info("comfy_sparse_attn: backend %r works again for this input signature", name)
            if per:
                _failed[key] = per
            else:
                _failed.pop(key, None)


# ---------------------------------------------------------------------------
# Argument checks that need Python (types); the rest is C's.
# ---------------------------------------------------------------------------
_ARG_FORMS = (("q", "a tensor [T_q, H, D]"), ("k", "a tensor [T_kv, H_kv, D]"),
              ("v", "a tensor [T_kv, H_kv, D_v]"),
              ("cu_seqlens_q", "an int32 tensor [B+1], e.g. torch.tensor(lengths, "
                               "dtype=torch.int32)"),
              ("cu_seqlens_kv", "an int32 tensor [B+1], e.g. torch.tensor(lengths, "
                                "dtype=torch.int32)"))


def _type_error(args, out):
    import torch

    for (name, form), x in zip(_ARG_FORMS + (("out", "a tensor [T_q, H, D_v] or None"),),
                               args + (out,)):
        if name == "out" and x is None:
            continue
        if not isinstance(x, torch.Tensor):
            kind = type(x).__module__ + "." + type(x).__qualname__
            kind = kind.replace("builtins.", "")
            raise TypeError("%s must be %s; got %s" % (name, form, kind))
        if x.is_meta:
            raise TypeError("%s is a meta tensor (a shape without data); pass %s on a real "
                            "device" % (name, form))


def _cu_int32(cu_q, cu_kv):
    import torch

    for name, cu in (("cu_seqlens_q", cu_q), ("cu_seqlens_kv", cu_kv)):
        if cu.dtype != torch.int32:
            raise TypeError("%s must be int32, got %s" % (name, str(cu.dtype).replace("torch.",
                                                                                    "")))


# ---------------------------------------------------------------------------
# The call.  _run is the hot path: its helpers are one call each on the common
# path (or run only on rarer ones) and allocate nothing of their own there.
# ---------------------------------------------------------------------------
def _check_tensors(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                   softmax_scale, out):
    """The argument checks that need Python (types, meta tensors, rank, dtype);
    returns q's dtype code.  One isinstance chain on the common path: the
    messages are built only when a check fails."""
    global _tensor
    if _tensor is None:
        import torch

        _tensor = torch.Tensor
    T = _tensor
    if not (isinstance(q, T) and isinstance(k, T) and isinstance(v, T)
            and isinstance(cu_seqlens_q, T) and isinstance(cu_seqlens_kv, T)
            and (out is None or isinstance(out, T))) or q.is_meta or k.is_meta or v.is_meta \
            or cu_seqlens_q.is_meta or cu_seqlens_kv.is_meta or (out is not None and out.is_meta):
        _type_error((q, k, v, cu_seqlens_q, cu_seqlens_kv), out)
    dtype_code = _dtypes().get(q.dtype)
    if q.dim() != 3 or k.dim() != 3 or v.dim() != 3 or dtype_code is None:
        _native.validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                         softmax_scale=softmax_scale, out=out, check_cu_seqlens=False)
        raise TypeError("q must be float32, float16 or bfloat16")  # validation raises first
    return dtype_code


def _host_to_device(device, cu_q, cu_kv, same_cu):
    """CPU cu_seqlens with q on a device: checked on the host, copied
    asynchronously.  Returns the device copies and the host values."""
    _cu_int32(cu_q, cu_kv)
    if device.type == "cuda" and _capturing():
        raise ValueError("cu_seqlens_q / cu_seqlens_kv are on the CPU, and a copy from "
                         "pageable host memory cannot be captured in a CUDA graph; pass "
                         "them on %s while capturing" % device)
    hq, hk = cu_q.contiguous(), cu_kv.contiguous()
    cu_q = hq.to(device, non_blocking=True)
    cu_kv = cu_q if same_cu else hk.to(device, non_blocking=True)
    return cu_q, cu_kv, hq, hk


def _lengths_equal(mode, hq, hk, cu_q, cu_kv):
    """Causal calls with two cu_seqlens tensors: whether they hold the same
    lengths, from values the host already has (never a device sync)."""
    if hq is not None:
        return hq.shape == hk.shape and bool((hq == hk).all())
    if mode == "cpu" and cu_q.shape == cu_kv.shape and cu_q.dtype == cu_kv.dtype:
        return bool((cu_q == cu_kv).all())
    return False


def _first_needs_host_lengths(order, q, k, v, cu_q, max_seqlen_q, causal, lengths_equal):
    """Whether the first candidate reads the lengths on the host anyway (then
    one copy, checked on the host, replaces the device-side check)."""
    if not order:
        return False
    need = getattr(_adapter(order[0]), "needs_host_lengths", None)
    return need is not None and need(q, k, v, cu_q, max_seqlen_q, causal, lengths_equal)


def _backend_failed(key, name, err, device, skipped):
    """A backend raised on input that passed validation: re-raise what is not
    the backend's fault, else skip it for this input signature a while."""
    if _not_the_backends_fault(err, device):
        raise err
    _record_failure(key, name, err)
    skipped[name] = "failed at run time: %s: %s" % (type(err).__name__, err)


def _none_ran(plan, skipped, validated, q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
              softmax_scale, out, hq, hk):
    """No candidate produced a result: bad input is still reported as bad
    input, else the error naming why each backend was left out."""
    global _last
    if not validated:
        # Nothing ran (no candidate): still report bad input as bad input.
        _native.validate(q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
                         softmax_scale=softmax_scale, out=out, host_q=hq, host_kv=hk)
    _last = BackendChoice(None, "no capable backend", dict(plan.declined, **skipped),
                          plan.signature)
    return _no_backend(plan.declined, skipped)


def _run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, softmax_scale, causal,
         return_lse, backend, out, check_cu_seqlens, fkey=None):
    global _last
    dtype_code = _check_tensors(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                max_seqlen_kv, softmax_scale, out)
    device = q.device
    _, h, d = q.shape
    hkv = k.shape[1]
    dv = v.shape[2]
    # Sizes are never negative, so a zero product is exactly "some size is not
    # > 0" (one test instead of four on the hot path).
    if h * d * hkv * dv == 0:
        _native.validate(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                         softmax_scale=softmax_scale, out=out, check_cu_seqlens=False)
    grad = False
    if q.requires_grad or k.requires_grad or v.requires_grad:
        import torch

        grad = torch.is_grad_enabled()
    forced = _forced(backend)
    exact = False if forced else _exact_only()  # an explicit backend beats the mode
    same_cu = cu_seqlens_q is cu_seqlens_kv
    lengths_equal = same_cu

    # cu_seqlens: where their values are read (see the module docstring).
    cu_q, cu_kv = cu_seqlens_q, cu_seqlens_kv
    hq = hk = None          # host values (CPU int32 tensors) when known
    mode = _cu_mode(device, cu_q, cu_kv, check_cu_seqlens)
    if _native._flags:
        _native.raise_pending(device)  # an earlier call's device-side finding
    if mode == "host":
        cu_q, cu_kv, hq, hk = _host_to_device(device, cu_q, cu_kv, same_cu)
    elif mode == "copied":
        hq, hk = _native.host_copies(cu_q, cu_kv, fresh=bool(check_cu_seqlens))
    if causal and not lengths_equal:
        lengths_equal = _lengths_equal(mode, hq, hk, cu_q, cu_kv)

    plan = _plan(device, dtype_code, d, dv, h, hkv, bool(causal), bool(lengths_equal),
                 bool(return_lse), grad, exact, forced,
                 _C.dispatch_rows(cu_seqlens_q.numel() - 1, q.shape[0]))
    order = plan.order

    validated = False
    if mode == "sanitize":
        if _first_needs_host_lengths(order, q, k, v, cu_q, max_seqlen_q, causal,
                                     lengths_equal):
            # inherent: it reads lengths on the host ("copied" from here on)
            hq, hk = _native.host_copies(cu_q, cu_kv)
        else:
            _native.validate(q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
                             softmax_scale=softmax_scale, out=out, host_q=None, host_kv=None)
            validated = True
            cu_q, cu_kv = _native.sanitize(q, k, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv)

    orig = (cu_seqlens_q, cu_seqlens_kv)
    lists = []

    def host_lengths():
        """Both cu_seqlens as lists, one device-to-host copy at most, checked."""
        nonlocal hq, hk
        if not lists:
            if hq is None:
                if device.type == "cuda":
                    import torch

                    if torch.cuda.is_current_stream_capturing():
                        raise Declined("needs the lengths on the host, which cannot be read "
                                       "while a CUDA graph is captured (pass cu_seqlens on "
                                       "the CPU)")
                hq, hk = _native.host_copies(*orig)
                try:
                    _native.validate(q, k, v, orig[0], orig[1], max_seqlen_q, max_seqlen_kv,
                                     softmax_scale=softmax_scale, out=out, host_q=hq, host_kv=hk)
                except ValueError:
                    _clear_pending(device)  # this call's own violation: reported here
                    raise
            lists.extend((hq.tolist(), hk.tolist()))
        return lists[0], lists[1]

    failed = _failed.get(plan.key, _NONE) if _failed else _NONE
    skipped = {}
    now = time.monotonic() if failed else 0.0
    for name in order:
        f = failed.get(name)
        if f is not None and f.until > now:
            skipped[name] = "failed at run time (%s); tried again later" % f.text
            continue
        if not validated and name != "native":
            _native.validate(q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
                             softmax_scale=softmax_scale, out=out, host_q=hq, host_kv=hk)
            validated = True
        try:
            res = _adapter(name).run(
                q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
                softmax_scale=softmax_scale, causal=causal, out=out, return_lse=return_lse,
                host_q=hq, host_kv=hk, host_lengths=host_lengths, lengths_equal=lengths_equal)
        except Declined as e:
            skipped[name] = "declined this call: %s" % e
            continue
        except (ValueError, TypeError) as e:
            if not validated:
                raise  # the native entry point's validation refused the input
            err = e
        except Exception as e:  # noqa: BLE001 - a failing backend falls through
            err = e
        else:
            if f is not None:
                _clear_failure(plan.key, name)
            _last = _choice(plan, name, skipped)
            if fkey is not None and not skipped and f is None:
                _remember(fkey, plan, name, mode, device, bool(lengths_equal), same_cu, causal,
                          q.dtype)
            return res
        _backend_failed(plan.key, name, err, device, skipped)
    raise _none_ran(plan, skipped, validated, q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
                    softmax_scale, out, hq, hk)


def _cu_mode(device, cu_q, cu_kv, check):
    """Where the cu_seqlens values are checked: "cpu" (all on the CPU: C reads
    them), "host" (CPU cu_seqlens, q on a device: checked on the host, copied
    asynchronously), "sanitize" (CUDA, default: on the device, no sync) or
    "copied" (one device-to-host copy, checked on the host)."""
    on_cpu = cu_q.device.type == "cpu" and cu_kv.device.type == "cpu"
    if device.type == "cpu":
        return "cpu"
    if on_cpu:
        return "host"
    if (not check and device.type == "cuda" and _native.have_sanitizer()
            and _device_code(device) == _DEV["cuda"]):
        return "sanitize"
    return "copied"


def _capturing():
    import torch

    return torch.cuda.is_current_stream_capturing()


def _clear_pending(device):
    got = _native._flags.get(device.index)
    if got is not None:
        got[1].value = 0


# ---------------------------------------------------------------------------
# The fast path: a call whose facts were seen before reuses that decision.
#
# The full path (_run) decides a call from its signature (the plan) and the
# way its cu_seqlens are read (the mode).  Once a backend ran that way with
# nothing skipped, the decision is remembered under a key of every fact it
# read: the tensors' dtype and devices, H, D, H_kv, D_v, the flags and
# arguments, the overrides (use_backend() on this thread, the environment
# variables, ComfyUI's flags), whether autograd records and the rows class.
# The key is computed, and the decisions are held, in C (fast_binding.c,
# which lists the key's facts): _C.fast_call is the first thing a call does.
# For a remembered native call it does the whole call there (reads the
# tensors through torch's DLPack C table, allocates the output, validates,
# runs the kernel, which on CUDA checks the values of cu_seqlens itself
# (csrc/cuda/cu_check.cuh: one launch, no sanitizer kernel before it); for
# another backend it returns the remembered record and _fast_run validates
# (and sanitizes) in one C call and runs the adapter.  Anything unusual --
# a key never seen, a tensor C cannot read (meta tensors), an argument of
# an unusual type, a backend that needs host lengths this time, a patched
# adapter, a pending device-side report, a native call with T_q = 0 on
# CUDA (no launch to check in) -- takes the full path, so every error and
# report is the full path's.  A recorded failure clears
# the remembered decisions, so does _reset_for_tests.
# ---------------------------------------------------------------------------
_SLOW = _C.FAST_SLOW      # "take the full path"
_Capsule = type(_SLOW)    # FAST_SLOW and the keys of calls not remembered yet
_fast_call = _C.fast_call


class _FastTable:
    """The remembered decisions (held in C): len() and clear()."""

    def __len__(self):
        return _C.fast_len()

    def __bool__(self):
        return _C.fast_len() > 0

    def clear(self):
        _C.fast_clear()


_fast = _FastTable()

# kind: RUN_VALIDATE / RUN_SANITIZE (the adapter runs after that C call;
# native calls never reach _fast_run: C runs them); flag: the device's
# sanitizer flag (ctypes view, capsule) or None; run_fn: the adapter's run
# when remembered.
_Fast = collections.namedtuple(
    "_Fast", "name kind choice adapter run_fn needs_host lengths_equal flag flag_cap plan_key")

_tensor_type = None
_export = None
_grad_enabled = None
_threads = None
_empty = None
_f32 = None


def _fast_init():
    """torch's callables the fast path uses (bound once, here and in C)."""
    global _tensor_type, _export, _grad_enabled, _threads, _empty, _f32
    import torch

    # Every argument reaching _fast_run is a torch tensor (checked), so torch's
    # own C exporter is called directly, without the wrapper that admits
    # other objects.
    _export = (getattr(torch._C, "_to_dlpack_versioned", None)
               or getattr(torch._C, "_to_dlpack", None) or _native._exporter())
    _grad_enabled = torch.is_grad_enabled
    _threads = torch.get_num_threads
    _empty = torch.empty
    _f32 = torch.float32
    _tensor_type = torch.Tensor
    if _env_data is None:
        return  # no raw mapping to key the environment on: every call takes the full path
    # torch >= 2.10 publishes a C table (a capsule) that reads a tensor's
    # descriptor without making a capsule per tensor; without it (or in
    # another form), C uses the exporter.
    api = getattr(torch.Tensor, "__dlpack_c_exchange_api__", None)
    if type(api) is not _Capsule:
        api = None
    try:
        _bind_fast(torch, api)
    except Exception as e:  # noqa: BLE001 - the full path serves every call then
        log.debug("comfy_sparse_attn: the C fast path is off (%s: %s)", type(e).__name__, e)


def _bind_fast(torch, api):
    _C.fast_init(
        tensor_type=torch.Tensor,
        exchange_api=api,
        to_dlpack=_export, empty=torch.empty, num_threads=torch.get_num_threads,
        grad_enabled=torch.is_grad_enabled,
        raw_stream=lambda index: _native.raw_stream(index),
        dispatch_ns=globals(), comfy_ns=vars(_comfy),
        comfy_flags=_comfy.comfy_flags, env=_env_data, env_backend_key=_ENV_BACKEND_KEY,
        env_exact_key=_ENV_EXACT_KEY)


def _remember(fkey, plan, name, mode, device, lengths_equal, same_cu, causal, dtype):
    """After the full path ran ``name`` with nothing skipped: remember the
    decision for calls with the same key, where it does not hang on values
    the key does not hold."""
    if mode == "cpu":
        if causal and not same_cu:
            return  # lengths_equal depends on the cu_seqlens values
        kind = _C.RUN_CPU if name == "native" else _C.RUN_VALIDATE
        flag = flag_cap = None
    elif mode == "sanitize" and device.type == "cuda":
        kind = _C.RUN_CUDA_FLAGGED if name == "native" else _C.RUN_SANITIZE
        _, flag, flag_cap = _native._flag(device.index)
    else:
        return  # host copies: per call anyway
    ad = _adapter(name)
    if name == "native" and ad.run is not _NATIVE_RUN:
        return
    where = _C.FAST_PY
    if name == "native":
        where = _C.FAST_CPU if kind == _RUN_CPU else _C.FAST_CUDA
    rec = _Fast(name, kind, _last, ad, ad.run, getattr(ad, "needs_host_lengths", None),
                lengths_equal, flag, flag_cap, plan.key)
    _C.fast_remember(fkey, rec, kind=where, choice=_last, adapter=ad, run_fn=ad.run,
                     device=device, out_kw={"dtype": dtype, "device": device},
                     lse_kw={"dtype": _f32, "device": device}, flag=flag_cap)


def _fast_run(e, q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv, softmax_scale, causal,
              return_lse, out):
    """One call by a remembered decision whose backend runs in Python, or
    _SLOW."""
    global _last
    if e.adapter.run is not e.run_fn:
        return _SLOW  # patched (tests, benchmarks): the full path calls it
    kind = e.kind
    x = _export
    try:
        xq, xk, xv, xcq, xckv = x(q), x(k), x(v), x(cu_q), x(cu_kv)
        xo = None if out is None else x(out)
    except Exception:  # noqa: BLE001 - e.g. a meta tensor: the full path names it
        return _SLOW
    scale = 0.0 if softmax_scale is None else _native._scale_arg(softmax_scale)
    mq, mk = int(max_seqlen_q), int(max_seqlen_kv)
    dev = q.device
    stream = 0
    cap = flag_cap = hq = hk = xhq = xhk = None
    if e.flag is not None:
        if e.flag.value:
            _native.raise_pending(dev)  # an earlier call's device-side finding
        needs = e.needs_host
        if needs is not None and needs(q, k, v, cu_q, mq, causal, e.lengths_equal):
            # It reads the lengths on the host anyway: that one copy is the
            # check (values validated in C), as on the full path.
            hq, hk = _native.host_copies(cu_q, cu_kv)
            if hq is None:
                return _SLOW  # e.g. capturing a graph: the full path declines it
            xhq, xhk = x(hq), x(hk)
            kind = _RUN_VALIDATE
        else:
            stream = _native.raw_stream(dev.index)
            cap, sq, skv = _native.scratch(dev, stream, cu_q.shape[0])
            flag_cap = e.flag_cap
    _C.run(kind, xq, xk, xv, xcq, xckv, xo, None, xhq, xhk, mq, mk, scale, causal, 0, stream,
           cap, flag_cap)
    if cap is not None:
        cu_q, cu_kv = sq, skv  # every backend reads the clamped copies
    try:
        res = e.adapter.run(q, k, v, cu_q, cu_kv, max_seqlen_q, max_seqlen_kv,
                            softmax_scale=softmax_scale, causal=causal, out=out,
                            return_lse=return_lse, host_q=hq, host_kv=hk, host_lengths=None,
                            lengths_equal=e.lengths_equal)
    except Declined:
        return _SLOW
    except Exception as err:  # noqa: BLE001 - a failing backend falls through
        return _fast_failed(e, err, dev)
    _last = e.choice
    return res


def _fast_failed(e, err, device):
    """A remembered backend raised on valid input: what the full path does
    (re-raise what is not its fault, else skip it a while), then the full
    path runs the call with the next candidate."""
    if _not_the_backends_fault(err, device):
        raise err
    _record_failure(e.plan_key, e.name, err)
    return _SLOW


def dispatch_varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                              *, softmax_scale=None, causal=False, return_lse=False,
                              backend=None, out=None, check_cu_seqlens=False):
    """Varlen attention over packed sequences, routed to the best backend.

    q: [T_q, H, D]; k: [T_kv, H_kv, D]; v: [T_kv, H_kv, D_v]; cu_seqlens_q /
    cu_seqlens_kv: int32 [B+1] cumulative lengths, on q's device or on the
    CPU; max_seqlen_*: longest sequence.  Returns [T_q, H, D_v] in q's dtype
    (and float32 lse [H, T_q] when return_lse).  backend: a name from
    ``list_backends()`` or None / "auto".  out: optional preallocated
    [T_q, H, D_v] output, written in place.

    check_cu_seqlens: CUDA cu_seqlens are by default sanitized on the device
    with no sync, and a bad value raises ``ValueError`` at the next call on
    that device (or from ``check_cu_seqlens_errors()``); True copies them to
    the host and raises from this call (one sync).  CPU cu_seqlens are always
    checked on the host, with no sync.

    Under ``torch.compile`` the call is one custom op
    (``torch.ops.comfy_sparse_attn.varlen_attention``), so tracing does not
    break the graph; the backend is chosen when the op runs.
    """
    if (_is_compiling or _compiling)():
        res, lse = _op()(q, k, v, cu_seqlens_q, cu_seqlens_kv, int(max_seqlen_q),
                         int(max_seqlen_kv), float(softmax_scale or 0.0), bool(causal),
                         bool(return_lse), "" if backend in _AUTO else str(backend))
        if out is not None:
            out.copy_(res)
            res = out
        return (res, lse) if return_lse else res
    # A remembered call is done by C (fast_binding.c); the class of the
    # answer says what it is.
    r = _fast_call(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                   softmax_scale, causal, return_lse, backend, out, check_cu_seqlens, _local.ctx)
    cls = r.__class__
    if cls is not _Capsule:
        if cls is not _Fast:
            return r  # C ran it
        res = _fast_run(r, q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                        softmax_scale, causal, return_lse, out)
        if res is not _SLOW:
            return res
        r = None
    elif r is _SLOW:
        r = None
    # r: the key to remember this call's decision under, or None
    return _run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, softmax_scale,
                causal, return_lse, backend, out, check_cu_seqlens, r)


def check_cu_seqlens_errors(device=None):
    """Synchronize the CUDA ``device`` (default: the current one) and raise the
    ``ValueError`` of any earlier call whose cu_seqlens the device check found
    invalid, clearing it.  A no-op without CUDA."""
    _native.check_cu_seqlens_errors(device)


# ---------------------------------------------------------------------------
# torch custom op (registered on first use of this module with torch present).
# ---------------------------------------------------------------------------
_OP = None


_is_compiling = None


def _compiling():
    global _is_compiling
    fn = _is_compiling
    if fn is None:
        try:
            import torch.compiler as tc

            fn = tc.is_compiling
        except (ImportError, AttributeError):
            def fn():
                return False
        _is_compiling = fn
    return fn()


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
                   softmax_scale or None, causal, return_lse, backend or None, None, False)
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
    _fast_init()
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
    dtype = torch.float32 if device.type == "cpu" else torch.float16
    for name in BACKENDS:
        _probe(name)
    plan = _plan(device, _dtypes()[dtype], 64, 64, 8, 8, False, True, False, False,
                 _exact_only(), None)
    rows = {}
    ranked = list(plan.order) + [n for n in BACKENDS if n not in plan.order]
    for rank, name in enumerate(ranked):
        ok, info = _probe(name)
        rows[name] = {
            "available": ok,
            "version": info if ok else None,
            "why_not": None if ok else info,
            "usable": name in plan.order,
            "why_unusable": plan.declined.get(name),
            "constraints": _C.dispatch_caps(_ID[name]),
            "rank": rank,
        }
    rows["native"]["policy"] = plan.policy
    return rows


def _reset_for_tests():
    global _last
    _plans.clear()
    _failed.clear()
    _fast.clear()
    _cuda_ok.clear()
    _last = BackendChoice(None, "no call yet", {}, None)
