#!/usr/bin/python3
"""Writes tests/reference/*.json: PyTorch's answers for every registered op, the losses, the
optimizers, the schedules and the modules, which tests/ops/reference_test.cpp replays.

Run by hand when ops change (Debian's python3-torch; CI replays the files without PyTorch):
    /usr/bin/python3 scripts/make_reference.py
The output is deterministic: every case draws its values from a generator seeded by its own name.

Each op record is one (case, dtype): the tapegrad call ("call": the function and its attributes),
the inputs, PyTorch's output, a random cotangent g and the VJP gᵀJ for every floating input, a
second random direction v and the second-order product ∇ₓ⟨gᵀJ, v⟩ (the Hessian of ⟨f(x), g⟩
times v). Numbers are JSON numbers that round-trip exactly (float32 values parse to the same
float after double rounding, checked here); "inf", "-inf" and "nan" are strings.

Tolerance (applied by the test): |got − expected| ≤ rtol · (|expected| + scale), with
rtol = 1e-12 in float64 and 4·2⁻²³ (4 ulps) in float32. `scale` (absent: zero) is per element:
  * for sums and products (reductions, matmul, linear, every VJP and second-order product),
    the sum of the absolute values of the summed terms, from the float64 Jacobian:
    Σⱼ|Jᵢⱼ xⱼ| for a forward, Σᵢ|gᵢ Jᵢⱼ| for a VJP, Σⱼ|vⱼ Kⱼₖ| for the second order (K the
    Jacobian of the VJP), so that a different summation order is not a failure;
  * plus Σ_T |∂q/∂T|·|T| over the intermediates T that PyTorch's backward formulas save (the
    output y of tanh, sigmoid, exp, softmax, ...): how far one ulp of rounding in a saved value
    moves the quantity q (1 − y² of a saturated tanh amplifies it 100-fold);
  * in float32, plus 2·|PyTorch float32 − float64 on the same float32 inputs| / rtol: where
    PyTorch's own float32 formula loses digits (1 − y² of a saturated tanh), an implementation
    that rounds one intermediate differently may differ by as much.
Non-finite expected values must match exactly (NaN with NaN, inf with inf of the same sign).
"""
import json
import math
import os
import random
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "reference")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
RTOL = {"float64": 1e-12, "float32": 4 * 2.0 ** -23}
INF = math.inf
NAN = math.nan


# ---- exact number formatting ----

class Raw:
    """JSON text inserted as is (numbers formatted here)."""

    def __init__(self, text):
        self.text = text


def number(v, dtype):
    v = float(v)
    if math.isnan(v):
        return Raw('"nan"')
    if math.isinf(v):
        return Raw('"inf"' if v > 0 else '"-inf"')
    if dtype == "float32":
        f = np.float32(v)
        text = str(f)
        # The test parses a double and rounds it to float: the shortest float32 text must
        # survive that double rounding, else write the double exactly.
        if np.float32(float(text)).tobytes() == f.tobytes():
            return Raw(text)
    return Raw(repr(v))


def scale_number(v):
    # Two significant digits, rounded up, so the stored scale is never below the computed one.
    text = f"{v * 1.06:.2g}"
    return Raw(text)


def values(t, dtype):
    if t.numel() == 0:
        return []
    if t._is_zerotensor():  # PyTorch's storage-less zeros (the derivative of sign, for one)
        t = torch.zeros(t.shape, dtype=t.dtype)
    return [number(v, dtype) for v in t.detach().double().reshape(-1).tolist()]


def dump(obj):
    if isinstance(obj, Raw):
        return obj.text
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "true" if obj else "false"
    if isinstance(obj, (int, str)):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, float):
        return number(obj, "float64").text
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dump(x) for x in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + dump(v) for k, v in obj.items()) + "}"
    raise TypeError(type(obj))


def write(name, header, records):
    """One JSON document laid out for cheap reading: line 1 the header with an index of the
    cases ([name, case, dtype] each), line 2 `"cases":[`, then one case per line. The test
    registers its cases from line 1 alone and parses a case's line only when replaying it."""
    path = os.path.join(OUT_DIR, name)
    index = [[r.get("op") or r.get("optimizer") or "clip_grad_norm", r["case"], r["dtype"]]
             for r in records]
    with open(path, "w", encoding="utf-8") as out:
        out.write("{" + ",".join(json.dumps(k) + ":" + dump(v)
                                 for k, v in dict(header, index=index).items()) + ",\n")
        out.write('"cases":[\n')
        out.write(",\n".join(dump(r) for r in records))
        out.write("\n]}\n")
    print(f"{path}: {len(records)} records, {os.path.getsize(path)} bytes")


# ---- the ops as PyTorch computes them, keyed by the test's dispatcher names ----

REDUCTIONS = ("mean", "sum", "none")


def torch_call(call, xs):
    fn = call["fn"]
    a = call
    if fn in ("add", "sub", "mul", "div", "maximum", "minimum"):
        return getattr(torch, fn)(xs[0], xs[1])
    if fn == "add_scalar":
        return xs[0] + a["scalar"]
    if fn == "mul_scalar":
        return xs[0] * a["scalar"]
    if fn == "neg":
        return -xs[0]
    if fn in ("exp", "log", "sqrt", "abs", "tanh", "sigmoid", "erf", "relu", "sin", "cos", "log1p"):
        return getattr(torch, fn)(xs[0])
    if fn == "softplus":
        return F.softplus(xs[0])
    if fn == "leaky_relu":
        return F.leaky_relu(xs[0], a["negative_slope"])
    if fn == "clamp":
        return torch.clamp(xs[0], a["low"], a["high"])
    if fn == "pow":
        return torch.pow(xs[0], a["exponent"])
    if fn == "cast":
        return xs[0].to(DTYPES[a["to"]])
    if fn in ("sum", "mean"):
        if "axis" not in a:
            return getattr(torch, fn)(xs[0])
        return getattr(torch, fn)(xs[0], a["axis"], keepdim=a["keepdim"])
    if fn == "max":
        return torch.max(xs[0], a["axis"], keepdim=a["keepdim"]).values
    if fn == "logsumexp":
        return torch.logsumexp(xs[0], a["axis"], keepdim=a["keepdim"])
    if fn == "sum_to":
        return xs[0].sum_to_size(a["shape"]) if a["shape"] else xs[0].sum()
    if fn == "broadcast_to":
        return torch.broadcast_to(xs[0], a["shape"])
    if fn == "reshape":
        return torch.reshape(xs[0], a["shape"])
    if fn == "permute":
        return xs[0].permute(a["axes"])
    if fn == "transpose":
        return torch.transpose(xs[0], a["axis0"], a["axis1"])
    if fn == "slice":
        return xs[0].narrow(a["axis"], a["start"], a["end"] - a["start"])
    if fn == "concat":
        return torch.cat(xs, a["axis"])
    if fn == "index_select":
        return torch.index_select(xs[0], a["axis"], xs[1])
    if fn == "linear":
        return F.linear(*xs)
    if fn == "matmul":
        return torch.matmul(xs[0], xs[1])
    if fn == "softmax":
        return torch.softmax(xs[0], a["axis"])
    if fn == "log_softmax":
        return torch.log_softmax(xs[0], a["axis"])
    if fn == "cross_entropy":
        return F.cross_entropy(xs[0], xs[1], reduction=a["reduction"])
    if fn == "nll_loss":
        return F.nll_loss(xs[0], xs[1], reduction=a["reduction"])
    if fn == "binary_cross_entropy_with_logits":
        # tapegrad broadcasts the targets; PyTorch wants them expanded first (same values).
        x, y = torch.broadcast_tensors(xs[0], xs[1])
        return F.binary_cross_entropy_with_logits(x, y, reduction=a["reduction"])
    if fn == "mse_loss":
        x, y = torch.broadcast_tensors(xs[0], xs[1])
        return F.mse_loss(x, y, reduction=a["reduction"])
    return everyday_call(fn, a, xs)


def everyday_call(fn, a, xs):
    """The ops of ops/everyday.h (tests/reference/everyday.json)."""
    if fn in ("argmax", "argmin"):
        if "axis" not in a:
            return getattr(torch, fn)(xs[0])
        return getattr(torch, fn)(xs[0], a["axis"], keepdim=a["keepdim"])
    if fn == "slice_step":
        index = (slice(None),) * (a["axis"] % xs[0].dim()) + (slice(a["start"], a["end"], a["step"]),)
        return xs[0][index]
    if fn == "narrow":
        return torch.narrow(xs[0], a["axis"], a["start"], a["length"])
    if fn == "gather":
        return torch.gather(xs[0], a["axis"], xs[1])
    if fn == "scatter_add":
        return torch.scatter_add(xs[0], a["axis"], xs[1], xs[2])
    if fn == "index_add":
        return torch.index_add(xs[0], a["axis"], xs[1], xs[2])
    if fn == "stack":
        return torch.stack(xs, a["axis"])
    if fn == "unsqueeze":
        return torch.unsqueeze(xs[0], a["axis"])
    if fn == "squeeze":
        return torch.squeeze(xs[0], a["axis"]) if "axis" in a else torch.squeeze(xs[0])
    if fn == "flatten":
        return torch.flatten(xs[0], a["start"], a["end"])
    if fn == "unflatten":
        return torch.unflatten(xs[0], a["axis"], a["sizes"])
    if fn == "reshape_infer":
        return torch.reshape(xs[0], a["dims"])
    if fn == "expand":
        return xs[0].expand(a["sizes"])
    if fn in ("amax", "amin"):
        return getattr(torch, fn)(xs[0], a["axis"], keepdim=a["keepdim"])
    if fn == "min":
        return torch.min(xs[0], a["axis"], keepdim=a["keepdim"]).values
    if fn in ("var", "std"):
        if "axis" not in a:
            return getattr(torch, fn)(xs[0])
        return getattr(torch, fn)(xs[0], a["axis"], correction=a["correction"], keepdim=a["keepdim"])
    if fn == "prod":
        return torch.prod(xs[0], a["axis"], keepdim=a["keepdim"]) if "axis" in a else torch.prod(xs[0])
    if fn == "cumsum":
        return torch.cumsum(xs[0], a["axis"])
    if fn == "norm":
        p = float(a["p"])
        if "axis" not in a:
            return torch.linalg.vector_norm(xs[0], p)
        return torch.linalg.vector_norm(xs[0], p, a["axis"], keepdim=a["keepdim"])
    if fn in ("sign", "rsqrt", "square"):
        return getattr(torch, fn)(xs[0])
    if fn == "silu":
        return F.silu(xs[0])
    if fn == "gelu":
        return F.gelu(xs[0], approximate=a["approximate"])
    if fn == "hardtanh":
        return F.hardtanh(xs[0], a["low"], a["high"])
    if fn == "elu":
        return F.elu(xs[0], a["alpha"])
    if fn == "l1_loss":
        x, y = torch.broadcast_tensors(xs[0], xs[1])
        return F.l1_loss(x, y, reduction=a["reduction"])
    if fn == "smooth_l1_loss":
        x, y = torch.broadcast_tensors(xs[0], xs[1])
        return F.smooth_l1_loss(x, y, reduction=a["reduction"], beta=a["beta"])
    if fn == "huber_loss":
        x, y = torch.broadcast_tensors(xs[0], xs[1])
        return F.huber_loss(x, y, reduction=a["reduction"], delta=a["delta"])
    if fn == "kl_div":
        return F.kl_div(xs[0], xs[1], reduction=a["reduction"], log_target=a["log_target"])
    raise KeyError(fn)


class OurSoftplus(torch.autograd.Function):
    """tapegrad's softplus: exact ln(1 + eˣ) everywhere (no threshold), derivative σ(x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.sigmoid(x)


# Documented conventions where tapegrad differs from PyTorch on purpose: the fixture keeps
# PyTorch's answer under "pytorch" and expects ours, computed by these functions.
def our_prod(call, xs):
    """Π x as a chain of products: differentiable to every order, also through two zeros, where
    PyTorch's prod backward returns a constant zero gradient (second order 0 instead of the
    product of the others)."""
    x = xs[0]
    if "axis" not in call:
        x = x.reshape(-1)
    axis = call.get("axis", 0)
    y = torch.ones_like(x.select(axis, 0)) if x.shape[axis] == 0 else None
    for part in x.unbind(axis):
        y = part if y is None else y * part
    return y.unsqueeze(axis) if call.get("keepdim") else y


class OurNorm2(torch.autograd.Function):
    """tapegrad's 2-norm: gradient x/y, 0 where y = 0, with that 0 constant (second order 0)."""

    @staticmethod
    def forward(ctx, x, axis, keepdim):
        y = torch.linalg.vector_norm(x, 2.0, axis, keepdim=keepdim)
        ctx.save_for_backward(x, y)
        ctx.axis, ctx.keepdim = axis, keepdim
        return y

    @staticmethod
    def backward(ctx, g):
        x, y = ctx.saved_tensors
        if ctx.axis is not None and not ctx.keepdim:
            g, y = g.unsqueeze(ctx.axis), y.unsqueeze(ctx.axis)
        zero = (y == 0).to(y.dtype)
        return g * x / (y + zero) * (1 - zero), None, None


def our_norm2(call, xs):
    return OurNorm2.apply(xs[0], call.get("axis"), call.get("keepdim", False))


def our_kl_div(call, xs):
    """0 · log 0 = 0 with gradient 0 for the target where it is 0 (PyTorch's is NaN)."""
    x, t = xs
    positive = (t > 0).to(t.dtype)
    loss = positive * t * (torch.log(t * positive + (1 - positive)) - x)
    r = call["reduction"]
    if r == "none":
        return loss
    if r == "batchmean":
        return loss.sum() / x.shape[0]
    return getattr(torch, r)(loss)


DIFFERENCES = {
    "prod_second_order_two_zeros": (
        "prod's gradient is differentiable through two zeros (the second derivative is the product "
        "of the others); PyTorch's backward returns a constant 0 there",
        our_prod,
    ),
    "norm2_second_order_at_zero": (
        "the 2-norm's gradient at 0 is 0 and so is its second derivative; PyTorch's is NaN",
        our_norm2,
    ),
    "gelu_tanh_tail": (
        "gelu with the tanh approximation is x·sigmoid(2z), exact in the negative tail (−1.2e-37 at "
        "x = −10), where PyTorch's x/2·(1 + tanh z) rounds 1 + tanh z to 0",
        lambda call, xs: xs[0] * torch.sigmoid(
            2 * math.sqrt(2 / math.pi) * (xs[0] + 0.044715 * xs[0] ** 3)),
    ),
    "kl_div_zero_target": (
        "kl_div's gradient for a target entry of 0 is 0 (0 · log 0 taken as 0); PyTorch's is NaN",
        our_kl_div,
    ),
    "softplus_no_threshold": (
        "softplus is ln(1 + eˣ) at every x; PyTorch returns x (derivative 1) above its threshold "
        "20 and a second derivative of 0 from 20 on, off by up to 2e-9",
        lambda call, xs: OurSoftplus.apply(xs[0]),
    ),
}


# ---- cases ----

# Ops linear in their inputs: their second-order product is identically zero, so not recorded.
LINEAR = {"add", "sub", "add_scalar", "mul_scalar", "neg", "cast", "sum", "mean", "sum_to",
          "broadcast_to", "reshape", "permute", "transpose", "slice", "concat", "index_select",
          "slice_step", "narrow", "gather", "scatter_add", "index_add", "stack", "unsqueeze",
          "squeeze", "flatten", "unflatten", "reshape_infer", "expand", "cumsum"}


# Ops whose output is int64 positions.
INDEX_VALUED = {"argmax", "argmin"}


class Case:
    def __init__(self, op, name, call, inputs, dtypes=("float64", "float32"), sumlike=False,
                 differs=None, centred=False):
        self.op = op
        self.name = name
        self.call = call
        self.inputs = inputs  # float64 or int64 tensors
        self.dtypes = dtypes
        self.sumlike = sumlike
        self.centred = centred
        self.differs = differs
        self.second_order = call.get("fn") not in LINEAR
        self.torch_fn = None  # default: torch_call(call, ·)
        self.names = None  # module parameter names, for the inputs before the module's input


def rng_for(*parts):
    return random.Random(zlib.crc32("/".join(parts).encode()))


# Random values have 6 significant digits, which keeps the files short and costs no coverage.
def short(x):
    return float(f"{x:.6g}")


def uniform(rng, shape, low=-2.0, high=2.0):
    n = math.prod(shape)
    return torch.tensor([short(rng.uniform(low, high)) for _ in range(n)],
                        dtype=torch.float64).reshape(shape)


def normal(rng, shape):
    n = math.prod(shape)
    return torch.tensor([short(rng.gauss(0.0, 1.0)) for _ in range(n)],
                        dtype=torch.float64).reshape(shape)


def t(vals, shape=None):
    x = torch.tensor(vals, dtype=torch.float64)
    return x.reshape(shape) if shape is not None else x


def idx(vals):
    return torch.tensor(vals, dtype=torch.int64)


def build_ops():
    cases = []

    def add(op, name, call, inputs, **kw):
        cases.append(Case(op, name, call, inputs, **kw))

    def rand(op, name, *shapes, low=-2.0, high=2.0):
        rng = rng_for(op, name, "inputs")
        return [uniform(rng, s, low, high) for s in shapes]

    # -- binary elementwise --
    for fn in ("add", "sub", "mul", "div", "maximum", "minimum"):
        call = {"fn": fn}
        positive = fn == "div"
        for sa, sb, label in (([2, 3], [2, 3], "[2, 3] with [2, 3]"),
                              ([3, 1], [4], "broadcast [3, 1] with [4]"),
                              ([2, 1, 2], [3, 1], "broadcast [2, 1, 2] with [3, 1]"),
                              ([], [3], "[] scalar with [3]"),
                              ([0, 3], [3], "empty [0, 3] with [3]")):
            a, b = rand(fn, label, sa, sb)
            if positive:
                b = b.abs() + 0.5
            add(fn, label, call, [a, b])
        specials = {
            "add": ([1.0, INF, -INF, INF, NAN, -0.0, 1e300], [-1.0, 1.0, INF, -INF, 1.0, -0.0, 1e300]),
            "sub": ([1.0, INF, INF, -INF, NAN, 0.0, -1e300], [1.0, 1.0, INF, INF, 2.0, -0.0, 1e300]),
            "mul": ([0.0, INF, -INF, 0.0, NAN, -0.0, 1e200], [INF, 2.0, -3.0, -1.0, 1.0, 5.0, 1e200]),
            "div": ([1.0, -1.0, 0.0, INF, 1.0, NAN, 1e300], [0.0, 0.0, 0.0, INF, INF, 2.0, 1e-300]),
            "maximum": ([1.0, 2.0, NAN, 1.0, -INF, INF, -0.0], [1.0, 3.0, 1.0, NAN, -INF, 2.0, 0.0]),
            "minimum": ([1.0, 2.0, NAN, 1.0, -INF, INF, -0.0], [1.0, 3.0, 1.0, NAN, -INF, 2.0, 0.0]),
        }
        a, b = specials[fn]
        label = ("special points: ties, NaN operands, ±inf, −0" if fn in ("maximum", "minimum")
                 else "special points: zeros, ±inf, NaN, overflow")
        add(fn, label, call, [t(a), t(b)])
        if fn in ("maximum", "minimum"):
            add(fn, "ties broadcast [2, 3] with [3]", call,
                [t([[1.0, 2.0, 3.0], [0.5, 2.0, 4.0]]), t([1.0, 2.0, 3.0])])
        add(fn, "extremes 1e30 (float32)", call,
            [t([1e30, -1e30, 3e38, 1e-30]), t([1e30, 1e30, 3e38, 1e30])], dtypes=("float32",))

    unary_shapes = (([5], "[5]"), ([2, 3], "[2, 3]"), ([], "[] scalar"), ([0], "[0] empty"))
    for op, call in (("add_scalar", {"fn": "add_scalar", "scalar": 1.5}),
                     ("mul_scalar", {"fn": "mul_scalar", "scalar": -2.5}),
                     ("neg", {"fn": "neg"})):
        for shape, label in unary_shapes:
            add(op, label, call, rand(op, label, shape))
        add(op, "special points: ±inf, NaN, −0", call, [t([INF, -INF, NAN, -0.0, 0.0, 1e300])])
    add("mul_scalar", "zero scalar times inf", {"fn": "mul_scalar", "scalar": 0.0},
        [t([INF, 1.0, NAN, -2.0])])

    # -- unary functions: random inputs in the domain, then special points and extremes --
    domains = {"exp": (-2, 2), "log": (0.3, 3), "sqrt": (0.3, 3), "abs": (-2, 2), "tanh": (-2, 2),
               "sigmoid": (-3, 3), "erf": (-2, 2), "relu": (-2, 2), "leaky_relu": (-2, 2),
               "sin": (-3, 3), "cos": (-3, 3), "log1p": (-0.7, 3), "softplus": (-4, 4)}
    unary_calls = {fn: {"fn": fn} for fn in domains}
    unary_calls["leaky_relu"] = {"fn": "leaky_relu", "negative_slope": 0.1}
    specials64 = {
        "exp": [-INF, -1000.0, -745.0, -700.0, 0.0, 1e-300, 700.0, 710.0, INF, NAN],
        "log": [0.0, 5e-324, 1e-300, 1.0, 1e300, INF, -1.0, NAN],
        "sqrt": [0.0, 5e-324, 1e-300, 4.0, 1e300, INF, -1.0, NAN],
        "abs": [-2.0, -0.0, 0.0, 3.0, -INF, INF, NAN],
        "tanh": [-INF, -20.0, -1e-8, 0.0, 0.5, 5.0, 20.0, INF, NAN],
        "sigmoid": [-INF, -800.0, -40.0, -1e-8, 0.0, 15.0, 40.0, 800.0, INF, NAN],
        "erf": [-INF, -6.0, -1e-10, 0.0, 1.0, 6.0, INF, NAN],
        "relu": [-1.0, -0.0, 0.0, 2.0, -INF, INF, NAN],
        "leaky_relu": [-1.0, -0.0, 0.0, 2.0, -INF, INF, NAN],
        "sin": [0.0, -0.0, math.pi, 1e4, 1e5, -INF, INF, NAN],
        "cos": [0.0, math.pi / 2, math.pi, 1e4, 1e5, -INF, INF, NAN],
        "log1p": [-1.0, -0.999, -1e-10, 0.0, 1e-20, 1.0, 1e300, INF, -2.0, NAN],
        "softplus": [-INF, -1000.0, -30.0, -1.0, 0.0, 1.0, 19.0, INF, NAN],
    }
    specials32 = {
        "exp": [-INF, -1000.0, -103.0, -87.0, 0.0, 1e-30, 88.0, 89.0, INF, NAN],
        "log": [0.0, 1e-45, 1e-38, 1.0, 1e38, INF, -1.0, NAN],
        "sqrt": [0.0, 1e-45, 1e-38, 4.0, 1e38, INF, -1.0, NAN],
        "tanh": [-INF, -10.0, -1e-8, 0.0, 0.5, 3.0, 10.0, INF, NAN],
        "sigmoid": [-INF, -200.0, -20.0, -1e-8, 0.0, 10.0, 20.0, 200.0, INF, NAN],
        "log1p": [-1.0, -0.999, -1e-10, 0.0, 1e-20, 1.0, 1e38, INF, -2.0, NAN],
    }
    for fn, (low, high) in domains.items():
        call = unary_calls[fn]
        for shape, label in unary_shapes:
            add(fn, label, call, rand(fn, label, shape, low=low, high=high))
        if fn in specials32:
            add(fn, "special points and extremes", call, [t(specials64[fn])], dtypes=("float64",))
            add(fn, "special points and extremes", call, [t(specials32[fn])], dtypes=("float32",))
        else:
            add(fn, "special points and extremes", call, [t(specials64[fn])])
    add("leaky_relu", "slope 0.01 at the kink and both sides", {"fn": "leaky_relu", "negative_slope": 0.01},
        [t([-3.0, -0.0, 0.0, 1e-8, 2.0])])
    add("softplus", "at and above PyTorch's threshold 20", unary_calls["softplus"],
        [t([20.0, 20.5, 21.0, 25.0, 30.0, 100.0, 1e300])], dtypes=("float64",), differs="softplus_no_threshold")
    add("softplus", "at and above PyTorch's threshold 20", unary_calls["softplus"],
        [t([20.0, 20.5, 21.0, 25.0, 30.0, 100.0, 1e38])], dtypes=("float32",), differs="softplus_no_threshold")

    clamp = {"fn": "clamp", "low": -1.0, "high": 1.0}
    add("clamp", "[6] inside and outside the bounds", clamp, [t([-1.7, -0.6, -0.1, 0.4, 0.8, 1.5])])
    add("clamp", "[2, 3] random", clamp, rand("clamp", "[2, 3] random", [2, 3]))
    add("clamp", "at the bounds, ±inf, NaN", clamp, [t([-1.0, 1.0, -INF, INF, NAN, -0.0])])
    add("clamp", "low equal to high", {"fn": "clamp", "low": 0.5, "high": 0.5}, [t([0.5, -2.0, 3.0])])
    add("clamp", "low above high gives high", {"fn": "clamp", "low": 1.0, "high": -1.0},
        [t([-2.0, -1.0, 0.0, 1.0, 2.0])])
    add("clamp", "[0] empty", clamp, [t([])])

    add("pow", "[6] exponent 2.5", {"fn": "pow", "exponent": 2.5}, rand("pow", "[6]", [6], low=0.3, high=3))
    add("pow", "[2, 3] exponent -0.5", {"fn": "pow", "exponent": -0.5},
        rand("pow", "[2, 3]", [2, 3], low=0.3, high=3))
    add("pow", "[0] empty", {"fn": "pow", "exponent": 2.5}, [t([])])
    for p in (0.0, 1.0, 2.0, 0.5, 2.5, -1.0, 3.0):
        op = f"pow(x, {p:g})" if p in (0.0, 1.0, 2.0) else "pow_integer" if p.is_integer() else "pow"
        add(op, f"exponent {p:g} at 0, −0 and around", {"fn": "pow", "exponent": p},
            [t([0.0, -0.0, 1e-3, 1.5, -1.5])])
    for p in (0.0, 1.0, 2.0):
        op = f"pow(x, {p:g})"
        add(op, "[2, 3]", {"fn": "pow", "exponent": p}, rand(op, "[2, 3]", [2, 3]))
    add("pow", "negative base, fractional exponent", {"fn": "pow", "exponent": 2.5}, [t([-1.0, -0.5, 2.0])])
    add("pow", "±inf and NaN", {"fn": "pow", "exponent": 2.5}, [t([INF, -INF, NAN, 1e300])])
    add("pow_integer", "[6] exponent 3", {"fn": "pow", "exponent": 3.0}, rand("pow_integer", "[6]", [6]))
    add("pow_integer", "[2, 3] exponent -2", {"fn": "pow", "exponent": -2.0},
        rand("pow_integer", "[2, 3]", [2, 3], low=0.3, high=3))
    add("pow_integer", "overflow to inf", {"fn": "pow", "exponent": 2.0}, [t([1e200, -1e200, 1e20])],
        dtypes=("float64",))
    add("pow_integer", "overflow to inf", {"fn": "pow", "exponent": 2.0}, [t([1e20, -1e20, 1e10])],
        dtypes=("float32",))

    for to in ("float64", "float32"):
        add("cast", f"[2, 3] to {to}", {"fn": "cast", "to": to}, rand("cast", to, [2, 3]))
        add("cast", f"special points to {to}", {"fn": "cast", "to": to},
            [t([INF, -INF, NAN, -0.0, 1e300, 1e-300, 0.1])], dtypes=("float64",))
        add("cast", f"special points to {to}", {"fn": "cast", "to": to},
            [t([INF, -INF, NAN, -0.0, 3e38, 1e-45, 0.1])], dtypes=("float32",))
        add("cast", f"[0] empty to {to}", {"fn": "cast", "to": to}, [t([])])

    # -- reductions --
    for fn in ("sum", "mean"):
        call = {"fn": fn}
        for shape, label in (([5], "[5]"), ([3, 4], "[3, 4]"), ([2, 3, 4], "[2, 3, 4]"),
                             ([], "[] scalar"), ([0], "[0] empty"), ([2, 0], "[2, 0] empty")):
            add(fn, label, call, rand(fn, label, shape), sumlike=True)
        add(fn, "±inf and NaN", call, [t([1.0, INF, 2.0])], sumlike=True)
        add(fn, "inf − inf", call, [t([INF, -INF])], sumlike=True)
        add(fn, "NaN", call, [t([1.0, NAN])], sumlike=True)
        add(fn, "overflow (float32)", call, [t([3e38, 3e38, -1.0])], dtypes=("float32",), sumlike=True)
        add(fn, "cancellation", call, [t([1e16, 1.0, -1e16, 3.0])], dtypes=("float64",), sumlike=True)
    for axis in (0, -1):
        for keepdim in (False, True):
            suffix = f"(axis={axis}, keepdim={'true' if keepdim else 'false'})"
            for fn in ("sum", "mean", "max"):
                op = fn + suffix
                call = {"fn": fn, "axis": axis, "keepdim": keepdim}
                for shape, label in (([5], "[5]"), ([3, 4], "[3, 4]"), ([2, 3, 2], "[2, 3, 2]")):
                    add(op, label, call, rand(op, label, shape), sumlike=fn != "max")
                # Reducing over an empty axis is an error for max (no identity), as in PyTorch.
                empty = [0, 3] if axis == -1 else [3, 0]
                add(op, f"{empty} empty, kept axis", call, [torch.zeros(empty, dtype=torch.float64)])
                if fn != "max":
                    empty = [3, 0] if axis == -1 else [0, 3]
                    add(op, f"{empty} empty, reduced axis", call,
                        [torch.zeros(empty, dtype=torch.float64)], sumlike=True)
                special = t([[1.0, 3.0, 3.0], [2.0, NAN, 1.0], [-INF, -INF, -INF], [INF, 1.0, INF]])
                if axis == 0:
                    special = special.T.contiguous()
                add(op, "ties, NaN, ±inf", call, [special], sumlike=fn != "max")

    # -- the softmax family --
    def along(axis, rows):
        """Rows (lists along the softmax axis) placed along `axis` of a 2-D tensor."""
        x = t(rows)
        return x if axis in (-1, 1) else x.T.contiguous()

    extremes64 = [[1e4, 1e4], [1e4, 1e4 + 1], [1e16, 1e16], [1e300, 1e300], [1e300, 0.999e300],
                  [-1e300, 1e300], [-1e4, -1e4]]
    extremes32 = [[1e4, 1e4], [1e4, 1e4 + 1], [1e7, 1e7], [1e7, 1e7 + 1], [1e30, 1e30],
                  [1e30, 0.999e30], [-1e30, 1e30], [-1e4, -1e4]]
    masks = [[0.5, -INF, 1.0, -INF], [-INF, -INF, -INF, -INF], [-INF, 2.0, -INF, -INF],
             [1.0, 2.0, 3.0, 4.0]]
    for axis in (-1, 0, 1):
        for fn in ("softmax", "log_softmax", "logsumexp"):
            op = f"{fn}(axis={axis})"
            call = {"fn": fn, "axis": axis}
            if fn == "logsumexp":
                call["keepdim"] = False
            shapes = ([([3], "[3]"), ([1], "[1]"), ([3, 4], "[3, 4]")] if axis != 1
                      else [([3, 4], "[3, 4]"), ([2, 3, 4], "[2, 3, 4]")])
            for shape, label in shapes:
                if axis >= len(shape) or -axis > len(shape):
                    continue
                add(op, label, call, rand(op, label, shape, low=-3, high=3))
            if axis == 1:
                continue  # the 2-D special cases below run along axes 0 and -1
            add(op, "extremes", call, [along(axis, extremes64)], dtypes=("float64",))
            add(op, "extremes", call, [along(axis, extremes32)], dtypes=("float32",))
            add(op, "-inf masks: partial, full, single survivor", call, [along(axis, masks)])
            add(op, "full -inf mask at length 2 and 8", call, [along(axis, [[-INF] * 8, [0.0] * 8])])
            add(op, "full -inf mask at length 2", call, [along(axis, [[-INF, -INF]])])
            add(op, "+inf and NaN in a row", call, [along(axis, [[INF, 1.0, 0.0], [NAN, 1.0, 0.0]])])
            add(op, "empty rows", call, [torch.zeros([3, 0] if axis == -1 else [0, 3], dtype=torch.float64)])
            add(op, "no rows", call, [torch.zeros([0, 3] if axis == -1 else [3, 0], dtype=torch.float64)])
            if fn == "logsumexp":
                add(op, "keepdim [3, 4]", dict(call, keepdim=True), rand(op, "keepdim", [3, 4]))
                add(op, "keepdim with -inf masks", dict(call, keepdim=True), [along(axis, masks)])

    # -- shapes --
    def shape_case(op, label, call, shape, **kw):
        add(op, label, call, rand(op, label, shape), **kw)

    shape_case("sum_to", "[2, 3, 4] to [3, 1]", {"fn": "sum_to", "shape": [3, 1]}, [2, 3, 4], sumlike=True)
    shape_case("sum_to", "[3, 5] to [3, 1]", {"fn": "sum_to", "shape": [3, 1]}, [3, 5], sumlike=True)
    shape_case("sum_to", "[2, 3] to [1, 3]", {"fn": "sum_to", "shape": [1, 3]}, [2, 3], sumlike=True)
    shape_case("sum_to", "[0, 3] to [1, 3]", {"fn": "sum_to", "shape": [1, 3]}, [0, 3], sumlike=True)
    shape_case("broadcast_to", "[3, 1] to [2, 3, 4]", {"fn": "broadcast_to", "shape": [2, 3, 4]}, [3, 1])
    shape_case("broadcast_to", "[4] to [2, 3, 4]", {"fn": "broadcast_to", "shape": [2, 3, 4]}, [4])
    shape_case("broadcast_to", "[] to [2, 3]", {"fn": "broadcast_to", "shape": [2, 3]}, [])
    shape_case("broadcast_to", "[3, 1] to [3, 0]", {"fn": "broadcast_to", "shape": [3, 0]}, [3, 1])
    shape_case("reshape", "[2, 6] to [3, 2, 2]", {"fn": "reshape", "shape": [3, 2, 2]}, [2, 6])
    shape_case("reshape", "[] to [1]", {"fn": "reshape", "shape": [1]}, [])
    shape_case("reshape", "[0, 3] to [3, 0]", {"fn": "reshape", "shape": [3, 0]}, [0, 3])
    shape_case("permute", "[2, 3, 4] by [2, 0, 1]", {"fn": "permute", "axes": [2, 0, 1]}, [2, 3, 4])
    shape_case("permute", "negative axes [-1, 0, 1]", {"fn": "permute", "axes": [-1, 0, 1]}, [2, 3, 2])
    shape_case("permute", "[0, 2] by [1, 0]", {"fn": "permute", "axes": [1, 0]}, [0, 2])
    shape_case("transpose", "[3, 5] last two axes", {"fn": "transpose", "axis0": -2, "axis1": -1}, [3, 5])
    shape_case("transpose", "[2, 3, 2] axes 0 and 2", {"fn": "transpose", "axis0": 0, "axis1": 2}, [2, 3, 2])
    shape_case("slice", "[3, 4] axis 1 [1, 3)", {"fn": "slice", "axis": 1, "start": 1, "end": 3}, [3, 4])
    shape_case("slice", "[3, 4] axis -1 [0, 4)", {"fn": "slice", "axis": -1, "start": 0, "end": 4}, [3, 4])
    shape_case("slice", "empty slice [2, 2)", {"fn": "slice", "axis": 1, "start": 2, "end": 2}, [3, 4])
    shape_case("slice(axis=0)", "[5, 2, 3] axis 0 [2, 4)", {"fn": "slice", "axis": 0, "start": 2, "end": 4},
               [5, 2, 3])
    shape_case("slice(axis=0)", "[5] axis 0 [4, 5)", {"fn": "slice", "axis": 0, "start": 4, "end": 5}, [5])
    rng = rng_for("concat", "inputs")
    add("concat", "[2, 1] [2, 3] [2, 2] along 1", {"fn": "concat", "axis": 1},
        [uniform(rng, [2, 1]), uniform(rng, [2, 3]), uniform(rng, [2, 2])])
    add("concat", "[1, 2] [2, 2] along 0", {"fn": "concat", "axis": 0},
        [uniform(rng, [1, 2]), uniform(rng, [2, 2])])
    add("concat", "with an empty [2, 0] along -1", {"fn": "concat", "axis": -1},
        [uniform(rng, [2, 2]), uniform(rng, [2, 0]), uniform(rng, [2, 1])])
    add("concat", "one input", {"fn": "concat", "axis": 0}, [uniform(rng, [3])])
    add("index_select", "rows [4, 3] with repeats", {"fn": "index_select", "axis": 0},
        [uniform(rng, [4, 3]), idx([2, 0, 2, 3])])
    add("index_select", "axis 0 of [5]", {"fn": "index_select", "axis": 0}, [uniform(rng, [5]), idx([4, 1])])
    add("index_select", "no indices", {"fn": "index_select", "axis": 0}, [uniform(rng, [4, 3]), idx([])])
    add("index_select(axis=1)", "columns of [2, 4, 2]", {"fn": "index_select", "axis": 1},
        [uniform(rng, [2, 4, 2]), idx([3, 3, 0])])
    add("index_select(axis=1)", "axis -1 of [3, 4]", {"fn": "index_select", "axis": -1},
        [uniform(rng, [3, 4]), idx([1, 1, 3, 0, 1])])

    # -- linear algebra --
    lin = {"fn": "linear"}
    for label, shapes in (("[4, 3] with W [2, 3], b [2]", ([4, 3], [2, 3], [2])),
                          ("[2, 2, 3] with W [4, 3], b [4]", ([2, 2, 3], [4, 3], [4])),
                          ("in_features 0: bias repeated", ([2, 0], [3, 0], [3])),
                          ("3-D input, in_features 0", ([2, 2, 0], [3, 0], [3])),
                          ("batch 0", ([0, 3], [2, 3], [2]))):
        add("linear", label, lin, rand("linear", label, *shapes), sumlike=True)
    for label, shapes in (("[3] with W [2, 3]", ([3], [2, 3])),
                          ("[4, 3] with W [2, 3]", ([4, 3], [2, 3])),
                          ("in_features 0: zeros", ([2, 0], [3, 0]))):
        add("linear(no bias)", label, lin, rand("linear(no bias)", label, *shapes), sumlike=True)
    for sa, sb in (([2, 3], [3, 4]), ([1, 5], [5, 1]), ([2, 2, 3], [2, 3, 2]), ([2, 2, 3], [3, 4]),
                   ([3, 2], [2, 2, 3]), ([2, 0], [0, 3]), ([0, 3], [3, 2]), ([2, 0, 3], [3, 2])):
        label = f"{sa} · {sb}"
        add("matmul", label, {"fn": "matmul"}, rand("matmul", label, sa, sb), sumlike=True)
    add("matmul", "inf times zero", {"fn": "matmul"}, [t([[INF, 1.0]]), t([[0.0], [2.0]])], sumlike=True)
    return cases


def build_everyday():
    """The ops of ops/everyday.h, named as tests/ops/everyday_test.cpp registers them."""
    cases = []

    def add(op, name, call, inputs, **kw):
        cases.append(Case(op, name, call, inputs, **kw))

    def rand(op, name, *shapes, low=-2.0, high=2.0):
        rng = rng_for("everyday", op, name, "inputs")
        return [uniform(rng, s, low, high) for s in shapes]

    def one(op, name, call, shape, **kw):
        add(op, name, call, rand(op, name, shape, **kw))

    # -- indexing --
    ranked = t([[1.0, 3.0, 3.0, 0.0], [2.0, NAN, 5.0, NAN], [-1.0, -1.0, 4.0, -1.0],
                [-INF, -INF, -INF, -INF], [INF, 1.0, INF, -INF], [NAN, NAN, NAN, NAN]])
    for fn in ("argmax", "argmin"):
        for axis, keepdim in ((-1, False), (0, False), (1, True)):
            call = {"fn": fn, "axis": axis, "keepdim": keepdim}
            add(fn, f"ties, NaN and ±inf along {axis}{', keepdim' if keepdim else ''}", call, [ranked])
        add(fn, "[3, 4] random along -1", {"fn": fn, "axis": -1, "keepdim": False}, rand(fn, "random", [3, 4]))
        add(fn, "[0, 3] along 1", {"fn": fn, "axis": 1, "keepdim": False}, [torch.zeros([0, 3], dtype=torch.float64)])
        add(fn, "flattened", {"fn": fn}, [ranked[:3]])
        add(fn, "flattened scalar", {"fn": fn}, [t(2.5)])
    for name, axis, start, end, step, shape in (
            ("[3, 5] axis 1 [-4::2]", 1, -4, None, 2, [3, 5]),
            ("[7] [1:6:2]", 0, 1, 6, 2, [7]),
            ("negative start and end [-5:-1:3]", 0, -5, -1, 3, [7]),
            ("clamped ends [-100:100:3]", -1, -100, 100, 3, [2, 7]),
            ("empty: start after end", 0, 5, 2, 2, [7]),
            ("step 1, negative indices [-3:-1]", 0, -3, -1, 1, [4, 2])):
        call = {"fn": "slice_step", "axis": axis, "start": start, "end": end, "step": step}
        one("slice(step)", name, call, shape)
    one("narrow", "[3, 2] axis 0 from -2, length 2", {"fn": "narrow", "axis": 0, "start": -2, "length": 2},
        [3, 2])
    one("narrow", "[2, 5] axis -1 from 1, length 3", {"fn": "narrow", "axis": -1, "start": 1, "length": 3},
        [2, 5])
    one("narrow", "length 0", {"fn": "narrow", "axis": 0, "start": 3, "length": 0}, [3, 2])
    rng = rng_for("everyday", "gather")
    add("gather", "[3, 4] by a [2, 3] index with repeats", {"fn": "gather", "axis": 0},
        [uniform(rng, [3, 4]), idx([[2, 0, 2], [2, 1, 2]])])
    add("gather", "[3] by [5]", {"fn": "gather", "axis": 0}, [uniform(rng, [3]), idx([1, 1, 0, 2, 1])])
    add("gather", "empty index", {"fn": "gather", "axis": 0}, [uniform(rng, [3, 2]), idx([[], []]).reshape(2, 0)])
    add("gather(axis=-1)", "[2, 2, 3] by [2, 1, 4]", {"fn": "gather", "axis": -1},
        [uniform(rng, [2, 2, 3]), idx([[[0, 2, 2, 1]], [[1, 1, 0, 2]]])])
    add("scatter_add", "[3, 4] with [2, 3] at repeated rows", {"fn": "scatter_add", "axis": 0},
        [uniform(rng, [3, 4]), idx([[2, 0, 2], [2, 1, 2]]), uniform(rng, [2, 3])])
    add("scatter_add(axis=1)", "[2, 3] with [2, 4]", {"fn": "scatter_add", "axis": 1},
        [uniform(rng, [2, 3]), idx([[0, 0, 2, 0], [1, 2, 1, 1]]), uniform(rng, [2, 4])])
    add("scatter_add(axis=1)", "axis -1, empty index", {"fn": "scatter_add", "axis": -1},
        [uniform(rng, [2, 3]), idx([[], []]).reshape(2, 0), uniform(rng, [2, 0])])
    add("index_add", "[2, 4, 2] with [2, 3, 2] at columns 3, 0, 3", {"fn": "index_add", "axis": 1},
        [uniform(rng, [2, 4, 2]), idx([3, 0, 3]), uniform(rng, [2, 3, 2])])
    add("index_add", "rows of [3, 2], axis -2", {"fn": "index_add", "axis": -2},
        [uniform(rng, [3, 2]), idx([2, 2, 0, 1]), uniform(rng, [4, 2])])
    add("index_add", "no indices", {"fn": "index_add", "axis": 0},
        [uniform(rng, [3, 2]), idx([]), uniform(rng, [0, 2])])

    # -- views --
    add("stack", "three [2, 3] along 1", {"fn": "stack", "axis": 1}, rand("stack", "three", [2, 3], [2, 3], [2, 3]))
    add("stack", "two [0, 2]", {"fn": "stack", "axis": 1}, rand("stack", "empty", [0, 2], [0, 2]))
    add("stack", "scalars", {"fn": "stack", "axis": 0}, rand("stack", "scalars", [], [], []))
    add("stack(axis=-1)", "two [2, 3]", {"fn": "stack", "axis": -1}, rand("stack(axis=-1)", "two", [2, 3], [2, 3]))
    one("unsqueeze", "[2, 3] at -1", {"fn": "unsqueeze", "axis": -1}, [2, 3])
    one("unsqueeze", "[2, 3] at 0", {"fn": "unsqueeze", "axis": 0}, [2, 3])
    one("unsqueeze", "scalar", {"fn": "unsqueeze", "axis": -1}, [])
    one("squeeze", "[1, 3, 1]", {"fn": "squeeze"}, [1, 3, 1])
    one("squeeze", "[1, 0, 1]", {"fn": "squeeze"}, [1, 0, 1])
    one("squeeze(axis)", "[2, 1, 3] axis 1", {"fn": "squeeze", "axis": 1}, [2, 1, 3])
    one("squeeze(axis)", "[2, 3] axis 1: unchanged", {"fn": "squeeze", "axis": 1}, [2, 3])
    one("squeeze(axis)", "[3, 1] axis -1", {"fn": "squeeze", "axis": -1}, [3, 1])
    one("flatten", "[2, 3, 4] from 1", {"fn": "flatten", "start": 1, "end": -1}, [2, 3, 4])
    one("flatten", "[2, 3, 4] axes 0 to 1", {"fn": "flatten", "start": 0, "end": 1}, [2, 3, 4])
    one("flatten", "[2, 0, 3]", {"fn": "flatten", "start": 0, "end": -1}, [2, 0, 3])
    one("unflatten", "[3, 6] axis 1 to [2, -1]", {"fn": "unflatten", "axis": 1, "sizes": [2, -1]}, [3, 6])
    one("unflatten", "[4, 2] axis 0 to [2, 2]", {"fn": "unflatten", "axis": 0, "sizes": [2, 2]}, [4, 2])
    one("reshape(-1)", "[2, 3, 2] to [-1, 2]", {"fn": "reshape_infer", "dims": [-1, 2]}, [2, 3, 2])
    one("reshape(-1)", "[2, 3, 2] to [3, -1]", {"fn": "reshape_infer", "dims": [3, -1]}, [2, 3, 2])
    one("reshape(-1)", "[0, 4] to [2, -1]", {"fn": "reshape_infer", "dims": [2, -1]}, [0, 4])
    one("expand", "[3, 1] to [2, -1, 4]", {"fn": "expand", "sizes": [2, -1, 4]}, [3, 1])
    one("expand", "[1, 4] to [3, 4]", {"fn": "expand", "sizes": [3, 4]}, [1, 4])
    one("expand", "[] to [2, 2]", {"fn": "expand", "sizes": [2, 2]}, [])
    one("expand", "[3, 1] to [0, 3, 2]", {"fn": "expand", "sizes": [0, 3, 2]}, [3, 1])

    # -- statistics --
    ties = t([[1.0, 3.0, 3.0], [-1.0, -1.0, 0.5], [2.0, 2.0, 2.0]])
    specials = t([[1.0, NAN, 2.0], [INF, 1.0, INF], [-INF, -INF, 0.0]])
    for axis in (0, -1):
        for keepdim in (False, True):
            suffix = f"(axis={axis}, keepdim={'true' if keepdim else 'false'})"
            for fn in ("amax", "amin", "min", "prod"):
                op = fn + suffix
                call = {"fn": fn, "axis": axis, "keepdim": keepdim}
                for shape, label in (([5], "[5]"), ([3, 4], "[3, 4]"), ([2, 3, 2], "[2, 3, 2]")):
                    add(op, label, call, rand(op, label, shape), sumlike=fn == "prod")
                if fn in ("amax", "amin"):
                    add(op, "ties, split evenly", call, [ties if axis == -1 else ties.T.contiguous()])
                    add(op, "NaN and ±inf", call, [specials if axis == -1 else specials.T.contiguous()])
                if fn == "prod":
                    add(op, "no, one and two zeros", call, [t([[1.5, 2.0, -0.5], [1.5, 0.0, 2.0], [0.0, 3.0, 0.0]])
                                                          if axis == -1 else
                                                          t([[1.5, 1.5, 0.0], [2.0, 0.0, 3.0], [-0.5, 2.0, 0.0]])],
                        sumlike=True, differs="prod_second_order_two_zeros")
                    empty = [2, 0] if axis == -1 else [0, 2]
                    add(op, f"{empty} empty, reduced axis", call, [torch.zeros(empty, dtype=torch.float64)])
        for fn in ("var", "std"):
            op = f"{fn}(axis={axis})"
            call = {"fn": fn, "axis": axis, "correction": 1, "keepdim": False}
            for shape, label in (([5], "[5]"), ([3, 4], "[3, 4]"), ([2, 3, 2], "[2, 3, 2]")):
                add(op, label, call, rand(op, label, shape), sumlike=True, centred=True)
            add(op, "correction 0, keepdim", dict(call, correction=0, keepdim=True),
                rand(op, "correction 0", [3, 4]), sumlike=True, centred=True)
            add(op, "correction 2", dict(call, correction=2), rand(op, "correction 2", [4, 3]), sumlike=True, centred=True)
            add(op, "one element: NaN", call, [t([[1.5]])], sumlike=True, centred=True)
        op = f"cumsum(axis={axis})"
        for shape, label in (([5], "[5]"), ([3, 4], "[3, 4]"), ([2, 3, 2], "[2, 3, 2]"), ([0, 3], "[0, 3] empty")):
            add(op, label, {"fn": "cumsum", "axis": axis}, rand(op, label, shape), sumlike=True)
        add(op, "inf and NaN", {"fn": "cumsum", "axis": axis}, [t([1.0, INF, -INF, 2.0]) if True else None],
            sumlike=True)
        for p in (1.0, 2.0, INF):
            op = f"norm(p={p:g}, axis={axis})"
            call = {"fn": "norm", "p": p, "axis": axis, "keepdim": False}
            for shape, label in (([5], "[5]"), ([3, 4], "[3, 4]")):
                add(op, label, call, rand(op, label, shape), sumlike=p != INF)
            zero_rows = t([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [0.0, 0.0, 0.0]])
            add(op, "zero rows", call, [zero_rows if axis == -1 else zero_rows.T.contiguous()],
                sumlike=p != INF, differs="norm2_second_order_at_zero" if p == 2 else None)
            add(op, "ties of |x|, keepdim", dict(call, keepdim=True), [t([[-2.0, 1.0, 2.0], [0.5, -0.5, 0.25]])],
                sumlike=p != INF)
    add("var(all)", "[3, 4]", {"fn": "var"}, rand("var(all)", "[3, 4]", [3, 4]), sumlike=True, centred=True)
    add("var(all)", "[0] empty: NaN", {"fn": "var"}, [t([])], sumlike=True, centred=True)
    add("var(axis=0, correction=0, keepdim=true)", "[3, 4]",
        {"fn": "var", "axis": 0, "correction": 0, "keepdim": True}, rand("var(c0)", "[3, 4]", [3, 4]), sumlike=True, centred=True)
    add("std(all)", "[3, 4]", {"fn": "std"}, rand("std(all)", "[3, 4]", [3, 4]), sumlike=True, centred=True)
    add("std(all)", "constant: gradient 0", {"fn": "std"}, [t([2.0, 2.0, 2.0])], sumlike=True, centred=True)
    add("prod(all)", "[2, 3]", {"fn": "prod"}, rand("prod(all)", "[2, 3]", [2, 3]), sumlike=True)
    add("prod(all)", "one zero", {"fn": "prod"}, [t([1.5, 0.0, -2.0, 0.5])], sumlike=True)
    add("prod(all)", "two zeros", {"fn": "prod"}, [t([1.5, 0.0, -2.0, 0.0])], sumlike=True,
        differs="prod_second_order_two_zeros")
    add("prod(all)", "[] scalar", {"fn": "prod"}, [t(1.5)], sumlike=True)
    add("norm(p=2, all)", "[3, 4]", {"fn": "norm", "p": 2.0}, rand("norm(all)", "[3, 4]", [3, 4]), sumlike=True)
    add("norm(p=2, all)", "zeros: gradient 0", {"fn": "norm", "p": 2.0}, [torch.zeros(4, dtype=torch.float64)],
        sumlike=True, differs="norm2_second_order_at_zero")
    add("norm(p=2, all)", "[0] empty", {"fn": "norm", "p": 2.0}, [t([])], sumlike=True)

    # -- activations --
    acts = {"sign": ({"fn": "sign"}, (-2, 2), [-2.0, -0.0, 0.0, 3.0, -INF, INF, NAN]),
            "rsqrt": ({"fn": "rsqrt"}, (0.3, 3), [0.0, 1e-300, 4.0, 1e300, INF, -1.0, NAN]),
            "square": ({"fn": "square"}, (-2, 2), [0.0, -0.0, -3.0, 1e200, -INF, NAN]),
            "silu": ({"fn": "silu"}, (-4, 4), [-INF, -800.0, -30.0, 0.0, 30.0, 800.0, INF, NAN]),
            "gelu": ({"fn": "gelu", "approximate": "none"}, (-3, 3), [-INF, -10.0, -0.0, 0.0, 10.0, INF, NAN]),
            "gelu(tanh)": ({"fn": "gelu", "approximate": "tanh"}, (-3, 3), [-INF, -10.0, 0.0, 10.0, INF, NAN]),
            "hardtanh": ({"fn": "hardtanh", "low": -1.0, "high": 1.0}, (-2, 2),
                         [-1.0, 1.0, -3.0, 0.5, 3.0, -INF, INF]),
            "elu": ({"fn": "elu", "alpha": 1.5}, (-2, 2), [-INF, -800.0, -0.5, 0.0, 0.5, 800.0, INF])}
    # No NaN for hardtanh and elu: PyTorch's gradient there is 0 or NaN in float64 and g in
    # float32 (its vectorised kernels); tapegrad passes g on in both, as its relu and clamp do.
    for op, (call, (low, high), special) in acts.items():
        for shape, label in (([6], "[6]"), ([2, 3], "[2, 3]"), ([], "[] scalar"), ([0], "[0] empty")):
            add(op, label, call, rand(op, label, shape, low=low, high=high))
        special32 = [min(max(v, -3e38), 3e38) if math.isfinite(v) else v for v in special]
        differs = "gelu_tanh_tail" if op == "gelu(tanh)" else None
        add(op, "special points", call, [t(special)], dtypes=("float64",), differs=differs)
        add(op, "special points", call, [t([v if abs(v) < 1e30 or not math.isfinite(v) else 1e30
                                            for v in special32])], dtypes=("float32",), differs=differs)

    # -- losses --
    for reduction in REDUCTIONS:
        for fn, extra in (("l1_loss", {}), ("smooth_l1_loss", {"beta": 1.0}), ("huber_loss", {"delta": 1.0})):
            op = f"{fn}({reduction})"
            call = dict({"fn": fn, "reduction": reduction}, **extra)
            a, b = rand(op, "[2, 3]", [2, 3], [2, 3], low=-3, high=3)
            add(op, "[2, 3] and [2, 3]", call, [a, b], sumlike=True)
            add(op, "[2, 3] and [3]", call, rand(op, "[2, 3] and [3]", [2, 3], [3], low=-3, high=3), sumlike=True)
            add(op, "at d = 0 and at the branch point", call,
                [t([0.0, 1.0, -1.0, 2.5, -0.25]), t([0.0, 0.0, 0.0, 0.5, 0.0])], sumlike=True)
            add(op, "empty [0]", call, [t([]), t([])], sumlike=True)
        add(f"smooth_l1_loss({reduction})", "beta 0.5", {"fn": "smooth_l1_loss", "reduction": reduction, "beta": 0.5},
            rand("smooth beta", reduction, [5], [5]), sumlike=True)
        add(f"smooth_l1_loss({reduction})", "beta 0 is l1", {"fn": "smooth_l1_loss", "reduction": reduction, "beta": 0.0},
            rand("smooth beta 0", reduction, [5], [5]), sumlike=True)
        add(f"huber_loss({reduction})", "delta 2", {"fn": "huber_loss", "reduction": reduction, "delta": 2.0},
            rand("huber delta", reduction, [5], [5], low=-4, high=4), sumlike=True)
    for reduction in REDUCTIONS + ("batchmean",):
        for log_target in (False, True):
            op = f"kl_div({reduction}{', log_target' if log_target else ''})"
            call = {"fn": "kl_div", "reduction": reduction, "log_target": log_target}
            rng = rng_for("everyday", op)
            x = torch.log_softmax(uniform(rng, [3, 4]), -1)
            q = torch.softmax(uniform(rng, [3, 4]), -1)
            add(op, "[3, 4]", call, [x, torch.log(q) if log_target else q], sumlike=True)
            if not log_target:
                add(op, "target with zeros", call, [x, t([[0.5, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 1.0],
                                                          [0.25, 0.25, 0.25, 0.25]])],
                    sumlike=True, differs="kl_div_zero_target")
    return cases


def build_losses():
    cases = []
    for reduction in REDUCTIONS:
        def add(fn, label, inputs, **kw):
            cases.append(Case(f"{fn}({reduction})", label, {"fn": fn, "reduction": reduction}, inputs,
                              sumlike=True, **kw))

        def logits(label, shape, low=-3.0, high=3.0):
            return uniform(rng_for("losses", label, reduction), shape, low, high)

        for fn in ("cross_entropy", "nll_loss"):
            def inputs(x):
                return torch.log_softmax(x, -1) if fn == "nll_loss" else x

            add(fn, "[4, 3]", [inputs(logits("[4, 3]", [4, 3])), idx([0, 2, 1, 2])])
            add(fn, "[1, 5]", [inputs(logits("[1, 5]", [1, 5])), idx([4])])
            add(fn, "empty batch [0, 3]", [torch.zeros([0, 3], dtype=torch.float64), idx([])])
            add(fn, "extremes", [inputs(t([[1e4, 1e4], [1e4, 1e4 + 1], [1e16, 1e16], [1e300, 1e300],
                                             [1e300, -1e300], [-1e300, 1e300]])), idx([0, 1, 1, 0, 1, 0])],
                dtypes=("float64",))
            add(fn, "extremes", [inputs(t([[1e4, 1e4], [1e4, 1e4 + 1], [1e7, 1e7], [1e7, 1e7 + 1],
                                             [1e30, 1e30], [1e30, -1e30]])), idx([0, 1, 1, 0, 0, 1])],
                dtypes=("float32",))
            add(fn, "-inf logits off and on the label",
                [inputs(t([[0.5, -INF, 1.0], [-INF, 2.0, 0.0]])), idx([0, 0])])
        add("binary_cross_entropy_with_logits", "[2, 3] logits, targets in [0, 1]",
            [logits("bce x", [2, 3], -4, 4), logits("bce y", [2, 3], 0, 1)])
        add("binary_cross_entropy_with_logits", "[4] logits, [1] target",
            [logits("bce x", [4], -4, 4), logits("bce y", [1], 0, 1)])
        add("binary_cross_entropy_with_logits", "extremes",
            [t([1e4, -1e4, 1e16, -1e300, 1e300, 40.0]), t([0.0, 1.0, 0.25, 0.5, 1.0, 0.0])],
            dtypes=("float64",))
        add("binary_cross_entropy_with_logits", "extremes",
            [t([1e4, -1e4, 1e7, -1e30, 1e30, 20.0]), t([0.0, 1.0, 0.25, 0.5, 1.0, 0.0])],
            dtypes=("float32",))
        add("binary_cross_entropy_with_logits", "empty [0]", [t([]), t([])])
        add("mse_loss", "[2, 3] and [2, 3]", [logits("mse a", [2, 3]), logits("mse b", [2, 3])])
        add("mse_loss", "[2, 3] and [3]", [logits("mse a", [2, 3]), logits("mse b", [3])])
        add("mse_loss", "empty [0]", [t([]), t([])])
        add("mse_loss", "large values", [t([1e150, -1e150, 1.0]), t([0.0, 1e150, 1.0])], dtypes=("float64",))
        add("mse_loss", "large values", [t([1e18, -1e18, 1.0]), t([0.0, 1e18, 1.0])], dtypes=("float32",))
    return cases


# ---- evaluation ----

def flat(ts):
    return torch.cat([x.reshape(-1) for x in ts]) if ts else torch.zeros(0, dtype=torch.float64)


def evaluate(fn, inputs, g_of, v_of):
    """Output, VJPs and second-order products of fn at inputs (dtype as given)."""
    xs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
    floating = [x for x in xs if x.is_floating_point()]
    y = fn(xs)
    g = g_of(y)
    vjps = torch.autograd.grad(y, floating, g, create_graph=True, allow_unused=True)
    vjps = [torch.zeros_like(x) if v is None else v for x, v in zip(floating, vjps)]
    v = v_of(floating)
    s = sum((a * b).sum() for a, b in zip(vjps, v) if a.requires_grad)
    if isinstance(s, torch.Tensor) and s.requires_grad:
        second = torch.autograd.grad(s, floating, allow_unused=True)
        second = [torch.zeros_like(x) if h is None else h for x, h in zip(floating, second)]
    else:
        second = [torch.zeros_like(x) for x in floating]
    return y.detach(), g, [a.detach() for a in vjps], v, [h.detach() for h in second]


def term_scales(fn, inputs, g, v, sumlike, centred=False):
    """Σ|terms| of the output (sum-like ops), of each VJP and of each second-order product.

    An op that subtracts a mean it computes (var, the norms) rounds x − mean relative to |x|, not
    to the centred value, which may be near zero: for `centred`, each quantity q's scale adds its
    condition number Σₖ|∂q/∂xₖ|·|xₖ|, the bound of any backward-stable evaluation."""
    floating_idx = [i for i, x in enumerate(inputs) if x.is_floating_point()]
    xs = [inputs[i].double() for i in floating_idx]
    g = g.double()

    def f(*fx):
        full = list(inputs)
        for i, x in zip(floating_idx, fx):
            full[i] = x
        return fn(full).double()

    def vjp(*fx):
        fx = [x.detach().requires_grad_() if not x.requires_grad else x for x in fx]
        y = f(*fx)
        grads = torch.autograd.grad(y, fx, g, create_graph=True, allow_unused=True)
        return flat([torch.zeros_like(x) if a is None else a for x, a in zip(fx, grads)])

    n_out = g.numel()
    sizes = [x.numel() for x in xs]
    if not xs or sum(sizes) == 0 or n_out == 0:
        return (torch.zeros(n_out, dtype=torch.float64),
                [torch.zeros(s, dtype=torch.float64) for s in sizes],
                [torch.zeros(s, dtype=torch.float64) for s in sizes])
    jac = torch.autograd.functional.jacobian(f, tuple(xs))
    jac = torch.cat([j.reshape(n_out, -1) for j in jac], 1)
    xflat = flat(xs)
    # Non-finite entries are dropped term by term, so that one NaN input leaves the other
    # elements their scales.
    jac = clean(jac).abs()
    out_scale = (jac @ clean(xflat).abs()) if sumlike else torch.zeros(n_out, dtype=torch.float64)
    vjp_scale = jac.T @ clean(g.reshape(-1)).abs()
    hess = torch.autograd.functional.jacobian(vjp, tuple(xs))
    hess = clean(torch.cat([h.reshape(sum(sizes), -1) for h in hess], 1)).abs()
    second_scale = hess.T @ clean(flat([d.double() for d in v])).abs()
    if centred:
        magnitude = clean(xflat).abs()
        vjp_scale = vjp_scale + hess @ magnitude

        def second_order(*fx):
            fx = [x.detach().requires_grad_() for x in fx]
            s = (vjp(*fx) * flat([d.double() for d in v])).sum()
            if not s.requires_grad:
                return torch.zeros(sum(sizes), dtype=torch.float64)
            parts = torch.autograd.grad(s, fx, create_graph=True, allow_unused=True)
            return flat([torch.zeros_like(x) if h is None else h for x, h in zip(fx, parts)])

        third = torch.autograd.functional.jacobian(second_order, tuple(xs))
        third = clean(torch.cat([h.reshape(sum(sizes), -1) for h in third], 1)).abs()
        second_scale = second_scale + third @ magnitude
    out_sens, vjp_sens, second_sens = rounding_sensitivity(f, xs, g, v)
    return (clean(out_scale) + out_sens, list(torch.split(clean(vjp_scale) + vjp_sens, sizes)),
            list(torch.split(clean(second_scale) + second_sens, sizes)))


def clean(s):
    return torch.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)


def rounding_sensitivity(f, xs, g, v):
    """Σ_T |∂q/∂T|·|T| over the intermediates T that the backward formulas save (tanh's y, the
    softmax s, ...), for q the output, the VJP and the second-order product: a one-ulp rounding
    of a saved intermediate moves q by ulp times this, however the rest is computed."""
    saved = {}

    def key(tensor):
        # A saved tensor comes back as a new wrapper of the same value: identify it by storage.
        return (tensor.data_ptr(), tuple(tensor.shape), tuple(tensor.stride()), tensor.dtype)

    def pack(tensor):
        if tensor.grad_fn is not None and tensor.numel() > 0:
            saved[key(tensor)] = tensor
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        leaves = [x.detach().requires_grad_() for x in xs]
        y = f(*leaves)
        grads = torch.autograd.grad(y, leaves, g, create_graph=True, allow_unused=True)
        grads = [torch.zeros_like(x) if a is None else a for x, a in zip(leaves, grads)]
        s = sum((a * d.double()).sum() for a, d in zip(grads, v) if a.requires_grad)
        second = [torch.zeros_like(x) for x in leaves]
        if isinstance(s, torch.Tensor) and s.requires_grad:
            second = torch.autograd.grad(s, leaves, create_graph=True, allow_unused=True)
            second = [torch.zeros_like(x) if h is None else h for x, h in zip(leaves, second)]

    def sensitivity(q, exclude=None):
        q = q.reshape(-1)
        out = torch.zeros(q.numel(), dtype=torch.float64)
        targets = [tensor for key, tensor in saved.items() if key != exclude]
        if not targets or not q.requires_grad:
            return out
        for i in range(q.numel()):
            parts = torch.autograd.grad(q[i], targets, retain_graph=True, allow_unused=True)
            out[i] = sum(float(clean(d.abs() * tensor.abs()).sum())
                         for d, tensor in zip(parts, targets) if d is not None)
        return out

    return (sensitivity(y, exclude=key(y)), torch.cat([sensitivity(a) for a in grads]),
            torch.cat([sensitivity(h) for h in second]))


def quantity(values_t, scale_t, dtype):
    q = {"values": values(values_t, dtype)}
    scale = scale_t.reshape(-1)
    if scale.numel() and float(scale.max()) > 0:
        q["scale"] = [scale_number(s) for s in scale.tolist()]
    return q


def empirical(scale, got32, exact64, dtype):
    """Adds 2·|PyTorch float32 − float64| / rtol where both are finite."""
    if dtype != "float32":
        return scale
    diff = (got32.double() - exact64.double()).abs().reshape(-1)
    diff = torch.nan_to_num(diff, nan=0.0, posinf=0.0, neginf=0.0)
    return scale.reshape(-1) + 2 * diff / RTOL["float32"]


def index_record(case, dtype_name, inputs):
    """An op with int64 output (argmax): the positions, exact; nothing to differentiate."""
    y = torch_call(case.call, inputs)
    return {"op": case.op, "case": case.name, "dtype": dtype_name, "call": case.call,
            "inputs": [{"shape": list(x.shape), "values": values(x, dtype_name)} for x in inputs],
            "output": {"shape": list(y.shape), "dtype": "int64", "int64": y.reshape(-1).tolist()}}


def op_record(case, dtype_name):
    dtype = DTYPES[dtype_name]
    inputs = [x.to(dtype) if x.is_floating_point() else x for x in case.inputs]
    if case.call.get("fn") in INDEX_VALUED:
        return index_record(case, dtype_name, inputs)
    def g_of(y):
        return normal(rng_for(case.op, case.name, "cotangent"), list(y.shape)).to(y.dtype)

    def v_of(floating):
        r = rng_for(case.op, case.name, "direction")
        return [normal(r, list(x.shape)).to(x.dtype) for x in floating]

    pytorch = case.torch_fn or (lambda xs: torch_call(case.call, xs))
    expected_fn = pytorch
    record = {"op": case.op, "case": case.name, "dtype": dtype_name, "call": case.call}
    if case.names is not None:
        record["parameters"] = case.names
    if case.differs:
        reason, ours = DIFFERENCES[case.differs]
        expected_fn = lambda xs: ours(case.call, xs)  # noqa: E731
        record["differs"] = reason
    y, g, vjps, v, second = evaluate(expected_fn, inputs, g_of, v_of)
    exact_inputs = [x.double() if x.is_floating_point() else x for x in inputs]
    y64, _, vjps64, _, second64 = evaluate(
        expected_fn, exact_inputs, lambda yy: g.double(), lambda fl: [d.double() for d in v])
    out_scale, vjp_scales, second_scales = term_scales(expected_fn, exact_inputs, g, v, case.sumlike,
                                                       case.centred)

    record["inputs"] = [
        {"shape": list(x.shape), "values": values(x, dtype_name)} if x.is_floating_point()
        else {"shape": list(x.shape), "int64": x.reshape(-1).tolist()}
        for x in inputs]
    out_dtype = "float32" if y.dtype == torch.float32 else "float64"
    record["output"] = dict(
        {"shape": list(y.shape), "dtype": out_dtype},
        **quantity(y, empirical(out_scale, y, y64, out_dtype), out_dtype))
    record["cotangent"] = values(g, out_dtype)
    record["vjp"] = [quantity(a, empirical(s, a, a64, dtype_name), dtype_name)
                     for a, s, a64 in zip(vjps, vjp_scales, vjps64)]
    if case.second_order:
        record["direction"] = [values(d, dtype_name) for d in v]
        record["second_order"] = [quantity(h, empirical(s, h, h64, dtype_name), dtype_name)
                                  for h, s, h64 in zip(second, second_scales, second64)]
    if case.differs:
        py_y, _, py_vjps, _, py_second = evaluate(pytorch, inputs, g_of, v_of)
        record["pytorch"] = {"output": values(py_y, out_dtype),
                             "vjp": [values(a, dtype_name) for a in py_vjps],
                             "second_order": [values(h, dtype_name) for h in py_second]}
    return record


def op_records(cases):
    records = []
    for case in cases:
        for dtype_name in case.dtypes:
            records.append(op_record(case, dtype_name))
    return records


RECURRENT = {"RNN": torch._VF.rnn_tanh, "LSTM": torch._VF.lstm, "GRU": torch._VF.gru}


# ---- modules: forward, parameter and input gradients, second order, weights from the fixture ----

def build_modules():
    cases = []
    nn = torch.nn
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU,
            "leaky_relu": nn.LeakyReLU, "softplus": nn.Softplus}

    def add(name, call, module, input_value):
        rng = rng_for("modules", name, "parameters")
        names = [n for n, _ in module.named_parameters()]
        params = []
        for n, p in module.named_parameters():
            # LayerNorm's weight near 1, as initialised; everything else small.
            centre = 1.0 if call["module"] == "LayerNorm" and n == "weight" else 0.0
            params.append(uniform(rng, list(p.shape), centre - 0.6, centre + 0.6))
        module = module.double()

        def run(xs):
            weights, x = xs[:len(names)], xs[len(names)]
            if call["module"] in RECURRENT:
                # functional_call does not reach the recurrent modules' cached flat weights in
                # PyTorch 1.13: call the kernel their forward calls, with the given weights.
                h = torch.zeros(1, x.shape[0], call["hidden_size"], dtype=x.dtype)
                state = (h, h) if call["module"] == "LSTM" else h
                return RECURRENT[call["module"]](x, state, list(weights), True, 1, 0.0, False, False, True)[0]
            if x.is_floating_point():
                module.to(x.dtype)
            return torch.nn.utils.stateless.functional_call(module, dict(zip(names, weights)), (x,))

        case = Case(call["module"], name, call, params + [input_value], sumlike=True)
        case.torch_fn = run
        case.names = names
        cases.append(case)

    def x(name, shape):
        return uniform(rng_for("modules", name, "input"), shape, -1.5, 1.5)

    add("Linear(3, 2) on [4, 3]", {"module": "Linear", "in_features": 3, "out_features": 2, "bias": True},
        nn.Linear(3, 2), x("linear", [4, 3]))
    add("Linear(3, 2) on [2, 2, 3]", {"module": "Linear", "in_features": 3, "out_features": 2, "bias": True},
        nn.Linear(3, 2), x("linear 3-D", [2, 2, 3]))
    add("Linear(3, 2, no bias) on [3]", {"module": "Linear", "in_features": 3, "out_features": 2, "bias": False},
        nn.Linear(3, 2, bias=False), x("linear no bias", [3]))
    add("LayerNorm(4) on [3, 4]", {"module": "LayerNorm", "features": 4, "eps": 1e-5, "elementwise_affine": True},
        nn.LayerNorm(4), x("layernorm", [3, 4]))
    add("LayerNorm(4, no affine) on [2, 2, 4]",
        {"module": "LayerNorm", "features": 4, "eps": 1e-5, "elementwise_affine": False},
        nn.LayerNorm(4, elementwise_affine=False), x("layernorm no affine", [2, 2, 4]))
    add("LayerNorm(3, eps 0.1) on a constant row",
        {"module": "LayerNorm", "features": 3, "eps": 0.1, "elementwise_affine": True},
        nn.LayerNorm(3, eps=0.1), t([[2.0, 2.0, 2.0], [1.0, -1.0, 0.5]]))
    add("Embedding(5, 3) on [2, 2] indices", {"module": "Embedding", "num_embeddings": 5, "dim": 3},
        nn.Embedding(5, 3), idx([[0, 4], [2, 2]]))
    for kind in ("RNN", "LSTM", "GRU"):
        add(f"{kind}(3, 3) on [2, 4, 3]", {"module": kind, "input_size": 3, "hidden_size": 3},
            getattr(nn, kind)(3, 3, batch_first=True), x(kind, [2, 4, 3]))
    for act, sizes in (("relu", [3, 5, 2]), ("tanh", [3, 4, 2]), ("gelu", [2, 3, 3, 2])):
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                layers.append(acts[act]())
        add(f"MLP({sizes}, {act}) on [3, {sizes[0]}]", {"module": "MLP", "sizes": sizes, "activation": act},
            nn.Sequential(*layers), x(f"mlp {act}", [3, sizes[0]]))
    return cases


# ---- optimizers and schedules: parameters after each of 10 steps ----

STEPS = 10
# Which steps (0-based) each parameter has a gradient at: always; first at step 2, then missing
# at 4 and 6; never; an empty parameter, always.
GRADIENT_STEPS = [set(range(STEPS)), {2, 3, 5, 7, 8, 9}, set(), set(range(STEPS))]
PARAMETER_SHAPES = [[2, 3], [4], [2], [0]]


def torch_optimizer(kind, options, params):
    o = dict(options)
    if kind == "SGD":
        return torch.optim.SGD(params, **o)
    betas = (o.pop("beta1", 0.9), o.pop("beta2", 0.999))
    return getattr(torch.optim, kind)(params, betas=betas, **o)


def torch_scheduler(schedule, optimizer):
    if schedule is None:
        return None
    s = dict(schedule)
    kind = s.pop("kind")
    return getattr(torch.optim.lr_scheduler, kind)(optimizer, **s)


def run_optimizer(kind, options, schedule, set_to_none, initial, grads, dtype):
    params = [p.to(dtype).clone().requires_grad_() for p in initial]
    optimizer = torch_optimizer(kind, options, params)
    scheduler = torch_scheduler(schedule, optimizer)
    trajectory, lrs = [], []
    for step in range(STEPS):
        # set_to_none=False keeps a zero gradient once a parameter has had one: it is stepped.
        optimizer.zero_grad(set_to_none=set_to_none)
        for i, p in enumerate(params):
            if grads[step][i] is not None:
                p.grad = grads[step][i].to(dtype).clone()
        optimizer.step()
        if scheduler:
            scheduler.step()
        trajectory.append([p.detach().clone() for p in params])
        lrs.append(optimizer.param_groups[0]["lr"])
    return trajectory, lrs


def optimizer_records():
    # (optimizer, case, options, schedule, set_to_none)
    setups = [
        ("SGD", "plain", {"lr": 0.1}, None, True),
        ("SGD", "momentum 0.9", {"lr": 0.1, "momentum": 0.9}, None, True),
        ("SGD", "momentum 0.9, gradients zeroed instead of dropped", {"lr": 0.1, "momentum": 0.9},
         None, False),
        ("SGD", "momentum, dampening, weight decay",
         {"lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}, None, True),
        ("SGD", "nesterov with weight decay",
         {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}, None, True),
        ("Adam", "lr 0.01", {"lr": 0.01}, None, True),
        ("Adam", "lr 0.01, gradients zeroed instead of dropped", {"lr": 0.01}, None, False),
        ("Adam", "betas, eps, weight decay",
         {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1}, None, True),
        ("AdamW", "weight decay 0.01", {"lr": 0.01, "weight_decay": 0.01}, None, True),
        ("AdamW", "betas, eps, weight decay 0.1",
         {"lr": 0.02, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.1}, None, True),
        ("SGD", "StepLR(step_size 3, gamma 0.5)", {"lr": 0.1, "momentum": 0.9},
         {"kind": "StepLR", "step_size": 3, "gamma": 0.5}, True),
        ("Adam", "CosineAnnealingLR(T_max 4, eta_min 0.001), past T_max", {"lr": 0.05},
         {"kind": "CosineAnnealingLR", "T_max": 4, "eta_min": 0.001}, True),
        ("SGD", "CosineAnnealingLR(T_max 10)", {"lr": 0.1},
         {"kind": "CosineAnnealingLR", "T_max": 10, "eta_min": 0.0}, True),
    ]
    records = []
    for kind, name, options, schedule, set_to_none in setups:
        rng = rng_for("optim", kind, name)
        initial = [uniform(rng, shape) for shape in PARAMETER_SHAPES]
        grads = [[normal(rng, shape) if step in GRADIENT_STEPS[i] else None
                  for i, shape in enumerate(PARAMETER_SHAPES)] for step in range(STEPS)]
        for dtype_name, dtype in DTYPES.items():
            init = [p.to(dtype) for p in initial]
            g = [[None if x is None else x.to(dtype) for x in row] for row in grads]
            trajectory, lrs = run_optimizer(kind, options, schedule, set_to_none, init, g, dtype)
            exact, _ = run_optimizer(kind, options, schedule, set_to_none, [p.double() for p in init],
                                     [[None if x is None else x.double() for x in row] for row in g],
                                     torch.float64)
            # Scale: the parameter's start plus every change so far, |p₀| + Σ|Δp|.
            moved = [p.double().abs() for p in init]
            steps = []
            previous = [p.double() for p in init]
            for after, after64 in zip(trajectory, exact):
                row = []
                for i, (p, p64) in enumerate(zip(after, after64)):
                    moved[i] = moved[i] + (p64 - previous[i]).abs()
                    previous[i] = p64
                    row.append(quantity(p, empirical(moved[i].clone(), p, p64, dtype_name), dtype_name))
                steps.append(row)
            record = {"optimizer": kind, "case": name, "dtype": dtype_name, "options": options,
                      "set_to_none": set_to_none,
                      "parameters": [{"shape": list(p.shape), "values": values(p, dtype_name)} for p in init],
                      "grads": [[None if x is None else values(x, dtype_name) for x in row] for row in g],
                      "steps": steps}
            if schedule:
                record["schedule"] = schedule
                record["lr"] = [number(lr, "float64") for lr in lrs]
            records.append(record)
    return records


def clip_records():
    records = []
    for name, max_norm, norm_type, factor in (("norm above max_norm", 1.0, 2.0, 3.0),
                                              ("norm below max_norm", 10.0, 2.0, 1.0),
                                              ("norm equal to max_norm", None, 2.0, 1.0),
                                              ("inf norm above max_norm", 0.5, INF, 2.0)):
        rng = rng_for("clip", name)
        grads = [normal(rng, shape) * factor for shape in ([2, 3], [4])]
        for dtype_name, dtype in DTYPES.items():
            g = [x.to(dtype) for x in grads]
            total = float(torch.linalg.vector_norm(torch.cat([x.reshape(-1) for x in g]), norm_type))
            limit = total if max_norm is None else max_norm
            params = [torch.zeros_like(x, requires_grad=True) for x in g]
            # A parameter without a gradient is skipped.
            params.append(torch.zeros(3, dtype=dtype, requires_grad=True))
            for p, x in zip(params, g):
                p.grad = x.clone()
            norm = torch.nn.utils.clip_grad_norm_(params, limit, norm_type)
            records.append({"case": name, "dtype": dtype_name, "max_norm": number(limit, "float64"),
                            "norm_type": number(norm_type, "float64"),
                            "grads": [values(x, dtype_name) for x in g],
                            "norm": number(norm, dtype_name),
                            "clipped": [values(p.grad, dtype_name) for p in params[:2]]})
    return records


HEADER = {
    "generator": "scripts/make_reference.py",
    "pytorch": torch.__version__,
    "second_order": "∇ₓ⟨gᵀJ, v⟩ for the cotangent g and the direction v",
    "tolerance": "|got − expected| ≤ rtol·(|expected| + scale); rtol 1e-12 (float64), 4·2⁻²³ (float32)",
}


FILES = {
    "ops.json": lambda: (HEADER, op_records(build_ops())),
    "losses.json": lambda: (HEADER, op_records(build_losses())),
    "everyday.json": lambda: (HEADER, op_records(build_everyday())),
    "modules.json": lambda: (HEADER, op_records(build_modules())),
    "optim.json": lambda: (dict(HEADER, second_order="none", tolerance=(
        "parameters after each step: |got − expected| ≤ rtol·(|expected| + scale), scale = "
        "|p₀| + Σ|Δp| (+ float32's empirical term); lr to 1e-12 of the base lr")),
        optimizer_records() + clip_records()),
}


def main():
    """Writes every fixture, or only the ones named: make_reference.py everyday.json"""
    os.makedirs(OUT_DIR, exist_ok=True)
    unknown = set(sys.argv[1:]) - FILES.keys()
    if unknown:
        sys.exit(f"unknown fixture files {sorted(unknown)}; expected some of {sorted(FILES)}")
    for name, make in FILES.items():
        if len(sys.argv) == 1 or name in sys.argv[1:]:
            write(name, *make())


if __name__ == "__main__":
    sys.exit(main())
