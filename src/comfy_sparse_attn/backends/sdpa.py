"""The torch tier ("sdpa"): torch's own varlen kernels, or per-sequence SDPA.

Which torch path runs is chosen by shape (``choose``): per-sequence SDPA
(cuDNN / flash) for a few long sequences; the FA2 varlen op for many medium
sequences; the memory-efficient varlen op for thousands of tiny ones (the
measurements behind the thresholds are in bench/RESULTS.md).  Anywhere other
than an NVIDIA GPU (CPU, ROCm, mps, xpu, ...) per-sequence SDPA runs: it
works wherever torch does.

Per-sequence SDPA: each packed sequence becomes ``F.scaled_dot_product_attention``
calls on views of the packed tensors, so memory stays O(T): no ``[T_q, T_kv]``
mask is ever built.  SDPA has no ``out=`` argument, so its result is a
temporary that is copied into the output: the query rows are cut into chunks
whose temporary is at most ``_TEMP_FRACTION`` of the output, which bounds the
peak extra memory to that fraction.  Causal masks are bottom-right aligned
(query row i sees key j iff j <= i + L_kv - L_q): a chunk of rows [r0, r1)
sees the key prefix [0, r1 + L_kv - L_q), and on that prefix the mask is
exactly torch's lower-right causal bias, which its kernels apply without a
dense mask.
"""
from __future__ import annotations

from . import Declined

# A per-sequence temporary is at most this fraction of the output (or
# _TEMP_MIN_BYTES, so that small calls are not cut into tiny launches).
_TEMP_FRACTION = 0.05
_TEMP_MIN_BYTES = 1 << 18


def load():
    """torch is the library here; returns its version."""
    import torch

    return "torch " + torch.__version__


def _sdpa_kwargs_support():
    import inspect

    import torch.nn.functional as F

    try:
        params = inspect.signature(F.scaled_dot_product_attention).parameters
        return "enable_gqa" in params
    except (TypeError, ValueError):  # builtins without a signature: try it
        return True


_HAS_GQA = None
_lower_right = None


def _causal_bias(lq, lk):
    """torch's lower-right causal bias (no dense mask), or None if too old."""
    global _lower_right
    if _lower_right is None:
        try:
            from torch.nn.attention.bias import causal_lower_right
        except ImportError:
            causal_lower_right = False
        _lower_right = causal_lower_right
    return _lower_right(lq, lk) if _lower_right else None


def _attend(qh, kh, vh, scale, mask=None, is_causal=False):
    """qh [1, H, Lq, D], kh/vh [1, H_kv, Lk, D]: SDPA with GQA handled.

    Always 4-D: torch's flash and cuDNN SDPA kernels take only 4-D inputs and
    3-D ones silently fall back to the math kernel (a dense [H, Lq, Lk]
    score matrix)."""
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


def _host_values(cu, host, host_lengths, which):
    """cu_seqlens values as a list: given, from a CPU tensor, or one copy."""
    if host is not None:
        return host if isinstance(host, list) else host.tolist()
    if cu.device.type == "cpu":
        return cu.tolist()
    if host_lengths is not None:
        return host_lengths()[which]
    import torch

    if cu.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        raise Declined("per-sequence SDPA needs the lengths on the host, which cannot be read "
                       "while a CUDA graph is captured (pass cu_seqlens on the CPU)")
    return cu.tolist()


def varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *,
                     softmax_scale=None, causal=False, out=None, host_q=None, host_kv=None,
                     host_lengths=None):
    """Per-sequence SDPA.  host_q / host_kv: the cu_seqlens values as lists (or
    CPU tensors) when the caller already has them; host_lengths: a callable
    giving both (one device-to-host copy) otherwise."""
    import torch

    # scale None = SDPA's own default 1/sqrt(D): the call then matches the
    # plain per-sequence SDPA peer exactly, which picks its fastest kernel.
    scale = float(softmax_scale) if softmax_scale else None
    cq = _host_values(cu_seqlens_q, host_q, host_lengths, 0)
    ck = _host_values(cu_seqlens_kv, host_kv, host_lengths, 1)
    if out is None:
        whole = _whole_sequence(q, k, v, cq, ck, scale, causal)
        if whole is not None:
            return whole
        out = torch.empty((q.shape[0], q.shape[1], v.shape[2]), dtype=q.dtype, device=q.device)
    return _per_sequence(q, k, v, cq, ck, scale, causal, out)


def _whole_sequence(q, k, v, cq, ck, scale, causal):
    """One sequence spanning every row: SDPA's own result is the output (no
    copy) when its memory is already [T, H, D_v] row-major, as the GPU
    kernels lay it out.  None otherwise."""
    if len(cq) != 2 or q.device.type == "cpu":
        return None
    lq, lk = cq[1] - cq[0], ck[1] - ck[0]
    if lq != q.shape[0] or lk == 0 or lk != k.shape[0] or (causal and lq != lk):
        return None
    o = _attend(q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None], scale,
                is_causal=bool(causal))[0].transpose(0, 1)
    return o if o.is_contiguous() else o.contiguous()


def _rows_per_chunk(out):
    """Query rows per SDPA call so that its temporary stays within budget."""
    row_bytes = max(1, out.shape[1] * out.shape[2] * out.element_size())
    budget = max(_TEMP_FRACTION * out.numel() * out.element_size(), _TEMP_MIN_BYTES)
    return max(1, int(budget // row_bytes))


def _per_sequence(q, k, v, cq, ck, scale, causal, out):
    step = _rows_per_chunk(out)
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
        if not causal:
            for r0 in range(0, lq, step):
                r1 = min(lq, r0 + step)
                out[a + r0:a + r1] = _attend(qh[:, :, r0:r1], kh, vh, scale)[0].transpose(0, 1)
            continue
        if lq == lk and lq <= step:
            out[a:b] = _attend(qh, kh, vh, scale, is_causal=True)[0].transpose(0, 1)
            continue
        # Bottom-right causal: row r sees keys [0, r + off]; rows with
        # r + off < 0 see nothing and output zeros.
        off = lk - lq
        first = max(0, -off)
        if first > 0:
            out[a:a + min(first, lq)].zero_()
        for r0 in range(first, lq, step):
            r1 = min(lq, r0 + step)
            kmax = r1 + off  # keys visible to the chunk's last row, plus one
            o = _attend_lower_right(qh[:, :, r0:r1], kh[:, :, :kmax], vh[:, :, :kmax], scale,
                                    r0 + off)
            out[a + r0:a + r1] = o[0].transpose(0, 1)
    return out


def _attend_lower_right(qh, kh, vh, scale, first_off):
    """Causal over a key prefix, bottom-right aligned (row i sees j <= i +
    first_off, with first_off = kmax - rows >= 0)."""
    import torch

    rows, kmax = qh.shape[2], kh.shape[2]
    bias = _causal_bias(rows, kmax)
    if bias is not None:
        return _attend(qh, kh, vh, scale, mask=bias)
    r = torch.arange(rows, device=qh.device)[:, None]
    cols = torch.arange(kmax, device=qh.device)[None, :]
    return _attend(qh, kh, vh, scale, mask=cols <= r + first_off)


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


def _nvidia(t):
    """Whether tensor t is on an NVIDIA GPU (CUDA, not ROCm)."""
    if not t.is_cuda:
        return False
    import torch

    return not getattr(torch.version, "hip", None)


def _capturing():
    import torch

    fn = getattr(torch._C, "_cuda_isCurrentStreamCapturing", None)
    return fn() if fn is not None else torch.cuda.is_current_stream_capturing()


def choose(q, k, v, cu_seqlens_q, max_seqlen_q, causal, lengths_equal):
    """Which torch path runs this call: "per-seq", "fa2-varlen" or "memeff-varlen".

    Decided from shapes only (no device sync).  The varlen ops need an NVIDIA
    GPU and H == H_kv here; the FA2 op needs fp16/bf16, D == D_v, D % 8 == 0,
    D <= 256 and SM >= 8.0; causal goes to a varlen op only when every
    L_q == L_kv is known (bottom-right alignment of torch's ops is not relied
    on).  Per-sequence SDPA needs the lengths on the host, so while a CUDA
    graph is captured it is taken only with host (CPU) cu_seqlens.
    """
    import torch

    if not _nvidia(q) or q.shape[1] != k.shape[1] or (causal and not lengths_equal):
        return "per-seq"
    batch = cu_seqlens_q.shape[0] - 1
    d, dv = q.shape[2], v.shape[2]
    halves = q.dtype in (torch.float16, torch.bfloat16)
    fa2_ok = halves and d == dv and d % 8 == 0 and d <= 256 and _sm_major(q.device) >= 8
    if batch <= _FEW_SEQS and fa2_ok and (not cu_seqlens_q.is_cuda or not _capturing()):
        return "per-seq"
    if max_seqlen_q <= _TINY_SEQ or not fa2_ok:
        return "memeff-varlen"
    return "fa2-varlen"


def needs_host_lengths(q, k, v, cu_seqlens_q, max_seqlen_q, causal, lengths_equal):
    return choose(q, k, v, cu_seqlens_q, max_seqlen_q, causal, lengths_equal) == "per-seq"


def run(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv, *, softmax_scale=None,
        causal=False, out=None, host_q=None, host_kv=None, host_lengths=None,
        lengths_equal=False, path=None, **_):
    """The torch tier: path from ``choose`` unless given.  The varlen ops have
    no ``out=`` argument: without ``out`` their result is returned as is; with
    it, copied in."""
    import torch

    path = path or choose(q, k, v, cu_seqlens_q, max_seqlen_q, causal, lengths_equal)
    if path == "per-seq":
        return varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_kv, max_seqlen_q, max_seqlen_kv,
                                softmax_scale=softmax_scale, causal=causal, out=out,
                                host_q=host_q, host_kv=host_kv, host_lengths=host_lengths)
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
