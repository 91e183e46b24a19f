#!/usr/bin/python3
"""Writes tests/reference/conv.json: PyTorch's answers for unfold, fold, conv1d, conv2d and
conv_transpose2d (ops/conv.cpp) with every option the registry's samples use (stride, padding as
numbers, 'same' — asymmetric where the total is odd — and 'valid', dilation, groups, depthwise, no
bias, output_padding below the stride or below the dilation) and their edges (batch 0, 1×1 kernels,
the kernel as large as the input, stride past the kernel, ±inf and NaN inputs, an infinite weight
over padding, huge magnitudes), in the record format of make_reference.py (whose machinery this
reuses): output, VJP for a random cotangent and, for the convolutions (bilinear in input and
weight), the second-order product. Op names are the registry's; `call` holds every option.

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_conv_reference.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_reference import INF, NAN, Case, rng_for, uniform  # noqa: E402


def pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


def torch_conv(call, xs):
    fn = call["fn"]
    bias = xs[2] if call["bias"] else None
    if fn == "unfold":
        return F.unfold(xs[0], call["kernel"], dilation=call["dilation"], padding=call["padding"],
                        stride=call["stride"])
    if fn == "fold":
        return F.fold(xs[0], call["output_size"], call["kernel"], dilation=call["dilation"],
                      padding=call["padding"], stride=call["stride"])
    if fn == "conv1d":
        return F.conv1d(xs[0], xs[1], bias, stride=call["stride"][1], padding=(
            call["padding"] if isinstance(call["padding"], str) else call["padding"][1]),
            dilation=call["dilation"][1], groups=call["groups"])
    if fn == "conv2d":
        padding = call["padding"] if isinstance(call["padding"], str) else tuple(call["padding"])
        return F.conv2d(xs[0], xs[1], bias, stride=tuple(call["stride"]), padding=padding,
                        dilation=tuple(call["dilation"]), groups=call["groups"])
    if fn == "conv_transpose2d":
        return F.conv_transpose2d(xs[0], xs[1], bias, stride=tuple(call["stride"]),
                                  padding=tuple(call["padding"]),
                                  output_padding=tuple(call["output_padding"]),
                                  groups=call["groups"], dilation=tuple(call["dilation"]))
    raise ValueError(fn)


CASES = []


def add(op, label, call, inputs, dtypes=("float64", "float32")):
    case = Case(op, label, call, inputs, dtypes=dtypes, sumlike=True)
    case.torch_fn = lambda xs, call=call: torch_conv(call, xs)
    case.second_order = call["fn"] not in ("unfold", "fold")
    CASES.append(case)


def values(op, label, shape, low=-2.0, high=2.0):
    return uniform(rng_for("conv", op, label, str(shape)), shape, low, high)


def unfold_case(op, label, image, kernel, dilation=1, padding=0, stride=1, fold=False, x=None):
    call = {"fn": "fold" if fold else "unfold", "kernel": pair(kernel), "dilation": pair(dilation),
            "padding": pair(padding), "stride": pair(stride), "bias": False}
    if fold:
        call["output_size"] = list(image[2:])
        cols = F.unfold(torch.zeros(image, dtype=torch.float64), kernel, dilation=dilation,
                        padding=padding, stride=stride)
        shape = list(cols.shape)
    else:
        shape = list(image)
    add(op, label, call, [values(op, label, shape) if x is None else x])


def conv_case(op, label, fn, x_shape, w_shape, bias=True, stride=1, padding=0, dilation=1,
              groups=1, output_padding=0, x=None, w=None, dtypes=("float64", "float32")):
    call = {"fn": fn, "stride": pair(stride),
            "padding": padding if isinstance(padding, str) else pair(padding),
            "dilation": pair(dilation), "groups": groups, "bias": bias}
    if fn == "conv_transpose2d":
        call["output_padding"] = pair(output_padding)
    c_out = w_shape[1] * groups if fn == "conv_transpose2d" else w_shape[0]
    inputs = [values(op, label, x_shape) if x is None else x,
              values(op, label, w_shape) if w is None else w]
    if bias:
        inputs.append(values(op, label, [c_out]))
    add(op, label, call, inputs, dtypes)


def build():
    # unfold / fold: the registry's samples, then edges.
    unfold_case("unfold", "[2, 2, 4, 5], kernel 2×3", [2, 2, 4, 5], (2, 3))
    unfold_case("unfold(dilation 2, padding 1, stride 2)", "[1, 2, 5, 4], kernel 2",
                [1, 2, 5, 4], 2, 2, 1, 2)
    unfold_case("unfold(stride (2, 3) > kernel 1×2)", "[1, 1, 5, 7]", [1, 1, 5, 7], (1, 2),
                stride=(2, 3))
    unfold_case("unfold", "batch 0", [0, 2, 4, 5], (2, 3))
    unfold_case("unfold", "kernel as large as the input", [1, 2, 3, 4], (3, 4))
    unfold_case("unfold", "±inf and NaN", [1, 1, 3, 3], 2,
                x=torch.tensor([[[[1.0, INF, 2.0], [NAN, -1.0, 0.5], [-INF, 3.0, 1.0]]]],
                               dtype=torch.float64))
    unfold_case("fold", "[2, 12, 6] to 4×5, kernel 2×3", [2, 2, 4, 5], (2, 3), fold=True)
    unfold_case("fold(dilation 2, padding 1, stride 2)", "[1, 8, 6] to 5×4", [1, 2, 5, 4], 2, 2,
                1, 2, fold=True)
    unfold_case("fold", "overlapping blocks, stride 1, kernel 3", [1, 1, 4, 4], 3, fold=True)
    unfold_case("fold", "batch 0", [0, 2, 4, 5], (2, 3), fold=True)

    # conv2d: the registry's samples.
    c2 = "conv2d"
    conv_case(c2, "[2, 2, 5, 4] with [3, 2, 3, 3]", c2, [2, 2, 5, 4], [3, 2, 3, 3])
    conv_case("conv2d(stride 2, padding 1)", "[2, 2, 5, 4] with [3, 2, 2, 3]", c2, [2, 2, 5, 4],
              [3, 2, 2, 3], stride=2, padding=1)
    conv_case("conv2d(dilation 2, padding (1, 2))", "[1, 2, 5, 5] with [2, 2, 2, 2]", c2,
              [1, 2, 5, 5], [2, 2, 2, 2], padding=(1, 2), dilation=2)
    conv_case("conv2d(stride 2, groups 2)", "[2, 4, 4, 5] with [4, 2, 2, 2]", c2, [2, 4, 4, 5],
              [4, 2, 2, 2], stride=2, groups=2)
    conv_case("conv2d(depthwise)", "[1, 3, 4, 4] with [3, 1, 3, 3]", c2, [1, 3, 4, 4],
              [3, 1, 3, 3], padding=1, groups=3)
    conv_case("conv2d(padding same, kernel 2×3)", "[1, 2, 4, 5] with [2, 2, 2, 3]", c2,
              [1, 2, 4, 5], [2, 2, 2, 3], padding="same")
    conv_case("conv2d(padding valid, no bias)", "[1, 2, 4, 4] with [2, 2, 3, 3]", c2,
              [1, 2, 4, 4], [2, 2, 3, 3], bias=False, padding="valid")
    conv_case("conv2d(1×1, stride 3 > kernel)", "[1, 2, 4, 5] with [3, 2, 1, 1]", c2,
              [1, 2, 4, 5], [3, 2, 1, 1], stride=3)
    # conv2d: more options and edges.
    conv_case("conv2d(padding same, kernel 2×3)", "same, dilation (2, 1), kernel 4×2", c2,
              [1, 1, 5, 4], [2, 1, 4, 2], padding="same", dilation=(2, 1))
    conv_case("conv2d(stride 2, groups 2)", "groups 2, stride (1, 2), padding (0, 1), no bias",
              c2, [1, 4, 3, 5], [2, 2, 2, 3], bias=False, stride=(1, 2), padding=(0, 1), groups=2)
    conv_case(c2, "batch 0", c2, [0, 2, 4, 4], [3, 2, 3, 3])
    conv_case(c2, "kernel as large as the input", c2, [2, 2, 3, 4], [2, 2, 3, 4])
    conv_case(c2, "size-1 dims: [1, 1, 1, 1] with [1, 1, 1, 1]", c2, [1, 1, 1, 1], [1, 1, 1, 1])
    x = torch.ones(1, 1, 4, 4, dtype=torch.float64)
    x[0, 0, 0, 0] = INF
    x[0, 0, 3, 3] = NAN
    x[0, 0, 1, 3] = -INF
    conv_case(c2, "±inf and NaN in the input", c2, [1, 1, 4, 4], [2, 1, 2, 2], x=x)
    w = torch.ones(1, 1, 3, 3, dtype=torch.float64)
    w[0, 0, 0, 0] = INF
    conv_case(c2, "infinite weight over padding", c2, [1, 1, 3, 3], [1, 1, 3, 3], padding=1,
              x=torch.ones(1, 1, 3, 3, dtype=torch.float64), w=w)
    for dtype, big in (("float64", 1e150), ("float32", 1e18)):
        conv_case(c2, f"magnitudes {big:g}", c2, [1, 2, 3, 3], [2, 2, 2, 2],
                  x=values(c2, "big x", [1, 2, 3, 3]) * big,
                  w=values(c2, "big w", [2, 2, 2, 2]) * big, dtypes=(dtype,))

    # conv1d.
    c1 = "conv1d"
    conv_case("conv1d(stride 2, padding 1)", "[2, 2, 7] with [3, 2, 3]", c1, [2, 2, 7], [3, 2, 3],
              stride=(1, 2), padding=(0, 1))
    conv_case("conv1d(padding same, kernel 4, groups 2, no bias)", "[1, 2, 6] with [2, 1, 4]", c1,
              [1, 2, 6], [2, 1, 4], bias=False, padding="same", groups=2)
    conv_case("conv1d(stride 2, padding 1)", "valid, dilation 3", c1, [2, 1, 8], [2, 1, 2],
              padding="valid", dilation=(1, 3))

    # conv_transpose2d.
    ct = "conv_transpose2d"
    conv_case(ct, "[2, 2, 3, 3] with [2, 3, 2, 2]", ct, [2, 2, 3, 3], [2, 3, 2, 2])
    conv_case("conv_transpose2d(stride 2, padding 1, output_padding 1)",
              "[1, 2, 3, 2] with [2, 2, 3, 3]", ct, [1, 2, 3, 2], [2, 2, 3, 3], stride=2,
              padding=1, output_padding=1)
    conv_case("conv_transpose2d(groups 2, dilation 2, no bias)", "[1, 4, 3, 3] with [4, 1, 2, 2]",
              ct, [1, 4, 3, 3], [4, 1, 2, 2], bias=False, dilation=2, groups=2)
    conv_case("conv_transpose2d(output_padding 1 < dilation 2)", "[1, 1, 3, 3] with [1, 2, 2, 2]",
              ct, [1, 1, 3, 3], [1, 2, 2, 2], dilation=2, output_padding=1)
    conv_case(ct, "stride (3, 2) > kernel, padding (1, 0), output_padding (2, 1)", ct,
              [1, 2, 2, 3], [2, 1, 2, 1], stride=(3, 2), padding=(1, 0), output_padding=(2, 1))
    conv_case(ct, "batch 0", ct, [0, 2, 3, 3], [2, 3, 2, 2])
    x = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    x[0, 0, 0, 1] = INF
    x[0, 0, 1, 0] = NAN
    conv_case(ct, "±inf and NaN in the input", ct, [1, 1, 2, 2], [1, 2, 2, 2], x=x)
    return CASES


def main():
    ref.write("conv.json", dict(ref.HEADER, generator="scripts/make_conv_reference.py"),
              ref.op_records(build()))


if __name__ == "__main__":
    sys.exit(main())
