#!/usr/bin/python3
"""Writes tests/reference/cnn_modules.json: PyTorch 1.13's convolution, pooling and normalisation
modules (Conv1d, Conv2d, ConvTranspose2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d,
BatchNorm2d, GroupNorm, Dropout2d in evaluation) run on given weights and inputs, replayed by
tests/nn/cnn_module_test.cpp.

Each case, in float64 and float32 (the same values rounded), holds the module and its options, its
repr, its state_dict keys and shapes, the parameters it is given and a sequence of steps: the mode
(train or eval), the input, a cotangent g, PyTorch's output, the gradients of ⟨output, g⟩ with
respect to the input and every parameter, and the buffers after the step (running statistics and
num_batches_tracked). BatchNorm cases take two or three training steps, then an evaluation step.

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_cnn_module_reference.py
"""
import json
import os
import random
import sys
import zlib

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402

torch.set_num_threads(1)


def rng_for(*parts):
    return random.Random(zlib.crc32("/".join(parts).encode()))


def uniform(rng, shape, low=-2.0, high=2.0):
    n = 1
    for d in shape:
        n *= d
    return torch.tensor([float(f"{rng.uniform(low, high):.6g}") for _ in range(n)],
                        dtype=torch.float64).reshape(shape)


def make(kind, o):
    if kind == "Conv1d":
        return nn.Conv1d(o["in"], o["out"], o["kernel_size"], stride=o.get("stride", 1),
                         padding=o.get("padding", 0), dilation=o.get("dilation", 1),
                         groups=o.get("groups", 1), bias=o.get("bias", True))
    if kind == "Conv2d":
        return nn.Conv2d(o["in"], o["out"], tuple(o["kernel_size"]),
                         stride=tuple(o.get("stride", [1, 1])),
                         padding=o["padding"] if isinstance(o.get("padding"), str)
                         else tuple(o.get("padding", [0, 0])),
                         dilation=tuple(o.get("dilation", [1, 1])), groups=o.get("groups", 1),
                         bias=o.get("bias", True))
    if kind == "ConvTranspose2d":
        return nn.ConvTranspose2d(o["in"], o["out"], tuple(o["kernel_size"]),
                                  stride=tuple(o.get("stride", [1, 1])),
                                  padding=tuple(o.get("padding", [0, 0])),
                                  output_padding=tuple(o.get("output_padding", [0, 0])),
                                  groups=o.get("groups", 1), bias=o.get("bias", True),
                                  dilation=tuple(o.get("dilation", [1, 1])))
    def pool(v):  # an int where both numbers are equal, as a user writes it (and repr prints it)
        return v[0] if v is not None and v[0] == v[1] else (tuple(v) if v is not None else None)
    if kind == "MaxPool2d":
        return nn.MaxPool2d(pool(o["kernel_size"]), stride=pool(o.get("stride")),
                            padding=pool(o.get("padding", [0, 0])),
                            dilation=pool(o.get("dilation", [1, 1])),
                            ceil_mode=o.get("ceil_mode", False))
    if kind == "AvgPool2d":
        return nn.AvgPool2d(pool(o["kernel_size"]), stride=pool(o.get("stride")),
                            padding=pool(o.get("padding", [0, 0])),
                            ceil_mode=o.get("ceil_mode", False),
                            count_include_pad=o.get("count_include_pad", True),
                            divisor_override=o.get("divisor_override"))
    if kind == "AdaptiveAvgPool2d":
        return nn.AdaptiveAvgPool2d(tuple(o["output_size"]))
    if kind in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(nn, kind)(o["num_features"], eps=o.get("eps", 1e-5),
                                 momentum=o.get("momentum", 0.1), affine=o.get("affine", True),
                                 track_running_stats=o.get("track_running_stats", True))
    if kind == "GroupNorm":
        return nn.GroupNorm(o["num_groups"], o["num_channels"], eps=o.get("eps", 1e-5),
                            affine=o.get("affine", True))
    if kind == "Dropout2d":
        return nn.Dropout2d(o["p"])
    raise ValueError(kind)


# (case name, module, options, input shapes of the steps, modes of the steps)
CASES = [
    ("Conv1d stride 2, padding 1", "Conv1d",
     {"in": 2, "out": 3, "kernel_size": 3, "stride": 2, "padding": 1}, [[2, 2, 7]], ["train"]),
    ("Conv1d groups 2, dilation 2, no bias", "Conv1d",
     {"in": 4, "out": 2, "kernel_size": 2, "dilation": 2, "groups": 2, "bias": False},
     [[1, 4, 6]], ["train"]),
    ("Conv2d padding 1", "Conv2d",
     {"in": 2, "out": 3, "kernel_size": [3, 3], "padding": [1, 1]}, [[2, 2, 4, 5]], ["train"]),
    ("Conv2d (3, 2) stride (2, 1) dilation (1, 2) groups 2 no bias", "Conv2d",
     {"in": 4, "out": 4, "kernel_size": [3, 2], "stride": [2, 1], "dilation": [1, 2], "groups": 2,
      "bias": False}, [[1, 4, 5, 5]], ["train"]),
    ("Conv2d padding same", "Conv2d",
     {"in": 1, "out": 2, "kernel_size": [2, 3], "padding": "same"}, [[2, 1, 4, 4]], ["train"]),
    ("ConvTranspose2d stride 2", "ConvTranspose2d",
     {"in": 3, "out": 2, "kernel_size": [2, 2], "stride": [2, 2]}, [[2, 3, 3, 2]], ["train"]),
    ("ConvTranspose2d padding, output_padding, groups 2", "ConvTranspose2d",
     {"in": 2, "out": 4, "kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1],
      "output_padding": [1, 1], "groups": 2}, [[1, 2, 3, 3]], ["train"]),
    ("MaxPool2d 2", "MaxPool2d", {"kernel_size": [2, 2]}, [[2, 2, 4, 5]], ["train"]),
    ("MaxPool2d 3 stride 2 padding 1", "MaxPool2d",
     {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}, [[1, 2, 5, 5]], ["train"]),
    ("AvgPool2d 2 stride 1 padding 1 without the padding", "AvgPool2d",
     {"kernel_size": [2, 2], "stride": [1, 1], "padding": [1, 1], "count_include_pad": False},
     [[1, 2, 3, 3]], ["train"]),
    ("AvgPool2d (2, 3)", "AvgPool2d", {"kernel_size": [2, 3]}, [[2, 1, 4, 6]], ["train"]),
    ("AdaptiveAvgPool2d (2, 3)", "AdaptiveAvgPool2d", {"output_size": [2, 3]}, [[2, 2, 5, 7]],
     ["train"]),
    ("BatchNorm1d [N, C], two training steps, then eval", "BatchNorm1d", {"num_features": 3},
     [[4, 3], [5, 3], [2, 3]], ["train", "train", "eval"]),
    ("BatchNorm1d [N, C, L] momentum None, three training steps, then eval", "BatchNorm1d",
     {"num_features": 2, "momentum": None}, [[3, 2, 4], [2, 2, 3], [4, 2, 2], [2, 2, 3]],
     ["train", "train", "train", "eval"]),
    ("BatchNorm2d eps 1e-3 momentum 0.3, two training steps, then eval", "BatchNorm2d",
     {"num_features": 2, "eps": 1e-3, "momentum": 0.3}, [[2, 2, 3, 3], [3, 2, 2, 2], [1, 2, 2, 3]],
     ["train", "train", "eval"]),
    ("BatchNorm2d without affine nor running stats", "BatchNorm2d",
     {"num_features": 3, "affine": False, "track_running_stats": False},
     [[2, 3, 2, 2], [2, 3, 1, 3]], ["train", "eval"]),
    ("GroupNorm 2 groups of 4 channels", "GroupNorm", {"num_groups": 2, "num_channels": 4},
     [[2, 4, 3, 2]], ["train"]),
    ("GroupNorm without affine", "GroupNorm", {"num_groups": 3, "num_channels": 3, "affine": False},
     [[2, 3, 4]], ["train"]),
    ("Dropout2d in eval", "Dropout2d", {"p": 0.5}, [[2, 3, 2, 2]], ["eval"]),
]


def values(t, dtype):
    return ref.values(t, dtype)


def build(name, kind, options, shapes, modes, dtype_name):
    dtype = ref.DTYPES[dtype_name]
    torch.manual_seed(0)
    module = make(kind, options)
    rng = rng_for("cnn_modules", name)
    params = {}
    with torch.no_grad():
        for pname, p in module.named_parameters():
            # Given weights (away from the defaults for the norm layers' ones and zeros).
            lo, hi = (0.5, 1.5) if pname == "weight" and "Norm" in kind else (-1.0, 1.0)
            p.copy_(uniform(rng, list(p.shape), lo, hi))
    module = module.to(dtype)
    for pname, p in module.named_parameters():
        params[pname] = {"shape": list(p.shape), "values": values(p, dtype_name)}
    record = {"case": name, "dtype": dtype_name, "module": kind, "options": options,
              "repr": repr(module),
              "state_dict": [[k, list(v.shape), str(v.dtype).replace("torch.", "")]
                             for k, v in module.state_dict().items()],
              "parameters": params, "steps": []}
    for i, (shape, mode) in enumerate(zip(shapes, modes)):
        module.train(mode == "train")
        x = uniform(rng, shape).to(dtype).requires_grad_(True)
        y = module(x)
        g = uniform(rng_for("cnn_modules", name, str(i), "cotangent"), list(y.shape)).to(dtype)
        named = list(module.named_parameters())
        grads = torch.autograd.grad(y, [x] + [p for _, p in named], g, allow_unused=True)
        step = {"mode": mode, "input": {"shape": shape, "values": values(x, dtype_name)},
                "cotangent": values(g, dtype_name),
                "output": {"shape": list(y.shape), "values": values(y, dtype_name)},
                "grads": {"input": values(grads[0], dtype_name)}}
        for (pname, _), gp in zip(named, grads[1:]):
            step["grads"][pname] = values(gp, dtype_name)
        buffers = {}
        for bname, b in module.named_buffers():
            buffers[bname] = int(b) if b.dtype == torch.int64 else values(b, dtype_name)
        step["buffers"] = buffers
        record["steps"].append(step)
    return record


def main():
    records = [build(*case, dtype_name) for case in CASES for dtype_name in ("float64", "float32")]
    path = os.path.join(ref.OUT_DIR, "cnn_modules.json")
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"generator":"scripts/make_cnn_module_reference.py","pytorch":' +
                  json.dumps(torch.__version__) + ',"cases":[\n')
        out.write(",\n".join(ref.dump(r) for r in records))
        out.write("\n]}\n")
    print(f"{path}: {len(records)} records, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    sys.exit(main())
