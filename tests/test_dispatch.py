"""Backend dispatch: selection rules, overrides, ComfyUI flags, run-time
fallback, reports, cross-backend agreement, thread safety, custom op."""
import contextlib
import logging
import os
import subprocess
import sys
import threading
import types

import pytest
import torch

import comfy_sparse_attn as csa
from comfy_sparse_attn import _comfy, _dispatch
from reference import CPU_CASES, TOL, build_case, case_seed, make_case, poisoned, reference, rel_err

_C_DTYPE = dict(_dispatch._C.DTYPE)


def _native_cpu_works():
    q, k, v, cq, ck, mq, mk = make_case([3], d=8)
    try:
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, backend="native")
        return True
    except (NotImplementedError, csa.NoCapableBackendError):
        return False


NATIVE_CPU = _native_cpu_works()
needs_native = pytest.mark.skipif(not NATIVE_CPU, reason="native CPU kernel not built yet")


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    monkeypatch.delenv(_dispatch.ENV_BACKEND, raising=False)
    monkeypatch.delenv(_dispatch.ENV_EXACT, raising=False)
    _dispatch._reset_for_tests()
    _comfy._reset_for_tests()
    yield
    _dispatch._reset_for_tests()
    _comfy._reset_for_tests()


# --- selection ---------------------------------------------------------------

def test_cpu_auto_picks_native_first():
    q, k, v, cq, ck, mq, mk = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    choice = csa.get_varlen_backend()
    want = "native" if NATIVE_CPU else "sdpa"
    assert choice.backend == want
    for lib in ("sage2", "flash", "xformers"):
        assert lib in choice.declined


def test_lse_request_excludes_sdpa():
    q, k, v, cq, ck, mq, mk = make_case([5, 9], d=16)
    if not NATIVE_CPU:
        with pytest.raises(csa.NoCapableBackendError, match="sdpa: does not return the LSE"):
            csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, return_lse=True)
        return
    out, lse = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, return_lse=True)
    assert csa.get_varlen_backend().backend == "native"
    assert "LSE" in csa.get_varlen_backend().declined["sdpa"]
    ref, ref_lse = reference(q, k, v, cq, ck)
    assert rel_err(out, ref) < 1e-5
    assert torch.allclose(lse.double(), ref_lse, atol=1e-4)


def test_autograd_picks_a_backend_with_backward():
    q, k, v, cq, ck, mq, mk = make_case([6, 4], d=16)
    q.requires_grad_(True)
    out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    choice = csa.get_varlen_backend()
    assert choice.backend == "sdpa"
    assert "backward" in choice.declined["native"]
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    # Under no_grad the native kernel is eligible again.
    with torch.no_grad():
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    assert csa.get_varlen_backend().backend == ("native" if NATIVE_CPU else "sdpa")


def test_signature_cache_is_per_input_shape():
    q, k, v, cq, ck, mq, mk = make_case([5], d=16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    n = len(_dispatch._plans)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    assert len(_dispatch._plans) == n
    q2, k2, v2, cq2, ck2, mq2, mk2 = make_case([5], d=32)
    csa.dispatch_varlen_attention(q2, k2, v2, cq2, ck2, mq2, mk2)
    assert len(_dispatch._plans) == n + 1


def test_causal_lengths_equal_fact(monkeypatch):
    """Top-left-only backends are only eligible when every L_q == L_kv."""
    seen = []
    real = _dispatch._plan

    def spy(*args):
        seen.append(args[7])  # lengths_equal
        return real(*args)

    monkeypatch.setattr(_dispatch, "_plan", spy)
    q, k, v, cq, ck, mq, mk = make_case([5, 7], [5, 7], d=16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck.clone(), mq, mk, causal=True)
    q, k, v, cq, ck, mq, mk = make_case([5, 7], [6, 7], d=16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=True)
    assert seen == [True, False]


# --- overrides ----------------------------------------------------------------

def test_backend_argument_env_and_context(monkeypatch):
    q, k, v, cq, ck, mq, mk = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, backend="sdpa")
    assert csa.get_varlen_backend().backend == "sdpa"
    assert "forced" in csa.get_varlen_backend().reason
    monkeypatch.setenv(_dispatch.ENV_BACKEND, "sdpa")
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    assert csa.get_varlen_backend().backend == "sdpa"
    # the context manager beats the environment; the argument beats both
    with csa.use_backend("auto"):
        monkeypatch.setenv(_dispatch.ENV_BACKEND, "auto")
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        assert csa.get_varlen_backend().backend == ("native" if NATIVE_CPU else "sdpa")
    monkeypatch.setenv(_dispatch.ENV_BACKEND, "native")
    with csa.use_backend("sdpa"):
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
        assert csa.get_varlen_backend().backend == "sdpa"
    monkeypatch.delenv(_dispatch.ENV_BACKEND)


def test_unknown_backend_names():
    args = make_case([3], d=8)
    with pytest.raises(ValueError, match="unknown backend 'flash2'"):
        csa.dispatch_varlen_attention(*args, backend="flash2")
    with pytest.raises(ValueError, match="unknown backend"):
        with csa.use_backend("nope"):
            pass


def test_env_names_no_backend(monkeypatch):
    monkeypatch.setenv(_dispatch.ENV_BACKEND, "fast")
    with pytest.raises(ValueError, match="COMFY_SPARSE_ATTN_BACKEND"):
        csa.dispatch_varlen_attention(*make_case([3], d=8))


def test_forced_backend_that_cannot_run_says_why():
    # flash has no CPU kernel: forcing it on CPU lists the reason.
    with pytest.raises(csa.NoCapableBackendError, match="flash: (has no cpu kernel|flash_attn)"):
        csa.dispatch_varlen_attention(*make_case([3], d=8), backend="flash")


def test_exact_only_mode_is_a_fact(monkeypatch):
    seen = []
    real = _dispatch._plan
    monkeypatch.setattr(_dispatch, "_plan", lambda *a: (seen.append(a[10]), real(*a))[1])
    args = make_case([3], d=8)
    csa.dispatch_varlen_attention(*args)
    with csa.use_backend(exact=True):
        csa.dispatch_varlen_attention(*args)
    monkeypatch.setenv(_dispatch.ENV_EXACT, "1")
    csa.dispatch_varlen_attention(*args)
    csa.dispatch_varlen_attention(*args, backend="sdpa")  # an explicit backend beats the mode
    assert seen == [False, True, True, False]


def test_use_backend_is_per_thread():
    args = make_case([4, 4], d=8)
    got = {}

    def other():
        csa.dispatch_varlen_attention(*args)
        got["other"] = csa.get_varlen_backend().signature.forced

    with csa.use_backend("sdpa"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        csa.dispatch_varlen_attention(*args)
        assert csa.get_varlen_backend().signature.forced == "sdpa"
    assert got["other"] is None


# --- ComfyUI flags --------------------------------------------------------------

def _fake_comfy(monkeypatch, **flags):
    mod = types.ModuleType("comfy.cli_args")
    mod.args = types.SimpleNamespace(**flags)
    monkeypatch.setitem(sys.modules, "comfy.cli_args", mod)
    _comfy._reset_for_tests()


def test_comfy_flags_read_only_when_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "comfy.cli_args", raising=False)
    assert _comfy.comfy_flags() == (None, (), ())
    assert "comfy.cli_args" not in sys.modules  # never imported by us
    _fake_comfy(monkeypatch, use_sage_attention=False, use_flash_attention=True,
                use_pytorch_cross_attention=False, disable_xformers=True)
    assert _comfy.comfy_flags() == ("flash", ("xformers",),
                                    ("--use-flash-attention", "--disable-xformers"))


def test_comfy_pytorch_flag_prefers_torch_tier_on_cpu(monkeypatch):
    _fake_comfy(monkeypatch, use_pytorch_cross_attention=True)
    csa.dispatch_varlen_attention(*make_case([4, 2], d=8))
    assert csa.get_varlen_backend().backend == "sdpa"


def test_comfy_disable_xformers_reason(monkeypatch):
    _fake_comfy(monkeypatch, disable_xformers=True)
    csa.dispatch_varlen_attention(*make_case([4, 2], d=8))
    # on CPU xformers is out anyway; the C test covers the GPU case. Here:
    # the flag reaches the signature (so a cached plan never outlives it).
    assert csa.get_varlen_backend().signature.comfy_flags == ("--disable-xformers",)


# --- run-time failure ------------------------------------------------------------

def test_failing_backend_warns_once_and_falls_through(monkeypatch, caplog):
    from comfy_sparse_attn.backends import native

    calls = []

    def broken(*a, **kw):
        calls.append(1)
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(native, "run", broken)
    q, k, v, cq, ck, mq, mk = make_case([5, 3], d=16)
    with caplog.at_level(logging.WARNING, logger="comfy_sparse_attn"):
        for _ in range(3):
            out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, out=poisoned(q, v))
    ref, _ = reference(q, k, v, cq, ck)
    assert rel_err(out, ref) < 1e-5
    assert len(calls) == 1, "a failed backend must be skipped for that signature"
    warns = [r for r in caplog.records if "kernel exploded" in r.getMessage()]
    assert len(warns) == 1 and "'native'" in warns[0].getMessage()
    choice = csa.get_varlen_backend()
    assert choice.backend == "sdpa" and "native" in choice.reason
    assert "kernel exploded" in choice.declined["native"]


def test_all_failing_lists_every_backend(monkeypatch):
    from comfy_sparse_attn.backends import native, sdpa

    def broken(*a, **kw):
        raise RuntimeError("nope")

    monkeypatch.setattr(native, "run", broken)
    monkeypatch.setattr(sdpa, "run", broken)
    with pytest.raises(csa.NoCapableBackendError) as info:
        csa.dispatch_varlen_attention(*make_case([3], d=8))
    msg = str(info.value)
    for name in ("sage2", "flash", "xformers", "sdpa", "native"):
        assert "  %s:" % name in msg
    assert "failed at run time: RuntimeError: nope" in msg


def test_bad_input_never_reaches_a_fallback(monkeypatch):
    """A validation error from the native entry point is the caller's error,
    not a backend failure: it propagates, nothing falls through."""
    from comfy_sparse_attn.backends import sdpa

    monkeypatch.setattr(sdpa, "run", lambda *a, **k: pytest.fail("sdpa ran on bad input"))
    q, k, v, cq, ck, mq, mk = make_case([3, 5], d=8)
    bad = torch.tensor([0, 5, 3], dtype=torch.int32)
    with pytest.raises(ValueError, match="non-decreasing|cu_seqlens"):
        csa.dispatch_varlen_attention(q, k, v, bad, ck, mq, mk)


# --- reports ---------------------------------------------------------------------

def test_list_backends_reports_everything():
    rows = csa.list_backends("cpu")
    assert set(rows) == set(_dispatch.BACKENDS)
    assert rows["sdpa"]["available"] and rows["sdpa"]["usable"]
    assert rows["native"]["available"]
    assert "native first" in rows["native"]["policy"]
    for name in ("sage2", "flash", "xformers"):
        row = rows[name]
        assert row["usable"] is False
        assert row["why_unusable"]
        if not row["available"]:
            assert row["why_not"]
    assert rows["sage2"]["constraints"]["lossy"] is True
    assert rows["flash"]["constraints"]["dtypes_cast_bf16"] == ["float32"]
    ranks = sorted(r["rank"] for r in rows.values())
    assert ranks == list(range(len(rows)))


def test_get_varlen_backend_before_any_call():
    assert csa.get_varlen_backend().backend is None


def test_import_does_no_work():
    code = ("import sys, comfy_sparse_attn; "
            "bad = [m for m in ('torch', 'sageattention', 'flash_attn', 'xformers') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- agreement and threads ------------------------------------------------------------

CASES = CPU_CASES


def _cpu_backends():
    return ["sdpa"] + (["native"] if NATIVE_CPU else [])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_backends_agree_with_reference(name, causal, dtype):
    q, k, v, cq, ck, mq, mk = build_case(CASES, name, dtype=dtype,
                                         seed=case_seed(name, causal, str(dtype)))
    ref, _ = reference(q, k, v, cq, ck, causal=causal)
    outs = {}
    for b in _cpu_backends() + ["auto"]:
        out = poisoned(q, v)
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal, backend=b, out=out)
        assert rel_err(out, ref) < TOL[dtype], b
        outs[b] = out
    assert csa.get_varlen_backend().backend in _cpu_backends()


def test_thread_safety_many_threads_many_signatures():
    cases = [make_case([3 + i, 5], d=8 * (1 + i % 3), seed=i) for i in range(6)]
    refs = [reference(*c[:5])[0] for c in cases]
    errors = []

    def work(tid):
        try:
            for it in range(20):
                i = (tid + it) % len(cases)
                with csa.use_backend("sdpa" if (tid + it) % 3 == 0 else None):
                    out = csa.dispatch_varlen_attention(*cases[i])
                if rel_err(out, refs[i]) > 1e-5:
                    errors.append((tid, i))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# --- torch custom op / compile ------------------------------------------------------

def test_custom_op_eager_and_fake():
    q, k, v, cq, ck, mq, mk = make_case([4, 6], d=16)
    op = torch.ops.comfy_sparse_attn.varlen_attention
    out, lse = op(q, k, v, cq, ck, mq, mk, 0.0, False, False, "sdpa")
    ref, _ = reference(q, k, v, cq, ck)
    assert rel_err(out, ref) < 1e-5 and lse.numel() == 0
    torch.library.opcheck(op, (q, k, v, cq, ck, mq, mk, 0.0, False, False, "sdpa"),
                          test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_fullgraph():
    q, k, v, cq, ck, mq, mk = make_case([4, 6, 3], d=16)

    def f(q, k, v, cq, ck):
        return csa.dispatch_varlen_attention(q * 2.0, k, v, cq, ck, 6, 6, softmax_scale=0.125) + 1

    torch._dynamo.reset()
    compiled = torch.compile(f, fullgraph=True, backend="eager")
    out = compiled(q, k, v, cq, ck)
    ref, _ = reference(q * 2.0, k, v, cq, ck, softmax_scale=0.125)
    assert rel_err(out - 1, ref) < 1e-5


def test_sage1_takes_causal_calls_only(monkeypatch):
    """sageattention 1.x's non-causal varlen kernel does not mask the keys past
    a sequence's end: with 1.x, sage2 is offered for causal calls only.  The
    version is a fact passed to C (lib_major), not a rewrite of reasons."""
    monkeypatch.setitem(_dispatch._loaded, "sage2", (True, "1.0.6"))
    monkeypatch.setitem(_dispatch._loaded, "flash", (False, "absent"))
    monkeypatch.setitem(_dispatch._loaded, "xformers", (False, "absent"))
    monkeypatch.setitem(_dispatch._sm_cache, 0, 90)
    monkeypatch.setitem(_dispatch._dev_codes, "cuda", _dispatch._DEV["cuda"])
    dev = torch.device("cuda", 0)
    args = (dev, 2, 64, 64, 8, 8)
    plan = _dispatch._plan(*args, False, True, False, False, False, None)
    assert "sage2" not in plan.order and "does not mask" in plan.declined["sage2"]
    assert plan.order[0] == "sdpa"
    plan = _dispatch._plan(*args, True, True, False, False, False, None)
    assert plan.order[0] == "sage2"
    monkeypatch.setitem(_dispatch._loaded, "sage2", (True, "2.2.0"))
    _dispatch._plans.clear()
    plan = _dispatch._plan(*args, False, True, False, False, False, None)
    assert plan.order[0] == "sage2"


# --- the API explains itself -------------------------------------------------------

def test_public_names_are_listed():
    assert "dispatch_varlen_attention" in dir(csa)
    for name in csa.__all__:
        assert name in dir(csa)
        assert getattr(csa, name) is not None
    assert "annotations" not in dir(csa)


def test_readme_shows_the_real_signature():
    import inspect

    sig = str(inspect.signature(csa.dispatch_varlen_attention))
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    assert "dispatch_varlen_attention" + sig in readme.replace("\n    ", " ").replace("( ", "("), sig


def test_backend_choice_is_a_readable_record():
    args = make_case([4, 6], d=16)
    csa.dispatch_varlen_attention(*args)
    first = csa.get_varlen_backend()
    csa.dispatch_varlen_attention(*args)
    second = csa.get_varlen_backend()
    assert first == second, "the same state must give the same record"
    assert first.reason == second.reason and first.reason
    sig = first.signature
    assert isinstance(sig, csa.Signature)
    assert (sig.device, sig.dtype, sig.head_dim, sig.heads, sig.causal) == ("cpu", "float32", 16,
                                                                            4, False)
    assert set(first.declined) == set(_dispatch.BACKENDS) - {first.backend} - (
        {"sdpa"} if first.backend == "native" else set())


# --- failures that are not the backend's fault; retries ---------------------------------

@pytest.mark.parametrize("exc", ["oom", "memory", "interrupt"])
def test_not_the_backends_fault_marks_nothing(monkeypatch, exc):
    from comfy_sparse_attn.backends import native, sdpa

    first = "native" if NATIVE_CPU else "sdpa"
    mod = native if NATIVE_CPU else sdpa
    real = mod.run
    err = {"oom": torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
           "memory": MemoryError(), "interrupt": KeyboardInterrupt()}[exc]

    def boom(*a, **kw):
        raise err

    monkeypatch.setattr(mod, "run", boom)
    args = make_case([4, 6], d=16)
    with pytest.raises(type(err)):
        csa.dispatch_varlen_attention(*args)
    assert not _dispatch._failed, "a failure that is not the backend's marked it broken"
    monkeypatch.setattr(mod, "run", real)
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == first


def test_graph_capture_failure_marks_nothing(monkeypatch):
    """A backend failing inside CUDA-graph capture is not broken for eager calls."""
    err = RuntimeError("operation not permitted when stream is capturing")
    assert _dispatch._not_the_backends_fault(err, torch.device("cpu")) is False
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    assert _dispatch._not_the_backends_fault(err, torch.device("cuda", 0)) is True


def test_real_failure_is_retried_after_a_while(monkeypatch, caplog):
    from comfy_sparse_attn.backends import native, sdpa

    mod = native if NATIVE_CPU else sdpa
    name = "native" if NATIVE_CPU else "sdpa"
    real = mod.run
    calls = []

    def flaky(*a, **kw):
        calls.append(1)
        raise RuntimeError("transient driver hiccup")

    clock = [1000.0]
    monkeypatch.setattr(_dispatch.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(mod, "run", flaky)
    args = make_case([4, 6], d=16)
    if NATIVE_CPU:
        csa.dispatch_varlen_attention(*args)  # falls through to sdpa
        reason = csa.get_varlen_backend().reason
        csa.dispatch_varlen_attention(*args)
        assert csa.get_varlen_backend().reason == reason, "same state, same reason"
        assert "skipped: native" in reason
    else:
        with pytest.raises(csa.NoCapableBackendError):
            csa.dispatch_varlen_attention(*args)
    assert len(calls) == 1
    clock[0] += _dispatch.RETRY_AFTER_S + 1
    monkeypatch.setattr(mod, "run", real)
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == name, "retried after RETRY_AFTER_S"
    assert not _dispatch._failed


def test_declined_is_not_a_failure(monkeypatch, caplog):
    from comfy_sparse_attn.backends import Declined, native

    if not NATIVE_CPU:
        pytest.skip("needs the native CPU kernel")

    def declines(*a, **kw):
        raise Declined("cannot take this one")

    monkeypatch.setattr(native, "run", declines)
    with caplog.at_level(logging.WARNING, logger="comfy_sparse_attn"):
        csa.dispatch_varlen_attention(*make_case([4, 6], d=16))
    assert csa.get_varlen_backend().backend == "sdpa"
    assert "cannot take this one" in csa.get_varlen_backend().declined["native"]
    assert not _dispatch._failed and not caplog.records


# --- arguments that are not tensors ------------------------------------------------------

@pytest.mark.parametrize("arg", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("form", ["numpy", "list", "meta"])
def test_non_tensor_inputs_name_the_argument(arg, form):
    np = pytest.importorskip("numpy")
    args = list(make_case([3, 5], d=8))
    names = ["q", "k", "v", "cu_seqlens_q", "cu_seqlens_kv"]
    if form == "numpy":
        args[arg] = args[arg].numpy()
    elif form == "list":
        args[arg] = args[arg].tolist()
    else:
        args[arg] = torch.empty(args[arg].shape, dtype=args[arg].dtype, device="meta")
    with pytest.raises(TypeError) as info:
        csa.dispatch_varlen_attention(*args)
    msg = str(info.value)
    assert msg.startswith(names[arg] + " "), msg
    assert ("meta tensor" in msg) if form == "meta" else ("got " in msg and "tensor" in msg)
    assert np is not None


def test_out_must_be_a_tensor():
    with pytest.raises(TypeError, match="out must be"):
        csa.dispatch_varlen_attention(*make_case([3], d=8), out=[[0.0]])


# --- any torch device --------------------------------------------------------------------

@pytest.mark.parametrize("dev", ["mps", "xpu", "rocm", "privateuseone"])
def test_other_devices_go_to_the_torch_tier(monkeypatch, dev):
    monkeypatch.setattr(_dispatch, "_dev_codes", {})
    if dev == "rocm":
        monkeypatch.setattr(torch.version, "hip", "6.2.0", raising=False)
        device = torch.device("cuda", 0)
    else:
        device = torch.device(dev, 0)
    plan = _dispatch._plan(device, _C_DTYPE["float16"], 64, 64, 8, 8, False, True, False, False,
                           False, None)
    assert plan.order == ("sdpa",), plan
    assert "has no" in plan.declined["native"], plan.declined
    if dev == "rocm":
        assert "rocm" in plan.declined["native"]
        assert plan.signature.device == "cuda:0"


def test_torch_tier_declines_gpu_half_head_dims_torch_cannot_run(monkeypatch):
    monkeypatch.setitem(_dispatch._sm_cache, 0, 90)
    monkeypatch.setitem(_dispatch._dev_codes, "cuda", _dispatch._DEV["cuda"])
    monkeypatch.setitem(_dispatch._loaded, "flash", (False, "absent"))
    monkeypatch.setitem(_dispatch._loaded, "xformers", (False, "absent"))
    monkeypatch.setitem(_dispatch._loaded, "sage2", (False, "absent"))
    dev = torch.device("cuda", 0)
    for d in (3, 31, 59, 111):
        plan = _dispatch._plan(dev, _C_DTYPE["float16"], d, d, 8, 8, False, True, False, False,
                               False, None)
        assert "sdpa" not in plan.order and "multiples of 8" in plan.declined["sdpa"]
    plan = _dispatch._plan(dev, _C_DTYPE["float32"], 31, 31, 8, 8, False, True, False, False,
                           False, None)
    assert "sdpa" in plan.order
    assert csa.list_backends("cpu")["sdpa"]["constraints"]["gpu_half_head_dim_multiple"] == 8


# --- one typed boundary --------------------------------------------------------------------

def test_enums_come_from_c():
    from comfy_sparse_attn import _C

    assert _C.DTYPE["float32"] == 1 and _C.DTYPE["int32"] == 4
    assert _C.DEVICE["cpu"] == 1 and _C.DEVICE["cuda"] == 2 and "rocm" in _C.DEVICE
    assert set(_C.BACKEND) == set(_dispatch.BACKENDS)
    assert _C.CPU_ISA[_C.cpu_isa()] >= 0
    assert _C.LINK_RESULT["CREATED"] == _C.LINK_CREATED
    assert set(_C.LINK_GIT) == {"NONE", "ADDED", "PRESENT", "FAILED"}
    assert _C.STATUS["CSA_ECUSEQ"] < 0


def test_c_entry_points_take_keywords():
    from comfy_sparse_attn import _C

    q, k, v, cq, ck, mq, mk = make_case([3, 5], d=8)
    _C.attention("validate", q=q, k=k, v=v, cu_seqlens_q=cq, cu_seqlens_kv=ck, max_seqlen_q=mq,
                 max_seqlen_kv=mk)
    with pytest.raises(TypeError):
        _C.attention("validate", q, k, v, cq, ck, mq, mk)
    order, reasons, policy = _C.dispatch_select(
        device_type=_C.DEVICE["cpu"], dtype=_C.DTYPE["float32"], head_dim=8, head_dim_v=8,
        heads=4, heads_kv=4, available=1 << _C.BACKEND["sdpa"])
    assert order[0] == _C.BACKEND["native"] and policy
    with pytest.raises(TypeError):
        _C.dispatch_select(1, 0, 1, 8, 8, 4, 4)


def test_adapters_come_from_the_c_backend_list():
    from comfy_sparse_attn.backends import adapter

    for name in _dispatch.BACKENDS:
        mod = adapter(name)
        assert callable(mod.run) and callable(mod.load), name
        assert mod.__name__.endswith("." + name)


# --- zero syncs: the device sanitizer path, with a stand-in sanitizer --------------------------

@pytest.fixture
def fake_sanitizer(monkeypatch):
    """Runs the default CUDA path on CPU tensors: a stand-in for
    _C.cuda_sanitize_cu_seqlens with the contract's semantics (clamped copies,
    violation bits ORed into flags[0]); host copies are forbidden."""
    import ctypes

    from comfy_sparse_attn import _native

    calls = []
    report = {"bits": 0}

    def sanitize(cu_q, cu_kv, out_q, out_kv, flags, total_q, total_kv, max_q, max_kv, stream):
        cu_q, cu_kv, out_q, out_kv, flags = (torch.from_dlpack(x) for x in
                                             (cu_q, cu_kv, out_q, out_kv, flags))
        for cu, out, total, mx in ((cu_q, out_q, total_q, max_q), (cu_kv, out_kv, total_kv,
                                                                  max_kv)):
            prev = 0
            out[0] = 0
            for i in range(1, cu.shape[0]):
                prev = min(max(int(cu[i]), prev), min(total, prev + mx))
                out[i] = prev
        flags[0] |= report["bits"]
        calls.append((out_q, out_kv))

    flag = torch.zeros(1, dtype=torch.int32)
    monkeypatch.setattr(_native._C, "cuda_sanitize_cu_seqlens", sanitize, raising=False)
    monkeypatch.setitem(_native._flags, None,
                        (flag, ctypes.c_int32.from_address(flag.data_ptr()), flag))
    monkeypatch.setattr(_dispatch, "_cu_mode", lambda *a: "sanitize")
    monkeypatch.setattr(_native, "host_copies",
                        lambda *a: pytest.fail("a device-to-host copy in the default path"))
    return calls, report


@needs_native
def test_default_path_sanitizes_without_host_copies(fake_sanitizer, monkeypatch):
    from comfy_sparse_attn.backends import native

    calls, _ = fake_sanitizer
    seen = []
    real = native.run

    def spy(q, k, v, cq, ck, *a, **kw):
        seen.append((cq, ck))
        return real(q, k, v, cq, ck, *a, **kw)

    monkeypatch.setattr(native, "run", spy)
    q, k, v, cq, ck, mq, mk = make_case([5, 0, 9], [4, 3, 9], d=16)
    out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    ref, _ = reference(q, k, v, cq, ck)
    assert rel_err(out, ref) < 1e-5
    assert len(calls) == 1, "one sanitizer launch per call"
    assert seen[0][0].data_ptr() == calls[0][0].data_ptr() and \
        seen[0][1].data_ptr() == calls[0][1].data_ptr(), "backends must read the sanitized copies"


@needs_native
def test_device_violation_surfaces_at_the_next_call(fake_sanitizer):
    calls, report = fake_sanitizer
    args = make_case([5, 9], d=16)
    report["bits"] = (1 << 1) | (1 << 11)  # cu_seqlens_q decreases; kv longer than max
    csa.dispatch_varlen_attention(*args)  # queued: no error yet
    report["bits"] = 0
    with pytest.raises(ValueError) as info:
        csa.dispatch_varlen_attention(*args)
    msg = str(info.value)
    assert "cu_seqlens_q decreases" in msg and "longer than max_seqlen_kv" in msg
    assert "check_cu_seqlens=True" in msg
    csa.dispatch_varlen_attention(*args)  # reported once, then clear
    assert len(calls) == 2  # the raising call launched nothing


# --- the fast path: a repeated call reuses its decision ---------------------------------------

def _no_selection(monkeypatch):
    """Selection (Python plan + C select) must not run again."""
    monkeypatch.setattr(_dispatch, "_plan", lambda *a, **kw: pytest.fail("selection ran again"))


def test_repeated_call_skips_selection_and_stays_exact(monkeypatch):
    q, k, v, cq, ck, mq, mk = make_case([5, 0, 9], [4, 3, 9], d=16, hkv=2)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    first = csa.get_varlen_backend()
    assert len(_dispatch._fast) == 1
    _no_selection(monkeypatch)
    for seed in (1, 2):  # fresh values, same facts: the remembered decision runs
        q, k, v, cq, ck, mq, mk = make_case([5, 0, 9], [4, 3, 9], d=16, hkv=2, seed=seed)
        out = poisoned(q, v)
        res = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, out=out)
        assert res is out
        ref, _ = reference(q, k, v, cq, ck)
        assert rel_err(out, ref) < TOL[torch.float32]
        assert csa.get_varlen_backend() is first or csa.get_varlen_backend() == first


@needs_native
def test_fast_path_lse_and_scale_match_the_reference():
    q, k, v, cq, ck, mq, mk = make_case([7, 1, 12], d=40, dv=24)
    for _ in range(2):  # second call: the fast path
        out, lse = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, return_lse=True,
                                                 causal=True, softmax_scale=0.3)
        ref, ref_lse = reference(q, k, v, cq, ck, causal=True, softmax_scale=0.3)
        assert rel_err(out, ref) < TOL[torch.float32]
        fin = torch.isfinite(ref_lse)
        assert torch.allclose(lse.double()[fin], ref_lse[fin], atol=1e-4)
    with pytest.raises(ValueError, match="softmax_scale"):
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, return_lse=True, causal=True,
                                      softmax_scale=-1.0)


@pytest.mark.parametrize("change", ["head_dim", "dtype", "causal", "lse", "heads_kv", "rows",
                                    "grad"])
def test_fast_cache_key_holds_every_fact(change):
    """A call differing in any fact the decision read is decided afresh."""
    base = dict(lq=[5, 9], d=16)
    q, k, v, cq, ck, mq, mk = make_case(**base)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    n = len(_dispatch._plans)
    kw = {}
    if change == "head_dim":
        q, k, v, cq, ck, mq, mk = make_case([5, 9], d=32)
    elif change == "dtype":
        q, k, v, cq, ck, mq, mk = make_case([5, 9], d=16, dtype=torch.bfloat16)
    elif change == "heads_kv":
        q, k, v, cq, ck, mq, mk = make_case([5, 9], d=16, hkv=2)
    elif change == "rows":
        q, k, v, cq, ck, mq, mk = make_case([14], d=16)  # "one" sequence, not "short"
    elif change == "grad":
        q.requires_grad_(True)
    else:
        kw = {"causal": True} if change == "causal" else {"return_lse": True}
        if change == "lse" and not NATIVE_CPU:
            pytest.skip("no CPU backend returns the LSE")
    res = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, **kw)
    assert len(_dispatch._plans) == n + 1, change
    out = res[0] if change == "lse" else res
    ref, _ = reference(q.detach(), k, v, cq, ck, causal=change == "causal")
    assert rel_err(out.detach(), ref) < TOL[q.dtype]
    if change == "grad":
        assert out.requires_grad and csa.get_varlen_backend().signature.grad


def test_overrides_take_effect_on_a_remembered_call(monkeypatch):
    args = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(*args)
    auto = csa.get_varlen_backend().backend
    csa.dispatch_varlen_attention(*args)  # remembered
    with csa.use_backend("sdpa"):
        csa.dispatch_varlen_attention(*args)
        assert csa.get_varlen_backend().backend == "sdpa"
        csa.dispatch_varlen_attention(*args)
        assert csa.get_varlen_backend().backend == "sdpa"
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == auto
    csa.dispatch_varlen_attention(*args, backend="sdpa")
    assert csa.get_varlen_backend().backend == "sdpa"
    monkeypatch.setenv(_dispatch.ENV_BACKEND, "sdpa")
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == "sdpa"
    monkeypatch.delenv(_dispatch.ENV_BACKEND)
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == auto
    _fake_comfy(monkeypatch, use_pytorch_cross_attention=True)
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == "sdpa"


@pytest.mark.parametrize("form", ["numpy", "meta", "int64", "rank", "values", "dtype"])
@pytest.mark.parametrize("arg", [1, 3])
def test_bad_input_after_a_remembered_call_says_what_the_full_path_says(form, arg):
    good = make_case([3, 5], d=8)
    for _ in range(2):
        csa.dispatch_varlen_attention(*good)
    assert _dispatch._fast
    args = list(good)
    names = ["q", "k", "v", "cu_seqlens_q", "cu_seqlens_kv"]
    if form == "numpy":
        args[arg] = args[arg].numpy()
    elif form == "meta":
        args[arg] = torch.empty(args[arg].shape, dtype=args[arg].dtype, device="meta")
    elif form == "int64":
        args[arg] = args[arg].long()
    elif form == "rank":
        args[arg] = args[arg][None]
    elif form == "values":
        args[arg] = args[arg].clone()
        args[arg][-1] += 3 if arg == 3 else 0
        if arg == 1:
            args[arg] = args[arg][:-1]  # T_kv no longer matches cu_seqlens_kv
    else:
        args[arg] = args[arg].to(torch.float64) if arg == 1 else args[arg].float()
    with pytest.raises((TypeError, ValueError)) as fast:
        csa.dispatch_varlen_attention(*args)
    _dispatch._reset_for_tests()
    with pytest.raises((TypeError, ValueError)) as full:
        csa.dispatch_varlen_attention(*args)
    assert type(fast.value) is type(full.value) and str(fast.value) == str(full.value)
    assert names[arg] in str(fast.value) or "T_kv" in str(fast.value), str(fast.value)


@needs_native
def test_kernel_failure_on_the_fast_path_falls_through_and_is_retried(monkeypatch, caplog):
    args = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == "native"
    C = _dispatch._C
    C.fast_stats(True)
    csa.dispatch_varlen_attention(*args)
    assert C.fast_stats()[0] == 1, "the remembered native call runs in C"
    C.fast_fail_next(1)  # the C path's kernel run fails as a kernel would
    try:
        with caplog.at_level(logging.WARNING, logger="comfy_sparse_attn"):
            out = csa.dispatch_varlen_attention(*args)
    finally:
        C.fast_fail_next(0)
    ref, _ = reference(*args[:5])
    assert rel_err(out, ref) < TOL[torch.float32]
    assert csa.get_varlen_backend().backend == "sdpa"
    assert "native" in caplog.text and "injected kernel failure" in caplog.text
    assert not _dispatch._fast, "a recorded failure must clear the remembered decisions"
    monkeypatch.setattr(_dispatch.time, "monotonic", lambda: 1e12)  # the wait is over
    csa.dispatch_varlen_attention(*args)
    assert csa.get_varlen_backend().backend == "native" and not _dispatch._failed


@needs_native
@pytest.mark.parametrize("exc", ["oom", "interrupt"])
def test_not_the_backends_fault_on_the_fast_path_marks_nothing(monkeypatch, exc):
    """A failure that is the call's circumstances (out of memory; an
    interrupt is no Exception) propagates from the C path and marks nothing."""
    args = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(*args)
    n = len(_dispatch._fast)
    real = _dispatch._fast_failed

    def spy(e, err, device):
        if exc == "interrupt":
            raise KeyboardInterrupt
        return real(e, MemoryError("out of memory"), device)

    monkeypatch.setattr(_dispatch, "_fast_failed", spy)
    _dispatch._C.fast_fail_next(1)
    try:
        with pytest.raises(KeyboardInterrupt if exc == "interrupt" else MemoryError):
            csa.dispatch_varlen_attention(*args)
    finally:
        _dispatch._C.fast_fail_next(0)
    assert not _dispatch._failed and len(_dispatch._fast) == n


def test_patched_adapter_is_called_on_repeated_calls(monkeypatch):
    """Tests and benchmarks replace an adapter's run: repeated calls see it."""
    args = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(*args)
    csa.dispatch_varlen_attention(*args)
    name = csa.get_varlen_backend().backend
    mod = _dispatch._adapter(name)
    ready = torch.zeros(14, 4, 16)
    monkeypatch.setattr(mod, "run", lambda *a, **kw: ready)
    assert csa.dispatch_varlen_attention(*args) is ready
    assert csa.dispatch_varlen_attention(*args) is ready


def test_fast_path_per_thread_overrides():
    """use_backend on one thread never changes another thread's remembered call."""
    args = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(*args)
    auto = csa.get_varlen_backend().backend
    seen = []
    ready = threading.Event()
    done = threading.Event()

    def other():
        with csa.use_backend("sdpa"):
            ready.set()
            done.wait(5)

    t = threading.Thread(target=other)
    t.start()
    ready.wait(5)
    for _ in range(3):
        csa.dispatch_varlen_attention(*args)
        seen.append(csa.get_varlen_backend().backend)
    done.set()
    t.join()
    assert seen == [auto] * 3


@pytest.mark.parametrize("name", ["sdpa", "sdpa-host-lengths"])
def test_fast_path_device_branches_with_a_stand_in_device(monkeypatch, name):
    """The CUDA branches of a remembered call whose backend runs in Python
    (sanitize into the stream's scratch, or the one host copy for backends
    that read host lengths), run on CPU tensors with a stand-in sanitizer
    and stream."""
    import ctypes

    from comfy_sparse_attn import _native

    real = _dispatch._C.run
    C = _dispatch._C
    buf = torch.full((64,), -1, dtype=torch.int32)
    seen = []

    def run(kind, q, k, v, cq, ck, out, lse, hq, hk, mq, mk, scale, causal, threads, stream,
            scratch, flags):
        seen.append((kind, stream))
        real(C.RUN_VALIDATE, q, k, v, cq, ck, out, lse, hq, hk, mq, mk, scale, causal, 1, 0,
             None, None)
        if kind == C.RUN_SANITIZE:
            assert scratch is buf and flags is flag and stream == 7
            cq, ck = torch.from_dlpack(cq), torch.from_dlpack(ck)
            n = cq.shape[0]
            buf[:n], buf[n:2 * n] = cq, ck  # valid input: the clamped copy is the input

    monkeypatch.setattr(C, "run", run)
    monkeypatch.setattr(_native, "raw_stream", lambda index: 7)
    monkeypatch.setattr(_native, "scratch",
                        lambda dev, stream, n: (buf, buf[:n], buf[n:2 * n]))
    flag = torch.zeros(1, dtype=torch.int32)
    flag_c = ctypes.c_int32.from_address(flag.data_ptr())
    monkeypatch.setitem(_native._flags, None, (flag, flag_c, flag))
    ad = _dispatch._adapter("sdpa")
    needs = (lambda *a: True) if name == "sdpa-host-lengths" else None
    choice = _dispatch.BackendChoice("sdpa", "stand-in", {}, None)
    e = _dispatch._Fast("sdpa", C.RUN_SANITIZE, choice, ad, ad.run, needs, True, flag_c, flag,
                        ("k",))
    q, k, v, cq, ck, mq, mk = make_case([5, 0, 9], [4, 3, 9], d=16)
    ref, _ = reference(q, k, v, cq, ck)
    out = _dispatch._fast_run(e, q, k, v, cq, ck, mq, mk, None, False, False, None)
    assert rel_err(out, ref) < TOL[torch.float32]
    assert csa.get_varlen_backend() is choice
    if name == "sdpa-host-lengths":
        assert seen == [(C.RUN_VALIDATE, 0)]  # the host copy is the check: no sanitizer
    else:
        assert seen == [(C.RUN_SANITIZE, 7)]
    flag_c.value = 1 << 1  # an earlier call's violation: raised before anything runs
    seen.clear()
    with pytest.raises(ValueError, match="cu_seqlens_q decreases"):
        _dispatch._fast_run(e, q, k, v, cq, ck, mq, mk, None, False, False, None)
    assert not seen and flag_c.value == 0


def test_sanitizer_scratch_is_per_stream_grows_and_is_fresh_while_capturing(monkeypatch):
    """The buffer logic of _native.scratch (device-independent): one buffer
    per (device, stream), reused while large enough, grown otherwise, never
    handed out while a graph is captured."""
    from comfy_sparse_attn import _native

    monkeypatch.setattr(_native, "_scratch", {})
    monkeypatch.setattr(_native, "capturing", lambda: False)
    dev = torch.device("cpu")
    cap, sq, skv = _native.scratch(dev, 1, 5)
    assert sq.shape == (5,) and skv.shape == (5,) and skv.data_ptr() == sq.data_ptr() + 20
    assert _native.scratch(dev, 1, 5)[1] is sq, "views are made once per length"
    cap2, sq2, _ = _native.scratch(dev, 1, 9)
    assert cap2 is cap and sq2.data_ptr() == sq.data_ptr()
    other = _native.scratch(dev, 2, 5)
    assert other[1].data_ptr() != sq.data_ptr(), "another stream gets its own buffer"
    big = _native.scratch(dev, 1, 1000)
    assert big[0] is not cap and big[2].shape == (1000,)
    assert _native._scratch[(None, 1)][2] >= 2000
    monkeypatch.setattr(_native, "capturing", lambda: True)
    fresh = _native.scratch(dev, 1, 5)
    assert fresh[1].data_ptr() != big[1].data_ptr()
    assert len(_native._scratch) == 2


# --- the fast path in C: what it runs, what its key holds, what it reports ----------------------

def _stats():
    """(calls C ran, records it handed to Python, misses) since the last call."""
    return _dispatch._C.fast_stats(True)


@needs_native
@pytest.mark.parametrize("form", ["plain", "out", "lse", "causal-gqa"])
def test_remembered_native_call_runs_in_c(monkeypatch, form):
    """A remembered native CPU call is done by C alone: the full path is not
    entered, the output is fresh (or out itself), the LSE and the record
    are what the full path gives."""
    kw = {}
    shape = dict(d=40, dv=24) if form != "causal-gqa" else dict(d=16, hkv=2)
    if form == "lse":
        kw["return_lse"] = True
    if form == "causal-gqa":
        kw["causal"] = True
    q, k, v, cq, ck, mq, mk = make_case([7, 0, 12], **shape)
    # (causal calls are remembered when one tensor holds both lengths: with
    # two, whether they are equal is a value the key does not hold)
    first = csa.dispatch_varlen_attention(q, k, v, cq, cq, mq, mk, softmax_scale=0.3, **kw)
    choice = csa.get_varlen_backend()
    assert choice.backend == "native"
    monkeypatch.setattr(_dispatch, "_run", lambda *a, **k: pytest.fail("the full path ran"))
    _stats()
    for seed in (1, 2):
        q, k, v, cq, ck, mq, mk = make_case([7, 0, 12], seed=seed, **shape)
        out = poisoned(q, v) if form == "out" else None
        res = csa.dispatch_varlen_attention(q, k, v, cq, cq, mq, mk, softmax_scale=0.3, out=out,
                                            **kw)
        o, lse = res if form == "lse" else (res, None)
        ref, ref_lse = reference(q, k, v, cq, ck, softmax_scale=0.3,
                                 causal=form == "causal-gqa")
        assert rel_err(o, ref) < TOL[torch.float32]
        if form == "out":
            assert o is out
        else:
            assert o.data_ptr() != (first[0] if form == "lse" else first).data_ptr()
        if lse is not None:
            fin = torch.isfinite(ref_lse)
            assert lse.dtype == torch.float32 and lse.shape == (4, 19)
            assert torch.allclose(lse.double()[fin], ref_lse[fin], atol=1e-4)
        assert csa.get_varlen_backend() is choice
    assert _stats() == (2, 0, 0)


def _change(monkeypatch, name, args):
    """The call of test_fast_key_facts: (args, kwargs, context manager)."""
    q, k, v, cq, ck, mq, mk = args
    kw, ctx = {}, contextlib.nullcontext()
    if name == "cu_kv not cu_q":
        ck = ck.clone()
    elif name == "check_cu_seqlens":
        kw["check_cu_seqlens"] = True
    elif name == "backend=native":
        kw["backend"] = "native"
    elif name == "backend=auto":
        kw["backend"] = "auto"
    elif name == "use_backend(exact)":
        ctx = csa.use_backend(exact=True)
    elif name == "use_backend(native)":
        ctx = csa.use_backend("native")
    elif name == "env backend":
        monkeypatch.setenv(_dispatch.ENV_BACKEND, "native")
    elif name == "env exact":
        monkeypatch.setenv(_dispatch.ENV_EXACT, "1")
    elif name == "comfy flags":
        _fake_comfy(monkeypatch, use_pytorch_cross_attention=True)
    elif name == "grad":
        q = q.clone().requires_grad_(True)
    elif name == "D_v":
        v = torch.randn(v.shape[0], v.shape[1], 8)
    elif name == "rows":
        q, k, v, cq, ck, mq, mk = make_case([14], d=16)
    elif name == "dtype":
        q, k, v = q.double(), k.double(), v.double()
    elif name == "causal":
        kw["causal"] = True
    elif name == "lse":
        kw["return_lse"] = True
    return (q, k, v, cq, ck, mq, mk), kw, ctx


@pytest.mark.parametrize("name", ["cu_kv not cu_q", "check_cu_seqlens", "backend=native",
                                  "backend=auto", "use_backend(exact)", "use_backend(native)",
                                  "env backend", "env exact", "comfy flags", "grad", "D_v",
                                  "rows", "dtype", "causal", "lse"])
def test_fast_key_facts(monkeypatch, name):
    """Every fact of the key, changed alone, makes a call the C table has not
    seen (decided by the full path), and the remembered call is still found
    afterwards."""
    q, k, v, cq, _, mq, mk = make_case([5, 9], d=16)
    base = (q, k, v, cq, cq, mq, mk)  # one tensor for both lengths
    csa.dispatch_varlen_attention(*base)
    _stats()
    csa.dispatch_varlen_attention(*base)
    assert sum(_stats()[:2]) == 1, "the base call is remembered"
    args, kw, ctx = _change(monkeypatch, name, base)
    with ctx:
        try:
            csa.dispatch_varlen_attention(*args, **kw)
        except (csa.NoCapableBackendError, TypeError, ValueError):
            pass  # e.g. float64 on a build whose backends refuse it: decided afresh anyway
    assert _stats()[2] == 1, "%s must be a fact of the key" % name
    monkeypatch.undo()
    _comfy._reset_for_tests()
    csa.dispatch_varlen_attention(*base)
    assert _stats()[2] == 0


@pytest.mark.parametrize("name", ["values", "out", "softmax_scale", "max_seqlen", "T_q",
                                  "no_grad", "another cu tensor"])
def test_fast_key_leaves_out_what_decides_nothing(name):
    """Values, out=, the scale, max_seqlen, T_q within the rows class and
    requires_grad under no_grad() decide nothing: the remembered call runs."""
    base = make_case([5, 9], d=16)
    csa.dispatch_varlen_attention(*base)
    q, k, v, cq, ck, mq, mk = make_case([5, 9], d=16, seed=3)
    kw, ctx = {}, contextlib.nullcontext()
    if name == "out":
        kw["out"] = poisoned(q, v)
    elif name == "softmax_scale":
        kw["softmax_scale"] = 0.5
    elif name == "max_seqlen":
        mq, mk = mq + 3, mk + 1
    elif name == "T_q":
        q, k, v, cq, ck, mq, mk = make_case([6, 11], d=16)
    elif name == "no_grad":
        q.requires_grad_(True)
        ctx = torch.no_grad()
    elif name == "another cu tensor":
        cq, ck = cq.clone(), ck.clone()  # two tensors, as in the remembered call
    _stats()
    with ctx:
        out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, **kw)
    assert sum(_stats()[:2]) == 1 and _stats() == (0, 0, 0)
    ref, _ = reference(q.detach(), k, v, cq, ck, softmax_scale=kw.get("softmax_scale"))
    assert rel_err(out, ref) < TOL[torch.float32]


def _outcome(fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - compared by the caller
        return e


def _assert_fast_path_matches_full_path(fn):
    """fn() once on the remembered (C) path, then again with every decision
    forgotten (the full path): the same result, or the same exception class
    and text."""
    fast = _outcome(fn)
    _dispatch._reset_for_tests()
    full = _outcome(fn)
    if isinstance(full, Exception):
        assert type(fast) is type(full) and str(fast) == str(full), (fast, full)
    else:
        assert not isinstance(fast, Exception), fast
        assert torch.equal(fast, full)


@pytest.mark.parametrize("arg", ["softmax_scale", "max_seqlen_q", "max_seqlen_kv"])
@pytest.mark.parametrize("value", ["zero", "negative", "nan", "float", "numpy", "str", "huge"])
def test_scalar_arguments_on_a_remembered_call_behave_as_on_the_full_path(arg, value):
    """Scalars C does not take as they are (floats for lengths, numpy
    numbers, bad scales) go to the full path: the same result or error as
    without any remembered decision."""
    import numpy as np

    good = make_case([3, 5], d=8)
    for _ in range(2):
        csa.dispatch_varlen_attention(*good)
    q, k, v, cq, ck, mq, mk = good
    kw = {"softmax_scale": None, "max_seqlen_q": mq, "max_seqlen_kv": mk}
    base = kw[arg] if kw[arg] is not None else 0.25
    kw[arg] = {"zero": 0, "negative": -1, "nan": float("nan"), "float": float(base),
               "numpy": np.int32(base) if arg != "softmax_scale" else np.float32(base),
               "str": "x", "huge": 10 ** 30}[value]
    _assert_fast_path_matches_full_path(lambda: csa.dispatch_varlen_attention(q, k, v, cq, ck,
                                                                               **kw))


@pytest.mark.parametrize("form", ["numpy", "meta", "int64", "rank", "dtype", "device-kind",
                                  "noncontig"])
@pytest.mark.parametrize("arg", [0, 2, 4, 5])
def test_bad_tensors_on_a_remembered_call_say_what_the_full_path_says(form, arg):
    """q, v, cu_seqlens_kv and out, each wrong in one way, after a remembered
    call: C reports exactly the full path's error (or hands the call to it)."""
    good = list(make_case([3, 5], d=8))
    for _ in range(2):
        csa.dispatch_varlen_attention(*good)
    args = list(good)
    out = poisoned(good[0], good[2])
    x = out if arg == 5 else args[arg]
    if form == "numpy":
        x = x.numpy()
    elif form == "meta":
        x = torch.empty(x.shape, dtype=x.dtype, device="meta")
    elif form == "int64":
        x = x.long()
    elif form == "rank":
        x = x[None]
    elif form == "dtype":
        x = x.double()
    elif form == "device-kind":
        x = x.to(torch.complex64) if x.is_floating_point() else x.to(torch.int16)
    else:
        x = x.transpose(0, -1) if x.dim() > 1 else x.repeat_interleave(2)[::2]
    if arg == 5:
        out = x
    else:
        args[arg] = x
    _assert_fast_path_matches_full_path(lambda: csa.dispatch_varlen_attention(*args, out=out))


def test_fast_table_is_bounded_and_cleared_by_reset():
    args = make_case([3, 5], d=8)
    csa.dispatch_varlen_attention(*args)
    assert len(_dispatch._fast) == 1
    _dispatch._reset_for_tests()
    assert len(_dispatch._fast) == 0 and not _dispatch._fast


@needs_native
def test_fast_path_without_torchs_dlpack_c_table():
    """Older torch has no __dlpack_c_exchange_api__: C reads the tensors
    through capsules from torch's exporter instead, with the same results and
    errors."""
    _dispatch._bind_fast(torch, None)
    try:
        q, k, v, cq, ck, mq, mk = make_case([7, 0, 12], d=40, dv=24)
        for _ in range(2):
            out, lse = csa.dispatch_varlen_attention(q, k, v, cq, cq, mq, mk, causal=True,
                                                     return_lse=True)
        _stats()
        q, k, v, cq, ck, mq, mk = make_case([7, 0, 12], d=40, dv=24, seed=4)
        out, lse = csa.dispatch_varlen_attention(q, k, v, cq, cq, mq, mk, causal=True,
                                                 return_lse=True)
        assert _stats() == (1, 0, 0)
        ref, ref_lse = reference(q, k, v, cq, cq, causal=True)
        assert rel_err(out, ref) < TOL[torch.float32]
        fin = torch.isfinite(ref_lse)
        assert torch.allclose(lse.double()[fin], ref_lse[fin], atol=1e-4)
        strided = torch.repeat_interleave(q, 2, dim=2)[..., ::2]  # same key, last stride 2
        with pytest.raises(ValueError) as fast:
            csa.dispatch_varlen_attention(strided, k, v, cq, cq, mq, mk, causal=True,
                                          return_lse=True)
        assert _stats() == (0, 0, 0)  # the C path ran validation, nothing else
    finally:
        _dispatch._fast_init()
    with pytest.raises(ValueError) as full:
        csa.dispatch_varlen_attention(strided, k, v, cq, cq, mq, mk, causal=True, return_lse=True)
    assert str(fast.value) == str(full.value)


def test_fast_path_while_another_thread_clears_the_table():
    """Remembered calls on several threads (the GIL is dropped while a
    kernel runs) while another thread keeps forgetting every decision: each
    call still gives the reference result (a hit holds what it uses of its
    entry; an entry freed meanwhile is never read)."""
    cases = [make_case([5, 9], d=16, seed=s) for s in range(3)] + \
        [make_case([3, 3, 3], d=8, hkv=2, seed=7)]
    refs = [reference(*c[:5])[0] for c in cases]
    stop = threading.Event()
    errors = []

    def clearer():
        while not stop.is_set():
            _dispatch._fast.clear()

    def worker(i):
        try:
            for n in range(60):
                c = cases[(i + n) % len(cases)]
                out = csa.dispatch_varlen_attention(*c)
                if rel_err(out, refs[(i + n) % len(cases)]) > TOL[torch.float32]:
                    errors.append(("wrong result", i, n))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    _stats()
    t0 = threading.Thread(target=clearer)
    t0.start()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stop.set()
    t0.join()
    assert not errors, errors[:3]
    runs, records, misses = _stats()
    assert misses > 0 and (runs + records) > 0, "both the C path and the full path ran"


def test_host_copies_are_remembered_per_tensor_pair_and_version():
    """The rule behind the host-length cache (_native.remembered_host_copies,
    used for device cu_seqlens): the same tensor objects, unchanged, reuse
    their copy; an in-place write (version counter), new tensor objects, or
    fresh=True copy again; inference tensors, which keep no version counter,
    are copied every time."""
    from comfy_sparse_attn import _native

    copies = []

    def copy(a, b):
        copies.append((a.tolist(), b.tolist()))
        return a.clone(), b.clone()

    cq = torch.tensor([0, 3, 8], dtype=torch.int32)
    ck = torch.tensor([0, 4, 9], dtype=torch.int32)
    first = _native.remembered_host_copies(cq, ck, False, copy)
    again = _native.remembered_host_copies(cq, ck, False, copy)
    assert len(copies) == 1 and again[0] is first[0] and again[1] is first[1]
    cq[1] = 5  # in place: the version moves
    got = _native.remembered_host_copies(cq, ck, False, copy)
    assert len(copies) == 2 and got[0].tolist() == [0, 5, 8]
    _native.remembered_host_copies(cq.clone(), ck, False, copy)  # another object
    assert len(copies) == 3
    _native.remembered_host_copies(cq, ck, True, copy)  # fresh
    assert len(copies) == 4
    with torch.inference_mode():
        iq = torch.tensor([0, 3, 8], dtype=torch.int32)
        ik = torch.tensor([0, 4, 9], dtype=torch.int32)
        _native.remembered_host_copies(iq, ik, False, copy)
        iq[1] = 6  # no version counter would show this
        got = _native.remembered_host_copies(iq, ik, False, copy)
    assert len(copies) == 6 and got[0].tolist() == [0, 6, 8]
    assert len(_native._host_cache) <= _native._HOST_CACHE_MAX
