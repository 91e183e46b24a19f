#!/usr/bin/python3
"""Writes tests/reference/matmul_loss.json: PyTorch's answers for matmul's full rules (1-D
operands, broadcast batch dims), bmm, cross_entropy and nll_loss with their options (weight,
ignore_index, label_smoothing, [N, C, d...] and unbatched scores) and the axis-taking ops on a
scalar (axis 0 or -1), in the record format of make_reference.py (whose machinery this reuses).

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_matmul_loss_reference.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_reference import INF, Case, idx, rng_for, t, uniform  # noqa: E402

# The class weights the registry's option samples use (ops/loss.cpp).
WEIGHT = [0.5, 2.0, 1.0, 1.5]
# Registered name prefix, cross_entropy or nll_loss, ignore_index, label_smoothing, weight.
LOSS_OPTIONS = (
    ("cross_entropy(weight, ignore_index=1", "cross_entropy", 1, 0.0, WEIGHT),
    ("cross_entropy(label_smoothing=0.2", "cross_entropy", -100, 0.2, None),
    ("cross_entropy(label_smoothing=0.3, weight", "cross_entropy", -100, 0.3, WEIGHT),
    ("nll_loss(weight, ignore_index=1", "nll_loss", 1, 0.0, WEIGHT),
)


def torch_class_loss(call, xs):
    weight = None if call["weight"] is None else torch.tensor(call["weight"], dtype=xs[0].dtype)
    if call["fn"] == "nll_loss":
        return F.nll_loss(xs[0], xs[1], weight=weight, ignore_index=call["ignore_index"],
                          reduction=call["reduction"])
    return F.cross_entropy(xs[0], xs[1], weight=weight, ignore_index=call["ignore_index"],
                           reduction=call["reduction"], label_smoothing=call["label_smoothing"])


def build_losses():
    cases = []
    for reduction in ref.REDUCTIONS:
        for prefix, fn, ignore, smoothing, weight in LOSS_OPTIONS:
            op = f"{prefix}, {reduction})"
            call = {"fn": fn, "reduction": reduction, "ignore_index": ignore,
                    "label_smoothing": smoothing, "weight": weight}

            def add(label, scores, labels, **kw):
                if fn == "nll_loss":
                    scores = torch.log_softmax(scores, 1 if scores.dim() > 1 else 0)
                case = Case(op, label, call, [scores, labels], sumlike=True, **kw)
                case.torch_fn = lambda xs, call=call: torch_class_loss(call, xs)
                cases.append(case)

            def logits(label, shape):
                return uniform(rng_for("matmul_loss", op, label), shape, -3.0, 3.0)

            add("[4, 4], one label ignored", logits("[4, 4]", [4, 4]), idx([0, ignore, 3, 2]))
            add("[2, 4, 3], labels [2, 3]", logits("[2, 4, 3]", [2, 4, 3]),
                idx([[1, 3, ignore], [0, 2, 2]]))
            add("[2, 4, 2, 2], labels [2, 2, 2]", logits("[2, 4, 2, 2]", [2, 4, 2, 2]),
                idx([[[0, 1], [ignore, 3]], [[2, 2], [1, 0]]]))
            add("unbatched [4], scalar label", logits("[4]", [4]), torch.tensor(2))
            add("unbatched [4], label ignored", logits("[4]", [4]), torch.tensor(ignore))
            add("every label ignored", logits("[3, 4]", [3, 4]), idx([ignore, ignore, ignore]))
            add("empty batch [0, 4]", torch.zeros([0, 4], dtype=torch.float64), idx([]))
            add("-inf logits off and on the label",
                t([[0.5, -INF, 1.0, 0.0], [-INF, 2.0, 0.0, 1.0]]), idx([0, 0]))
            add("extremes", t([[1e4, 1e4 + 1, 1e4 - 2, -1e4], [1e300, -1e300, 1e300, 0.0]]),
                idx([0, 3]), dtypes=("float64",))
            add("extremes", t([[1e4, 1e4 + 1, 1e4 - 2, -1e4], [1e30, -1e30, 1e30, 0.0]]),
                idx([0, 3]), dtypes=("float32",))
    return cases


MATMUL_SHAPES = (
    ([3], [3]), ([2, 3], [3]), ([3], [3, 2]), ([3], [2, 3, 4]), ([2, 3, 4], [4]),
    ([2, 1, 3, 4], [5, 4, 6]), ([1, 3, 4], [5, 4, 2]), ([2, 2, 3], [1, 3, 2]),
    ([2, 1, 2, 3], [3, 2]), ([2, 3], [4, 1, 3, 2]), ([3, 1, 2, 2], [1, 2, 2, 3]),
    ([0], [0]), ([2, 0, 3], [1, 3, 2]), ([3], [4, 3, 0]),
)
BMM_SHAPES = (([2, 2, 3], [2, 3, 4]), ([1, 1, 5], [1, 5, 1]), ([0, 2, 3], [0, 3, 2]),
              ([2, 3, 0], [2, 0, 2]))


def build_matmul():
    cases = []
    for fn, shapes in (("matmul", MATMUL_SHAPES), ("bmm", BMM_SHAPES)):
        for sa, sb in shapes:
            label = f"{sa} · {sb}"
            rng = rng_for("matmul_loss", fn, label)
            case = Case(fn, label, {"fn": fn}, [uniform(rng, sa), uniform(rng, sb)], sumlike=True)
            case.torch_fn = lambda xs, fn=fn: getattr(torch, fn)(xs[0], xs[1])
            cases.append(case)
    return cases


# PyTorch's var of a 0-d tensor has gradient inf (its [1] view: NaN, the 0/0 of 2(x − x̄)/(n − 1));
# tapegrad runs the op on the [1] view, so both shapes give NaN.
ref.DIFFERENCES["var_scalar_gradient"] = (
    "var over the one element of a scalar has gradient NaN (0/0), as PyTorch gives for shape [1]; "
    "PyTorch's 0-d var gives inf",
    lambda call, xs: torch.var(xs[0].reshape(1), 0, correction=call["correction"]).reshape(()),
)


def build_scalar_axes():
    """Every axis-taking op on a scalar, at axis 0 and -1: PyTorch treats a scalar as one element."""
    cases = []
    x = t(1.7)
    for axis in (0, -1):
        for keepdim in (False, True):
            k = "true" if keepdim else "false"
            for fn in ("sum", "mean", "max", "amax", "amin", "min", "prod"):
                cases.append(Case(f"{fn}(axis={axis}, keepdim={k})", f"scalar, axis {axis}",
                                  {"fn": fn, "axis": axis, "keepdim": keepdim}, [x]))
            cases.append(Case("argmax", f"scalar, axis {axis}, keepdim {k}",
                              {"fn": "argmax", "axis": axis, "keepdim": keepdim}, [x]))
        for fn in ("softmax", "log_softmax", "cumsum"):
            cases.append(Case(f"{fn}(axis={axis})", f"scalar, axis {axis}",
                              {"fn": fn, "axis": axis}, [x]))
        cases.append(Case(f"logsumexp(axis={axis})", f"scalar, axis {axis}",
                          {"fn": "logsumexp", "axis": axis, "keepdim": False}, [x]))
        for fn in ("var", "std"):
            cases.append(Case(f"{fn}(axis={axis})", f"scalar, axis {axis}",
                              {"fn": fn, "axis": axis, "correction": 1, "keepdim": False}, [x],
                              differs="var_scalar_gradient" if fn == "var" else None))
        for p in ("1", "2", "inf"):
            cases.append(Case(f"norm(p={p}, axis={axis})", f"scalar, axis {axis}",
                              {"fn": "norm", "p": float(p), "axis": axis, "keepdim": False}, [x]))
    cases.append(Case("gather", "scalar, axis 0", {"fn": "gather", "axis": 0}, [x, torch.tensor(0)]))
    cases.append(Case("index_select", "scalar, axis -1", {"fn": "index_select", "axis": -1},
                      [x, idx([0])]))
    cases.append(Case("transpose", "scalar, axes 0 and -1", {"fn": "transpose", "axis0": 0, "axis1": -1},
                      [x]))
    return cases


def main():
    ref.write("matmul_loss.json", dict(ref.HEADER, generator="scripts/make_matmul_loss_reference.py"),
              ref.op_records(build_matmul() + build_losses() + build_scalar_axes()))


if __name__ == "__main__":
    sys.exit(main())
