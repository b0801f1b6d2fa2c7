#!/usr/bin/python3
"""The PyTorch-eager counterpart of bench/train_step_bench.cpp.

The same GPT-2 (pre-LN blocks, Conv1D-layout addmm, gelu tanh, tied head),
the same auxiliary model (block 0 repeated to full depth, registered once),
the same step (forward, cross-entropy, backward, AdamW over all parameters),
on Debian's python3-torch, which uses the same libtorch and BLAS as fedsp.

  train_step_reference.py PRESET global|aux BATCH SEQ STEPS THREADS
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"tiny": (4, 4, 128, 256, 256), "gpt2": (12, 12, 768, 1024, 50257),
           "gpt2-medium": (24, 16, 1024, 1024, 50257)}


class Conv1D(nn.Module):
    def __init__(self, nx, nf):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf) * 0.02)
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


class Block(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        self.h = h
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.attn_proj = Conv1D(c, 3 * c), Conv1D(c, c)
        self.c_fc, self.mlp_proj = Conv1D(c, 4 * c), Conv1D(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.h, c // self.h).transpose(1, 2) for z in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(c // self.h)
        mask = torch.ones(t, t, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, torch.finfo(att.dtype).min).softmax(-1)
        x = x + self.attn_proj((att @ v).transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, layers, heads, c, positions, vocab, blocks):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(positions, c)
        self.h = nn.ModuleList([Block(c, heads) for _ in range(blocks)])
        self.layer_block = [l % blocks for l in range(layers)]
        self.ln_f = nn.LayerNorm(c)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.layer_block:
            x = self.h[b](x)
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    preset, which, b, t, steps, threads = sys.argv[1:7]
    b, t, steps = int(b), int(t), int(steps)
    torch.set_num_threads(int(threads))
    layers, heads, c, positions, vocab = PRESETS[preset]
    model = GPT(layers, heads, c, positions, vocab, 1 if which == "aux" else layers)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.randint(0, vocab, (b, t)), torch.randint(0, vocab, (b, t))
    times = []
    for s in range(steps + 1):
        start = time.perf_counter()
        loss = F.cross_entropy(model(x).view(b * t, -1), y.view(-1))
        loss.backward()
        opt.step()
        opt.zero_grad()
        if s > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "preset": preset, "model": which,
                      "params": sum(p.numel() for p in model.parameters()),
                      "batch": b, "seq": t, "median_s": round(median, 4),
                      "tokens_per_s": round(b * t / median, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
