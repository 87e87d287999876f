#!/bin/bash
# One device call: build the package for sm_90, run the CUDA tests, a
# compute-sanitizer memcheck pass, and the peer benchmark with our kernel in
# the same process as the peers.  Logs go to $OUT; a short table prints last.
#
#   run(command="bash bench/gpu/run_device.sh [peers|nopeers] [only-workloads]",
#       carry=[".carry", ".whl"])
# .carry/bench = copy of /work/shared/bench; .whl = pytest wheels (py3.12).
set -u
MODE=${1:-all}
ONLY=${2:-}
OUT=${OUT:-/tmp/csa_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__)" | tee -a "$OUT/gpu.txt"

t0=$(date +%s)
CSA_CUDA_ARCHS=90 python3 -m pip install --no-build-isolation --no-deps -v . > "$OUT/build.log" 2>&1
rc=$?
echo "build rc=$rc in $(( $(date +%s) - t0 )) s"
if [ $rc -ne 0 ]; then tail -40 "$OUT/build.log"; exit 1; fi

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
if [ "$MODE" != "benchonly" ]; then
  PYTHONPATH=/tmp/site python3 -m pytest -q -x -p no:cacheprovider tests/test_cuda_native.py > "$OUT/pytest.log" 2>&1
  echo "pytest rc=$?"; tail -15 "$OUT/pytest.log"
  timeout 300 compute-sanitizer --tool memcheck --error-exitcode 3 python3 bench/gpu/sanitize_cases.py > "$OUT/memcheck.log" 2>&1
  echo "memcheck rc=$?"; tail -4 "$OUT/memcheck.log"
fi
if [ "$MODE" = "profile" ]; then
  timeout 240 ncu -k regex:csa__attn_fwd --section SpeedOfLight --section WarpStateStats \
    --section Occupancy --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section InstructionStats \
    python3 bench/gpu/profile_case.py slat-self tiny-seqs patches-hd16 > "$OUT/ncu.txt" 2>&1
  echo "ncu rc=$?"
fi
if [ "$MODE" != "nopeers" ]; then
  args=()
  [ -n "$ONLY" ] && args+=(--only "$ONLY")
  [ -n "${PEERS:-}" ] && args+=(--peers "$PEERS")
  PYTHONPATH=bench/gpu python3 .carry/bench/peers_gpu.py "${args[@]}" \
    --extra 'native=comfy_sparse_attn._native:varlen_attention' \
    --extra 'native-nohostcheck=native_nocheck:varlen_attention' \
    --extra 'native-small=native_nocheck:small' --extra 'native-big=native_nocheck:big' \
    --extra 'native-s2=native_nocheck:s2' \
    > "$OUT/peers.log" 2>&1
  echo "peers rc=$?"
  grep -E "^\| (workload|---|.*(native|fa2|memeff|varlen_attn|njt|cudnn))" "$OUT/peers.log" | grep -v "sdpa-per-seq |"
fi
