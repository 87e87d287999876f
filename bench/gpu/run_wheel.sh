#!/bin/bash
# One device call against a wheel built elsewhere (tools/build-wheels): the
# GPU must run the embedded fatbins through the driver-API path with no
# compiler involved.  Installs the wheel, runs the self-check, the CUDA and
# dispatch GPU tests, compute-sanitizer (memcheck on the native cases,
# racecheck on a small Hopper-kernel case), then the peer benchmark with our
# rows in the same process.  Logs go to $OUT.
#
#   bash bench/gpu/run_wheel.sh WHEEL PEERS_DIR [only-workloads]
#
# PEERS_DIR: a folder with a peer benchmark script peers_gpu.py taking
# --only/--reps/--peers/--extra (name=module:func?kw=value); PEER_NAMES (comma
# list) keeps only those peers, REPS sets the repetitions.
set -u
WHEEL=$1
PEERS=$2
ONLY=${3:-slat-self,windows,cross-img,long-hd128,cross-hd128,tiny-seqs,patches-hd16}
OUT=${OUT:-/tmp/csa_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)" | tee -a "$OUT/gpu.txt"
date -u | tee -a "$OUT/gpu.txt"

t0=$(date +%s%N)
python3 -m pip install -q --no-deps --no-index --force-reinstall "$WHEEL" > "$OUT/install.log" 2>&1
rc=$?
echo "wheel install rc=$rc in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ $rc -ne 0 ] && { tail -20 "$OUT/install.log"; exit 1; }
(cd /tmp && python3 -c "import comfy_sparse_attn as c, comfy_sparse_attn._C as C; print('module', c.__file__); print('have_cuda', C.have_cuda(), 'status', C.cuda_status(0))")
(cd /tmp && timeout 120 python3 -m comfy_sparse_attn > "$OUT/selfcheck.log" 2>&1; echo "self-check rc=$?"; tail -12 "$OUT/selfcheck.log")

timeout ${T_PYTEST:-200} python3 -m pytest -q -x -p no:cacheprovider tests/test_cuda_native.py \
  tests/test_dispatch_gpu.py > "$OUT/pytest.log" 2>&1
echo "pytest rc=$?"; grep -E "passed|failed|error" "$OUT/pytest.log" | tail -5
grep -E "^(FAILED|ERROR)" "$OUT/pytest.log" | head -10

timeout ${T_MEMCHECK:-90} compute-sanitizer --tool memcheck --error-exitcode 3 \
  python3 bench/gpu/sanitize_cases.py > "$OUT/memcheck.log" 2>&1
echo "memcheck rc=$?"; tail -3 "$OUT/memcheck.log"
cat > /tmp/race_sm90.py <<'PY'
import torch
from comfy_sparse_attn import _native
dev = torch.device("cuda")
for dt in (torch.bfloat16, torch.float16):
    for d in (64, 128):
        lens = [300, 45, 0, 200]
        cu = torch.tensor([0, 300, 345, 345, 545], dtype=torch.int32, device=dev)
        q = torch.randn(545, 2, d, device=dev, dtype=dt)
        o, l = _native.varlen_attention(q, q, q, cu, cu, 300, 300, causal=(d == 64),
                                        return_lse=True)
        torch.cuda.synchronize()
        assert torch.isfinite(o).all()
print("race cases ok")
PY
timeout ${T_RACE:-90} compute-sanitizer --tool racecheck --error-exitcode 3 python3 /tmp/race_sm90.py \
  > "$OUT/racecheck.log" 2>&1
echo "racecheck rc=$?"; tail -3 "$OUT/racecheck.log"

PYTHONPATH=bench/gpu timeout ${T_PEERS:-300} python3 "$PEERS/peers_gpu.py" --only "$ONLY" \
  --reps ${REPS:-10} ${PEER_NAMES:+--peers "$PEER_NAMES"} \
  --extra 'auto=comfy_sparse_attn:dispatch_varlen_attention' \
  --extra 'native=comfy_sparse_attn:dispatch_varlen_attention?backend="native"' \
  --extra 'native-mma=native_nocheck:mma' \
  > "$OUT/peers.log" 2>&1
echo "peers rc=$?"
grep -E "^\|" "$OUT/peers.log" | head -80
