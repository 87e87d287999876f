"""An example ComfyUI custom node package using comfy-sparse-attn.

Install: copy (or symlink) this folder into ``ComfyUI/custom_nodes/`` in a Python
environment where ``comfy-sparse-attn`` is installed.  On load it stages ``sparse.py``
as ``comfy/sparse.py`` with ``setup_link`` (steps aside once ComfyUI ships that file),
then registers one node, "Sparse attention check", which runs varlen attention on a
packed batch and reports the backend chosen and its error against a float64 reference.
"""
import logging
import os

from comfy_sparse_attn import setup_link

log = logging.getLogger("comfy_sparse_attn.example")

# Staging happens when ComfyUI loads the package (once per process), before any node
# module imports comfy.sparse.  True means a link was created or repaired on disk.
if setup_link(os.path.join(os.path.dirname(os.path.abspath(__file__)), "sparse.py"),
              "sparse.py"):
    log.info("staged comfy/sparse.py")

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
