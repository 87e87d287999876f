"""`python -m comfy_sparse_attn` (self-check) and its bench subcommand."""
import json
import os
import subprocess
import sys

import pytest

from comfy_sparse_attn import __main__ as cli
from comfy_sparse_attn import _dispatch


@pytest.fixture(autouse=True)
def clean():
    _dispatch._reset_for_tests()
    yield
    _dispatch._reset_for_tests()


def _env():
    env = dict(os.environ)
    env.pop(_dispatch.ENV_BACKEND, None)
    return env


def test_selfcheck_subprocess_passes():
    proc = subprocess.run([sys.executable, "-m", "comfy_sparse_attn", "--reps", "1"],
                          capture_output=True, text=True, env=_env(), timeout=600)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "torch" in out and "Python" in out and "device:" in out
    for name in ("native", "sdpa", "sage2", "flash", "xformers"):
        assert name in out
    assert "self-check: PASSED" in out
    assert "auto -> " in out


def test_selfcheck_fails_on_wrong_numbers(monkeypatch, capsys):
    monkeypatch.setattr(cli, "SELFCHECK", dict(cli.SELFCHECK, n=20))
    from comfy_sparse_attn.backends import sdpa

    real = sdpa.run

    def wrong(*a, **kw):
        out = real(*a, **kw)
        out.mul_(1.01)  # 1% off: far over the fp32 tolerance
        return out

    monkeypatch.setattr(sdpa, "run", wrong)
    assert cli.main(["--device", "cpu", "--reps", "1"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_selfcheck_reports_a_crashing_backend(monkeypatch, capsys):
    monkeypatch.setattr(cli, "SELFCHECK", dict(cli.SELFCHECK, n=20))
    from comfy_sparse_attn.backends import sdpa

    def boom(*a, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(sdpa, "run", boom)
    assert cli.main(["--device", "cpu", "--reps", "1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "self-check: FAILED" in out


def test_no_torch_is_a_message_not_a_traceback():
    code = ("import sys; sys.modules['torch'] = None; import runpy; "
            "runpy.run_module('comfy_sparse_attn', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs PyTorch" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_small_workloads_file(tmp_path, capsys):
    wl = {"cpu": [
        {"name": "mini", "q": {"n": 5, "lo": 4, "hi": 20, "seed": 1}, "kv": None, "H": 2,
         "H_kv": 2, "D": 16, "dtype": ["float32", "bfloat16"]},
        {"name": "other", "q": [8], "kv": [3], "H": 2, "H_kv": 1, "D": 8, "dtype": "float32"}]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(wl))
    png = tmp_path / "chart.png"
    rc = cli.main(["bench", "--device", "cpu", "--workloads-file", str(path),
                   "--workloads", "mini", "--reps", "2", "--plot", str(png)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "[1/" in out  # progress lines
    assert "mini/float32" in out and "mini/bfloat16" in out and "other" not in out
    assert "auto (" in out and "median ms" in out
    try:
        import matplotlib  # noqa: F401
        assert png.exists()
    except ImportError:
        assert "needs matplotlib" in out


def test_bench_unknown_workload(capsys):
    assert cli.main(["bench", "--device", "cpu", "--workloads", "nope"]) == 1


def test_embedded_workloads_match_the_shared_definitions():
    """The embedded copy must keep the shared length rule and sizes."""
    for path in ("bench/workloads.json", "/work/shared/bench/workloads.json"):
        full = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), path)
        if os.path.exists(full):
            with open(full) as f:
                shared = json.load(f)
            for section in ("gpu", "cpu"):
                a = {w["name"]: w for w in shared[section]}
                b = {w["name"]: w for w in cli.WORKLOADS[section]}
                assert set(a) == set(b)
                for name in a:
                    for key in ("q", "kv", "H", "H_kv", "D", "dtype"):
                        assert a[name].get(key) == b[name].get(key), (name, key)
            return
    pytest.skip("no workloads.json to compare with")
