"""`python -m comfy_sparse_attn` (self-check) and its bench subcommand.

Kept fast: the bench tests run a tiny workload file with one or two repetitions."""
import json
import os
import subprocess
import sys

import pytest

from _tools import ROOT
from comfy_sparse_attn import __main__ as cli
from comfy_sparse_attn import _bench, _dispatch
from comfy_sparse_attn import _workloads as W

TINY = {"cpu": [
    {"name": "mini", "q": {"n": 5, "lo": 4, "hi": 20, "seed": 1}, "kv": None, "H": 2,
     "H_kv": 2, "D": 16, "dtype": ["float32", "bfloat16"]},
    {"name": "other", "q": [8, 0], "kv": [3, 5], "H": 2, "H_kv": 1, "D": 8, "dtype": "float32"}]}


@pytest.fixture(autouse=True)
def clean():
    _dispatch._reset_for_tests()
    yield
    _dispatch._reset_for_tests()


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def _env():
    env = dict(os.environ)
    env.pop(_dispatch.ENV_BACKEND, None)
    return env


def _tidy(text):
    """Every line at most 100 characters, none with trailing spaces."""
    for line in text.splitlines():
        assert len(line) <= cli.WIDTH, line
        assert line == line.rstrip(), repr(line)


def _no_unshipped_paths(text):
    # Nothing the CLI prints may name a file the wheel does not ship (the native
    # placement evidence from csrc/core/dispatch.c included).
    for line in text.splitlines():
        assert "RESULTS.md" not in line and "bench/" not in line, line


# --- the self-check -------------------------------------------------------------------

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
    _tidy(out)
    _no_unshipped_paths(out)


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
    out = capsys.readouterr().out
    assert "FAIL sdpa: relative error" in out and "self-check: FAILED (1)" in out


def test_selfcheck_prints_a_crashing_backend_reason_in_full(monkeypatch, capsys):
    monkeypatch.setattr(cli, "SELFCHECK", dict(cli.SELFCHECK, n=20))
    from comfy_sparse_attn.backends import sdpa

    reason = "boom " + " ".join("word%d" % i for i in range(60)) + " END-OF-REASON"

    def boom(*a, **kw):
        raise RuntimeError(reason)

    monkeypatch.setattr(sdpa, "run", boom)
    assert cli.main(["--device", "cpu", "--reps", "1"]) == 1
    out = capsys.readouterr().out
    assert "self-check: FAILED" in out
    assert "END-OF-REASON" in out and "word59" in out  # wrapped, never cut
    _tidy(out)


def test_no_torch_is_a_message_not_a_traceback():
    code = ("import sys; sys.modules['torch'] = None; import runpy; "
            "runpy.run_module('comfy_sparse_attn', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs PyTorch" in proc.stderr
    assert "Traceback" not in proc.stderr


# --- bench ----------------------------------------------------------------------------

def test_bench_with_peers_and_plot(tiny, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "chart.png"
    rc = cli.main(["bench", "--device", "cpu", "--workloads-file", tiny, "--workloads",
                   "mini,other", "--reps", "1", "--peers", "--plot", str(png)])
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    assert rc == 0, out + err
    assert "[####################] " in err  # the progress bar reached its end
    assert "mini/float32" in out and "mini/bfloat16" in out and "other" in out
    for entry in ("auto (native)", "native", "sdpa", "torch-per-seq-sdpa", "torch-nested-sdpa"):
        assert entry in out, entry
    # The CUDA-only peers are not offered on a CPU run, and nested tensors decline GQA.
    assert "torch-fa2-varlen" not in out
    assert "other, torch-nested-sdpa: declined: nested-tensor SDPA needs H == H_kv" in out
    assert "mini/float32: auto (native) is" in out and "the fastest peer" in out
    assert png.exists() and png.stat().st_size > 10_000
    _tidy(out)
    _no_unshipped_paths(out)


def test_bench_rows_agree_with_auto(tiny):
    import torch

    works = W.load("cpu", tiny)
    rows = _bench.run(torch, torch.device("cpu"), works[:1], ["sdpa"],
                      _bench.installed_peers("cpu"), 1)
    timed = [r for r in rows if r.ms is not None]
    assert {r.name for r in timed} >= {"auto", "sdpa", "torch-per-seq-sdpa", "torch-nested-sdpa"}
    for r in timed:
        if r.name != "auto":
            tol = 1e-5 if r.label.endswith("float32") else 2e-2
            assert r.err is not None and r.err < tol, (r.label, r.name, r.err)
        assert r.rate > 0


def test_bench_help_lists_workloads_and_every_flag_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["bench", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for section in W.SECTIONS:
        for w in W.load(section):
            assert w.name in out
    _tidy(out)
    parser = cli.parser()
    sub = next(a for a in parser._actions if a.dest == "cmd").choices["bench"]
    for p in (parser, sub):
        for action in p._actions:
            if action.dest not in ("help", "cmd"):
                assert action.help, action.option_strings


def _usage_error(capsys, argv, *needles):
    """argv fails with exit status 2 and one line on stderr, before any work."""
    try:
        rc = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    captured = capsys.readouterr()
    assert rc == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert captured.out == "", "work started: " + captured.out
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_unknown_workload_lists_the_names(capsys):
    line = _usage_error(capsys, ["bench", "--device", "cpu", "--workloads", "nope"], "'nope'")
    for w in W.load("cpu"):
        assert w.name in line


def test_unknown_backend_lists_the_names(capsys):
    _usage_error(capsys, ["bench", "--device", "cpu", "--backends", "native,fast"],
                 "'fast'", "native", "sdpa", "sage2")


def test_cuda_device_without_cuda_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this torch has a GPU")
    _usage_error(capsys, ["bench", "--device", "cuda"], "--device cuda", "cpu")
    _usage_error(capsys, ["--device", "cuda:0"], "--device cuda:0")
    _usage_error(capsys, ["--device", "tpu"], "--device")


def test_plot_without_matplotlib_fails_before_work(monkeypatch, capsys, tiny):
    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    _usage_error(capsys, ["bench", "--device", "cpu", "--workloads-file", tiny,
                          "--plot", "x.png"], "matplotlib", "pip install")


def test_bad_reps_and_workloads_file(capsys, tmp_path):
    _usage_error(capsys, ["bench", "--reps", "0"], "--reps")
    _usage_error(capsys, ["bench", "--device", "cpu", "--workloads-file",
                          str(tmp_path / "missing.json")], "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    _usage_error(capsys, ["bench", "--device", "cpu", "--workloads-file", str(bad)],
                 "not a workloads file")


# --- the one workload list ------------------------------------------------------------

def test_one_workload_list_shipped_with_the_package():
    assert os.path.isfile(W.DEFAULT_PATH)
    assert not os.path.exists(os.path.join(ROOT, "bench", "workloads.json"))
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import workloads as bench_workloads
    finally:
        sys.path.pop(0)
    assert bench_workloads.load is W.load
    data = W.read()
    for section in W.SECTIONS:
        names = [w["name"] for w in data[section]]
        assert len(names) == len(set(names)), names
        for w in W.load(section):
            assert len(w.q_lens) == len(w.kv_lens) and w.H % w.H_kv == 0
            assert set(w.dtypes) <= {"float32", "float16", "bfloat16"}


def test_length_rule_is_fixed():
    # {n, lo, hi, seed}: one random.Random(seed) drawing n values of randint(lo, hi) in
    # order.  Pinned values: the rule must give the same lengths on every machine.
    assert W.lengths({"n": 5, "lo": 16, "hi": 512, "seed": 1}) == [84, 307, 449, 426, 407]
    windows = {w.name: w for w in W.load("gpu")}["windows"]
    assert len(windows.q_lens) == 1500 and windows.q_lens[:3] == [84, 307, 449]
    assert W.lengths([3, 4]) == [3, 4] and W.lengths(None) is None


def test_bench_prints_a_declined_backend_in_full(tiny, capsys):
    rc = cli.main(["bench", "--device", "cpu", "--workloads-file", tiny, "--workloads", "other",
                   "--backends", "flash", "--reps", "1"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "other, flash: failed: NoCapableBackendError: no backend can run this call:" in out
    for name in ("sage2", "flash", "xformers", "sdpa", "native"):  # one line per backend
        assert "\n    %s: " % name in out, name
    _tidy(out)
