"""Our backends beside the GPU peers on the standard GPU workloads, as a Markdown table.

    python3 bench/gpu/peers.py [--workloads a,b] [--backends native,sdpa] [--reps N]
                               [--peers torch-fa2-varlen,...] [--md FILE]

The same code as ``python -m comfy_sparse_attn bench --peers --device cuda``
(``comfy_sparse_attn._bench``: the peers, each called the way it is fastest, timed
interleaved with our backends and auto dispatch), formatted for bench/RESULTS.md: a header
with card, torch, date and the command, then one row per (workload, entry) with median ms,
TFLOP/s, auto's time over the entry's, and the relative difference from auto's output.
Needs only the installed package and torch (and whichever peer libraries are installed).
"""
import argparse
import datetime
import sys

import torch

from comfy_sparse_attn import _bench, _dispatch
from comfy_sparse_attn import _workloads as W


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", default="", help="comma list of GPU workload names")
    ap.add_argument("--backends", default="",
                    help="comma list of our backends (default: every usable one)")
    ap.add_argument("--peers", default="", help="comma list of peers (default: all installed)")
    ap.add_argument("--reps", type=int, default=20, help="timed rounds (median)")
    ap.add_argument("--md", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench/gpu/peers.py needs a CUDA device (torch %s sees none)" % torch.__version__)
    device = torch.device("cuda", torch.cuda.current_device())
    works = W.load("gpu")
    if args.workloads:
        works = [w for w in works if w.name in args.workloads.split(",")]
    rows = _dispatch.list_backends(device)
    backends = (args.backends.split(",") if args.backends else
                [n for n, r in sorted(rows.items(), key=lambda kv: kv[1]["rank"]) if r["usable"]])
    peers = _bench.installed_peers("cuda")
    if args.peers:
        peers = [p for p in peers if p in args.peers.split(",")]
    steps = sum(len(w.dtypes) for w in works) * (1 + len(backends) + len(peers))
    progress = _bench.Progress(steps)
    result = _bench.run(torch, device, works, backends, peers, args.reps, progress)
    progress.close()
    major, minor = torch.cuda.get_device_capability(device)
    lines = ["%s (sm %d.%d), torch %s, %s, `%s`" % (
        torch.cuda.get_device_name(device), major, minor, torch.__version__,
        datetime.date.today().isoformat(), " ".join(["python3", "bench/gpu/peers.py"] +
                                                   sys.argv[1:])),
        "", "| workload | entry | median ms | TFLOP/s | auto / entry | diff from auto |",
        "|---|---|---|---|---|---|"]
    autos = {r.label: r for r in result if r.name == "auto"}
    for r in result:
        name = "auto (%s)" % r.chosen if r.chosen else r.name
        if r.ms is None:
            lines.append("| %s | %s | %s | | | |" % (r.label, name, r.note))
            continue
        auto = autos[r.label]
        lines.append("| %s | %s | %.3f | %.1f | %s | %s |" % (
            r.label, name, r.ms, r.rate / 1e3,
            "%.2f" % (auto.ms / r.ms) if auto.ms else "-",
            "%.1e" % r.err if r.err is not None else "-"))
    text = "\n".join(lines)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
