"""csa__cuda_attn_args (csrc/cuda/attn_args.h) as a ctypes structure, field
for field, for the development harnesses that launch the attention kernels
themselves (tile_variants.py, sm90/check.py)."""
import ctypes


class Args(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in ("q", "k", "v", "out", "lse", "cu_q", "cu_kv")] + \
        [(n, ctypes.c_int64) for n in ("q_st_t", "q_st_h", "k_st_t", "k_st_h", "v_st_t", "v_st_h",
                                       "o_st_t", "o_st_h", "lse_st_h", "lse_st_t")] + \
        [(n, ctypes.c_int32) for n in ("t_q", "t_kv", "heads", "heads_kv", "d", "dv", "batch",
                                       "max_q", "max_kv", "causal", "vec", "small", "hpc",
                                       "stages")] + \
        [("scale", ctypes.c_float), ("scale_log2", ctypes.c_float)] + \
        [("cu_flags", ctypes.c_void_p)] + \
        [(n, ctypes.c_int32) for n in ("cu_max_q", "cu_max_kv")]
