#!/usr/bin/env bash
# Cross-compiles the C core for Windows with MinGW-w64, warnings as errors
# for the setup_link files, so the Windows code paths (csrc/link/win/) are at
# least compiled on every CI run even though no Windows machine runs them.
#
#   tests/c/cross_windows.sh [build-dir]      (default: build/cross-windows)
#
# Builds target csa_core (must succeed), then tries every test executable:
# the POSIX-only ones (fork, mkdtemp, mount namespaces) are expected not to
# compile and are listed, not failed.  With Wine installed, the executables
# that built are run too.  Exit status: 0 when csa_core built, csrc/link
# compiled without warnings and every test_link_* passed under Wine (if run);
# 1 otherwise.
set -u
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${1:-$root/build/cross-windows}"
cc="${CSA_MINGW_CC:-x86_64-w64-mingw32-gcc}"

if ! command -v "$cc" >/dev/null 2>&1; then
  echo "cross_windows: $cc not found; install mingw-w64" >&2
  exit 1
fi

mkdir -p "$build"
cmake -S "$here" -B "$build" \
  -DCMAKE_SYSTEM_NAME=Windows \
  -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCSA_SANITIZE=OFF >"$build/configure.log" 2>&1 || {
  cat "$build/configure.log" >&2
  echo "cross_windows: cmake configure failed" >&2
  exit 1
}

log="$build/csa_core.log"
if ! cmake --build "$build" --target csa_core -j "$(nproc 2>/dev/null || echo 2)" >"$log" 2>&1; then
  cat "$log" >&2
  echo "cross_windows: csa_core FAILED to cross-compile" >&2
  exit 1
fi
status=0
# Warnings anywhere are shown; warnings in csrc/link fail the run.
if grep -n "warning:" "$log" >/dev/null; then
  echo "cross_windows: warnings while building csa_core:"
  grep -n "warning:" "$log"
  if grep "warning:" "$log" | grep -q "csrc/link/"; then
    status=1
  fi
fi
echo "cross_windows: csa_core built ($(ls "$build"/*.a 2>/dev/null | head -1))"

built=() skipped=()
for src in "$here"/test_*.c; do
  name="$(basename "$src" .c)"
  if cmake --build "$build" --target "$name" >"$build/$name.log" 2>&1; then
    built+=("$name")
  else
    skipped+=("$name")
  fi
done
echo "cross_windows: test executables built: ${built[*]:-none}"
echo "cross_windows: not built for Windows (POSIX-only tests, see $build/<name>.log): ${skipped[*]:-none}"

# Run what was built under Wine when it is installed (CSA_CROSS_RUN=0 skips).
# The setup_link tests gate the exit status; the others are reported.  Wine
# cannot create symlinks (CreateSymbolicLinkW is a stub that does nothing), so
# test_link_portable covers the Windows layer minus links.
wine=""
for w in "${CSA_WINE:-}" wine64 wine /usr/lib/wine/wine64; do
  if [ -n "$w" ] && command -v "$w" >/dev/null 2>&1; then wine="$w"; break; fi
done
if [ "${CSA_CROSS_RUN:-1}" = "0" ] || [ -z "$wine" ]; then
  echo "cross_windows: Wine not found (or CSA_CROSS_RUN=0): Windows executables not run"
  # CI installs Wine and asks for every tool: there a missing Wine fails.
  if [ -z "$wine" ] && [ "${COMFY_SPARSE_ATTN_REQUIRE_TOOLS:-0}" = "1" ]; then
    echo "cross_windows: COMFY_SPARSE_ATTN_REQUIRE_TOOLS=1 and no Wine" >&2
    exit 1
  fi
  exit $status
fi
export WINEPREFIX="${WINEPREFIX:-$build/wineprefix}" WINEDEBUG=-all
# MinGW runtime DLLs (libwinpthread-1.dll for code using pthreads) live next
# to the cross compiler, not in the Wine prefix: let the loader find them.
dlls=""
for d in "$(dirname "$("$cc" -print-file-name=libwinpthread-1.dll)")" \
         "$(dirname "$("$cc" -print-libgcc-file-name)")" /usr/x86_64-w64-mingw32/lib; do
  case "$d" in /*) [ -d "$d" ] && dlls="${dlls:+$dlls;}Z:$d" ;; esac
done
export WINEPATH="${WINEPATH:+$WINEPATH;}$dlls"
timeout 300 "$wine" wineboot -i >"$build/wineboot.log" 2>&1 || true
for name in "${built[@]}"; do
  if timeout 600 "$wine" "$build/$name.exe" >"$build/$name.wine.log" 2>&1; then
    echo "cross_windows: [wine] $name: $(tail -1 "$build/$name.wine.log")"
  else
    echo "cross_windows: [wine] $name FAILED (see $build/$name.wine.log):"
    tail -20 "$build/$name.wine.log"
    case "$name" in test_link_*) status=1 ;; esac
  fi
done
exit $status
