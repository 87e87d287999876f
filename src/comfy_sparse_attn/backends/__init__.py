"""One small adapter per attention library, keyed by the C backend list.

The backends and their constraints live in C (``csrc/core/dispatch.c``,
exported as ``_C.BACKEND``); the adapter of backend ``name`` is the module
``comfy_sparse_attn.backends.<name>``, so adding a backend is one row in that
table plus one file here.  Each adapter imports its library lazily and has:

``load()``
    Imports the library (raises ImportError when absent); returns a version
    string for reports, whose first ``N.`` is the library's major version (a
    fact for the version rules of the C table).
``run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
softmax_scale, causal, out, return_lse, host_lengths, lengths_equal, ...)``
    Returns ``out`` (or ``(out, lse)`` when asked and supported).  Inputs
    reaching it were validated, and device ``cu_seqlens`` were sanitized, by
    dispatch.  ``host_lengths()`` gives the cu_seqlens values on the host as
    two lists (one device-to-host copy per call at most, made on demand).
    When ``out`` is given the result is written into it.
``needs_host_lengths(q, k, v, cu_seqlens_q, max_seqlen_q, causal,
lengths_equal)`` (optional)
    Whether ``run`` will call ``host_lengths()`` for this call; dispatch then
    checks the values on the host (it has to copy them anyway) instead of on
    the device.

An adapter that cannot take a particular call for a reason that is no fault
of its own (e.g. it needs host lengths while a CUDA graph is being captured)
raises :class:`Declined`: dispatch moves on to the next backend and does not
count it as a failure.
"""
from __future__ import annotations

import importlib


class Declined(Exception):
    """This backend cannot take this call right now; not a failure."""


def adapter(name):
    """The adapter module of backend ``name`` (a name of ``_C.BACKEND``)."""
    return importlib.import_module("%s.%s" % (__name__, name))
