"""Picks newton_lr's defaults by measurement: derivatives, eps, max_change.

For every configuration below, ``adaptlr.newton_lr`` trains each problem from
the initial rates 1e-5 … 1 (one per decade) in float32, one seed, through the
benchmark harness (one compiled, vmapped run per configuration × problem).
Reported per configuration and problem:

* ``final``: the final training loss per initial rate (``inf`` if non-finite);
* ``ok``: how many initial rates end within 10% (of the excess loss over f*,
  where f* is known) of the best plain-SGD run of the same grid — "as good as
  tuned SGD from any start";
* ``peak``: the largest training loss seen during the run, relative to the
  initial loss (> 1: the run blew up at some point);
* ``lr_jump``: the largest factor by which the (logged) rate changed between
  two consecutive evaluations — a stability measure of η itself.

Plus a precision table: on the 784-1000-10 MLP (mnist_small), the relative
error of f″ and of the Newton step from the five-point stencil at several ε, in
float32, against the exact float64 values (nested jvp), at several rates.

Command: python -m benchmarks.studies.newton_defaults [--problems a,b] [--configs "a;b"]
[--merge]. Writes benchmarks/results/newton_defaults.{json,md}; with ``--merge``
only the given configs are recomputed and spliced into the existing JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptlr
from adaptlr import probes as _probes
from benchmarks import harness, io
from benchmarks import methods as methods_lib
from benchmarks import problems as problems_lib

RATES = harness.RATES
PROBLEMS = (
  "boston_linreg",
  "rosenbrock",
  "quadratic_deep",
  "noisy_quadratic",
  "mnist_logreg",
  "mnist_mlp",
)

# name -> newton_lr kwargs (learning_rate is swept). "paper order": the step
# uses η_k (safeguard=False); "safeguard": it uses min(η_k, η_{k+1}).
_FD = dict(derivatives="finite_difference")
_AD = dict(derivatives="autodiff")
CONFIGS = {
  "paper: fd eps=1e-5, unbounded, paper order": dict(
    **_FD, eps=1e-5, max_change=None, safeguard=False
  ),
  "fd eps=1e-5, c=1, safeguard": dict(**_FD, eps=1e-5, max_change=1.0, safeguard=True),
  "fd rel 0.01, c=1, safeguard": dict(**_FD, relative_eps=0.01, max_change=1.0, safeguard=True),
  "fd rel 0.25, unbounded, paper order": dict(
    **_FD, relative_eps=0.25, max_change=None, safeguard=False
  ),
  "fd rel 0.25, c=1, safeguard": dict(**_FD, relative_eps=0.25, max_change=1.0, safeguard=True),
  "autodiff, unbounded, paper order": dict(**_AD, max_change=None, safeguard=False),
  "autodiff, c=1, paper order": dict(**_AD, max_change=1.0, safeguard=False),
  "autodiff, unbounded, safeguard": dict(**_AD, max_change=None, safeguard=True),
  "autodiff, c=0.25, safeguard": dict(**_AD, max_change=0.25, safeguard=True),
  "autodiff, c=1, safeguard": dict(**_AD, max_change=1.0, safeguard=True),
  "autodiff, c=4, safeguard": dict(**_AD, max_change=4.0, safeguard=True),
  "autodiff, c=1, safeguard, momentum 0.9": dict(
    **_AD, max_change=1.0, safeguard=True, rate_momentum=0.9
  ),
}
TOL = 0.10


def _method(name, kwargs):
  return methods_lib.Method(
    name,
    "adaptlr",
    lambda rate, problem: adaptlr.newton_lr(rate, **kwargs),
    lr_reader=lambda s: optax.tree.get(s, "learning_rate"),
  )


def _sgd():
  return methods_lib.Method("sgd", "baseline", lambda rate, problem: optax.sgd(rate))


def _summary(result, problem, best_sgd):
  final = harness.final_train_loss(result)
  curve = np.where(
    np.isfinite(result["curves"]["train_loss"][0]), result["curves"]["train_loss"][0], np.inf
  )  # [rates, rounds]
  init = np.asarray(result["init"]["train_loss"][0], np.float64)
  peak = np.max(curve, axis=-1) / init
  lr = np.asarray(result["curves"]["lr"][0], np.float64)
  with np.errstate(all="ignore"):
    ratio = np.abs(np.log(lr[:, 1:] / lr[:, :-1]))
    jump = np.exp(np.nanmax(np.where(np.isfinite(ratio), ratio, np.nan), axis=-1))
  f_star = problem.f_star or 0.0
  ok = int(np.sum(final - f_star <= (1 + TOL) * (best_sgd - f_star)))
  return {
    "final": [float(v) for v in final],
    "ok": ok,
    "peak": [float(v) for v in peak],
    "lr_jump": [float(v) for v in jump],
    "final_lr": [float(v) for v in lr[:, -1]],
  }


def precision_table(rates=(1e-3, 1e-2, 1e-1), eps_list=(1e-5, 1e-3, "rel 0.01", "rel 0.25")):
  """Relative error of the float32 five-point f″ and Newton step vs exact float64."""
  from benchmarks import data as data_lib

  x, y = data_lib.load("mnist_small", "train")
  x, y = x[:128], y[:128]

  def init(key, dtype):
    k1, k2 = jax.random.split(key)
    return {
      "w1": (jax.random.normal(k1, (784, 1000)) * jnp.sqrt(2 / 784)).astype(dtype),
      "b1": jnp.zeros(1000, dtype),
      "w2": (jax.random.normal(k2, (1000, 10)) * jnp.sqrt(2 / 1000)).astype(dtype),
      "b2": jnp.zeros(10, dtype),
    }

  def loss(p, x, y):
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ p["w2"] + p["b2"], y))

  rows = []
  with jax.enable_x64(True):
    p64 = init(jax.random.key(0), jnp.float64)
    x64, y64 = jnp.asarray(x, jnp.float64), jnp.asarray(y)

    def f64(p):
      return loss(p, x64, y64)

    g64 = jax.grad(f64)(p64)
    exact = {r: [float(v) for v in _probes.line_derivatives(f64, p64, g64, r)] for r in rates}
  p32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
  g32 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), g64)

  def f32(p):
    return loss(p, jnp.asarray(x), jnp.asarray(y))

  for r in rates:
    _, d1, d2 = exact[r]
    newton = r - d1 / d2
    for e in eps_list:
      eps = r * float(e.split()[1]) if isinstance(e, str) else e
      v = np.asarray(_probes.line_probes(f32, p32, g32, r, eps), np.float64)
      fd2 = (v[4] + v[0] - 2 * v[2]) / (4 * eps**2)
      fd_newton = r - 2 * eps * (v[3] - v[1]) / (v[4] + v[0] - 2 * v[2])
      rows.append(
        {
          "rate": r,
          "eps": str(e),
          "f2_exact": d2,
          "f2_rel_err": abs(fd2 - d2) / abs(d2),
          "newton_exact": newton,
          "newton_rel_err": abs(fd_newton - newton) / abs(newton),
          "distinct_probes": int(len(np.unique(v))),
        }
      )
    _, a1, a2 = (float(t) for t in _probes.line_derivatives(f32, p32, g32, jnp.float32(r)))
    rows.append(
      {
        "rate": r,
        "eps": "autodiff",
        "f2_exact": d2,
        "f2_rel_err": abs(a2 - d2) / abs(d2),
        "newton_exact": newton,
        "newton_rel_err": abs((r - a1 / a2) - newton) / abs(newton),
        "distinct_probes": None,
      }
    )
  return rows


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--problems", default=",".join(PROBLEMS))
  ap.add_argument("--configs", default="", help="semicolon-separated subset of CONFIGS")
  ap.add_argument("--out", default="benchmarks/results/newton_defaults")
  ap.add_argument("--no-precision", action="store_true")
  ap.add_argument(
    "--merge",
    action="store_true",
    help="keep the other configs' rows (and the precision table) of the "
    "existing <out>.json; recompute only --configs",
  )
  args = ap.parse_args(argv)
  configs = {k: v for k, v in CONFIGS.items() if not args.configs or k in args.configs.split(";")}

  results = {}
  for pname in args.problems.split(","):
    problem = problems_lib.build(pname, "quick")
    t0 = time.perf_counter()
    sgd = harness.run_method(problem, _sgd(), RATES, seeds=(0,))
    best_sgd = float(np.min(harness.final_train_loss(sgd)))
    results[pname] = {
      "best_sgd": best_sgd,
      "f_star": problem.f_star,
      "init_loss": float(np.asarray(sgd["init"]["train_loss"]).ravel()[0]),
      "sgd_final": [float(v) for v in harness.final_train_loss(sgd)],
      "configs": {},
    }
    for cname, kw in configs.items():
      res = harness.run_method(problem, _method(cname, kw), RATES, seeds=(0,))
      results[pname]["configs"][cname] = _summary(res, problem, best_sgd)
    print(f"{pname}: {time.perf_counter() - t0:.0f}s", flush=True)

  precision = [] if (args.no_precision or args.merge) else precision_table()
  info = {
    "command": io.command_line("benchmarks.studies.newton_defaults", argv),
    "machine": io.machine_info(),
    "dtype": "float32",
    "rates": list(RATES),
    "configs": {k: {kk: vv for kk, vv in v.items()} for k, v in configs.items()},
    "results": results,
    "precision": precision,
  }
  if args.merge:
    info = _merge(args.out + ".json", info)
  io.write_results(
    os.path.basename(args.out), info, report(info), out_dir=os.path.dirname(args.out)
  )
  print(report(info))


def _merge(path, new):
  """``new`` spliced into the results at ``path``: its configs replace theirs.

  The other configs' rows, the precision table and the earlier command are
  kept; ``commands`` lists every command that produced a part, in order.
  """
  with open(path) as f:
    old = json.load(f)
  for pname, r in new["results"].items():
    kept = old["results"].setdefault(pname, r)
    for key in ("best_sgd", "f_star", "init_loss", "sgd_final"):
      kept[key] = r[key]
    order = list(CONFIGS)
    merged = {**kept["configs"], **r["configs"]}
    kept["configs"] = {c: merged[c] for c in sorted(merged, key=order.index)}
  old["configs"] = {
    c: CONFIGS[c] for c in CONFIGS if any(c in r["configs"] for r in old["results"].values())
  }
  old["commands"] = old.get("commands", [old["command"]]) + [new["command"]]
  old["command"] = " && ".join(old["commands"])
  return old


def _fmt(v):
  return "inf" if not np.isfinite(v) else f"{v:.3g}"


def report(info) -> str:
  rates = info["rates"]
  n = len(rates)
  lines = [
    "# newton_lr defaults: derivatives, eps, max_change",
    "",
    f"Command: `{info['command']}` · {io.machine_line(info['machine'])} · "
    f"float32 · initial rates {', '.join(f'{r:g}' for r in rates)} "
    "· one seed · quick-profile problems of `benchmarks/problems.py`.",
    "",
    f"`ok`: initial rates (of {n}) whose final training loss is within 10% of the best "
    "plain SGD of the same rate grid (excess over f* where known); `worst`: the "
    "largest final loss over the initial rates; `peak`: the largest training loss "
    "during the run / the initial loss, worst over the rates; `jump`: the largest "
    "change factor of η between two logged evaluations, worst over the rates.",
    "",
  ]
  names = list(next(iter(info["results"].values()))["configs"])
  probs = list(info["results"])
  lines.append("## Summary: ok / " + str(n) + " per problem (and in total)")
  lines.append("")
  lines.append("| config | " + " | ".join(probs) + " | total |")
  lines.append("|---|" + "---:|" * (len(probs) + 1))
  for c in names:
    oks = [info["results"][p]["configs"][c]["ok"] for p in probs]
    lines.append(f"| {c} | " + " | ".join(str(o) for o in oks) + f" | {sum(oks)} |")
  lines.append("")
  for p in probs:
    r = info["results"][p]
    lines.append(f"## {p}")
    lines.append("")
    lines.append(
      f"initial loss {_fmt(r['init_loss'])}; f* {r['f_star']}; best SGD final "
      f"{_fmt(r['best_sgd'])}; SGD finals per rate: " + ", ".join(_fmt(v) for v in r["sgd_final"])
    )
    lines.append("")
    lines.append("| config | ok | worst | peak | jump | final loss per η₀ | final η per η₀ |")
    lines.append("|---|---:|---:|---:|---:|---|---|")
    for c, s in r["configs"].items():
      lines.append(
        f"| {c} | {s['ok']} | {_fmt(max(s['final']))} | {_fmt(max(s['peak']))} | "
        f"{_fmt(np.nanmax(s['lr_jump']) if np.any(np.isfinite(s['lr_jump'])) else np.nan)} | "
        + ", ".join(_fmt(v) for v in s["final"])
        + " | "
        + ", ".join(_fmt(v) for v in s["final_lr"])
        + " |"
      )
    lines.append("")
  if info["precision"]:
    lines += [
      "## Finite differences in float32: 784-1000-10 MLP, batch 128 (mnist_small)",
      "",
      "Relative errors against the exact float64 f″ and Newton step (nested jvp). "
      "`probes`: distinct float32 values among the five.",
      "",
      "| η | ε | f″ exact | rel. err f″ | rel. err Newton η | probes |",
      "|---:|---|---:|---:|---:|---:|",
    ]
    for row in info["precision"]:
      lines.append(
        f"| {row['rate']:g} | {row['eps']} | {row['f2_exact']:.3g} | "
        f"{row['f2_rel_err']:.2g} | {row['newton_rel_err']:.2g} | "
        f"{row['distinct_probes'] if row['distinct_probes'] is not None else '–'} |"
      )
    lines.append("")
  return "\n".join(lines) + "\n"


if __name__ == "__main__":
  main()
