#!/usr/bin/python3
"""Writes tests/reference/loss_modules.json: torch.nn's (1.13) loss modules with the options that
change their value (reduction, ignore_index, label_smoothing, weight, beta), which
tests/nn/loss_module_test.cpp replays in float64 without PyTorch.

Run by hand when a loss changes (Debian's python3-torch):
    /usr/bin/python3 scripts/make_loss_module_reference.py
Each case is seeded by its index, so the file is deterministic; numbers round-trip exactly.
A case holds the input, the target, the output and the gradient of ⟨output, cotangent⟩ with
respect to the input.
"""
import json
import os

import torch

torch.set_default_dtype(torch.float64)
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "reference", "loss_modules.json")

N, C = 6, 4
# Labels with class 1 three times, so ignore_index=1 leaves three rows, and a weight per class.
LABELS = [1, 0, 3, 1, 2, 1]
WEIGHT = [0.5, 2.0, 1.0, 0.25]

CASES = [
    # module, options (as the C++ option fields), input kind, target kind
    ("MSELoss", {}, "real", "real"),
    ("MSELoss", {"reduction": "sum"}, "real", "real"),
    ("L1Loss", {"reduction": "none"}, "real", "real"),
    ("L1Loss", {}, "real", "real"),
    ("SmoothL1Loss", {}, "real", "real"),
    ("SmoothL1Loss", {"beta": 0.5, "reduction": "sum"}, "real", "real"),
    ("SmoothL1Loss", {"beta": 0.0}, "real", "real"),
    ("BCEWithLogitsLoss", {}, "real", "probability"),
    ("BCEWithLogitsLoss", {"reduction": "none"}, "real", "probability"),
    ("CrossEntropyLoss", {}, "real", "labels"),
    ("CrossEntropyLoss", {"reduction": "sum"}, "real", "labels"),
    ("CrossEntropyLoss", {"reduction": "none", "ignore_index": 1}, "real", "labels"),
    ("CrossEntropyLoss", {"ignore_index": 1}, "real", "labels"),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, "real", "labels"),
    ("CrossEntropyLoss", {"weight": WEIGHT}, "real", "labels"),
    ("CrossEntropyLoss", {"weight": WEIGHT, "ignore_index": 1, "label_smoothing": 0.2},
     "real", "labels"),
    ("CrossEntropyLoss", {"weight": WEIGHT, "label_smoothing": 0.3, "reduction": "none"},
     "real", "labels"),
    ("NLLLoss", {}, "log_probs", "labels"),
    ("NLLLoss", {"weight": WEIGHT}, "log_probs", "labels"),
    ("NLLLoss", {"weight": WEIGHT, "ignore_index": 1, "reduction": "sum"}, "log_probs", "labels"),
    ("NLLLoss", {"ignore_index": 3, "reduction": "none"}, "log_probs", "labels"),
]


def make(kind, shape):
    if kind == "real":
        return torch.randn(shape) * 2
    if kind == "probability":
        return torch.rand(shape)
    if kind == "log_probs":
        return torch.log_softmax(torch.randn(shape) * 2, dim=1)
    return torch.tensor(LABELS, dtype=torch.int64)


def main():
    cases = []
    for index, (module, options, input_kind, target_kind) in enumerate(CASES):
        torch.manual_seed(index)
        x = make(input_kind, (N, C)).requires_grad_(True)
        target = make(target_kind, (N, C))
        torch_options = dict(options)
        if "weight" in torch_options:
            torch_options["weight"] = torch.tensor(torch_options["weight"])
        output = getattr(torch.nn, module)(**torch_options)(x, target)
        cotangent = torch.randn(output.shape)
        (grad,) = torch.autograd.grad(output, x, cotangent)
        cases.append({
            "module": module,
            "options": options,
            "shape": list(x.shape),
            "input": x.detach().flatten().tolist(),
            "target": target.flatten().tolist(),
            "target_is_labels": target_kind == "labels",
            "output_shape": list(output.shape),
            "output": output.detach().flatten().tolist(),
            "cotangent": cotangent.flatten().tolist(),
            "grad_input": grad.flatten().tolist(),
        })
    with open(OUT, "w") as out:  # one case per line
        out.write('{"torch": %s, "cases": [\n' % json.dumps(torch.__version__))
        out.write(",\n".join(json.dumps(case) for case in cases))
        out.write("\n]}\n")


if __name__ == "__main__":
    main()
