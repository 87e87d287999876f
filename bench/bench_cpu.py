"""CPU benchmark: our native kernel beside the torch CPU paths, same process.

    python3 bench/bench_cpu.py [--only NAME ...] [--dtype float32|bfloat16] [--reps N]
                               [--max-time S] [--threads N] [--md FILE]

For every "cpu" workload of workloads.json and each of its dtypes, times
  native      comfy_sparse_attn._native.varlen_attention (num_threads = torch's)
  per-seq     one F.scaled_dot_product_attention per sequence, then cat
  nested      SDPA on jagged nested tensors built from the packed ones
  dense-mask  the original fallback: one SDPA over all tokens with a full
              [T_q, T_kv] block-diagonal -inf mask (only where it fits in memory)
and reports ms (median), GFLOP/s (4*sum(Lq*Lkv)*H*D / t), speed-up of native
over the fastest torch path, and native's % of this machine's peak, measured
by peak_cpu.c: float32 FMA, or vdpbf16ps for bfloat16 under the avx512bf16
kernel (the only one that computes in bf16).
The machines are shared VMs whose speed drifts, so the paths of one workload
are timed interleaved, round-robin, and the median kept.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import workloads as W  # noqa: E402

DENSE_LIMIT_BYTES = 6 << 30  # mask + the score matrix SDPA materialises


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def measure_peak(threads):
    """GFLOP/s of peak_cpu.c: the best of a few runs (the VM drifts)."""
    src = os.path.join(HERE, "peak_cpu.c")
    exe = os.path.join(tempfile.gettempdir(), "csa_peak_cpu")
    try:
        subprocess.run(["cc", "-O2", "-march=native", "-pthread", src, "-o", exe], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("peak_cpu.c did not build (%s): no %% of peak" % e, file=sys.stderr)
        return {}
    best = {}
    for _ in range(3):
        out = subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True).stdout
        for line in out.splitlines():
            kind, val = line.split()
            best[kind] = max(best.get(kind, 0.0), float(val))
    return best


def uses_amx():
    """Whether the avx512bf16 kernel runs its bf16 products on AMX tiles here."""
    if os.environ.get("COMFY_SPARSE_ATTN_CPU_AMX") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            return " amx_bf16" in f.read()
    except OSError:
        return False


# ---- the paths -------------------------------------------------------------

def native_fn(q, k, v, cq, ckv, mq, mkv, threads):
    from comfy_sparse_attn import _native

    return lambda: _native.varlen_attention(q, k, v, cq, ckv, mq, mkv, num_threads=threads)


def per_seq_fn(q, k, v, cq, ckv, mq, mkv, threads):
    bq, bk = cq.tolist(), ckv.tolist()
    gqa = q.shape[1] != k.shape[1]

    def run():
        outs = []
        for i in range(len(bq) - 1):
            qs = q[bq[i]:bq[i + 1]].transpose(0, 1)
            ks = k[bk[i]:bk[i + 1]].transpose(0, 1)
            vs = v[bk[i]:bk[i + 1]].transpose(0, 1)
            outs.append(F.scaled_dot_product_attention(qs, ks, vs, enable_gqa=gqa).transpose(0, 1))
        return torch.cat(outs)

    return run


def nested_fn(q, k, v, cq, ckv, mq, mkv, threads):
    oq, okv = cq.long(), ckv.long()

    def run():
        nq = torch.nested.nested_tensor_from_jagged(q, oq, max_seqlen=mq).transpose(1, 2)
        nk = torch.nested.nested_tensor_from_jagged(k, okv, max_seqlen=mkv).transpose(1, 2)
        nv = torch.nested.nested_tensor_from_jagged(v, okv, max_seqlen=mkv).transpose(1, 2)
        return F.scaled_dot_product_attention(nq, nk, nv).transpose(1, 2).values()

    return run


def dense_fn(q, k, v, cq, ckv, mq, mkv, threads):
    tq, tk, h = q.shape[0], k.shape[0], q.shape[1]
    need = tq * tk * (q.element_size() + 4 * h)  # bool-ish mask + float scores per head
    if need > DENSE_LIMIT_BYTES:
        return None
    seg_q = torch.repeat_interleave(torch.arange(len(cq) - 1), (cq[1:] - cq[:-1]).long())
    seg_k = torch.repeat_interleave(torch.arange(len(ckv) - 1), (ckv[1:] - ckv[:-1]).long())

    def run():
        mask = torch.zeros(tq, tk, dtype=q.dtype)
        mask.masked_fill_(seg_q[:, None] != seg_k[None, :], float("-inf"))
        o = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                           v.transpose(0, 1)[None], attn_mask=mask)
        return o[0].transpose(0, 1)

    return run


PATHS = [("native", native_fn), ("per-seq", per_seq_fn), ("nested", nested_fn),
         ("dense-mask", dense_fn)]


def rel_err(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def bench_one(w, dtype, reps, threads, max_time):
    inputs = W.make_inputs(w, dtype)
    fns, notes, outs = {}, {}, {}
    for name, make in PATHS:
        try:
            fn = make(*inputs, threads)
            if fn is None:
                notes[name] = "needs a %d x %d mask" % (w.total_q, w.total_kv)
                continue
            outs[name] = fn()  # warm-up, and the output for the accuracy check
            fns[name] = fn
        except Exception as e:  # a torch path that cannot run this input
            notes[name] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:80])
    times = {name: [] for name in fns}
    t_start = time.perf_counter()
    r = 0
    while r < reps and (r < 2 or time.perf_counter() - t_start < max_time):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        r += 1
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    ref = next((outs[n] for n in ("per-seq", "nested", "dense-mask") if n in outs), None)
    err = rel_err(outs["native"], ref) if ref is not None and "native" in outs else float("nan")
    return ms, notes, err


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="workload names")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], help="one dtype only")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--max-time", type=float, default=30.0,
                    help="stop adding rounds (after 2) once a workload took this many seconds")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--md", help="also write the table (markdown) to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from comfy_sparse_attn import _C

    peak = measure_peak(args.threads)
    isa = _C.cpu_isa()
    head = ["# %s, %d threads, torch %s, native ISA %s, %s" % (
        cpu_model(), args.threads, torch.__version__, isa, time.strftime("%Y-%m-%d")),
        "# peak (peak_cpu.c, %d threads): %s" % (args.threads, ", ".join(
            "%s %.0f GFLOP/s" % kv for kv in sorted(peak.items())) or "n/a"),
        "",
        "| workload | dtype | native | per-seq SDPA | nested SDPA | dense-mask SDPA | "
        "native vs fastest torch | % of peak | rel. err |",
        "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(head), flush=True)
    rows = []
    for w in W.load("cpu"):
        if args.only and w.name not in args.only:
            continue
        for dt in w.dtypes:
            if args.dtype and dt != args.dtype:
                continue
            ms, notes, err = bench_one(w, dt, args.reps, args.threads, args.max_time)

            def cell(name):
                if name not in ms:
                    return "— (%s)" % notes.get(name, "n/a")
                return "%.2f ms · %.1f" % (ms[name], w.flops / ms[name] * 1e-6)

            torch_ms = [ms[n] for n in ("per-seq", "nested", "dense-mask") if n in ms]
            ratio = "%.2fx" % (min(torch_ms) / ms["native"]) if torch_ms and "native" in ms else "—"
            # the peak of the arithmetic the kernel runs: bf16 dot products
            # only under the avx512bf16 kernel (AMX tiles where present: no
            # peak measured for those), float32 FMA otherwise
            pk = peak.get("bf16_dot" if dt == "bfloat16" and isa == "avx512bf16" else "fp32_fma")
            if dt == "bfloat16" and isa == "avx512bf16" and uses_amx():
                pk = None
            pct = "%.0f%%" % (100 * w.flops / ms["native"] * 1e-6 / pk) if pk and "native" in ms else "—"
            row = "| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %.1e |" % (
                w.name, w.describe(), dt, cell("native"), cell("per-seq"), cell("nested"),
                cell("dense-mask"), ratio, pct, err)
            print(row, flush=True)
            rows.append(row)
    if args.md:
        with open(args.md, "w") as f:
            f.write("\n".join(head + rows) + "\n")


if __name__ == "__main__":
    main()
