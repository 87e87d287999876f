"""Where the host time of one auto-dispatch call goes, on the standard
workloads: cProfile over back-to-back calls (GPU work queued, no sync inside
the loop), top functions by own time, plus the mean host time per call with
and without the profiler.

    python3 bench/gpu/host_profile.py [workload,...]
"""
import cProfile
import pstats
import sys
import time

import torch

import comfy_sparse_attn as csa
from comfy_sparse_attn import _workloads


def main():
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["windows", "tiny-seqs", "slat-self"]
    dev = torch.device("cuda")
    for w in _workloads.load("gpu"):
        if w.name not in names:
            continue
        q, k, v, cq, ck, mq, mk = _workloads.make_inputs(w, w.dtypes[0], dev)
        for _ in range(3):
            csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        torch.cuda.synchronize()
        n = 20
        t0 = time.perf_counter()
        for _ in range(n):
            csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        t_host = (time.perf_counter() - t0) / n
        torch.cuda.synchronize()
        t_all = (time.perf_counter() - t0) / n
        print("%s: backend %s; host %.1f us per call (queued), %.3f ms per call with the GPU"
              % (w.name, csa.get_varlen_backend().backend, t_host * 1e6, t_all * 1e3))
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(n):
            csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        pr.disable()
        torch.cuda.synchronize()
        pstats.Stats(pr).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
