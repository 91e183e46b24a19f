#!/usr/bin/env python3
"""W5, W7 and W8 in PyTorch from Python (benchmarks/workloads.h has the sizes; torch_bench.cpp the
libtorch twins): an epoch of the digits MLP, one training step of examples/train_char_gpt's model
written as nanoGPT writes it, and one step of examples/sequence_prediction's LSTM.

Prints one JSON object: for each workload and thread count given, the median time in ms of
--steps timed calls (after 3 warm-up calls), with the torch version. Used by scripts/bench.py
--torch.
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
DIGITS_ROWS, DIGITS_FEATURES, DIGITS_HIDDEN, DIGITS_BATCH, CLASSES = 1438, 64, 256, 32, 10
LSTM_SEQUENCES, LSTM_LENGTH, LSTM_HIDDEN = 64, 23, 16


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


def gpt_step():
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
    return step


def digits_epoch():
    """Random rows of the digits' shapes: a step's time does not depend on the values."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(DIGITS_FEATURES, DIGITS_HIDDEN), nn.ReLU(),
                          nn.Linear(DIGITS_HIDDEN, CLASSES))
    adamw = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    features = torch.randn(DIGITS_ROWS, DIGITS_FEATURES)
    labels = torch.randint(CLASSES, (DIGITS_ROWS,))

    def epoch():
        order = torch.randperm(DIGITS_ROWS)
        for begin in range(0, DIGITS_ROWS, DIGITS_BATCH):
            rows = order[begin:begin + DIGITS_BATCH]
            adamw.zero_grad()
            F.cross_entropy(model(features[rows]), labels[rows]).backward()
            adamw.step()
    return epoch


def lstm_step():
    torch.manual_seed(8)
    lstm = nn.LSTM(1, LSTM_HIDDEN, batch_first=True)
    head = nn.Linear(LSTM_HIDDEN, 1)
    adam = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=0.01)
    x = torch.randn(LSTM_SEQUENCES, LSTM_LENGTH, 1)
    y = torch.randn(LSTM_SEQUENCES, LSTM_LENGTH, 1)

    def step():
        adam.zero_grad()
        F.mse_loss(head(lstm(x)[0]), y).backward()
        adam.step()
    return step


WORKLOADS = {"W5": digits_epoch, "W7": gpt_step, "W8": lstm_step}


def median_ms(make, threads, steps):
    torch.set_num_threads(threads)
    call = make()
    for _ in range(3):
        call()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--workloads", nargs="+", default=sorted(WORKLOADS), choices=sorted(WORKLOADS))
    args = parser.parse_args()
    result = {"torch": torch.__version__}
    for name in args.workloads:
        result[name] = {str(t): median_ms(WORKLOADS[name], t, args.steps) for t in args.threads}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
