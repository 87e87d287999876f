"""Where the host time of one auto-dispatch call goes, on the standard
workloads: cProfile over back-to-back calls (GPU work queued, no sync inside
the loop), top functions by own time, plus the mean host time per call with
and without the profiler.  Where the build has ``_C.run``, the host time
of the C calls alone (arguments exported once, output preallocated) splits
what is C's from what is Python's: the attention launch, the sanitizer
launch, both in one call, the attention launch checking cu_seqlens itself
(what a remembered native call runs), validation, torch.empty of the
output, and torch's own FA2 varlen op for scale.  Where
the build has ``_C.fast_call`` (the remembered call done in C), it also
times that call without the Python function around it, and says how many
of the timed auto calls C served (``_C.fast_stats``).

    python3 bench/gpu/host_profile.py [workload,...]

Before / after comparisons: run it once per build, e.g. with PYTHONPATH
pointing at each install (bench/gpu/host_before_after.sh does both in one
device call).
"""
import cProfile
import pstats
import sys
import time

import torch

import comfy_sparse_attn as csa
from comfy_sparse_attn import _workloads


def host_us(fn, n):
    """Host time per call of fn, n calls queued back to back (GPU not waited for)."""
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    t = (time.perf_counter() - t0) / n
    torch.cuda.synchronize()
    return t * 1e6


def c_split(q, k, v, cq, ck, mq, mk, n=50):
    from comfy_sparse_attn import _C, _native

    if not hasattr(_C, "run"):
        return
    x = _native._exporter()
    dev = q.device
    out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=dev)
    a = [x(t) for t in (q, k, v, cq, ck, out)]
    stream = torch.cuda.current_stream(dev).cuda_stream
    flag = _native._flag(dev.index)[2]
    scap = _native.scratch(dev, stream, cq.shape[0])[0]
    # the violation word on the device, as the fast path passes it (address resolved)
    dflag = x(torch.zeros(1, dtype=torch.int32, device=dev))
    fns = {
        "C attention launch": lambda: _C.attention(
            "cuda", q=a[0], k=a[1], v=a[2], cu_seqlens_q=a[3], cu_seqlens_kv=a[4], out=a[5],
            max_seqlen_q=mq, max_seqlen_kv=mk, stream=stream),
        "C run: sanitize + attention": lambda: _C.run(
            _C.RUN_CUDA_SANITIZED, *a, None, None, None, mq, mk, 0.0, False, 0, stream, scap,
            flag),
        "C run: attention checking cu_q/kv": lambda: _C.run(
            _C.RUN_CUDA_FLAGGED, *a, None, None, None, mq, mk, 0.0, False, 0, stream, None,
            dflag),
        "C run: validate + sanitize": lambda: _C.run(
            _C.RUN_SANITIZE, *a, None, None, None, mq, mk, 0.0, False, 0, stream, scap, flag),
        "C run: validate": lambda: _C.run(
            _C.RUN_VALIDATE, *a, None, None, None, mq, mk, 0.0, False, 0, stream, None, None),
        "torch.empty (output)": lambda: torch.empty(q.shape[0], q.shape[1], v.shape[2],
                                                    dtype=q.dtype, device=dev),
        "6 DLPack exports": lambda: [x(t) for t in (q, k, v, cq, ck, out)],
    }
    if q.dtype in (torch.float16, torch.bfloat16):
        # what a peer's host side costs: torch's FA2 varlen op, called directly
        fns["torch FA2 varlen op (peer)"] = lambda: torch.ops.aten._flash_attention_forward(
            q, k, v, cq, ck, mq, mk, 0.0, False, False)
    if hasattr(_C, "fast_call"):
        # the whole remembered call, entered from C (no Python function around it)
        fns["C fast_call (whole call)"] = lambda: _C.fast_call(
            q, k, v, cq, ck, mq, mk, None, False, False, None, None, False, None)
    for name, fn in fns.items():
        fn()
        print("  %-30s %6.1f us per call (host)" % (name, min(host_us(fn, n) for _ in range(5))))


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
        auto = lambda: csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)  # noqa: E731
        from comfy_sparse_attn import _C

        stats = getattr(_C, "fast_stats", None)
        if stats is not None:
            stats(True)
        print("  %-30s %6.1f us per call (host, min of 5 x 50)" % (
            "auto", min(host_us(auto, 50) for _ in range(5))))
        if stats is not None:
            print("  %-30s %s" % ("C fast path (run, record, miss)", stats()))
        c_split(q, k, v, cq, ck, mq, mk)
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(n):
            csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        pr.disable()
        torch.cuda.synchronize()
        pstats.Stats(pr).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
