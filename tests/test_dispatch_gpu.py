"""Adapters and dispatch on a CUDA device, against the float64 reference:
every torch-tier path (per-sequence SDPA, the FA2 and memory-efficient varlen
ops), sage2 / flash / xformers where they import, native CUDA, and auto.
Skipped without a GPU."""
import math

import pytest
import torch

import comfy_sparse_attn as csa
from comfy_sparse_attn import _dispatch
from comfy_sparse_attn.backends import sdpa
from reference import GPU_CASES, SAGE_TOL, TOL, make_case, reference, rel_err

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DEV = "cuda"

CASES = GPU_CASES
DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@pytest.fixture(autouse=True)
def clean():
    _dispatch._reset_for_tests()
    yield


def build(name, dtype, seed=0):
    spec = dict(CASES[name])
    lq = spec.pop("lq")
    lk = spec.pop("lk", None)
    return make_case(lq, lk, dtype=dtype, device=DEV, seed=seed, **spec)


def poisoned(q, v):
    return torch.full((q.shape[0], q.shape[1], v.shape[2]), math.nan, dtype=q.dtype, device=DEV)


def lengths_equal(cq, ck):
    return cq.shape == ck.shape and bool(torch.equal(cq, ck))


def torch_path_ok(path, q, k, v, causal, equal):
    if path == "per-seq":
        return True
    if q.shape[1] != k.shape[1] or (causal and not equal):
        return False
    if path == "memeff-varlen":
        return True
    return (q.dtype != torch.float32 and q.shape[2] == v.shape[2] and q.shape[2] % 8 == 0
            and q.shape[2] <= 256)


@pytest.mark.parametrize("path", ["per-seq", "fa2-varlen", "memeff-varlen"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_torch_tier_paths(name, causal, dtype, path):
    q, k, v, cq, ck, mq, mk = build(name, dtype)
    eq = lengths_equal(cq, ck)
    if not torch_path_ok(path, q, k, v, causal, eq):
        pytest.skip("%s does not take this case" % path)
    if path == "per-seq" and len(cq) > 600:
        pytest.skip("thousands of launches")
    out = poisoned(q, v)
    sdpa.run(q, k, v, cq, ck, mq, mk, causal=causal, out=out, path=path, lengths_equal=eq)
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu(), causal=causal)
    assert rel_err(out, ref) < TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_auto_and_every_usable_backend(name, causal, dtype):
    q, k, v, cq, ck, mq, mk = build(name, dtype, seed=1)
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu(), causal=causal)
    rows = csa.list_backends(DEV)
    for b in ["auto"] + [n for n, r in rows.items() if r["available"]]:
        out = poisoned(q, v)
        k_before = k.clone()
        try:
            csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal, out=out,
                                          backend=b)
        except csa.NoCapableBackendError:
            assert b != "auto"
            continue
        chosen = csa.get_varlen_backend().backend
        tol = SAGE_TOL if chosen == "sage2" else TOL[dtype]
        if chosen == "flash" and dtype == torch.float32:
            tol = TOL[torch.bfloat16]  # fp32 runs as bf16 (documented)
        if chosen == "native" and dtype == torch.float32:
            # The native CUDA kernel converts fp32 on load to a 16-bit MMA
            # type, so it meets the 16-bit tolerance only.
            tol = TOL[torch.bfloat16]
        assert rel_err(out, ref) < tol, (b, chosen)
        assert torch.equal(k, k_before), "%s changed the caller's k" % chosen


def test_lse_on_gpu():
    q, k, v, cq, ck, mq, mk = build("cross lengths", torch.float16)
    try:
        out, lse = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, return_lse=True)
    except csa.NoCapableBackendError as e:
        pytest.skip("no LSE backend here: %s" % e)
    ref, ref_lse = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(out, ref) < 1e-2
    fin = torch.isfinite(ref_lse)
    assert torch.allclose(lse.double().cpu()[fin], ref_lse[fin], atol=2e-2)


BAD_CU = {
    "beyond T": lambda c: c.index_fill(0, torch.tensor([2], device=c.device), 10**6),
    "decreasing": lambda c: c.index_fill(0, torch.tensor([2], device=c.device), 1),
    "cu[0] != 0": lambda c: c.index_fill(0, torch.tensor([0], device=c.device), 3),
    "longer than max": lambda c: c,  # with max_seqlen_q = 4
}


@pytest.mark.parametrize("where", ["cuda", "cpu"])
@pytest.mark.parametrize("bad", sorted(BAD_CU))
def test_bad_cu_seqlens_never_reach_a_gpu_kernel(bad, where):
    """Checked mode and host cu_seqlens raise in the call itself, before any
    kernel writes; the default CUDA mode raises at the next call (or from
    check_cu_seqlens_errors) and never reads out of bounds meanwhile."""
    from comfy_sparse_attn import _native

    q, k, v, cq, ck, mq, mk = build("basic", torch.float16)
    bad_cq = BAD_CU[bad](cq).to(where)
    mq = 4 if bad == "longer than max" else mq
    ck = ck.to(where)
    for b in (None, "sdpa", "native"):
        out = poisoned(q, v)
        with pytest.raises(ValueError, match="cu_seqlens_q|max_seqlen_q"):
            csa.dispatch_varlen_attention(q, k, v, bad_cq, ck, mq, mk, out=out, backend=b,
                                          check_cu_seqlens=True)
        torch.cuda.synchronize()
        assert torch.isnan(out).all(), "a refused call wrote into the output"
    if where == "cpu" or not _native.have_sanitizer():
        return
    out = poisoned(q, v)
    try:
        csa.dispatch_varlen_attention(q, k, v, bad_cq, ck, mq, mk, out=out)  # queued, clamped
    except ValueError as e:  # the chosen path reads the lengths on the host: raised here
        assert "earlier" not in str(e)
        return
    with pytest.raises(ValueError, match="earlier attention call"):
        csa.check_cu_seqlens_errors(q.device)
    csa.check_cu_seqlens_errors(q.device)  # reported once
    csa.dispatch_varlen_attention(q, k, v, bad_cq, ck, mq, mk)
    torch.cuda.synchronize()
    with pytest.raises(ValueError, match="earlier attention call"):  # the next call raises
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)


@pytest.mark.parametrize("where", ["cuda", "cpu"])
def test_int64_cu_seqlens_is_a_type_error(where):
    q, k, v, cq, ck, mq, mk = build("basic", torch.float16)
    for check in (False, True):
        with pytest.raises(TypeError, match="cu_seqlens_q must be int32, got int64"):
            csa.dispatch_varlen_attention(q, k, v, cq.long().to(where), ck.to(where), mq, mk,
                                          check_cu_seqlens=check)


# Workloads that exercise every path: per-sequence SDPA (few long), the
# varlen ops (many medium, many tiny), GQA and D = 16 (native's class).
SYNC_CASES = {
    "few long": dict(lq=[700, 1100, 300], d=64, h=4),
    "many medium": dict(lq=[100 + (i * 37) % 300 for i in range(40)], d=64, h=4),
    "many tiny": dict(lq=[1 + (i * 7) % 40 for i in range(600)], d=64, h=4),
    "gqa": dict(lq=[90, 200, 7], d=64, h=8, hkv=2),
    "d16": dict(lq=[300] * 12, d=16, h=4),
}


@pytest.mark.parametrize("where", ["cuda", "cpu"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(SYNC_CASES))
def test_zero_syncs_per_call(name, causal, where):
    """Default arguments: no device-to-host copy, no synchronization, on any
    path that does not inherently need the lengths on the host.  With CPU
    cu_seqlens every path qualifies; with CUDA cu_seqlens every path but
    per-sequence SDPA / xformers (which read the lengths on the host)."""
    from comfy_sparse_attn import _native

    spec = dict(SYNC_CASES[name])
    lq = spec.pop("lq")
    q, k, v, cq, _, mq, mk = make_case(lq, dtype=torch.float16, device=DEV, seed=3, **spec)
    if where == "cpu":
        cq = cq.cpu()
    elif not _native.have_sanitizer():
        pytest.skip("this build has no device sanitizer (_C.cuda_sanitize_cu_seqlens)")
    ck = cq  # one tensor for both: every L_q == L_kv is known (causal may use varlen ops)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal)  # warm: probes, plans
    chosen = csa.get_varlen_backend().backend
    if where == "cuda":
        first = _dispatch._adapter(chosen)
        need = getattr(first, "needs_host_lengths", None)
        if need is not None and need(q, k, v, cq, mq, causal, True):
            pytest.skip("%s reads the lengths on the host (one inherent copy)" % chosen)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu(), causal=causal)
    assert rel_err(out, ref) < TOL[torch.float16], chosen


MEM_CASES = {
    "B=1 long": dict(lq=[8192], d=64, h=8),
    "few long": dict(lq=[4096, 2048, 3000, 1000], d=64, h=8),
    "many medium": dict(lq=[200 + (i * 37) % 700 for i in range(60)], d=128, h=8),
    "many tiny": dict(lq=[1 + (i * 7) % 40 for i in range(4000)], d=64, h=8),
    "gqa few long": dict(lq=[3000, 2500], d=64, h=8, hkv=2),
}


@pytest.mark.parametrize("given_out", [False, True])
@pytest.mark.parametrize("name", sorted(MEM_CASES))
def test_peak_extra_memory_within_1_05x_the_output(name, given_out):
    """Peak memory during a call, above what existed before it, is at most
    1.05x the output (the output itself included when the call allocates
    it).  With out= given, torch's varlen ops (no out= argument) cost one
    output-sized temporary: that case is held to 1.05x only on the paths
    that write in place (per-sequence SDPA, native)."""
    spec = dict(MEM_CASES[name])
    lq = spec.pop("lq")
    q, k, v, cq, ck, mq, mk = make_case(lq, dtype=torch.float16, device=DEV, seed=4, **spec)
    out_bytes = q.shape[0] * q.shape[1] * v.shape[2] * q.element_size()
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)  # warm (plans, workspaces)
    chosen = csa.get_varlen_backend().backend
    out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype, device=DEV) \
        if given_out else None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    res = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, out=out)
    torch.cuda.synchronize()
    extra = torch.cuda.max_memory_allocated() - base
    if given_out:
        assert res.data_ptr() == out.data_ptr()
        if chosen == "sdpa":
            path = sdpa.choose(q, k, v, cq, mq, False, True)
            if path != "per-seq":
                pytest.skip("torch's %s op has no out= argument (one temporary)" % path)
    assert extra <= 1.05 * out_bytes + (1 << 20), (chosen, extra / out_bytes)


def test_graph_capture_never_marks_a_backend_broken():
    """Capturing an auto GQA call must not ban anything for later eager calls."""
    q, k, v, cq, ck, mq, mk = build("gqa", torch.float16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    eager = csa.get_varlen_backend().backend
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    captured = None
    with torch.cuda.stream(s):
        try:
            with torch.cuda.graph(g, stream=s):
                res = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
            captured = csa.get_varlen_backend().backend
        except (csa.NoCapableBackendError, RuntimeError):
            pass  # no capturable backend here: fine, as long as nothing is banned
    torch.cuda.current_stream().wait_stream(s)
    if captured is not None:
        g.replay()
        torch.cuda.synchronize()
        ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
        assert rel_err(res, ref) < TOL[torch.float16], captured
    assert not _dispatch._failed, _dispatch._failed
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    assert csa.get_varlen_backend().backend == eager


def test_cpu_cu_seqlens_while_capturing_say_what_to_do():
    q, k, v, cq, ck, mq, mk = build("basic", torch.float16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    cq_host, ck_host = cq.cpu(), ck.cpu()  # copied before capture: a D2H copy can't be captured
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        with pytest.raises(ValueError, match="on the CPU.*CUDA graph"):
            with torch.cuda.graph(g, stream=s):
                csa.dispatch_varlen_attention(q, k, v, cq_host, ck_host, mq, mk)
    torch.cuda.current_stream().wait_stream(s)
    assert not _dispatch._failed


@pytest.mark.parametrize("d", [3, 31, 59, 111])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_head_dims_torch_cannot_run_never_reach_its_kernels(d, dtype):
    """D not a multiple of 8 in 16-bit on CUDA: the torch tier declines (its
    kernels have none); auto takes another backend or says none can."""
    q, k, v, cq, ck, mq, mk = make_case([40, 70], d=d, dtype=dtype, device=DEV, seed=d)
    with pytest.raises(csa.NoCapableBackendError, match="multiples of 8"):
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, backend="sdpa")
    try:
        out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    except csa.NoCapableBackendError as e:
        assert "multiples of 8" in str(e)
    else:
        ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
        assert rel_err(out, ref) < TOL[dtype]
    assert not _dispatch._failed


def test_cpu_cu_seqlens_with_cuda_tensors():
    q, k, v, cq, ck, mq, mk = build("cross lengths", torch.float16)
    for b in (None, "sdpa", "native"):
        try:
            out = csa.dispatch_varlen_attention(q, k, v, cq.cpu(), ck.cpu(), mq, mk, backend=b,
                                                causal=True)
        except csa.NoCapableBackendError:
            assert b is not None
            continue
        ref, _ = reference(q, k, v, cq.cpu(), ck.cpu(), causal=True)
        assert rel_err(out, ref) < TOL[torch.float16], b


@pytest.mark.skipif(not getattr(torch.version, "hip", None), reason="ROCm only")
def test_rocm_goes_to_the_torch_tier():
    q, k, v, cq, ck, mq, mk = build("basic", torch.float16)
    out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    assert csa.get_varlen_backend().backend == "sdpa"
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(out, ref) < TOL[torch.float16]


def test_capability_comes_from_the_tensors_device():
    q, k, v, cq, ck, mq, mk = build("basic", torch.float16)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    major, minor = torch.cuda.get_device_capability(q.device)
    assert _dispatch._sm_cache[q.device.index] == major * 10 + minor


def test_report_torch_causal_alignment(capsys):
    """Informational: is the aten FA2 varlen op's causal mask bottom-right for
    L_q != L_kv?  (The torch tier does not rely on it either way.)"""
    q, k, v, cq, ck, mq, mk = build("cross lengths", torch.float16)
    res = torch.ops.aten._flash_attention_forward(q, k, v, cq, ck, mq, mk, 0.0, True, False)[0]
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu(), causal=True)
    with capsys.disabled():
        print("\n[info] aten FA2 varlen causal, L_q != L_kv: rel err vs bottom-right = %.2e"
              % rel_err(res, ref))


# --- the fast path on the device: streams, graphs, the sanitizer's scratch -----------------------

def _sanitized_auto(q, k, v, cq, ck, mq, mk, **kw):
    from comfy_sparse_attn import _native

    if not _native.have_sanitizer():
        pytest.skip("this build has no device sanitizer")
    return csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, **kw)


def test_remembered_call_on_a_second_stream():
    """Each stream sanitizes into its own scratch: calls queued on two streams
    at once never read each other's clamped cu_seqlens.  A remembered native
    call makes no copies at all (its kernel checks the raw values)."""
    from comfy_sparse_attn import _native

    a = build("basic", torch.float16, seed=1)
    lq = [int(x) for x in a[3].diff().tolist()]
    b = make_case(lq[::-1], dtype=torch.float16, device=DEV, seed=2)  # same B, other lengths
    _sanitized_auto(*a)
    _sanitized_auto(*a)  # remembered from here on
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    outs = []
    for _ in range(3):
        outs.append(_sanitized_auto(*a))
        with torch.cuda.stream(s):
            outs.append(_sanitized_auto(*b))
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    for i, out in enumerate(outs):
        x = a if i % 2 == 0 else b
        ref, _ = reference(x[0], x[1], x[2], x[3].cpu(), x[4].cpu())
        assert rel_err(out, ref) < TOL[torch.float16], (i, csa.get_varlen_backend().backend)
    keys = {key for key in _native._scratch if key[0] == a[0].device.index}
    if csa.get_varlen_backend().backend == "native":
        assert (a[0].device.index, s.cuda_stream) not in keys, keys
    elif len(keys) > 0:
        assert len(keys) >= 2, keys


def test_graph_replay_uses_its_own_cu_seqlens_copies():
    """A captured call keeps its own sanitized copies: eager calls after the
    capture (which reuse and grow the per-stream scratch) do not change what
    the replay reads."""
    from comfy_sparse_attn import _native

    q, k, v, cq, ck, mq, mk = build("basic", torch.float16, seed=5)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        _sanitized_auto(q, k, v, cq, ck, mq, mk)
        _sanitized_auto(q, k, v, cq, ck, mq, mk)  # remembered, scratch of s made
    torch.cuda.current_stream().wait_stream(s)
    before = dict(_native._scratch)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.stream(s):
        try:
            with torch.cuda.graph(g, stream=s):
                res = _sanitized_auto(q, k, v, cq, ck, mq, mk)
        except (csa.NoCapableBackendError, RuntimeError):
            pytest.skip("no capturable backend for this call here")
    torch.cuda.current_stream().wait_stream(s)
    assert all(_native._scratch.get(key) is got for key, got in before.items())
    big = make_case([7] * 3000, dtype=torch.float16, device=DEV, seed=6)  # grows the scratch
    with torch.cuda.stream(s):
        for _ in range(2):
            _sanitized_auto(*big)
        g.replay()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(res, ref) < TOL[torch.float16]


def test_remembered_call_has_zero_syncs_and_reports_violations_later():
    q, k, v, cq, ck, mq, mk = build("basic", torch.float16, seed=7)
    cq = cq.clone()  # its own tensor: the key of the bad call below
    _sanitized_auto(q, k, v, cq, ck, mq, mk)
    _sanitized_auto(q, k, v, cq, ck, mq, mk)
    assert _dispatch._fast
    bad = cq.clone()
    bad[-1] += 5  # cu_seqlens_q[-1] != T_q
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        _sanitized_auto(q, k, v, bad, ck, mq, mk)  # remembered decision: no sync, no error yet
    finally:
        torch.cuda.set_sync_debug_mode("default")
    with pytest.raises(ValueError, match="cu_seqlens_q"):
        csa.check_cu_seqlens_errors()
    out = _sanitized_auto(q, k, v, cq, ck, mq, mk)  # reported once, then clear
    torch.cuda.synchronize()
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(out, ref) < TOL[torch.float16]


# --- the remembered native call done in C (fast_binding.c) ---------------------------------------

@pytest.mark.parametrize("form", ["plain", "out", "lse", "second stream"])
def test_remembered_native_cuda_call_runs_in_c_with_zero_syncs(monkeypatch, form):
    """A remembered native CUDA call is done by C alone (one kernel on the
    current stream, which checks cu_seqlens itself; output from torch's
    allocator), with no sync, and gives the reference result; a different
    T_q in the same rows class, fresh values and another stream reuse the
    decision."""
    from comfy_sparse_attn import _C, _native

    if not _native.have_sanitizer():
        pytest.skip("this build has no device sanitizer")
    q, k, v, cq, ck, mq, mk = make_case([37, 0, 90], dtype=torch.float16, device=DEV, seed=11)
    kw = {"return_lse": True} if form == "lse" else {}
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, **kw)
    if csa.get_varlen_backend().backend != "native":
        pytest.skip("auto does not pick native for this call here")
    choice = csa.get_varlen_backend()
    monkeypatch.setattr(_dispatch, "_run", lambda *a, **kw: pytest.fail("the full path ran"))
    s = torch.cuda.Stream() if form == "second stream" else torch.cuda.current_stream()
    s.wait_stream(torch.cuda.current_stream())
    inputs = []
    for seed in (12, 13):  # made before the sync check: copies from the host sync
        x = make_case([37, 0, 90], dtype=torch.float16, device=DEV, seed=seed)
        inputs.append((x, poisoned(x[0], x[2]) if form == "out" else None))
    outs = []
    _C.fast_stats(True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.cuda.stream(s):
            for x, out in inputs:
                res = csa.dispatch_varlen_attention(*x, out=out, **kw)
                outs.append((x, res, out))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    assert _C.fast_stats()[0] == 2
    assert csa.get_varlen_backend() is choice or csa.get_varlen_backend() == choice
    for x, res, out in outs:
        o, lse = res if form == "lse" else (res, None)
        if out is not None:
            assert o is out
        ref, ref_lse = reference(x[0], x[1], x[2], x[3].cpu(), x[4].cpu())
        assert rel_err(o, ref) < TOL[torch.float16]
        if lse is not None:
            fin = torch.isfinite(ref_lse)
            assert torch.allclose(lse.double().cpu()[fin], ref_lse[fin], atol=2e-2)


def test_remembered_native_cuda_call_reports_a_violation_at_the_next_call():
    """The C path's kernel checks cu_seqlens itself: a bad value on a
    remembered call is clamped where it is read, reported by the next call
    (which the full path then takes), once."""
    from comfy_sparse_attn import _C, _native

    if not _native.have_sanitizer():
        pytest.skip("this build has no device sanitizer")
    q, k, v, cq, ck, mq, mk = make_case([40, 24], dtype=torch.float16, device=DEV, seed=21)
    cq = cq.clone()
    for _ in range(2):
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    if csa.get_varlen_backend().backend != "native":
        pytest.skip("auto does not pick native for this call here")
    bad = cq.clone()
    bad[-1] += 5  # cu_seqlens_q[-1] != T_q
    _C.fast_stats(True)
    csa.dispatch_varlen_attention(q, k, v, bad, ck, mq, mk)
    assert _C.fast_stats()[0] == 1, "the remembered call ran in C"
    torch.cuda.synchronize()
    with pytest.raises(ValueError, match="cu_seqlens_q"):
        csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk)
    torch.cuda.synchronize()
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(out, ref) < TOL[torch.float16]


# Each violation alone and a few together, for q and for kv: (B = 3, T = 60)
FLAG_CASES = {
    "valid": ([0, 10, 30, 60], [0, 10, 30, 60]),
    "q start": ([2, 10, 30, 60], [0, 10, 30, 60]),
    "q decreases": ([0, 30, 10, 60], [0, 10, 30, 60]),
    "q total": ([0, 10, 30, 59], [0, 10, 30, 60]),
    "q too long": ([0, 10, 50, 60], [0, 10, 30, 60]),
    "kv start": ([0, 10, 30, 60], [-4, 10, 30, 60]),
    "kv decreases": ([0, 10, 30, 60], [0, 40, 30, 60]),
    "kv total": ([0, 10, 30, 60], [0, 10, 30, 61]),
    "kv too long": ([0, 10, 30, 60], [0, 35, 40, 60]),
    "both garbage": ([7, -3, 2 ** 31 - 1, -2 ** 31], [60, 0, 99999, 5]),
}


@pytest.mark.parametrize("name", sorted(FLAG_CASES))
def test_kernel_check_records_what_the_sanitizer_records(name):
    """The native kernel's own cu_seqlens check (RUN_CUDA_FLAGGED, what a
    remembered native call runs) ORs exactly the violation bits the
    sanitizer kernel does, for every kind of violation of q and kv, with
    max_seqlen = 30; valid input records nothing and every row is written.
    Both read the same raw values; the flag word is read after a
    synchronize."""
    from comfy_sparse_attn import _C, _native

    if not _native.have_sanitizer():
        pytest.skip("this build has no device sanitizer")
    lq, lk = FLAG_CASES[name]
    q, k, v, _, _, _, _ = make_case([10, 20, 30], dtype=torch.float16, device=DEV, seed=31)
    cq = torch.tensor(lq, dtype=torch.int32, device=DEV)
    ck = torch.tensor(lk, dtype=torch.int32, device=DEV)
    _, word, cap = _native._flag(q.device.index)
    torch.cuda.synchronize()
    word.value = 0
    bits = []
    for kind in (_C.RUN_SANITIZE, _C.RUN_CUDA_FLAGGED):
        out = poisoned(q, v)
        scratch = torch.empty(8, dtype=torch.int32, device=DEV)
        _C.run(kind, q, k, v, cq, ck, out if kind == _C.RUN_CUDA_FLAGGED else None, None,
               None, None, 30, 30, 0.0, False, 0, _native.raw_stream(q.device.index),
               scratch, cap)
        torch.cuda.synchronize()
        bits.append(word.value)
        word.value = 0
        if kind == _C.RUN_CUDA_FLAGGED and name == "valid":
            ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
            assert rel_err(out, ref) < TOL[torch.float16]
    assert bits[0] == bits[1], [hex(b) for b in bits]
    assert (bits[0] == 0) == (name == "valid"), hex(bits[0])


def test_kernel_check_covers_thousands_of_sequences():
    """One bad entry among 2 x 5001 is found by the grid-stride check of
    whichever thread owns it (the first, a middle and the last entry)."""
    from comfy_sparse_attn import _C, _native

    if not _native.have_sanitizer():
        pytest.skip("this build has no device sanitizer")
    q, k, v, cq, ck, mq, mk = make_case([1 + i % 5 for i in range(5000)], dtype=torch.float16,
                                        device=DEV, seed=32)
    _, word, cap = _native._flag(q.device.index)
    stream = _native.raw_stream(q.device.index)
    for which, at, expect in (("q", 0, 0x1), ("kv", 2500, 0x200), ("kv", 5000, 0x400),
                              ("q", 4999, 0x2)):
        bad_q, bad_k = cq.clone(), ck.clone()
        t = bad_q if which == "q" else bad_k
        t[at] = t[at] + 3 if at in (0, 5000) else -1
        torch.cuda.synchronize()
        word.value = 0
        out = poisoned(q, v)
        _C.run(_C.RUN_CUDA_FLAGGED, q, k, v, bad_q, bad_k, out, None, None, None, mq, mk, 0.0,
               False, 0, stream, None, cap)
        torch.cuda.synchronize()
        assert word.value & expect, (which, at, hex(word.value))
        word.value = 0


def test_host_lengths_are_copied_once_per_cu_seqlens_tensor():
    """A path that reads the lengths on the host (per-sequence SDPA) copies
    them once per pair of cu_seqlens tensors: the next call with the same,
    unchanged tensors (every layer of a model) has no sync; an in-place
    change (the version counter moves) is copied and seen; a new tensor with
    the same values is copied; check_cu_seqlens=True always copies."""
    from comfy_sparse_attn import _native

    q, k, v, cq, ck, mq, mk = make_case([1500, 700], h=4, d=64, dtype=torch.float16,
                                        device=DEV, seed=41)
    need = getattr(_dispatch._adapter("sdpa"), "needs_host_lengths", None)
    if need is None or not need(q, k, v, cq, mq, False, False):
        pytest.skip("the torch tier does not read host lengths for this call here")

    def call(a, b, **kw):
        return csa.dispatch_varlen_attention(q, k, v, a, b, mq, mk, backend="sdpa", **kw)

    call(cq, ck)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = call(cq, ck)  # the same tensors, unchanged: no copy
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(out, ref) < TOL[torch.float16]
    cq[1] = 700  # in place: lengths [700, 1500], same T
    ck[1] = 700
    out = call(cq, ck)
    ref, _ = reference(q, k, v, cq.cpu(), ck.cpu())
    assert rel_err(out, ref) < TOL[torch.float16], "a changed cu_seqlens was not seen"
    held = _native._host_cache[(id(cq), id(ck))]
    assert held[2] == (cq._version, ck._version) and held[3].tolist() == cq.tolist()
    fresh_q, fresh_k = cq.clone(), ck.clone()
    call(fresh_q, fresh_k)  # new tensors, same values: copied for them
    assert _native._host_cache[(id(fresh_q), id(fresh_k))][0]() is fresh_q
    call(cq, ck, check_cu_seqlens=True)  # checked mode: always copied afresh
    assert _native._host_cache[(id(cq), id(ck))][3] is not held[3]
    assert len(_native._host_cache) <= _native._HOST_CACHE_MAX
