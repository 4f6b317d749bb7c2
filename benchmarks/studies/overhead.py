"""Per-step cost of each optimizer relative to optax.sgd, measured interleaved.

The step is a whole jitted training step on a 784-512-10 MLP (ReLU, softmax
cross-entropy) at batch 128, float32: ``value_and_grad`` + the optimizer's
update (with ``value``, ``grad``, ``value_fn`` and the batch as extra args) +
``optax.apply_updates``. Methods run in rounds, in a fresh random order each
round; each round times ``--steps`` consecutive steps per method and divides by
``optax.sgd``'s time in the same round, so slow drifts of the machine cancel.
The reported ratio is the median over rounds (with the interquartile range).

Floors for the probe methods (same step, same machine, measured here too):
``forward`` is one extra forward pass, ``5 forwards`` five, and ``jvp2`` the
nested forward-mode pass that gives f, f′, f″ along a line.

Command: python -m benchmarks.studies.overhead [--rounds 15] [--steps 20] [--methods a,b]
Writes benchmarks/results/overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import os
import random
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptlr import probes as _probes
from adaptlr.registry import METHODS
from benchmarks import io


def mlp_init(key, sizes=(784, 512, 10)):
  params = {}
  for i, (m, n) in enumerate(itertools.pairwise(sizes)):
    key, sub = jax.random.split(key)
    params[f"dense{i}"] = {
      "kernel": jax.random.normal(sub, (m, n)) * jnp.sqrt(2.0 / m),
      "bias": jnp.zeros(n),
    }
  return params


def mlp_logits(params, x, y=None):
  h = x
  layers = sorted(params)
  for i, name in enumerate(layers):
    h = h @ params[name]["kernel"] + params[name]["bias"]
    if i < len(layers) - 1:
      h = jax.nn.relu(h)
  return h


def mlp_loss(params, x, y):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(mlp_logits(params, x), y))


def _with_logits_fn(opt):
  """Passes the MLP's logits as the ``logits_fn`` extra arg (vsgd(curvature="gauss_newton"))."""

  def update(updates, state, params=None, **extra):
    return opt.update(updates, state, params, logits_fn=mlp_logits, **extra)

  return optax.GradientTransformationExtraArgs(opt.init, update)


def _with_free_curvature(opt):
  """Passes |g| as the ``curvature`` extra arg: a stand-in that costs nothing."""

  def update(updates, state, params=None, **extra):
    return opt.update(updates, state, params, curvature=updates, **extra)

  return optax.GradientTransformationExtraArgs(opt.init, update)


@dataclasses.dataclass(frozen=True)
class Row:
  """One timed configuration of a method of ``adaptlr.registry.METHODS``.

  Attributes:
    label: the row's name in the table.
    method: the registry key of the method.
    kwargs: arguments of its optimizer (the rest keep the library's defaults).
    wrap: optional ``opt -> opt`` applied to the built optimizer.
  """

  label: str
  method: str
  kwargs: dict = dataclasses.field(default_factory=dict)
  wrap: Callable[[Any], optax.GradientTransformation] | None = None


# Every registered method gets a row at its defaults, labelled by its name; this
# table adds variants (and may replace a default row by declaring its label).
ROWS = (
  Row("tlr(leaf)", "tlr", {"granularity": "leaf"}),
  Row("tlr(accumulation_steps=10)", "tlr", {"accumulation_steps": 10}),
  Row("hypergradient(lookahead)", "hypergradient", {"lookahead": True}),
  Row("newton_lr(finite_difference)", "newton_lr", {"derivatives": "finite_difference"}),
  Row("newton_lr(autodiff)", "newton_lr", {"derivatives": "autodiff"}),
  Row("newton_lr(line=this_batch)", "newton_lr", {"line": "this_batch"}),
  Row(
    "newton_lr(finite_difference, probe_mode=map)",
    "newton_lr",
    {"derivatives": "finite_difference", "probe_mode": "map"},
  ),
  Row(
    "newton_lr(finite_difference, probe_mode=unroll)",
    "newton_lr",
    {"derivatives": "finite_difference", "probe_mode": "unroll"},
  ),
  Row("probabilistic_lr", "probabilistic_lr", {"learning_rate": 0.01}),
  # vSGD's curvature estimators: "hutchinson" (the default, sampled every step; every
  # 10th step was the default before, benchmarks/results/vsgd_cost.md), the sampled
  # Gauss-Newton diagonal, finite differences, and a caller-supplied diagonal ("given";
  # its cost is the caller's: measured here with a free stand-in, so the row is vSGD's
  # own bookkeeping).
  Row("vsgd(curvature_every=10)", "vsgd", {"curvature_every": 10}),
  Row("vsgd(gauss_newton)", "vsgd", {"curvature": "gauss_newton"}, wrap=_with_logits_fn),
  Row(
    "vsgd(gauss_newton; curvature_every=10)",
    "vsgd",
    {"curvature": "gauss_newton", "curvature_every": 10},
    wrap=_with_logits_fn,
  ),
  Row("vsgd(finite_difference)", "vsgd", {"curvature": "finite_difference"}),
  Row("vsgd(given; curvature free)", "vsgd", {"curvature": "given"}, wrap=_with_free_curvature),
)


def _factory(row: Row) -> Callable[[], optax.GradientTransformation]:
  def make():
    opt = METHODS[row.method].optimizer(**row.kwargs)
    return row.wrap(opt) if row.wrap is not None else opt

  return make


def registry() -> dict[str, Callable[[], optax.GradientTransformation]]:
  """Row label -> optimizer factory: two optax references, then adaptlr's methods.

  Raises:
    ValueError: a row of ``ROWS`` names a method that ``adaptlr.registry.METHODS``
      does not have (renamed or removed).
  """
  unknown = sorted({r.method for r in ROWS} - set(METHODS))
  if unknown:
    raise ValueError(
      f"overhead.ROWS names adaptlr methods {unknown} that "
      f"adaptlr.registry.METHODS does not have (it has {list(METHODS)})."
    )
  r = {
    "optax.sgd": lambda: optax.sgd(0.01),
    "optax.adam": lambda: optax.adam(1e-3),
  }
  for method in METHODS:
    declared = [row for row in ROWS if row.method == method]
    rows = [Row(method, method)] if method not in {row.label for row in declared} else []
    for row in rows + declared:
      r[row.label] = _factory(row)
  return r


def floors(params, x, y):
  """Reference computations that are not optimizers: cost floors for probes."""

  def forward(p, s, x, y):
    loss, g = jax.value_and_grad(mlp_loss)(p, x, y)
    extra = mlp_loss(jax.tree.map(lambda a, b: a - 1e-3 * b, p, g), x, y)
    return optax.apply_updates(p, jax.tree.map(lambda b: -1e-3 * b * extra, g)), s, loss

  def five_forwards(p, s, x, y):
    loss, g = jax.value_and_grad(mlp_loss)(p, x, y)
    tot = sum(
      mlp_loss(jax.tree.map(lambda a, b, c=1e-3 + 1e-4 * k: a - c * b, p, g), x, y)
      for k in range(-2, 3)
    )
    return optax.apply_updates(p, jax.tree.map(lambda b: -1e-3 * b * tot, g)), s, loss

  def jvp2(p, s, x, y):
    loss, g = jax.value_and_grad(mlp_loss)(p, x, y)
    _, d1, d2 = _probes.line_derivatives(lambda q: mlp_loss(q, x, y), p, g, 1e-3)
    return optax.apply_updates(p, jax.tree.map(lambda b: -1e-3 * b * (d1 + d2), g)), s, loss

  return {
    "floor: +1 forward": forward,
    "floor: +5 forwards": five_forwards,
    "floor: +jvp2 (f, f', f'')": jvp2,
  }


def make_step(opt, loss=mlp_loss):
  """The step every study measures: value_and_grad, update with the extra args, apply_updates."""

  def step(params, state, x, y):
    value, grad = jax.value_and_grad(loss)(params, x, y)
    updates, state = opt.update(
      grad, state, params, value=value, grad=grad, value_fn=loss, x=x, y=y
    )
    return optax.apply_updates(params, updates), state, value

  return step


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--rounds", type=int, default=15)
  ap.add_argument("--steps", type=int, default=20)
  ap.add_argument("--batch", type=int, default=128)
  ap.add_argument("--methods", default="", help="comma-separated subset (default: all)")
  ap.add_argument("--out", default="benchmarks/results/overhead")
  args = ap.parse_args(argv)

  key = jax.random.key(0)
  params = mlp_init(key)
  x = jax.random.normal(jax.random.key(1), (args.batch, 784))
  y = jax.random.randint(jax.random.key(2), (args.batch,), 0, 10)

  makers = registry()
  wanted = [m for m in args.methods.split(",") if m]
  unknown = [m for m in wanted if m not in makers]
  if unknown:
    ap.error(f"unknown --methods {unknown}; known: {list(makers)}")
  steps = {}
  for name, make in makers.items():
    if wanted and name not in wanted and name != "optax.sgd":
      continue
    opt = make()
    steps[name] = (jax.jit(make_step(opt)), opt.init(params))
  if not args.methods:
    for name, fn in floors(params, x, y).items():
      steps[name] = (jax.jit(fn), ())

  # Compile and warm up.
  state_of = {}
  for name, (fn, st) in steps.items():
    p, s, _ = fn(params, st, x, y)
    p, s, _ = fn(p, s, x, y)
    jax.block_until_ready(p)
    state_of[name] = (p, s)

  times = {name: [] for name in steps}
  order = list(steps)
  for _ in range(args.rounds):
    random.shuffle(order)
    for name in order:
      fn = steps[name][0]
      p, s = state_of[name]
      jax.block_until_ready(p)
      t0 = time.perf_counter()
      for _ in range(args.steps):
        p, s, v = fn(p, s, x, y)
      jax.block_until_ready((p, s, v))
      times[name].append((time.perf_counter() - t0) / args.steps)
      state_of[name] = (p, s)

  sgd = np.array(times["optax.sgd"])
  rows = {}
  for name, ts in times.items():
    ratios = np.array(ts) / sgd
    rows[name] = {
      "ms_per_step": float(np.median(ts) * 1e3),
      "ratio_vs_sgd": float(np.median(ratios)),
      "ratio_iqr": [float(np.percentile(ratios, 25)), float(np.percentile(ratios, 75))],
    }
  adam = rows["optax.adam"]["ratio_vs_sgd"] if "optax.adam" in rows else float("nan")
  for r in rows.values():
    r["ratio_vs_adam"] = r["ratio_vs_sgd"] / adam

  info = {
    "command": io.command_line("benchmarks.studies.overhead", argv),
    "machine": io.machine_info(),
    "rounds": args.rounds,
    "steps_per_round": args.steps,
    "batch": args.batch,
    "model": "MLP 784-512-10, float32",
    "results": rows,
  }
  lines = [
    "# Per-step cost relative to optax.sgd",
    "",
    f"Jitted training step (value_and_grad + update + apply_updates), {info['model']}, "
    f"batch {args.batch}; {args.rounds} interleaved rounds × {args.steps} steps; "
    f"median of per-round ratios (IQR). Machine: {io.machine_line(info['machine'])}.",
    "",
    f"Command: `{info['command']}`",
    "",
    "| method | ms / step | × optax.sgd (IQR) | × optax.adam |",
    "|---|---:|---:|---:|",
  ]
  for name, r in sorted(rows.items(), key=lambda kv: kv[1]["ratio_vs_sgd"]):
    lo, hi = r["ratio_iqr"]
    lines.append(
      f"| {name} | {r['ms_per_step']:.2f} | {r['ratio_vs_sgd']:.2f} "
      f"({lo:.2f}–{hi:.2f}) | {r['ratio_vs_adam']:.2f} |"
    )
  io.write_results(
    os.path.basename(args.out), info, "\n".join(lines), out_dir=os.path.dirname(args.out)
  )
  print("\n".join(lines))


if __name__ == "__main__":
  main()
