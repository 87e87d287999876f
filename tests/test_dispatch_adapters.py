"""Argument mapping of the library adapters, on CPU, against stand-in modules
that implement each library's documented call signature with the float64
reference.  They pin what the adapters pass (keyword-only for flash, the
bias class for xformers, smooth_k / is_causal for sage) and that the caller's
tensors are not modified.  The real libraries run in tests/test_dispatch_gpu.py
wherever they install (bench/RESULTS.md says which did)."""
import math
import sys
import types

import pytest
import torch

from comfy_sparse_attn.backends import flash, sage2, xformers
from reference import TOL, make_case, reference, rel_err


def _ref_out(q, k, v, cq, ck, scale=None, causal=False):
    out, lse = reference(q, k, v, cq, ck, softmax_scale=scale, causal=causal)
    return out.to(q.dtype), lse.float()


@pytest.fixture
def fake_flash(monkeypatch):
    calls = []

    def flash_attn_varlen_func(*, q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                               softmax_scale=None, causal=False, return_attn_probs=False):
        # keyword-only on purpose: FA4's positional order differs from FA2's
        assert q.dtype in (torch.float16, torch.bfloat16), "flash takes fp16/bf16 only"
        calls.append(dict(scale=softmax_scale, causal=causal, lse=return_attn_probs,
                          max_q=max_seqlen_q, max_k=max_seqlen_k))
        out, lse = _ref_out(q, k, v, cu_seqlens_q, cu_seqlens_k, softmax_scale, causal)
        return (out, lse, None) if return_attn_probs else out

    mod = types.ModuleType("flash_attn")
    mod.flash_attn_varlen_func = flash_attn_varlen_func
    mod.__version__ = "2.99-fake"
    monkeypatch.setitem(sys.modules, "flash_attn", mod)
    monkeypatch.setitem(sys.modules, "flash_attn_interface", None)  # no FA3
    monkeypatch.setattr(flash, "_fa2", None)
    monkeypatch.setattr(flash, "_fa3", None)
    return calls


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("causal", [False, True])
def test_flash_mapping(fake_flash, dtype, causal):
    assert "flash_attn 2.99-fake" in flash.load()
    q, k, v, cq, ck, mq, mk = make_case([5, 9, 3], [7, 9, 1], h=4, hkv=2, d=16, dtype=dtype)
    out = torch.full((q.shape[0], 4, 16), math.nan, dtype=dtype)
    res, lse = flash.run(q, k, v, cq, ck, mq, mk, softmax_scale=0.3, causal=causal, out=out,
                         return_lse=True)
    assert res is out and res.dtype == dtype
    ref, ref_lse = reference(q, k, v, cq, ck, softmax_scale=0.3, causal=causal)
    # fp32 runs as bf16 and is cast back (documented): bf16's tolerance
    assert rel_err(out, ref) < (TOL[torch.bfloat16] if dtype == torch.float32 else TOL[dtype])
    assert lse.dtype == torch.float32 and lse.shape == (4, q.shape[0])
    assert fake_flash[-1] == dict(scale=0.3, causal=causal, lse=True, max_q=mq, max_k=mk)
    assert flash.run(q, k, v, cq, ck, mq, mk).dtype == dtype  # out=None, no lse


def test_flash_prefers_fa3_on_hopper_only(monkeypatch, fake_flash):
    used = []
    fa3 = types.ModuleType("flash_attn_interface")

    def fa3_fn(**kw):
        used.append("fa3")
        return sys.modules["flash_attn"].flash_attn_varlen_func(**kw), None

    fa3.flash_attn_varlen_func = fa3_fn
    monkeypatch.setitem(sys.modules, "flash_attn_interface", fa3)
    assert "FA3" in flash.load()
    q, k, v, cq, ck, mq, mk = make_case([5, 3], d=16, dtype=torch.float16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: (9, 0))
    flash.run(q, k, v, cq, ck, mq, mk)
    assert used == ["fa3"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: (8, 6))
    flash.run(q, k, v, cq, ck, mq, mk)
    assert used == ["fa3"], "FA2 must run on non-Hopper devices when both are present"


@pytest.fixture
def fake_sage(monkeypatch):
    calls = []
    mod = types.ModuleType("sageattention")

    def sageattn_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                        is_causal=False, sm_scale=None, smooth_k=True, **kwargs):
        calls.append(dict(causal=is_causal, scale=sm_scale, smooth_k=smooth_k))
        if smooth_k:
            k -= k.mean(dim=0, keepdim=True)  # what the real one does: in place
        return _ref_out(q, k, v, cu_seqlens_q, cu_seqlens_k, sm_scale, is_causal)[0]

    mod.sageattn_varlen = sageattn_varlen
    monkeypatch.setitem(sys.modules, "sageattention", mod)
    monkeypatch.setattr(sage2, "_fn", None)
    return calls


@pytest.mark.parametrize("causal", [False, True])
def test_sage_mapping_leaves_k_alone(fake_sage, causal):
    sage2.load()
    q, k, v, cq, ck, mq, mk = make_case([6, 11], h=4, hkv=2, d=64)
    k_before = k.clone()
    out = torch.full_like(q, math.nan)
    res = sage2.run(q, k, v, cq, ck, mq, mk, causal=causal, softmax_scale=0.2, out=out)
    assert res is out
    assert torch.equal(k, k_before), "the caller's k was modified"
    assert fake_sage[-1] == dict(causal=causal, scale=0.2, smooth_k=False)
    # subtracting the mean key is exact for softmax: same result as unsmoothed
    ref, _ = reference(q, k, v, cq, ck, softmax_scale=0.2, causal=causal)
    assert rel_err(out, ref) < 1e-5


@pytest.fixture
def fake_xformers(monkeypatch):
    seen = {}

    class BlockDiagonalMask:
        causal = False

        def __init__(self, q_seqlen, kv_seqlen):
            self.q_seqlen, self.kv_seqlen = q_seqlen, kv_seqlen

        @classmethod
        def from_seqlens(cls, q_seqlen, kv_seqlen=None):
            return cls(list(q_seqlen), list(kv_seqlen))

    class BlockDiagonalCausalFromBottomRightMask(BlockDiagonalMask):
        causal = True

    def memory_efficient_attention(q, k, v, attn_bias=None, scale=None):
        seen["ndim"] = q.dim()
        seen["bias"] = type(attn_bias).__name__
        five = q.dim() == 5
        if five:  # [1, T, G, R, D] -> [T, G*R, D]
            assert k.stride(3) == 0, "k must be an expanded view, not a copy"
            q3 = q[0].reshape(q.shape[1], -1, q.shape[4])
            k3 = k[0].reshape(k.shape[1], -1, k.shape[4])
            v3 = v[0].reshape(v.shape[1], -1, v.shape[4])
        else:
            q3, k3, v3 = q[0], k[0], v[0]
        cu = lambda ls: torch.tensor([0] + ls).cumsum(0).to(torch.int32)  # noqa: E731
        out, _ = _ref_out(q3, k3, v3, cu(attn_bias.q_seqlen), cu(attn_bias.kv_seqlen), scale,
                          attn_bias.causal)
        if five:
            return out.reshape(1, q.shape[1], q.shape[2], q.shape[3], -1)
        return out[None]

    fmha = types.ModuleType("xformers.ops.fmha")
    fmha.attn_bias = types.SimpleNamespace(
        BlockDiagonalMask=BlockDiagonalMask,
        BlockDiagonalCausalFromBottomRightMask=BlockDiagonalCausalFromBottomRightMask)
    fmha.memory_efficient_attention = memory_efficient_attention
    ops = types.ModuleType("xformers.ops")
    ops.fmha = fmha
    xf = types.ModuleType("xformers")
    xf.ops = ops
    xf.__version__ = "0.0-fake"
    monkeypatch.setitem(sys.modules, "xformers", xf)
    monkeypatch.setitem(sys.modules, "xformers.ops", ops)
    monkeypatch.setitem(sys.modules, "xformers.ops.fmha", fmha)
    monkeypatch.setattr(xformers, "_fmha", None)
    return seen


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("hkv", [4, 2, 1])
def test_xformers_mapping(fake_xformers, causal, hkv):
    assert xformers.load() == "0.0-fake"
    q, k, v, cq, ck, mq, mk = make_case([5, 0, 9], [7, 3, 9], h=4, hkv=hkv, d=16, dv=8)
    out = torch.full((q.shape[0], 4, 8), math.nan)
    res = xformers.run(q, k, v, cq, ck, mq, mk, causal=causal, out=out, host_q=cq.tolist(),
                       host_kv=ck)
    assert res is out
    assert fake_xformers["bias"] == ("BlockDiagonalCausalFromBottomRightMask" if causal
                                     else "BlockDiagonalMask")
    assert fake_xformers["ndim"] == (3 + 1 if hkv == 4 else 5)
    ref, _ = reference(q, k, v, cq, ck, causal=causal)
    assert rel_err(out, ref) < 1e-5
