"""The per-sequence SDPA tier against the float64 reference, and its memory bound."""
import math

import pytest
import torch

import comfy_sparse_attn as csa
from reference import CPU_CASES, TOL, build_case, case_seed, make_case, reference, rel_err

# every shared case but the 1500-sequence one (per-sequence SDPA on CPU: one call each)
CASES = {name: spec for name, spec in CPU_CASES.items() if name != "many tiny"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_sdpa_matches_reference(name, causal, dtype):
    q, k, v, cq, ck, mq, mk = build_case(CASES, name, dtype=dtype,
                                         seed=case_seed(name, causal, str(dtype)))
    out = torch.full((q.shape[0], q.shape[1], v.shape[2]), math.nan, dtype=dtype)
    res = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal, backend="sdpa",
                                        out=out)
    assert res.data_ptr() == out.data_ptr()
    ref, _ = reference(q, k, v, cq, ck, causal=causal)
    assert rel_err(out, ref) < TOL[dtype]


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_row_chunks(monkeypatch, causal):
    """Rows cut into chunks of 3 (bottom-right causal over key prefixes)."""
    from comfy_sparse_attn.backends import sdpa

    monkeypatch.setattr(sdpa, "_TEMP_MIN_BYTES", 0)
    monkeypatch.setattr(sdpa, "_rows_per_chunk", lambda out: 3)
    q, k, v, cq, ck, mq, mk = make_case([10, 2, 7, 9], [4, 9, 7, 9], d=16, h=4, hkv=2)
    out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal, backend="sdpa")
    ref, _ = reference(q, k, v, cq, ck, causal=causal)
    assert rel_err(out, ref) < 1e-5
    if causal:  # rows of sequence 0 that see no key (i + 4 - 10 < 0) are exactly zero
        assert (out[:6] == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_temporaries_stay_within_the_memory_bound(monkeypatch, causal):
    """SDPA has no out=: each per-sequence result is a temporary copied into
    the output.  None may exceed 5 % of the output (peak extra <= 1.05x);
    it used to be a whole sequence's output (2x for one long sequence)."""
    from comfy_sparse_attn.backends import sdpa

    monkeypatch.setattr(sdpa, "_TEMP_MIN_BYTES", 0)
    sizes = []
    real = sdpa._attend

    def spy(*a, **kw):
        o = real(*a, **kw)
        sizes.append(o.numel() * o.element_size())
        return o

    monkeypatch.setattr(sdpa, "_attend", spy)
    q, k, v, cq, ck, mq, mk = make_case([700, 300], d=16, h=2)
    out = torch.full((q.shape[0], q.shape[1], v.shape[2]), math.nan)
    csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, causal=causal, backend="sdpa", out=out)
    ref, _ = reference(q, k, v, cq, ck, causal=causal)
    assert rel_err(out, ref) < 1e-5
    assert max(sizes) <= 0.05 * out.numel() * out.element_size()


def test_sdpa_custom_scale():
    q, k, v, cq, ck, mq, mk = make_case([8, 5], d=32)
    out = csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, softmax_scale=0.3, backend="sdpa")
    ref, _ = reference(q, k, v, cq, ck, softmax_scale=0.3)
    assert rel_err(out, ref) < 1e-5


def test_sdpa_declines_lse():
    with pytest.raises(csa.NoCapableBackendError, match="sdpa"):
        csa.dispatch_varlen_attention(*make_case([3], d=8), return_lse=True, backend="sdpa")
