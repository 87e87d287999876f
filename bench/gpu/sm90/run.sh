#!/bin/bash
# One device call for the Hopper kernel: build the cubin variants and the
# launcher, check correctness against float64, run compute-sanitizer memcheck
# and racecheck on small cases, and time long-hd128, slat-self, cross-img and
# cross-hd128 next to the peers.  Run from the repository root:
#   bash bench/gpu/sm90/run.sh          (SANITIZE="ws pp" picks the variants
#                                        run under compute-sanitizer)
set -u -o pipefail
OUT=${OUT:-/tmp/sm90_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
H=bench/gpu/sm90
B=$H/build
mkdir -p $B
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
date -u | tee -a "$OUT/gpu.txt"
NV="nvcc -cubin -gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Xptxas -v"
SRC=csrc/cuda/attn_fwd_sm90.cu
t0=$(date +%s)
# Variants (compile-time knobs of attn_sm90_plan.h / attn_fwd_sm90.cu):
#   ws     the default: producer warpgroup, consumers neither overlap nor
#          take turns, producer at 40 registers
#   pp     consumer turns (named barriers)
#   ovpp   softmax overlapped with the warpgroup's own P V, plus turns,
#          producer at 24 registers;  ovpp40: at 40;  ov: overlap, no turns
#   ws0    no producer warpgroup: every thread copies, one CTA barrier per block
V="ws pp ovpp ovpp40 ov ws0"
declare -A FLAGS=([ws]=""
                  [pp]="-DCSA__SM90_PINGPONG=1"
                  [ovpp]="-DCSA__SM90_OVERLAP=1 -DCSA__SM90_PINGPONG=1 -DCSA__SM90_PRODUCER_REGS=24"
                  [ovpp40]="-DCSA__SM90_OVERLAP=1 -DCSA__SM90_PINGPONG=1"
                  [ov]="-DCSA__SM90_OVERLAP=1 -DCSA__SM90_PRODUCER_REGS=24"
                  [ws0]="-DCSA__SM90_WS=0")
# the launcher reads the block size from the plan, so ws0 needs its own
declare -A LIB=([ovpp]=$B/libsm90.so [ov]=$B/libsm90.so [ovpp40]=$B/libsm90.so [ws]=$B/libsm90.so
                [pp]=$B/libsm90.so [ws0]=$B/libsm90_ws0.so)
for v in $V; do timeout 240 $NV ${FLAGS[$v]} -o $B/$v.cubin $SRC > $B/$v.log 2>&1 & done
CC="gcc -std=c11 -O2 -Wall -Wextra -fPIC -shared -I/usr/local/cuda/include -Icsrc/cuda"
$CC -o $B/libsm90.so $H/launch.c && $CC -DCSA__SM90_WS=0 -o $B/libsm90_ws0.so $H/launch.c
echo "launcher rc=$?"
wait
echo "cubins built in $(( $(date +%s) - t0 )) s"; ls -la $B
for v in $V; do echo "-- $v"; grep -E "error|registers|spill|C75" $B/$v.log | sort | uniq -c; done \
  > "$OUT/ptxas.txt" 2>&1; cat "$OUT/ptxas.txt"
cp $B/*.log "$OUT/" 2>/dev/null
# correctness of every variant at once, each in its own process (a hang is
# caught by the watchdog and costs only that variant)
echo "== cases"
for v in $V; do
  [ -f $B/$v.cubin ] || continue
  timeout 120 python3 $H/check.py --lib ${LIB[$v]} --cubin $v=$B/$v.cubin --cases --watchdog 10 \
    > "$OUT/cases_$v.txt" 2>&1 &
done
wait
GOOD=()
for v in $V; do
  [ -f "$OUT/cases_$v.txt" ] || continue
  cat "$OUT/cases_$v.txt" | grep -vE "^\s*$" | tail -16
  grep -q FAIL "$OUT/cases_$v.txt" || grep -q -E "HANG|Error|Traceback" "$OUT/cases_$v.txt" || GOOD+=($v)
done
echo "passing variants: ${GOOD[*]:-none}"
for SAN in ${SANITIZE:-ws}; do
  echo "== memcheck ($SAN)"; timeout 120 compute-sanitizer --tool memcheck --error-exitcode 3 python3 $H/check.py \
    --lib $B/libsm90.so --cubin $SAN=$B/$SAN.cubin --sanitize --watchdog 60 > "$OUT/memcheck_$SAN.txt" 2>&1
  echo "memcheck rc=$?"; grep -E "PASS|FAIL|HANG|ERROR SUMMARY" "$OUT/memcheck_$SAN.txt" | tail -6
  echo "== racecheck ($SAN)"; timeout 120 compute-sanitizer --tool racecheck --error-exitcode 3 python3 $H/check.py \
    --lib $B/libsm90.so --cubin $SAN=$B/$SAN.cubin --sanitize --watchdog 60 > "$OUT/racecheck_$SAN.txt" 2>&1
  echo "racecheck rc=$?"; grep -E "PASS|FAIL|HANG|ERROR SUMMARY|RACECHECK SUMMARY|hazard" "$OUT/racecheck_$SAN.txt" | tail -6
done
K=""
for v in "${GOOD[@]}"; do K="$K --cubin $v=$B/$v.cubin,${LIB[$v]}"; done
if [ -n "$K" ]; then
  echo "== bench"; timeout 150 python3 $H/check.py --lib $B/libsm90.so $K --bench 2>&1 | tee "$OUT/bench.txt"
fi
cuobjdump --dump-sass $B/ws.cubin | grep -oE "HGMMA\.[^ ]*|USETMAXREG[^ ]*" | sort | uniq -c > "$OUT/sass_summary.txt"
cat "$OUT/sass_summary.txt"
echo "total $(( $(date +%s) - t0 )) s"
