"""Shared helpers for tests that drive external tools (compilers, fuzzers).

On a developer's fresh machine a missing tool skips its test with the reason;
CI sets COMFY_SPARSE_ATTN_REQUIRE_TOOLS=1 (after installing every tool) so a
missing tool fails instead of silently skipping.
"""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def require(*tools):
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        msg = "needs %s (not installed)" % ", ".join(missing)
        if os.environ.get("COMFY_SPARSE_ATTN_REQUIRE_TOOLS") == "1":
            pytest.fail(msg)
        pytest.skip(msg)


def run(cmd, timeout=900, env=None, cwd=ROOT):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (" ".join(cmd), proc.returncode,
                                                          proc.stdout[-6000:], proc.stderr[-6000:]))
    return proc
