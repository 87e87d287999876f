"""Builds that guard code this machine cannot run natively.

- Windows: the whole C core (link code's Win32 path included) cross-compiled
  with mingw-w64 (tests/c/cross_windows.sh).
- arm64: the C core with its NEON kernels cross-compiled, and the CPU C tests
  run under qemu-user (tests/c/run_aarch64.sh).
- CUDA: every .cu compiled by nvcc for one architecture, so a broken kernel
  never lands even on a machine without a GPU.
- Warnings: the C core and the extension are -Wall -Wextra clean.
- Release wheels: the binary readers and the wheel writer of tools/build-wheels
  (the wheels themselves are built and installed by .ci/run).
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


def _build_wheels_module():
    """tools/build-wheels (a script without .py) loaded as a module."""
    import importlib.machinery
    import importlib.util

    path = os.path.join(ROOT, "tools", "build-wheels")
    if not os.path.exists(path):
        pytest.skip("tools/build-wheels is part of the source tree, not of the installed package")
    loader = importlib.machinery.SourceFileLoader("csa_build_wheels", path)
    spec = importlib.util.spec_from_loader("csa_build_wheels", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def test_build_wheels_reads_coff_symbols_and_pe_imports(tmp_path):
    """The two binary readers the Windows wheel depends on: undefined symbols
    of a COFF object (they become python3.dll's import library) and the DLLs
    a PE image imports (the check that only system DLLs + python3.dll are)."""
    require("x86_64-w64-mingw32-gcc")
    bw = _build_wheels_module()
    src = tmp_path / "m.c"
    src.write_text("__declspec(dllimport) extern int PyExc_Fake;\n"
                   "__declspec(dllimport) int Py_FakeCall(int);\n"
                   "extern int csa_not_imported(void);\n"
                   "int f(void) { return PyExc_Fake + Py_FakeCall(1) + csa_not_imported(); }\n"
                   "int defined_here = 3;\n")
    obj = tmp_path / "m.obj"
    run(["x86_64-w64-mingw32-gcc", "-O1", "-c", str(src), "-o", str(obj)])
    undef = set(bw.coff_undefined(str(obj)))
    assert {"__imp_PyExc_Fake", "__imp_Py_FakeCall", "csa_not_imported"} <= undef, undef
    assert "defined_here" not in undef and "f" not in undef, undef
    exe_src = tmp_path / "hello.c"
    exe_src.write_text("#include <windows.h>\nint main(void) { return (int)GetTickCount() & 0; }\n")
    exe = tmp_path / "hello.exe"
    run(["x86_64-w64-mingw32-gcc", str(exe_src), "-o", str(exe)])
    dlls = [d.lower() for d in bw.pe_imports(exe.read_bytes())]
    assert "kernel32.dll" in dlls, dlls
    with pytest.raises(ValueError):
        bw.pe_imports(obj.read_bytes()[:64] + b"\0" * 64)


def test_build_wheels_writes_reproducible_valid_wheels(tmp_path):
    """Same inputs, same bytes; RECORD lists every file with its true hash;
    the WHEEL file carries one Tag line per platform tag."""
    import base64
    import hashlib
    import zipfile

    bw = _build_wheels_module()
    distinfo = tmp_path / "comfy_sparse_attn-0.1.0.dist-info"
    distinfo.mkdir()
    (distinfo / "METADATA").write_text("Metadata-Version: 2.1\nName: comfy-sparse-attn\n"
                                       "Version: 0.1.0\n")
    ext = tmp_path / "_C.abi3.so"
    ext.write_bytes(os.urandom(1000))
    tags = "manylinux_2_17_x86_64.manylinux2014_x86_64"
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    wa = bw.write_wheel(str(a), str(distinfo), tags, str(ext))
    wb = bw.write_wheel(str(b), str(distinfo), tags, str(ext))
    assert open(wa, "rb").read() == open(wb, "rb").read()
    assert os.path.basename(wa) == "comfy_sparse_attn-0.1.0-cp310-abi3-%s.whl" % tags
    with zipfile.ZipFile(wa) as z:
        names = z.namelist()
        assert "comfy_sparse_attn/__init__.py" in names and "comfy_sparse_attn/_C.abi3.so" in names
        assert not any("__pycache__" in n for n in names), names
        wheel = z.read("comfy_sparse_attn-0.1.0.dist-info/WHEEL").decode()
        assert wheel.count("Tag: cp310-abi3-") == 2, wheel
        record = z.read("comfy_sparse_attn-0.1.0.dist-info/RECORD").decode().splitlines()
        listed = {}
        for line in record:
            name, digest, size = line.rsplit(",", 2)
            listed[name] = (digest, size)
        assert set(listed) == set(names), set(names) ^ set(listed)
        for n in names:
            if n.endswith("RECORD"):
                continue
            data = z.read(n)
            want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert listed[n] == ("sha256=" + want, str(len(data))), n
