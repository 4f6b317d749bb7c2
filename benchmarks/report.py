"""Writes a results dict as ``results.json``, ``report.md`` and PNG plots."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np


def _f(x, digits=4):
  if x is None:
    return "—"
  if isinstance(x, float) and not math.isfinite(x):
    return "—"
  if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
    return str(x)
  ax = abs(x)
  if ax != 0 and (ax < 1e-3 or ax >= 1e5):
    return f"{x:.{digits - 1}e}"
  return f"{x:.{digits}g}"


def _rate(r):
  return "—" if r is None else f"{r:.0e}"


def _tf_cell(tf):
  if tf is None:
    return ""
  if not tf["swept"]:
    return "✓ (1 run)" if tf["reached"] else "✗ (1 run)"
  return f"{tf['reached']}/{tf['of']}"


def _method_order(out):
  return list(out["methods"])


def _regret_cell(rg):
  if rg is None:
    return ""
  inf = lambda v: "∞" if v is None else _f(v, 3)
  med, worst = rg.get("median"), rg.get("worst")
  if med == worst:
    return inf(med)
  return f"{inf(med)} / {inf(worst)}"


def _regret_md(out, probs, methods) -> str:
  """The regret table and the settling check (only for results that have them)."""
  probs = [p for p in probs if out["problems"][p].get("regret")]
  if not probs:
    return ""
  lines = []
  add = lines.append
  add("## Regret\n")
  add(
    "Final training loss ÷ best-tuned (the lowest seed-mean final training loss of "
    "every swept baseline on that problem; excess over f* where f* > 0), over the "
    "initial rates 1e-5 … 1: **median / worst** (one number: a rate-free method's single "
    "run; ∞: a rate diverged). Tuning-free means both a high count above *and* a median "
    "regret near 1.\n"
  )
  add("| method | " + " | ".join(probs) + " |")
  add("|---|" + "---|" * len(probs))
  for name in methods:
    cells = [_regret_cell(out["problems"][p]["regret"].get(name)) for p in probs]
    if any(cells):
      add(f"| `{name}` | " + " | ".join(cells) + " |")
  bt = [out["problems"][p].get("best_tuned") or {} for p in probs]
  add(
    "| *best-tuned* | "
    + " | ".join(
      f"`{b.get('method')}` {_rate(b.get('rate'))}: {_f(b.get('final_train_loss'))}" if b else "—"
      for b in bt
    )
    + " |"
  )
  add("")
  add(_held_out_md(out, probs, methods))
  settle = [
    (p, kind, out["problems"][p].get(key))
    for p in probs
    for kind, key in (("best-tuned", "settling"), ("best fixed-rate", "settling_constant"))
  ]
  settle = [(p, k, s) for p, k, s in settle if s]
  if settle:
    add(
      "Settling: how much a baseline's training loss (excess over f* where known) "
      "still fell over the last fifth of the budget, for the best-tuned baseline and "
      "for the best fixed-rate one (SGD, SGD-momentum, Adam). The network budgets are "
      "sized so that the best-tuned baseline sheds < 10%; the "
      "fixed-rate reading is stricter where the best-tuned run anneals (a schedule that "
      "decays to 0 drops its loss at the end by design, however long the budget).\n"
    )
    add("| problem | baseline | loss at step | loss at the end | improvement | < 10% |")
    add("|---|---|---|---|---|---|")
    seen = set()
    for p, kind, s in settle:
      key = (p, s["method"], s["rate"])
      if key in seen:
        continue
      seen.add(key)
      add(
        f"| `{p}` | {kind}: `{s['method']}` {_rate(s['rate'])} | {_f(s['loss_from'])} "
        f"(step {s['step_from']}) | {_f(s['loss_to'])} (step {s['step_to']}) | "
        f"{_f(100 * s['improvement'], 3) if s['improvement'] is not None else '—'}% | "
        f"{'✓' if s['settled'] else '✗'} |"
      )
    add("")
  return "\n".join(lines) + "\n"


# the README's names for the methods of the networks table, in its order
README_NAMES = {
  "sgd": "`optax.sgd`",
  "sgd_momentum": "`optax.sgd` momentum 0.9",
  "adam": "`optax.adam`",
  "adamw_cosine": "`optax.adamw` + warmup-cosine",
  "schedule_free_adamw": "`contrib.schedule_free_adamw`",
  "prodigy": "`contrib.prodigy`",
  "dadapt_adamw": "`contrib.dadapt_adamw`",
  "dog": "`contrib.dog`",
  "mechanize": "`contrib.mechanize` (Adam)",
  "momo_adam": "`contrib.momo_adam`",
  "tlr": "`adaptlr.tlr`",
  "tlr_cold_start": "`… tlr`, `max_bound=1` (cold start)",
  "hypergradient": "`adaptlr.hypergradient`",
  "hypergradient_momentum": "`… hypergradient`, `momentum=0.9`",
  "newton_lr": "`adaptlr.newton_lr`",
  "probabilistic_lr": "`adaptlr.probabilistic_lr`",
  "probabilistic_lr_adam": "`… probabilistic_lr` on Adam",
  "probabilistic_lr_cosine": "`… probabilistic_lr`, `decay_steps`",
  "probabilistic_lr_adam_cosine": "`… probabilistic_lr` on Adam, `decay_steps`",
  "vsgd": "`adaptlr.vsgd`",
  "vsgd_every_step": "`… vsgd`, `curvature_every=1`",  # in results made before it was the default
  "vsgd_every_10": "`… vsgd`, `curvature_every=10`",
}


def summary_table(out) -> str:
  """The README's results table: per method and problem, tuning freedom and
  median / worst regret (``results.json`` of a profile in, Markdown out)."""
  probs = list(out["problems"])
  lines = [
    "| method | " + " | ".join(f"`{p}`" for p in probs) + " |",
    "|---|" + "---|" * len(probs),
  ]
  for name, label in README_NAMES.items():
    cells = []
    for p in probs:
      pr = out["problems"][p]
      tf, rg = pr["tuning_freedom"].get(name), pr.get("regret", {}).get(name)
      if tf is None:
        cells.append("")
        continue
      cell = _tf_cell(tf).replace(" (1 run)", "")
      cells.append(f"{cell} · {_regret_cell(rg)}" if rg else cell)
    if any(cells):
      lines.append(f"| {label} | " + " | ".join(cells) + " |")
  bts = [out["problems"][p].get("best_tuned") for p in probs]
  lines.append(
    "| *best-tuned* | "
    + " | ".join(
      f"`{b['method']}` {_rate(b['rate'])}: {_f(b['final_train_loss'], 3)}" if b else ""
      for b in bts
    )
    + " |"
  )
  return "\n".join(lines) + "\n"


# The README's "Which optimizer should I use?": the recommended configuration for
# networks against the rate-free anchors and the swept ones issue 12 names.
RECOMMENDED_NETWORKS = "probabilistic_lr_adam_cosine"
RECOMMENDATION_ANCHORS = ("prodigy", "dadapt_adamw", "schedule_free_adamw", "adamw_cosine")


def recommendation_table(out, method=RECOMMENDED_NETWORKS, anchors=RECOMMENDATION_ANCHORS) -> str:
  """Point by point: regret (final training loss ÷ best-tuned) and test accuracy of
  ``method`` from every initial rate (median, worst) against each anchor, a swept one
  at its best rate and as the median over the rates."""
  probs = list(out["problems"])
  lines = [
    "| | " + " | ".join(f"`{p}`" for p in probs) + " |",
    "|---|" + "---|" * len(probs),
  ]

  def acc(pr, name, pick):
    vals = pr["methods"][name]["per_rate"].get("final_test_acc") or []
    vals = [v for v in vals if v is not None]
    return _f(pick(vals), 3) if vals else "—"

  def row(label, name, swept):
    cells = []
    for p in probs:
      pr = out["problems"][p]
      rg = pr.get("regret", {}).get(name)
      if rg is None:
        cells.append("")
      elif not swept:
        cells.append(f"{_regret_cell(rg)} (acc {acc(pr, name, np.median)})")
      else:
        i = int(np.argmin([np.inf if v is None else v for v in rg["per_rate"]]))
        best_acc = pr["methods"][name]["per_rate"]["final_test_acc"][i]
        cells.append(
          f"best rate {_f(rg['best'], 3)} (acc {_f(best_acc, 3)}) · median {_f(rg['median'], 3)}"
        )
    return f"| {label} | " + " | ".join(cells) + " |"

  first = out["problems"][probs[0]]
  tf = [out["problems"][p]["tuning_freedom"].get(method) for p in probs]
  lines.append(
    "| **recommended**: initial rates of 1e-5 … 1 within 10% of best-tuned | "
    + " | ".join(_tf_cell(t) if t else "" for t in tf)
    + " |"
  )
  lines.append(row("… its regret, median / worst over them (median test acc)", method, False))
  for name in anchors:
    swept = bool(first["methods"].get(name, {}).get("swept", False))
    lines.append(row(README_NAMES.get(name, name), name, swept))
  return "\n".join(lines) + "\n"


# The library's defaults, and the recommended configuration: each must learn on every
# network from every initial rate (see defaults_learn).
DEFAULT_CONFIGS = (
  "tlr",
  "hypergradient",
  "newton_lr",
  "probabilistic_lr",
  "probabilistic_lr_adam",
  RECOMMENDED_NETWORKS,
  "vsgd",
)
LEARNS = 0.8  # a run learns: final training loss ≤ 0.8 × the loss at initialization, every seed


def defaults_learn(out, methods=DEFAULT_CONFIGS) -> dict:
  """Per (method, problem): the initial rates whose runs do not learn on every seed.

  A run learns when its final training loss is finite and at most ``LEARNS`` times its
  training loss at initialization, on every seed. Returns ``{method: {problem:
  {"runs": n, "failed": [(rate, [ratio per seed]), ...]}}}`` over the methods that ran.
  """
  res = {}
  for name in methods:
    for p, pr in out["problems"].items():
      rec = pr["methods"].get(name)
      if rec is None or "initial_per_seed" not in rec:
        continue
      final = np.asarray(rec["final_per_seed"]["train_loss"], object)
      start = np.asarray(rec["initial_per_seed"]["train_loss"], object)
      as_float = lambda a: np.asarray([np.nan if v is None else v for v in a.ravel()], float)
      ratio = (as_float(final) / as_float(start)).reshape(final.shape)  # [seeds, rates]
      failed = [
        (rate, [float(f"{q:.3g}") for q in ratio[:, j]])
        for j, rate in enumerate(rec["rates"])
        if not np.all(np.isfinite(ratio[:, j]) & (ratio[:, j] <= LEARNS))
      ]
      res.setdefault(name, {})[p] = {"runs": len(rec["rates"]), "failed": failed}
  return res


def _defaults_learn_md(out) -> str:
  table = defaults_learn(out)
  if not table:
    return ""
  probs = list(out["problems"])
  total = sum(c["runs"] for m in table.values() for c in m.values())
  bad = sum(len(c["failed"]) for m in table.values() for c in m.values())
  lines = [
    "## Do the defaults learn?\n",
    f"Each library default (and the recommended configuration, `{RECOMMENDED_NETWORKS}`) "
    "from each initial rate: the runs whose final training loss is finite and at most "
    f"{LEARNS}× the loss at initialization on every seed, of all its runs; below, the "
    f"initial rates of the others with that ratio per seed. **{total - bad} of {total} "
    "learn.**\n",
    "| default | " + " | ".join(probs) + " |",
    "|---|" + "---|" * len(probs),
  ]
  notes = []
  for name, per in table.items():
    cells = []
    for p in probs:
      c = per.get(p)
      cells.append("" if c is None else f"{c['runs'] - len(c['failed'])}/{c['runs']}")
      for rate, ratios in (c or {"failed": []})["failed"]:
        shown = ", ".join("∞" if not np.isfinite(q) else f"{q:.3g}" for q in ratios)
        start = "rate-free" if rate is None else f"from {_rate(rate)}"
        notes.append(f"- `{name}` on `{p}` ({start}): {shown}")
    lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
  return "\n".join(lines + [""] + notes) + "\n"


def _held_out_md(out, probs, methods) -> str:
  """Test (validation) loss and accuracy at the best rate and the median over rates."""
  probs = [p for p in probs if out["problems"][p]["spec"]["has_accuracy"]]
  if not probs:
    return ""
  lines = [
    "Held-out quality (test set; `brown_lm`: validation files): **accuracy** at the rate "
    "with the best final training loss / median over the initial rates, then the same "
    "for the **test loss** (seed means; a rate-free method's one run):\n",
    "| method | "
    + " | ".join(f"{p} acc" for p in probs)
    + " | "
    + " | ".join(f"{p} loss" for p in probs)
    + " |",
    "|---|" + "---|" * (2 * len(probs)),
  ]

  def cell(rec, key, digits):
    if rec is None or key not in rec["per_rate"]:
      return ""
    vals = [np.nan if v is None else v for v in rec["per_rate"][key]]
    finals = [np.inf if v is None else v for v in rec["per_rate"]["final_train_loss"]]
    best = vals[int(np.argmin(finals))]
    med = float(np.median(vals)) if not np.isnan(vals).any() else None
    b = _f(None if np.isnan(best) else float(best), digits)
    return b if len(vals) == 1 else f"{b} / {_f(med, digits)}"

  for name in methods:
    recs = [out["problems"][p]["methods"].get(name) for p in probs]
    if not any(recs):
      continue
    cells = [cell(r, "final_test_acc", 3) for r in recs]
    cells += [cell(r, "final_test_loss", 3) for r in recs]
    lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


# --------------------------------------------------------------- markdown --
def markdown(out) -> str:
  probs = list(out["problems"])
  methods = _method_order(out)
  lines = []
  add = lines.append
  add(f"# adaptlr benchmarks — profile `{out['profile']}`\n")
  add(f"Command: `{' '.join(out['command'])}`  ")
  m = out["machine"]
  add(
    f"Machine: {m['platform']}, {m['cpu_count']} CPUs visible "
    f"({m.get('affinity_cpus')} usable), JAX {m['versions']['jax']} on "
    f"{m['jax_backend']}; optax {m['versions']['optax']}, flax {m['versions']['flax']}, "
    f"adaptlr {m['versions']['adaptlr']}.  "
  )
  add(
    f"Started {out['started']}, wall time {out['wall_s'] / 60:.1f} min "
    f"(load average at start: {m.get('loadavg_at_start')}).\n"
  )
  if out.get("skipped_problems"):
    for name, why in out["skipped_problems"].items():
      add(f"- skipped `{name}`: {why}")
    add("")

  add("## Tuning freedom\n")
  ran = {n for p in out["problems"].values() for n in p["methods"]}
  classic = [n for n in ("sgd", "sgd_momentum", "sgd_multistep", "adam") if n in ran]
  add(
    f"How many of the initial rates (1e-5 … 1, one per decade) reach a final training "
    f"loss within {out['tolerance']:.0%} of the best-tuned baseline — the best of "
    + ", ".join(f"`{n}`" for n in classic)
    + " over the whole grid (excess over the known minimum f* where there is one; seed "
    "mean)"
    + (
      " — on the networks also AdamW + warmup-cosine and schedule-free AdamW"
      if any(n in out["methods"] for n in ("adamw_cosine", "schedule_free_adamw"))
      else ""
    )
    + ". Rate-free methods run once: ✓ or ✗.\n"
  )
  add("| method | " + " | ".join(probs) + " |")
  add("|---|" + "---|" * len(probs))
  for name in methods:
    cells = [_tf_cell(out["problems"][p]["tuning_freedom"].get(name)) for p in probs]
    if any(cells):
      add(f"| `{name}` | " + " | ".join(cells) + " |")
  add("| *threshold* | " + " | ".join(_f(out["problems"][p]["threshold"]) for p in probs) + " |")
  add("")
  add("![tuning freedom](tuning_freedom.png)\n")
  raw = [p for p in probs if (out["problems"][p]["spec"]["f_star"] or 0) > 0]
  if raw:
    add(
      "The same count with the 10% taken on the loss itself instead of the excess loss "
      "(the literal reading; it differs only where f* > 0, and is lax there: the "
      "irreducible part of the loss counts towards the 10%):\n"
    )
    add("| method | " + " | ".join(raw) + " |")
    add("|---|" + "---|" * len(raw))
    for name in methods:
      cells = [_tf_cell(out["problems"][p]["tuning_freedom_raw"].get(name)) for p in raw]
      if any(cells):
        add(f"| `{name}` | " + " | ".join(cells) + " |")
    add(
      "| *threshold* | " + " | ".join(_f(out["problems"][p]["threshold_raw"]) for p in raw) + " |\n"
    )

  add(_regret_md(out, probs, methods))
  add(_defaults_learn_md(out))
  add("## Per problem\n")
  add(
    "Columns: rates reaching the threshold; best final training loss (at rate); the "
    "lowest training loss seen during that run; median final training loss over the "
    "rates; test loss / accuracy of that run (where the problem has them); steps to the "
    "threshold at that rate; time per step relative to `optax.sgd` (per run, same vmap "
    "width, measured in the same process; tiny problems are overhead-bound). Seed means; "
    "diverged runs count as ∞.\n"
  )
  for pname, p in out["problems"].items():
    spec = p["spec"]
    add(f"### `{pname}` — {spec['title']}\n")
    add(
      f"Source: {spec['source']}. Data: {spec['dataset']}. {spec['steps']} steps"
      + (f", batch {spec['batch_size']}" if spec["batch_size"] else "")
      + f", seeds {spec['seeds']}. {spec['notes']}\n"
    )
    acc = spec["has_accuracy"]
    has_rg = bool(p.get("regret"))
    any_m = next(iter(p["methods"].values()))
    tl = "final_test_loss" in any_m["per_rate"]
    head = (
      "| method | reached | best final loss (rate) | lowest seen | median final | "
      + ("test loss | " if tl else "")
      + ("test acc | " if acc else "")
      + "steps to target | time vs sgd |"
      + (" median / worst regret |" if has_rg else "")
    )
    add(head)
    add("|---" * (head.count("|") - 1) + "|")
    for name in methods:
      r = p["methods"].get(name)
      if r is None:
        continue
      pr = r["per_rate"]
      finals = [np.inf if v is None else v for v in pr["final_train_loss"]]
      i = int(np.argmin(finals))
      best = None if not math.isfinite(finals[i]) else finals[i]
      med = float(np.median(finals))
      rate = r["rates"][i]
      stt = pr["steps_to_target"][i]
      row = (
        f"| `{name}` | {_tf_cell(p['tuning_freedom'][name])} | {_f(best)} ({_rate(rate)}) "
        f"| {_f(pr['best_train_loss'][i])} | {_f(med if math.isfinite(med) else None)} | "
      )
      if tl:
        row += f"{_f(pr['final_test_loss'][i])} | "
      if acc:
        row += f"{_f(pr['final_test_acc'][i])} | "
      row += f"{_f(stt)} | {_f(r['time_vs_sgd'], 3)}{'†' if r.get('reused') else ''} |"
      if has_rg:
        row += f" {_regret_cell(p['regret'].get(name))} |"
      add(row)
    add("")
    if any(r.get("reused") for r in p["methods"].values()):
      add("† run loaded from an earlier run's `raw/` (`--reuse`); timed in that process.\n")
    add(f"![{pname} loss](loss_{pname}.png)")
    add(f"![{pname} learning rate](lr_{pname}.png)\n")

  add("## Reproductions\n")
  add(_reproductions_md(out["reproductions"]))
  return "\n".join(lines) + "\n"


def _reproductions_md(rep) -> str:
  lines = []
  add = lines.append
  d = rep.get("deepobs_quadratic_deep", {})
  add("### DeepOBS `quadratic_deep` (final test loss)\n")
  if d.get("status") == "ok":
    add(
      "| optimizer | published | ours, decade grid (rate) | gap | ours, 36-rate grid (rate) | gap |"
    )
    add("|---|---|---|---|---|---|")
    for name in ("sgd", "adam"):
      dg, fg = d["decade_grid"].get(name, {}), d["fine_grid"].get(name, {})
      add(
        f"| {name} | {d['published_final_test_loss'][name]} | {_f(dg.get('test_loss'))} "
        f"({_rate(dg.get('rate'))}) | {_f(dg.get('gap'), 3)} | {_f(fg.get('test_loss'))} "
        f"({_f(fg.get('rate'), 3)}) | {_f(fg.get('gap'), 3)} |"
      )
    add(f"\nTrain-set minimum f* = {_f(d.get('f_star_train'))}.\n")
  else:
    add(f"{d.get('status')}: `{d.get('how')}`\n")

  b = rep.get("baydin_mnist_logreg", {})
  add("### Baydin et al., hypergradient on MNIST logistic regression\n")
  if b.get("status") == "ok":
    add(f"Metric: {b['metric']}. Data: {b['dataset']}.\n")
    add("| method | published | ours | gap | final rate | test acc |")
    add("|---|---|---|---|---|---|")
    for name, v in b["ours"].items():
      add(
        f"| {name} | {b['published'][name]} | {_f(v['loss'])} | {_f(v['gap'], 3)} | "
        f"{_f(v['final_lr'], 3)} | {_f(v['test_acc'])} |"
      )
    if b.get("note"):
      add(f"\n{b['note']}")
    add("")
  else:
    add(f"{b.get('status')}: `{b.get('how')}`\n")

  t = rep.get("tlr_fig1", {})
  add("### TLR Fig. 1: robustness across initial rates and batch sizes (MNIST MLP)\n")
  if t.get("status") == "ok":
    add(
      f"Data: {t['dataset']}, {t['epochs']} epochs; α₀ ∈ {t['rates']}, batch ∈ "
      f"{t['batch_sizes']}; one seed.\n"
    )
    add("| method | final train loss min … max | spread (max/min) | test acc min … max |")
    add("|---|---|---|---|")
    for name in ("tlr", "sgd"):
      s = t["summary"][name]
      add(
        f"| {name} | {_f(s['final_train_loss_min'])} … {_f(s['final_train_loss_max'])} | "
        f"{_f(s['final_train_loss_spread'], 3)} | {_f(s['test_acc_min'])} … "
        f"{_f(s['test_acc_max'])} |"
      )
    add(
      "\nTLR's rate by batch size (mean over α₀): "
      + "; ".join(
        f"bs {bs}: peak {_f(v['peak_lr_mean_over_rates'], 3)}, final "
        f"{_f(v['final_lr_mean_over_rates'], 3)}"
        for bs, v in t["summary"]["tlr_lr_by_batch_size"].items()
      )
      + ".\n"
    )
    add("![TLR Fig. 1](tlr_fig1.png)\n")
  else:
    add(f"{t.get('status')}: `{t.get('how')}`\n")

  v = rep.get("vsgd_nonstationary", {})
  add("### vSGD Fig. 2: non-stationary quadratic\n")
  if v.get("status") == "ok":
    add(f"Metric: {v['metric']}.\n")
    add("| method | time-averaged loss | rate | final loss |")
    add("|---|---|---|---|")
    for name, x in sorted(
      v["mean_loss"].items(),
      key=lambda kv: kv[1]["mean_loss"] if kv[1]["mean_loss"] is not None else np.inf,
    ):
      add(f"| {name} | {_f(x['mean_loss'])} | {_rate(x['rate'])} | {_f(x['final_loss'])} |")
    if "vsgd_rate_after_jumps" in v:
      add(
        "\nvSGD's rate around each jump: "
        + "; ".join(
          f"step {j['step']}: {_f(j['lr_before'], 3)} → {_f(j['max_lr_within_100_steps_after'], 3)}"
          for j in v["vsgd_rate_after_jumps"]
        )
        + f". Rises after every jump (×1.5 or more): {v['vsgd_rate_rises_after_every_jump']}."
      )
    add("")
  else:
    add(f"{v.get('status')}\n")

  r = rep.get("deroos_robustness", {})
  add("### de Roos et al.: robustness across initial rates 1e-5 … 1\n")
  if r.get("status") == "ok":
    add(
      f"{r['metric']}. Cells: adapted / fixed base, per initial rate; "
      "'reached' = tuning-freedom count; 'better at' = rates where the adapted run "
      "ends lower than its fixed-rate base.\n"
    )
    add(
      "| problem | method | reached (base) | better at | "
      + " | ".join(f"{x:.0e}" for x in (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0))
      + " |"
    )
    add("|---|---|---|---|" + "---|" * 6)
    for pname, row in r["problems"].items():
      for name, x in row.items():
        cells = {
          round(math.log10(rt)): f"{_f(a, 3)} / {_f(c, 3)}"
          for rt, a, c in zip(x["rates"], x["final"], x["base_final"])
        }
        add(
          f"| `{pname}` | `{name}` | {x['reached']}/{x['of']} ({x['base_reached']}/{x['of']}) "
          f"| {x['improves_at']}/{x['of']} | "
          + " | ".join(cells.get(k, "") for k in range(-5, 1))
          + " |"
        )
    add("")
  else:
    add(f"{r.get('status')}: `{r.get('how')}`\n")
  return "\n".join(lines)


# ------------------------------------------------------------------ plots --
def _grid(n):
  cols = min(5, n)
  rows = -(-n // cols)
  return rows, cols


def _curve_plot(p, key, path, title, ylog=True, excess=False):
  """One panel per method, one line per initial rate; diverged runs are drawn
  at the top edge (non-finite values and values above 10× the start clipped)."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  names = [
    n
    for n, r in p["methods"].items()
    if key in r["curves"]
    and (key != "lr" or any(x is not None for row in r["curves"][key] for x in row))
  ]
  if not names:
    return False
  f_star = p["spec"]["f_star"] if excess else None
  shift = f_star or 0.0

  def series(r, j):
    y = np.asarray([np.nan if v is None else v for v in r["curves"][key][j]], float)
    return y - shift

  top = bottom = None
  if key == "train_loss":
    starts = [
      r["initial"]["train_loss"][j]
      for r in p["methods"].values()
      for j in range(len(r["rates"]))
      if r["initial"]["train_loss"][j] is not None
    ]
    top = 10.0 * (max(starts) - shift) if starts else None
    finite = np.concatenate(
      [series(r, j) for n, r in p["methods"].items() for j in range(len(r["rates"]))]
    )
    finite = finite[np.isfinite(finite) & (finite > 0)]
    bottom = 0.5 * finite.min() if finite.size else None
  rows, cols = _grid(len(names))
  fig, axes = plt.subplots(
    rows, cols, figsize=(3.2 * cols, 2.5 * rows), squeeze=False, sharex=True, sharey=(key != "lr")
  )
  cmap = plt.get_cmap("viridis")
  steps = np.asarray(p["steps"], float)
  for ax, name in zip(axes.flat, names):
    r = p["methods"][name]
    n = len(r["rates"])
    for j, rate in enumerate(r["rates"]):
      y = series(r, j)
      if top is not None:
        y = np.where(np.isfinite(y), np.minimum(y, top), top)
      color = "k" if rate is None else cmap(j / max(n - 1, 1))
      label = "rate-free" if rate is None else f"{rate:.0e}"
      ax.plot(steps, y, color=color, lw=1.2, label=label)
    if key == "train_loss" and p.get("threshold") is not None:
      ax.axhline(p["threshold"] - shift, color="r", ls="--", lw=0.8)
    ax.set_title(name, fontsize=9)
    if ylog:
      ax.set_yscale("log")
    if top is not None and bottom is not None and bottom < top:
      ax.set_ylim(bottom, top * 1.5)
    ax.tick_params(labelsize=7)
  for ax in list(axes.flat)[len(names) :]:
    ax.axis("off")
  handles, labels = axes.flat[0].get_legend_handles_labels()
  for name in names:
    if p["methods"][name]["swept"]:
      handles, labels = axes.flat[names.index(name)].get_legend_handles_labels()
      break
  fig.legend(handles, labels, loc="lower right", fontsize=7, title="initial rate", title_fontsize=7)
  note = " (red: tuning-freedom threshold; top edge: diverged)" if key == "train_loss" else ""
  fig.suptitle(title + note, fontsize=10)
  fig.tight_layout(rect=(0, 0, 1, 0.97))
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return True


def _heatmap(out, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  probs = list(out["problems"])
  methods = [
    m for m in _method_order(out) if any(m in out["problems"][p]["tuning_freedom"] for p in probs)
  ]
  frac = np.full((len(methods), len(probs)), np.nan)
  text = [["" for _ in probs] for _ in methods]
  for i, m in enumerate(methods):
    for j, p in enumerate(probs):
      tf = out["problems"][p]["tuning_freedom"].get(m)
      if tf:
        frac[i, j] = tf["reached"] / tf["of"]
        text[i][j] = _tf_cell(tf).replace(" (1 run)", "")
  fig, ax = plt.subplots(figsize=(1.2 * len(probs) + 2.5, 0.32 * len(methods) + 1.5))
  im = ax.imshow(frac, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
  ax.set_xticks(range(len(probs)), probs, rotation=30, ha="right", fontsize=8)
  ax.set_yticks(range(len(methods)), methods, fontsize=8)
  for i in range(len(methods)):
    for j in range(len(probs)):
      ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7)
  fig.colorbar(im, ax=ax, label="fraction of initial rates reaching the threshold")
  ax.set_title(
    f"Tuning freedom ({out['profile']}): within {out['tolerance']:.0%} of best-tuned SGD/Adam",
    fontsize=9,
  )
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _tlr_plot(t, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), squeeze=False)
  cmap = plt.get_cmap("plasma")
  styles = {1e-3: ":", 1e-2: "--", 1e-1: "-"}
  for row, name in enumerate(("tlr", "sgd")):
    for bi, bs in enumerate(t["batch_sizes"]):
      run = t["runs"][f"{name}/bs{bs}"]
      steps = np.asarray(run["steps"], float) * bs / 1.0  # examples seen
      for ri, rate in enumerate(t["rates"]):
        kw = dict(
          color=cmap(bi / len(t["batch_sizes"])),
          ls=styles.get(rate, "-"),
          lw=1.1,
          label=f"{bs}, {rate:g}",
        )
        for col, key in enumerate(("train_loss", "lr", "test_acc")):
          y = np.asarray([np.nan if v is None else v for v in run[key][ri]], float)
          axes[row, col].plot(steps, y, **kw)
    for col, key in enumerate(("training loss", "learning rate", "test accuracy")):
      ax = axes[row, col]
      ax.set_title(f"{name}: {key}", fontsize=9)
      ax.set_xlabel("examples seen", fontsize=8)
      if col < 2:
        ax.set_yscale("log")
  axes[0, 2].legend(fontsize=6, title="batch, α₀", title_fontsize=6, ncol=2)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def write_all(out: dict, out_dir, plots: bool = True) -> None:
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  with open(out_dir / "results.json", "w") as f:
    json.dump(out, f, indent=None, separators=(",", ":"), allow_nan=False)
  (out_dir / "report.md").write_text(markdown(out))
  if not plots:
    return
  for pname, p in out["problems"].items():
    excess = p["spec"]["f_star"] is not None and p["spec"]["f_star"] > 0
    _curve_plot(
      p,
      "train_loss",
      out_dir / f"loss_{pname}.png",
      f"{pname}: training loss" + (" − f*" if excess else "") + " per method and initial rate",
      excess=excess,
    )
    _curve_plot(p, "lr", out_dir / f"lr_{pname}.png", f"{pname}: learning rate per method")
  _heatmap(out, out_dir / "tuning_freedom.png")
  t = out["reproductions"].get("tlr_fig1", {})
  if t.get("status") == "ok":
    _tlr_plot(t, out_dir / "tlr_fig1.png")
