#!/usr/bin/python3
"""Writes tests/reference/transformer_modules.json: PyTorch 1.13's nn.MultiheadAttention and
nn.TransformerEncoderLayer, and a small GPT written here with nanoGPT's structure and names
(weight tying, GELU with the tanh approximation, causal attention), run on given weights and
inputs; replayed by tests/nn/transformer_test.cpp.

Each case, in float64 and float32 (the same values rounded), holds the module's options, its repr
(MultiheadAttention, TransformerEncoderLayer), its state_dict (names, shapes, values: the tied GPT
weight under both names), the inputs and masks, PyTorch's outputs and the gradients of
⟨output, g⟩ (+ ⟨weights, g_w⟩ where attention weights are returned) with respect to the floating
inputs and every parameter (named_parameters, a tied parameter once). GPT cases hold the loss
and its gradients, and the parameters after three AdamW steps with nanoGPT's groups as
nn::weight_decay_groups forms them (rank ≥ 2 decayed except the position embedding wpe; the
tied wte/lm_head weight decayed).

TransformerEncoderLayer runs in eval mode (dropout off) with grad enabled and parameters
requiring grad, so PyTorch takes its regular path, not torch._transformer_encoder_layer_fwd.

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_transformer_reference.py
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_reference import rng_for, uniform  # noqa: E402

torch.set_num_threads(1)


def tensor_record(t, dtype_name):
    return {"shape": list(t.shape), "values": ref.values(t, dtype_name)}


def mask_record(m, dtype_name):
    if m is None:
        return None
    if m.dtype == torch.bool:
        return {"shape": list(m.shape), "bool": [bool(v) for v in m.reshape(-1).tolist()]}
    return dict(tensor_record(m, dtype_name), dtype=dtype_name)


def set_parameters(module, rng):
    with torch.no_grad():
        for name, p in module.named_parameters():
            is_norm_weight = name.endswith("weight") and p.dim() == 1
            lo, hi = (0.5, 1.5) if is_norm_weight else (-0.5, 0.5)
            p.copy_(uniform(rng, list(p.shape), lo, hi))


def state_record(module, dtype_name):
    return [[k, list(v.shape), ref.values(v, dtype_name)] for k, v in module.state_dict().items()]


def gradients(outputs, cotangents, module, inputs, dtype_name):
    named = list(module.named_parameters())
    wrt = list(inputs.values()) + [p for _, p in named]
    grads = torch.autograd.grad(outputs, wrt, cotangents, allow_unused=True)
    out = {}
    for key, g in zip(list(inputs.keys()) + [n for n, _ in named], grads):
        out[key] = ref.values(g if g is not None else torch.zeros_like(wrt[len(out)]), dtype_name)
    return out


# ---- MultiheadAttention ----

MHA_CASES = [
    # name, options, call
    ("cross-attention [L, N, E], weights averaged",
     {"embed_dim": 8, "num_heads": 2, "batch_first": False, "bias": True, "L": 3, "S": 4, "N": 2,
      "self": False}, {"need_weights": True, "average_attn_weights": True}),
    ("self-attention batch_first, bool key_padding_mask, weights per head",
     {"embed_dim": 8, "num_heads": 2, "batch_first": True, "bias": True, "L": 4, "S": 4, "N": 2,
      "self": True}, {"need_weights": True, "average_attn_weights": False, "key_padding_mask": "bool"}),
    ("self-attention batch_first, bool attn_mask [L, S], no weights",
     {"embed_dim": 8, "num_heads": 4, "batch_first": True, "bias": True, "L": 5, "S": 5, "N": 2,
      "self": True}, {"need_weights": False, "attn_mask": "bool2d"}),
    ("cross-attention, float attn_mask [N*H, L, S] and bool key_padding_mask, weights averaged",
     {"embed_dim": 6, "num_heads": 3, "batch_first": False, "bias": True, "L": 3, "S": 5, "N": 2,
      "self": False},
     {"need_weights": True, "average_attn_weights": True, "attn_mask": "float3d",
      "key_padding_mask": "bool"}),
    ("unbatched [L, E], bool attn_mask, weights averaged",
     {"embed_dim": 8, "num_heads": 2, "batch_first": False, "bias": True, "L": 4, "S": 4, "N": 0,
      "self": True}, {"need_weights": True, "average_attn_weights": True, "attn_mask": "bool2d"}),
    ("no bias, float key_padding_mask, no weights",
     {"embed_dim": 8, "num_heads": 2, "batch_first": True, "bias": False, "L": 3, "S": 4, "N": 2,
      "self": False}, {"need_weights": False, "key_padding_mask": "float"}),
    ("bool attn_mask and bool key_padding_mask together, no weights",
     {"embed_dim": 8, "num_heads": 2, "batch_first": True, "bias": True, "L": 4, "S": 4, "N": 2,
      "self": True}, {"need_weights": False, "attn_mask": "bool2d", "key_padding_mask": "bool"}),
]


def bool_mask(rng, shape):
    """Random "not allowed" entries, at least one allowed key per query (PyTorch 1.13 gives NaN for
    a fully masked row, tapegrad 0)."""
    m = torch.tensor([rng.random() < 0.35 for _ in range(math.prod(shape))]).reshape(shape)
    m[..., 0] = False
    return m


def build_mha(name, o, call, dtype_name):
    dtype = ref.DTYPES[dtype_name]
    torch.manual_seed(0)
    rng = rng_for("mha", name)
    module = nn.MultiheadAttention(o["embed_dim"], o["num_heads"], bias=o["bias"],
                                   batch_first=o["batch_first"])
    set_parameters(module, rng)
    module = module.to(dtype)
    e, n, l, s = o["embed_dim"], o["N"], o["L"], o["S"]

    def shaped(length):
        if n == 0:
            return [length, e]
        return [n, length, e] if o["batch_first"] else [length, n, e]

    inputs = {}
    if o["self"]:
        inputs["x"] = uniform(rng, shaped(l)).to(dtype).requires_grad_(True)
        q = k = v = inputs["x"]
    else:
        for key, length in (("query", l), ("key", s), ("value", s)):
            inputs[key] = uniform(rng, shaped(length)).to(dtype).requires_grad_(True)
        q, k, v = inputs["query"], inputs["key"], inputs["value"]
    kpm = None
    batch = max(n, 1)
    if call.get("key_padding_mask") == "bool":
        kpm = bool_mask(rng, [batch, s] if n else [s])
    elif call.get("key_padding_mask") == "float":
        kpm = uniform(rng, [batch, s], -2.0, 0.0).to(dtype)
    attn_mask = None
    if call.get("attn_mask") == "bool2d":
        attn_mask = bool_mask(rng, [l, s])
    elif call.get("attn_mask") == "float3d":
        attn_mask = uniform(rng, [batch * o["num_heads"], l, s], -2.0, 1.0).to(dtype)
    out, weights = module(q, k, v, key_padding_mask=kpm, attn_mask=attn_mask,
                          need_weights=call["need_weights"],
                          average_attn_weights=call.get("average_attn_weights", True))
    g = uniform(rng_for("mha", name, "g"), list(out.shape)).to(dtype)
    outputs, cotangents = [out], [g]
    record = {"op": "MultiheadAttention", "case": name, "dtype": dtype_name, "options": o,
              "call": {"need_weights": call["need_weights"],
                       "average_attn_weights": call.get("average_attn_weights", True),
                       "key_padding_mask": mask_record(kpm, dtype_name),
                       "attn_mask": mask_record(attn_mask, dtype_name)},
              "repr": repr(module), "state_dict": state_record(module, dtype_name),
              "inputs": {k2: tensor_record(t, dtype_name) for k2, t in inputs.items()},
              "output": tensor_record(out, dtype_name), "cotangent": ref.values(g, dtype_name)}
    if weights is not None:
        gw = uniform(rng_for("mha", name, "gw"), list(weights.shape)).to(dtype)
        outputs.append(weights)
        cotangents.append(gw)
        record["weights"] = tensor_record(weights, dtype_name)
        record["weights_cotangent"] = ref.values(gw, dtype_name)
    record["grads"] = gradients(outputs, cotangents, module, inputs, dtype_name)
    return record


# ---- TransformerEncoderLayer ----

ENCODER_CASES = [
    ("post-norm relu [S, N, E] with src_key_padding_mask",
     {"d_model": 8, "nhead": 2, "dim_feedforward": 16, "dropout": 0.1, "activation": "relu",
      "batch_first": False, "norm_first": False, "S": 5, "N": 2, "layer_norm_eps": 1e-5},
     {"src_key_padding_mask": True}),
    ("pre-norm gelu batch_first with src_key_padding_mask",
     {"d_model": 8, "nhead": 4, "dim_feedforward": 12, "dropout": 0.1, "activation": "gelu",
      "batch_first": True, "norm_first": True, "S": 4, "N": 3, "layer_norm_eps": 1e-5},
     {"src_key_padding_mask": True}),
    ("post-norm gelu batch_first with a bool src_mask, eps 1e-6",
     {"d_model": 6, "nhead": 2, "dim_feedforward": 10, "dropout": 0.2, "activation": "gelu",
      "batch_first": True, "norm_first": False, "S": 4, "N": 2, "layer_norm_eps": 1e-6},
     {"src_mask": True}),
    ("pre-norm relu [S, N, E] with both masks",
     {"d_model": 8, "nhead": 2, "dim_feedforward": 16, "dropout": 0.1, "activation": "relu",
      "batch_first": False, "norm_first": True, "S": 5, "N": 2, "layer_norm_eps": 1e-5},
     {"src_key_padding_mask": True, "src_mask": True}),
]


def build_encoder(name, o, call, dtype_name):
    dtype = ref.DTYPES[dtype_name]
    torch.manual_seed(0)
    rng = rng_for("encoder", name)
    module = nn.TransformerEncoderLayer(o["d_model"], o["nhead"], o["dim_feedforward"],
                                        o["dropout"], o["activation"], o["layer_norm_eps"],
                                        batch_first=o["batch_first"], norm_first=o["norm_first"])
    set_parameters(module, rng)
    module = module.to(dtype)
    module.eval()
    n, s, e = o["N"], o["S"], o["d_model"]
    shape = [n, s, e] if o["batch_first"] else [s, n, e]
    x = uniform(rng, shape).to(dtype).requires_grad_(True)
    kpm = bool_mask(rng, [n, s]) if call.get("src_key_padding_mask") else None
    src_mask = bool_mask(rng, [s, s]) if call.get("src_mask") else None
    y = module(x, src_mask=src_mask, src_key_padding_mask=kpm)
    g = uniform(rng_for("encoder", name, "g"), list(y.shape)).to(dtype)
    return {"op": "TransformerEncoderLayer", "case": name, "dtype": dtype_name, "options": o,
            "call": {"src_key_padding_mask": mask_record(kpm, dtype_name),
                     "src_mask": mask_record(src_mask, dtype_name)},
            "repr": repr(module), "state_dict": state_record(module, dtype_name),
            "inputs": {"x": tensor_record(x, dtype_name)}, "output": tensor_record(y, dtype_name),
            "cotangent": ref.values(g, dtype_name),
            "grads": gradients([y], [g], module, {"x": x}, dtype_name)}


# ---- nanoGPT ----

class CausalSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_attn = nn.Linear(c["n_embd"], 3 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(c["n_embd"], c["n_embd"], bias=c["bias"])
        self.resid_dropout = nn.Dropout(c["dropout"])
        self.n_head = c["n_head"]
        self.n_embd = c["n_embd"]
        block = c["block_size"]
        self.register_buffer("mask", torch.tril(torch.ones(block, block)).bool(), persistent=False)

    def forward(self, x):
        b, t, c = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(~self.mask[:t, :t], float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c_fc = nn.Linear(c["n_embd"], 4 * c["n_embd"], bias=c["bias"])
        self.c_proj = nn.Linear(4 * c["n_embd"], c["n_embd"], bias=c["bias"])
        self.dropout = nn.Dropout(c["dropout"])

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x), approximate="tanh")))


def layer_norm(c):
    # PyTorch 1.13's LayerNorm has no bias flag: nanoGPT's LayerNorm without bias is this one
    # with its bias frozen at zero and removed.
    norm = nn.LayerNorm(c["n_embd"])
    if not c["bias"]:
        del norm.bias
        norm.register_parameter("bias", None)
    return norm


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_1 = layer_norm(c)
        self.attn = CausalSelfAttention(c)
        self.ln_2 = layer_norm(c)
        self.mlp = MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(c["vocab_size"], c["n_embd"]),
            wpe=nn.Embedding(c["block_size"], c["n_embd"]),
            drop=nn.Dropout(c["dropout"]),
            h=nn.ModuleList([Block(c) for _ in range(c["n_layer"])]),
            ln_f=layer_norm(c)))
        self.lm_head = nn.Linear(c["n_embd"], c["vocab_size"], bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx, targets):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


GPT_CASES = [
    ("n_layer 2, n_head 2, n_embd 16, bias", {"bias": True}),
    ("n_layer 2, n_head 2, n_embd 16, no bias", {"bias": False}),
]

ADAMW = {"lr": 1e-2, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}


def build_gpt(name, extra, dtype_name):
    dtype = ref.DTYPES[dtype_name]
    c = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0, **extra)
    torch.manual_seed(0)
    rng = rng_for("gpt", name)
    model = GPT(c)
    set_parameters(model, rng)
    model = model.to(dtype)
    idx = torch.tensor([[rng.randrange(c["vocab_size"]) for _ in range(7)] for _ in range(2)])
    targets = torch.tensor([[rng.randrange(c["vocab_size"]) for _ in range(7)] for _ in range(2)])
    targets[1, 3] = -1  # nanoGPT's ignore_index
    state = state_record(model, dtype_name)
    logits, loss = model(idx, targets)
    grads = dict(zip([n for n, _ in model.named_parameters()],
                     torch.autograd.grad(loss, list(model.parameters()))))
    record = {"op": "GPT", "case": name, "dtype": dtype_name, "config": c, "state_dict": state,
              "idx": idx.reshape(-1).tolist(), "targets": targets.reshape(-1).tolist(),
              "shape": list(idx.shape), "logits": tensor_record(logits, dtype_name),
              "loss": ref.values(loss.reshape(1), dtype_name),
              "grads": {n: ref.values(g, dtype_name) for n, g in grads.items()}}
    # nn::weight_decay_groups(model, AdamWOptions{...}): matrices decayed except the position
    # embedding (an Embedding weight only); the tied wte/lm_head weight is also a Linear weight.
    named = list(model.named_parameters())
    decayed = [p for n, p in named if p.dim() >= 2 and n != "transformer.wpe.weight"]
    rest = [p for n, p in named if not (p.dim() >= 2 and n != "transformer.wpe.weight")]
    record["decayed"] = [n for n, p in named if p.dim() >= 2 and n != "transformer.wpe.weight"]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": ADAMW["weight_decay"]},
                                   {"params": rest, "weight_decay": 0.0}],
                                  lr=ADAMW["lr"], betas=ADAMW["betas"], eps=ADAMW["eps"])
    for _ in range(3):
        optimizer.zero_grad()
        model(idx, targets)[1].backward()
        optimizer.step()
    record["adamw"] = dict(ADAMW, steps=3)
    record["after_adamw"] = {n: ref.values(p, dtype_name) for n, p in model.named_parameters()}
    return record


def main():
    records = []
    for dtype_name in ("float64", "float32"):
        records += [build_mha(*case, dtype_name) for case in MHA_CASES]
        records += [build_encoder(*case, dtype_name) for case in ENCODER_CASES]
        records += [build_gpt(*case, dtype_name) for case in GPT_CASES]
    ref.write("transformer_modules.json",
              {"generator": "scripts/make_transformer_reference.py",
               "pytorch": torch.__version__}, records)


if __name__ == "__main__":
    sys.exit(main())
