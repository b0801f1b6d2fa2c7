#!/usr/bin/python3
"""The PyTorch-eager counterpart of bench/train_step_bench.cpp.

The same models as fedsp's presets: GPT-2 (pre-LN blocks, Conv1D-layout
addmm, gelu tanh, tied head), OPT (q/k/v/out Linear, ReLU MLP, positions
offset by 2, pre-LN, tied head) and LLaMA-style (RMSNorm, rotary positions,
grouped-query attention, SwiGLU, untied head), each written as fedsp computes
it; the same auxiliary model (block 0 repeated to full depth, registered once),
the same step (forward, cross-entropy, backward, AdamW over all parameters),
on Debian's python3-torch, which uses the same libtorch and BLAS as fedsp.

  train_step_reference.py PRESET global|aux BATCH SEQ STEPS THREADS [DEVICE [DTYPE]]

DEVICE is cpu (the default) or cuda[:N]; DTYPE f32 (the default), bf16 or
f16 as torch's AMP recipe runs it: torch.autocast over the forward pass and
the loss, float32 weights, GradScaler for f16. On CUDA each step ends with a
synchronisation, as fedsp_train_bench's does.
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
           "gpt2-medium": (24, 16, 1024, 1024, 50257), "gpt2-large": (36, 20, 1280, 1024, 50257),
           "gpt2-xl": (48, 25, 1600, 1024, 50257)}
# layers, heads, width, ffn, positions, vocabulary
OPT_PRESETS = {"opt-tiny": (4, 4, 128, 512, 256, 256), "opt-125m": (12, 12, 768, 3072, 2048, 50272)}
# layers, heads, kv heads, width, ffn, positions, vocabulary, tied head
LLAMA_PRESETS = {"llama-tiny": (4, 4, 2, 128, 352, 256, 256, False),
                 "smollm-135m": (30, 9, 3, 576, 1536, 2048, 49152, True)}


def attend(q, k, v):
    """q (B, H, T, hd), k/v (B, KV, T, hd): causal attention as fedsp's."""
    b, h, t, hd = q.shape
    kv = k.shape[1]
    if kv != h:
        k = k.unsqueeze(2).expand(b, kv, h // kv, t, hd).reshape(b, h, t, hd)
        v = v.unsqueeze(2).expand(b, kv, h // kv, t, hd).reshape(b, h, t, hd)
    att = q @ k.transpose(-2, -1) / math.sqrt(hd)
    mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
    att = att.masked_fill(~mask, torch.finfo(att.dtype).min).softmax(-1)
    return (att @ v).transpose(1, 2).contiguous().view(b, t, h * hd)


class OPTBlock(nn.Module):
    def __init__(self, c, h, ffn):
        super().__init__()
        self.h = h
        self.q, self.k, self.v, self.o = (nn.Linear(c, c) for _ in range(4))
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.fc1, self.fc2 = nn.Linear(c, ffn), nn.Linear(ffn, c)

    def forward(self, x):
        b, t, c = x.shape
        h = self.ln_1(x)
        q, k, v = (m(h).view(b, t, self.h, c // self.h).transpose(1, 2) for m in (self.q, self.k, self.v))
        x = x + self.o(attend(q, k, v))
        return x + self.fc2(F.relu(self.fc1(self.ln_2(x))))


class OPT(nn.Module):
    def __init__(self, layers, heads, c, ffn, positions, vocab, blocks):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(positions + 2, c)
        self.h = nn.ModuleList([OPTBlock(c, heads, ffn) for _ in range(blocks)])
        self.layer_block = [l % blocks for l in range(layers)]
        self.ln_f = nn.LayerNorm(c)

    def forward(self, idx):
        x = self.wte(idx) + self.wpe(torch.arange(2, idx.shape[1] + 2, device=idx.device))
        for b in self.layer_block:
            x = self.h[b](x)
        return self.ln_f(x) @ self.wte.weight.t()


class RMSNorm(nn.Module):
    def __init__(self, c, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(c)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], dim=-1) * sin


class LlamaBlock(nn.Module):
    def __init__(self, c, h, kv, ffn):
        super().__init__()
        self.h, self.kv, self.hd = h, kv, c // h
        self.q = nn.Linear(c, h * self.hd, bias=False)
        self.k = nn.Linear(c, kv * self.hd, bias=False)
        self.v = nn.Linear(c, kv * self.hd, bias=False)
        self.o = nn.Linear(h * self.hd, c, bias=False)
        self.gate, self.up = nn.Linear(c, ffn, bias=False), nn.Linear(c, ffn, bias=False)
        self.down = nn.Linear(ffn, c, bias=False)
        self.ln_1, self.ln_2 = RMSNorm(c), RMSNorm(c)

    def forward(self, x, cos, sin):
        b, t, c = x.shape
        h = self.ln_1(x)
        q = rotate(self.q(h).view(b, t, self.h, self.hd).transpose(1, 2), cos, sin)
        k = rotate(self.k(h).view(b, t, self.kv, self.hd).transpose(1, 2), cos, sin)
        v = self.v(h).view(b, t, self.kv, self.hd).transpose(1, 2)
        x = x + self.o(attend(q, k, v))
        n = self.ln_2(x)
        return x + self.down(F.silu(self.gate(n)) * self.up(n))


class Llama(nn.Module):
    def __init__(self, layers, heads, kv, c, ffn, positions, vocab, tied, blocks):
        super().__init__()
        self.wte = nn.Embedding(vocab, c)
        self.h = nn.ModuleList([LlamaBlock(c, heads, kv, ffn) for _ in range(blocks)])
        self.layer_block = [l % blocks for l in range(layers)]
        self.norm = RMSNorm(c)
        self.head = None if tied else nn.Linear(c, vocab, bias=False)
        hd = c // heads
        self.inv_freq = 1.0 / 10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd)

    def forward(self, idx):
        t = idx.shape[1]
        freqs = torch.outer(torch.arange(t, dtype=torch.float32, device=idx.device),
                            self.inv_freq.float().to(idx.device))
        emb = torch.cat([freqs, freqs], dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.wte(idx)
        for b in self.layer_block:
            x = self.h[b](x, cos, sin)
        x = self.norm(x)
        return self.head(x) if self.head is not None else x @ self.wte.weight.t()


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
        mask = torch.ones(t, t, dtype=torch.bool, device=q.device).tril()
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
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.layer_block:
            x = self.h[b](x)
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    preset, which, b, t, steps, threads = sys.argv[1:7]
    device = torch.device(sys.argv[7] if len(sys.argv) > 7 else "cpu")
    dtype = sys.argv[8] if len(sys.argv) > 8 else "f32"
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    b, t, steps = int(b), int(t), int(steps)
    torch.set_num_threads(int(threads))
    if preset in OPT_PRESETS:
        layers, heads, c, ffn, positions, vocab = OPT_PRESETS[preset]
        model = OPT(layers, heads, c, ffn, positions, vocab, 1 if which == "aux" else layers)
    elif preset in LLAMA_PRESETS:
        layers, heads, kv, c, ffn, positions, vocab, tied = LLAMA_PRESETS[preset]
        model = Llama(layers, heads, kv, c, ffn, positions, vocab, tied,
                      1 if which == "aux" else layers)
    else:
        layers, heads, c, positions, vocab = PRESETS[preset]
        model = GPT(layers, heads, c, positions, vocab, 1 if which == "aux" else layers)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randint(0, vocab, (b, t)).to(device)
    y = torch.randint(0, vocab, (b, t)).to(device)
    amp = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[dtype]
    scaler = torch.cuda.amp.GradScaler() if dtype == "f16" else None
    times = []
    for s in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            loss = F.cross_entropy(model(x).view(b * t, -1).float(), y.view(-1))
        if scaler:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if s > 0:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({"impl": "pytorch", "preset": preset, "model": which,
                      "params": sum(p.numel() for p in model.parameters()),
                      "batch": b, "seq": t, "device": str(device), "dtype": dtype,
                      "median_s": round(median, 4),
                      "tokens_per_s": round(b * t / median, 1),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}))


if __name__ == "__main__":
    main()
