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
- Release fatbins: the fatbin reader of tools/build-fatbin and, where the
  NVRTC 12.9 packages are installed (build/nvrtc-cu12, as .ci/run's wheel
  build leaves them), a CUDA 12 fatbin built by its --nvrtc mode.
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


def _tool_module(name):
    """tools/<name> (a script without .py) loaded as a module."""
    import importlib.machinery
    import importlib.util

    path = os.path.join(ROOT, "tools", name)
    if not os.path.exists(path):
        pytest.skip("tools/%s is part of the source tree, not of the installed package" % name)
    mod_name = "csa_" + name.replace("-", "_")
    loader = importlib.machinery.SourceFileLoader(mod_name, path)
    spec = importlib.util.spec_from_loader(mod_name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def _build_wheels_module():
    return _tool_module("build-wheels")


def _fake_entry(kind, sm, payload, flags=0x11):
    """One fatbin entry as tools/build-fatbin reads it (72-byte header)."""
    import struct
    head = struct.pack("<HHIQ", kind, 0x101, 72, len(payload)) + b"\0" * 12
    head += struct.pack("<I", sm) + b"\0" * 16 + struct.pack("<Q", flags) + b"\0" * 16
    assert len(head) == 72
    return head + payload


def _fake_fatbin(*entries):
    import struct
    body = b"".join(entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def _elf(abi):
    return b"\x7fELF\x02\x01\x01" + bytes([0x33 if abi == 7 else 0x41, abi]) + b"\0" * 55


def test_build_fatbin_reads_entries_and_guards_the_cuda12_promise():
    """The fatbin reader finds every entry's kind, sm, size, flags and cubin
    ELF ABI; the CUDA 12 check refuses what an R525..R570 driver could not
    load (a compressed entry, a cubin below sm_100 in the CUDA 13 ELF ABI)."""
    fb = _tool_module("build-fatbin")
    ptx = b".version 8.8\n.target sm_120\n" + b"\0" * 3
    data = _fake_fatbin(_fake_entry(2, 80, _elf(7)), _fake_entry(2, 120, _elf(8)),
                        _fake_entry(1, 120, ptx))
    ents = fb.fatbin_entries(data)
    assert ents == [("elf", 80, 64, 0x11, 7), ("elf", 120, 64, 0x11, 8),
                    ("ptx", 120, len(ptx), 0x11, 0)], ents
    fb.check_cuda12("m", ents)  # sm_120 may be ABI 8: R570 reads it, Blackwell needs R570
    for bad in ([("elf", 80, 64, 0x11, 8)], [("elf", 86, 64, 0x2011, 7)],
                [("ptx", 120, 9, 0x8011, 0)]):
        with pytest.raises(SystemExit):
            fb.check_cuda12("m", bad)
    with pytest.raises(ValueError):
        fb.fatbin_entries(b"\0" * 16 + data[16:])
    with pytest.raises(ValueError):
        fb.fatbin_entries(data[:-10])


def _nvrtc_dir():
    """The NVRTC packages: $CSA_NVRTC_DIR (missing there: a failure, CI names
    it) or build/nvrtc-cu12 (missing there: a skip)."""
    d = os.environ.get("CSA_NVRTC_DIR") or os.path.join(ROOT, "build", "nvrtc-cu12")
    rtc = os.path.join(d, "nvidia", "cuda_nvrtc", "lib", "libnvrtc.so.12")
    if not os.path.exists(rtc):
        if os.environ.get("CSA_NVRTC_DIR"):
            pytest.fail("CSA_NVRTC_DIR=%s has no libnvrtc.so.12" % d)
        pytest.skip("needs the NVRTC 12.9 packages in %s (tools/build-fatbin --nvrtc installs "
                    "them; .ci/run runs this test after its wheel build)" % d)
    return d


def test_nvrtc_builds_a_cuda12_fatbin(tmp_path):
    """tools/build-fatbin --nvrtc: SASS for each asked arch, the sm_90a-only
    module, PTX, all in cubins of the CUDA 12 ELF ABI, and csa_fatbins.inc
    recording CUDA 12.9 for the run-time driver check."""
    import sys
    fb = _tool_module("build-fatbin")
    out = tmp_path / "fb"
    run([sys.executable, os.path.join(ROOT, "tools", "build-fatbin"), "--nvrtc", "--nvrtc-dir",
         _nvrtc_dir(), "--modules", "sanitize,attn_fwd_sm90", "--archs", "75,90", "--ptx", "90",
         "-o", str(out)], timeout=900)
    inc = (out / "csa_fatbins.inc").read_text()
    assert "#define CSA__FATBIN_CUDA_VERSION 12090" in inc, inc
    assert 'CSA__FATBIN(sanitize, "sanitize.fatbin", "75,90", 90, 0)' in inc, inc
    assert 'CSA__FATBIN(attn_fwd_sm90, "attn_fwd_sm90.fatbin", "", 0, 90)' in inc, inc
    ents = fb.fatbin_entries((out / "sanitize.fatbin").read_bytes())
    assert [(k, sm, abi) for k, sm, _, _, abi in ents] == [
        ("elf", 75, 7), ("elf", 90, 7), ("ptx", 90, 0)], ents
    assert all(fl & 0xA000 == 0 for _, _, _, fl, _ in ents), ents
    ents = fb.fatbin_entries((out / "attn_fwd_sm90.fatbin").read_bytes())
    assert [(k, sm, abi) for k, sm, _, _, abi in ents] == [("elf", 90, 7)], ents


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
