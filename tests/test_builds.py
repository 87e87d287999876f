"""Builds that guard code this machine cannot run natively.

- Windows: the whole C core (link code's Win32 path included) cross-compiled
  with mingw-w64 (tests/c/cross_windows.sh).
- arm64: the C core with its NEON kernels cross-compiled, and the CPU C tests
  run under qemu-user (tests/c/run_aarch64.sh).
- CUDA: every .cu compiled by nvcc for one architecture, so a broken kernel
  never lands even on a machine without a GPU.
- Warnings: the C core and the extension are -Wall -Wextra clean.
"""
import os

import pytest

from _tools import ROOT, require, run


def _script(name):
    path = os.path.join(ROOT, "tests", "c", name)
    if not os.path.exists(path):
        pytest.fail("%s is missing" % path)
    return path


def test_windows_cross_compile():
    require("x86_64-w64-mingw32-gcc", "cmake")
    run(["bash", _script("cross_windows.sh")])


def test_aarch64_neon_cross_compile_and_run():
    require("aarch64-linux-gnu-gcc", "qemu-aarch64", "cmake")
    run(["bash", _script("run_aarch64.sh")], timeout=1200)


def test_cuda_sources_compile():
    require("nvcc", "cmake")
    if not any(f.endswith(".cu") for f in os.listdir(os.path.join(ROOT, "csrc", "cuda"))):
        pytest.fail("no CUDA sources found")
    build = os.path.join(ROOT, "build", "cuda-check")
    run(["cmake", "-S", "tests/c", "-B", build, "-DCSA_CHECK_CUDA=ON",
         "-DCMAKE_BUILD_TYPE=Release"], env={"CSA_CUDA_ARCHS": os.environ.get("CSA_CUDA_ARCHS", "80")})
    proc = run(["cmake", "--build", build, "--target", "csa_core", "-j", "2"], timeout=1500)
    assert "warning" not in (proc.stdout + proc.stderr).lower(), proc.stdout[-4000:]


def test_c_core_warning_free():
    require("cmake")
    build = os.path.join(ROOT, "build", "warnings")
    run(["cmake", "-S", "tests/c", "-B", build, "-DCSA_SANITIZE=OFF",
         "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror"])
    run(["cmake", "--build", build, "--target", "csa_core", "-j", "2"])


def test_wheel_is_abi3_and_links_no_torch(tmp_path):
    """One wheel for every CPython >= 3.10 (limited API), and the extension
    depends on neither libtorch nor libpython (tensors arrive through DLPack)."""
    import sys
    import zipfile

    require("cmake", "readelf")
    run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", ".", "-w",
         str(tmp_path)], env={"CSA_WITH_CUDA": "OFF"}, timeout=900)
    (wheel,) = [p for p in tmp_path.iterdir() if p.suffix == ".whl"]
    assert "-cp310-abi3-" in wheel.name, wheel.name
    with zipfile.ZipFile(wheel) as z:
        (ext,) = [n for n in z.namelist() if n.endswith(".abi3.so")]
        so = tmp_path / "ext.so"
        so.write_bytes(z.read(ext))
    needed = run(["readelf", "-d", str(so)]).stdout
    assert "libtorch" not in needed and "libc10" not in needed, needed
    assert "libpython" not in needed, needed
