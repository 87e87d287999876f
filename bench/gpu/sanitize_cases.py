"""A few small native-CUDA calls for `compute-sanitizer --tool memcheck`:
packed tiny sequences, a long causal one, odd head dims on misaligned rows,
D = 256, GQA, and garbage cu_seqlens without host checks (device clamping)."""
import torch

from comfy_sparse_attn import _native

dev = torch.device("cuda")


def cu(lens):
    c = torch.zeros(len(lens) + 1, dtype=torch.int32)
    c[1:] = torch.tensor(lens).cumsum(0)
    return c.to(dev)


def call(lq, lk, h, hkv, d, dv, dt, causal, misaligned=False, check=True):
    tq, tk = sum(lq), sum(lk)
    if misaligned:
        q = torch.randn(tq, h, d + 1, device=dev, dtype=dt)[..., 1:]
        k = torch.randn(tk, hkv, d + 1, device=dev, dtype=dt)[..., 1:]
        v = torch.randn(tk, hkv, dv + 1, device=dev, dtype=dt)[..., 1:]
    else:
        q = torch.randn(tq, h, d, device=dev, dtype=dt)
        k = torch.randn(tk, hkv, d, device=dev, dtype=dt)
        v = torch.randn(tk, hkv, dv, device=dev, dtype=dt)
    o, l = _native.varlen_attention(q, k, v, cu(lq), cu(lk), max(lq), max(lk), causal=causal,
                                    return_lse=True)
    torch.cuda.synchronize()
    assert torch.isfinite(o).all()


call([3, 64, 1, 17, 0, 40], [5, 64, 0, 17, 9, 40], 2, 1, 64, 64, torch.float16, True)
call([700], [300], 2, 2, 128, 128, torch.bfloat16, True)
call([33, 70], [33, 70], 2, 2, 40, 72, torch.float16, False, misaligned=True)
call([100, 3], [100, 3], 1, 1, 256, 256, torch.bfloat16, False)
call([65, 129], [65, 129], 2, 2, 17, 17, torch.float32, True, misaligned=True)
call([1024, 1024], [1024, 1024], 2, 2, 16, 16, torch.float16, False)

import os  # noqa: E402

from comfy_sparse_attn import _C  # noqa: E402


def knobs(**kv):
    """Sets exactly these COMFY_SPARSE_ATTN_CUDA_* knobs and reloads them."""
    for k in ("TILE", "HEADS_PER_CTA", "STAGES"):
        os.environ.pop("COMFY_SPARSE_ATTN_CUDA_" + k, None)
    for k, v in kv.items():
        os.environ["COMFY_SPARSE_ATTN_CUDA_" + k] = v
    _C.cuda_knobs_reload()


q = torch.randn(300, 4, 64, device=dev, dtype=torch.float16)
for tile, hpc in (("big", "1"), ("small", "1"), ("small", "3")):
    knobs(TILE=tile, HEADS_PER_CTA=hpc)
    for bad in ([0, -50, 400, 300], [0, 250, 100, 300], [5, 2**31 - 1, -(2**31), 7]):
        c = torch.tensor(bad, dtype=torch.int32, device=dev)
        _native.varlen_attention(q, q, q, c, c, 64, 64, causal=True, check_cu_seqlens=False)
        torch.cuda.synchronize()
    call([3, 64, 1, 17, 0, 40], [5, 64, 0, 17, 9, 40], 4, 2, 64, 64, torch.bfloat16, True)
knobs()
print("sanitize cases done")

# K/V ring depths 1..3 (forced) with several heads per CTA and one-block heads.
knobs(TILE="small", HEADS_PER_CTA="6")
for stages in ("1", "2", "3"):
    knobs(TILE="small", HEADS_PER_CTA="6", STAGES=stages)
    call([20], [20], 6, 6, 64, 64, torch.float16, False)
    call([3, 64, 1, 17, 0, 40], [5, 64, 0, 17, 9, 40], 6, 2, 64, 64, torch.bfloat16, True)
knobs()

# The cu_seqlens sanitizer on garbage (with max lengths that clamp) and B = 0.
for bad in ([0, -50, 400, 300], [5, 2**31 - 1, -(2**31), 7], [3]):
    c = torch.tensor(bad, dtype=torch.int32, device=dev)
    o1, o2 = torch.empty_like(c), torch.empty_like(c)
    f = torch.zeros(1, dtype=torch.int32, device=dev)
    _C.cuda_sanitize_cu_seqlens(c, c, o1, o2, f, 300, 300, 64, 64, 0)
    torch.cuda.synchronize()
    assert int(f[0]) != 0
print("sanitizer cases done")

# The kernels' own cu_seqlens check (RUN_CUDA_FLAGGED, what a remembered native
# call runs): garbage read raw by every tile kind and the Hopper kernel, the
# violation word on the device.
# 3000 rows in 3 sequences: the default plan takes the Hopper kernel there.
for tile in ("big", "small", "smallw", None):
    knobs(**({"TILE": tile} if tile else {}))
    for d in (64, 128):
        qd = torch.randn(3000, 1, d, device=dev, dtype=torch.bfloat16)
        for bad in ([0, -50, 4000, 3000], [0, 2500, 1000, 3000], [5, 2**31 - 1, -(2**31), 7]):
            c = torch.tensor(bad, dtype=torch.int32, device=dev)
            f = torch.zeros(1, dtype=torch.int32, device=dev)
            o = torch.empty_like(qd)
            _C.run(_C.RUN_CUDA_FLAGGED, qd, qd, qd, c, c, o, None, None, None, 1200, 1200, 0.0,
                   True, 0, 0, None, f)
            torch.cuda.synchronize()
            assert int(f[0]) != 0
knobs()
print("kernel check cases done")
