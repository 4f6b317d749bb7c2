"""Measures the safeguards of hypergradient and probabilistic_lr (issue 10, item 6).

Each method with ``safeguard=False`` (the paper's rule) and ``True`` (the default):

  * optax: optax's contrib contract problems (``optax/contrib/_common_test.py``:
    parabola, Rosenbrock, matrix parabola, mixed tensors), 30 000 steps, float32,
    initial rates 1e-3, 1e-2, 0.1; max |w − w*| (optax asserts ≤ 3e-2 + 3e-2 |w*|);
  * digits: softmax regression on sklearn's digits (1797 × 64), batch 64, 20
    epochs; final full-data loss. hypergradient: SGD-HD and SGDN-HD (Nesterov
    momentum 0.9), β ∈ {1e-3, 1e-2}; probabilistic_lr: SGD and Adam (b1 = 0.5)
    directions, η₀ up to 1.

Writes benchmarks/results/safeguards_optax.{json,md}.
Command: python -m benchmarks.studies.safeguards_optax
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from optax.contrib import _common_test as common

import adaptlr
from benchmarks import io

TARGETS = {
  "parabola": common._setup_parabola,
  "rosenbrock": common._setup_rosenbrock,
  "matrix_parabola": common._setup_matrix_parabola,
  "mixed_tensors": common._setup_mixed_tensor_target,
}
RATES = (1e-3, 1e-2, 0.1)


def optax_problem(opt, target, steps=30_000):
  p0, pf, f = TARGETS[target](jnp.float32)

  @jax.jit
  def run(p):
    def body(c, _):
      p, s = c
      v, g = jax.value_and_grad(f)(p)
      u, s = opt.update(g, s, p, value=v, value_fn=f)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (p, opt.init(p)), length=steps)
    return p

  p = run(p0)
  err = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(pf)))
  return err if np.isfinite(err) else float("inf")


def digits_problem(opt, batch=64, epochs=20, seed=0):
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = jnp.asarray(x / 16.0, jnp.float32)
  y = jax.nn.one_hot(jnp.asarray(y), 10)
  n = x.shape[0]
  per_epoch = n // batch
  rng = np.random.default_rng(seed)
  idx = jnp.asarray(
    np.concatenate([rng.permutation(n)[: per_epoch * batch] for _ in range(epochs)]).reshape(
      -1, batch
    )
  )

  def loss(w, xb, yb):
    return -jnp.mean(jnp.sum(yb * jax.nn.log_softmax(xb @ w["W"] + w["b"]), -1))

  w0 = {"W": jnp.zeros((64, 10)), "b": jnp.zeros(10)}

  @jax.jit
  def run():
    def body(c, ib):
      w, s = c
      xb, yb = x[ib], y[ib]
      v, g = jax.value_and_grad(loss)(w, xb, yb)
      u, s = opt.update(g, s, w, value=v, value_fn=loss, xb=xb, yb=yb)
      return (optax.apply_updates(w, u), s), None

    (w, _), _ = jax.lax.scan(body, (w0, opt.init(w0)), idx)
    return loss(w, x, y)

  return float(run())


def main(argv=None):
  out = {
    "machine": io.machine_info(),
    "command": io.command_line("benchmarks.studies.safeguards_optax", argv or []),
    "optax": {},
    "digits": {},
  }
  hg = {
    "hypergradient": lambda lr, sg: adaptlr.hypergradient(lr, safeguard=sg),
    "probabilistic_lr": lambda lr, sg: adaptlr.probabilistic_lr(lr, safeguard=sg),
  }
  for name, make in hg.items():
    for target in TARGETS:
      for lr in RATES:
        row = {str(sg): optax_problem(make(lr, sg), target) for sg in (False, True)}
        out["optax"][f"{name} {target} lr0={lr}"] = row
        print(name, target, lr, row, flush=True)
  digit_cfgs = {}
  for beta in (1e-3, 1e-2):
    for lr in RATES:
      digit_cfgs[f"hypergradient SGD-HD beta={beta} lr0={lr}"] = lambda sg, b=beta, r=lr: (
        adaptlr.hypergradient(r, hyper_lr=b, safeguard=sg)
      )
  for lr in (1e-3, 1e-2, 0.1, 1.0):
    digit_cfgs[f"probabilistic_lr SGD lr0={lr}"] = lambda sg, r=lr: adaptlr.probabilistic_lr(
      r, safeguard=sg
    )
    digit_cfgs[f"probabilistic_lr Adam(b1=0.5) lr0={lr}"] = lambda sg, r=lr: (
      adaptlr.probabilistic_lr(r, direction=optax.scale_by_adam(b1=0.5), safeguard=sg)
    )
  for key, make in digit_cfgs.items():
    row = {str(sg): digits_problem(make(sg)) for sg in (False, True)}
    out["digits"][key] = row
    print(key, row, flush=True)
  lines = [
    "# Safeguards of hypergradient and probabilistic_lr",
    "",
    f"Command: `{out['command']}`; machine: {io.machine_line(out['machine'])}.",
    "",
    "## optax's contrib problems, 30 000 steps: max |w − w*|",
    "",
    "| method, problem, η₀ | paper's rule | safeguard |",
    "|---|---|---|",
  ]
  lines += [f"| {k} | {v['False']:.2g} | {v['True']:.2g} |" for k, v in out["optax"].items()]
  lines += [
    "",
    "## sklearn digits, softmax regression, batch 64, 20 epochs: final loss",
    "",
    "| method, configuration | paper's rule | safeguard |",
    "|---|---|---|",
  ]
  lines += [f"| {k} | {v['False']:.4f} | {v['True']:.4f} |" for k, v in out["digits"].items()]
  io.write_results("safeguards_optax", out, "\n".join(lines) + "\n")


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
