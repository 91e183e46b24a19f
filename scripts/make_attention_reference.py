#!/usr/bin/python3
"""Writes tests/reference/attention.json: scaled_dot_product_attention (ops/attention.cpp) as
PyTorch computes it, in the record format of make_reference.py (whose machinery this reuses),
replayed by tests/ops/attention_test.cpp.

PyTorch 1.13 has no F.scaled_dot_product_attention, so the maths of PyTorch 2's math path is
composed here with torch ops: softmax(q·kᵀ·scale + mask)·v, is_causal the top-left lower triangle,
a bool mask keeping where true, a float mask added. A row whose every key is masked gives 0, as
PyTorch >= 2.5's _safe_softmax (2.0-2.4 gave NaN): its scores are replaced by 0 before the softmax
and its weights by 0 after, so neither the value nor the gradient sees the NaN of a softmax over
-inf alone.

Each case's name is a registered op's name (a variant such as
"scaled_dot_product_attention(is_causal)"); the call holds the mask (values, not an input: it is
not differentiated), is_causal, scale and dropout; the inputs are q, k and v. The dropout case
draws its mask from tapegrad's Generator (make_norm_reference.MT19937_64), one uniform per weight
of [..., L, S] in row-major order, dropped when < p, as ops/attention.cpp's composition does.

Run by hand with Debian's python3-torch: /usr/bin/python3 scripts/make_attention_reference.py
"""
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as ref  # noqa: E402
from make_norm_reference import MT19937_64  # noqa: E402
from make_reference import INF, Case, rng_for, uniform  # noqa: E402

OP = "scaled_dot_product_attention"


def torch_attention(call, xs):
    q, k, v = xs
    L, S = q.shape[-2], k.shape[-2]
    scale = call["scale"] if call["scale"] is not None else 1.0 / math.sqrt(q.shape[-1])
    scores = q @ k.transpose(-2, -1) * scale
    if call["is_causal"]:
        keep = torch.ones(L, S, dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, -INF)
    mask = call["mask"]
    if mask is not None:
        values = torch.tensor([float(x) for x in mask["values"]], dtype=torch.float64)
        values = values.reshape(mask["shape"])
        if mask["dtype"] == "bool":
            scores = scores.masked_fill(values == 0, -INF)
        else:
            scores = scores + values.to(q.dtype)
    dead = (scores == -INF).all(-1, keepdim=True)
    p = torch.softmax(scores.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    if call["dropout_p"] > 0:
        drop = call["dropout_p"]
        g = MT19937_64(call["seed"])
        keep = [0.0 if g.uniform() < drop else 1.0 for _ in range(p.numel())]
        p = p * torch.tensor(keep, dtype=p.dtype).reshape(p.shape).div_(1 - drop)
    return p @ v


def build():
    cases = []

    def add(op, label, shapes, mask=None, is_causal=False, scale=None, dropout_p=0.0, low=-2.0,
            high=2.0, second_order=True):
        rng = rng_for("attention", op, label)
        xs = [uniform(rng, shape, low, high) for shape in shapes]
        call = {"fn": "scaled_dot_product_attention", "mask": mask, "is_causal": is_causal,
                "scale": scale, "dropout_p": dropout_p, "seed": 7}
        case = Case(op, label, call, xs, sumlike=True)
        case.second_order = second_order
        case.torch_fn = lambda ins, call=call: torch_attention(call, ins)
        cases.append(case)

    def mask(dtype, shape, values):
        return {"dtype": dtype, "shape": shape, "values": values}

    def qkv(lead, L, S, E, Ev):
        return [lead + [L, E], lead + [S, E], lead + [S, Ev]]

    # ---- no mask ----
    add(OP, "[2, 3, 5, 4]", qkv([2, 3], 5, 5, 4, 4))
    add(OP, "S != L, Ev != E: q [1, 2, 7, 3], k [1, 2, 4, 3], v [1, 2, 4, 5]", qkv([1, 2], 7, 4, 3, 5))
    add(OP, "rank 3 [4, 5, 4]", qkv([4], 5, 5, 4, 4))
    add(OP, "rank 2: q [6, 3], k [4, 3], v [4, 2]", qkv([], 6, 4, 3, 2))
    add(OP, "scale 0.3", qkv([2, 2], 4, 5, 3, 3), scale=0.3)
    add(OP, "scores ~1e4", qkv([1, 2], 5, 5, 4, 4), low=-100.0, high=100.0)
    # ---- is_causal ----
    causal = OP + "(is_causal)"
    add(causal, "[2, 3, 5, 4]", qkv([2, 3], 5, 5, 4, 4), is_causal=True)
    add(causal, "L 7 > S 4", qkv([1, 2], 7, 4, 3, 3), is_causal=True)
    add(causal, "L 3 < S 6", qkv([2], 3, 6, 2, 4), is_causal=True)
    add(causal, "scale 2", qkv([2, 1], 4, 4, 3, 3), is_causal=True, scale=2.0)
    add(causal, "scores ~1e4", qkv([1, 2], 5, 5, 4, 4), is_causal=True, low=-100.0, high=100.0)
    add(causal, "T 64, D 32", qkv([1, 1], 64, 64, 32, 32), is_causal=True, second_order=False)
    # ---- bool masks ----
    rows = mask("bool", [5, 5], [1, 0, 1, 1, 0,
                                 0, 0, 0, 0, 0,
                                 1, 1, 1, 1, 1,
                                 0, 0, 1, 0, 0,
                                 1, 0, 0, 1, 1])
    add(OP + "(bool mask, a row fully masked)", "[5, 5] over [2, 3, 5, 4], row 1 masked",
        qkv([2, 3], 5, 5, 4, 4), mask=rows)
    add(OP + "(bool mask, a row fully masked)", "[5, 5] over [1, 2, 5, 3], v Ev 2",
        qkv([1, 2], 5, 5, 3, 2), mask=rows)
    add(OP + "(key padding mask [B, 1, 1, S])", "[2, 1, 1, 4] over [2, 2, 3, 4]",
        qkv([2, 2], 3, 4, 4, 3), mask=mask("bool", [2, 1, 1, 4], [1, 1, 1, 0, 1, 0, 0, 0]))
    # ---- float masks ----
    additive = OP + "(float mask with -inf, scale 0.7)"
    add(additive, "[2, 3, 4] with -inf, a row all -inf, scale 0.7", qkv([2], 3, 4, 2, 3),
        scale=0.7,
        mask=mask("float", [2, 3, 4], [0.5, -INF, -1.0, 0.0, 0.25, 0.0, -INF, 2.0,
                                       0.0, 0.0, 0.0, -0.5, -0.3, 1.0, 0.0, -INF,
                                       0.0, 0.0, 0.0, 0.0, -INF, -INF, -INF, -INF]))
    add(additive, "finite [1, 4, 4] bias over [3, 4, 2]", qkv([3], 4, 4, 2, 2),
        mask=mask("float", [1, 4, 4], [-0.0, -1.0, -2.0, -3.0, -1.0, 0.0, -1.0, -2.0,
                                       -2.0, -1.0, 0.0, -1.0, -3.0, -2.0, -1.0, 0.0]))
    add(additive, "every row all -inf: output and gradients 0", qkv([1, 1], 3, 4, 2, 2),
        mask=mask("float", [3, 4], [-INF] * 12))
    # ---- dropout (tapegrad's generator, seed 7) ----
    add(OP + "(dropout 0.4)", "[2, 3, 4], p 0.4", qkv([2], 3, 4, 2, 2), dropout_p=0.4)
    add(OP + "(dropout 0.4)", "[1, 2, 3, 5], p 0.4", qkv([1, 2], 3, 5, 3, 2), dropout_p=0.4)
    return cases


def main():
    cases = build()
    ref.write("attention.json", dict(ref.HEADER, generator="scripts/make_attention_reference.py"),
              ref.op_records(cases))


if __name__ == "__main__":
    sys.exit(main())
