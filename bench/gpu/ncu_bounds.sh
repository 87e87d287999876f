#!/bin/bash
# What bounds each GPU workload, from Nsight Compute: native on every
# standard workload, plus the fastest peer's kernel where native trails it.
# Run from the repository root on the device, with the package installed:
#   bash bench/gpu/ncu_bounds.sh WORKLOADS_JSON        (logs under $OUT)
set -u
W=$1
OUT=${OUT:-/tmp/ncu_out}
mkdir -p "$OUT"
P=bench/gpu/ncu_bounds.py
M=$(python3 $P --metrics)
prof() {  # prof TAG KERNEL_REGEX WHO WORKLOAD...
  local tag=$1 k=$2
  shift 2
  timeout ${T_NCU:-150} ncu --profile-from-start off --csv --print-units base -k "regex:$k" --metrics "$M" \
    python3 $P run "$W" "$@" > "$OUT/ncu_$tag.csv" 2> "$OUT/ncu_$tag.err"
  echo "## $tag (rc=$?)"
  python3 $P table "$OUT/ncu_$tag.csv"
}
prof native 'csa_attn' native slat-self windows cross-img long-hd128 cross-hd128 tiny-seqs patches-hd16
prof mma 'csa_attn' mma windows slat-self
prof fa2 'flash|fmha' fa2 windows patches-hd16 slat-self
prof memeff 'fmha|efficient' memeff tiny-seqs
