"""The torch tier ("sdpa"): torch's own varlen kernels, or per-sequence SDPA.

Which torch path runs is chosen by shape (``choose``), from the H200 numbers
in /work/shared/bench/README.md (torch 2.11): per-sequence SDPA (cuDNN) is
1.3-1.7x faster than the FA2 varlen op for a few long sequences; the FA2
varlen op wins for many medium sequences; the memory-efficient varlen op wins
for thousands of tiny ones (2.2 ms vs 4.2 ms for 20000 sequences of 8-64).
On CPU only per-sequence SDPA exists.

Per-sequence torch SDPA: the path that works wherever torch does.

Each packed sequence becomes one ``F.scaled_dot_product_attention`` call on
views of the packed tensors, so memory stays O(T): no ``[T_q, T_kv]`` mask is
ever built.  Causal with ``L_q != L_kv`` is bottom-right aligned (query row i
sees key j iff j <= i + L_kv - L_q); SDPA's own ``is_causal`` is top-left, so
that case runs in query chunks with a boolean mask of at most
``_CHUNK x L_kv`` per chunk.
"""
from __future__ import annotations

_CHUNK = 1024


def _sdpa_kwargs_support():
    import inspect

    import torch.nn.functional as F

    try:
        params = inspect.signature(F.scaled_dot_product_attention).parameters
        return "enable_gqa" in params
    except (TypeError, ValueError):  # builtins without a signature: try it
        return True


_HAS_GQA = None


def _attend(qh, kh, vh, scale, mask=None, is_causal=False):
    """qh [1, H, Lq, D], kh/vh [1, H_kv, Lk, D]: SDPA with GQA handled.

    Always 4-D: torch's flash and cuDNN SDPA kernels take only 4-D inputs and
    3-D ones silently fall back to the math kernel (measured on H200: 20x
    slower, with a dense [H, Lq, Lk] score matrix)."""
    import torch.nn.functional as F

    global _HAS_GQA
    rep = qh.shape[1] // kh.shape[1]
    if rep > 1:
        if _HAS_GQA is None:
            _HAS_GQA = _sdpa_kwargs_support()
        if _HAS_GQA:
            return F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, is_causal=is_causal,
                                                  scale=scale, enable_gqa=True)
        kh = kh.repeat_interleave(rep, 1)
        vh = vh.repeat_interleave(rep, 1)
    return F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, is_causal=is_causal,
                                          scale=scale)


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
                     softmax_scale=None, causal=False, out=None, host_q=None, host_kv=None):
    """Per-sequence SDPA.  host_q / host_kv: the cu_seqlens values as lists (or
    CPU tensors) when the caller already has them (saves a device-to-host copy)."""
    import torch

    # scale None = SDPA's own default 1/sqrt(D): the call then matches the
    # plain per-sequence SDPA peer exactly, which picks its fastest kernel by
    # itself (H200, torch 2.11, 2026-11-26: default 0.565 ms on cross-img vs
    # 0.747 ms, the flash kernel's time, under our forced cuDNN-first priority list).
    scale = float(softmax_scale) if softmax_scale else None
    if out is None:
        out = torch.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype, device=q.device)
    cq = _as_list(host_q if host_q is not None else cu_seqlens_q)
    ck = _as_list(host_kv if host_kv is not None else cu_seqlens_kv)
    return _per_sequence(q, k, v, cq, ck, scale, causal, out)


def _as_list(cu):
    return cu if isinstance(cu, list) else cu.tolist()


def _per_sequence(q, k, v, cq, ck, scale, causal, out):
    import torch

    for i in range(len(cq) - 1):
        a, b, c, e = cq[i], cq[i + 1], ck[i], ck[i + 1]
        lq, lk = b - a, e - c
        if lq == 0:
            continue
        if lk == 0:
            out[a:b].zero_()
            continue
        qh = q[a:b].transpose(0, 1)[None]
        kh = k[c:e].transpose(0, 1)[None]
        vh = v[c:e].transpose(0, 1)[None]
        if not causal or lq == lk:
            o = _attend(qh, kh, vh, scale, is_causal=bool(causal))
            out[a:b] = o[0].transpose(0, 1)
            continue
        # Bottom-right causal: row r sees keys [0, r + off]; rows with
        # r + off < 0 see nothing and output zeros.
        off = lk - lq
        first = max(0, -off)
        if first > 0:
            out[a:a + min(first, lq)].zero_()
        for r0 in range(first, lq, _CHUNK):
            r1 = min(lq, r0 + _CHUNK)
            kmax = r1 - 1 + off + 1  # keys visible to the chunk's last row
            rows = torch.arange(r0, r1, device=q.device)[:, None]
            cols = torch.arange(kmax, device=q.device)[None, :]
            mask = cols <= rows + off
            o = _attend(qh[:, :, r0:r1], kh[:, :, :kmax], vh[:, :, :kmax], scale, mask=mask)
            out[a + r0:a + r1] = o[0].transpose(0, 1)
    return out


# ---------------------------------------------------------------------------
# torch's varlen kernels (CUDA) and the shape rule that picks among them.
# ---------------------------------------------------------------------------
_FEW_SEQS = 8      # at most this many sequences: per-sequence SDPA (cuDNN)
_TINY_SEQ = 64     # max_seqlen_q at most this: the mem-efficient varlen op


_sm_majors = {}


def _sm_major(device):
    major = _sm_majors.get(device.index)
    if major is None:
        import torch

        major = _sm_majors[device.index] = torch.cuda.get_device_capability(device)[0]
    return major


def choose(q, k, v, cu_seqlens_q, max_seqlen_q, causal, lengths_equal):
    """Which torch path runs this call: "per-seq", "fa2-varlen" or "memeff-varlen".

    Decided from shapes only (no device sync).  The varlen ops need H == H_kv
    here; the FA2 op needs fp16/bf16, D == D_v, D % 8 == 0, D <= 256 and
    SM >= 8.0; causal goes to a varlen op only when every L_q == L_kv is
    known (bottom-right alignment of torch's ops is not relied on).
    """
    import torch

    if q.device.type != "cuda" or q.shape[1] != k.shape[1] or (causal and not lengths_equal):
        return "per-seq"
    batch = cu_seqlens_q.shape[0] - 1
    d, dv = q.shape[2], v.shape[2]
    halves = q.dtype in (torch.float16, torch.bfloat16)
    fa2_ok = halves and d == dv and d % 8 == 0 and d <= 256 and _sm_major(q.device) >= 8
    if batch <= _FEW_SEQS and fa2_ok and not torch.cuda.is_current_stream_capturing():
        return "per-seq"  # (it reads the lengths on the host: not while capturing a graph)
    if max_seqlen_q <= _TINY_SEQ or not fa2_ok:
        return "memeff-varlen"
    return "fa2-varlen"


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, host_q=None, host_kv=None, lengths_equal=False, path=None,
        **_):
    """The torch tier: path from ``choose`` unless given."""
    import torch

    path = path or choose(q, k, v, cu_seqlens_q, max_seqlen_q, causal, lengths_equal)
    if path == "per-seq":
        return varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                                softmax_scale=softmax_scale, causal=causal, out=out,
                                host_q=host_q, host_kv=host_kv)
    scale = float(softmax_scale) if softmax_scale else None
    if path == "fa2-varlen":
        res = torch.ops.aten._flash_attention_forward(
            q, k, v, cu_seqlens_q, cu_seqlens_kv, int(max_seqlen_q), int(max_seqlen_kv), 0.0,
            bool(causal), False, scale=scale)[0]
    elif path == "memeff-varlen":
        res = torch.ops.aten._efficient_attention_forward(
            q[None], k[None], v[None], None, cu_seqlens_q, cu_seqlens_kv, int(max_seqlen_q),
            int(max_seqlen_kv), 0.0, 2 if causal else 0, False, scale=scale)[0][0]
    else:
        raise ValueError("unknown torch path %r" % (path,))
    if out is None:
        return res
    out.copy_(res)
    return out
