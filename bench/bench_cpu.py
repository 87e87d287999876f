"""CPU benchmark: our native kernel beside the torch CPU paths, same process.

    python3 bench/bench_cpu.py [--only NAME ...] [--dtype float32|bfloat16] [--reps N]
                               [--max-time S] [--drop-slower X] [--threads N] [--md FILE]
                               [--isa NAME] [--native-only] [--dense-limit-gb G] [--peak-runs N]
                               [--settle S]

For every "cpu" workload of workloads.json and each of its dtypes, times
  native      comfy_sparse_attn._native.varlen_attention (num_threads = torch's)
  per-seq     one 4-D F.scaled_dot_product_attention per sequence ([1, H, L, D]
              views, enable_gqa where H != H_kv), then cat
  nested      SDPA on jagged nested tensors built from the packed ones
  dense-mask  one 4-D SDPA over all tokens with an additive block-diagonal
              mask, built once outside the timed call (where it fits in memory)
each torch path called the way torch is fastest (see peer_kernel: every cell
names the SDPA kernel the path ran, "flash" or "math"), and reports ms
(median), GFLOP/s (4*sum(Lq*Lkv)*H*D / t), native's speed-up over the fastest
torch path (median over rounds of the per-round ratio), and native's % of
this machine's peak: FLOPs per CPU second of native's threads against the
same measure of a register-only loop (peak_cpu.c: float32 FMA, or vdpbf16ps
for bfloat16 under the avx512bf16 kernel, the only one that computes in
bf16; peak_amx.c: TDPBF16PS, where that kernel runs bf16 on AMX tiles, and
every bf16 row's share of it wherever it was measured), so that other load
on a shared machine does not count as slowness.  A last table gives native
bf16 speed over native float32 speed per workload.
The machines are shared VMs whose speed drifts, so the paths of one workload
are timed interleaved, round-robin (at least 3 rounds), and the median kept;
each call starts after --settle seconds of idle (torch's OpenMP workers spin
for a while after its calls, taking CPU from the next call on those cores).
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


def _run_peak(src, flags, threads, runs, best, notes):
    """Builds and runs one peak program (lines "kind GFLOPS" or "kind
    unavailable (why)"), keeping the best of 3 runs per kind."""
    exe = os.path.join(tempfile.gettempdir(), "csa_%s_%d" % (os.path.basename(src)[:-2], os.getpid()))
    try:
        subprocess.run(["cc", "-O2"] + flags + ["-pthread", src, "-o", exe], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        notes.append("%s did not build (%s)" % (os.path.basename(src), e))
        return
    try:
        for _ in range(3):
            out = subprocess.run([exe, str(threads), str(runs)], check=True, capture_output=True,
                                 text=True).stdout
            for line in out.splitlines():
                kind, val = line.split(None, 1)
                if val.startswith("unavailable"):
                    notes.append("%s %s" % (kind, val))
                    return
                best[kind] = max(best.get(kind, 0.0), float(val))
    finally:
        os.remove(exe)


def measure_peak(threads, runs=20):
    """GFLOP/s of the register-only peak loops (per CPU second of their
    threads), best of a few runs: peak_cpu.c (float32 FMA, vdpbf16ps) and,
    where the CPU has AMX and the OS grants the tile state, peak_amx.c (bf16
    TDPBF16PS).  Returns ({kind: GFLOP/s}, [notes])."""
    best, notes = {}, []
    _run_peak(os.path.join(HERE, "peak_cpu.c"), ["-march=native"], threads, runs, best, notes)
    if platform.machine() in ("x86_64", "AMD64"):
        _run_peak(os.path.join(HERE, "peak_amx.c"), ["-mamx-tile", "-mamx-bf16"], threads,
                  max(1, runs // 2), best, notes)
    for n in notes:
        print("# " + n, file=sys.stderr)
    return best, notes


def uses_amx(peak):
    """Whether the avx512bf16 kernel runs its bf16 products on AMX tiles here:
    the kernel asks the OS for the tile state as peak_amx.c does (isa.c), so
    AMX is used where peak_amx.c could measure it, unless turned off."""
    if os.environ.get("COMFY_SPARSE_ATTN_CPU_AMX") == "0":
        return False
    return "bf16_amx" in peak


# ---- the paths -------------------------------------------------------------
# Each torch peer is called the way torch is fastest on the CPU: SDPA takes its
# flash kernel (aten::_scaled_dot_product_flash_attention_for_cpu) only for
# 4-D [B, H, L, D] inputs; 3-D [H, L, D] views silently take the math
# fallback, several times slower.  peer_kernel() names the kernel a peer ran,
# and every row reports it, so a peer on the math fallback is visible.

FLASH_EVENT = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATH_EVENT = "aten::_scaled_dot_product_attention_math"


def native_fn(q, k, v, cq, ckv, mq, mkv, threads):
    from comfy_sparse_attn import _native

    return lambda: _native.varlen_attention(q, k, v, cq, ckv, mq, mkv, num_threads=threads)


def _sdpa_kw(q, k):
    return {"enable_gqa": True} if q.shape[1] != k.shape[1] else {}


def per_seq_fn(q, k, v, cq, ckv, mq, mkv, threads):
    """One 4-D SDPA per sequence on [1, H, L, D] views (no copies in), then cat."""
    bq, bk = cq.tolist(), ckv.tolist()
    kw = _sdpa_kw(q, k)
    qh, kh, vh = q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None]

    def run():
        outs = []
        for i in range(len(bq) - 1):
            o = F.scaled_dot_product_attention(qh[:, :, bq[i]:bq[i + 1]], kh[:, :, bk[i]:bk[i + 1]],
                                               vh[:, :, bk[i]:bk[i + 1]], **kw)
            outs.append(o[0].transpose(0, 1))
        return torch.cat(outs)

    return run


def nested_fn(q, k, v, cq, ckv, mq, mkv, threads):
    """SDPA on jagged nested tensors built (as views) from the packed ones."""
    oq, okv = cq.long(), ckv.long()
    if q.shape[1] != k.shape[1]:  # nested SDPA has no enable_gqa: repeat the kv heads
        g = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)

    def run():
        nq = torch.nested.nested_tensor_from_jagged(q, oq, max_seqlen=mq).transpose(1, 2)
        nk = torch.nested.nested_tensor_from_jagged(k, okv, max_seqlen=mkv).transpose(1, 2)
        nv = torch.nested.nested_tensor_from_jagged(v, okv, max_seqlen=mkv).transpose(1, 2)
        return F.scaled_dot_product_attention(nq, nk, nv).transpose(1, 2).values()

    return run


def dense_fn(q, k, v, cq, ckv, mq, mkv, threads):
    """One 4-D SDPA over all tokens with an additive block-diagonal mask, built
    once outside the timed call (as a caller with fixed lengths would cache
    it); only where mask and per-thread score blocks fit in memory."""
    tq, tk = q.shape[0], k.shape[0]
    if tq * tk * q.element_size() > DENSE_LIMIT_BYTES:
        return None
    seg_q = torch.repeat_interleave(torch.arange(len(cq) - 1), (cq[1:] - cq[:-1]).long())
    seg_k = torch.repeat_interleave(torch.arange(len(ckv) - 1), (ckv[1:] - ckv[:-1]).long())
    mask = torch.zeros(tq, tk, dtype=q.dtype)
    mask.masked_fill_(seg_q[:, None] != seg_k[None, :], float("-inf"))
    mask = mask[None, None]
    kw = _sdpa_kw(q, k)
    qh, kh, vh = q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None]

    def run():
        return F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, **kw)[0].transpose(0, 1)

    return run


PATHS = [("native", native_fn), ("per-seq", per_seq_fn), ("nested", nested_fn),
         ("dense-mask", dense_fn)]
TORCH_PATHS = ("per-seq", "nested", "dense-mask")


def peer_kernel(fn):
    """'flash' or 'math': which SDPA kernel a torch peer's call ran (profiler
    event names); 'math' marks a peer that is not at its best."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    names = {e.name for e in prof.events()}
    if MATH_EVENT in names:
        return "math"
    if FLASH_EVENT in names:
        return "flash"
    return "other"


def rel_err(a, b):
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm()).item()


def probe_inputs(inputs, n=2):
    """The first n sequences of a packed batch (to ask a peer for its kernel
    cheaply: the kernel choice depends on layout and dtype, not on size)."""
    q, k, v, cq, ckv, mq, mkv = inputs
    cq, ckv = cq[:n + 1], ckv[:n + 1]
    return (q[:int(cq[-1])], k[:int(ckv[-1])], v[:int(ckv[-1])], cq, ckv, mq, mkv)


def bench_one(w, dtype, reps, threads, max_time, drop_slower=4.0, paths=PATHS, settle=0.1):
    inputs = W.make_inputs(w, dtype)
    fns, notes, outs, kern = {}, {}, {}, {}
    for name, make in paths:
        try:
            if name != "native":
                probe = make(*probe_inputs(inputs), threads)
                kern[name] = peer_kernel(probe) if probe is not None else None
                if kern[name] == "math":  # not torch at its best: reported, not timed
                    notes[name] = "math fallback: not timed"
                    continue
            fn = make(*inputs, threads)
            if fn is None:
                notes[name] = "mask of %d x %d" % (w.total_q, w.total_kv)
                continue
            outs[name] = fn()  # warm-up, and the output for the accuracy check
            fns[name] = fn
        except Exception as e:  # a torch path that cannot run this input
            notes[name] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:80])
    # round-robin: every round times each path once, so drift of the shared
    # machine hits all paths alike; the ratio per round is kept too
    times = {name: [] for name in fns}
    cpu_native = []  # CPU seconds of the native calls (all its threads)
    t_start = time.perf_counter()
    r = 0
    while r < max(reps, 3) and (r < 3 or time.perf_counter() - t_start < max_time):
        for name, fn in fns.items():
            if r > 0 and name in notes:
                continue  # dropped after the first round
            # torch's OpenMP workers spin-wait for a while after each of its
            # parallel regions; on the cores this benchmark is pinned to they
            # would take CPU from whichever call came next (ours after a torch
            # path).  Each call starts once they have gone to sleep.
            time.sleep(settle)
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            if name == "native":
                cpu_native.append(time.process_time() - c0)
        if r == 0:
            fastest = min((times[n][0] for n in TORCH_PATHS if n in times), default=None)
            for n in TORCH_PATHS:
                if n in times and times[n][0] > drop_slower * fastest:
                    notes[n] = "dropped"
        r += 1
    ms = {name: 1e3 * statistics.median(t) for name, t in times.items()}
    peers = [n for n in TORCH_PATHS if n in ms]
    ratio = None
    if peers and "native" in ms:
        best = min(peers, key=lambda n: ms[n])
        # median over rounds of (fastest peer's time / native's time) in that round
        ratio = (best, statistics.median(b / a for a, b in zip(times["native"], times[best])))
        if len(times[best]) < len(times["native"]):
            ratio = (best, ms[best] / ms["native"])
    ref = next((outs[n] for n in TORCH_PATHS if n in outs), None)
    err = rel_err(outs["native"], ref) if ref is not None and "native" in outs else float("nan")
    cpu_s = statistics.median(cpu_native) if cpu_native else None
    return ms, notes, kern, ratio, err, cpu_s


def cost_model_check(threads, reps=5, layout="packed"):
    """The work split's cost model, cost = (rows + 24) * (keys + 24) per item
    (attn_cpu.c), against measured time: for sequences of one length L per
    call (H 8, D 64, float32, about 2^17 query rows in all) prints time per
    item and per cost unit (flat: the model ranks items as their time does),
    and GFLOP/s (how much of the kernel's speed short sequences keep).
    layout "heads": q, k, v are [H, T, D] memory viewed as [T, H, D], so the
    rows of one head are adjacent (packed: H*D elements apart), which shows
    what the strided rows of the packed layout cost."""
    from comfy_sparse_attn import _native

    print("| L | items | ms / call | us / item | ns / cost unit | GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for L in (8, 16, 32, 64, 128, 256, 264, 320, 512, 1024, 2048):
        n = max(1, (1 << 14) // L)
        g = torch.Generator().manual_seed(L)
        if layout == "heads":
            q, k, v = (torch.randn(8, n * L, 64, generator=g).transpose(0, 1) for _ in range(3))
        else:
            q, k, v = (torch.randn(n * L, 8, 64, generator=g) for _ in range(3))
        cu = W.cu_seqlens([L] * n)
        fn = native_fn(q, k, v, cu, cu, L, L, threads)
        fn()
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
        sec = statistics.median(t)
        rows = 512  # tiles * CSA__CPU_ROWS at D = 64 (csa__cpu_item_tiles)
        items, cost = 0, 0
        for r0 in range(0, L, rows):
            nr = min(rows, L - r0)
            items += 1
            cost += (nr + 24) * (L + 24)  # CSA__ITEM_OVERHEAD (attn_cpu.c)
        items, cost = items * n * 8, cost * n * 8
        flops = 4.0 * n * L * L * 64 * 8
        print("| %d | %d | %.2f | %.2f | %.3f | %.1f |" % (
            L, items, sec * 1e3, sec * 1e6 / items * threads, sec * 1e9 / cost * threads,
            flops / sec * 1e-9), flush=True)


def cpu_flags():
    """The SIMD features of this CPU that the kernels care about."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    want = ["avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]
                    return " ".join(x for x in want if x in have)
    except OSError:
        pass
    return "?"


def main():
    global DENSE_LIMIT_BYTES
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="workload names (default: all of the cpu section)")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], help="one dtype only")
    ap.add_argument("--reps", type=int, default=5, help="rounds (at least 3 are always run)")
    ap.add_argument("--max-time", type=float, default=30.0,
                    help="stop adding rounds (after 3) once a workload took this many seconds")
    ap.add_argument("--drop-slower", type=float, default=4.0,
                    help="a torch path slower than this many times the fastest one in the "
                         "first round is not timed again (its one time is reported)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--md", help="also write the table (markdown) to this file")
    ap.add_argument("--isa", help="force the native kernel's ISA (scalar, avx2, avx512, "
                    "avx512bf16, neon; default: the automatic choice)")
    ap.add_argument("--peak-runs", type=int, default=20,
                    help="runs of the peak loops, best of 3 x this many (fewer: a quicker start)")
    ap.add_argument("--native-only", action="store_true",
                    help="time the native kernel alone (to compare ISAs / AMX on and off)")
    ap.add_argument("--dense-limit-gb", type=float, default=DENSE_LIMIT_BYTES / 2**30,
                    help="time the dense-mask peer only where its [T_q, T_kv] mask takes at "
                    "most this many GiB (it runs far slower than the per-sequence peer on "
                    "many sequences)")
    ap.add_argument("--settle", type=float, default=0.1,
                    help="seconds of idle before each timed call, so that the OpenMP "
                    "workers of the previous torch call have stopped spinning")
    ap.add_argument("--cost-model", nargs="?", const="packed", choices=["packed", "heads"],
                    help="only check the work split's cost model against measured time per item "
                         "(heads: inputs in [H, T, D] memory, rows of a head adjacent)")
    args = ap.parse_args()
    DENSE_LIMIT_BYTES = int(args.dense_limit_gb * 2**30)
    torch.set_num_threads(args.threads)
    if args.cost_model:
        cost_model_check(args.threads, layout=args.cost_model)
        return

    from comfy_sparse_attn import _C

    if args.isa:
        _C.cpu_isa_force(args.isa)
    peak, peak_notes = measure_peak(args.threads, args.peak_runs)
    isa = _C.cpu_isa()
    amx = isa == "avx512bf16" and uses_amx(peak)
    try:
        torch_cap = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        torch_cap = "?"
    head = ["# %s (%s), %d threads, torch %s (CPU capability %s), native ISA %s%s, %s" % (
        cpu_model(), cpu_flags(), args.threads, torch.__version__, torch_cap, isa,
        " + AMX tiles for bf16" if amx else "", time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())),
        "# peak (peak_cpu.c / peak_amx.c, %d threads, best of 3 x %d runs): %s" % (
            args.threads, args.peak_runs, ", ".join(
            "%s %.0f GFLOP/s" % kv for kv in sorted(peak.items())) or "n/a"),
        "# dense-mask peer only where its mask is <= %.2f GiB" % args.dense_limit_gb]
    head += ["# " + n for n in peak_notes]
    head += ["",
        "| workload | dtype | native | per-seq SDPA 4-D | nested SDPA | dense-mask SDPA 4-D | "
        "native vs fastest torch | % of peak | rel. err |",
        "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(head), flush=True)
    rows, native_ms = [], {}
    for w in W.load("cpu"):
        if args.only and w.name not in args.only:
            continue
        for dt in w.dtypes:
            if args.dtype and dt != args.dtype:
                continue
            ms, notes, kern, ratio, err, cpu_s = bench_one(
                w, dt, args.reps, args.threads, args.max_time, args.drop_slower,
                PATHS[:1] if args.native_only else PATHS, args.settle)

            def cell(name):
                if name not in ms:
                    return "— (%s)" % notes.get(name, "n/a")
                txt = "%.1f ms · %.1f" % (ms[name], w.flops / ms[name] * 1e-6)
                if name in kern:
                    txt += " · " + kern[name]
                return txt + (" (1 round)" if name in notes else "")

            rtxt = "%.2fx (%s)" % (ratio[1], ratio[0]) if ratio else "—"
            # the peak of the arithmetic the kernel runs: under the
            # avx512bf16 kernel bf16 inputs run on AMX tiles (where the OS
            # grants them) or vdpbf16ps; everything else is float32 FMA.  bf16
            # rows also give their share of the AMX peak where it was measured.
            kind = "fp32_fma"
            if dt == "bfloat16" and isa == "avx512bf16":
                kind = "bf16_amx" if amx else "bf16_dot"
            kinds = [kind] + (["bf16_amx"] if dt == "bfloat16" and kind != "bf16_amx"
                              and "bf16_amx" in peak else [])
            # FLOPs per CPU second of native's threads against the peak per
            # core (the peak loops measure per CPU second too): the share of
            # the cores it had that it used, whatever else ran on them
            pct = "—"
            if cpu_s:
                pct = ", ".join("%.0f%% of %s" % (100 * w.flops / cpu_s * 1e-9 / (peak[k] / args.threads), k)
                                for k in kinds if peak.get(k)) or "—"
            if "native" in ms:
                native_ms[(w.name, dt)] = ms["native"]
            row = "| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %.1e |" % (
                w.name, w.describe(), dt, cell("native"), cell("per-seq"), cell("nested"),
                cell("dense-mask"), rtxt, pct, err)
            print(row, flush=True)
            rows.append(row)
    # bf16 against float32, native, per workload (wall time of the same run)
    tail = []
    names = [w.name for w in W.load("cpu") if (w.name, "float32") in native_ms
             and (w.name, "bfloat16") in native_ms]
    if names:
        tail = ["", "| workload | native float32 | native bfloat16 | bf16 speed / fp32 speed |",
                "|---|---|---|---|"]
        for n in names:
            a, b = native_ms[(n, "float32")], native_ms[(n, "bfloat16")]
            tail.append("| %s | %.1f ms | %.1f ms | %.2fx |" % (n, a, b, a / b))
        print("\n".join(tail), flush=True)
    if args.md:
        with open(args.md, "w") as f:
            f.write("\n".join(head + rows + tail) + "\n")


if __name__ == "__main__":
    main()
