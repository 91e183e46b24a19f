#!/usr/bin/env python3
"""examples/train_char_gpt in PyTorch (1.13 here): the same model (scripts/bench_pytorch.py's,
with nanoGPT's initialisation), data split, batches drawn the same way, AdamW groups, clipping and
schedule, and the same final measure: the mean loss over every non-overlapping window of the
validation split. The reference point for the example's validation loss."""
import argparse
import gzip
import math
import os
import time

import torch
import torch.nn.functional as F

import bench_pytorch as gpt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decay-embeddings", action="store_true",
                        help="decay the embeddings too, as nanoGPT (the example's flag)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with gzip.open(os.path.join(ROOT, "examples/data/tinyshakespeare.txt.gz"), "rb") as f:
        text = f.read()
    alphabet = sorted(set(text))
    index = {c: i for i, c in enumerate(alphabet)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]

    model = gpt.GPT()
    for name, p in model.named_parameters():  # nanoGPT's _init_weights and c_proj scaling
        if p.dim() >= 2:
            std = 0.02 / math.sqrt(2 * gpt.LAYERS) if name.endswith("_proj.weight") else 0.02
            torch.nn.init.normal_(p, 0.0, std)
    embeddings = {"wte.weight", "wpe.weight"}
    decays = {name: p.dim() >= 2 and (args.decay_embeddings or name not in embeddings)
              for name, p in model.named_parameters()}
    decayed = [p for name, p in model.named_parameters() if decays[name]]
    other = [p for name, p in model.named_parameters() if not decays[name]]
    lr, min_lr, warmup = 1e-3, 1e-4, 100
    adamw = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.1},
                               {"params": other, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))
    start = time.time()
    for step in range(args.steps):
        if step < warmup:
            rate = lr * (step + 1) / (warmup + 1)
        else:
            progress = min((step - warmup) / (args.steps - warmup), 1.0)
            rate = min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (lr - min_lr)
        for group in adamw.param_groups:
            group["lr"] = rate
        ix = torch.randint(len(train) - gpt.CONTEXT, (gpt.BATCH,))
        x = torch.stack([train[i:i + gpt.CONTEXT] for i in ix])
        y = torch.stack([train[i + 1:i + 1 + gpt.CONTEXT] for i in ix])
        loss = F.cross_entropy(model(x).view(-1, len(alphabet)), y.view(-1))
        adamw.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        adamw.step()
        if (step + 1) % 250 == 0:
            print(f"step {step + 1}: train loss {loss.item():.4f}", flush=True)
    seconds = time.time() - start
    with torch.no_grad():
        windows = (len(val) - 1) // gpt.CONTEXT
        total = 0.0
        for first in range(0, windows, 64):
            rows = range(first, min(first + 64, windows))
            x = torch.stack([val[w * gpt.CONTEXT:(w + 1) * gpt.CONTEXT] for w in rows])
            y = torch.stack([val[w * gpt.CONTEXT + 1:(w + 1) * gpt.CONTEXT + 1] for w in rows])
            total += F.cross_entropy(model(x).view(-1, len(alphabet)), y.view(-1)).item() * len(rows)
    print(f"training wall time {seconds:.1f} s")
    print(f"final validation loss: {total / windows:.4f}")


if __name__ == "__main__":
    main()
