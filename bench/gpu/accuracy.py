"""Accuracy of the native CUDA kernel against float64, per input dtype:
max |LSE - LSE64| (absolute) and ||out - out64|| / ||out64||, on
FlashAttention-style inputs (randn, D = 32, 64, 128) and scaled-up scores;
then the time of an fp32 call relative to a bf16 call of the same shape.

    python3 bench/gpu/accuracy.py
"""
import math

import torch

from comfy_sparse_attn import _native

dev = torch.device("cuda")


def ref64(q, k, v, lens, scale):
    outs, lses, s0 = [], [], 0
    for n in lens:
        qq, kk, vv = (x[s0:s0 + n].double().transpose(0, 1) for x in (q, k, v))
        s = qq @ kk.transpose(1, 2) * scale
        lse = torch.logsumexp(s, -1)
        outs.append((torch.softmax(s, -1) @ vv).transpose(0, 1))
        lses.append(lse)
        s0 += n
    return torch.cat(outs), torch.cat(lses, 1)


def case(dt, d, lens, h=4, amp=1.0, seed=0):
    g = torch.Generator(device=dev).manual_seed(seed)
    t = sum(lens)
    q, k, v = (torch.randn(t, h, d, device=dev, generator=g) * a
               for a in (amp, amp, 1.0))
    q, k, v = q.to(dt), k.to(dt), v.to(dt)
    cu = torch.tensor([0] + lens, device=dev).cumsum(0).to(torch.int32)
    o, l = _native.varlen_attention(q, k, v, cu, cu, max(lens), max(lens), return_lse=True)
    ro, rl = ref64(q, k, v, lens, 1.0 / math.sqrt(d))
    return ((l.double() - rl).abs().max().item(),
            ((o.double() - ro).norm() / ro.norm()).item())


def timing(dt, lens=(4096,) * 4, h=16, d=64, reps=20):
    t = sum(lens)
    q = torch.randn(t, h, d, device=dev).to(dt)
    cu = torch.tensor([0] + list(lens), device=dev).cumsum(0).to(torch.int32)
    m = max(lens)
    for _ in range(3):
        _native.varlen_attention(q, q, q, cu, cu, m, m, check_cu_seqlens=False)
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(reps + 1)]
    ev[0].record()
    for i in range(reps):
        _native.varlen_attention(q, q, q, cu, cu, m, m, check_cu_seqlens=False)
        ev[i + 1].record()
    torch.cuda.synchronize()
    ts = sorted(ev[i].elapsed_time(ev[i + 1]) for i in range(reps))
    return ts[reps // 2]


print("| dtype | D | amp | max abs LSE err | out rel err |")
print("|---|---|---|---|---|")
for dt in (torch.float16, torch.bfloat16, torch.float32):
    for d in (32, 64, 128):
        for amp in (1.0, 3.0):
            e_l, e_o = case(dt, d, [200, 1000, 37, 513], amp=amp, seed=d)
            print("| %s | %d | %.0f | %.2e | %.2e |" % (str(dt)[6:], d, amp, e_l, e_o))
for d in (64, 128):
    tb, tf = timing(torch.bfloat16, d=d), timing(torch.float32, d=d)
    print("time 4x4096 H16 D%d: bf16 %.3f ms, fp32 %.3f ms, ratio %.2f" % (d, tb, tf, tf / tb))
