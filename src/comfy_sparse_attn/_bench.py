"""Timing of our backends and of the peers a user would call instead, on one device.

Used by ``python -m comfy_sparse_attn bench`` and by ``bench/gpu/peers.py``.  Every peer
is called the way it is fastest:

- per-sequence SDPA in 4-D (``[1, H, L, D]`` views; in 3-D torch takes its math path);
  the lengths are read on the host once, outside the timed call, as a caller that
  knows its batch would;
- nested (jagged) tensors, offsets made once;
- torch's FA2 varlen op and memory-efficient varlen op (CUDA);
- ``flash_attn.flash_attn_varlen_func``, ``xformers.ops.memory_efficient_attention`` with a
  ``BlockDiagonalMask`` made once, ``sageattention.sageattn_varlen`` when they import.

A peer that cannot take a call says why (a row, never a crash).  Timing: median of
``reps`` calls, each from an idle device (CUDA events around the call), after one warm-up.
"""
from __future__ import annotations

import importlib
import math
import sys
import time

# Per-sequence SDPA launches one kernel per sequence: past this many sequences a
# call is thousands of launches and the peer is reported as skipped, not timed.
PER_SEQ_LIMIT = 5000


def time_ms(torch, fn, device, reps, warm=False):
    """Median milliseconds of ``fn()`` over ``reps`` calls, after one warm-up call unless
    the caller has just made one (``warm``)."""
    if not warm:
        fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(reps):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
    else:
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def reference(torch, q, k, v, lq, lk):
    """float64 per-sequence attention, non-causal, GQA by h // (H / H_kv)."""
    q64, k64, v64 = q.double().cpu(), k.double().cpu(), v.double().cpu()
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[2], dtype=torch.float64)
    rep = q.shape[1] // k.shape[1]
    scale = 1.0 / math.sqrt(q.shape[2])
    a = b = 0
    for n_q, n_k in zip(lq, lk):
        if n_q and n_k:
            qs = q64[a:a + n_q].transpose(0, 1)
            ks = k64[b:b + n_k].transpose(0, 1).repeat_interleave(rep, 0)
            vs = v64[b:b + n_k].transpose(0, 1).repeat_interleave(rep, 0)
            p = torch.softmax(scale * qs @ ks.transpose(1, 2), -1)
            out[a:a + n_q] = (p @ vs).transpose(0, 1)
        a += n_q
        b += n_k
    return out


def rel_err(torch, out, ref):
    """||out - ref|| / ||ref|| in float64 (inf when out is not finite)."""
    o = out.double().to(ref.device)
    if not bool(torch.isfinite(o).all()):
        return math.inf
    denom = ref.norm().item()
    return (o - ref).norm().item() / denom if denom else o.norm().item()


# ---------------------------------------------------------------------------
# Peers.  Each: prepare(call) -> (fn, None) or (None, why not).  ``call`` holds the
# packed inputs and the host lengths.
# ---------------------------------------------------------------------------
class Call:
    """One packed batch: q/k/v, cu_seqlens, max lengths and host lengths."""

    def __init__(self, torch, q, k, v, cu_q, cu_kv, lq, lk):
        self.torch, self.q, self.k, self.v = torch, q, k, v
        self.cu_q, self.cu_kv, self.lq, self.lk = cu_q, cu_kv, lq, lk
        self.max_q, self.max_kv = max(lq, default=0), max(lk, default=0)
        self.halves = q.dtype in (torch.float16, torch.bfloat16)
        self.cuda = q.device.type == "cuda"
        self.gqa = q.shape[1] != k.shape[1]


def _sm(torch, device):
    major, minor = torch.cuda.get_device_capability(device)
    return major * 10 + minor


def _per_seq(c):
    if len(c.lq) > PER_SEQ_LIMIT:
        return None, "skipped: %d sequences = %d launches per call" % (len(c.lq), len(c.lq))
    import torch.nn.functional as F

    torch = c.torch
    bounds = []
    a = b = 0
    for n_q, n_k in zip(c.lq, c.lk):
        bounds.append((a, a + n_q, b, b + n_k))
        a += n_q
        b += n_k
    gqa = {"enable_gqa": True} if c.gqa else {}
    out = torch.empty(c.q.shape[0], c.q.shape[1], c.v.shape[2], dtype=c.q.dtype,
                      device=c.q.device)

    def fn():
        for a0, a1, b0, b1 in bounds:
            if a1 == a0:
                continue
            if b1 == b0:
                out[a0:a1].zero_()
                continue
            o = F.scaled_dot_product_attention(c.q[a0:a1].transpose(0, 1)[None],
                                               c.k[b0:b1].transpose(0, 1)[None],
                                               c.v[b0:b1].transpose(0, 1)[None], **gqa)
            out[a0:a1] = o[0].transpose(0, 1)
        return out

    return fn, None


def _nested(c):
    if c.gqa:
        return None, "declined: nested-tensor SDPA needs H == H_kv"
    if 0 in c.lq or 0 in c.lk:
        return None, "declined: nested tensors take no zero-length sequence"
    import torch.nn.functional as F

    torch = c.torch
    off_q, off_kv = c.cu_q.long(), c.cu_kv.long()

    def fn():
        qn = torch.nested.nested_tensor_from_jagged(c.q, off_q).transpose(1, 2)
        kn = torch.nested.nested_tensor_from_jagged(c.k, off_kv).transpose(1, 2)
        vn = torch.nested.nested_tensor_from_jagged(c.v, off_kv).transpose(1, 2)
        return F.scaled_dot_product_attention(qn, kn, vn).transpose(1, 2).values()

    return fn, None


def _torch_fa2(c):
    if not c.cuda:
        return None, "declined: CUDA only"
    if not c.halves or _sm(c.torch, c.q.device) < 80:
        return None, "declined: needs fp16/bf16 on SM >= 8.0"
    op = c.torch.ops.aten._flash_attention_forward

    def fn():
        return op(c.q, c.k, c.v, c.cu_q, c.cu_kv, c.max_q, c.max_kv, 0.0, False, False)[0]

    return fn, None


def _torch_memeff(c):
    if not c.cuda:
        return None, "declined: CUDA only"
    op = c.torch.ops.aten._efficient_attention_forward
    q, k, v = c.q[None], c.k[None], c.v[None]

    def fn():
        return op(q, k, v, None, c.cu_q, c.cu_kv, c.max_q, c.max_kv, 0.0, 0, False)[0][0]

    return fn, None


def _flash_attn(c):
    if not c.cuda or not c.halves:
        return None, "declined: fp16/bf16 on CUDA only"
    func = importlib.import_module("flash_attn").flash_attn_varlen_func

    def fn():
        return func(c.q, c.k, c.v, c.cu_q, c.cu_kv, c.max_q, c.max_kv)

    return fn, None


def _xformers(c):
    if not c.cuda:
        return None, "declined: CUDA only"
    ops = importlib.import_module("xformers.ops")
    bias = importlib.import_module("xformers.ops.fmha.attn_bias")
    mask = bias.BlockDiagonalMask.from_seqlens(q_seqlen=c.lq, kv_seqlen=c.lk)
    q, k, v = c.q[None], c.k[None], c.v[None]
    if c.gqa:  # xformers takes GQA as a 5-D [B, T, G, H/G, D] layout
        g = c.k.shape[1]
        q = q.unflatten(2, (g, c.q.shape[1] // g))
        k = k[:, :, :, None].expand(-1, -1, -1, q.shape[3], -1)
        v = v[:, :, :, None].expand(-1, -1, -1, q.shape[3], -1)

    def fn():
        return ops.memory_efficient_attention(q, k, v, attn_bias=mask)[0].reshape(
            c.q.shape[0], c.q.shape[1], c.v.shape[2])

    return fn, None


def _sage(c):
    if not c.cuda or not c.halves:
        return None, "declined: fp16/bf16 on CUDA only"
    func = importlib.import_module("sageattention").sageattn_varlen
    scale = 1.0 / math.sqrt(c.q.shape[2])

    def fn():
        return func(c.q, c.k, c.v, c.cu_q, c.cu_kv, c.max_q, c.max_kv, is_causal=False,
                    sm_scale=scale)

    return fn, None


# name, devices, the module that must import (None: torch itself), builder.
_ANY, _CUDA = ("cpu", "cuda"), ("cuda",)
PEERS = (
    ("torch-per-seq-sdpa", _ANY, None, _per_seq),
    ("torch-nested-sdpa", _ANY, None, _nested),
    ("torch-fa2-varlen", _CUDA, None, _torch_fa2),
    ("torch-memeff-varlen", _CUDA, None, _torch_memeff),
    ("flash-attn", _CUDA, "flash_attn", _flash_attn),
    ("xformers", _CUDA, "xformers", _xformers),
    ("sageattention", _CUDA, "sageattention", _sage),
)


def installed_peers(device_type):
    """Names of the peers for this device type whose library imports."""
    names = []
    for name, devices, module, _ in PEERS:
        if device_type not in devices:
            continue
        if module is not None:
            try:
                importlib.import_module(module)
            except Exception:  # noqa: BLE001 - a broken install is "not installed" here
                continue
        names.append(name)
    return names


def prepare_peer(name, call):
    """(fn, None) or (None, why it cannot run this call)."""
    builder = {p[0]: p[3] for p in PEERS}[name]
    try:
        return builder(call)
    except Exception as e:  # noqa: BLE001 - a peer that cannot start is a row
        return None, "failed: %s: %s" % (type(e).__name__, e)


# ---------------------------------------------------------------------------
# Progress: a bar redrawn in place on a terminal, one line per step otherwise.
# ---------------------------------------------------------------------------
class Progress:
    WIDTH = 20

    def __init__(self, total, stream=None):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()

    def step(self, label):
        self.done += 1
        filled = self.WIDTH * self.done // max(1, self.total)
        text = "[%s%s] %d/%d %3.0fs %s" % ("#" * filled, "." * (self.WIDTH - filled), self.done,
                                           self.total, time.perf_counter() - self.t0, label)
        text = text[:99]
        if self.tty:
            self.stream.write("\r" + text.ljust(99))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\r" + " " * 99 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------------------
# One run: our backends (and auto), then the peers, on every workload.
# ---------------------------------------------------------------------------
class Row:
    """One timed entry: ``ms`` is None when it did not run, and ``note`` says why."""

    def __init__(self, label, name, kind, ms=None, rate=None, err=None, note=None, chosen=None):
        self.label, self.name, self.kind = label, name, kind
        self.ms, self.rate, self.err, self.note, self.chosen = ms, rate, err, note, chosen


def run(torch, device, works, backends, peers, reps, progress=None):
    """Time ``backends`` (names, plus "auto") and ``peers`` on every (workload, dtype).

    ``works``: Workload objects; returns a list of Row.  Each entry is called once to
    check it (its relative difference from auto's output: a check that every entry
    computes the same attention, not an accuracy figure), then the entries of one
    workload are timed interleaved, one call each per round, so that a machine whose
    speed drifts (a shared VM, a GPU changing clocks) slows them all alike."""
    from . import _dispatch
    from . import _workloads as W

    rows = []
    for w in works:
        for dt in w.dtypes:
            label = w.name + ("/" + dt if len(w.dtypes) > 1 else "")
            q, k, v, cq, ck, mq, mk = W.make_inputs(w, dt, device)
            call = Call(torch, q, k, v, cq, ck, w.q_lens, w.kv_lens)
            entries, base = [], None
            for name in ["auto"] + list(backends) + list(peers):
                if progress:
                    progress.step("%s: %s" % (label, name))
                row = Row(label, name, "peer" if name in peers else "ours")
                rows.append(row)
                if row.kind == "ours":
                    fn = _ours(_dispatch, name, q, k, v, cq, ck, mq, mk)
                else:
                    fn, row.note = prepare_peer(name, call)
                    if fn is None:
                        continue
                out = _first_call(torch, row, fn, base)
                if out is None:
                    continue
                if name == "auto":
                    row.chosen = _dispatch.get_varlen_backend().backend
                    base = out.double()
                entries.append((row, fn, []))
                del out
            _timed_rounds(torch, device, entries, reps, w.flops)
            del q, k, v, call, base, entries
    return rows


def _ours(dispatch, name, q, k, v, cq, ck, mq, mk):
    backend = None if name == "auto" else name

    def fn():
        return dispatch.dispatch_varlen_attention(q, k, v, cq, ck, mq, mk, backend=backend)

    return fn


def _first_call(torch, row, fn, base):
    """The checked first call (also the warm-up): its output, or None with row.note set."""
    try:
        out = fn()
        if base is not None:
            row.err = rel_err(torch, out, base)
        return out
    except Exception as e:  # noqa: BLE001 - one failing entry is a row, not a crash
        row.note = "failed: %s: %s" % (type(e).__name__, e)
        return None


def _timed_rounds(torch, device, entries, reps, flops):
    for _ in range(reps):
        for row, fn, times in entries:
            if row.note is None:
                try:
                    times.append(time_ms(torch, fn, device, 1, warm=True))
                except Exception as e:  # noqa: BLE001 - as in _first_call
                    row.note = "failed: %s: %s" % (type(e).__name__, e)
    for row, _, times in entries:
        if row.note is None and times:
            times.sort()
            row.ms = times[len(times) // 2]
            row.rate = flops / row.ms / 1e6  # GFLOP/s
