#!/usr/bin/python3
"""Writes tests/reference/language.json: PyTorch's answers for the language-model ops of
ops/language.h (tril, triu, embedding, layer_norm, topk), in the record format of
make_reference.py (whose machinery this reuses), replayed by tests/ops/language_test.cpp.

Each case's op is a registered op's name (a variant such as "layer_norm(k=2)"); embedding's
cases, with and without padding_idx, all go by "embedding". The call holds the options and, for embedding, the
int64 indices (a constant, not an input): the inputs are the floating tensors alone. topk's records
also hold PyTorch's indices ("indices"); its cases have distinct values or ties resolved the same
way by both (PyTorch 1.13's CPU topk keeps the lower index first on the ties recorded here).

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_language_reference.py
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_reference import INF, NAN, Case, rng_for, t, uniform  # noqa: E402


def torch_language(call, xs):
    fn = call["fn"]
    if fn == "tril":
        return torch.tril(xs[0], call["diagonal"])
    if fn == "triu":
        return torch.triu(xs[0], call["diagonal"])
    if fn == "embedding":
        indices = torch.tensor(call["indices"], dtype=torch.int64).reshape(call["indices_shape"])
        return F.embedding(indices, xs[0], call["padding_idx"])
    if fn == "layer_norm":
        weight = xs[1] if call["weight"] else None
        bias = xs[-1] if call["bias"] else None
        return F.layer_norm(xs[0], call["normalized_shape"], weight, bias, call["eps"])
    if fn == "topk":
        return torch.topk(xs[0], call["k"], call["axis"], call["largest"], call["sorted"]).values
    raise ValueError(fn)


def build():
    cases = []

    def add(op, label, call, xs, second_order=True, sumlike=False, centred=False):
        case = Case(op, label, call, xs, sumlike=sumlike, centred=centred)
        case.torch_fn = lambda ins, call=call: torch_language(call, ins)
        case.second_order = second_order
        cases.append(case)

    def rand(op, label, shape, low=-2.0, high=2.0):
        return uniform(rng_for("language", op, label), shape, low, high)

    # ---- tril / triu ----
    for fn in ("tril", "triu"):
        for diagonal, shape in ((0, [4, 4]), (-1, [3, 5]), (2, [5, 3]), (0, [2, 3, 4]),
                                (-1, [2, 1, 3, 3]), (2, [3, 4]), (0, [0, 3])):
            label = f"{shape}, diagonal {diagonal}"
            add(f"{fn}(diagonal={diagonal})", label, {"fn": fn, "diagonal": diagonal}, [rand(fn, label, shape)],
                second_order=False)

    # ---- embedding ----
    for label, indices, shape, padding, rows in (
            ("[2, 3] indices into [5, 4]", [0, 4, 2, 2, 1, 4], [2, 3], None, [5, 4]),
            ("[4] indices, repeats", [3, 3, 0, 3], [4], None, [4, 2]),
            ("[2, 3] indices, padding_idx 2", [0, 2, 2, 1, 4, 2], [2, 3], 2, [5, 3]),
            ("[3] indices, padding_idx -1", [4, 0, 4], [3], -1, [5, 2]),
            ("[2, 0] indices", [], [2, 0], None, [3, 2])):
        add("embedding", label, {"fn": "embedding", "indices": indices, "indices_shape": shape,
                        "padding_idx": padding}, [rand("embedding", label, rows)],
            second_order=False, sumlike=True)

    # ---- layer_norm ----
    for op, label, shape, normalized, affine, eps, low, high, x in (
            ("layer_norm(k=1)", "[3, 4] over [4]", [3, 4], [4], 2, 1e-5, -2.0, 2.0, None),
            ("layer_norm(k=1, no affine)", "[2, 3, 4] over [4], no affine", [2, 3, 4], [4], 0,
             1e-5, -2.0, 2.0, None),
            ("layer_norm(k=2)", "[2, 3, 4] over [3, 4]", [2, 3, 4], [3, 4], 2, 1e-5, -2.0, 2.0,
             None),
            ("layer_norm(k=2)", "[2, 2, 3] over [2, 3], eps 0.1", [2, 2, 3], [2, 3], 2, 0.1, -2.0,
             2.0, None),
            ("layer_norm(k=2, weight only)", "[2, 2, 3] over [2, 3], weight only", [2, 2, 3],
             [2, 3], 1, 1e-5, -2.0, 2.0, None),
            ("layer_norm(k=1)", "[5] over [5]", [5], [5], 2, 1e-5, -2.0, 2.0, None),
            ("layer_norm(k=1)", "large offset 1e4, spread 10 (values of 6 digits)", [3, 6], [6], 2,
             1e-5, 1e4, 1e4 + 10, None),
            ("layer_norm(k=1)", "a constant row, eps 1e-5", [2, 3], [3], 2, 1e-5, 0, 0,
             t([[1.5, 1.5, 1.5], [0.25, -1.0, 2.0]])),
            ("layer_norm(k=1, eps=0.1, a constant row)", "a constant row, eps 0.1", [2, 3], [3], 2,
             0.1, 0, 0, t([[0.75, 0.75, 0.75], [0.25, -1.0, 2.0]])),
            ("layer_norm(k=1)", "[0, 4] over [4]", [0, 4], [4], 2, 1e-5, -2.0, 2.0, None)):
        xs = [x if x is not None else rand("layer_norm", label, shape, low, high)]
        r = rng_for("language", "layer_norm", label, "affine")
        if affine >= 1:
            xs.append(uniform(r, normalized, 0.5, 1.5))
        if affine >= 2:
            xs.append(uniform(r, normalized))
        # The large offset's record holds no second order: its replay would take the composed
        # rule (create_graph), whose float32 statistics are tapegrad's float32 sums, digits
        # short at a 1e4 offset; the fused first-order rule (statistics in double) is replayed.
        add(op, label, {"fn": "layer_norm", "normalized_shape": normalized,
                        "weight": affine >= 1, "bias": affine >= 2, "eps": eps}, xs,
            sumlike=True, centred=True, second_order=low < 1e3)

    # ---- topk ----
    for label, shape, k, axis, largest, srt, x in (
            ("[3, 5], k 2", [3, 5], 2, -1, True, True, None),
            ("[3, 5], k 5", [3, 5], 5, -1, True, True, None),
            ("[4, 2, 3] along 0, k 3, smallest", [4, 2, 3], 3, 0, False, True, None),
            ("[6], k 0", [6], 0, 0, True, True, None),
            ("[2, 4], NaN and inf, largest", [2, 4], 2, 1, True, True,
             t([[1.0, NAN, INF, -2.0], [-INF, 0.5, 3.0, NAN]])),
            ("[2, 4], NaN and inf, smallest", [2, 4], 3, 1, False, True,
             t([[1.0, NAN, INF, -2.0], [-INF, 0.5, 3.0, NAN]]))):
        add("topk(k=2, axis=-1)" if largest else "topk(k=3, axis=0, smallest)", label, {"fn": "topk", "k": k, "axis": axis, "largest": largest, "sorted": srt},
            [x if x is not None else rand("topk", label, shape)], second_order=False)
    return cases


def main():
    cases = build()
    records = ref.op_records(cases)
    by_key = {(c.op, c.name): c for c in cases}
    for r in records:
        case = by_key[(r["op"], r["case"])]
        if case.call["fn"] == "topk":
            x = case.inputs[0].to(ref.DTYPES[r["dtype"]])
            c = case.call
            r["indices"] = torch.topk(x, c["k"], c["axis"], c["largest"], c["sorted"]).indices \
                .reshape(-1).tolist()
    ref.write("language.json", dict(ref.HEADER, generator="scripts/make_language_reference.py"),
              records)


if __name__ == "__main__":
    sys.exit(main())
