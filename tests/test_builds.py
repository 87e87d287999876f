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
- Minimum driver: the CUDA loader's refusal reasons, against a stand-in
  libcuda.so.1 built here (no GPU needed).
"""
import os
import shutil
import subprocess
import tempfile

import pytest

from _tools import ROOT, require, run


AARCH64_TOOLS = ("aarch64-linux-gnu-gcc", "qemu-aarch64", "cmake")


@pytest.fixture(scope="module", autouse=True)
def aarch64_run(request):
    """run_aarch64.sh, started in the background when this module's first
    test starts, where test_aarch64_neon_cross_compile_and_run (the module's
    last test) is selected: it is mostly one qemu process on one core, and
    the compiles of the tests before it keep the other core busy meanwhile.
    Every named case runs on NEON under qemu (~50x slower than native); the
    random sweep is cut from 600 to 150 cases there (the x86 kernels run the
    whole sweep natively), and the scalar kernel, which the native C tests
    already cover, is left out ("neon": the first ISA tested)."""
    wanted = any(item.name == "test_aarch64_neon_cross_compile_and_run"
                 for item in request.session.items)
    if not wanted or any(shutil.which(t) is None for t in AARCH64_TOOLS):
        yield None  # the test itself says what is missing
        return
    log = tempfile.TemporaryFile(mode="w+")
    env = dict(os.environ, CSA_AARCH64_ARGS=os.environ.get("CSA_AARCH64_ARGS", "150 neon"))
    proc = subprocess.Popen(["bash", _script("run_aarch64.sh")], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, text=True, env=env)
    yield proc, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    log.close()


def _script(name):
    path = os.path.join(ROOT, "tests", "c", name)
    if not os.path.exists(path):
        pytest.fail("%s is missing" % path)
    return path


def test_windows_cross_compile():
    require("x86_64-w64-mingw32-gcc", "cmake")
    run(["bash", _script("cross_windows.sh")])


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
    head += struct.pack("<I", sm) + b"\0" * 8 + struct.pack("<Q", flags) + b"\0" * 24
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


# A stand-in for libcuda.so.1: the driver version, the GPU's compute
# capability and cuModuleLoadData's answer come from the environment, so the
# loader's refusals can be checked on a machine without a GPU.
_FAKE_DRIVER = r"""
#include <stdlib.h>
#include <string.h>
static int env(const char *n, int d) { const char *v = getenv(n); return v ? atoi(v) : d; }
int cuInit(unsigned f) { (void)f; return 0; }
int cuDriverGetVersion(int *v) { *v = env("FAKE_DRIVER", 12020); return 0; }
int cuGetErrorName(int e, const char **s) { *s = e == 200 ? "CUDA_ERROR_INVALID_IMAGE"
    : e == 222 ? "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" : e == 209 ? "CUDA_ERROR_NO_BINARY_FOR_GPU"
    : "CUDA_ERROR_OTHER"; return 0; }
int cuGetErrorString(int e, const char **s) { (void)e; *s = "fake"; return 0; }
int cuDeviceGetCount(int *n) { *n = 1; return 0; }
int cuDeviceGet(int *d, int o) { *d = o; return 0; }
int cuDeviceGetAttribute(int *v, int a, int d) { (void)d; int sm = env("FAKE_SM", 86);
  *v = a == 75 ? sm / 10 : a == 76 ? sm % 10 : a == 97 ? 101376 : a == 16 ? 80 : 1; return 0; }
int cuDevicePrimaryCtxRetain(void **c, int d) { (void)d; *c = (void *)16; return 0; }
int cuCtxGetCurrent(void **c) { *c = (void *)16; return 0; }
int cuCtxPushCurrent_v2(void *c) { (void)c; return 0; }
int cuCtxPopCurrent_v2(void **c) { *c = (void *)16; return 0; }
int cuModuleLoadData(void **m, const void *img) { (void)img; *m = (void *)32;
  return env("FAKE_LOAD", 0); }
int cuModuleGetFunction(void **f, void *m, const char *n) { (void)m; (void)n; *f = (void *)48;
  return 0; }
int cuFuncSetAttribute(void *f, int a, int v) { (void)f; (void)a; (void)v; return 0; }
int cuOccupancyMaxActiveBlocksPerMultiprocessor(int *n, void *f, int b, size_t s) {
  (void)f; (void)b; (void)s; *n = 1; return 0; }
int cuPointerGetAttribute(void *d, int a, unsigned long long p) { (void)d; (void)a; (void)p;
  return 0; }
int cuLaunchKernel(void *f, unsigned a, unsigned b, unsigned c, unsigned d, unsigned e,
  unsigned g, unsigned s, void *st, void **p, void **x) { (void)f; (void)a; (void)b; (void)c;
  (void)d; (void)e; (void)g; (void)s; (void)st; (void)p; (void)x; return 0; }
"""

# Asks the loader what it asks on every CUDA call: cuda_status, then a
# kernel lookup (which loads the module).
_LOADER_PROBE = r"""
#include <stdio.h>
#include "csa/csa.h"
#include "csa/csa_cuda.h"
#include "cuda/loader.h"
int main(void) {
  char why[256];
  int ok = csa_cuda_status(0, why, sizeof why);
  printf("status %d %s\n", ok, why);
  if (!ok) return 0;
  csa__cuda_call c;
  csa__cuda_kernel k;
  int st = csa__cuda_begin(&c, 0);
  if (st == CSA_OK) st = csa__cuda_find(&c, "m", "k", &k);
  printf("find %d %s\n", st, st == CSA_OK ? "" : csa_errmsg());
  csa__cuda_end(&c);
  return 0;
}
"""


def test_loader_names_the_minimum_driver(tmp_path):
    """Against a stand-in driver: a CUDA 11 driver, a Blackwell GPU on a
    pre-R570 driver, a GPU newer than every SASS on a driver that cannot JIT
    CUDA 12.9 PTX, an uncovered GPU, and each cuModuleLoadData refusal give a
    reason that names the driver needed (the embedded module claims what the
    release fatbin holds: SASS 75..120 + compute_120 PTX, by CUDA 12.9)."""
    if not os.path.isdir(os.path.join(ROOT, "csrc", "cuda")):
        pytest.skip("the C sources are part of the source tree, not of the installed package")
    require("cc")
    fb = tmp_path / "fb"
    fb.mkdir()
    (fb / "m.fatbin").write_bytes(b"\x50\xed\x55\xba" + b"\0" * 60)
    (fb / "csa_fatbins.inc").write_text(
        '#define CSA__FATBIN_CUDA_VERSION 12090\n'
        'CSA__FATBIN(m, "m.fatbin", "75,80,86,89,90,100,120", 120, 0)\n')
    drv = tmp_path / "drv"
    drv.mkdir()
    (tmp_path / "fake.c").write_text(_FAKE_DRIVER)
    run(["cc", "-shared", "-fPIC", "-o", str(drv / "libcuda.so.1"), str(tmp_path / "fake.c")])
    (tmp_path / "probe.c").write_text(_LOADER_PROBE)
    src = os.path.join(ROOT, "csrc")
    probe = tmp_path / "probe"
    run(["cc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I" + src,
         "-I" + os.path.join(ROOT, "include"), "-I" + str(fb),
         '-DCSA_FATBIN_DIR="%s"' % fb, str(tmp_path / "probe.c"),
         os.path.join(src, "cuda", "loader.c"), os.path.join(src, "cuda", "driver.c"),
         os.path.join(src, "cuda", "fatbin_embed.c"), os.path.join(src, "core", "status.c"),
         "-o", str(probe), "-ldl", "-lpthread"])

    def ask(driver, sm, load=0, lib=str(drv)):
        return run([str(probe)], env={"LD_LIBRARY_PATH": lib, "FAKE_DRIVER": str(driver),
                                      "FAKE_SM": str(sm), "FAKE_LOAD": str(load)}).stdout

    r12 = "525.60.13 (Linux) / 527.41 (Windows)"
    out = ask(11080, 86)
    assert out.startswith("status 0 ") and r12 in out and "CUDA 11.8" in out, out
    out = ask(12020, 86)
    assert out.splitlines() == ["status 1 ", "find 0 "], out
    out = ask(12060, 100)
    assert out.startswith("status 0 ") and "570.26 (Linux)" in out, out
    out = ask(12080, 130)
    assert out.startswith("status 0 ") and "compute_120" in out and "575.51.03" in out, out
    out = ask(12090, 130)
    assert out.splitlines()[0] == "status 1 ", out
    out = ask(12090, 70)
    assert out.startswith("status 0 ") and "not covered" in out, out
    out = ask(12020, 89, load=200)
    assert "find " in out and "cannot read the embedded m kernels" in out and r12 in out, out
    out = ask(12090, 130, load=222)
    assert "PTX" in out and "575.51.03" in out and "CUDA_ERROR_UNSUPPORTED_PTX_VERSION" in out, out
    out = ask(12020, 89, load=209)
    assert "not covered" in out and "CUDA_ERROR_NO_BINARY_FOR_GPU" in out, out
    out = ask(12020, 89, lib=str(tmp_path / "nowhere"))
    assert out.startswith("status 0 no NVIDIA driver"), out


def test_aarch64_neon_cross_compile_and_run(aarch64_run):
    """Last in the module: its run started with the module's first test
    (the aarch64_run fixture)."""
    require(*AARCH64_TOOLS)
    proc, log = aarch64_run
    rc = proc.wait(timeout=1200)
    log.seek(0)
    out = log.read()
    assert rc == 0, "run_aarch64.sh failed (%d):\n%s" % (rc, out[-6000:])
