"""comfy-sparse-attn: variable-length attention for ComfyUI's sparse 3D models.

Public API
----------
``dispatch_varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
max_seqlen_kv, *, softmax_scale=None, causal=False, return_lse=False,
backend=None, out=None, check_cu_seqlens=False)`` -> ``[T_q, H, D_v]`` (or
``(out, lse)``)

``setup_link(source, comfy_relative) -> bool``: stage a module file inside the
installed ComfyUI ``comfy`` package.

``list_backends(device=None)``, ``get_varlen_backend() -> BackendChoice``,
``use_backend(name=None, *, exact=None)``, ``check_cu_seqlens_errors(device=None)``,
``NoCapableBackendError``.

Importing this package does no work: torch and the backend libraries are
imported on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "dispatch_varlen_attention",
    "setup_link",
    "list_backends",
    "get_varlen_backend",
    "use_backend",
    "check_cu_seqlens_errors",
    "BackendChoice",
    "Signature",
    "NoCapableBackendError",
    "__version__",
]

_FROM_DISPATCH = ("dispatch_varlen_attention", "list_backends", "get_varlen_backend",
                  "use_backend", "check_cu_seqlens_errors", "BackendChoice", "Signature",
                  "NoCapableBackendError")


def __getattr__(name):
    # Lazy attribute access keeps `import comfy_sparse_attn` free of work.
    if name in _FROM_DISPATCH:
        from . import _dispatch

        value = getattr(_dispatch, name)
    elif name == "setup_link":
        from ._link import setup_link as value
    else:
        raise AttributeError("module 'comfy_sparse_attn' has no attribute %r" % name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return sorted(set(__all__) | {"__doc__", "__file__", "__name__", "__path__"})
