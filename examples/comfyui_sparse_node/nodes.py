"""The "Sparse attention check" node: one varlen attention call, checked and reported.

Inputs describe a packed batch (sequence lengths, heads, head dim, dtype, causal, device)
and the backend to ask for ("auto" lets comfy-sparse-attn choose).  The node draws
random q/k/v from ``seed``, runs the call through ``comfy.sparse`` (staged by this
package), and returns a one-line report: the backend that ran, the relative error
``||out - ref|| / ||ref||`` against a float64 reference, and whether it is within the
tolerance of the dtype.  Bad input (unequal length lists, H not a multiple of H_kv, ...)
raises, and ComfyUI reports the error for this prompt; the server keeps running.
"""
import math

import torch

import comfy.sparse
from comfy_sparse_attn import get_varlen_backend

BACKENDS = ["auto", "native", "sdpa", "sage2", "flash", "xformers"]
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "bfloat16": 1e-2}
LOSSY_TOLERANCE = 5e-2  # sage2 quantizes Q.K^T to int8


def parse_lengths(text, name):
    """"16, 160, 0" -> [16, 160, 0]; raises ValueError naming the input otherwise."""
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ValueError("%s: expected comma-separated whole numbers, got %r"
                         % (name, text)) from None
    if any(n < 0 for n in values):
        raise ValueError("%s: lengths cannot be negative, got %r" % (name, text))
    return values


def reference(q, k, v, q_lengths, kv_lengths, causal):
    """float64 attention, one sequence at a time; GQA by h // (H / H_kv); causal is
    bottom-right aligned (row i sees keys j <= i + L_kv - L_q); a row without keys is 0."""
    q64, k64, v64 = q.double().cpu(), k.double().cpu(), v.double().cpu()
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=torch.float64)
    rep = q.shape[1] // k.shape[1]
    a = b = 0
    for lq, lk in zip(q_lengths, kv_lengths):
        if lq and lk:
            qs = q64[a:a + lq].transpose(0, 1)
            ks = k64[b:b + lk].transpose(0, 1).repeat_interleave(rep, 0)
            vs = v64[b:b + lk].transpose(0, 1).repeat_interleave(rep, 0)
            scores = qs @ ks.transpose(1, 2) / math.sqrt(q.shape[2])
            if causal:
                seen = torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + (lk - lq)
                scores = scores.masked_fill(~seen, -math.inf)
            p = torch.softmax(scores, -1).nan_to_num(0.0)
            out[a:a + lq] = (p @ vs).transpose(0, 1)
        a += lq
        b += lk
    return out


class SparseAttentionCheck:
    CATEGORY = "sparse attention"
    FUNCTION = "run"
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("report",)
    OUTPUT_NODE = True
    DESCRIPTION = "Runs varlen attention on a packed batch; reports the backend and its error."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "q_lengths": ("STRING", {"default": "16, 160, 77, 0, 33",
                                     "tooltip": "query sequence lengths, comma-separated"}),
            "kv_lengths": ("STRING", {"default": "",
                                      "tooltip": "key/value lengths (empty: same as q)"}),
            "heads": ("INT", {"default": 8, "min": 1, "max": 128}),
            "kv_heads": ("INT", {"default": 8, "min": 1, "max": 128,
                                 "tooltip": "heads must be a multiple of kv_heads (GQA)"}),
            "head_dim": ("INT", {"default": 64, "min": 1, "max": 512}),
            "dtype": (list(DTYPES), {"default": "float32"}),
            "causal": ("BOOLEAN", {"default": False}),
            "backend": (BACKENDS, {"default": "auto"}),
            "device": (["auto", "cpu", "cuda"], {"default": "auto"}),
            "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1}),
        }}

    def run(self, q_lengths, kv_lengths, heads, kv_heads, head_dim, dtype, causal, backend,
            device, seed):
        lq = parse_lengths(q_lengths, "q_lengths")
        lk = parse_lengths(kv_lengths, "kv_lengths") if kv_lengths.strip() else list(lq)
        if len(lq) != len(lk):
            raise ValueError("q_lengths has %d sequences but kv_lengths has %d"
                             % (len(lq), len(lk)))
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        g = torch.Generator().manual_seed(seed)
        q = torch.randn(sum(lq), heads, head_dim, generator=g)
        k = torch.randn(sum(lk), kv_heads, head_dim, generator=g)
        v = torch.randn(sum(lk), kv_heads, head_dim, generator=g)
        q, k, v = (t.to(device=device, dtype=DTYPES[dtype]) for t in (q, k, v))
        out = comfy.sparse.varlen_attention(q, k, v, lq, lk, causal=causal,
                                            backend=None if backend == "auto" else backend)
        chosen = get_varlen_backend().backend
        ref = reference(q, k, v, lq, lk, causal)
        err = (out.double().cpu() - ref).norm().item() / max(ref.norm().item(), 1e-300)
        tol = LOSSY_TOLERANCE if chosen == "sage2" else TOLERANCE[dtype]
        verdict = "ok" if err < tol else "FAIL"
        report = ("backend=%s rel_err=%.3e tolerance=%.0e %s (%d sequences, %d tokens, H %d/%d, "
                  "D %d, %s, causal=%s, %s)" % (chosen, err, tol, verdict, len(lq), sum(lq), heads,
                                               kv_heads, head_dim, dtype, causal, device))
        return {"ui": {"text": [report]}, "result": (report,)}


NODE_CLASS_MAPPINGS = {"SparseAttentionCheck": SparseAttentionCheck}
NODE_DISPLAY_NAME_MAPPINGS = {"SparseAttentionCheck": "Sparse attention check"}
