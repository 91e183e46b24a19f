#!/usr/bin/python3
"""Writes tests/reference/digits_cnn.safetensors and digits_cnn.json: a state_dict saved by
PyTorch for the CNN of examples/train_digits_cnn (digits::make_cnn with 16 channels, the same
nn.Sequential), and PyTorch's outputs for a fixed input, which tests/nn/cnn_state_dict_test.cpp
replays: tapegrad must load PyTorch's file and give PyTorch's outputs, and its own file must hold
the same names, dtypes and shapes.

The model is trained for three Adam steps on random data first, so that the batch norms' running
statistics and num_batches_tracked are not their initial values. The file is written here
byte by byte in the safetensors format (Debian has no python3-safetensors): an 8-byte
little-endian header length, the JSON header, then the tensors' bytes.

Run by hand (Debian's python3-torch): /usr/bin/python3 scripts/make_cnn_state_dict_reference.py
"""
import json
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "reference")
DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def digits_cnn(channels):
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.BatchNorm2d(2 * channels), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * channels * 4 * 4, 10))


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def main():
    torch.manual_seed(14)
    model = digits_cnn(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        x = torch.randn(32, 1, 8, 8)
        labels = torch.randint(0, 10, (32,))
        optimizer.zero_grad()
        F.cross_entropy(model(x), labels).backward()
        optimizer.step()
    write_safetensors(os.path.join(OUT_DIR, "digits_cnn.safetensors"), model.state_dict())

    x = torch.randn(4, 1, 8, 8)
    model.eval()
    with torch.no_grad():
        eval_logits = model(x)
    model.train()
    with torch.no_grad():
        train_logits = model(x)  # batch statistics; updates the running ones
    record = {
        "input": x.flatten().tolist(),
        "eval_logits": eval_logits.flatten().tolist(),
        "train_logits": train_logits.flatten().tolist(),
        "running_mean_after_train_forward": model[1].running_mean.tolist(),
        "running_var_after_train_forward": model[1].running_var.tolist(),
        "num_batches_tracked_after_train_forward": int(model[1].num_batches_tracked),
    }
    with open(os.path.join(OUT_DIR, "digits_cnn.json"), "w") as f:
        json.dump(record, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
