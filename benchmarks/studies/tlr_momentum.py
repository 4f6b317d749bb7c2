"""TLR with momentum: which inner products feed the rate rule (Eq. 7–10, App. D).

With a momentum direction u (``optax.trace``) the weights move by α u per step.
Two readings of Eq. 9 with momentum:

* ``"displacement"`` (the paper, Sec. 4 Eq. 10 and App. D, and the authors'
  NTLR code): G_t = (w_{t−K} − w_t)/α, the window's displacement over the
  rate, i.e. the window sum of u, in both slots: ⟨G_t, G_{t−1}⟩ and ‖G_t‖²;
* ``"gradient"``: the slope of the loss along the last step, ⟨g_t, u_{t−1}⟩,
  and ⟨g_t, u_t⟩ (what adaptlr did before).

Both are run from initial rates 1e-4 … 1 in float64 on the three problems of
``benchmarks/studies/tlr_safeguard.py`` (full-batch least squares, 100 steps;
minibatch least squares, batch 32, 30 epochs, K = 21; digits softmax
regression, batch 64, 20 epochs, K = 9) and a 64-32-10 tanh MLP on digits
(same batches), with momentum 0.8 (the paper's),
0.9 and Nesterov 0.9, the default safeguard on. Reference: the best
fixed-rate SGD with the same momentum over the same rate grid.

Reported: final loss gap per initial rate; ``ok``: how many initial rates end
within 10% of the reference (or below it); the largest ratio between the two
forms' rate trajectories (same α₀, same data).

Command: python -m benchmarks.studies.tlr_momentum
Writes benchmarks/results/tlr_momentum.{json,md,png}.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import adaptlr
from benchmarks import io
from benchmarks.studies.tlr_safeguard import digits, least_squares

RATES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
MOMENTA = {
  "momentum 0.8": dict(momentum=0.8),
  "momentum 0.9": dict(momentum=0.9),
  "nesterov 0.9": dict(momentum=0.9, nesterov=True),
}
FORMS = ("displacement", "gradient")
TOL = 0.10


def train(make_opt, loss, params, x, y, batch, epochs, seed=0):
  """Scanned training from every rate of RATES (vmapped).

  Returns:
    (full-data loss, learning rate) per step, each [rates, steps].
  """
  n = x.shape[0]
  steps_per_epoch = max(n // batch, 1)
  keys = jax.random.split(jax.random.key(seed), epochs)
  idx = jnp.concatenate([jax.random.permutation(k, n)[: steps_per_epoch * batch] for k in keys])
  idx = idx.reshape(epochs * steps_per_epoch, batch)

  def run(rate):
    opt = make_opt(rate)
    state = opt.init(params)

    def step(carry, ib):
      p, s = carry
      g = jax.grad(loss)(p, x[ib], y[ib])
      u, s = opt.update(g, s, p)
      p = optax.apply_updates(p, u)
      return (p, s), (loss(p, x, y), optax.tree.get(s, "learning_rate"))

    _, (losses, lrs) = jax.lax.scan(step, (params, state), idx)
    return losses, lrs

  losses, lrs = jax.jit(jax.vmap(run))(jnp.asarray(RATES))
  return np.asarray(losses), np.asarray(lrs)


def _sgd_rates(rate_fn):
  """A fixed-rate optimizer with a learning_rate leaf, for the same train()."""
  return lambda rate: optax.inject_hyperparams(rate_fn)(learning_rate=rate)


def _finite(v):
  return np.where(np.isfinite(v), v, np.inf)


def problems():
  ls = lambda w, x, y: 0.5 * jnp.mean((x @ w - y) ** 2)
  out = {}
  a, b = least_squares(64)
  out["ls_full"] = dict(
    loss=ls,
    params=jnp.zeros(8),
    x=a,
    y=b,
    batch=64,
    epochs=100,
    k=1,
    offset=float(ls(jnp.linalg.lstsq(a, b)[0], a, b)),
  )
  a, b = least_squares(2048, seed=1)
  out["ls_minibatch"] = dict(
    loss=ls,
    params=jnp.zeros(8),
    x=a,
    y=b,
    batch=32,
    epochs=30,
    k=(2048 // 32) // 3,
    offset=float(ls(jnp.linalg.lstsq(a, b)[0], a, b)),
  )
  x, y = digits()
  xent = lambda w, xb, yb: jnp.mean(optax.softmax_cross_entropy(xb @ w["w"] + w["b"], yb))
  out["digits_softmax"] = dict(
    loss=xent,
    params={"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)},
    x=x,
    y=y,
    batch=64,
    epochs=20,
    k=(1797 // 64) // 3,
    offset=0.0,
  )

  def mlp(w, xb, yb):
    h = jnp.tanh(xb @ w["w1"] + w["b1"])
    return jnp.mean(optax.softmax_cross_entropy(h @ w["w2"] + w["b2"], yb))

  k1, k2 = jax.random.split(jax.random.key(0))
  p0 = {
    "w1": jax.random.normal(k1, (64, 32)) / 8.0,
    "b1": jnp.zeros(32),
    "w2": jax.random.normal(k2, (32, 10)) / jnp.sqrt(32.0),
    "b2": jnp.zeros(10),
  }
  out["digits_mlp"] = dict(
    loss=mlp, params=p0, x=x, y=y, batch=64, epochs=20, k=(1797 // 64) // 3, offset=0.0
  )
  return out


def main():
  jax.config.update("jax_enable_x64", True)  # the whole study runs in float64
  payload = {"rates": RATES, "tolerance": TOL, "dtype": "float64", "problems": {}}
  curves = {}
  for pname, pb in problems().items():
    common = (pb["loss"], pb["params"], pb["x"], pb["y"], pb["batch"], pb["epochs"])
    init_gap = float(pb["loss"](pb["params"], pb["x"], pb["y"])) - pb["offset"]
    res = {
      "accumulation_steps": pb["k"],
      "batch": pb["batch"],
      "epochs": pb["epochs"],
      "loss_offset": pb["offset"],
      "initial_gap": init_gap,
      "configs": {},
    }
    k = pb["k"]
    plain, _ = train(lambda r, k=k: adaptlr.tlr(r, accumulation_steps=k), *common)
    res["tlr_no_momentum_final"] = [float(v) for v in _finite(plain[:, -1] - pb["offset"])]
    for mname, mkw in MOMENTA.items():
      sgd, _ = train(
        _sgd_rates(lambda learning_rate, mkw=mkw: optax.sgd(learning_rate, **mkw)), *common
      )
      sgd_final = _finite(sgd[:, -1] - pb["offset"])
      ref = float(np.min(sgd_final))
      block = {
        "sgd_final": [float(v) for v in sgd_final],
        "reference_final": ref,
        "sgd_diverged": [r for r, v in zip(RATES, sgd_final) if v > init_gap],
      }
      lrs = {}
      for form in FORMS:
        losses, lr = train(
          lambda r, k=k, form=form, mkw=mkw: adaptlr.tlr(
            r, accumulation_steps=k, inner_products=form, **mkw
          ),
          *common,
        )
        gap = losses - pb["offset"]
        final = _finite(gap[:, -1])
        block[form] = {
          "final": [float(v) for v in final],
          "peak": [float(v) for v in np.max(_finite(gap), axis=1)],
          "final_lr": [float(v) for v in lr[:, -1]],
          "ok": int(np.sum(final <= (1 + TOL) * ref)),
          # diverged: ends above the initial loss gap
          "diverged": [r for r, v in zip(RATES, final) if v > init_gap],
        }
        lrs[form] = lr
        curves[(pname, mname, form)] = (gap, lr)
      with np.errstate(all="ignore"):
        ratio = np.abs(np.log(lrs["displacement"] / lrs["gradient"]))
      block["max_rate_ratio"] = [
        float(np.exp(np.nanmax(np.where(np.isfinite(r), r, np.nan))))
        if np.any(np.isfinite(r))
        else None
        for r in ratio
      ]
      res["configs"][mname] = block
    payload["problems"][pname] = res
  payload["command"] = io.command_line("benchmarks.studies.tlr_momentum")
  payload["machine"] = io.machine_info()
  io.write_results("tlr_momentum", payload, report(payload), figure=figure(curves))
  print(report(payload))


def _fmt(v):
  return "inf" if v is None or not np.isfinite(v) else f"{v:.3g}"


def report(payload) -> str:
  rates = payload["rates"]
  lines = [
    "# TLR with momentum: displacement vs gradient inner products",
    "",
    f"Command: `{payload.get('command', 'python -m benchmarks.studies.tlr_momentum')}` · "
    f"{io.machine_line(payload.get('machine', ''))} · float64 · initial rates "
    + ", ".join(f"{r:g}" for r in rates)
    + " · one seed.",
    "",
    "`displacement`: G = (w_{t−K} − w_t)/α (the window sum of the momentum "
    "direction) in both slots of Eq. 9, the paper's Sec. 4 / App. D and NTLR; "
    "`gradient`: ⟨g_t, u_{t−1}⟩ and ⟨g_t, u_t⟩. `ok`: initial rates whose final "
    f"loss gap is within {int(TOL * 100)}% of the best fixed-rate SGD with the same "
    "momentum over the grid (or below); `diverged`: the initial rates whose run "
    "ends above the initial loss gap (in brackets: of those, where fixed-rate SGD "
    "with the same momentum did not diverge). `rate ×`: the largest ratio "
    "between the two forms' rates along the run, worst over α₀.",
    "",
    "## Summary: ok / 5, diverged / 5",
    "",
    "| problem | momentum | ok displacement | ok gradient | diverged displacement "
    "| diverged gradient | rate × |",
    "|---|---|---:|---:|---:|---:|---:|",
  ]
  tot = {f: [0, 0, 0] for f in FORMS}
  for pname, res in payload["problems"].items():
    for mname, b in res["configs"].items():
      r = [v for v in b["max_rate_ratio"] if v is not None]
      cells = []
      for f in FORMS:
        div = b[f]["diverged"]
        alone = [x for x in div if x not in b["sgd_diverged"]]
        tot[f][0] += b[f]["ok"]
        tot[f][1] += len(div)
        tot[f][2] += len(alone)
        cells.append(f"{len(div)} ({len(alone)})")
      lines.append(
        f"| {pname} | {mname} | {b['displacement']['ok']} | {b['gradient']['ok']} | "
        + " | ".join(cells)
        + f" | {_fmt(max(r)) if r else '–'} |"
      )
  d, g = tot["displacement"], tot["gradient"]
  lines += [f"| total | | {d[0]} | {g[0]} | {d[1]} ({d[2]}) | {g[1]} ({g[2]}) | |", ""]
  for pname, res in payload["problems"].items():
    lines += [
      f"## {pname}",
      "",
      f"K = {res['accumulation_steps']}, batch {res['batch']}, {res['epochs']} "
      f"epochs; initial loss gap {_fmt(res['initial_gap'])}; tlr without momentum, "
      "final gaps: " + ", ".join(_fmt(v) for v in res["tlr_no_momentum_final"]),
      "",
      "| momentum | form | ok | final gap per α₀ | final α per α₀ |",
      "|---|---|---:|---|---|",
    ]
    for mname, b in res["configs"].items():
      lines.append(
        f"| {mname} | fixed-rate SGD | – | " + ", ".join(_fmt(v) for v in b["sgd_final"]) + " | – |"
      )
      for f in FORMS:
        lines.append(
          f"| {mname} | {f} | {b[f]['ok']} | "
          + ", ".join(_fmt(v) for v in b[f]["final"])
          + " | "
          + ", ".join(_fmt(v) for v in b[f]["final_lr"])
          + " |"
        )
    lines.append("")
  lines += ["![rates and loss gaps at α₀ = 0.01, momentum 0.8](tlr_momentum.png)", ""]
  return "\n".join(lines)


def figure(curves):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  probs = list(dict.fromkeys(p for p, _, _ in curves))
  j0 = RATES.index(1e-2)
  fig, axes = plt.subplots(2, len(probs), figsize=(4.2 * len(probs), 6), sharex="col")
  for j, pname in enumerate(probs):
    for form, ls in (("displacement", "-"), ("gradient", "--")):
      gap, lr = curves[(pname, "momentum 0.8", form)]
      axes[0, j].semilogy(
        np.where(np.isfinite(lr[j0]) & (lr[j0] > 0), lr[j0], np.nan), ls, label=form
      )
      axes[1, j].semilogy(
        np.where(np.isfinite(gap[j0]) & (gap[j0] > 0), gap[j0], np.nan), ls, label=form
      )
    axes[0, j].set_title(f"{pname}, momentum 0.8, α₀ = 0.01", fontsize=9)
    axes[1, j].set_xlabel("step")
  axes[0, 0].set_ylabel("learning rate α")
  axes[1, 0].set_ylabel("loss gap")
  axes[0, 0].legend(fontsize=8)
  fig.tight_layout()
  return fig


if __name__ == "__main__":
  main()
