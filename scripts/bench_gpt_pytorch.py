#!/usr/bin/env python3
"""W7 in PyTorch from Python: one training step of examples/train_char_gpt's model, written as
nanoGPT writes it (benchmarks/workloads.h has the sizes; torch_bench.cpp the libtorch twin).

Prints one JSON object: the median step time in ms over --steps timed steps (after 3 warm-up
steps) for each thread count given, with the torch version. Used by scripts/bench.py --torch.
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH, CONTEXT, LAYERS, HEADS, CHANNELS, VOCAB = 12, 64, 4, 4, 128, 65


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.Parameter(torch.ones(CHANNELS))
        self.ln_2 = nn.Parameter(torch.ones(CHANNELS))
        self.c_attn = nn.Linear(CHANNELS, 3 * CHANNELS, bias=False)
        self.attn_proj = nn.Linear(CHANNELS, CHANNELS, bias=False)
        self.c_fc = nn.Linear(CHANNELS, 4 * CHANNELS, bias=False)
        self.mlp_proj = nn.Linear(4 * CHANNELS, CHANNELS, bias=False)

    def forward(self, x, causal):
        b, t, _ = x.shape
        d = CHANNELS // HEADS
        q, k, v = self.c_attn(F.layer_norm(x, (CHANNELS,), self.ln_1)).split(CHANNELS, dim=2)
        q, k, v = (z.view(b, t, HEADS, d).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
        att = F.softmax(att.masked_fill(~causal, float("-inf")), dim=-1)
        x = x + self.attn_proj((att @ v).transpose(1, 2).contiguous().view(b, t, CHANNELS))
        return x + self.mlp_proj(F.gelu(self.c_fc(F.layer_norm(x, (CHANNELS,), self.ln_2)),
                                        approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, CHANNELS)
        self.wpe = nn.Embedding(CONTEXT, CHANNELS)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.Parameter(torch.ones(CHANNELS))

    def forward(self, idx):
        t = idx.shape[1]
        causal = torch.ones(t, t, dtype=torch.bool).tril()
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.blocks:
            x = block(x, causal)
        return F.layer_norm(x, (CHANNELS,), self.ln_f) @ self.wte.weight.t()


def median_step_ms(threads, steps):
    torch.set_num_threads(threads)
    torch.manual_seed(7)
    model = GPT()
    decayed = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    adamw = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                               {"params": other, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    x = torch.randint(VOCAB, (BATCH, CONTEXT))
    y = torch.randint(VOCAB, (BATCH, CONTEXT))

    def step():
        adamw.zero_grad()
        loss = F.cross_entropy(model(x).view(-1, VOCAB), y.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        adamw.step()

    for _ in range(3):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    result = {"torch": torch.__version__,
              "ms": {str(t): median_step_ms(t, args.steps) for t in args.threads}}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
