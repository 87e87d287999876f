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
NV="nvcc -cubin -gencode=arch=compute_90a,code=sm_90a -O3 -std=c++17 -Xptxas -v -Iinclude -Icsrc"
SRC=csrc/cuda/attn_fwd_sm90.cu
t0=$(date +%s)
# Variants (compile-time knobs of attn_sm90_plan.h / attn_fwd_sm90.cu):
#   ws     the default: producer warpgroup, consumers neither overlap nor
#          take turns, producer at 40 registers
#   pp     consumer turns (named barriers; turns pair two warpgroups, so
#          the pp / ovpp variants keep two at D = 64)
#   ovpp   softmax overlapped with the warpgroup's own P V, plus turns,
#          producer at 24 registers;  ovpp40: at 40;  ov / ov40: overlap,
#          no turns (VARIANTS="ws ov" picks a subset)
#   ws2    two consumer warpgroups at D = 64 too (128-row tiles)
#   ws0    no producer warpgroup: every thread copies, one CTA barrier per block
#   late   each K/V block announced one block late (after the next is issued)
#   keys0 / keysall  D 128 never / always takes the short-key tile
#   n64    64-key blocks;  w3n64: and 3 (D 128) / 4 (D 64) consumer warpgroups
V="${VARIANTS:-ws ws2 pp ovpp ovpp40 ov ov40 ws0}"
declare -A FLAGS=([ws]=""
                  [pp]="-DCSA__SM90_PINGPONG=1 -DCSA__SM90_WG_D64=2"
                  [ovpp]="-DCSA__SM90_OVERLAP=1 -DCSA__SM90_PINGPONG=1 -DCSA__SM90_PRODUCER_REGS=24 -DCSA__SM90_WG_D64=2"
                  [ovpp40]="-DCSA__SM90_OVERLAP=1 -DCSA__SM90_PINGPONG=1 -DCSA__SM90_WG_D64=2"
                  [ov]="-DCSA__SM90_OVERLAP=1 -DCSA__SM90_PRODUCER_REGS=24"
                  [ov40]="-DCSA__SM90_OVERLAP=1"
                  [ws2]="-DCSA__SM90_WG_D64=2"
                  [ws0]="-DCSA__SM90_WS=0 -DCSA__SM90_WG_D64=2"
                  [late]="-DCSA__SM90_ANNOUNCE=0"
                  [keys0]="-DCSA__SM90_SHORT_KEYS=0"
                  [keysall]="-DCSA__SM90_SHORT_KEYS=1000000000"
                  [n64]="-DCSA__SM90_BN_D64=64 -DCSA__SM90_BN_D128=64"
                  [w3n64]="-DCSA__SM90_WG_D128=3 -DCSA__SM90_BN_D128=64 -DCSA__SM90_WG_D64=4 -DCSA__SM90_BN_D64=64")
# the launcher reads the launch shape from the plan, so each variant gets
# its own, built with the same knobs
CC="gcc -std=c11 -O2 -Wall -Wextra -fPIC -shared -I/usr/local/cuda/include -Iinclude -Icsrc -Icsrc/cuda"
declare -A LIB=()
rc=0
for v in $V; do
  LIB[$v]=$B/lib_$v.so
  timeout 240 $NV ${FLAGS[$v]} -o $B/$v.cubin $SRC > $B/$v.log 2>&1 &
  $CC ${FLAGS[$v]} -o ${LIB[$v]} $H/launch.c || rc=1
done
(exit $rc)
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
    --lib ${LIB[$SAN]} --cubin $SAN=$B/$SAN.cubin --sanitize --watchdog 60 > "$OUT/memcheck_$SAN.txt" 2>&1
  echo "memcheck rc=$?"; grep -E "PASS|FAIL|HANG|ERROR SUMMARY" "$OUT/memcheck_$SAN.txt" | tail -6
  echo "== racecheck ($SAN)"; timeout 120 compute-sanitizer --tool racecheck --error-exitcode 3 python3 $H/check.py \
    --lib ${LIB[$SAN]} --cubin $SAN=$B/$SAN.cubin --sanitize --watchdog 60 > "$OUT/racecheck_$SAN.txt" 2>&1
  echo "racecheck rc=$?"; grep -E "PASS|FAIL|HANG|ERROR SUMMARY|RACECHECK SUMMARY|hazard" "$OUT/racecheck_$SAN.txt" | tail -6
done
K=""
for v in "${GOOD[@]}"; do K="$K --cubin $v=$B/$v.cubin,${LIB[$v]}"; done
if [ -n "$K" ]; then
  echo "== bench"; timeout 200 python3 $H/check.py $K --bench ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt"
fi
cuobjdump --dump-sass $B/ws.cubin | grep -oE "HGMMA\.[^ ]*|USETMAXREG[^ ]*" | sort | uniq -c > "$OUT/sass_summary.txt"
cat "$OUT/sass_summary.txt"
echo "total $(( $(date +%s) - t0 )) s"
