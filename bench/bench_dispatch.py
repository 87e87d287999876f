"""Dispatch overhead and memory: auto dispatch against a direct call of the
backend it chooses, per call, on CPU and (when present) CUDA.

    python bench/bench_dispatch.py [--device cpu|cuda] [--iters N] [--rounds N] [--rows N]
                                   [--tiny] [--split] [--clock wall|thread] [--memory]

Overhead is host time per call on a tiny input (so the kernel itself is
short), the best of 15 (--rounds) interleaved rounds of N calls each; on CUDA the
rounds end with a synchronize and the direct call is the same torch path the
torch tier would take (launch-bound, so host time is what a caller sees).
Columns: auto with default arguments (CUDA: cu_seqlens sanitized on the
device, no sync), auto with check_cu_seqlens=True (CUDA: one host copy and a
sync), auto with the cu_seqlens on the CPU (CUDA only), C validation alone,
and dispatch alone (the chosen backend replaced by a stub: that forces the
full path, since a replaced adapter is never bypassed).

When auto picks native, "kernel alone" is one C call with its arguments
exported once and the output preallocated (on CUDA: the launch), and
"host us" = auto - kernel alone: everything a dispatched call adds to the
kernel (checks, decision, output allocation, the sanitizer launch on CUDA).
--rows 1 runs only the first (smallest) input; --tiny runs instead 1
sequence x 1 token with H 1, D 8, where the kernel is short enough for
"host us" to be read directly.  --split times the pieces of one
remembered auto call on that input (Python wrapper, C entry point,
allocation, kernel).  --memory (CUDA): peak extra
memory of auto dispatch on the standard GPU workloads, against the output
size.
"""
import argparse
import os
import sys
import time

import torch

import comfy_sparse_attn as csa
from comfy_sparse_attn import _dispatch, _native
from comfy_sparse_attn.backends import sdpa

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


# Entry points for peers_gpu.py --extra (its NAME=MODULE:FUNC form cannot
# carry keyword arguments that contain '='):
#   PYTHONPATH=bench python3 peers_gpu.py --extra auto=bench_dispatch:auto ...
def auto(q, k, v, cq, ck, mq, mk):
    return csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)


def auto_check(q, k, v, cq, ck, mq, mk):
    return csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, check_cu_seqlens=True)


def auto_host_cu(q, k, v, cq, ck, mq, mk):
    """cu_seqlens handed over on the CPU (as callers building them from lists do)."""
    return csa.dispatch_varlen_attention(q, k, v, cq.cpu(), ck.cpu(), mq, mk)


def sage2(q, k, v, cq, ck, mq, mk):
    return csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, backend="sage2")


def native(q, k, v, cq, ck, mq, mk):
    return csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, backend="native")


CLOCK = time.perf_counter
ROUNDS = 15


def per_call_us(fns, iters, device, rounds=None):
    """Host time per call of each fn, rounds interleaved (so load changes hit
    all alike); the minimum over rounds (the least-disturbed round).  CLOCK
    is wall time, or this thread's CPU time (--clock thread: on a loaded
    machine it leaves out the time other processes hold the core)."""
    rounds = rounds or ROUNDS
    for fn in fns:
        for _ in range(20):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = CLOCK()
            for _ in range(iters):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[i] = min(best[i], (CLOCK() - t0) / iters * 1e6)
    return best


def case(device, lens, h, d, dtype):
    g = torch.Generator().manual_seed(0)
    t = sum(lens)
    q = torch.randn(t, h, d, generator=g).to(dtype).to(device)
    k = torch.randn(t, h, d, generator=g).to(dtype).to(device)
    v = torch.randn(t, h, d, generator=g).to(dtype).to(device)
    cu = torch.zeros(len(lens) + 1, dtype=torch.int32)
    cu[1:] = torch.tensor(lens).cumsum(0)
    cu = cu.to(device)
    return q, k, v, cu, cu, max(lens), max(lens)


def kernel_alone(q, k, v, cq, ck, mq, mk):
    """The native kernel called from C with everything prepared: the floor
    a dispatched call is compared with.  CPU: one positional ``_C.run``
    (capsules made once, so neither keyword parsing nor exports count);
    CUDA: the launch."""
    from comfy_sparse_attn import _C

    x = _native._exporter()
    out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=q.device)
    if q.device.type == "cpu" and hasattr(_C, "run"):
        a = [x(t) for t in (q, k, v, cq, ck, out)]
        threads = torch.get_num_threads()
        return lambda: _C.run(_C.RUN_CPU, *a, None, None, None, int(mq), int(mk), 0.0, False,
                              threads, 0, None, None)
    caps = dict(q=x(q), k=x(k), v=x(v), cu_seqlens_q=x(cq), cu_seqlens_kv=x(ck), out=x(out),
                max_seqlen_q=int(mq), max_seqlen_kv=int(mk))
    if q.device.type == "cuda":
        stream = torch.cuda.current_stream(q.device).cuda_stream
        return lambda: _C.attention("cuda", stream=stream, **caps)
    threads = torch.get_num_threads()
    return lambda: _C.attention("cpu", num_threads=threads, **caps)


def overhead(device, iters, nrows=3, tiny=False):
    rows = []
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    inputs = (("1 seq x 16", [16], 4, 64), ("64 seqs x 64", [64] * 64, 4, 64),
              ("64 seqs x 128", [128] * 64, 4, 64))[:nrows]
    if tiny:
        # a kernel of well under a microsecond: auto - kernel alone is then
        # not lost in the kernel's own run-to-run spread
        inputs = (("1 seq x 1 (H 1, D 8)", [1], 1, 8),)
    for label, lens, h, d in inputs:
        q, k, v, cq, ck, mq, mk = case(device, lens, h, d, dtype)
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        chosen = csa.get_varlen_backend().backend
        if chosen == "native":
            direct = lambda: _native.varlen_attention(q, k, v, cq, ck, mq, mk)  # noqa: E731
        elif chosen == "sdpa":
            path = sdpa.choose(q, k, v, cq, mq, False, True)
            direct = lambda: sdpa.run(q, k, v, cq, ck, mq, mk, path=path)  # noqa: E731
            chosen = "sdpa/" + path
        else:
            from comfy_sparse_attn import _dispatch as dd
            ad = dd._adapter(chosen)
            direct = lambda: ad.run(q, k, v, cq, ck, mq, mk)  # noqa: E731
        auto = lambda: csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)  # noqa: E731
        check = lambda: csa.dispatch_varlen_attention(  # noqa: E731
            q, k, v, cq, ck, mq, mk, check_cu_seqlens=True)
        hcq, hck = cq.cpu(), ck.cpu()
        host_cu = lambda: csa.dispatch_varlen_attention(q, k, v, hcq, hck, mq, mk)  # noqa: E731
        val = lambda: _native.validate(q, k, v, cq, ck, mq, mk, check_cu_seqlens=False)  # noqa
        fns = [direct, auto, check, host_cu, val]
        if chosen == "native":
            fns.append(kernel_alone(q, k, v, cq, ck, mq, mk))
        t = per_call_us(fns, iters, device)
        t_direct, t_auto, t_check, t_host, t_val = t[:5]
        t_kernel = t[5] if len(t) > 5 else float("nan")
        # Dispatch alone: the chosen backend replaced by a stub that returns a
        # ready output, called directly and through dispatch.
        ad = _dispatch._adapter(csa.get_varlen_backend().backend)
        real_run, ready = ad.run, torch.empty_like(q)
        ad.run = lambda *a, **kw: ready
        try:
            stub = lambda: ad.run(q, k, v, cq, ck, mq, mk)  # noqa: E731
            t_stub, t_stub_auto = per_call_us([stub, auto], iters, device)
        finally:
            ad.run = real_run
        rows.append((label, chosen, t_direct, t_auto, t_auto - t_direct, t_check - t_direct,
                     t_host - t_direct, t_val, t_stub_auto - t_stub, t_kernel, t_auto - t_kernel))
    print("\n| device | input | chosen | direct us | auto us | overhead us | overhead, "
          "check_cu_seqlens=True, us | overhead, CPU cu_seqlens, us | C validation alone us | "
          "full path alone (stub backend) us | kernel alone us | host us (auto - kernel) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |"
              % ((device,) + r))


def split(device, iters, rounds=30):
    """Where a remembered auto call's host time goes, on the --tiny input
    (1 sequence x 1 token, H 1, D 8): each piece timed alone, all of them
    interleaved round by round, the best round kept.  "fast_call" is the C
    entry point without the Python function around it; with out= it
    allocates nothing; "kernel alone" is the positional C run with
    everything prepared (CPU) -- so auto - fast_call is the Python wrapper,
    fast_call - (fast_call, out=) the allocation, and (fast_call, out=) -
    kernel alone the key, lookup and tensor reads in C."""
    from comfy_sparse_attn import _C

    q, k, v, cq, ck, mq, mk = case(device, [1], 1, 8,
                                   torch.float16 if device.type == "cuda" else torch.float32)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    out = torch.empty(1, 1, 8, dtype=q.dtype, device=device)
    fns = {
        "auto": lambda: csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk),
        "auto, out=": lambda: csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, out=out),
        "torch.empty (the output)": lambda: torch.empty(1, 1, 8, dtype=q.dtype, device=device),
    }
    if hasattr(_C, "fast_call"):
        fns["fast_call"] = lambda: _C.fast_call(q, k, v, cq, ck, mq, mk, None, False, False,
                                                None, None, False, None)
        fns["fast_call, out="] = lambda: _C.fast_call(q, k, v, cq, ck, mq, mk, None, False,
                                                      False, None, out, False, None)
    if device.type == "cpu":
        fns["kernel alone"] = kernel_alone(q, k, v, cq, ck, mq, mk)
    t = per_call_us(list(fns.values()), iters, device, rounds)
    print("\n| piece (1 seq x 1, H 1, D 8, %s) | us per call |" % device)
    print("|---|---|")
    for name, us in zip(fns, t):
        print("| %s | %.2f |" % (name, us))


def memory():
    from comfy_sparse_attn._workloads import lengths, read

    dev = torch.device("cuda")
    print("\n| workload | chosen | peak extra MiB | output MiB | ratio |")
    print("|---|---|---|---|---|")
    for w in read()["gpu"]:
        lq = lengths(w["q"])
        lk = lengths(w["kv"]) or lq
        dt = getattr(torch, w["dtype"])
        g = torch.Generator(device=dev).manual_seed(0)
        q = torch.randn(sum(lq), w["H"], w["D"], device=dev, dtype=dt, generator=g)
        k = torch.randn(sum(lk), w["H_kv"], w["D"], device=dev, dtype=dt, generator=g)
        v = torch.randn(sum(lk), w["H_kv"], w["D"], device=dev, dtype=dt, generator=g)
        c = lambda ls: torch.tensor([0] + ls, device=dev).cumsum(0).to(torch.int32)  # noqa
        cq, ck = c(lq), c(lk)
        csa.dispatch_varlen_attention(q, k, v, cq, ck, max(lq), max(lk))
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = csa.dispatch_varlen_attention(q, k, v, cq, ck, max(lq), max(lk))
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        osz = out.numel() * out.element_size()
        print("| %s | %s | %.1f | %.1f | %.2f |" % (w["name"], csa.get_varlen_backend().backend,
                                                    peak / 2**20, osz / 2**20, peak / osz))
        del q, k, v, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default=None)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=15,
                    help="interleaved rounds; the best is kept (more on a loaded machine)")
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=int, default=3, help="run the first N inputs only")
    ap.add_argument("--split", action="store_true",
                    help="only where a remembered auto call's host time goes (--tiny input)")
    ap.add_argument("--tiny", action="store_true",
                    help="one input only: 1 sequence x 1 token, H 1, D 8 (host time alone)")
    ap.add_argument("--clock", choices=("wall", "thread"), default="wall",
                    help="thread: this thread's CPU time (CPU device, 1 thread, loaded machines)")
    a = ap.parse_args()
    global CLOCK, ROUNDS
    ROUNDS = a.rounds
    if a.clock == "thread":
        CLOCK = time.thread_time
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print("# torch", torch.__version__, "|",
          torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "|",
          "threads", torch.get_num_threads())
    if a.split:
        split(dev, a.iters)
        return
    overhead(dev, a.iters, a.rows, a.tiny)
    if a.memory and dev.type == "cuda":
        memory()


if __name__ == "__main__":
    main()
