"""How close each of vSGD's curvature estimates is to the diagonal Hessian, on MNIST M1.

The network of benchmarks/studies/vsgd_mnist.py (784-120-10 tanh, cross-entropy + L2 1e-4),
at its Glorot init and after one epoch of vSGD-l, on one minibatch of 128 real MNIST
images. Reference |diag H|: the mean of 4,000 signed Hutchinson draws z ⊙ Hz (unbiased
for diag H; its standard error is reported). Per estimator, one draw (as vSGD sees it
each step) and, where it is random, the mean of 200 draws (what the moving average h̄
converges to): the median over parameters of |est − ref| / ref (parameters whose
reference exceeds 3 standard errors and 10 λ: the L2 term alone gives λ), the
error weighted by curvature Σ|est − ref| / Σ ref, and the ratio of the sums.

Command: python -m benchmarks.studies.vsgd_curvature
Writes benchmarks/results/vsgd_curvature.{json,md} (or ``--out``).
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptlr
from adaptlr import curvature as _curvature
from benchmarks import io
from benchmarks.studies import vsgd_mnist as V


def _flat(tree):
  return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def measure(params, x, y, key, ref_draws=4000, draws=200):
  def loss(p):
    return V.loss_fn(p, x, y)

  grad = jax.grad(loss)(params)
  keys = jax.random.split(key, ref_draws + 3 * draws)

  def batched(fn, ks, chunk=200):
    f = jax.jit(jax.vmap(fn))
    return np.concatenate([np.asarray(f(ks[i : i + chunk])) for i in range(0, len(ks), chunk)])

  def hutch(absolute):
    return lambda k: _flat_j(_curvature.hutchinson_diagonal(loss, params, k, absolute=absolute))

  signed = batched(hutch(False), keys[:ref_draws])
  ref, se = np.abs(signed.mean(0)), signed.std(0) / np.sqrt(ref_draws)
  # Elements whose curvature is more than the L2 term's λ (border pixels etc. have
  # exactly λ, which every estimator here gets right) and that the reference resolves.
  mask = (ref > 3 * se) & (ref > 10 * V.L2)
  hut = batched(hutch(True), keys[ref_draws : ref_draws + draws])
  gns = batched(
    lambda k: _flat_j(V.gauss_newton_curvature(params, x, k)),
    keys[ref_draws + draws : ref_draws + 2 * draws],
  )

  def fd(d):
    return _flat(_curvature.finite_difference_diagonal(loss, params, grad, d))

  ests = {
    "hutchinson |z⊙Hz|, one draw": hut[0],
    "hutchinson |z⊙Hz|, mean of 200": hut.mean(0),
    "finite difference, δ = ∇ (the finite-difference first step)": fd(grad),
    "finite difference, δ = 0.01 ∇": fd(jax.tree.map(lambda g: 0.01 * g, grad)),
    "bbprop (Gauss-Newton, diagonal back-propagation)": _flat(V.bbprop_curvature(params, x)),
    "sampled Gauss-Newton, one draw": gns[0],
    "sampled Gauss-Newton, mean of 200": gns.mean(0),
  }
  rows = {}
  for name, est in ests.items():
    rel = np.abs(est[mask] - ref[mask]) / ref[mask]
    rows[name] = {
      "median_rel_err": float(np.median(rel)),
      "p90_rel_err": float(np.percentile(rel, 90)),
      "weighted_rel_err": float(np.abs(est[mask] - ref[mask]).sum() / ref[mask].sum()),
      "sum_ratio": float(est[mask].sum() / ref[mask].sum()),
      "frac_below_half": float(np.mean(est[mask] < 0.5 * ref[mask])),
    }
  return rows, {
    "params": int(ref.size),
    "kept": int(mask.sum()),
    "median_ref_rel_se": float(np.median(se[mask] / ref[mask])),
  }


def _flat_j(tree):
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--data", default="mnist", help="benchmarks.data set (default: full MNIST)")
  ap.add_argument("--out", default="benchmarks/results/vsgd_curvature")
  args = ap.parse_args(argv)
  xtr, ytr, _, _, desc = V.load_mnist(args.data)
  sizes = V.MODELS["M1"]
  params0 = V.init_params(jax.random.PRNGKey(0), sizes)
  x, y = xtr[:128], ytr[:128]
  # One epoch of vSGD-l (batch 128) for the "trained" point.
  opt = adaptlr.vsgd()
  state = opt.init(params0)

  @jax.jit
  def step(p, s, xb, yb):
    g = jax.grad(V.loss_fn)(p, xb, yb)
    u, s = opt.update(g, s, p, value_fn=V.loss_fn, x=xb, y=yb)
    return optax.apply_updates(p, u), s

  p = params0
  for i in range(128, xtr.shape[0] - 128, 128):
    p, state = step(p, state, xtr[i : i + 128], ytr[i : i + 128])
  out = {
    "command": io.command_line("benchmarks.studies.vsgd_curvature", argv),
    "machine": io.machine_info(),
    "data": desc,
    "model": "M1 784-120-10 tanh, CE + L2 1e-4, batch of 128",
    "points": {},
  }
  for label, params in (("init", params0), ("after 1 epoch of vSGD-l", p)):
    rows, meta = measure(params, x, y, jax.random.PRNGKey(1))
    out["points"][label] = {"meta": meta, "estimators": rows}
  lines = [
    "# vSGD curvature estimates against |diag H| (MNIST M1)",
    "",
    __doc__.split("\n\n")[1],
    "",
    f"Command: `{out['command']}`. Data: {desc}. Machine: {io.machine_line(out['machine'])}.",
    "",
  ]
  for label, pt in out["points"].items():
    m = pt["meta"]
    lines += [
      f"## {label}",
      "",
      f"{m['kept']} of {m['params']} parameters kept (reference > 3 SE and > 10 λ); "
      f"median relative SE of the reference {m['median_ref_rel_se']:.3f}.",
      "",
      "| estimator | median rel. error | 90th pct | Σ|est − ref| / Σ ref | "
      "Σ est / Σ ref | share < ½ ref |",
      "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in pt["estimators"].items():
      lines.append(
        f"| {name} | {r['median_rel_err']:.3f} | {r['p90_rel_err']:.2f} | "
        f"{r['weighted_rel_err']:.3f} | {r['sum_ratio']:.3f} | "
        f"{r['frac_below_half']:.3f} |"
      )
    lines.append("")
  io.write_results(
    os.path.basename(args.out), out, "\n".join(lines), out_dir=os.path.dirname(args.out)
  )
  print("\n".join(lines))


if __name__ == "__main__":
  main()
