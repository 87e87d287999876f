"""Run every libFuzzer target (tests/c/fuzz_*.c) for a bounded time.

Each target feeds arbitrary shapes, strides and values to a C entry point,
which must answer with a status code: any crash, sanitizer report or leak
fails the test.  COMFY_SPARSE_ATTN_FUZZ_SECONDS sets the time per target.
"""
import os

import pytest

from _tools import ROOT, require, run

BUILD = os.path.join(ROOT, "build", "fuzz")
SECONDS = int(os.environ.get("COMFY_SPARSE_ATTN_FUZZ_SECONDS", "25"))


def _targets():
    here = os.path.join(ROOT, "tests", "c")
    return sorted(f[:-2] for f in os.listdir(here) if f.startswith("fuzz_") and f.endswith(".c"))


@pytest.fixture(scope="module")
def fuzz_build():
    require("clang", "cmake")
    run(["cmake", "-S", "tests/c", "-B", BUILD, "-DCSA_FUZZ=ON", "-DCMAKE_C_COMPILER=clang"])
    run(["cmake", "--build", BUILD, "-j", "2"])
    return BUILD


@pytest.mark.parametrize("name", _targets())
def test_fuzz_target(name, fuzz_build):
    corpus = os.path.join(fuzz_build, name + "-corpus")
    os.makedirs(corpus, exist_ok=True)
    run([os.path.join(fuzz_build, name), "-max_total_time=%d" % SECONDS, "-seed=1",
         "-print_final_stats=1", corpus], timeout=SECONDS * 4 + 60,
        env={"ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1"})
