"""The native CPU kernel through comfy_sparse_attn._native.varlen_attention.

Every case of the contract (docs/ARCHITECTURE.md) on every ISA variant this
CPU runs (forced with _C.cpu_isa_force), against a float64 torch reference computed per sequence,
with the output poisoned (NaN) before each call.  Relative error bounds:
fp32 1e-5, fp16/bf16 1e-2.  The C-level tests (tests/c/test_cpu_*.c) cover the
same ground under ASan/UBSan; these check the Python path and torch layouts.
"""
import os
import shutil
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch", reason="torch is needed for the native CPU tests")
try:
    from comfy_sparse_attn import _C, _native
except ImportError as e:  # pragma: no cover - only while the extension is not built
    pytest.skip("comfy_sparse_attn._C is not importable (%s): build it with "
                "`pip install --no-build-isolation -e .`" % e, allow_module_level=True)

from reference import TOL, cu_from_lengths as cu, reference, rel_err  # noqa: E402

ALL_ISAS = ["scalar", "avx2", "avx512", "avx512bf16", "neon"]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def _supported_isas():
    start = _C.cpu_isa()
    ok = []
    for name in ALL_ISAS:
        try:
            _C.cpu_isa_force(name)
            ok.append(name)
        except Exception:
            pass
    _C.cpu_isa_force(start)
    return start, ok


DEFAULT_ISA, ISAS = _supported_isas()


def _amx_usable():
    """Whether this process may run AMX bf16 tiles: the CPU lists them and
    Linux grants the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM for
    XTILEDATA, as isa.c asks; asking twice is harmless).  Where it holds, the
    avx512bf16 kernel runs its bf16 products on tiles unless
    COMFY_SPARSE_ATTN_CPU_AMX=0."""
    if not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        return False
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
    except OSError:
        return False
    if "amx_bf16" not in flags or "amx_tile" not in flags:
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.syscall(158, 0x1023, 18) == 0  # SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XTILEDATA


AMX = _amx_usable()


@pytest.fixture(params=ALL_ISAS)
def isa(request):
    if request.param not in ISAS:
        pytest.skip("this CPU/build cannot run the %s kernel" % request.param)
    _C.cpu_isa_force(request.param)
    yield request.param
    _C.cpu_isa_force(DEFAULT_ISA)


# float64 references of inputs that every ISA sees alike (fixed seeds), kept
# across the ISA variants: the reference of 2000 sequences costs more than
# the kernel calls
_REF = {}


def check(q, k, v, lq, lkv=None, *, causal=False, scale=None, out=None, threads=2, ref_key=None):
    lkv = lq if lkv is None else lkv
    cq, ckv = cu(lq), cu(lkv)
    if out is None:
        out = torch.empty(q.shape[0], q.shape[1], v.shape[2], dtype=q.dtype)
    out.fill_(float("nan"))
    got, lse = _native.varlen_attention(q, k, v, cq, ckv, max(lq, default=0), max(lkv, default=0),
                                        softmax_scale=scale, causal=causal, return_lse=True,
                                        num_threads=threads, out=out)
    assert got.data_ptr() == out.data_ptr(), "the output goes into the caller's tensor"
    if ref_key is not None and ref_key in _REF:
        ref, ref_lse = _REF[ref_key]
    else:
        ref, ref_lse = reference(q, k, v, cq, ckv, softmax_scale=scale, causal=causal)
        if ref_key is not None:
            _REF[ref_key] = ref, ref_lse
    assert not torch.isnan(got).any(), "rows left unwritten (NaN poison survived)"
    assert rel_err(got, ref) < TOL[q.dtype], rel_err(got, ref)
    no_key = torch.isinf(ref_lse)
    assert torch.equal(torch.isinf(lse) & (lse < 0), no_key), "lse = -inf exactly where no key"
    assert (got.double().transpose(0, 1)[no_key] == 0).all(), "rows with no key are zeros"
    if (~no_key).any():
        err = ((lse.double() - ref_lse)[~no_key].abs() / (1 + ref_lse[~no_key].abs())).max()
        assert err < (1e-5 if q.dtype == torch.float32 else 1e-2), err.item()
    return got


def rand(*shape, dtype, g):
    return torch.randn(*shape, generator=g).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_semantics(isa, dtype):
    g = torch.Generator().manual_seed(1)
    lq = [70, 0, 33, 1]
    t = sum(lq)
    for d, dv in [(16, 16), (40, 40), (64, 64), (72, 72), (96, 96), (128, 128), (160, 160),
                  (256, 256), (1, 1), (33, 33), (64, 40), (24, 130)]:
        check(rand(t, 2, d, dtype=dtype, g=g), rand(t, 2, d, dtype=dtype, g=g),
              rand(t, 2, dv, dtype=dtype, g=g), lq)
    # GQA and MQA
    for hkv in (2, 1):
        check(rand(t, 8, 64, dtype=dtype, g=g), rand(t, hkv, 64, dtype=dtype, g=g),
              rand(t, hkv, 64, dtype=dtype, g=g), lq)
    # causal, bottom-right, L_q != L_kv (rows with no key), and cross attention
    lq2, lk2 = [20, 90, 0, 5], [150, 7, 4, 0]
    q = rand(sum(lq2), 4, 32, dtype=dtype, g=g)
    k = rand(sum(lk2), 2, 32, dtype=dtype, g=g)
    v = rand(sum(lk2), 2, 48, dtype=dtype, g=g)
    check(q, k, v, lq2, lk2, causal=True)
    check(q, k, v, lq2, lk2, causal=False)
    check(q, k, v, lq2, lk2, causal=True, scale=0.3)


def test_b0_and_empty(isa):
    q = torch.empty(0, 2, 64)
    got = check(q, q, q, [])
    assert got.shape == (0, 2, 64)
    q = torch.empty(0, 2, 64)
    check(q, q, q, [0, 0, 0])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_unbind_views_and_strided_out(isa, dtype):
    """q/k/v as unbind views of a packed [T, 3, H, D] tensor, read in place; out a
    strided view of a bigger tensor, whose other elements stay untouched."""
    g = torch.Generator().manual_seed(2)
    lq = [100, 37, 64]
    qkv = rand(sum(lq), 3, 4, 48, dtype=dtype, g=g)
    q, k, v = qkv.unbind(1)
    assert not q.is_contiguous()
    big = torch.zeros(sum(lq), 4, 60, dtype=dtype)
    out = big[:, :, 5:53]
    check(q, k, v, lq, out=out, causal=True)
    assert (big[:, :, :5] == 0).all() and (big[:, :, 53:] == 0).all()


def test_many_tiny_sequences(isa):
    g = torch.Generator().manual_seed(3)
    rng = torch.Generator().manual_seed(4)
    lq = torch.randint(1, 17, (2000,), generator=rng).tolist()
    t = sum(lq)
    dtype = torch.bfloat16 if isa != "scalar" else torch.float32
    check(rand(t, 2, 32, dtype=dtype, g=g), rand(t, 2, 32, dtype=dtype, g=g),
          rand(t, 2, 32, dtype=dtype, g=g), lq, threads=2, ref_key=("tiny", dtype))


def test_random_sweep(isa):
    rng = torch.Generator().manual_seed(5)
    g = torch.Generator().manual_seed(6)

    def ri(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=rng))

    for _ in range(40):
        dtype = DTYPES[ri(0, 2)]
        b = ri(1, 4)
        lq = [ri(0, 80) for _ in range(b)]
        lkv = lq if ri(0, 1) else [ri(0, 80) for _ in range(b)]
        hkv = ri(1, 3)
        h = hkv * ri(1, 3)
        d = ri(1, 130)
        dv = d if ri(0, 1) else ri(1, 130)
        check(rand(sum(lq), h, d, dtype=dtype, g=g), rand(sum(lkv), hkv, d, dtype=dtype, g=g),
              rand(sum(lkv), hkv, dv, dtype=dtype, g=g), lq, lkv, causal=bool(ri(0, 1)),
              threads=ri(1, 3))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_head_cache_across_items_heads_and_sequences(isa, dtype):
    """A thread keeps a kv head packed for its next items of that head: row
    tiles of a sequence longer than one item (256 rows at D = 128, 512 at
    D = 64), the query heads of one GQA group, then another sequence with the
    same kv head index.  Causal items see longer key prefixes one after the
    other, so a block packed short by one item must be packed again by the
    next; a kv head over the cache's size (D = 256, 2200 keys) packs block by
    block instead."""
    if isa == "scalar" and dtype != torch.float32:
        pytest.skip("the scalar kernel is covered in float32")
    g = torch.Generator().manual_seed(7)
    lq, lkv = [1100, 300, 600], [700, 1029, 600]
    for n, (d, dv, h, hkv) in enumerate([(128, 128, 4, 2), (64, 40, 3, 1), (16, 16, 2, 2)]):
        q = rand(sum(lq), h, d, dtype=dtype, g=g)
        k = rand(sum(lkv), hkv, d, dtype=dtype, g=g)
        v = rand(sum(lkv), hkv, dv, dtype=dtype, g=g)
        for causal in (True, False):
            for threads in (1, 3):
                check(q, k, v, lq, lkv, causal=causal, threads=threads,
                      ref_key=("head cache", dtype, n, causal))
    lq, lkv = [300], [2200]
    q = rand(300, 1, 256, dtype=dtype, g=g)
    k, v = rand(2200, 1, 256, dtype=dtype, g=g), rand(2200, 1, 256, dtype=dtype, g=g)
    check(q, k, v, lq, lkv, causal=True, threads=2, ref_key=("head cache", dtype, "d256"))


def test_head_dim_above_256_is_refused():
    q = torch.randn(4, 1, 300)
    with pytest.raises(NotImplementedError, match="256"):
        _native.varlen_attention(q, q, q, cu([4]), cu([4]), 4, 4)


def test_amx_cpu_defaults_to_the_tile_kernel():
    """Where AMX tiles may run, the automatic choice is the avx512bf16 kernel
    (whose bf16 products then run on tiles); elsewhere on Intel it is avx512."""
    if not AMX:
        pytest.skip("no AMX tiles usable in this process")
    if os.environ.get("COMFY_SPARSE_ATTN_CPU_ISA") or os.environ.get("COMFY_SPARSE_ATTN_CPU_AMX"):
        pytest.skip("the environment picks the kernel")
    assert DEFAULT_ISA == "avx512bf16"


def test_avx512bf16_without_amx_in_a_fresh_process():
    """Where AMX runs, the avx512bf16 cases above test its tile path; this runs
    them again in a fresh process with COMFY_SPARSE_ATTN_CPU_AMX=0 (read once
    per process), so that its vdpbf16ps path is tested on the same CPU."""
    if "avx512bf16" not in ISAS or not AMX:
        pytest.skip("the avx512bf16 cases above already run vdpbf16ps here (no AMX)")
    env = dict(os.environ, COMFY_SPARSE_ATTN_CPU_AMX="0")
    proc = subprocess.run([sys.executable, "-m", "pytest", os.path.abspath(__file__), "-q", "-x",
                           "-p", "no:cacheprovider", "-k", "avx512bf16 and not fresh_process"],
                          env=env, capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.abspath(__file__)))
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout, proc.stdout[-2000:]


def _cc_has_simde_avx512():
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None or os.uname().machine != "x86_64" or not sys.platform.startswith("linux"):
        return None
    probe = subprocess.run([cc, "-x", "c", "-fsyntax-only", "-mavx2", "-"], input=(
        "#include <simde/x86/avx512.h>\nint main(void) { return 0; }\n"), text=True,
        capture_output=True)
    return cc if probe.returncode == 0 else None


def test_avx512_vdpbf16ps_and_amx_paths_emulated(tmp_path):
    """The avx512, avx512bf16 (vdpbf16ps) and AMX paths on any AVX2 machine:
    tests/c/test_cpu_attn.c (every ISA, float64 reference, NaN poison,
    sentinels) and test_cpu_attn_dot.c (vdpbf16ps), built with the AVX-512 /
    AMX kernel files compiled against tests/c/emu/emu_avx512_amx.h (SIMDe's
    AVX-512, AMX tiles in C that check their configuration and shapes), under
    AddressSanitizer + UBSan, which see every byte a tile reads or writes.
    Needs gcc and the SIMDe headers (Debian/Ubuntu: libsimde-dev)."""
    if os.uname().machine != "x86_64" or not sys.platform.startswith("linux"):
        pytest.skip("the emulation harness builds on x86-64 Linux")
    cc = _cc_has_simde_avx512()
    if cc is None:
        msg = "needs gcc and the SIMDe headers (libsimde-dev)"
        if os.environ.get("COMFY_SPARSE_ATTN_REQUIRE_TOOLS") == "1":
            pytest.fail(msg)  # CI installs them: a missing one is a failure there
        pytest.skip(msg)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    src, emu = os.path.join(root, "csrc"), os.path.join(root, "tests", "c", "emu")
    flags = ["-O1", "-g", "-std=gnu11", "-pthread", "-I" + src, "-I" + os.path.join(root, "include"),
             "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
    avx2 = ["-mavx2", "-mfma", "-mf16c"]
    units = [(os.path.join(src, "core", f), []) for f in sorted(os.listdir(os.path.join(src, "core")))
             if f.endswith(".c")]
    units += [(os.path.join(src, "cpu", f + ".c"), []) for f in ("attn_cpu", "threads", "kernel_scalar")]
    units += [(os.path.join(src, "cpu", "kernel_avx2.c"), avx2), (os.path.join(emu, "isa_emu.c"), [])]
    units += [(os.path.join(src, "cpu", f + ".c"),
               avx2 + ["-include", os.path.join(emu, "emu_avx512_amx.h")])
              for f in ("kernel_avx512", "kernel_avx512bf16", "kernel_amx")]
    objs, procs = [], []
    for i, (path, extra) in enumerate(units):
        obj = str(tmp_path / ("%d.o" % i))
        objs.append(obj)
        procs.append((path, subprocess.Popen([cc] + flags + extra + ["-c", path, "-o", obj],
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                             text=True)))
        if len(procs) >= (os.cpu_count() or 2):
            path0, p0 = procs.pop(0)
            assert p0.wait() == 0, path0 + ": " + p0.stdout.read()[-3000:]
    for path0, p0 in procs:
        assert p0.wait() == 0, path0 + ": " + p0.stdout.read()[-3000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1", UBSAN_OPTIONS="print_stacktrace=1")
    env.pop("COMFY_SPARSE_ATTN_CPU_AMX", None)
    for name in ("test_cpu_attn", "test_cpu_attn_dot"):
        exe = str(tmp_path / name)
        subprocess.run([cc] + flags + ["-I" + os.path.join(root, "tests", "c"),
                        os.path.join(root, "tests", "c", name + ".c")] + objs + ["-lm", "-o", exe],
                       check=True, capture_output=True)
        proc = subprocess.run([exe, "12", "avx512"], capture_output=True, text=True, env=env,
                              timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
        assert "isa avx512bf16 (bf16 on %s)" % ("AMX tiles" if name == "test_cpu_attn" else "vdpbf16ps") \
            in proc.stdout, proc.stdout[-2000:]
        if name == "test_cpu_attn":
            assert "isa avx512\n" in proc.stdout, proc.stdout[-2000:]


def test_env_var_picks_the_isa():
    """COMFY_SPARSE_ATTN_CPU_ISA, read once per process, in a fresh process."""
    code = "from comfy_sparse_attn import _C; print(_C.cpu_isa())"
    env = dict(os.environ, COMFY_SPARSE_ATTN_CPU_ISA="scalar")
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got == "scalar"
    env["COMFY_SPARSE_ATTN_CPU_ISA"] = "no-such-isa"
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert got in ISAS and got != "no-such-isa"


def test_isa_force_auto_returns_to_the_automatic_choice():
    auto = _C.cpu_isa()
    _C.cpu_isa_force("scalar")
    try:
        assert _C.cpu_isa() == "scalar"
    finally:
        _C.cpu_isa_force("auto")
    assert _C.cpu_isa() == auto
    with pytest.raises(ValueError, match="unknown CPU ISA"):
        _C.cpu_isa_force("sse9")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_bench_peers_run_torch_flash_kernel(dtype):
    """bench/bench_cpu.py's per-sequence and dense-mask torch peers take SDPA's
    flash kernel (not the math fallback a 3-D call takes), with GQA, and are
    right: the benchmark compares against torch at its best."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))
    try:
        import bench_cpu
    finally:
        sys.path.pop(0)
    g = torch.Generator().manual_seed(11)
    lq, lkv = [5, 37, 64], [9, 37, 50]
    q = rand(sum(lq), 4, 40, dtype=dtype, g=g)
    k, v = rand(sum(lkv), 2, 40, dtype=dtype, g=g), rand(sum(lkv), 2, 40, dtype=dtype, g=g)
    inputs = (q, k, v, cu(lq), cu(lkv), max(lq), max(lkv))
    ref, _ = reference(q, k, v, cu(lq), cu(lkv))
    for make in (bench_cpu.per_seq_fn, bench_cpu.dense_fn):
        fn = make(*inputs, 2)
        assert bench_cpu.peer_kernel(fn) == "flash", make.__name__
        assert rel_err(fn(), ref) < TOL[dtype], make.__name__
    # the check itself tells the two apart: a 3-D call takes the math kernel
    h3 = q.transpose(0, 1)[:, :5], k.transpose(0, 1)[:, :9], v.transpose(0, 1)[:, :9]
    fn3 = lambda: torch.nn.functional.scaled_dot_product_attention(*h3, enable_gqa=True)  # noqa: E731
    assert bench_cpu.peer_kernel(fn3) == "math"
