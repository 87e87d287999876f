"""comfy/sparse.py as this node package stages it (``setup_link`` in ``__init__.py``).

Node code imports ``comfy.sparse`` as if ComfyUI shipped it.  Once a ComfyUI release
ships a real ``comfy/sparse.py``, ``setup_link`` leaves that file alone and the nodes
use ComfyUI's own module: keep the functions here to the names such a module would
offer, so that the switch needs no change in the nodes.
"""
import torch

from comfy_sparse_attn import dispatch_varlen_attention


def cu_seqlens(lengths, device="cpu"):
    """int32 [B+1] cumulative lengths of a packed batch."""
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    if lengths:
        cu[1:] = torch.tensor(lengths, dtype=torch.int64).cumsum(0).to(torch.int32)
    return cu.to(device)


def varlen_attention(q, k, v, q_lengths, kv_lengths, *, causal=False, backend=None):
    """Attention over packed sequences: q [sum(q_lengths), H, D], k/v [sum(kv_lengths),
    H_kv, D(_v)] -> [sum(q_lengths), H, D_v], each sequence attending only to its own keys."""
    return dispatch_varlen_attention(
        q, k, v, cu_seqlens(q_lengths, q.device), cu_seqlens(kv_lengths, q.device),
        max(q_lengths, default=0), max(kv_lengths, default=0), causal=causal, backend=backend)
