"""The horizon of ``probabilistic_lr`` (``decay_steps``), chosen on design networks.

Issue 12 asks for network defaults chosen on a design set and reported on
held-out problems and seeds. This study is the design half for
``probabilistic_lr``: on the **design problems** ``mnist_mlp`` and ``fmnist_2c2d``
(the ``networks`` profile's budgets) with the **design seed** 100 (the profile
reports seeds 0, 1, 2) and the initial rates 1e-5, 1e-2, 1, it compares

* Alg. 1 as the paper runs it (thresholds 4/3 and 3/4), on Adam (β₁ = 0.5) and on
  SGD with momentum 0.5;
* the same with the steps cosine-decayed to 0 over the run, thresholds kept
  ("decay only");
* the horizon (``decay_steps``' defaults): decayed steps and the thresholds 1 and
  1/4, so that η aims past the batch's line minimum;
* Adam + cosine and Schedule-Free AdamW at the same three rates, for scale.

The held-out half is the ``networks`` profile (``fmnist_mlp`` and ``brown_lm``,
never run while choosing; seeds 0, 1, 2 on all four), where the horizon runs as
``probabilistic_lr_cosine`` / ``probabilistic_lr_adam_cosine``.

Command: python -m benchmarks.studies.horizon
Writes benchmarks/results/horizon.{json,md,png} (12 min on 2 CPU cores).
"""

from __future__ import annotations

import sys

import numpy as np
import optax

import adaptlr
from benchmarks import harness, problems
from benchmarks import methods as methods_lib
from benchmarks.studies import _design

DESIGN_PROBLEMS = ("mnist_mlp", "fmnist_2c2d")
DESIGN_SEEDS = (100,)
RATES = (1e-5, 1e-2, 1.0)
PAPER = {"increase_threshold": 4 / 3, "decrease_threshold": 3 / 4}


def _prob(direction, horizon=False, **kw):
  def make(rate, problem):
    steps = {"decay_steps": problem.steps} if horizon else {}
    return adaptlr.probabilistic_lr(rate, direction=direction(), **steps, **kw)

  return make


_ADAM = lambda: optax.scale_by_adam(b1=0.5)
_MOMENTUM = lambda: optax.trace(0.5)
CANDIDATES = {
  "adam: Alg. 1": _prob(_ADAM),
  "adam: decay only": _prob(_ADAM, True, **PAPER),
  "adam: horizon": _prob(_ADAM, True),
  "momentum: Alg. 1": _prob(_MOMENTUM),
  "momentum: decay only": _prob(_MOMENTUM, True, **PAPER),
  "momentum: horizon": _prob(_MOMENTUM, True),
}
REFERENCES = ("adamw_cosine", "schedule_free_adamw")


def run(problem_names=DESIGN_PROBLEMS, seeds=DESIGN_SEEDS, rates=RATES, profile="networks") -> dict:
  reg = methods_lib.registry()
  out = {}
  for name in problem_names:
    prob = problems.build(name, profile, seeds=seeds, rates=rates)
    rows = {}
    entries = [(c, methods_lib.Method(c, "adaptlr", make)) for c, make in CANDIDATES.items()]
    entries += [(r, reg[r]) for r in REFERENCES]
    for label, method in entries:
      res = harness.run_method(prob, method)
      train = np.asarray(res["curves"]["train_loss"], float).mean(0)  # [rates, rounds]
      test = np.asarray(res["final"]["test_loss"], float).mean(0)
      rows[label] = {"final_train_loss": train[:, -1].tolist(), "test_loss": test.tolist()}
      rows[label]["curve"] = train.tolist()
    out[name] = {"steps": prob.steps, "rounds": prob.rounds, "rows": rows}
  return out


def markdown(result: dict, command: str, machine: str) -> str:
  lines = [
    "# The horizon of `probabilistic_lr`, chosen on design networks",
    "",
    f"Command: `{command}`  ",
    f"Machine: {machine}",
    "",
    "Design set: `mnist_mlp` and `fmnist_2c2d` at the `networks` profile's budgets, "
    f"seed {', '.join(map(str, DESIGN_SEEDS))} (the profile reports seeds 0, 1, 2), "
    "initial rates " + ", ".join(f"{r:g}" for r in RATES) + ". Held out: `fmnist_mlp` and "
    "`brown_lm`, and the seeds 0–2 on all four, in "
    "[networks/](networks/report.md) (`probabilistic_lr_cosine`, "
    "`probabilistic_lr_adam_cosine`). Cells: final training loss (last evaluation) "
    "per initial rate; test loss in brackets.",
    "",
  ]
  for name, r in result.items():
    lines += [f"## `{name}` ({r['steps']} steps)", ""]
    n = len(next(iter(r["rows"].values()))["final_train_loss"])
    lines += ["| configuration | " + " | ".join(f"η₀ = {x:g}" for x in RATES[:n]) + " | median |"]
    lines += ["|---" * (n + 2) + "|"]
    for label, row in r["rows"].items():
      cells = [
        f"{f:.4g} ({t:.4g})" for f, t in zip(row["final_train_loss"], row["test_loss"], strict=True)
      ]
      med = float(np.median(row["final_train_loss"]))
      lines.append(f"| {label} | " + " | ".join(cells) + f" | {med:.4g} |")
    lines.append("")
  lines.append("Medians over the initial rates, Alg. 1 → decay only → horizon:")
  lines.append("")
  lowest = True
  for name, r in result.items():
    for base in ("adam", "momentum"):
      med = [
        float(np.median(r["rows"][f"{base}: {c}"]["final_train_loss"]))
        for c in ("Alg. 1", "decay only", "horizon")
      ]
      lowest &= med[2] <= min(med[:2])
      lines.append(f"* `{name}`, {base}: " + " → ".join(f"{m:.4g}" for m in med))
  lines += [
    "",
    "The horizon has the lowest median on every design problem and direction: "
    + ("yes" if lowest else "no")
    + ". The choice made from these tables: thresholds 1 and 1/4 whenever "
    "`decay_steps` is given (the decay alone does not help everywhere: the greedy rate "
    "it anneals is already small).",
  ]
  return "\n".join(lines)


def figure(result: dict):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(1, len(result), figsize=(6 * len(result), 4), squeeze=False)
  for ax, (name, r) in zip(axes[0], result.items(), strict=True):
    for label, row in r["rows"].items():
      curve = np.median(np.asarray(row["curve"]), axis=0)
      style = "--" if label in REFERENCES else "-"
      ax.plot(curve, style, label=label)
    ax.set_yscale("log")
    ax.set_title(f"{name}: median over η₀ of the training loss")
    ax.set_xlabel("evaluation round")
    ax.legend(fontsize=7)
  fig.tight_layout()
  return fig


def main(argv=None):
  _design.main(sys.modules[__name__], argv)


if __name__ == "__main__":
  main()
