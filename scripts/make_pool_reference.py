#!/usr/bin/python3
"""Writes tests/reference/pool.json: PyTorch's answers for the pooling, padding and resampling
ops (max_pool1d, max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d, pad,
interpolate) with every option, in the record format of make_reference.py (whose machinery this
reuses), both dtypes. tests/ops/pool_test.cpp replays it.

Edge cases: ties (the gradient goes to the first), NaN in a window (PyTorch picks the last NaN),
all-negative inputs under −inf padding, an empty batch, a kernel as large as the input, ceil_mode
windows hanging off the end, negative pad amounts, ±inf next to bilinear taps of weight 0.

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_pool_reference.py
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_reference import INF, NAN, Case, rng_for, t, uniform  # noqa: E402

# The linear ops: their second-order product is identically zero, so not recorded.
ref.LINEAR |= {"avg_pool2d", "adaptive_avg_pool2d", "pad", "interpolate"}


def distinct(label, shape, low=-2.0, high=2.0):
    """Values without ties (a random permutation of a grid), so that finite differences of a max
    pool never straddle a tie."""
    rng = rng_for("pool", label)
    n = 1
    for s in shape:
        n *= s
    vals = [low + (high - low) * (i + 0.5) / n for i in range(n)]
    rng.shuffle(vals)
    return t([float(f"{v:.6g}") for v in vals], shape)


def torch_pool(call, xs):
    x = xs[0]
    fn = call["fn"]
    if fn == "max_pool2d":
        return F.max_pool2d(x, call["kernel"], call["stride"], call["padding"], call["dilation"],
                            call["ceil_mode"])
    if fn == "max_pool1d":
        return F.max_pool1d(x, call["kernel"], call["stride"], call["padding"], call["dilation"],
                            call["ceil_mode"])
    if fn == "avg_pool2d":
        return F.avg_pool2d(x, call["kernel"], call["stride"], call["padding"], call["ceil_mode"],
                            call["count_include_pad"], call["divisor_override"])
    if fn == "adaptive_avg_pool2d":
        return F.adaptive_avg_pool2d(x, call["output_size"])
    if fn == "adaptive_max_pool2d":
        return F.adaptive_max_pool2d(x, call["output_size"])
    if fn == "pad":
        if call["mode"] == "constant":
            return F.pad(x, call["pads"], mode="constant", value=call["value"])
        return F.pad(x, call["pads"], mode=call["mode"])
    if fn == "interpolate":
        kw = {"mode": call["mode"]}
        if call["mode"] == "bilinear":
            kw["align_corners"] = call["align_corners"]
        if call["size"] is not None:
            return F.interpolate(x, size=call["size"], **kw)
        return F.interpolate(x, scale_factor=call["scale_factor"], **kw)
    raise ValueError(fn)


CASES = []


def our_nearest(call, xs):
    """tapegrad's nearest interpolation by a scale factor: PyTorch's forward on [N, C > 1, H, W]
    (source ⌊o·(1/s)⌋ in float32) as an index gather, whose gradient is its adjoint. PyTorch's
    backward copies or halves the index where the output is as long as the input or twice as long,
    so it is not the adjoint of its own forward there."""
    x = xs[0]
    picks = []
    for axis, factor in ((2, call["scale_factor"][0]), (3, call["scale_factor"][1])):
        n = x.shape[axis]
        scale = np.float32(1.0 / factor)
        picks.append(torch.tensor([min(int(math.floor(np.float32(o) * scale)), n - 1)
                                   for o in range(math.floor(n * factor))]))
    return x[:, :, picks[0]][:, :, :, picks[1]]


ref.DIFFERENCES["nearest_scale_adjoint"] = (
    "nearest interpolation's gradient is the adjoint of its forward; PyTorch's backward copies or "
    "halves the index where the output is as long as the input or twice as long, while its forward "
    "on [N, C > 1, H, W] does not",
    our_nearest,
)


def add(op, label, call, x, sumlike, differs=None):
    case = Case(op, label, call, [x], sumlike=sumlike, differs=differs)
    case.torch_fn = lambda xs, call=call: torch_pool(call, xs)
    CASES.append(case)


def max2d(op, kernel, stride=None, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
    return op, {"fn": "max_pool2d", "kernel": list(kernel),
                "stride": None if stride is None else list(stride), "padding": list(padding),
                "dilation": list(dilation), "ceil_mode": ceil_mode}


def build():
    # ---- max_pool2d: the registered variants, then edges ----
    variants = [
        max2d("max_pool2d", (2, 2)),
        max2d("max_pool2d(kernel 3x2, stride (2, 1), padding (1, 1), dilation (1, 2))", (3, 2),
              (2, 1), (1, 1), (1, 2)),
        max2d("max_pool2d(kernel 3, stride 2, padding 1, ceil_mode)", (3, 3), (2, 2), (1, 1),
              ceil_mode=True),
    ]
    for op, call in variants:
        add(op, "[2, 2, 5, 6]", call, distinct(op + "a", [2, 2, 5, 6]), False)
        add(op, "[1, 1, 4, 7]", call, distinct(op + "b", [1, 1, 4, 7]), False)
    op, call = variants[0]
    add(op, "ties: the gradient to the first", call,
        t([[[[1.0, 1.0, 0.5, 2.0], [1.0, 0.0, 2.0, 2.0], [3.0, 3.0, -1.0, -1.0],
             [3.0, 3.0, -1.0, -1.0]]]]), False)
    add(op, "NaN in windows", call,
        t([[[[1.0, NAN, 0.5, 2.0], [NAN, 0.0, 2.0, INF], [-INF, -INF, NAN, 1.0],
             [-INF, -INF, 3.0, NAN]]]]), False)
    add(op, "empty batch [0, 2, 4, 4]", call, torch.zeros([0, 2, 4, 4], dtype=torch.float64), False)
    add(op, "extremes", call,
        t([[[[1e300, -1e300, 1e-300, 0.0], [5e-324, -5e-324, 1.0, -1.0]]]]), False)
    op, call = max2d("max_pool2d(kernel 3, stride 2, padding 1, ceil_mode)", (3, 3), (2, 2), (1, 1),
                     ceil_mode=True)
    add(op, "all negative: the -inf padding never wins", call,
        distinct(op + "neg", [1, 2, 4, 5], -3.0, -1.0), False)
    add(op, "kernel 3 on a 3x3 input", call, distinct(op + "k=n", [2, 1, 3, 3]), False)
    add(op, "ceil_mode windows off the end [1, 1, 6, 6]", call, distinct(op + "ceil", [1, 1, 6, 6]),
        False)

    # ---- max_pool1d ----
    for op, kernel, stride, padding, dilation, ceil_mode in [
            ("max_pool1d", 2, None, 0, 1, False),
            ("max_pool1d(kernel 3, stride 2, padding 1, dilation 2, ceil_mode)", 3, 2, 1, 2, True)]:
        call = {"fn": "max_pool1d", "kernel": kernel, "stride": stride, "padding": padding,
                "dilation": dilation, "ceil_mode": ceil_mode}
        add(op, "[2, 3, 9]", call, distinct(op + "a", [2, 3, 9]), False)
        add(op, "[1, 1, 6]", call, distinct(op + "b", [1, 1, 6]), False)
        add(op, "NaN and ties", call, t([[[2.0, 2.0, NAN, 1.0, NAN, NAN, -INF, 0.5, 0.5]]]), False)
        add(op, "empty batch", call, torch.zeros([0, 2, 6], dtype=torch.float64), False)

    # ---- avg_pool2d ----
    for op, kernel, stride, padding, ceil_mode, include, divisor in [
            ("avg_pool2d", (2, 2), None, (0, 0), False, True, None),
            ("avg_pool2d(kernel 3, stride 2, padding 1, ceil_mode)", (3, 3), (2, 2), (1, 1), True,
             True, None),
            ("avg_pool2d(kernel 3, stride 2, padding 1, ceil_mode, count_include_pad=false)", (3, 3),
             (2, 2), (1, 1), True, False, None),
            ("avg_pool2d(kernel (3, 2), stride 1, padding (1, 0), divisor_override=5)", (3, 2),
             (1, 1), (1, 0), False, True, 5)]:
        call = {"fn": "avg_pool2d", "kernel": list(kernel),
                "stride": None if stride is None else list(stride), "padding": list(padding),
                "ceil_mode": ceil_mode, "count_include_pad": include, "divisor_override": divisor}
        add(op, "[2, 2, 5, 6]", call, uniform(rng_for("pool", op, "a"), [2, 2, 5, 6]), True)
        add(op, "[1, 1, 4, 7]", call, uniform(rng_for("pool", op, "b"), [1, 1, 4, 7]), True)
        add(op, "inf and NaN", call,
            t([[[[1.0, INF, 0.5, 2.0, 1.0], [-1.0, 0.0, 2.0, 1.0, 3.0], [0.0, 1.0, NAN, 1.0, 2.0],
                 [1.0, 2.0, 3.0, 4.0, 5.0]]]]), True)
        add(op, "empty batch", call, torch.zeros([0, 1, 4, 4], dtype=torch.float64), True)
    op = "avg_pool2d(kernel 3, stride 2, padding 1, ceil_mode)"
    call = {"fn": "avg_pool2d", "kernel": [3, 3], "stride": [2, 2], "padding": [1, 1],
            "ceil_mode": True, "count_include_pad": True, "divisor_override": None}
    add(op, "extremes", call,
        t([[[[1e300, 1e300, -1e300, 1.0], [1e-300, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]]]), True)

    # ---- adaptive pools ----
    for fn, sumlike in (("adaptive_avg_pool2d", True), ("adaptive_max_pool2d", False)):
        for label, shape, size in [("[2, 2, 5, 7] to 3x2", [2, 2, 5, 7], [3, 2]),
                                   ("[1, 2, 4, 4] to 4x4", [1, 2, 4, 4], [4, 4]),
                                   ("[1, 1, 3, 5] to 1x1", [1, 1, 3, 5], [1, 1]),
                                   ("[1, 1, 3, 4] to 5x6 (overlapping)", [1, 1, 3, 4], [5, 6]),
                                   ("empty batch", [0, 2, 3, 3], [2, 2])]:
            call = {"fn": fn, "output_size": size}
            x = distinct(fn + label, shape) if 0 not in shape else torch.zeros(shape,
                                                                                dtype=torch.float64)
            add(fn, label, call, x, sumlike)
        add(fn, "NaN and inf", {"fn": fn, "output_size": [2, 2]},
            t([[[[1.0, NAN, 0.5], [INF, 0.0, 2.0], [-INF, 1.0, NAN]]]]), sumlike)

    # ---- pad ----
    for op, mode, value, shape, pads in [
            ("pad(constant)", "constant", 0.5, [2, 3, 4], [1, 2, 0, -1]),
            ("pad(constant)", "constant", 0.0, [2, 3], [2, 1]),
            ("pad(constant)", "constant", -1.5, [2, 2, 3], [-1, -1, 1, 0, 1, 1]),
            ("pad(constant)", "constant", 2.0, [3, 2], [0, 0, 0, 0]),
            ("pad(constant)", "constant", 1.0, [2, 3], [-2, -1]),
            ("pad(reflect)", "reflect", 0.0, [1, 2, 3, 4], [2, 1, 1, 2]),
            ("pad(reflect)", "reflect", 0.0, [2, 2, 5], [3, 4]),
            ("pad(reflect)", "reflect", 0.0, [2, 5], [4, 1]),
            ("pad(reflect)", "reflect", 0.0, [2, 3, 4], [-1, 2, 2, -1]),
            ("pad(replicate)", "replicate", 0.0, [1, 2, 3, 4], [2, 1, 1, 2]),
            ("pad(replicate)", "replicate", 0.0, [2, 2, 3], [5, 1]),
            ("pad(replicate)", "replicate", 0.0, [2, 3, 4], [-1, 3, 0, -2])]:
        call = {"fn": "pad", "mode": mode, "value": value, "pads": pads}
        label = f"{shape} by {pads}" + (f", value {value}" if mode == "constant" else "")
        add(op, label, call, uniform(rng_for("pool", op, label), shape), False)
    for op, mode in (("pad(constant)", "constant"), ("pad(reflect)", "reflect"),
                     ("pad(replicate)", "replicate")):
        call = {"fn": "pad", "mode": mode, "value": 0.0, "pads": [1, 2]}
        add(op, "empty batch [0, 2, 3]", call, torch.zeros([0, 2, 3], dtype=torch.float64), False)
        add(op, "inf and NaN [1, 1, 3]", call, t([[[INF, NAN, -INF]]]), False)
    call = {"fn": "pad", "mode": "constant", "value": -INF, "pads": [1, 1]}
    add("pad(constant)", "value -inf", call, t([[1.0, 2.0]]), False)

    # ---- interpolate ----
    for op, mode, align, size, scale in [
            ("interpolate(nearest)", "nearest", False, [5, 3], None),
            ("interpolate(nearest)", "nearest", False, [6, 8], None),
            ("interpolate(nearest)", "nearest", False, [3, 4], None),
            ("interpolate(nearest)", "nearest", False, [2, 7], None),
            ("interpolate(nearest, scale_factor)", "nearest", False, None, [1.7, 0.6]),
            ("interpolate(nearest, scale_factor)", "nearest", False, None, [2.0, 1.3]),
            ("interpolate(nearest, scale_factor)", "nearest", False, None, [0.5, 3.0]),
            # outputs as long as the input (3 rows) and twice as long (8 columns), yet ⌊o/s⌋
            # picks other rows: no copy or halving shortcut on [N, C > 1, H, W]
            ("interpolate(nearest, scale_factor)", "nearest", False, None, [1.1, 2.2]),
            ("interpolate(bilinear)", "bilinear", False, [5, 7], None),
            ("interpolate(bilinear)", "bilinear", False, [2, 3], None),
            ("interpolate(bilinear)", "bilinear", False, [3, 1], None),
            ("interpolate(bilinear, align_corners)", "bilinear", True, [5, 7], None),
            ("interpolate(bilinear, align_corners)", "bilinear", True, [1, 2], None),
            ("interpolate(bilinear, align_corners)", "bilinear", True, [2, 6], None),
            ("interpolate(bilinear, scale_factor)", "bilinear", False, None, [1.7, 0.6]),
            ("interpolate(bilinear, scale_factor)", "bilinear", False, None, [2.0, 1.3]),
            ("interpolate(bilinear, align_corners, scale_factor)", "bilinear", True, None,
             [1.5, 2.5])]:
        call = {"fn": "interpolate", "mode": mode, "align_corners": align, "size": size,
                "scale_factor": scale}
        label = f"[2, 2, 3, 4] to {size}" if size else f"[2, 2, 3, 4] by {scale}"
        differs = "nearest_scale_adjoint" if scale == [1.1, 2.2] else None
        add(op, label, call, uniform(rng_for("pool", op, label), [2, 2, 3, 4]), mode == "bilinear",
            differs)
    for op, mode, align in (("interpolate(nearest)", "nearest", False),
                            ("interpolate(bilinear)", "bilinear", False),
                            ("interpolate(bilinear, align_corners)", "bilinear", True)):
        call = {"fn": "interpolate", "mode": mode, "align_corners": align, "size": [2, 5],
                "scale_factor": None}
        add(op, "empty batch", call, torch.zeros([0, 1, 2, 3], dtype=torch.float64),
            mode == "bilinear")
        add(op, "inf and NaN", call, t([[[[INF, 1.0, 2.0], [0.0, NAN, -1.0]]]]), mode == "bilinear")
        call = dict(call, size=[2, 3])
        add(op, "same size: a copy (inf times weight 0 is NaN)", call,
            t([[[[INF, 1.0, 2.0], [0.0, 3.0, -1.0]]]]), mode == "bilinear")
    return CASES


def main():
    ref.write("pool.json", dict(ref.HEADER, generator="scripts/make_pool_reference.py"),
              ref.op_records(build()))


if __name__ == "__main__":
    sys.exit(main())
