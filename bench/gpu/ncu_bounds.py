"""What bounds each GPU workload: one call of native (or of a peer) per
workload under Nsight Compute, reduced to a table of the numbers that say
whether a kernel is memory-, math-, exp- or latency-bound.

    ncu --profile-from-start off --csv --print-units base --metrics $(python3 ncu_bounds.py --metrics) \
        python3 ncu_bounds.py run WORKLOADS.json native tiny-seqs patches-hd16 > ncu.csv
    python3 ncu_bounds.py table ncu.csv

`run` times nothing: it makes the inputs of each named workload (peers'
workloads.json format), calls the function once outside the profiled range
(module load, warm-up) and once inside it (cudaProfilerStart/Stop).  `who`
is `native` (backend="native", the wgmma kernel where it applies), `mma`
(native with the Hopper kernel off) or a peer: `fa2` (torch's FA2 varlen op),
`memeff` (torch's memory-efficient varlen op).
"""
import csv
import json
import os
import sys

# (metric, column title, scale): percentages of peak unless named otherwise
METRICS = [
    ("gpu__time_duration.sum", "ms", 1e-6),
    ("dram__bytes.sum", "DRAM GB", 1e-9),
    ("dram__throughput.avg.pct_of_peak_sustained_elapsed", "DRAM %", 1),
    ("sm__throughput.avg.pct_of_peak_sustained_elapsed", "SM %", 1),
    ("smsp__issue_active.avg.pct_of_peak_sustained_active", "issue %", 1),
    ("sm__warps_active.avg.pct_of_peak_sustained_active", "occupancy %", 1),
    ("sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active", "HMMA %", 1),
    ("sm__pipe_tensor_op_gmma_cycles_active.avg.pct_of_peak_sustained_active", "GMMA %", 1),
    ("sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active", "XU (exp) %", 1),
    ("sm__inst_executed_pipe_alu.avg.pct_of_peak_sustained_active", "ALU %", 1),
    ("sm__inst_executed_pipe_fma.avg.pct_of_peak_sustained_active", "FMA %", 1),
    ("l1tex__data_pipe_lsu_wavefronts_mem_shared.avg.pct_of_peak_sustained_elapsed", "smem %", 1),
]
STALLS = ["barrier", "long_scoreboard", "short_scoreboard", "math_pipe_throttle",
          "mio_throttle", "wait", "not_selected", "lg_throttle", "dispatch_stall",
          "no_instruction", "branch_resolving", "membar", "sleeping"]
STALL_FMT = "smsp__average_warps_issue_stalled_%s_per_issue_active.ratio"


def all_metrics():
    return [m for m, _, _ in METRICS] + [STALL_FMT % s for s in STALLS]


def caller(who):
    import torch
    if who in ("native", "mma"):
        if who == "mma":
            os.environ["COMFY_SPARSE_ATTN_CUDA_SM90"] = "0"
        from comfy_sparse_attn import dispatch_varlen_attention as f
        return lambda *x: f(*x, backend="native")
    if who == "fa2":
        return lambda q, k, v, cq, ck, mq, mk: torch.ops.aten._flash_attention_forward(
            q, k, v, cq, ck, mq, mk, 0.0, False, False)[0]
    if who == "memeff":
        return lambda q, k, v, cq, ck, mq, mk: torch.ops.aten._efficient_attention_forward(
            q[None], k[None], v[None], None, cq, ck, mq, mk, 0.0, 0, False)[0][0]
    raise SystemExit("unknown caller %r" % who)


def run(path, who, names):
    import torch

    from knobs import inputs  # the knob sweeps' inputs of a workload
    with open(path) as f:
        ws = {w["name"]: w for w in json.load(f)["gpu"]}
    fn = caller(who)
    for name in names:
        args = inputs(ws[name])
        fn(*args)
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
        fn(*args)
        torch.cuda.synchronize()
        torch.cuda.profiler.stop()
        print("# %s %s done" % (who, name), file=sys.stderr)


def table(path):
    """One row per profiled kernel: the metrics, then the three largest
    stall reasons (cycles a warp waits per issued instruction)."""
    rows = {}
    order = []
    with open(path) as f:
        lines = [ln for ln in f if ln.startswith('"')]
    for r in csv.DictReader(lines):
        key = (r["ID"], r["Kernel Name"][:40])
        if key not in rows:
            rows[key] = {}
            order.append(key)
        try:
            rows[key][r["Metric Name"]] = float(r["Metric Value"].replace(",", ""))
        except ValueError:
            pass
    print("| kernel | " + " | ".join(t for _, t, _ in METRICS) + " | top stalls (cycles/issue) |")
    print("|---" * (len(METRICS) + 2) + "|")
    for key in order:
        v = rows[key]
        cells = ["%.3g" % (v[m] * s) if m in v else "-" for m, _, s in METRICS]
        st = sorted(((v.get(STALL_FMT % s, 0.0), s) for s in STALLS), reverse=True)[:3]
        print("| %s | %s | %s |" % (key[1], " | ".join(cells),
                                    ", ".join("%s %.2f" % (s, x) for x, s in st)))


if __name__ == "__main__":
    if sys.argv[1] == "--metrics":
        print(",".join(all_metrics()))
    elif sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "table":
        table(sys.argv[2])
