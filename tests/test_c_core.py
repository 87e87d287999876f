"""Build the C unit tests (tests/c) under ASan + UBSan and run each one.

The C core is built from the same CMake fragments the extension uses, so a C
test exercises exactly the code that ships.  Skipped only when no C compiler
or CMake is present (never in CI: .ci/run installs both).
"""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "ctest-asan")


def _run(cmd, **kw):
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), proc.returncode,
                                                          proc.stdout[-4000:], proc.stderr[-4000:]))
    return proc


@pytest.fixture(scope="module")
def c_tests():
    if shutil.which("cmake") is None or (shutil.which("cc") is None and shutil.which("gcc") is None):
        pytest.skip("needs cmake and a C compiler")
    _run(["cmake", "-S", "tests/c", "-B", BUILD, "-DCMAKE_BUILD_TYPE=Debug"])
    _run(["cmake", "--build", BUILD, "-j", str(os.cpu_count() or 2)])
    return sorted(n for n in os.listdir(BUILD)
                  if n.startswith("test_") and os.access(os.path.join(BUILD, n), os.X_OK)
                  and os.path.isfile(os.path.join(BUILD, n)))


def _names():
    here = os.path.join(ROOT, "tests", "c")
    return sorted(f[:-2] for f in os.listdir(here) if f.startswith("test_") and f.endswith(".c"))


@pytest.mark.parametrize("name", _names())
def test_c_unit(name, c_tests):
    assert name in c_tests, "%s was not built" % name
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([os.path.join(BUILD, name)], capture_output=True, text=True, env=env,
                          timeout=600)
    sys.stdout.write(proc.stdout[-2000:])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
