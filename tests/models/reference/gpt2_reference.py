#!/usr/bin/python3
"""Reference values for fedsp's GPT-2 (tests/models/gpt2_reference_test.cpp).

An independent GPT-2 forward pass in PyTorch (Debian's python3-torch), written
from Hugging Face's GPT2LMHeadModel: pre-LayerNorm blocks, causal attention,
gelu_new, learned positions, tied head; plus deep prefix prompts as fedsp
defines them (per layer K/V prefixes, no position ids for the prefix, every
token attends to the whole prefix).

It writes, next to itself, under tiny-gpt2/:
  model.safetensors  random weights in Hugging Face's layout: "transformer."
                     names, Conv1D weights (in, out), the attn.bias mask
                     buffers and lm_head.weight, as published checkpoints have
  config.json        the Hugging Face config
  reference.json     inputs and expected outputs: logits without and with a
                     prefix, the answer-token loss and its gradient w.r.t. the
                     prefix

Run:  /usr/bin/python3 tests/models/reference/gpt2_reference.py   (Debian's python, with python3-torch)
The outputs are committed; the C++ test compares against them.
"""
import json
import math
import os
import struct

import torch

torch.manual_seed(20231108)
torch.set_default_dtype(torch.float64)  # the reference runs in double

L, H, C, T_MAX, V, EPS = 2, 4, 32, 16, 64, 1e-5
HD = C // H
B, T, P = 2, 8, 3
ANSWER_START = 5  # tokens 5..7 are the answer: logits 4..6 predict them

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny-gpt2")
os.makedirs(here, exist_ok=True)


def rnd(*shape, std=0.3):
    return torch.randn(*shape) * std


w = {"wte.weight": rnd(V, C), "wpe.weight": rnd(T_MAX, C),
     "ln_f.weight": 1 + rnd(C, std=0.1), "ln_f.bias": rnd(C, std=0.1)}
for l in range(L):
    p = f"h.{l}."
    w[p + "ln_1.weight"] = 1 + rnd(C, std=0.1)
    w[p + "ln_1.bias"] = rnd(C, std=0.1)
    w[p + "attn.c_attn.weight"] = rnd(C, 3 * C)
    w[p + "attn.c_attn.bias"] = rnd(3 * C, std=0.1)
    w[p + "attn.c_proj.weight"] = rnd(C, C)
    w[p + "attn.c_proj.bias"] = rnd(C, std=0.1)
    w[p + "ln_2.weight"] = 1 + rnd(C, std=0.1)
    w[p + "ln_2.bias"] = rnd(C, std=0.1)
    w[p + "mlp.c_fc.weight"] = rnd(C, 4 * C)
    w[p + "mlp.c_fc.bias"] = rnd(4 * C, std=0.1)
    w[p + "mlp.c_proj.weight"] = rnd(4 * C, C)
    w[p + "mlp.c_proj.bias"] = rnd(C, std=0.1)
# Round the weights to float32 once: both sides then use identical values.
w = {k: v.float().double() for k, v in w.items()}


def layer_norm(x, g, b):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + EPS) * g + b


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(idx, prefix):
    t = idx.shape[1]
    x = w["wte.weight"][idx] + w["wpe.weight"][torch.arange(t)]
    for l in range(L):
        p = f"h.{l}."
        h = layer_norm(x, w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        qkv = h @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (z.view(B, t, H, HD).transpose(1, 2) for z in (q, k, v))
        n_prefix = 0
        if prefix is not None:
            n_prefix = prefix.shape[3]
            k = torch.cat([prefix[l, 0].unsqueeze(0).expand(B, -1, -1, -1), k], dim=2)
            v = torch.cat([prefix[l, 1].unsqueeze(0).expand(B, -1, -1, -1), v], dim=2)
        att = q @ k.transpose(-1, -2) / math.sqrt(HD)
        allowed = torch.ones(t, n_prefix + t, dtype=torch.bool).tril(n_prefix)
        att = att.masked_fill(~allowed, torch.finfo(att.dtype).min).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, t, C)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = layer_norm(x, w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        m = gelu_new(h @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    x = layer_norm(x, w["ln_f.weight"], w["ln_f.bias"])
    return x @ w["wte.weight"].T


idx = torch.randint(0, V, (B, T))
prefix = rnd(L, 2, H, P, HD, std=0.5).float().double().requires_grad_(True)
logits_plain = forward(idx, None)
logits_prefix = forward(idx, prefix)
targets = torch.full((B, T), -100, dtype=torch.long)
targets[:, ANSWER_START - 1:T - 1] = idx[:, ANSWER_START:]
loss = torch.nn.functional.cross_entropy(logits_prefix.reshape(-1, V), targets.reshape(-1),
                                         ignore_index=-100)
loss.backward()


def flat(t):
    return [float(x) for x in t.detach().reshape(-1)]


# model.safetensors in Hugging Face's layout.
tensors = {"transformer." + k: v.float() for k, v in w.items()}
for l in range(L):  # the causal-mask buffers published checkpoints carry
    tensors[f"transformer.h.{l}.attn.bias"] = torch.ones(1, 1, T_MAX, T_MAX).tril()
tensors["lm_head.weight"] = w["wte.weight"].float()
header, blobs, offset = {}, [], 0
for name in sorted(tensors):
    data = tensors[name].contiguous().numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                    "data_offsets": [offset, offset + len(data)]}
    blobs.append(data)
    offset += len(data)
head = json.dumps(header).encode()
head += b" " * ((8 - len(head) % 8) % 8)
with open(os.path.join(here, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))
with open(os.path.join(here, "config.json"), "w") as f:
    json.dump({"model_type": "gpt2", "n_layer": L, "n_head": H, "n_embd": C,
               "n_positions": T_MAX, "n_ctx": T_MAX, "vocab_size": V,
               "layer_norm_epsilon": EPS, "activation_function": "gelu_new"}, f, indent=1)
with open(os.path.join(here, "reference.json"), "w") as f:
    json.dump({"B": B, "T": T, "P": P, "answer_start": ANSWER_START,
               "idx": [int(x) for x in idx.reshape(-1)],
               "prefix": flat(prefix),
               "logits_plain": flat(logits_plain),
               "logits_prefix": flat(logits_prefix),
               "loss": float(loss),
               "prefix_grad": flat(prefix.grad),
               "torch": torch.__version__}, f)
print(f"wrote {here}: loss {float(loss):.6f}")
