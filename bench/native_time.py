"""Time the native CPU kernel alone on one workload, for comparing builds.

    python3 bench/native_time.py WORKLOAD DTYPE [CALLS] [--threads N]

Prints the median wall time of CALLS calls (after one warm-up) of
comfy_sparse_attn._native.varlen_attention on the "cpu" workload of that name
(bench/workloads.json), its GFLOP/s, GFLOP/s per CPU second, and the ISA the
kernel ran.  Two builds are compared by installing each into its own
directory and alternating processes, PYTHONPATH=dir_a, dir_b, dir_a, ...,
so that the drift of a shared machine hits both alike.
"""
import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import workloads as W  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workload")
    ap.add_argument("dtype", choices=["float32", "bfloat16"])
    ap.add_argument("calls", type=int, nargs="?", default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from comfy_sparse_attn import _C, _native

    torch.set_num_threads(args.threads)
    w = next(x for x in W.load("cpu") if x.name == args.workload)
    q, k, v, cq, ckv, mq, mkv = W.make_inputs(w, args.dtype)

    def call():
        return _native.varlen_attention(q, k, v, cq, ckv, mq, mkv, num_threads=args.threads)

    call()
    wall, cpu = [], []
    for _ in range(args.calls):
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ms = 1e3 * statistics.median(wall)
    print("%s %s ms %.1f GFLOP/s %.1f per-CPU-s %.1f isa %s" % (
        w.name, args.dtype, ms, w.flops / ms * 1e-6, w.flops / statistics.median(cpu) * 1e-9,
        _C.cpu_isa()))


if __name__ == "__main__":
    main()
