#!/usr/bin/python3
"""Writes tests/reference/optim_optimizers.json and optim_schedules.json: torch.optim's (1.13)
answers for the optimizers and options, parameter groups and schedules that
tests/nn/optim_reference_test.cpp replays in float64.

Run by hand when an optimizer or schedule changes (Debian's python3-torch):
    /usr/bin/python3 scripts/make_optim_reference.py
Everything is fixed (no random draws), so the files are deterministic. Numbers are JSON numbers
that round-trip exactly.

Optimizer cases: two parameters p0 [3] and p1 [2, 2] in float64, given fixed gradients for six
steps (null: the parameter has no gradient at that step, so the optimizer skips it), split into
parameter groups as the case says; "steps" holds both parameters after each step.
Schedule cases: SGD over two groups (lr 0.1 and 0.02); "lrs" holds both groups' rates after
construction (index 0) and after each step. ReduceLROnPlateau cases also give the metric fed
at each step.
"""
import json
import os
import warnings

import torch

torch.set_default_dtype(torch.float64)
# SequentialLR steps the schedule it switches to with step(0), which warns that the epoch argument
# is deprecated (and takes the closed form, as tapegrad's schedules do).
warnings.filterwarnings("ignore", message="The epoch parameter")

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "reference")

INITIAL = [[0.5, -1.5, 2.0], [[1.0, -0.25], [0.75, -2.0]]]
# Large early gradients, then small ones of changing sign: amsgrad's running maximum then differs
# from the second moment, and momentum and centring matter.
GRADS = [
    [[2.0, -1.0, 0.5], [[-3.0, 0.25], [1.0, 4.0]]],
    [[-0.5, 0.75, -0.25], [[0.5, -0.125], [-2.0, 1.0]]],
    [[0.1, -0.2, 0.3], None],
    [[-0.05, 0.4, -0.01], [[0.2, -0.3], [0.1, -0.05]]],
    [None, [[-0.1, 0.02], [0.3, 0.01]]],
    [[0.01, -0.02, 0.03], [[0.05, -0.5], [-0.25, 0.125]]],
]

OPTIMIZER_CASES = [
    # name, kind, default options, groups (parameter indices and overrides)
    ("adam_amsgrad", "Adam", {"lr": 0.1, "amsgrad": True}, [([0, 1], {})]),
    ("adam_amsgrad_weight_decay", "Adam",
     {"lr": 0.05, "betas": (0.8, 0.9), "eps": 1e-6, "weight_decay": 0.1, "amsgrad": True},
     [([0, 1], {})]),
    ("adamw_amsgrad", "AdamW", {"lr": 0.1, "weight_decay": 0.05, "amsgrad": True},
     [([0, 1], {})]),
    ("rmsprop_default", "RMSprop", {"lr": 0.01}, [([0, 1], {})]),
    ("rmsprop_alpha_eps_weight_decay", "RMSprop",
     {"lr": 0.05, "alpha": 0.9, "eps": 1e-4, "weight_decay": 0.1}, [([0, 1], {})]),
    ("rmsprop_momentum", "RMSprop", {"lr": 0.02, "momentum": 0.9}, [([0, 1], {})]),
    ("rmsprop_centered", "RMSprop", {"lr": 0.02, "centered": True}, [([0, 1], {})]),
    ("rmsprop_everything", "RMSprop",
     {"lr": 0.03, "alpha": 0.95, "eps": 1e-6, "weight_decay": 0.2, "momentum": 0.5,
      "centered": True}, [([0, 1], {})]),
    ("adagrad_default", "Adagrad", {"lr": 0.1}, [([0, 1], {})]),
    ("adagrad_everything", "Adagrad",
     {"lr": 0.2, "lr_decay": 0.1, "weight_decay": 0.05, "initial_accumulator_value": 0.5,
      "eps": 1e-6}, [([0, 1], {})]),
    # Parameter groups: weight decay off for the second, its own lr and options.
    ("sgd_groups", "SGD", {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1},
     [([0], {}), ([1], {"lr": 0.05, "weight_decay": 0.0, "nesterov": True})]),
    ("adamw_groups", "AdamW", {"lr": 0.1, "weight_decay": 0.1},
     [([1], {"weight_decay": 0.0, "amsgrad": True}), ([0], {"lr": 0.01})]),
    ("adam_groups", "Adam", {"lr": 0.1},
     [([0], {"betas": (0.5, 0.6), "weight_decay": 0.3}), ([1], {"amsgrad": True, "eps": 1e-3})]),
    ("rmsprop_groups", "RMSprop", {"lr": 0.01, "momentum": 0.5},
     [([0], {"centered": True}), ([1], {"lr": 0.1, "momentum": 0.0, "alpha": 0.5})]),
    # PyTorch fills every accumulator with the constructor's initial_accumulator_value, whatever
    # a group says (tapegrad takes the group's), so no group here overrides it.
    ("adagrad_groups", "Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.25},
     [([0], {"lr_decay": 0.5}), ([1], {"eps": 1e-3, "weight_decay": 0.2})]),
]


def optimizer_case(name, kind, defaults, groups):
    params = [torch.tensor(v, requires_grad=True) for v in INITIAL]
    param_groups = [dict(options, params=[params[i] for i in indices])
                    for indices, options in groups]
    optimizer = getattr(torch.optim, kind)(param_groups, **defaults)
    steps = []
    for grads in GRADS:
        optimizer.zero_grad(set_to_none=True)
        for p, g in zip(params, grads):
            if g is not None:
                p.grad = torch.tensor(g)
        optimizer.step()
        steps.append([p.detach().flatten().tolist() for p in params])

    def options(o):
        o = dict(o)
        if "betas" in o:
            o["beta1"], o["beta2"] = o.pop("betas")
        return o

    return {"name": name,
        "kind": kind,
        "defaults": options(defaults),
        "groups": [{"params": indices, "options": options(o)} for indices, o in groups],
        "initial": [torch.tensor(v).flatten().tolist() for v in INITIAL],
        "shapes": [list(torch.tensor(v).shape) for v in INITIAL],
        "grads": [[None if g is None else torch.tensor(g).flatten().tolist() for g in step]
                  for step in GRADS],
        "steps": steps,
    }


def sgd():
    w = torch.zeros(1, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    return torch.optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.02}], lr=0.1)


def rates(optimizer):
    return [g["lr"] for g in optimizer.param_groups]


def schedule_case(name, spec, make, steps):
    optimizer = sgd()
    scheduler = make(optimizer)
    lrs = [rates(optimizer)]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        lrs.append(rates(optimizer))
    return {"name": name, "schedule": spec, "lrs": lrs}


def S(kind, **args):
    return dict(args, kind=kind)


def build(optimizer, spec):
    S = torch.optim.lr_scheduler
    kind = spec["kind"]
    if kind == "LinearLR":
        return S.LinearLR(optimizer, start_factor=spec["start_factor"],
                          end_factor=spec["end_factor"], total_iters=spec["total_iters"])
    if kind == "StepLR":
        return S.StepLR(optimizer, step_size=spec["step_size"], gamma=spec["gamma"])
    if kind == "CosineAnnealingLR":
        return S.CosineAnnealingLR(optimizer, T_max=spec["T_max"], eta_min=spec["eta_min"])
    if kind == "OneCycleLR":
        return S.OneCycleLR(optimizer, max_lr=spec["max_lr"], total_steps=spec["total_steps"],
                            pct_start=spec["pct_start"], anneal_strategy=spec["anneal"],
                            div_factor=spec["div_factor"],
                            final_div_factor=spec["final_div_factor"], cycle_momentum=False)
    if kind == "SequentialLR":
        children = [build(optimizer, s) for s in spec["schedules"]]
        return S.SequentialLR(optimizer, children, milestones=spec["milestones"])
    raise ValueError(kind)


SCHEDULE_CASES = [
    ("linear_warmup", S("LinearLR", start_factor=0.25, end_factor=1.0, total_iters=10), 40),
    ("linear_decay", S("LinearLR", start_factor=1.0, end_factor=0.1, total_iters=7), 40),
    ("linear_defaults", S("LinearLR", start_factor=1.0 / 3, end_factor=1.0, total_iters=5), 32),
    ("one_cycle_cos", S("OneCycleLR", max_lr=1.0, total_steps=40, pct_start=0.3, anneal="cos",
                        div_factor=25.0, final_div_factor=1e4), 40),
    ("one_cycle_linear", S("OneCycleLR", max_lr=0.5, total_steps=35, pct_start=0.25,
                           anneal="linear", div_factor=10.0, final_div_factor=100.0), 35),
    ("one_cycle_short_warmup", S("OneCycleLR", max_lr=2.0, total_steps=33, pct_start=0.02,
                                 anneal="cos", div_factor=4.0, final_div_factor=3.0), 33),
    ("sequential_warmup_then_cosine",
     S("SequentialLR", milestones=[5],
       schedules=[S("LinearLR", start_factor=0.1, end_factor=1.0, total_iters=5),
                  S("CosineAnnealingLR", T_max=20, eta_min=0.001)]), 40),
    ("sequential_three",
     S("SequentialLR", milestones=[4, 14],
       schedules=[S("LinearLR", start_factor=0.5, end_factor=1.0, total_iters=8),
                  S("StepLR", step_size=3, gamma=0.5),
                  S("CosineAnnealingLR", T_max=10, eta_min=0.0)]), 40),
]

# A loss that falls, stalls, wobbles and falls again.
METRICS = [1.0, 0.9, 0.85, 0.849, 0.8495, 0.86, 0.84, 0.8399, 0.84, 0.7, 0.69, 0.695, 0.7, 0.71,
           0.72, 0.689, 0.6, 0.61, 0.62, 0.63, 0.64, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.45, 0.46,
           0.47, 0.48, 0.49, 0.5, 0.51, 0.52, 0.53]

PLATEAU_CASES = [
    ("plateau_min_rel", {"mode": "min", "factor": 0.5, "patience": 2, "threshold": 0.01,
                         "threshold_mode": "rel", "cooldown": 1, "min_lr": 0.004, "eps": 1e-8},
     METRICS),
    ("plateau_min_abs_no_cooldown", {"mode": "min", "factor": 0.3, "patience": 1,
                                     "threshold": 0.005, "threshold_mode": "abs", "cooldown": 0,
                                     "min_lr": 0.0, "eps": 1e-8}, METRICS),
    ("plateau_max_rel", {"mode": "max", "factor": 0.1, "patience": 3, "threshold": 0.02,
                         "threshold_mode": "rel", "cooldown": 2, "min_lr": 1e-4, "eps": 1e-8},
     [-m for m in METRICS]),
    ("plateau_max_abs", {"mode": "max", "factor": 0.7, "patience": 0, "threshold": 0.01,
                         "threshold_mode": "abs", "cooldown": 3, "min_lr": 0.0, "eps": 1e-8},
     [1 - m for m in METRICS]),
    # eps larger than a late reduction: the rate stops changing before min_lr.
    ("plateau_eps", {"mode": "min", "factor": 0.5, "patience": 0, "threshold": 0.0,
                     "threshold_mode": "rel", "cooldown": 0, "min_lr": 0.0, "eps": 0.004},
     [1.0] * 32),
]


def plateau_case(name, options, metrics):
    optimizer = sgd()
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
    lrs = [rates(optimizer)]
    for m in metrics:
        optimizer.step()
        scheduler.step(m)
        lrs.append(rates(optimizer))
    return {"name": name, "schedule": dict(options, kind="ReduceLROnPlateau"),
            "metrics": metrics, "lrs": lrs}


def write(name, cases):
    with open(os.path.join(OUT, name), "w") as f:
        json.dump({"generator": "scripts/make_optim_reference.py",
                   "torch": torch.__version__, "cases": cases}, f, indent=1)
        f.write("\n")


def main():
    write("optim_optimizers.json", [optimizer_case(*c) for c in OPTIMIZER_CASES])
    write("optim_schedules.json",
          [schedule_case(name, spec, lambda o, s=spec: build(o, s), steps)
           for name, spec, steps in SCHEDULE_CASES] + [plateau_case(*c) for c in PLATEAU_CASES])


if __name__ == "__main__":
    main()
