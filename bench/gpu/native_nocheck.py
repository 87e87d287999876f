"""peers_gpu.py --extra targets for the native kernel (PYTHONPATH=bench/gpu):

  varlen_attention  without the host copy of cu_seqlens (one device->host
                    sync per call), i.e. the path CUDA-graph capture takes;
                    the kernel clamps lengths on the device instead;
  small / big       the same with the tile shape forced (CSA_CUDA_TILE),
                    to compare both on every workload.
"""
import os

from comfy_sparse_attn import _native


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv):
    return _native.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                    max_seqlen_kv, check_cu_seqlens=False)


def _forced(tile):
    def f(*args):
        os.environ["CSA_CUDA_TILE"] = tile
        try:
            return varlen_attention(*args)
        finally:
            del os.environ["CSA_CUDA_TILE"]
    return f


small = _forced("small")
big = _forced("big")
