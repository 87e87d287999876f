"""peers_gpu.py --extra target: the native kernel without the host copy of
cu_seqlens (one device->host sync per call), i.e. the path CUDA-graph capture
takes; the kernel clamps lengths on the device instead."""
from comfy_sparse_attn import _native


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv):
    return _native.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                    max_seqlen_kv, check_cu_seqlens=False)
