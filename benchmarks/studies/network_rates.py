"""Where adaptlr's learned rates go on the networks, against the best fixed rate.

Issue 12 lists causes to confirm or refute by measurement: a greedy per-batch
line search picks a rate *smaller* than the rate that trains fastest over many
steps (short-horizon bias); TLR's bounded growth is too slow for a cold start.
This study reads the `networks` profile's results (no training of its own) and,
per network problem and adaptlr method, compares the rate each run learned with
the best fixed rate of the direction it scales:

* the *effective* rate, the step per unit of direction after momentum,
  η / (1 − β) (SGD-momentum 0.9: 10 η; ``probabilistic_lr``'s momentum 0.5: 2 η),
  so that rates of SGD with and without momentum compare;
* the reference: the best final training loss of fixed-rate ``sgd`` and
  ``sgd_momentum`` (for the methods on an SGD direction) or ``adam`` (for
  ``probabilistic_lr_adam``) over the grid 1e-5 … 1 — known to a decade only;
* per method: the learned effective rate averaged over the last half of the run
  and at the end (median over the initial rates of the seed-mean curve), its
  ratio to the reference, and the spread of the end rates over the initial
  rates (max ÷ min: near 1 when the method forgets where it started).

``vsgd`` learns one rate per weight; its mean is shown, not compared.

Command: python -m benchmarks.studies.network_rates [--results DIR]
Writes benchmarks/results/network_rates.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np

from benchmarks import io

# the direction each method scales, and its momentum (effective rate η / (1 − β))
METHODS = {
  "tlr": ("sgd", 0.0),
  "hypergradient": ("sgd", 0.0),
  "newton_lr": ("sgd", 0.0),
  "probabilistic_lr": ("sgd", 0.5),
  "probabilistic_lr_adam": ("adam", 0.0),
  "vsgd": (None, 0.0),
}
# the fixed-rate references of each direction, with their momentum
REFERENCES = {"sgd": (("sgd", 0.0), ("sgd_momentum", 0.9)), "adam": (("adam", 0.0),)}


def _reference(methods: dict, base: str) -> dict | None:
  best = None
  for name, beta in REFERENCES[base]:
    rec = methods.get(name)
    if rec is None:
      continue
    finals = np.asarray(
      [np.inf if v is None else v for v in rec["per_rate"]["final_train_loss"]], float
    )
    i = int(np.argmin(finals))
    if np.isfinite(finals[i]) and (best is None or finals[i] < best["loss"]):
      best = {
        "method": name,
        "rate": rec["rates"][i],
        "effective": rec["rates"][i] / (1.0 - beta),
        "loss": float(finals[i]),
      }
  return best


def analyse(results: dict) -> dict:
  out = {}
  for prob, pr in results["problems"].items():
    rows = {}
    for name, (base, beta) in METHODS.items():
      rec = pr["methods"].get(name)
      if rec is None:
        continue
      lr = np.asarray(
        [[np.nan if v is None else v for v in row] for row in rec["curves"]["lr"]], float
      )  # [rates, rounds], seed mean
      eff = lr / (1.0 - beta)
      half = eff[:, eff.shape[1] // 2 :]
      end = eff[:, -1]
      ref = _reference(pr["methods"], base) if base else None
      finite_end = end[np.isfinite(end) & (end > 0)]
      row = {
        "initial_rates": rec["rates"],
        "effective_end": end.tolist(),
        "effective_last_half": np.nanmean(half, axis=1).tolist(),
        "median_end": float(np.nanmedian(end)) if np.isfinite(end).any() else None,
        "median_last_half": float(np.nanmedian(np.nanmean(half, axis=1)))
        if np.isfinite(half).any()
        else None,
        "spread_end": float(finite_end.max() / finite_end.min()) if len(finite_end) else None,
        "reference": ref,
      }
      if ref is not None and row["median_last_half"] is not None:
        row["ratio_last_half"] = row["median_last_half"] / ref["effective"]
        row["ratio_end"] = row["median_end"] / ref["effective"]
      rows[name] = row
    out[prob] = {
      "rows": rows,
      "steps": pr["steps"],
      "curves": {n: pr["methods"][n]["curves"]["lr"] for n in rows},
    }
  return out


def _f(x, d=3):
  return "—" if x is None else f"{x:.{d}g}"


def markdown(analysis: dict, source: str, command: str) -> str:
  lines = [
    "# Where adaptlr's learned rates go on the networks\n",
    f"Command: `{command}`  ",
    f"Source: `{source}` (the `networks` profile; this study trains nothing).\n",
    "Effective rate = η / (1 − β) (the step per unit of direction after momentum). "
    "Reference: the best fixed-rate run of the same direction over the grid 1e-5 … 1 "
    "(SGD or SGD-momentum 0.9 for the SGD-direction methods, Adam for "
    "`probabilistic_lr_adam`), known to a decade. *last half*: the learned effective "
    "rate averaged over the second half of the run, median over the six initial "
    "rates (seed-mean curves); *spread*: max ÷ min of the end rates over the initial "
    "rates (1: the run forgets where it started). `vsgd`: the mean of its per-weight "
    "rates, not compared.\n",
  ]
  for prob, a in analysis.items():
    lines.append(f"## `{prob}`\n")
    lines.append(
      "| method | reference (effective) | learned, last half | ratio "
      "| learned, end | ratio | spread |"
    )
    lines.append("|---|---|---|---|---|---|---|")
    for name, r in a["rows"].items():
      ref = r["reference"]
      refs = f"`{ref['method']}` {ref['rate']:g} ({_f(ref['effective'])})" if ref else "—"
      lines.append(
        f"| `{name}` | {refs} | {_f(r['median_last_half'])} | {_f(r.get('ratio_last_half'))} "
        f"| {_f(r['median_end'])} | {_f(r.get('ratio_end'))} | {_f(r['spread_end'])} |"
      )
    lines.append("")
  return "\n".join(lines)


def figure(analysis: dict):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  probs = list(analysis)
  names = list(METHODS)
  fig, axes = plt.subplots(
    len(probs), len(names), figsize=(3.0 * len(names), 2.4 * len(probs)), squeeze=False
  )
  for i, prob in enumerate(probs):
    a = analysis[prob]
    steps = np.asarray(a["steps"])
    for j, name in enumerate(names):
      ax = axes[i][j]
      if name not in a["rows"]:
        ax.axis("off")
        continue
      r = a["rows"][name]
      beta = METHODS[name][1]
      for k, row in enumerate(a["curves"][name]):
        y = np.asarray([np.nan if v is None else v for v in row], float) / (1.0 - beta)
        ax.plot(steps, y, lw=1, label=str(r["initial_rates"][k]))
      if r["reference"]:
        ax.axhline(r["reference"]["effective"], color="k", ls="--", lw=1)
      ax.set_yscale("log")
      ax.set_title(f"{prob}: {name}", fontsize=8)
      ax.tick_params(labelsize=7)
  axes[0][0].legend(fontsize=6, title="η₀", title_fontsize=6)
  fig.suptitle("learned effective rate per initial rate (dashed: best fixed rate)", fontsize=9)
  fig.tight_layout()
  return fig


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--results", default="benchmarks/results/networks")
  ap.add_argument("--out", default=io.RESULTS_DIR)
  args = ap.parse_args(argv)
  path = pathlib.Path(args.results) / "results.json"
  results = json.loads(path.read_text())
  analysis = analyse(results)
  command = io.command_line("benchmarks.studies.network_rates", argv)
  payload = {
    "source": str(path),
    "source_command": results.get("command"),
    "machine": results.get("machine"),
    "problems": {p: {"rows": a["rows"]} for p, a in analysis.items()},
    "command": command,
  }
  io.write_results(
    "network_rates",
    payload,
    markdown(analysis, str(path), command),
    figure=figure(analysis),
    out_dir=args.out,
  )


if __name__ == "__main__":
  main()
