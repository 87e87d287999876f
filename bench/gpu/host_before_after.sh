#!/bin/bash
# One device call: host time per auto-dispatch call of two builds side by
# side, the same kernels in both (only host code differs), runs alternated.
#
#   bash bench/gpu/host_before_after.sh FATBIN_DIR BEFORE_SRC [workload,...]
#
# FATBIN_DIR: written by tools/build-fatbin (e.g. CSA_CUDA_ARCHS=90), embedded
#             by both builds, so nothing is compiled by nvcc here;
# BEFORE_SRC: the source tree to compare with (e.g. `git archive` of the
#             parent commit); "after" is the tree this script runs from.
# Both are installed with pip --target into $WORK/before and $WORK/after and
# imported through PYTHONPATH from outside the tree.  Then, twice, in the
# order before, after: bench/gpu/host_profile.py on the workloads; then
# bench/bench_dispatch.py --device cuda (and --split: the pieces of one
# remembered call); last, the dispatch and native CUDA tests with the after
# build.  Logs go to $OUT.
set -u
FB=$(cd "$1" && pwd)
BEFORE=$(cd "$2" && pwd)
ONLY=${3:-slat-self,windows,tiny-seqs,cross-img}
HERE=$(pwd)
OUT=${OUT:-/tmp/csa_out}
WORK=${WORK:-/tmp/csa_host}
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda, 'dlpack C table:',
hasattr(torch.Tensor, '__dlpack_c_exchange_api__'))" | tee -a "$OUT/gpu.txt"

for which in before after; do
  src=$HERE
  [ "$which" = before ] && src=$BEFORE
  t0=$(date +%s)
  rm -rf "${WORK:?}/$which"
  (cd "$src" && CSA_CUDA_FATBIN_DIR=$FB python3 -m pip install --no-build-isolation --no-deps \
     --target "$WORK/$which" . > "$OUT/build_$which.log" 2>&1)
  rc=$?
  echo "install $which rc=$rc in $(( $(date +%s) - t0 )) s"
  if [ $rc -ne 0 ]; then tail -30 "$OUT/build_$which.log"; exit 1; fi
done

for round in 1 2; do
  for which in before after; do
    echo "== host_profile, $which, round $round"
    (cd "$WORK" && PYTHONPATH="$WORK/$which" timeout 120 python3 "$HERE/bench/gpu/host_profile.py" \
       "$ONLY") > "$OUT/host_profile_${which}_$round.log" 2>&1
    echo "rc=$?"
    grep -E "^[a-z0-9-]+: backend|^  [A-Za-z6].* us per call|^  C fast path" \
      "$OUT/host_profile_${which}_$round.log"
  done
done
for which in before after; do
  echo "== bench_dispatch --device cuda, $which"
  (cd "$WORK" && PYTHONPATH="$WORK/$which" timeout 150 python3 "$HERE/bench/bench_dispatch.py" \
     --device cuda --iters 100) > "$OUT/bench_dispatch_$which.log" 2>&1
  echo "rc=$?"
  (cd "$WORK" && PYTHONPATH="$WORK/$which" timeout 60 python3 "$HERE/bench/bench_dispatch.py" \
     --device cuda --iters 200 --split) >> "$OUT/bench_dispatch_$which.log" 2>&1
  echo "rc=$? (--split)"
  grep -E "^\|" "$OUT/bench_dispatch_$which.log"
done

echo "== tests, after build"
PYTHONPATH="$WORK/after" timeout ${T_PYTEST:-200} python3 -m pytest -q -p no:cacheprovider \
  tests/test_dispatch_gpu.py tests/test_dispatch.py tests/test_cuda_native.py \
  > "$OUT/pytest_after.log" 2>&1
echo "pytest rc=$?"
tail -5 "$OUT/pytest_after.log"
