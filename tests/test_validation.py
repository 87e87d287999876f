"""The bad-input contract (docs/ARCHITECTURE.md): every bad input is refused in C, before any backend
runs, with an exception naming the argument; a caller's output is untouched."""
import math

import pytest
import torch

import comfy_sparse_attn as csa
from reference import cu_from_lengths, make_case


def good():
    return make_case([3, 5], [4, 6], h=4, hkv=2, d=8, dv=6)


def call(q, k, v, cq, ck, mq, mk, **kw):
    return csa.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, **kw)


BAD = {
    "q rank": (lambda a: (a[0][0],) + a[1:], ValueError, "q must have 3 dimensions"),
    "k rank": (lambda a: (a[0], a[1][None]) + a[2:], ValueError, "k must have 3 dimensions"),
    "dtype mismatch": (lambda a: (a[0], a[1].half()) + a[2:], TypeError, "share one dtype"),
    "int dtype": (lambda a: (a[0].long(),) + a[1:], TypeError, "q must be float32"),
    "float64": (lambda a: (a[0].double(), a[1].double(), a[2].double()) + a[3:], TypeError,
                "q must be float32, float16 or bfloat16"),
    "gqa heads": (lambda a: (torch.randn(8, 3, 8),) + a[1:], ValueError, "H % H_kv"),
    "head dim": (lambda a: (torch.randn(8, 4, 7),) + a[1:], ValueError, "k must be [T_kv, H_kv, D]"),
    "v rows": (lambda a: (a[0], a[1], a[2][:-1]) + a[3:], ValueError, "v must be [T_kv, H_kv, D_v]"),
    "cu lengths differ": (lambda a: a[:3] + (cu_from_lengths([3, 5, 0]),) + a[4:], ValueError,
                          "same length B+1"),
    "cu[0] != 0": (lambda a: a[:3] + (torch.tensor([1, 3, 8], dtype=torch.int32),) + a[4:],
                   ValueError, "cu_seqlens_q[0] must be 0"),
    "cu[-1] != T": (lambda a: a[:4] + (torch.tensor([0, 4, 9], dtype=torch.int32),) + a[5:],
                    ValueError, "cu_seqlens_kv[-1] must equal"),
    "decreasing": (lambda a: a[:3] + (torch.tensor([0, 6, 8, 8], dtype=torch.int32),
                                      torch.tensor([0, 4, 10, 10], dtype=torch.int32)) + a[5:],
                   ValueError, None),
    "decreasing inner": (lambda a: a[:3] + (torch.tensor([0, 5, 3, 8], dtype=torch.int32),
                                            torch.tensor([0, 4, 4, 10], dtype=torch.int32), 8, 8),
                         ValueError, "non-decreasing"),
    "cu int64": (lambda a: a[:3] + (a[3].long(),) + a[4:], TypeError, "cu_seqlens_q must be int32"),
    "cu 2-D": (lambda a: a[:3] + (a[3][None],) + a[4:], ValueError, "1-D"),
    "max_seqlen_q small": (lambda a: a[:5] + (4, a[6]), ValueError, "max_seqlen_q"),
    "max_seqlen_kv small": (lambda a: a[:6] + (5,), ValueError, "max_seqlen_kv"),
    "last dim stride": (lambda a: (torch.randn(8, 4, 16)[:, :, ::2],) + a[1:], ValueError,
                        "contiguous in its last dimension"),
    "not a tensor": (lambda a: ([[1.0]],) + a[1:], TypeError, "q must be a tensor"),
}


@pytest.mark.parametrize("backend", ["sdpa", "native", None])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_is_refused_before_any_backend(case, backend):
    mutate, exc, text = BAD[case]
    args = mutate(good())
    out = torch.full((8, 4, 6), math.nan)
    with pytest.raises(exc) as info:
        call(*args, backend=backend, out=out)
    if text:
        assert text in str(info.value)
    assert torch.isnan(out).all(), "a refused call wrote into the caller's output"


def test_bad_out_tensor():
    q, k, v, cq, ck, mq, mk = good()
    with pytest.raises(ValueError, match="out must be"):
        call(q, k, v, cq, ck, mq, mk, out=torch.empty(8, 4, 5))
    with pytest.raises(TypeError, match="out must have q's dtype"):
        call(q, k, v, cq, ck, mq, mk, out=torch.empty(8, 4, 6, dtype=torch.float16))
    with pytest.raises(ValueError, match="overlapping"):
        call(q, k, v, cq, ck, mq, mk, out=torch.empty(1, 1, 6).expand(8, 4, 6))


def test_bad_scale():
    with pytest.raises(ValueError, match="softmax_scale"):
        call(*good(), softmax_scale=-1.0)
    with pytest.raises(ValueError, match="softmax_scale"):
        call(*good(), softmax_scale=float("nan"))


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        call(*good(), backend="nope")


def test_valid_edge_cases_pass_validation():
    from comfy_sparse_attn import _native

    # B = 0
    q = torch.empty(0, 2, 8)
    z = torch.zeros(1, dtype=torch.int32)
    _native.validate(q, q, q, z, z, 0, 0)
    # zero-length sequences anywhere, max_seqlen larger than needed
    q, k, v, cq, ck, mq, mk = make_case([0, 3, 0, 2], [2, 0, 0, 5], d=8)
    _native.validate(q, k, v, cq, ck, mq + 10, mk + 10)


def test_status_table_maps_every_code():
    from comfy_sparse_attn import _C

    table = _C.status_table()
    assert table[0][0] == "CSA_OK"
    codes = sorted(table)
    assert codes == list(range(codes[0], 1)), "status codes must be contiguous"
    assert all(name.startswith("CSA_") and msg for name, msg, _ in table.values())


def test_status_exceptions_come_from_the_binding():
    """csa.h speaks C only; the binding maps each status to its exception."""
    from comfy_sparse_attn import _C

    table = _C.status_table()
    by_name = {name: exc for name, _, exc in table.values()}
    assert by_name["CSA_EDTYPE"] is TypeError
    assert by_name["CSA_ECUSEQ"] is ValueError
    assert by_name["CSA_ENOMEM"] is MemoryError
    assert by_name["CSA_ENOTSUP"] is NotImplementedError
    assert by_name["CSA_EPERM"] is PermissionError
    assert _C.STATUS == {name: code for code, (name, _, _) in table.items()}
    import os

    header = open(os.path.join(os.path.dirname(__file__), "..", "include", "csa", "csa.h")).read()
    for word in ("ValueError", "TypeError", "RuntimeError", "Python exception"):
        assert word not in header, "csa.h names %s" % word
