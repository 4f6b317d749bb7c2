"""Measures TLR's paper rule (safeguard=False) against the safeguarded default.

Three problems, initial rates 1e-4 … 1, float64:
  * ls_full: full-batch least squares, 8 parameters, Hessian condition number 100
    (the issue's failure case), 100 steps; reference: GD with step 1/L.
  * ls_minibatch: the same kind of problem with 2048 samples, batch 32, 30
    epochs, accumulation_steps = steps_per_epoch / 3 (Sec. 4, Eq. 10); reference:
    the best fixed-rate SGD of the same grid.
  * digits_softmax: softmax regression on sklearn's digits (1797 × 64),
    batch 64, 20 epochs, accumulation k = steps_per_epoch / 3; reference: best
    fixed-rate SGD.

Writes benchmarks/results/tlr_safeguard.{json,md,png} (or ``--out``).
Command: python -m benchmarks.studies.tlr_safeguard
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptlr
from benchmarks import io

RATES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def least_squares(n, d=8, cond=100.0, seed=0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, d)))
  v, _ = np.linalg.qr(rng.normal(size=(d, d)))
  a = (q * np.sqrt(np.geomspace(1, cond, d) * n)) @ v.T
  b = a @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
  return jnp.asarray(a), jnp.asarray(b)


def digits():
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x = jnp.asarray(x / 16.0)
  return x, jax.nn.one_hot(jnp.asarray(y), 10)


def train(make_opt, loss, params, x, y, batch, epochs, seed=0):
  """Scanned minibatch (or full-batch) training; returns full-data losses per step."""
  n = x.shape[0]
  steps_per_epoch = max(n // batch, 1)
  perm = jax.random.permutation
  keys = jax.random.split(jax.random.key(seed), epochs)
  idx = jnp.concatenate([perm(k, n)[: steps_per_epoch * batch] for k in keys])
  idx = idx.reshape(epochs * steps_per_epoch, batch)

  def run(hp):
    opt = make_opt(hp)
    state = opt.init(params)

    def step(carry, ib):
      p, s = carry
      g = jax.grad(loss)(p, x[ib], y[ib])
      u, s = opt.update(g, s, p)
      p = optax.apply_updates(p, u)
      return (p, s), loss(p, x, y)

    _, losses = jax.lax.scan(step, (params, state), idx)
    return losses

  return jax.jit(jax.vmap(run))(jnp.asarray(RATES))


def summarize(losses, offset):
  gap = np.asarray(losses) - offset
  return {
    "peak": [float(np.nanmax(np.where(np.isfinite(r), r, np.inf))) for r in gap],
    "final": [float(r[-1]) for r in gap],
    # every step for short runs, ≤ ~300 points for long ones
    "curve": [[float(v) for v in r[:: max(1, len(r) // 300)]] for r in gap],
    "curve_stride": max(1, gap.shape[1] // 300),
  }


def plot(out):
  """The loss-gap curves per problem (columns) and rule (rows), as a Figure."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  probs = list(out["problems"])
  fig, axes = plt.subplots(2, len(probs), figsize=(4.2 * len(probs), 6), sharex="col")
  for j, pname in enumerate(probs):
    res = out["problems"][pname]
    for i, rule in enumerate(("paper", "safeguard")):
      ax = axes[i, j]
      for lr, curve in zip(out["rates"], res[rule]["curve"], strict=True):
        c = np.asarray(curve, float)
        ax.semilogy(
          np.arange(len(c)) * res[rule]["curve_stride"],
          np.where(np.isfinite(c) & (c > 0), c, np.nan),
          label=f"α₀={lr:g}",
        )
      ax.axhline(res["reference_final"], color="k", ls="--", lw=1, label="reference")
      ax.set_ylim(1e-9, 1e12)
      ax.set_title(f"{pname}: {rule}", fontsize=9)
      if j == 0:
        ax.set_ylabel("loss gap" if rule == "paper" else "loss gap (safeguard)")
    axes[1, j].set_xlabel("step")
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  return fig


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", default="benchmarks/results/tlr_safeguard")
  args = ap.parse_args(argv)
  jax.config.update("jax_enable_x64", True)  # the whole study runs in float64
  out = {
    "rates": RATES,
    "problems": {},
    "machine": io.machine_info(),
    "command": io.command_line("benchmarks.studies.tlr_safeguard", argv),
  }

  def tlr_opt(safeguard, k):
    return lambda lr: adaptlr.tlr(lr, safeguard=safeguard, accumulation_steps=k)

  # Full-batch least squares.
  a, b = least_squares(64)

  def ls(w, x, y):
    return 0.5 * jnp.mean((x @ w - y) ** 2)

  fopt = float(ls(jnp.linalg.lstsq(a, b)[0], a, b))
  lmax = float(jnp.linalg.eigvalsh(a.T @ a / a.shape[0]).max())
  w0 = jnp.zeros(8)
  res = {"steps": 100, "reference": "GD step 1/L", "loss_offset": fopt}
  gd = train(lambda lr: optax.sgd(1.0 / lmax), ls, w0, a, b, 64, 100)
  res["reference_final"] = float(gd[0, -1] - fopt)
  res["initial_gap"] = float(ls(w0, a, b) - fopt)
  for name, sg in [("paper", False), ("safeguard", True)]:
    res[name] = summarize(train(tlr_opt(sg, 1), ls, w0, a, b, 64, 100), fopt)
  out["problems"]["ls_full"] = res

  # Minibatch least squares with accumulation.
  a, b = least_squares(2048, seed=1)
  fopt = float(ls(jnp.linalg.lstsq(a, b)[0], a, b))
  k = (2048 // 32) // 3
  res = {
    "epochs": 30,
    "batch": 32,
    "accumulation_steps": k,
    "loss_offset": fopt,
    "reference": "best fixed-rate SGD of the grid",
  }
  sgd = np.asarray(train(lambda lr: optax.sgd(lr), ls, w0, a, b, 32, 30)) - fopt
  finals = np.where(np.isfinite(sgd[:, -1]), sgd[:, -1], np.inf)
  res["sgd_final"] = [float(v) for v in finals]
  res["reference_final"] = float(finals.min())
  for name, sg in [("paper", False), ("safeguard", True)]:
    res[name] = summarize(train(tlr_opt(sg, k), ls, w0, a, b, 32, 30), fopt)
  res["note"] = (
    "fixed-rate SGD diverges at 0.1 and 1 too; with accumulation the first "
    "two windows (2k steps) run at α₀ before the first rate update"
  )
  out["problems"]["ls_minibatch"] = res

  # Digits softmax regression with accumulation.
  x, y = digits()

  def xent(w, xb, yb):
    return jnp.mean(optax.softmax_cross_entropy(xb @ w["w"] + w["b"], yb))

  p0 = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
  k = (1797 // 64) // 3
  res = {
    "epochs": 20,
    "batch": 64,
    "accumulation_steps": k,
    "loss_offset": 0.0,
    "reference": "best fixed-rate SGD of the grid",
  }
  sgd = np.asarray(train(lambda lr: optax.sgd(lr), xent, p0, x, y, 64, 20))
  finals = np.where(np.isfinite(sgd[:, -1]), sgd[:, -1], np.inf)
  res["sgd_final"] = [float(v) for v in finals]
  res["reference_final"] = float(finals.min())
  for name, sg in [("paper", False), ("safeguard", True)]:
    res[name] = summarize(train(tlr_opt(sg, k), xent, p0, x, y, 64, 20), 0.0)
  out["problems"]["digits_softmax"] = res

  lines = [
    "# TLR: paper rule vs safeguarded default",
    "",
    f"Command: `{out['command']}` · machine: {io.machine_line(out['machine'])} · float64",
    "",
    "Loss gaps to the optimum (least squares) or losses (digits); initial rates "
    + ", ".join(f"{r:g}" for r in RATES)
    + ".",
    "",
  ]
  for pname, res in out["problems"].items():
    lines += [
      f"## {pname}",
      "",
      f"reference ({res['reference']}): final {res['reference_final']:.3g}",
      "",
      "| rule | " + " | ".join(f"α₀={r:g} peak / final" for r in RATES) + " |",
      "|---|" + "---|" * len(RATES),
    ]
    for name in ("paper", "safeguard"):
      cells = [
        f"{p:.3g} / {f:.3g}" for p, f in zip(res[name]["peak"], res[name]["final"], strict=True)
      ]
      lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
  stem = os.path.basename(args.out)
  lines += [f"![loss curves]({stem}.png)", ""]
  io.write_results(stem, out, "\n".join(lines), figure=plot(out), out_dir=os.path.dirname(args.out))
  print("\n".join(lines))


if __name__ == "__main__":
  main()
