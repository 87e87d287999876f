#!/bin/bash
# One device call for the Hopper kernel: build the cubin variants and the
# launcher, check correctness against float64, run compute-sanitizer memcheck
# and racecheck on small cases, and time long-hd128 / slat-self next to the
# peers.  Run from the repository root:  bash bench/gpu/sm90/run.sh
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
# pp: the default (producer warpgroup + turns); ws: no turns; ws0: no
# producer (all threads copy); split: pp with P V issued per 64 columns.
timeout 240 $NV -o $B/pp.cubin $SRC > $B/pp.log 2>&1 &
timeout 240 $NV -DCSA__SM90_PINGPONG=0 -o $B/ws.cubin $SRC > $B/ws.log 2>&1 &
timeout 240 $NV -DCSA__SM90_WS=0 -o $B/ws0.cubin $SRC > $B/ws0.log 2>&1 &
timeout 240 $NV -DCSA_SM90_PV_SPLIT -o $B/split.cubin $SRC > $B/split.log 2>&1 &
CC="gcc -std=c11 -O2 -Wall -Wextra -fPIC -shared -I/usr/local/cuda/include -Icsrc/cuda"
$CC -o $B/libsm90.so $H/launch.c && $CC -DCSA__SM90_WS=0 -o $B/libsm90_ws0.so $H/launch.c
echo "launcher rc=$?"
wait
echo "cubins built in $(( $(date +%s) - t0 )) s"; ls -la $B
for v in pp ws ws0 split; do echo "-- $v"; grep -E "error|registers|spill|C75" $B/$v.log | sort | uniq -c; done \
  > "$OUT/ptxas.txt" 2>&1; cat "$OUT/ptxas.txt"
cp $B/*.log "$OUT/" 2>/dev/null
declare -A SPEC=([pp]="$B/pp.cubin" [ws]="$B/ws.cubin" [ws0]="$B/ws0.cubin,$B/libsm90_ws0.so"
                [split]="$B/split.cubin")
# correctness of every variant at once, each in its own process (a hang is
# caught by the watchdog and costs only that variant)
echo "== cases"
for v in pp ws ws0 split; do
  [ -f $B/$v.cubin ] || continue
  timeout 120 python3 $H/check.py --lib $B/libsm90.so --cubin $v=${SPEC[$v]} --cases --watchdog 10 \
    > "$OUT/cases_$v.txt" 2>&1 &
done
wait
GOOD=()
for v in pp ws ws0 split; do
  [ -f "$OUT/cases_$v.txt" ] || continue
  cat "$OUT/cases_$v.txt" | grep -vE "^\s*$" | tail -16
  grep -q FAIL "$OUT/cases_$v.txt" || grep -q -E "HANG|Error|Traceback" "$OUT/cases_$v.txt" || GOOD+=($v)
done
echo "passing variants: ${GOOD[*]:-none}"
SAN=${GOOD[0]:-pp}
echo "== memcheck ($SAN)"; timeout 150 compute-sanitizer --tool memcheck --error-exitcode 3 python3 $H/check.py \
  --lib $B/libsm90.so --cubin $SAN=${SPEC[$SAN]} --sanitize --watchdog 60 > "$OUT/memcheck.txt" 2>&1
echo "memcheck rc=$?"; grep -E "PASS|FAIL|HANG|ERROR SUMMARY" "$OUT/memcheck.txt" | tail -10
echo "== racecheck ($SAN)"; timeout 150 compute-sanitizer --tool racecheck --error-exitcode 3 python3 $H/check.py \
  --lib $B/libsm90.so --cubin $SAN=${SPEC[$SAN]} --sanitize --watchdog 60 > "$OUT/racecheck.txt" 2>&1
echo "racecheck rc=$?"; grep -E "PASS|FAIL|HANG|ERROR SUMMARY|RACECHECK SUMMARY|hazard" "$OUT/racecheck.txt" | tail -10
K=""
for v in "${GOOD[@]}"; do K="$K --cubin $v=${SPEC[$v]}"; done
if [ -n "$K" ]; then
  echo "== bench"; timeout 150 python3 $H/check.py --lib $B/libsm90.so $K --bench 2>&1 | tee "$OUT/bench.txt"
fi
cuobjdump --dump-sass $B/pp.cubin | grep -oE "HGMMA\.[^ ]*|USETMAXREG[^ ]*" | sort | uniq -c > "$OUT/sass_summary.txt"
cat "$OUT/sass_summary.txt"
echo "total $(( $(date +%s) - t0 )) s"
