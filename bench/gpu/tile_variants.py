"""Time mma.sync tile variants of csrc/cuda/attn_fwd.cu before they enter the
tile table: each variant is the kernel body instantiated with other
(DP, BN, MT, QREG, MINB, MH) numbers in a side cubin, launched here through
the driver API with the launch plan's rules (grid, dynamic shared memory),
checked against a float32 reference and timed next to the package's native
call, interleaved round by round, on peers' standard workloads.

    python3 bench/gpu/tile_variants.py VARIANTS.cubin WORKLOADS.json \
        patches-hd16=f16_d16_n1:16:32:1:1:3,f16_d16_n2:16:64:1:1:3 ...

Each variant: NAME:DP:BN:MT:HPC:STAGES[:x3] (NAME = csa_attn_fwd_NAME in the
cubin; MH kernels take HPC > 1; x3: an fp32 split-product kernel, whose
shared memory holds hi and lo halves).  The error is measured against the
package's own native call in float32 (itself checked against float64 by the
test suite).
"""
import ctypes
import json
import math
import sys

import torch

from comfy_sparse_attn import dispatch_varlen_attention
from attn_args import Args  # the kernels' args struct
from knobs import inputs  # same inputs as the knob sweeps

cuda = ctypes.CDLL("libcuda.so.1")


def check(rc, what):
    if rc != 0:
        raise RuntimeError("%s failed: CUresult %d" % (what, rc))


class Variant:
    smem_max = {}

    def __init__(self, mod, spec):
        name, dp, bn, mt, hpc, stages, *x3 = spec.split(":")
        self.name = name
        self.dp, self.bn, self.mt = int(dp), int(bn), int(mt)
        self.hpc, self.stages = int(hpc), int(stages)
        self.fn = ctypes.c_void_p()
        check(cuda.cuModuleGetFunction(ctypes.byref(self.fn), mod,
                                       ("csa_attn_fwd_" + name).encode()), "get " + name)
        qbufs = self.stages if self.hpc > 1 else 1
        self.smem = (qbufs * 64 * self.mt + 2 * self.stages * self.bn) * (self.dp + 8) * 2 * \
            (2 if x3 == ["x3"] else 1)
        # one function may serve several variants (stages): its dynamic
        # shared-memory limit must cover the largest
        Variant.smem_max[name] = max(Variant.smem_max.get(name, 0), self.smem)
        check(cuda.cuFuncSetAttribute(self.fn, 8, ctypes.c_int(Variant.smem_max[name])),
              "smem attr")

    def launch(self, a, stream):
        grid_x = (a.t_q + 64 * self.mt - 1) // (64 * self.mt)
        grid_y = (a.heads + self.hpc - 1) // self.hpc
        a.hpc, a.stages = self.hpc, self.stages
        params = (ctypes.c_void_p * 1)(ctypes.cast(ctypes.byref(a), ctypes.c_void_p))
        check(cuda.cuLaunchKernel(self.fn, grid_x, grid_y, 1, 128, 1, 1, self.smem,
                                  ctypes.c_void_p(stream), params, None), "launch " + self.name)


def make_args(q, k, v, out, cq, ck, mq, mk):
    a = Args()
    d = q.shape[2]
    a.q, a.k, a.v, a.out = q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr()
    a.lse, a.cu_q, a.cu_kv = None, cq.data_ptr(), ck.data_ptr()
    a.q_st_t, a.q_st_h, a.k_st_t, a.k_st_h = q.stride(0), q.stride(1), k.stride(0), k.stride(1)
    a.v_st_t, a.v_st_h, a.o_st_t, a.o_st_h = v.stride(0), v.stride(1), out.stride(0), out.stride(1)
    a.t_q, a.t_kv, a.heads, a.heads_kv = q.shape[0], k.shape[0], q.shape[1], k.shape[1]
    a.d, a.dv, a.batch, a.max_q, a.max_kv = d, v.shape[2], cq.numel() - 1, mq, mk
    a.causal, a.vec, a.small = 0, 1, 1
    a.scale = 1.0 / math.sqrt(d)
    a.scale_log2 = a.scale * 1.4426950408889634
    return a


def timed(fn, reps=10):
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    ev[0].record()
    for _ in range(reps):
        fn()
    ev[1].record()
    torch.cuda.synchronize()
    return ev[0].elapsed_time(ev[1]) / reps


def main():
    torch.cuda.init()
    torch.empty(1, device="cuda")
    mod = ctypes.c_void_p()
    check(cuda.cuModuleLoad(ctypes.byref(mod), sys.argv[1].encode()), "load cubin")
    with open(sys.argv[2]) as f:
        ws = {w["name"]: w for w in json.load(f)["gpu"]}
    for arg in sys.argv[3:]:
        wname, specs = arg.split("=")
        w = ws[wname]
        q, k, v, cq, ck, mq, mk = inputs(w)
        ref = dispatch_varlen_attention(q.float(), k.float(), v.float(), cq, ck, mq, mk,
                                        backend="native")
        stream = torch.cuda.current_stream().cuda_stream
        runs = {"native": lambda: dispatch_varlen_attention(q, k, v, cq, ck, mq, mk,
                                                            backend="native")}
        for spec in specs.split(","):
            var = Variant(mod, spec)
            out = torch.full_like(q[..., : v.shape[2]], float("nan"))
            a = make_args(q, k, v, out, cq, ck, mq, mk)
            var.launch(a, stream)
            torch.cuda.synchronize()
            err = ((out.float() - ref).norm() / ref.norm()).item()
            print("%s %s: rel err %.2e, NaN %d" % (wname, var.name, err,
                                                   int(out.isnan().sum())), flush=True)
            runs[var.name + "/s%d/h%d" % (var.stages, var.hpc)] = \
                (lambda var=var, a=a: var.launch(a, stream))
        times = {n: [] for n in runs}
        for fn in runs.values():
            fn()
        for _ in range(7):
            for n, fn in runs.items():
                times[n].append(timed(fn))
        for n, t in times.items():
            print("| %s | %s | %.3f |" % (wname, n, sorted(t)[len(t) // 2]), flush=True)


if __name__ == "__main__":
    main()
