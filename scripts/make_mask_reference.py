#!/usr/bin/python3
"""Writes PyTorch's answers for the bool masks of ops/mask.cpp:

  tests/reference/masks.json        where, masked_fill and masked_select (the registered,
                                    differentiable mask ops) as op records in the layout and with
                                    the tolerances of scripts/make_reference.py, which this script
                                    reuses; tests/ops/reference_test.cpp replays them. Bool inputs
                                    are stored as {"shape", "bool": [true, ...]}.
  tests/reference/mask_values.json  the non-differentiable ops (comparisons, logic, isnan/isinf/
                                    isfinite, sum and casts of masks, where/masked_fill/
                                    masked_select on int64 and bool): inputs and exact outputs,
                                    replayed by tests/ops/mask_test.cpp.

Run by hand with Debian's python3-torch, after `make reference` has installed it:
    /usr/bin/python3 scripts/make_mask_reference.py
Deterministic: every random value comes from a generator seeded by its case's name.
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402

INF = math.inf
NAN = math.nan
HEADER = dict(ref.HEADER, generator="scripts/make_mask_reference.py")


# ---- masks.json: the differentiable mask ops ----

def mask(vals):
    return torch.tensor(vals, dtype=torch.bool)


def random_mask(name, shape):
    rng = ref.rng_for("masks", name, "mask")
    return torch.tensor([rng.random() < 0.5 for _ in range(math.prod(shape))],
                        dtype=torch.bool).reshape(shape)


def build_masks():
    cases = []

    def add(op, name, call, inputs, torch_fn):
        case = ref.Case(op, name, call, inputs)
        case.torch_fn = torch_fn
        cases.append(case)

    def rand(name, *shapes, low=-2.0, high=2.0):
        rng = ref.rng_for("masks", name, "inputs")
        return [ref.uniform(rng, s, low, high) for s in shapes]

    def where(xs):
        return torch.where(xs[0], xs[1], xs[2])

    call = {"fn": "where"}
    for name, c, a, b in (("[2, 3] all three", [2, 3], [2, 3], [2, 3]),
                          ("[3, 1] condition, [4] and [2, 1, 1]", [3, 1], [4], [2, 1, 1]),
                          ("[] condition", [], [3], []),
                          ("empty [0, 3]", [0, 3], [3], [0, 1])):
        add("where", name, call, [random_mask(name, c)] + rand(name, a, b), where)
    # NaN and ±inf in the unselected branch stay out of the output and of both gradients.
    add("where", "NaN and inf in the branch not taken", call,
        [mask([True, False, True, False]), ref.t([1.5, NAN, -INF, 2.0]), ref.t([NAN, -0.5, 3.0, INF])],
        where)
    for name, scalar, side in (("scalar else-branch", -1.25, "b"), ("scalar then-branch", 0.0, "a"),
                               ("NaN then-branch", NAN, "a")):
        x = rand(name, [2, 3])[0]
        c = random_mask(name, [2, 3])
        fn = ((lambda xs, s=scalar: torch.where(xs[0], xs[1], s)) if side == "b"
              else (lambda xs, s=scalar: torch.where(xs[0], s, xs[1])))
        add("where", name, {"fn": "where", "scalar": scalar, "scalar_side": side}, [c, x], fn)

    for name, x, m, value in (("[2, 3] with a [2, 3] mask", [2, 3], [2, 3], -1.5),
                              ("[2, 3] with a [3] mask", [2, 3], [3], 7.0),
                              ("[] with a [] mask", [], [], 2.5),
                              ("fill with NaN", [4], [4], NAN),
                              ("fill with -inf", [2, 2], [1, 2], -INF),
                              ("empty [0, 2]", [0, 2], [2], 1.0)):
        add("masked_fill", name, {"fn": "masked_fill", "value": value},
            rand(name, x) + [random_mask(name, m)],
            lambda xs, v=value: xs[0].masked_fill(xs[1], v))

    for name, x, m in (("[2, 3] with a [2, 3] mask", [2, 3], [2, 3]),
                       ("[2, 3] with a [3] mask", [2, 3], [3]),
                       ("[3] broadcast to a [2, 3] mask", [3], [2, 3]),
                       ("[] with a [2, 2] mask", [], [2, 2]),
                       ("empty [0, 3]", [0, 3], [3])):
        add("masked_select", name, {"fn": "masked_select"}, rand(name, x) + [random_mask(name, m)],
            lambda xs: torch.masked_select(xs[0], xs[1]))
    add("masked_select", "nothing picked", {"fn": "masked_select"},
        rand("nothing", [4]) + [mask([False] * 4)], lambda xs: torch.masked_select(xs[0], xs[1]))
    add("masked_select", "everything picked", {"fn": "masked_select"},
        rand("everything", [2, 2]) + [mask([[True, True], [True, True]])],
        lambda xs: torch.masked_select(xs[0], xs[1]))
    return cases


def mask_records():
    records = []
    for case in build_masks():
        for dtype_name in case.dtypes:
            record = ref.op_record(case, dtype_name)
            for i, x in enumerate(case.inputs):
                if x.dtype == torch.bool:
                    record["inputs"][i] = {"shape": list(x.shape),
                                           "bool": [bool(v) for v in x.reshape(-1).tolist()]}
            records.append(record)
    return records


# ---- mask_values.json: the non-differentiable ops, exact ----

def num(v):
    """A number for JSON: "nan", "inf" and "-inf" as strings, as make_reference.py writes them."""
    return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def encode(x):
    """A tensor as {"dtype", "shape", "values"}: floats exact (repr of the double holding the
    float32 or float64 value; "nan", "inf", "-inf" as strings; -0.0 kept), int64 and bool as JSON
    integers and booleans."""
    name = {torch.float32: "float32", torch.float64: "float64", torch.int64: "int64",
            torch.bool: "bool"}[x.dtype]
    flat = x.reshape(-1).tolist()
    if x.is_floating_point():
        flat = [num(v) for v in flat]
    return {"dtype": name, "shape": list(x.shape), "values": flat}


SPECIAL_A = [NAN, INF, -INF, -0.0, 0.0, 1.0, -1.0, 1e-45, 2.0, NAN, 0.1, -3.5]
SPECIAL_B = [NAN, INF, INF, 0.0, -0.0, 1.0, NAN, 0.0, 3.0, 1.0, 0.1, -3.5]
INT_A = [0, -1, 2 ** 53 + 1, -(2 ** 62), 7, 2 ** 62, 5, -5]
INT_B = [0, 1, 2 ** 53, -(2 ** 62), 8, 2 ** 62 - 1, 5, -6]
BOOL_A = [True, False, True, False]
BOOL_B = [True, True, False, False]
COMPARISONS = {"eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
               "ge": torch.ge}
LOGICAL = {"logical_and": torch.logical_and, "logical_or": torch.logical_or,
           "logical_xor": torch.logical_xor}
CLASSIFY = {"isnan": torch.isnan, "isinf": torch.isinf, "isfinite": torch.isfinite,
            "logical_not": torch.logical_not}


def operands(dtype):
    """(name, a, b) pairs of one dtype: elementwise with the special values, broadcast, empty."""
    rng = ref.rng_for("mask_values", str(dtype))
    if dtype.is_floating_point:
        a, b = torch.tensor(SPECIAL_A, dtype=dtype), torch.tensor(SPECIAL_B, dtype=dtype)
        col = ref.uniform(rng, [3, 1]).round().to(dtype)
        row = ref.uniform(rng, [4]).round().to(dtype)
    elif dtype == torch.int64:
        a, b = torch.tensor(INT_A), torch.tensor(INT_B)
        col, row = torch.tensor([[-1], [0], [2]]), torch.tensor([2, -1, 0, 1])
    else:
        a, b = torch.tensor(BOOL_A), torch.tensor(BOOL_B)
        col, row = torch.tensor([[True], [False]]), torch.tensor([False, True, True])
    return [("special values", a, b), ("[3, 1] with [4]", col, row),
            ("[] with [2, 2]", col[0, 0], torch.stack([row[:2], row[1:3]])),
            ("empty [0, 3] with [3]", torch.zeros([0, 3], dtype=dtype), row[:3])]


def value_cases():
    cases = []

    def add(fn, name, inputs, output, **extra):
        cases.append(dict({"fn": fn, "case": name, "inputs": [encode(x) for x in inputs],
                           "output": encode(output)}, **extra))

    for dtype in (torch.float32, torch.float64, torch.int64, torch.bool):
        tag = str(dtype).replace("torch.", "")
        for name, a, b in operands(dtype):
            for fn, f in COMPARISONS.items():
                add(fn, f"{tag} {name}", [a, b], f(a, b))
            for fn, f in LOGICAL.items():
                add(fn, f"{tag} {name}", [a, b], f(a, b))
            for fn, f in CLASSIFY.items():
                add(fn, f"{tag} {name}", [a], f(a))
        a = operands(dtype)[0][1]
        # Against numbers: the scalar is rounded to a floating tensor's precision first (0.1,
        # 1e300 in float32). int64 and bool are compared with integral numbers only, where
        # PyTorch compares exactly; see everyday.h for the others.
        scalars = ([0.0, -0.0, 0.1, -3.5, 1e300, -1e300, INF, NAN] if dtype.is_floating_point
                   else [0.0, 1.0, -1.0, 7.0, 2.0 ** 62])
        for s in scalars:
            for fn, f in COMPARISONS.items():
                add(fn, f"{tag} special values against {s}", [a], f(a, s), scalar=num(s))
    # Mixed dtypes for the logical ops, which take truth values.
    x = torch.tensor(SPECIAL_A)
    add("logical_and", "float32 with bool, broadcast", [x.reshape(3, 4), torch.tensor(BOOL_A)],
        torch.logical_and(x.reshape(3, 4), torch.tensor(BOOL_A)))
    add("logical_or", "int64 with float64", [torch.tensor([0, 2, 0]), torch.tensor([0.0, 0.0, NAN], dtype=torch.float64)],
        torch.logical_or(torch.tensor([0, 2, 0]), torch.tensor([0.0, 0.0, NAN], dtype=torch.float64)))

    # Counting and converting masks.
    m = random_mask("sum", [3, 4])
    add("sum", "[3, 4] mask", [m], m.sum())
    for axis in (0, -1):
        for keepdim in (False, True):
            add("sum", f"[3, 4] mask along {axis}{', keepdim' if keepdim else ''}", [m],
                m.sum(axis, keepdim=keepdim), axis=axis, keepdim=keepdim)
    add("sum", "empty mask", [torch.zeros([0, 2], dtype=torch.bool)], torch.zeros([0, 2], dtype=torch.bool).sum())
    for dtype in (torch.float32, torch.float64):
        add("cast", f"mask to {dtype}", [m], m.to(dtype), to=str(dtype).replace("torch.", ""))
    for dtype in (torch.float32, torch.float64, torch.int64):
        a = operands(dtype)[0][1]
        add("to", f"{str(dtype).replace('torch.', '')} special values to bool", [a], a.to(torch.bool), to="bool")
    add("to", "bool to int64", [m], m.to(torch.int64), to="int64")

    # Selection on int64 and bool tensors (values only: nothing to differentiate).
    ia, ib = torch.tensor(INT_A).reshape(2, 4), torch.tensor(INT_B[:4])
    c = random_mask("where int64", [2, 1])
    add("where", "int64 branches, [2, 1] condition", [c, ia, ib], torch.where(c, ia, ib))
    c = random_mask("where bool", [4])
    add("where", "bool branches", [c, torch.tensor(BOOL_A), torch.tensor(BOOL_B)],
        torch.where(c, torch.tensor(BOOL_A), torch.tensor(BOOL_B)))
    m = random_mask("masked_fill int64", [4])
    add("masked_fill", "int64 with -7", [ia, m], ia.masked_fill(m, -7), value=-7.0)
    add("masked_select", "int64", [ia, m], torch.masked_select(ia, m))
    add("masked_select", "bool", [torch.tensor(BOOL_A), torch.tensor(BOOL_B)],
        torch.masked_select(torch.tensor(BOOL_A), torch.tensor(BOOL_B)))
    return cases


def write_values(path):
    with open(path, "w", encoding="utf-8") as out:
        json.dump(dict(HEADER, cases=value_cases()), out, ensure_ascii=False, separators=(",", ":"))
        out.write("\n")
    print(f"{path}: {os.path.getsize(path)} bytes")


def main():
    ref.write("masks.json", HEADER, mask_records())
    write_values(os.path.join(ref.OUT_DIR, "mask_values.json"))


if __name__ == "__main__":
    sys.exit(main())
