#!/usr/bin/env bash
# Cross-builds the C tests for AArch64 (NEON kernel) and runs the CPU ones
# under qemu-aarch64.  Needs aarch64-linux-gnu-gcc and qemu-user (Debian:
# gcc-aarch64-linux-gnu qemu-user).  Sanitizers are off: qemu-user does not
# run ASan's shadow memory.
#
#   tests/c/run_aarch64.sh [build-dir]        (default build/aarch64)
#
# Extra arguments for the test binaries may be passed in CSA_AARCH64_ARGS
# (e.g. a smaller sweep: CSA_AARCH64_ARGS=100).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-$root/build/aarch64}
for tool in aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "run_aarch64.sh: $tool not found" >&2; exit 2; }
done
cmake -S "$here" -B "$build" -DCSA_SANITIZE=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc >/dev/null
cmake --build "$build" -j 2 >/dev/null
status=0
ran=0
for t in "$build"/test_cpu_*; do
  [ -x "$t" ] || continue
  ran=$((ran + 1))
  echo "== $(basename "$t") (qemu-aarch64)"
  # shellcheck disable=SC2086
  qemu-aarch64 -L /usr/aarch64-linux-gnu "$t" ${CSA_AARCH64_ARGS:-} || status=1
done
[ "$ran" -gt 0 ] || { echo "run_aarch64.sh: no test_cpu_* binary built" >&2; exit 1; }
exit $status
