"""``python -m comfy_sparse_attn``: environment, backend table, self-check.

    python -m comfy_sparse_attn [--device cpu|cuda]
        Prints Python / torch / device (and compute capability), every backend
        (available or not, and why), then runs each usable backend on a small
        packed batch shaped like a sparse-voxel batch against a float64
        reference, with a short timing.  Exit status 1 on any failure, 2 when
        torch is missing.

    python -m comfy_sparse_attn bench [--workloads a,b] [--device cpu|cuda]
                                      [--backends x,y] [--reps N] [--plot FILE.png]
                                      [--workloads-file FILE.json]
        Times every usable backend (and auto dispatch) on the standard
        workloads, printing progress and a table; --plot draws a chart
        (needs matplotlib).
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time

# The standard workloads (same definitions and length rule as bench/workloads.json
# and /work/shared/bench/workloads.json, so the numbers compare): lengths are a
# list, or {n, lo, hi, seed}: random.Random(seed) drawing n values with
# randint(lo, hi) in order; kv lengths default to the q lengths.
WORKLOADS = {
    "gpu": [
        {"name": "slat-self", "q": [18000, 9000], "kv": None, "H": 16, "H_kv": 16, "D": 64,
         "dtype": "bfloat16"},
        {"name": "windows", "q": {"n": 1500, "lo": 16, "hi": 512, "seed": 1}, "kv": None,
         "H": 12, "H_kv": 12, "D": 64, "dtype": "float16"},
        {"name": "cross-img", "q": [18000, 9000], "kv": [1374, 1374], "H": 16, "H_kv": 16,
         "D": 64, "dtype": "bfloat16"},
        {"name": "long-hd128", "q": [49152], "kv": None, "H": 12, "H_kv": 12, "D": 128,
         "dtype": "bfloat16"},
        {"name": "cross-hd128", "q": [32768], "kv": [1029], "H": 12, "H_kv": 12, "D": 128,
         "dtype": "bfloat16"},
        {"name": "tiny-seqs", "q": {"n": 20000, "lo": 8, "hi": 64, "seed": 2}, "kv": None,
         "H": 8, "H_kv": 8, "D": 64, "dtype": "float16"},
        {"name": "patches-hd16", "q": {"n": 64, "lo": 1024, "hi": 1024, "seed": 3}, "kv": None,
         "H": 16, "H_kv": 16, "D": 16, "dtype": "float16"},
    ],
    "cpu": [
        {"name": "cpu-long", "q": [4096], "kv": None, "H": 16, "H_kv": 16, "D": 64,
         "dtype": ["float32", "bfloat16"]},
        {"name": "cpu-windows", "q": {"n": 200, "lo": 16, "hi": 512, "seed": 4}, "kv": None,
         "H": 12, "H_kv": 12, "D": 64, "dtype": ["float32", "bfloat16"]},
        {"name": "cpu-tiny", "q": {"n": 2000, "lo": 8, "hi": 64, "seed": 5}, "kv": None, "H": 8,
         "H_kv": 8, "D": 64, "dtype": ["float32", "bfloat16"]},
        {"name": "cpu-cross-hd128", "q": [4096], "kv": [1029], "H": 12, "H_kv": 12, "D": 128,
         "dtype": ["float32", "bfloat16"]},
        {"name": "cpu-patches-hd16", "q": {"n": 16, "lo": 1024, "hi": 1024, "seed": 6},
         "kv": None, "H": 8, "H_kv": 8, "D": 16, "dtype": ["float32", "bfloat16"]},
    ],
}

# Self-check: a packed batch like a sparse-voxel batch (swin windows of
# 16-160 tokens, H 12, D 64), small enough for seconds on 2 CPU cores.
SELFCHECK = {"n": 160, "lo": 16, "hi": 160, "seed": 7, "H": 12, "D": 64}
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}
LOSSY_TOLERANCE = 5e-2


def lengths(spec):
    if spec is None or isinstance(spec, list):
        return spec
    rng = random.Random(spec["seed"])
    return [rng.randint(spec["lo"], spec["hi"]) for _ in range(spec["n"])]


def _out(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts) + "\n")
    sys.stdout.flush()


def _import_torch():
    try:
        import torch
    except ImportError as e:
        sys.stderr.write(
            "comfy-sparse-attn needs PyTorch, which does not import here (%s).\n"
            "Install the torch build that matches your GPU (see https://pytorch.org) or run "
            "this inside ComfyUI's Python environment.\n" % e)
        return None
    return torch


def _cu(torch, lens, device):
    c = torch.zeros(len(lens) + 1, dtype=torch.int32)
    if lens:
        c[1:] = torch.tensor(lens, dtype=torch.int64).cumsum(0).to(torch.int32)
    return c.to(device)


def _reference(torch, q, k, v, lq, lk):
    """float64 per-sequence attention (DESIGN.md section 4, non-causal)."""
    q64, k64, v64 = q.double().cpu(), k.double().cpu(), v.double().cpu()
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=torch.float64)
    rep = q.shape[1] // k.shape[1]
    scale = 1.0 / math.sqrt(q.shape[2])
    a = b = 0
    for n_q, n_k in zip(lq, lk):
        if n_q and n_k:
            qs = q64[a:a + n_q].transpose(0, 1)
            ks = k64[b:b + n_k].transpose(0, 1).repeat_interleave(rep, 0)
            vs = v64[b:b + n_k].transpose(0, 1).repeat_interleave(rep, 0)
            p = torch.softmax(scale * qs @ ks.transpose(1, 2), -1)
            out[a:a + n_q] = (p @ vs).transpose(0, 1)
        a += n_q
        b += n_k
    return out


def _time_ms(torch, fn, device, reps):
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        times = []
        for _ in range(reps):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            torch.cuda.synchronize(device)
            times.append(s.elapsed_time(e))
    else:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def _environment(torch, device):
    from . import _C, __version__

    _out("comfy-sparse-attn", __version__, "| Python", platform.python_version(),
         "|", platform.system(), platform.machine())
    _out("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available(),
         "| native CUDA kernels in this build:", bool(_C.have_cuda()),
         "| CPU ISA:", _C.cpu_isa())
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        _out("device:", torch.cuda.get_device_name(device), "| compute capability %d.%d"
             % (major, minor))
    else:
        _out("device: cpu |", torch.get_num_threads(), "threads")


def _table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(str(h).ljust(w) for h, w in zip(headers, widths))
    _out(line)
    _out("  ".join("-" * w for w in widths))
    for r in rows:
        _out("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def _backend_table(device):
    from . import _dispatch

    rows = _dispatch.list_backends(device)
    table = []
    for name, row in sorted(rows.items(), key=lambda kv: kv[1]["rank"]):
        status = "usable" if row["usable"] else "-"
        why = row["version"] if row["usable"] else (row["why_unusable"] or row["why_not"] or "")
        if row["usable"] and row["constraints"]["lossy"]:
            why += " (lossy: int8 Q.K^T)"
        table.append((row["rank"], name, "yes" if row["available"] else "no", status, why))
    _table(table, ("#", "backend", "installed", "for this device", "version / why not"))
    _out("native placement:", rows["native"].get("policy", ""))
    return rows


def selfcheck(torch, device, reps):
    from . import _dispatch

    _environment(torch, device)
    _out()
    rows = _backend_table(device)
    _out()
    dtype_name = "float16" if device.type == "cuda" else "float32"
    dtype = getattr(torch, dtype_name)
    lq = lengths(SELFCHECK)
    h, d = SELFCHECK["H"], SELFCHECK["D"]
    g = torch.Generator().manual_seed(0)
    q = torch.randn(sum(lq), h, d, generator=g).to(dtype).to(device)
    k = torch.randn(sum(lq), h, d, generator=g).to(dtype).to(device)
    v = torch.randn(sum(lq), h, d, generator=g).to(dtype).to(device)
    cu = _cu(torch, lq, device)
    ref = _reference(torch, q, k, v, lq, lq)
    _out("self-check: %d windows of %d-%d tokens (%d total), H %d, D %d, %s, on %s"
         % (len(lq), min(lq), max(lq), sum(lq), h, d, dtype_name, device))
    failures = 0
    results = []
    names = [n for n, r in sorted(rows.items(), key=lambda kv: kv[1]["rank"]) if r["usable"]]
    for name in names + ["auto"]:
        lossy = name != "auto" and rows[name]["constraints"]["lossy"]
        tol = LOSSY_TOLERANCE if lossy else TOLERANCE[dtype_name]
        try:
            out = torch.full_like(q, math.nan)
            _dispatch.dispatch_varlen_attention(q, k, v, cu, cu, max(lq), max(lq),
                                                backend=None if name == "auto" else name, out=out)
            chosen = _dispatch.get_varlen_backend().backend
            o = out.double().cpu()
            err = ((o - ref).norm() / ref.norm()).item() if torch.isfinite(o).all() else math.inf
            ms = _time_ms(torch, lambda: _dispatch.dispatch_varlen_attention(
                q, k, v, cu, cu, max(lq), max(lq), backend=None if name == "auto" else name,
                out=out), device, reps)
            ok = err < tol
            results.append((name if name != "auto" else "auto -> " + str(chosen),
                            "%.2e" % err, "< %.0e" % tol, "%.2f" % ms, "ok" if ok else "FAIL"))
        except Exception as e:  # noqa: BLE001 - one failing backend is a row, not a crash
            ok = False
            results.append((name, "-", "-", "-", "FAIL: %s: %s" % (type(e).__name__,
                                                                    str(e).splitlines()[0][:90])))
        failures += not ok
    _table(results, ("backend", "rel err", "tolerance", "ms", "result"))
    _out()
    _out("self-check:", "PASSED" if failures == 0 else "FAILED (%d)" % failures)
    return 1 if failures else 0


def _workloads(section, only, path):
    data = WORKLOADS
    if path:
        with open(path) as f:
            data = json.load(f)
    out = []
    for w in data[section]:
        if only and w["name"] not in only:
            continue
        lq = lengths(w["q"])
        lk = lengths(w.get("kv")) or lq
        dts = w["dtype"] if isinstance(w["dtype"], list) else [w["dtype"]]
        for dt in dts:
            out.append(dict(w, q=lq, kv=lk, dtype=dt,
                            label=w["name"] + ("/" + dt if len(dts) > 1 else "")))
    return out


def bench(torch, device, args):
    from . import _dispatch

    _environment(torch, device)
    section = "gpu" if device.type == "cuda" else "cpu"
    only = set(args.workloads.split(",")) if args.workloads else None
    works = _workloads(section, only, args.workloads_file)
    if not works:
        _out("no workload matches", args.workloads)
        return 1
    rows = _dispatch.list_backends(device)
    names = [n for n, r in sorted(rows.items(), key=lambda kv: kv[1]["rank"]) if r["usable"]]
    if args.backends:
        names = [n for n in args.backends.split(",") if n in rows]
    names.append("auto")
    results = []
    total = len(works) * len(names)
    step = 0
    t_start = time.perf_counter()
    for w in works:
        lq, lk, h, hkv, d = w["q"], w["kv"], w["H"], w["H_kv"], w["D"]
        dtype = getattr(torch, w["dtype"])
        g = torch.Generator().manual_seed(0)
        q = torch.randn(sum(lq), h, d, generator=g).to(dtype).to(device)
        k = torch.randn(sum(lk), hkv, d, generator=g).to(dtype).to(device)
        v = torch.randn(sum(lk), hkv, d, generator=g).to(dtype).to(device)
        cq, ck = _cu(torch, lq, device), _cu(torch, lk, device)
        flops = 4.0 * sum(a * b for a, b in zip(lq, lk)) * h * d
        for name in names:
            step += 1
            _out("[%d/%d %.0fs] %s: %s ..." % (step, total, time.perf_counter() - t_start,
                                               w["label"], name))
            try:
                def call():
                    return _dispatch.dispatch_varlen_attention(
                        q, k, v, cq, ck, max(lq), max(lk),
                        backend=None if name == "auto" else name)
                call()
                chosen = _dispatch.get_varlen_backend().backend
                ms = _time_ms(torch, call, device, args.reps)
                results.append((w["label"], name if name != "auto" else "auto (%s)" % chosen,
                                ms, flops / ms / 1e9))
            except Exception as e:  # noqa: BLE001 - a failing backend is a row
                results.append((w["label"], name, None, "%s: %s" % (type(e).__name__,
                                                                   str(e).splitlines()[0][:60])))
        del q, k, v
    _out()
    gunit = "TFLOP/s" if device.type == "cuda" else "GFLOP/s"
    scale = 1.0 if device.type == "cuda" else 1e3
    _table([(w, n, "%.3f" % ms if ms is not None else "-",
             "%.1f" % (rate * scale) if ms is not None else rate)
            for w, n, ms, rate in results], ("workload", "backend", "median ms", gunit))
    if args.plot:
        _plot(results, args.plot, gunit, scale)
    return 0


def _plot(results, path, unit, scale):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        _out("--plot needs matplotlib (pip install matplotlib); table above only")
        return
    works = list(dict.fromkeys(r[0] for r in results))
    names = list(dict.fromkeys(r[1].split(" ")[0] for r in results))
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.5 * len(works)), 4))
    for i, n in enumerate(names):
        ys = []
        for w in works:
            hit = [r for r in results if r[0] == w and r[1].split(" ")[0] == n and r[2]]
            ys.append(hit[0][3] * scale if hit else 0.0)
        ax.bar([j + i * width for j in range(len(works))], ys, width, label=n)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(works))])
    ax.set_xticklabels(works, rotation=20, ha="right")
    ax.set_ylabel(unit)
    ax.set_title("comfy-sparse-attn: varlen attention by backend")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _out("chart written to", path)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m comfy_sparse_attn",
                                 description="Backend table and self-check (default), or bench.")
    ap.add_argument("--device", default=None, help="cpu or cuda[:N] (default: cuda if present)")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (median)")
    sub = ap.add_subparsers(dest="cmd")
    b = sub.add_parser("bench", help="time every usable backend on the standard workloads")
    b.add_argument("--workloads", default="", help="comma list of workload names")
    b.add_argument("--workloads-file", default=None, help="a workloads.json to use instead")
    b.add_argument("--backends", default="", help="comma list of backends (default: all usable)")
    b.add_argument("--plot", default=None, help="write a bar chart (PNG; needs matplotlib)")
    b.add_argument("--device", default=None, dest="bench_device")
    b.add_argument("--reps", type=int, default=None, dest="bench_reps")
    args = ap.parse_args(argv)
    torch = _import_torch()
    if torch is None:
        return 2
    dev_name = getattr(args, "bench_device", None) or args.device or (
        "cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(dev_name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    reps = getattr(args, "bench_reps", None) or args.reps
    if args.cmd == "bench":
        args.reps = reps or 10
        return bench(torch, device, args)
    return selfcheck(torch, device, reps or 3)


if __name__ == "__main__":
    sys.exit(main())
