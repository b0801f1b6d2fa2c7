#!/usr/bin/python3
"""An independent check of `fedsp pretrain`'s recipe (bench/README.md,
"The shipped base model"): a byte-level GPT-2 written here in plain PyTorch,
trained exactly as fedsp does it, on the same corpus split.

Same model (tiny preset: 4 pre-LN blocks x 128, 4 heads, 256 positions, gelu
tanh, tied head; init N(0, 0.02), residual projections N(0, 0.02/sqrt(2L))),
same data (corpus.jsonl, documents joined by a blank line, the last 5% of
documents held out), same optimiser (AdamW, weight decay 0.1 on every
parameter, gradient norm clipped to 1, warmup 5% then linear decay to 0),
random windows of 256 bytes, held-out loss on 8 fixed batches of windows.
Only the random streams differ (PyTorch's generators, not fedsp's), so the
figures agree up to run-to-run noise.

  /usr/bin/python3 bench/pretrain_reference.py STEPS LR [BATCH] [CORPUS]

Prints the training and held-out loss (nats per byte) every 100 steps.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

T, C, H, L, V = 256, 128, 4, 4, 256


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.out = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (z.view(b, t, H, C // H).transpose(1, 2) for z in self.qkv(self.ln_1(x)).split(C, 2))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // H)
        att = att.masked_fill(torch.ones(t, t, dtype=torch.bool).tril().logical_not(), float("-inf"))
        x = x + self.proj((att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, C))
        return x + self.out(F.gelu(self.fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        for name, p in self.named_parameters():
            if "ln_" in name:
                continue
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif name.endswith("proj.weight") or name.endswith("out.weight"):
                nn.init.normal_(p, 0, 0.02 / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, 0, 0.02)

    def forward(self, x):
        h = self.wte(x) + self.wpe(torch.arange(x.shape[1]))
        for block in self.h:
            h = block(h)
        return self.ln_f(h) @ self.wte.weight.t()


def main():
    steps, lr = int(sys.argv[1]), float(sys.argv[2])
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    corpus = sys.argv[4] if len(sys.argv) > 4 else "data/spamassassin/corpus.jsonl"
    torch.manual_seed(1)
    with open(corpus, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f]
    held = max(1, int(len(docs) * 0.05))

    def stream(ds):
        return torch.tensor(list(b"".join(d.encode() + b"\n\n" for d in ds)), dtype=torch.long)

    train, heldout = stream(docs[:-held]), stream(docs[-held:])
    print(f"train {len(train):,} bytes, held out {len(heldout):,} bytes", flush=True)
    model = GPT()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, int(steps * 0.05))

    def windows(tokens, gen):
        i = torch.randint(0, len(tokens) - T - 1, (batch,), generator=gen)
        return (torch.stack([tokens[j:j + T] for j in i]), torch.stack([tokens[j + 1:j + T + 1] for j in i]))

    def held_out():
        model.eval()
        gen, total = torch.Generator().manual_seed(12345), 0.0
        with torch.no_grad():
            for _ in range(8):
                x, y = windows(heldout, gen)
                total += F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1)).item()
        model.train()
        return total / 8

    gen, start = torch.Generator().manual_seed(1), time.time()
    for s in range(steps):
        rate = lr * (s + 1) / warmup if s < warmup else lr * max(0.0, 1 - (s - warmup) / max(1, steps - warmup))
        for group in opt.param_groups:
            group["lr"] = rate
        x, y = windows(train, gen)
        loss = F.cross_entropy(model(x).reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (s + 1) % 100 == 0 or s + 1 == steps:
            print(f"step {s + 1} loss {loss.item():.3f} held-out {held_out():.3f} "
                  f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
