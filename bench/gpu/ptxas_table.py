"""Markdown table of the CUDA kernels' resources from `nvcc -Xptxas -v`:

    nvcc -std=c++17 -O3 -arch=sm_80 -Xptxas -v -Iinclude -Icsrc -c \
        csrc/cuda/attn_fwd.cu -o /tmp/a.o 2> ptxas.log
    python3 bench/gpu/ptxas_table.py ptxas.log
"""
import re
import sys

NAME = re.compile(r"Compiling entry function '_Z20csa__attn_fwd_kernelI(\w+?)Li(\d+)ELi(\d+)ELi(\d+)ELb(\d)ELi(\d+)ELb(\d)E")
SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
USED = re.compile(r"Used (\d+) registers.*?(\d+) bytes smem")
DT = {"6__half": "f16", "13__nv_bfloat16": "bf16", "f": "f32"}


def main(path):
    rows, cur = [], None
    for line in open(path):
        m = NAME.search(line)
        if m:
            cur = [DT.get(m.group(1), m.group(1))] + list(m.groups()[1:])
            continue
        m = SPILL.search(line)
        if m and cur is not None:
            cur += list(m.groups())
            continue
        m = USED.search(line)
        if m and cur is not None:
            rows.append(cur + list(m.groups()))
            cur = None
    print("| dtype | DP | BN | MT | Q in regs | min CTAs/SM | multi-head | stack B | spill st/ld B | regs | static smem B |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dt, dp, bn, mt, qreg, minb, mh, stack, sst, sld, regs, smem = r
        print("| %s | %s | %s | %s | %s | %s | %s | %s | %s/%s | %s | %s |" % (
            dt, dp, bn, mt, "yes" if qreg == "1" else "no", minb, "yes" if mh == "1" else "no",
            stack, sst, sld, regs, smem))


if __name__ == "__main__":
    main(sys.argv[1])
