#!/bin/bash
# One device call: install the package from prebuilt fatbins (no nvcc on the
# device side; the same path a wheel takes), run the CUDA tests, a
# compute-sanitizer memcheck pass, the accuracy check and the peer benchmark
# with our kernel in the same process as the peers.  Logs go to $OUT.
#
#   bash bench/gpu/run_device.sh FATBIN_DIR PEERS_DIR [only-workloads]
#
# FATBIN_DIR: written by tools/build-fatbin (e.g. CSA_CUDA_ARCHS=90);
# PEERS_DIR: a copy of the peer benchmark (peers_gpu.py + workloads).
set -u
FB=$(cd "$1" && pwd)
PEERS=$2
ONLY=${3:-slat-self,tiny-seqs,patches-hd16}
OUT=${OUT:-/tmp/csa_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" | tee -a "$OUT/gpu.txt"

t0=$(date +%s)
CSA_CUDA_FATBIN_DIR=$FB python3 -m pip install --no-build-isolation --no-deps -v . \
  > "$OUT/build.log" 2>&1
rc=$?
echo "install rc=$rc in $(( $(date +%s) - t0 )) s"
if [ $rc -ne 0 ]; then tail -40 "$OUT/build.log"; exit 1; fi
cd /tmp && python3 -c "from comfy_sparse_attn import _C; print('have_cuda', _C.have_cuda(), 'status', _C.cuda_status(0))"; cd - > /dev/null

timeout ${T_PYTEST:-100} python3 -m pytest -q --maxfail=5 -p no:cacheprovider tests/test_cuda_native.py > "$OUT/pytest.log" 2>&1
rc=$?
echo "pytest rc=$rc"; tail -15 "$OUT/pytest.log"
if [ $rc -ne 0 ] && [ -n "${FALLBACK_FB:-}" ]; then
  # a second fatbin set (e.g. the previous kernel source) to tell which
  # change broke: same host code, other kernels
  echo "== fallback fatbins $FALLBACK_FB"
  CSA_CUDA_FATBIN_DIR=$(cd "$FALLBACK_FB" && pwd) python3 -m pip install --no-build-isolation --no-deps . \
    > "$OUT/build2.log" 2>&1
  timeout ${T_PYTEST:-100} python3 -m pytest -q --maxfail=5 -p no:cacheprovider tests/test_cuda_native.py > "$OUT/pytest2.log" 2>&1
  echo "pytest (fallback) rc=$?"; tail -8 "$OUT/pytest2.log"
fi
timeout ${T_MEMCHECK:-70} compute-sanitizer --tool memcheck --error-exitcode 3 python3 bench/gpu/sanitize_cases.py \
  > "$OUT/memcheck.log" 2>&1
echo "memcheck rc=$?"; tail -4 "$OUT/memcheck.log"
timeout 40 python3 bench/gpu/accuracy.py 2>&1 | tee "$OUT/accuracy.log"
PYTHONPATH=bench/gpu timeout ${T_PEERS:-80} python3 "$PEERS/peers_gpu.py" --only "$ONLY" --reps 5 \
  --extra 'native=comfy_sparse_attn._native:varlen_attention' \
  --extra 'native-nohostcheck=native_nocheck:varlen_attention' \
  > "$OUT/peers.log" 2>&1
echo "peers rc=$?"
grep -E "^\|" "$OUT/peers.log" | head -60
