"""Network defaults of ``tlr``, ``hypergradient`` and ``vsgd``, chosen on design networks.

Issue 12 asks, per method family, for a default a user can leave untouched on a
network, chosen on a design set and reported on held-out problems and seeds.
This study is the design half for the families other than ``probabilistic_lr``
(``studies/horizon.py``) and ``newton_lr`` (its failure is in the networks
report's learning-rate curves): on the **design problems** ``mnist_mlp`` and
``fmnist_2c2d`` (the ``networks`` profile's budgets) with the **design seed** 100
(the profile reports seeds 0, 1, 2) and the initial rates 1e-5, 1e-2, 1, it runs
each family's candidates:

* ``tlr`` (accumulation = ⅓ epoch, the paper's minibatch setting): the paper's
  fixed bound c = 1/4; the cold start (c doubles while it caps, up to 1:
  ``max_bound=1``); a fixed c = 1. (The cold start went to the held-out problems
  and diverged on the LM, so the default stayed the paper's: ``networks/``,
  ``tlr_cold_start``.)
* ``hypergradient``: Baydin et al.'s additive rule (β = 1e-3); the multiplicative
  (normalized) rule with β = 0.02 and 0.1; the additive rule on heavy-ball
  momentum 0.9 (Baydin et al.'s SGDN-HD is on Nesterov momentum).
* ``vsgd`` (rate-free, one run): vSGD-l (per element, the paper's best, its
  curvature refreshed every 10 steps), vSGD-b (per tensor), vSGD-g (global), and
  vSGD-l with the curvature every step (over issue 12's cost budget for a default:
  +1.7 ms per step on the overhead MLP, about two forward passes; so are the
  grouped rates, which sample every step).

The held-out half is the ``networks`` profile (``fmnist_mlp`` and ``brown_lm``,
never run while choosing; seeds 0, 1, 2 on all four).

Command: python -m benchmarks.studies.network_defaults
Writes benchmarks/results/network_defaults.{json,md,png} (19 min on 2 CPU cores).
"""

from __future__ import annotations

import sys

import numpy as np

import adaptlr
from benchmarks import harness, problems
from benchmarks import methods as methods_lib
from benchmarks.studies import _design

DESIGN_PROBLEMS = ("mnist_mlp", "fmnist_2c2d")
DESIGN_SEEDS = (100,)
RATES = (1e-5, 1e-2, 1.0)
_RATE = methods_lib._tree_get("learning_rate")  # the learned rate(s), as the profile reads it


def _tlr(**kw):
  return lambda rate, p: adaptlr.tlr(rate, accumulation_steps=p.tlr_window, **kw)


def _hypergradient(**kw):
  return lambda rate, p: adaptlr.hypergradient(rate, **kw)


def _vsgd(**kw):
  return lambda rate, p: adaptlr.vsgd(**kw)


# family -> {label: (make, swept, is the default)}
CANDIDATES = {
  "tlr": {
    "paper: c = 1/4": (_tlr(), True, True),
    "cold start: c doubles up to 1": (_tlr(max_bound=1.0), True, False),
    "fixed c = 1": (_tlr(bound=1.0, max_bound=None), True, False),
  },
  "hypergradient": {
    "additive, β = 1e-3 (Baydin et al.)": (_hypergradient(), True, True),
    "multiplicative, β = 0.02": (_hypergradient(multiplicative=True, hyper_lr=0.02), True, False),
    "multiplicative, β = 0.1": (_hypergradient(multiplicative=True, hyper_lr=0.1), True, False),
    "additive, heavy-ball momentum 0.9": (_hypergradient(momentum=0.9), True, False),
  },
  "vsgd": {
    # the default when this study ran (curvature refreshed every 10 steps); now the last row
    "per element (vSGD-l)": (_vsgd(curvature_every=10), False, False),
    "per tensor (vSGD-b)": (_vsgd(granularity="leaf"), False, False),
    "global (vSGD-g)": (_vsgd(granularity="global"), False, False),
    "per element, curvature every step": (_vsgd(curvature_every=1), False, True),
  },
}


def run(
  problem_names=DESIGN_PROBLEMS,
  seeds=DESIGN_SEEDS,
  rates=RATES,
  profile="networks",
  candidates=None,
) -> dict:
  """{problem: {steps, rounds, families: {family: {label: row}}}} over ``candidates``."""
  out = {}
  for name in problem_names:
    prob = problems.build(name, profile, seeds=seeds, rates=rates)
    fams = {}
    for fam, cands in (candidates or CANDIDATES).items():
      rows = {}
      for label, (make, swept, default) in cands.items():
        method = methods_lib.Method(label, "adaptlr", make, swept=swept, lr_reader=_RATE)
        res = harness.run_method(prob, method)
        train = np.asarray(res["curves"]["train_loss"], float).mean(0)  # [rates, rounds]
        lr = np.asarray(res["curves"]["lr"], float).mean(0)
        test = np.asarray(res["final"]["test_loss"], float).mean(0)
        rows[label] = {
          "default": default,
          "final_train_loss": train[:, -1].tolist(),
          "test_loss": test.tolist(),
          "final_lr": lr[:, -1].tolist(),
          "lr_curve": lr.tolist(),
        }
      fams[fam] = rows
    out[name] = {"steps": prob.steps, "rounds": prob.rounds, "families": fams}
  return out


def _fmt(x: float) -> str:
  return "∞" if not np.isfinite(x) else f"{x:.4g}"


def markdown(result: dict, command: str, machine: str) -> str:
  lines = [
    "# Network defaults of `tlr`, `hypergradient` and `vsgd`, chosen on design networks",
    "",
    *tables(result, command, machine),
    *CHOSEN,
  ]
  return "\n".join(lines)


def tables(result: dict, command: str, machine: str) -> list[str]:
  """The command, the design set and one table per (problem, family)."""
  lines = [
    f"Command: `{command}`  ",
    f"Machine: {machine}",
    "",
    "Design set: `mnist_mlp` and `fmnist_2c2d` at the `networks` profile's budgets, "
    f"seed {', '.join(map(str, DESIGN_SEEDS))} (the profile reports seeds 0, 1, 2), "
    "initial rates " + ", ".join(f"{r:g}" for r in RATES) + " (`vsgd` is rate-free: one "
    "run). Held out: `fmnist_mlp` and `brown_lm`, and the seeds 0–2 on all four, in "
    "[networks/](networks/report.md). Cells: final training loss (last evaluation) per "
    "initial rate, the learned rate at the end in brackets; **bold**: the default chosen.",
    "",
  ]
  for name, r in result.items():
    lines += [f"## `{name}` ({r['steps']} steps)", ""]
    for fam, rows in r["families"].items():
      n = max(len(row["final_train_loss"]) for row in rows.values())
      head = " | ".join(f"η₀ = {x:g}" for x in RATES[:n]) if n > 1 else "one run (rate-free)"
      lines += [f"| `{fam}` | {head} | median |", "|---" * (n + 2) + "|"]
      for label, row in rows.items():
        cells = [
          f"{_fmt(f)} ({_fmt(lr)})"
          for f, lr in zip(row["final_train_loss"], row["final_lr"], strict=True)
        ]
        cells += [""] * (n - len(cells))
        med = float(np.median(row["final_train_loss"]))
        label = f"**{label}**" if row["default"] else label
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_fmt(med)} |")
      lines.append("")
  return lines


CHOSEN = [
  "## What was chosen",
  "",
  "Held-out numbers: [networks/](networks/report.md), configurations `tlr_cold_start`, "
  "`hypergradient_momentum` and `vsgd_every_step` (now `vsgd` itself; seeds 0–2, six "
  "initial rates, all four networks).",
  "",
  "* `tlr`: the cold start has the lowest median on the MNIST MLP, a fixed c = 1 on the "
  "CNN; the fixed c = 1 overshoots from η₀ = 1 on the MLP (0.49 against 0.022: it "
  "doubles at every capped update and never returns to 1/4), so the cold start went to "
  "the held-out problems. There it diverged on the LM from 5 of 6 initial rates (the "
  "paper's bound: 2 of 6). The default stays the paper's bound; the cold start is the "
  "option `max_bound=1`.",
  "* `hypergradient`: heavy-ball momentum 0.9 has the lowest median on both design "
  "problems, but on the held-out F-MNIST MLP it diverged from 3 of 6 initial rates (no "
  "divergence brake on a momentum direction), and with the seeds 0–2 its CNN median "
  "regret is worse (3.37 against 2.46). The default stays Baydin et al.'s SGD-HD.",
  "* `vsgd`: of the per-element candidates (the paper's best, 5–7× lower than per "
  "tensor or global on the MNIST MLP) only the curvature sampled every step is finite "
  "on the design CNN, and with the held-out seeds it is finite on all four networks "
  "(per tensor and global sample every step too, at the same cost); it costs about two "
  "forward passes a step more (`overhead.md`), over the cost budget then set for a new "
  "default (one forward pass). The default stayed then (since: `curvature_every=1` is "
  "the default, as a default that learns comes before its cost); the docstring named "
  "`curvature_every=1` for networks.",
]


def figure(result: dict, candidates=None):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names, fams = list(result), list(candidates or CANDIDATES)
  fig, axes = plt.subplots(
    len(names), len(fams), figsize=(5 * len(fams), 3.6 * len(names)), squeeze=False
  )
  for i, name in enumerate(names):
    for j, fam in enumerate(fams):
      ax = axes[i][j]
      for k, (label, row) in enumerate(result[name]["families"][fam].items()):
        for c, curve in enumerate(np.asarray(row["lr_curve"])):
          ax.plot(curve, f"C{k}", alpha=0.4 + 0.3 * c, label=label if c == 0 else None)
      ax.set_yscale("log")
      ax.set_title(f"{name}: {fam}, learned rate (each η₀)", fontsize=9)
      ax.set_xlabel("evaluation round")
      ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def main(argv=None):
  _design.main(sys.modules[__name__], argv)


if __name__ == "__main__":
  main()
