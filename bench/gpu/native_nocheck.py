"""peers_gpu.py --extra targets for the native kernel (PYTHONPATH=bench/gpu):

  varlen_attention  without the host copy of cu_seqlens (one device->host
                    sync per call), i.e. the path CUDA-graph capture takes;
                    the kernel clamps lengths on the device instead;
  small / big       the same with the tile shape forced (COMFY_SPARSE_ATTN_CUDA_TILE),
                    to compare both on every workload;
  s2                the same with a 2-stage K/V ring (COMFY_SPARSE_ATTN_CUDA_STAGES=2;
                    the default takes 3 stages where occupancy allows);
  mma               the same on the mma.sync kernel where Hopper would take
                    the wgmma kernel (COMFY_SPARSE_ATTN_CUDA_SM90=0).
"""
import os

from comfy_sparse_attn import _C, _native


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv):
    return _native.varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q,
                                    max_seqlen_kv, check_cu_seqlens=False)


def _forced(name, value):
    def f(*args):
        os.environ[name] = value
        _C.cuda_knobs_reload()  # the C side reads its knobs once otherwise
        try:
            return varlen_attention(*args)
        finally:
            del os.environ[name]
            _C.cuda_knobs_reload()
    return f


small = _forced("COMFY_SPARSE_ATTN_CUDA_TILE", "small")
big = _forced("COMFY_SPARSE_ATTN_CUDA_TILE", "big")
s2 = _forced("COMFY_SPARSE_ATTN_CUDA_STAGES", "2")
mma = _forced("COMFY_SPARSE_ATTN_CUDA_SM90", "0")
