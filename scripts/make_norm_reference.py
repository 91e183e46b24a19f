#!/usr/bin/python3
"""Writes tests/reference/norm.json: PyTorch's answers for batch_norm, group_norm, instance_norm
and dropout2d (ops/norm.cpp), in the record format of make_reference.py (whose machinery this
reuses), replayed by tests/ops/norm_test.cpp.

Each case's name is a registered op's name (a variant such as "batch_norm(training)"); the call
holds the options and the running statistics (values, not inputs: they are not differentiated),
the inputs are x and, when affine, weight and bias. Where a case updates running statistics, the
record also holds PyTorch's running_mean/running_var after the call ("running_after").

dropout2d's mask cannot be PyTorch's (another generator): the cases with 0 < p < 1 draw the mask
from tapegrad's Generator (std::mt19937_64, uniform = (next >> 11)·2⁻⁵³, dropped when < p), here
in Python, and PyTorch computes x · noise with noise = mask / (1 − p) in the input's dtype, as its
dropout2d does with its own mask.

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_norm_reference.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_reference import INF, NAN, Case, rng_for, t, uniform  # noqa: E402

M64 = (1 << 64) - 1


class MT19937_64:
    """std::mt19937_64, as tapegrad's Generator uses it."""

    def __init__(self, seed):
        self.mt = [seed & M64]
        for i in range(1, 312):
            prev = self.mt[-1]
            self.mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & M64)
        self.index = 312

    def _twist(self):
        upper, lower = 0xFFFFFFFF80000000, 0x7FFFFFFF
        for i in range(312):
            x = (self.mt[i] & upper) | (self.mt[(i + 1) % 312] & lower)
            xa = x >> 1
            if x & 1:
                xa ^= 0xB5026F5AA96619E9
            self.mt[i] = self.mt[(i + 156) % 312] ^ xa
        self.index = 0

    def next(self):
        if self.index >= 312:
            self._twist()
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & M64

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53


assert MT19937_64(7).next() == 13915952638675311015  # std::mt19937_64(7)()


def running(call, dtype):
    def make(key):
        v = call.get(key)
        return None if v is None else torch.tensor(v, dtype=dtype)
    return make("running_mean"), make("running_var")


def torch_norm(call, xs):
    x = xs[0]
    weight = xs[1] if len(xs) > 1 else None
    bias = xs[2] if len(xs) > 2 else None
    fn = call["fn"]
    if fn == "group_norm":
        return F.group_norm(x, call["num_groups"], weight, bias, call["eps"])
    if fn == "dropout2d":
        p = call["p"]
        if not call["training"] or p == 0:
            return x
        if p == 1:
            return x * torch.zeros((), dtype=x.dtype)
        g = MT19937_64(call["seed"])
        keep = [0.0 if g.uniform() < p else 1.0 for _ in range(x.shape[0] * x.shape[1])]
        noise = torch.tensor(keep, dtype=x.dtype).reshape(
            [x.shape[0], x.shape[1]] + [1] * (x.dim() - 2))
        return x * noise.div_(1 - p)
    rm, rv = running(call, x.dtype)  # fresh copies: PyTorch updates them in place
    if fn == "batch_norm":
        return F.batch_norm(x, rm, rv, weight, bias, call["training"], call["momentum"],
                            call["eps"])
    return F.instance_norm(x, rm, rv, weight, bias, call["use_input_stats"], call["momentum"],
                           call["eps"])


def running_after(call, inputs, dtype):
    """PyTorch's running statistics after one call in `dtype`, or None when there are none."""
    if call.get("running_mean") is None and call.get("running_var") is None:
        return None
    if not call.get("training", call.get("use_input_stats", False)):
        return None
    xs = [x.to(dtype) for x in inputs]
    rm, rv = running(call, dtype)
    fn = F.batch_norm if call["fn"] == "batch_norm" else F.instance_norm
    with torch.no_grad():
        if call["fn"] == "batch_norm":
            fn(xs[0], rm, rv, *(xs[1:] + [None] * (3 - len(xs))), call["training"],
               call["momentum"], call["eps"])
        else:
            fn(xs[0], rm, rv, *(xs[1:] + [None] * (3 - len(xs))), call["use_input_stats"],
               call["momentum"], call["eps"])
    return [None if r is None else r for r in (rm, rv)]


def stats(c, shift=0.0):
    return [round(0.3 - 0.2 * i + shift, 6) for i in range(c)], \
           [round(0.5 + 0.4 * i + shift, 6) for i in range(c)]


def build():
    cases = []

    def add(op, label, call, shape, affine, low=-2.0, high=2.0, x=None, **kw):
        rng = rng_for("norm", op, label)
        xs = [x if x is not None else uniform(rng, shape, low, high)]
        if affine:
            xs += [uniform(rng, [shape[1]], 0.5, 1.5), uniform(rng, [shape[1]])]
        case = Case(op, label, dict(call, affine=affine), xs, sumlike=True, centred=True, **kw)
        case.torch_fn = lambda ins, call=case.call: torch_norm(call, ins)
        cases.append(case)

    # ---- batch_norm ----
    for shape in ([4, 3], [3, 2, 4], [2, 3, 2, 2]):
        c = shape[1]
        m, v = stats(c)
        base = {"fn": "batch_norm", "momentum": 0.1, "eps": 1e-5}
        add("batch_norm(training)", f"{shape}, running stats, affine",
            dict(base, training=True, running_mean=m, running_var=v), shape, True)
        add("batch_norm(training, [N, C], no affine, no running stats)", f"{shape}",
            dict(base, training=True, running_mean=None, running_var=None), shape, False)
        add("batch_norm(eval)", f"{shape}, affine",
            dict(base, training=False, running_mean=m, running_var=v), shape, True)
    m, v = stats(2)
    add("batch_norm(training, [N, C, H, W])", "[2, 2, 2, 2], eps 1e-3, momentum 0.3",
        {"fn": "batch_norm", "momentum": 0.3, "eps": 1e-3, "training": True,
         "running_mean": m, "running_var": v}, [2, 2, 2, 2], True)
    add("batch_norm(training, [N, C, H, W])", "[2, 2, 3, 1], momentum 1, eps 0",
        {"fn": "batch_norm", "momentum": 1.0, "eps": 0.0, "training": True,
         "running_mean": m, "running_var": v}, [2, 2, 3, 1], False)
    add("batch_norm(training)", "large offset 1e4, spread 1e-2",
        {"fn": "batch_norm", "momentum": 0.1, "eps": 1e-5, "training": True,
         "running_mean": m, "running_var": v}, [4, 2], True, low=1e4, high=1e4 + 1e-2)
    add("batch_norm(training)", "empty batch [0, 2, 3]",
        {"fn": "batch_norm", "momentum": 0.1, "eps": 1e-5, "training": True,
         "running_mean": m, "running_var": v}, [0, 2, 3], True)
    add("batch_norm(training, [N, C], no affine, no running stats)", "a constant channel",
        {"fn": "batch_norm", "momentum": 0.1, "eps": 1e-5, "training": True,
         "running_mean": None, "running_var": None}, [3, 2], False,
        x=t([[1.5, 0.25], [1.5, -1.0], [1.5, 2.0]]))
    add("batch_norm(eval)", "inf and nan in the input",
        {"fn": "batch_norm", "momentum": 0.1, "eps": 1e-5, "training": False,
         "running_mean": m, "running_var": v}, [3, 2], True,
        x=t([[INF, 0.5], [-INF, NAN], [1.0, -0.5]]))

    # ---- group_norm ----
    for op, groups, shape, affine, eps in (
            ("group_norm(2 groups)", 2, [2, 4, 3], True, 1e-5),
            ("group_norm(2 groups)", 2, [3, 4], True, 1e-5),
            ("group_norm(2 groups)", 2, [0, 4, 2], True, 1e-5),
            ("group_norm(1 group, no affine)", 1, [2, 3, 2], False, 1e-5),
            ("group_norm(1 group, no affine)", 1, [1, 2, 2, 3], False, 1e-5),
            ("group_norm(a group per channel, [N, C, H, W])", 3, [1, 3, 2, 2], True, 1e-3),
            ("group_norm(a group per channel, [N, C, H, W])", 3, [2, 3, 1, 3], True, 1e-3)):
        add(op, f"{shape}, {groups} groups", {"fn": "group_norm", "num_groups": groups, "eps": eps},
            shape, affine)
    add("group_norm(2 groups)", "large offset 1e4, spread 1e-2",
        {"fn": "group_norm", "num_groups": 2, "eps": 1e-5}, [2, 4, 2], True,
        low=1e4, high=1e4 + 1e-2)

    # ---- instance_norm ----
    for shape in ([2, 2, 3], [3, 2, 2, 2]):
        m, v = stats(shape[1])
        base = {"fn": "instance_norm", "momentum": 0.1, "eps": 1e-5}
        add("instance_norm", f"{shape}, affine",
            dict(base, use_input_stats=True, running_mean=None, running_var=None), shape, True)
        add("instance_norm(running stats, no affine)", f"{shape}, momentum 0.2",
            dict(base, use_input_stats=True, momentum=0.2, running_mean=m, running_var=v),
            shape, False)
        add("instance_norm(use_input_stats false)", f"{shape}, affine",
            dict(base, use_input_stats=False, running_mean=m, running_var=v), shape, True)

    # ---- dropout2d ----
    for op, p, training, shape in (
            ("dropout2d", 0.5, True, [2, 3, 2, 2]),
            ("dropout2d", 0.5, True, [4, 3, 2]),
            ("dropout2d", 0.2, True, [3, 5, 1, 2]),
            ("dropout2d(p=1, training)", 1.0, True, [2, 2, 3]),
            ("dropout2d", 0.5, False, [2, 2, 3]),
            ("dropout2d", 0.0, True, [2, 2, 3])):
        add(op, f"{shape}, p {p}, training {str(training).lower()}",
            {"fn": "dropout2d", "p": p, "training": training, "seed": 7}, shape, False)
    add("dropout2d(p=1, training)", "inf and nan give nan",
        {"fn": "dropout2d", "p": 1.0, "training": True, "seed": 7}, [1, 2, 2], False,
        x=t([[[INF, 1.0], [NAN, -INF]]]))
    return cases


def main():
    cases = build()
    records = ref.op_records(cases)
    by_key = {(c.op, c.name): c for c in cases}
    for r in records:
        case = by_key[(r["op"], r["case"])]
        after = running_after(case.call, case.inputs, ref.DTYPES[r["dtype"]])
        if after is not None:
            r["running_after"] = [None if a is None else ref.values(a, r["dtype"]) for a in after]
    ref.write("norm.json", dict(ref.HEADER, generator="scripts/make_norm_reference.py"), records)


if __name__ == "__main__":
    sys.exit(main())
