"""``python -m comfy_sparse_attn``: environment, backend table, self-check; ``bench``.

    python -m comfy_sparse_attn [--device cpu|cuda[:N]] [--reps N]
        Prints Python / torch / device, every backend (available or not, and why), then
        runs each usable backend on a small packed batch shaped like a sparse-voxel batch
        against a float64 reference, with a short timing.  Exit status 1 on any failure,
        2 when torch is missing or an argument cannot work here.

    python -m comfy_sparse_attn bench [--workloads a,b] [--peers] [--backends x,y]
                                      [--device D] [--reps N] [--plot FILE.png]
                                      [--workloads-file FILE.json]
        Times every usable backend and auto dispatch on the standard workloads
        (workloads.json, shipped with the package); --peers adds the torch paths and
        libraries a user would call instead, in the same run; --plot draws a chart.

Every problem found in the arguments (device, missing matplotlib, unknown names) is one
line on stderr and exit status 2, before any work starts.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import sys
import textwrap

from . import _workloads as W

WIDTH = 100  # no output line is longer

# Self-check: a packed batch like a sparse-voxel batch (swin windows of
# 16-160 tokens, H 12, D 64), small enough for seconds on 2 CPU cores.
SELFCHECK = {"n": 160, "lo": 16, "hi": 160, "seed": 7, "H": 12, "D": 64}
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}
LOSSY_TOLERANCE = 5e-2
PROG = "python -m comfy_sparse_attn"


class UsageError(Exception):
    """An argument that cannot work here: one line, exit status 2."""


def _out(*parts):
    sys.stdout.write(" ".join(str(p) for p in parts).rstrip() + "\n")
    sys.stdout.flush()


def _wrap(text, indent="    "):
    """Lines of at most WIDTH characters: the text's own lines kept, each wrapped, every
    line after the first indented two more."""
    out = []
    for i, para in enumerate(str(text).splitlines() or [""]):
        first = indent if i == 0 else " " * len(indent) + "  "
        out += textwrap.wrap(" ".join(para.split()), WIDTH, initial_indent=first,
                             subsequent_indent=" " * len(indent) + "    ") or []
    return out or [indent.rstrip()]


def _table(rows, headers):
    """Columns padded to their widest cell; the last one wrapped so no line passes WIDTH."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers[:-1])]
    lead = sum(widths) + 2 * len(widths)
    last = max(24, WIDTH - lead)

    def line(cells, tail):
        return ("  ".join(c.ljust(w) for c, w in zip(cells, widths)) + "  " + tail).rstrip()

    _out(line(headers[:-1], headers[-1]))
    _out(line(["-" * w for w in widths], "-" * min(last, max(len(headers[-1]), 8))))
    for r in rows:
        parts = textwrap.wrap(r[-1], last) or [""]
        _out(line(r[:-1], parts[0]))
        for p in parts[1:]:
            _out(line([""] * len(widths), "  " + p))


# ---------------------------------------------------------------------------
# Checks done before any work.
# ---------------------------------------------------------------------------
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


def _device(torch, name):
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError("--device %r: expected cpu, cuda or cuda:N" % name) from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError("--device %s: only cpu and cuda are supported" % name)
    if device.type == "cuda":
        if torch.version.cuda is None:
            raise UsageError("--device %s: this torch (%s) is a CPU-only build; install a "
                             "CUDA build of torch or use --device cpu" % (name, torch.__version__))
        if not torch.cuda.is_available():
            raise UsageError("--device %s: torch %s sees no CUDA device (driver or "
                             "CUDA_VISIBLE_DEVICES?); use --device cpu" % (name, torch.__version__))
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device.index >= torch.cuda.device_count():
            raise UsageError("--device %s: only %d CUDA device(s) here"
                             % (name, torch.cuda.device_count()))
    return device


def _check_plot(path):
    if not path:
        return
    if importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib, which is not installed: "
                         "pip install matplotlib (or comfy-sparse-attn[plot])")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError("--plot %s: folder %s does not exist" % (path, folder))


def _select_workloads(section, names, path):
    try:
        works = W.load(section, path)
    except OSError as e:
        raise UsageError("--workloads-file %s: %s" % (path, e.strerror or e)) from None
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError("--workloads-file %s: not a workloads file (%s: %s)"
                         % (path, type(e).__name__, e)) from None
    if not names:
        return works
    known = [w.name for w in works]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError("unknown %s workload %s; choose from: %s"
                         % (section, ", ".join(map(repr, unknown)), ", ".join(known)))
    return [w for w in works if w.name in names]


def _split(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def _select_backends(names):
    from . import _dispatch

    unknown = [n for n in names if n not in _dispatch.BACKENDS]
    if unknown:
        raise UsageError("unknown backend %s; choose from: %s"
                         % (", ".join(map(repr, unknown)), ", ".join(_dispatch.BACKENDS)))
    return names


# ---------------------------------------------------------------------------
# Reports.
# ---------------------------------------------------------------------------
def _environment(torch, device):
    from . import _C, __version__

    _out("comfy-sparse-attn", __version__, "| Python", platform.python_version(),
         "|", platform.system(), platform.machine())
    _out("torch", torch.__version__, "| CUDA available:", torch.cuda.is_available(),
         "| CPU ISA:", _C.cpu_isa())
    _out("native CUDA kernels in this build:", bool(_C.have_cuda()))
    _out("device:", _device_name(torch, device))


def _device_name(torch, device):
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return "%s (%s, compute capability %d.%d)" % (torch.cuda.get_device_name(device), device,
                                                     major, minor)
    return "cpu, %d threads" % torch.get_num_threads()


def _usable(rows):
    return [n for n, r in sorted(rows.items(), key=lambda kv: kv[1]["rank"]) if r["usable"]]


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
    for text in _wrap("native placement: %s" % rows["native"].get("policy", ""), ""):
        _out(text)
    return rows


def selfcheck(torch, device, reps):
    from . import _bench, _dispatch

    _environment(torch, device)
    _out()
    rows = _backend_table(device)
    _out()
    dtype_name = "float16" if device.type == "cuda" else "float32"
    lq = W.lengths(SELFCHECK)
    h, d = SELFCHECK["H"], SELFCHECK["D"]
    w = W.Workload("self-check", lq, lq, h, h, d, [dtype_name])
    q, k, v, cu, _, mq, _ = W.make_inputs(w, dtype_name, device)
    ref = _bench.reference(torch, q, k, v, lq, lq)
    _out("self-check: %d windows of %d-%d tokens (%d total), H %d, D %d, %s, on %s"
         % (len(lq), min(lq), max(lq), sum(lq), h, d, dtype_name, device))
    failures = []
    results = []
    for name in _usable(rows) + ["auto"]:
        lossy = name != "auto" and rows[name]["constraints"]["lossy"]
        tol = LOSSY_TOLERANCE if lossy else TOLERANCE[dtype_name]
        backend = None if name == "auto" else name
        try:
            out = torch.full_like(q, math.nan)
            _dispatch.dispatch_varlen_attention(q, k, v, cu, cu, mq, mq, backend=backend, out=out)
            chosen = _dispatch.get_varlen_backend().backend
            err = _bench.rel_err(torch, out, ref)
            ms = _bench.time_ms(torch, lambda: _dispatch.dispatch_varlen_attention(
                q, k, v, cu, cu, mq, mq, backend=backend, out=out), device, reps, warm=True)
            ok = err < tol
            label = name if name != "auto" else "auto -> " + str(chosen)
            results.append((label, "%.2e" % err, "< %.0e" % tol, "%.2f" % ms,
                            "ok" if ok else "FAIL"))
            if not ok:
                failures.append("%s: relative error %.2e over the tolerance %.0e"
                                % (name, err, tol))
        except Exception as e:  # noqa: BLE001 - one failing backend is a row, not a crash
            results.append((name, "-", "-", "-", "FAIL (see below)"))
            failures.append("%s: %s: %s" % (name, type(e).__name__, e))
    _table(results, ("backend", "rel err", "tolerance", "ms", "result"))
    for text in failures:
        _out()
        for part in _wrap(text, "FAIL "):
            _out(part)
    _out()
    _out("self-check:", "PASSED" if not failures else "FAILED (%d)" % len(failures))
    return 1 if failures else 0


def bench(torch, device, args):
    from . import _bench, _dispatch

    section = "gpu" if device.type == "cuda" else "cpu"
    works = _select_workloads(section, _split(args.workloads), args.workloads_file)
    names = _select_backends(_split(args.backends)) if args.backends else None
    _check_plot(args.plot)
    _environment(torch, device)
    _out()
    if names is None:
        names = _usable(_dispatch.list_backends(device))
    peers = _bench.installed_peers(device.type) if args.peers else []
    steps = sum(len(w.dtypes) for w in works) * (1 + len(names) + len(peers))
    progress = _bench.Progress(steps)
    rows = _bench.run(torch, device, works, names, peers, args.reps, progress)
    progress.close()
    _report(rows, peers)
    if args.plot:
        _plot(torch, device, rows, args.plot)
    return 0


def _report(rows, peers):
    labels = list(dict.fromkeys(r.label for r in rows))
    notes = _report_table(rows, labels)
    _out()
    _out("auto/x: auto's time over this entry's (above 1: this entry is faster than auto);")
    _out("diff: relative difference from auto's output.")
    if peers:
        _report_peers(rows, labels)
    if notes:
        _out()
        _out("entries that did not run:")
    for text in notes:
        for part in _wrap(text, "  "):
            _out(part)


def _report_table(rows, labels):
    """The table of every entry; returns the notes of the entries that did not run."""
    table, notes = [], []
    for label in labels:
        mine = [r for r in rows if r.label == label]
        auto_ms = mine[0].ms
        for r in mine:
            name = "auto (%s)" % r.chosen if r.chosen else r.name
            if r.ms is None:
                table.append((label, name, r.kind, "-", "-", "-", "-", "see below"))
                notes.append("%s, %s: %s" % (label, r.name, r.note))
                continue
            ratio = "%.2f" % (auto_ms / r.ms) if auto_ms else "-"
            err = "%.1e" % r.err if r.err is not None else "-"
            table.append((label, name, r.kind, "%.3f" % r.ms, "%.4g" % r.rate, ratio, err, ""))
    _out()
    _table(table, ("workload", "entry", "kind", "median ms", "GFLOP/s", "auto/x", "diff",
                   "note"))
    return notes


def _report_peers(rows, labels):
    """Per workload: auto against the fastest peer, as a ratio."""
    for label in labels:
        timed = [r for r in rows if r.label == label and r.ms is not None]
        auto = next((r for r in timed if r.name == "auto"), None)
        best = min((r for r in timed if r.kind == "peer"), key=lambda r: r.ms, default=None)
        if auto and best:
            _out("%s: auto (%s) is %.2fx the fastest peer (%s)"
                 % (label, auto.chosen, best.ms / auto.ms, best.name))


def _plot(torch, device, rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(r.label for r in rows))
    names = list(dict.fromkeys(r.name for r in rows))
    chosen = {r.label: r.chosen for r in rows if r.name == "auto" and r.chosen}
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(7, 1.2 * len(labels) * max(1, len(names)) * 0.35), 4.8))
    for i, name in enumerate(names):
        ys = []
        for label in labels:
            hit = [r for r in rows if r.label == label and r.name == name and r.ms is not None]
            ys.append(hit[0].rate if hit else 0.0)
        bars = ax.bar([j + i * width for j in range(len(labels))], ys, width, label=name)
        ax.bar_label(bars, labels=["%.3g" % y if y else "" for y in ys], fontsize=6,
                     rotation=90, padding=2)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
    ax.set_xticklabels(["%s\nauto: %s" % (lb, chosen.get(lb, "-")) for lb in labels],
                       rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("GFLOP/s (higher is better)")
    picks = sorted(set(chosen.values()))
    ax.set_title("comfy-sparse-attn bench on %s\ntorch %s, auto chose %s"
                 % (_device_name(torch, device), torch.__version__, ", ".join(picks) or "-"),
                 fontsize=10)
    ax.margins(y=0.15)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    _out("chart written to", path)


# ---------------------------------------------------------------------------
# Arguments.
# ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):
        sys.stderr.write("%s: error: %s (see --help)\n" % (self.prog, message))
        sys.exit(2)


def _positive(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1, got %d" % n)
    return n


def _workload_list():
    lines = ["standard workloads (--workloads; the device picks the section):"]
    for section in W.SECTIONS:
        lines.append("  %s:" % section)
        for w in W.load(section):
            lines.append("    %-17s %s, %s" % (w.name, w.describe(), "/".join(w.dtypes)))
    return "\n".join(lines)


def _common(parser, dest_prefix=""):
    parser.add_argument("--device", dest=dest_prefix + "device", default=None, metavar="D",
                        help="cpu, cuda or cuda:N (default: cuda when torch sees a GPU, else cpu)")
    parser.add_argument("--reps", dest=dest_prefix + "reps", type=_positive, default=None,
                        metavar="N",
                        help="timed repetitions per entry; the median is reported "
                             "(default: 3 for the self-check, 10 for bench)")


def parser():
    ap = _Parser(prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter,
                 description="Without a command: environment, backend table and a self-check "
                             "of every usable backend against a float64 reference.")
    _common(ap)
    sub = ap.add_subparsers(dest="cmd", metavar="{bench}", parser_class=_Parser)
    b = sub.add_parser("bench", formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="time every usable backend (and --peers) on the standard workloads",
                       description="Time every usable backend and auto dispatch on the standard "
                                   "workloads, on one device, in one run.",
                       epilog=_workload_list())
    b.add_argument("--workloads", default="", metavar="A,B",
                   help="comma list of workload names (default: all of the device's section)")
    b.add_argument("--peers", action="store_true",
                   help="also time what a user would call instead: torch's per-sequence and "
                        "nested-tensor SDPA, its FA2 and memory-efficient varlen ops (CUDA), "
                        "and flash-attn / xformers / sageattention when installed")
    b.add_argument("--backends", default="", metavar="X,Y",
                   help="comma list of our backends to time (default: every usable one); "
                        "auto dispatch is always timed")
    b.add_argument("--plot", default=None, metavar="FILE.png",
                   help="also write a bar chart of GFLOP/s (needs matplotlib: "
                        "pip install comfy-sparse-attn[plot])")
    b.add_argument("--workloads-file", default=None, metavar="FILE.json",
                   help="a workloads file of the same form to use instead of the shipped one")
    _common(b, "bench_")
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    torch = _import_torch()
    if torch is None:
        return 2
    try:
        device = _device(torch, getattr(args, "bench_device", None) or args.device)
        reps = getattr(args, "bench_reps", None) or args.reps
        if args.cmd == "bench":
            args.reps = reps or 10
            return bench(torch, device, args)
        return selfcheck(torch, device, reps or 3)
    except UsageError as e:
        sys.stderr.write("%s: error: %s\n" % (PROG, e))
        return 2


if __name__ == "__main__":
    sys.exit(main())
