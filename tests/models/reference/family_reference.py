#!/usr/bin/python3
"""Reference values for fedsp's OPT and LLaMA-style families
(tests/models/family_reference_test.cpp).

Independent forward passes in PyTorch (Debian's python3-torch, no
transformers), written from Hugging Face's OPTForCausalLM and
LlamaForCausalLM / Qwen2ForCausalLM, plus deep prefix prompts as fedsp defines
them (docs/models.md, "Prompts and positions"): per layer one key and one
value prefix per key/value head, no position for the prefix (OPT: no position
embedding; rotary: keys stored unrotated), tokens at positions 0..T-1, every
token attends to the whole prefix and causally to the tokens.

Four tiny random checkpoints, each in Hugging Face's layout, under this folder:
  tiny-opt        pre-LayerNorm OPT, F32, one model.safetensors
  tiny-opt-post   post-LayerNorm OPT with word_embed_proj_dim < hidden_size
                  (project_in / project_out), no final LayerNorm, F32
  tiny-llama      grouped-query attention (4 heads, 2 KV heads), untied head,
                  llama3 rope scaling, BF16, two shards + model.safetensors.index.json
  tiny-qwen2      q/k/v biases, tied head, rope_theta 1e6, F16
Each holds config.json, the weights, and reference.json: inputs, logits
without and with a prefix, the answer-token loss with the prefix and its
gradient with respect to the prefix. The reference runs in float64 on the
weights rounded to their stored dtype.

Run:  /usr/bin/python3 tests/models/reference/family_reference.py
The outputs are committed; the C++ test compares against them.
"""
import json
import math
import os
import struct

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
B, T, P, ANSWER_START = 2, 8, 3, 5  # tokens 5..7 are the answer


def rnd(*shape, std=0.3):
    return torch.randn(*shape) * std


def stored(t, dtype):
    """The value after a round trip through the file's dtype, in float64."""
    return t.to(dtype).double()


def encode(t, dtype):
    if dtype == torch.bfloat16:
        return "BF16", t.to(torch.bfloat16).contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
    if dtype == torch.float16:
        return "F16", t.to(torch.float16).contiguous().numpy().astype("<f2").tobytes()
    return "F32", t.float().contiguous().numpy().astype("<f4").tobytes()


def write_safetensors(path, tensors, dtype):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        tag, data = encode(tensors[name], dtype)
        header[name] = {"dtype": tag, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def layer_norm(x, g, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * g + b


def rms_norm(x, g, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g


def attend(q, k, v, prefix_kv):
    """q (B, H, T, hd); k, v (B, KV, T, hd); prefix_kv (2, KV, P, hd) or None."""
    b, h, t, hd = q.shape
    kv = k.shape[1]
    n_prefix = 0
    if prefix_kv is not None:
        n_prefix = prefix_kv.shape[2]
        k = torch.cat([prefix_kv[0].unsqueeze(0).expand(b, -1, -1, -1), k], dim=2)
        v = torch.cat([prefix_kv[1].unsqueeze(0).expand(b, -1, -1, -1), v], dim=2)
    group = h // kv  # query head i reads key/value head i // group
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = (q * hd ** -0.5) @ k.transpose(-1, -2)
    allowed = torch.ones(t, n_prefix + t, dtype=torch.bool).tril(n_prefix)
    att = scores.masked_fill(~allowed, float("-inf")).softmax(-1)
    return (att @ v).transpose(1, 2).reshape(b, t, h * hd)


def linear(x, w, name, bias=True):
    y = x @ w[name + ".weight"].T
    if bias and name + ".bias" in w:
        y = y + w[name + ".bias"]
    return y


# -- OPT ---------------------------------------------------------------------------------

def opt_weights(cfg):
    L, C, F, V, E = (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["ffn_dim"],
                     cfg["vocab_size"], cfg["word_embed_proj_dim"])
    w = {"model.decoder.embed_tokens.weight": rnd(V, E),
         "model.decoder.embed_positions.weight": rnd(cfg["max_position_embeddings"] + 2, C)}
    if E != C:
        w["model.decoder.project_in.weight"] = rnd(C, E)
        w["model.decoder.project_out.weight"] = rnd(E, C)
    if cfg["do_layer_norm_before"]:
        w["model.decoder.final_layer_norm.weight"] = 1 + rnd(C, std=0.1)
        w["model.decoder.final_layer_norm.bias"] = rnd(C, std=0.1)
    for l in range(L):
        p = f"model.decoder.layers.{l}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            w[p + f"self_attn.{proj}.weight"] = rnd(C, C)
            w[p + f"self_attn.{proj}.bias"] = rnd(C, std=0.1)
        for ln in ("self_attn_layer_norm", "final_layer_norm"):
            w[p + ln + ".weight"] = 1 + rnd(C, std=0.1)
            w[p + ln + ".bias"] = rnd(C, std=0.1)
        w[p + "fc1.weight"], w[p + "fc1.bias"] = rnd(F, C), rnd(F, std=0.1)
        w[p + "fc2.weight"], w[p + "fc2.bias"] = rnd(C, F), rnd(C, std=0.1)
    return w


def opt_forward(w, cfg, idx, prefix):
    L, C, H = cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"]
    hd, pre = C // H, cfg["do_layer_norm_before"]
    b, t = idx.shape
    x = w["model.decoder.embed_tokens.weight"][idx]
    if "model.decoder.project_in.weight" in w:
        x = x @ w["model.decoder.project_in.weight"].T
    x = x + w["model.decoder.embed_positions.weight"][torch.arange(t) + 2]  # OPT's offset 2
    for l in range(L):
        p = f"model.decoder.layers.{l}."
        ln1 = lambda z: layer_norm(z, w[p + "self_attn_layer_norm.weight"], w[p + "self_attn_layer_norm.bias"])
        ln2 = lambda z: layer_norm(z, w[p + "final_layer_norm.weight"], w[p + "final_layer_norm.bias"])
        h = ln1(x) if pre else x
        q, k, v = (linear(h, w, p + f"self_attn.{n}").view(b, t, H, hd).transpose(1, 2)
                   for n in ("q_proj", "k_proj", "v_proj"))
        x = x + linear(attend(q, k, v, None if prefix is None else prefix[l]), w, p + "self_attn.out_proj")
        if not pre:
            x = ln1(x)
        h = ln2(x) if pre else x
        x = x + linear(torch.relu(linear(h, w, p + "fc1")), w, p + "fc2")
        if not pre:
            x = ln2(x)
    if "model.decoder.final_layer_norm.weight" in w:
        x = layer_norm(x, w["model.decoder.final_layer_norm.weight"], w["model.decoder.final_layer_norm.bias"])
    if "model.decoder.project_out.weight" in w:
        x = x @ w["model.decoder.project_out.weight"].T
    return x @ w["model.decoder.embed_tokens.weight"].T  # tied head


# -- LLaMA-style ---------------------------------------------------------------------------

def llama_weights(cfg):
    L, C, F, V = (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["intermediate_size"],
                  cfg["vocab_size"])
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = C // H
    bias = cfg["model_type"] == "qwen2"
    w = {"model.embed_tokens.weight": rnd(V, C), "model.norm.weight": 1 + rnd(C, std=0.1)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(V, C)
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + rnd(C, std=0.1)
        w[p + "post_attention_layernorm.weight"] = 1 + rnd(C, std=0.1)
        w[p + "self_attn.q_proj.weight"] = rnd(H * hd, C)
        w[p + "self_attn.k_proj.weight"] = rnd(KV * hd, C)
        w[p + "self_attn.v_proj.weight"] = rnd(KV * hd, C)
        w[p + "self_attn.o_proj.weight"] = rnd(C, H * hd)
        if bias:
            w[p + "self_attn.q_proj.bias"] = rnd(H * hd, std=0.1)
            w[p + "self_attn.k_proj.bias"] = rnd(KV * hd, std=0.1)
            w[p + "self_attn.v_proj.bias"] = rnd(KV * hd, std=0.1)
        w[p + "mlp.gate_proj.weight"] = rnd(F, C)
        w[p + "mlp.up_proj.weight"] = rnd(F, C)
        w[p + "mlp.down_proj.weight"] = rnd(C, F)
    return w


def inverse_frequencies(cfg, hd):
    inv = 1.0 / cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2).double() / hd)
    rs = cfg.get("rope_scaling")
    if rs and rs["rope_type"] == "llama3":
        factor, low, high = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        out = []
        for f in inv.tolist():
            wavelen = 2 * math.pi / f
            if wavelen < old / high:      # high frequencies: kept
                out.append(f)
            elif wavelen > old / low:     # low frequencies: divided by the factor
                out.append(f / factor)
            else:                         # between: interpolated
                s = (old / wavelen - low) / (high - low)
                out.append((1 - s) * f / factor + s * f)
        inv = torch.tensor(out)
    elif rs and rs["rope_type"] == "linear":
        inv = inv / rs["factor"]
    return inv


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def llama_forward(w, cfg, idx, prefix):
    L, C, H, KV = (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"],
                   cfg["num_key_value_heads"])
    hd, eps = C // H, cfg["rms_norm_eps"]
    b, t = idx.shape
    freqs = torch.arange(t).double()[:, None] * inverse_frequencies(cfg, hd)[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)  # (T, hd)
    cos, sin = emb.cos(), emb.sin()
    x = w["model.embed_tokens.weight"][idx]
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = linear(h, w, p + "self_attn.q_proj").view(b, t, H, hd).transpose(1, 2)
        k = linear(h, w, p + "self_attn.k_proj").view(b, t, KV, hd).transpose(1, 2)
        v = linear(h, w, p + "self_attn.v_proj").view(b, t, KV, hd).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)  # prefix keys stay unrotated
        x = x + linear(attend(q, k, v, None if prefix is None else prefix[l]), w, p + "self_attn.o_proj")
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = linear(h, w, p + "mlp.gate_proj")
        x = x + linear(g * torch.sigmoid(g) * linear(h, w, p + "mlp.up_proj"), w, p + "mlp.down_proj")
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


# -- the four checkpoints --------------------------------------------------------------------

def make(name, cfg, weights, forward, dtype, kv_heads, shards=1):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    w = {k: stored(v, dtype) for k, v in weights(cfg).items()}
    L, V = cfg["num_hidden_layers"], cfg["vocab_size"]
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    idx = torch.randint(0, V, (B, T))
    prefix = stored(rnd(L, 2, kv_heads, P, hd, std=0.5), torch.float32).requires_grad_(True)
    with torch.no_grad():
        plain = forward(w, cfg, idx, None)
    logits = forward(w, cfg, idx, prefix)
    targets = torch.full((B, T), -100, dtype=torch.long)
    targets[:, ANSWER_START - 1:T - 1] = idx[:, ANSWER_START:]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                             ignore_index=-100)
    loss.backward()
    tensors = dict(w)
    if "lm_head.weight" not in tensors:  # published tied checkpoints carry the head too
        tensors["lm_head.weight"] = w["model.embed_tokens.weight" if "model.embed_tokens.weight" in w
                                      else "model.decoder.embed_tokens.weight"]
    names = sorted(tensors)
    if shards == 1:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, dtype)
    else:
        weight_map = {}
        for s in range(shards):
            file = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: tensors[n] for n in names[s::shards]}
            write_safetensors(os.path.join(folder, file), part, dtype)
            weight_map.update({n: file for n in part})
        with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": weight_map}, f, indent=1)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    flat = lambda t: [float(x) for x in t.detach().reshape(-1)]
    with open(os.path.join(folder, "reference.json"), "w") as f:
        json.dump({"B": B, "T": T, "P": P, "answer_start": ANSWER_START,
                   "prefix_shape": list(prefix.shape),
                   "idx": [int(x) for x in idx.reshape(-1)], "prefix": flat(prefix),
                   "logits_plain": flat(plain), "logits_prefix": flat(logits),
                   "loss": float(loss), "prefix_grad": flat(prefix.grad),
                   "torch": torch.__version__}, f)
    print(f"wrote {folder}: loss {float(loss):.6f}")


torch.manual_seed(20231109)
common = {"architectures": ["OPTForCausalLM"], "model_type": "opt", "num_hidden_layers": 2,
          "num_attention_heads": 4, "hidden_size": 32, "ffn_dim": 64, "vocab_size": 64,
          "max_position_embeddings": 16, "activation_function": "relu", "enable_bias": True,
          "layer_norm_elementwise_affine": True, "dropout": 0.1, "attention_dropout": 0.0,
          "bos_token_id": 2, "eos_token_id": 2, "pad_token_id": 1, "torch_dtype": "float32"}
make("tiny-opt", dict(common, do_layer_norm_before=True, word_embed_proj_dim=32),
     opt_weights, opt_forward, torch.float32, kv_heads=4)
make("tiny-opt-post", dict(common, do_layer_norm_before=False, word_embed_proj_dim=16),
     opt_weights, opt_forward, torch.float32, kv_heads=4)
llama = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 64,
         "intermediate_size": 96, "vocab_size": 64, "max_position_embeddings": 32,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
         "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
         "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                          "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
         "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16"}
make("tiny-llama", llama, llama_weights, llama_forward, torch.bfloat16, kv_heads=2, shards=2)
qwen2 = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "hidden_size": 32,
         "intermediate_size": 48, "vocab_size": 64, "max_position_embeddings": 32,
         "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
         "tie_word_embeddings": True, "use_sliding_window": False, "sliding_window": 32,
         "max_window_layers": 2, "torch_dtype": "float16"}
make("tiny-qwen2", qwen2, llama_weights, llama_forward, torch.float16, kv_heads=2)
