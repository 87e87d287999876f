"""Dispatch overhead and memory: auto dispatch against a direct call of the
backend it chooses, per call, on CPU and (when present) CUDA.

    python bench/bench_dispatch.py [--device cpu|cuda] [--iters N] [--memory]

Overhead is host time per call on a tiny input (so the kernel itself is
short), the best of 15 interleaved rounds of N calls each; on CUDA the
rounds end with a synchronize and the direct call is the same torch path the
torch tier would take (launch-bound, so host time is what a caller sees).
Columns: auto with default arguments (CUDA: cu_seqlens sanitized on the
device, no sync), auto with check_cu_seqlens=True (CUDA: one host copy and a
sync), auto with the cu_seqlens on the CPU (CUDA only), C validation alone,
and dispatch alone (the chosen backend replaced by a stub).  --memory
(CUDA): peak extra memory of auto dispatch on the standard GPU workloads,
against the output size.
"""
import argparse
import os
import statistics
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


def per_call_us(fns, iters, device, rounds=15):
    """Host time per call of each fn, rounds interleaved (so load changes hit
    all alike); the minimum over rounds (the least-disturbed round)."""
    for fn in fns:
        for _ in range(20):
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[i] = min(best[i], (time.perf_counter() - t0) / iters * 1e6)
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


def overhead(device, iters):
    rows = []
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    for label, lens in (("1 seq x 16", [16]), ("64 seqs x 64", [64] * 64),
                        ("64 seqs x 128", [128] * 64)):
        q, k, v, cq, ck, mq, mk = case(device, lens, 4, 64, dtype)
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
        t_direct, t_auto, t_check, t_host, t_val = per_call_us(
            [direct, auto, check, host_cu, val], iters, device)
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
                     t_host - t_direct, t_val, t_stub_auto - t_stub))
    print("\n| device | input | chosen | direct us | auto us | overhead us | overhead, "
          "check_cu_seqlens=True, us | overhead, CPU cu_seqlens, us | C validation alone us | "
          "dispatch alone (stub backend) us |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| %s | %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |"
              % ((device,) + r))


def memory():
    from comfy_sparse_attn.__main__ import WORKLOADS, lengths

    dev = torch.device("cuda")
    print("\n| workload | chosen | peak extra MiB | output MiB | ratio |")
    print("|---|---|---|---|---|")
    for w in WORKLOADS["gpu"]:
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
    ap.add_argument("--memory", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    print("# torch", torch.__version__, "|",
          torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", "|",
          "threads", torch.get_num_threads())
    overhead(dev, a.iters)
    if a.memory and dev.type == "cuda":
        memory()


if __name__ == "__main__":
    main()
