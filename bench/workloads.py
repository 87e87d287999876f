"""The standard workloads for the scripts in bench/: the package's own list.

The definitions live in ``src/comfy_sparse_attn/workloads.json`` (shipped with the
package, so ``python -m comfy_sparse_attn bench`` and these scripts time the same
shapes); this module re-exports ``comfy_sparse_attn._workloads`` so that
``import workloads as W`` keeps working from bench/: ``W.load("cpu")``,
``W.make_inputs(w, dtype, device)``, ``W.lengths(spec)``, ``W.cu_seqlens(lens)``.
"""
from comfy_sparse_attn._workloads import (  # noqa: F401
    DEFAULT_PATH,
    SECTIONS,
    Workload,
    cu_seqlens,
    lengths,
    load,
    make_inputs,
    read,
)
