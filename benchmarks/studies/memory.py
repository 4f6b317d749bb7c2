"""Memory per method: optimizer state and peak step memory, in parameter copies.

For every row of :func:`benchmarks.studies.overhead.registry` (each method of
``adaptlr.registry.METHODS`` at its defaults, its probe modes and curvature
options, and ``optax.sgd`` / ``optax.adam`` as anchors) and the cost floors of
the probe methods, on two models:

* ``mlp``: the 784-512-10 MLP of ``benchmarks.studies.overhead``, batch 128;
* ``transformer``: the causal transformer of ``benchmarks.models.transformer``
  (13.2M parameters), batch 8 × 64 tokens;

it reports, in units of one parameter copy P (the bytes of the params pytree):

* **state**: the bytes of ``opt.init(params)`` (every leaf of the NamedTuple
  state, scalars included) / P. Exact, not estimated.
* **peak**: the peak memory of one jitted training step (``value_and_grad`` +
  ``update`` with the extra args + ``apply_updates``) from XLA's buffer
  assignment of the compiled step, ``jax.jit(step, donate_argnums=(0, 1))
  .lower(...).compile().memory_analysis()``: ``argument + output + temp −
  alias`` bytes / P. Arguments (params, state, batch) and outputs are live for
  the whole step; ``temp`` is XLA's one scratch allocation, already packed by
  liveness (buffers whose live ranges do not overlap share bytes), so it is the
  step's transient high-water mark; params and state are donated as a training
  loop does, so their outputs reuse the inputs' buffers (``alias``). The batch
  is included (0.25 P for the MLP, 0.0001 P for the transformer).
* **temp**: ``temp`` / P alone: what the step needs beyond its inputs and
  outputs (the gradient, activations, probe points, the update before it is
  added). ``optax.sgd``'s gradient is fused into its update, so its temp is
  activations only; any method that reads the gradient twice (an inner
  product, then the update) holds it: one P.

``memory_analysis().peak_memory_in_bytes`` is not used: on XLA:CPU (jax 0.10)
it equalled argument + output, leaving temp out (seen on the MLP's newton_lr
rows, whose temp is 1.4–5.8 P).

The check of issue 13: ``probe_mode="map"`` keeps a probe method at no more than
one extra parameter copy. The floor ``floor: SGD holding g`` is a plain SGD step
whose update reads the whole gradient twice (w − η g/‖g‖), so g is live in full
as in every method that takes an inner product with it (``optax.sgd`` fuses each
leaf's gradient into its update and need not hold all of it at once); the probe
method's peak must be within one parameter copy P of that floor's, the one probe
point, up to 1% of P for the loop's scalars and the activations of its forward
(nothing parameter-sized). The floor ``floor: +1 forward`` (the gradient held + one loss evaluation
at w − ηg) holds exactly one probe point; a probe mode holds
``(temp(row) − temp(floor: +1 forward))`` P more than that floor. The result is
in the Markdown report (``tests/test_memory.py`` asserts the bound on a small
MLP).

Command: python -m benchmarks.studies.memory [--models mlp,transformer]
Writes benchmarks/results/memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import jax
import numpy as np
import optax

from adaptlr import probes
from benchmarks import io
from benchmarks.models import transformer as transformer_lib
from benchmarks.studies import overhead

MAP_ROW = "newton_lr(finite_difference, probe_mode=map)"
PROBE_ROWS = (
  "newton_lr(finite_difference)",
  MAP_ROW,
  "newton_lr(finite_difference, probe_mode=unroll)",
)
FLOOR_ONE = "floor: +1 forward"
FLOOR_GRAD = "floor: SGD holding g"


def tree_bytes(tree: Any) -> int:
  """Bytes of every array leaf of ``tree``."""
  return sum(int(np.prod(np.shape(a))) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


# LLVM's optimization level only: the HLO, its buffer assignment and so the
# memory analysis are the same as at the default level (checked on the MLP
# rows), and compiling takes half the time.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def step_memory(step, params, state, *batch) -> dict:
  """XLA's memory analysis of ``jax.jit(step)`` with params and state donated.

  Compiled with :data:`FAST_COMPILE`.

  Returns:
    ``argument``, ``output``, ``temp``, ``alias`` (bytes) and ``peak`` =
    argument + output + temp − alias.
  """
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, *batch).compile(FAST_COMPILE)
  m = compiled.memory_analysis()
  out = {
    "argument": int(m.argument_size_in_bytes),
    "output": int(m.output_size_in_bytes),
    "temp": int(m.temp_size_in_bytes),
    "alias": int(m.alias_size_in_bytes),
  }
  out["peak"] = out["argument"] + out["output"] + out["temp"] - out["alias"]
  return out


def _model(name: str):
  if name == "mlp":
    params = overhead.mlp_init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (128, 784))
    y = jax.random.randint(jax.random.key(2), (128,), 0, 10)
    return ("MLP 784-512-10, batch 128, float32", params, overhead.mlp_loss, (x, y))
  if name == "transformer":
    params = transformer_lib.init(jax.random.key(0))
    x, y = transformer_lib.batch(jax.random.key(1), 8, transformer_lib.CONFIG.context)
    c = transformer_lib.CONFIG
    return (
      (
        f"causal transformer ({c.depth} blocks, width {c.width}, "
        f"{transformer_lib.num_params(params):,} params), batch 8 × {c.context} tokens, "
        "float32"
      ),
      params,
      transformer_lib.make_loss(),
      (x, y),
    )
  raise ValueError(f"unknown model {name!r}; pass mlp or transformer")


train_step = overhead.make_step  # the jitted step measured, the same as overhead's


def measure(model: str) -> dict:
  """Every row's state and step memory on ``model`` (in bytes and in P)."""
  desc, params, loss, batch = _model(model)
  p_bytes = tree_bytes(params)
  rows = {}
  for label, make in overhead.registry().items():
    if "gauss_newton" in label and model != "mlp":
      continue  # its logits_fn (overhead.mlp_logits) is the MLP's: no row for other models
    opt = make()
    state = opt.init(params)
    mem = step_memory(train_step(opt, loss), params, state, *batch)
    rows[label] = {"state_bytes": tree_bytes(state), **mem}
  for label, fn in _floors(loss).items():
    rows[label] = {"state_bytes": 0, **step_memory(fn, params, (), *batch)}
  for r in rows.values():
    r["state_P"] = r["state_bytes"] / p_bytes
    r["peak_P"] = r["peak"] / p_bytes
    r["temp_P"] = r["temp"] / p_bytes
  return {"model": desc, "param_bytes": p_bytes, "batch_bytes": tree_bytes(batch), "rows": rows}


def _floors(loss):
  """The reference steps of ``overhead.floors`` (same names), on ``loss``.

  Each computes the loss and gradient, then evaluates ``loss`` once, five times
  or by nested jvp at w − ηg, and applies an update that depends on the result
  (so nothing is dead code); :data:`FLOOR_GRAD` evaluates nothing more and
  steps along g/‖g‖ (the whole gradient read twice, so held).
  """

  def apply(p, g, scale):
    return optax.apply_updates(p, jax.tree.map(lambda b: -1e-3 * b * scale, g))

  def forward(p, s, x, y):
    value, g = jax.value_and_grad(loss)(p, x, y)
    extra = loss(probes.point_on_line(p, g, 1e-3), x, y)
    return apply(p, g, extra), s, value

  def five_forwards(p, s, x, y):
    value, g = jax.value_and_grad(loss)(p, x, y)
    tot = sum(loss(probes.point_on_line(p, g, 1e-3 + 1e-4 * k), x, y) for k in range(-2, 3))
    return apply(p, g, tot), s, value

  def jvp2(p, s, x, y):
    value, g = jax.value_and_grad(loss)(p, x, y)
    _, d1, d2 = probes.line_derivatives(lambda q: loss(q, x, y), p, g, 1e-3)
    return apply(p, g, d1 + d2), s, value

  def holding(p, s, x, y):
    value, g = jax.value_and_grad(loss)(p, x, y)
    return apply(p, g, 1.0 / optax.tree.norm(g)), s, value

  return {
    FLOOR_GRAD: holding,
    FLOOR_ONE: forward,
    "floor: +5 forwards": five_forwards,
    "floor: +jvp2 (f, f', f'')": jvp2,
  }


def markdown(out: dict) -> str:
  models = list(out["models"])
  lines = [
    "# Memory per method, in parameter copies P",
    "",
    (
      "State: bytes of `opt.init(params)` / P (exact). Peak: XLA's buffer assignment of the "
      "jitted training step (value_and_grad + update + apply_updates, params and state "
      "donated): (argument + output + temp − alias) / P, batch included. Temp: the step's "
      "scratch beyond its inputs and outputs / P. See the module docstring of "
      "`benchmarks/studies/memory.py` for why these quantities."
    ),
    "",
    (
      f"Command: `{out['command']}` · machine: {io.machine_line(out['machine'])} "
      "(memory analysis is a property of the compiled program, not a measurement "
      "of this machine's load)."
    ),
    "",
  ]
  for m in models:
    o = out["models"][m]
    lines.append(
      f"- `{m}`: {o['model']}; P = {o['param_bytes'] / 1e6:.2f} MB, batch "
      f"= {o['batch_bytes'] / o['param_bytes']:.4f} P."
    )
  head = "| method | state |" + "".join(f" peak ({m}) | temp ({m}) |" for m in models)
  lines += ["", head, "|---|---:|" + "---:|---:|" * len(models)]
  labels = list(out["models"][models[0]]["rows"])
  for label in labels:
    first = out["models"][models[0]]["rows"][label]
    state = "—" if label.startswith("floor") else f"{first['state_P']:.2f}"
    cells = "".join(
      f" {out['models'][m]['rows'][label]['peak_P']:.2f} |"
      f" {out['models'][m]['rows'][label]['temp_P']:.2f} |"
      if label in out["models"][m]["rows"]
      else " n/a | n/a |"
      for m in models
    )
    lines.append(f"| {label} | {state} |{cells}")
  lines += [
    "",
    "## `probe_mode=\"map\"`: at most one extra parameter copy?",
    "",
    (
      "Extra copies held by the probes = temp(row) − temp(`floor: +1 forward`), the "
      "floor being the gradient held plus one loss evaluation at one probe point "
      "w − ηg (so one probe point's copy is already in the floor). The bound of the "
      f"issue: peak(row) − peak(`{FLOOR_GRAD}`) ≤ 1 P, that floor being a plain SGD "
      "step that holds its whole gradient (w − η g/‖g‖), as every probe method does, "
      "up to 1% of P for the loop's scalars and activations."
    ),
    "",
    "| row |"
    + "".join(f" {m}: temp − floor (P) | {m}: peak − SGD holding g (P) |" for m in models),
    "|---|" + "---:|---:|" * len(models),
  ]
  for label in PROBE_ROWS:
    rows = [out["models"][m]["rows"] for m in models]
    cells = "".join(
      f" {r[label]['temp_P'] - r[FLOOR_ONE]['temp_P']:+.2f} |"
      f" {r[label]['peak_P'] - r[FLOOR_GRAD]['peak_P']:+.3f} |"
      for r in rows
    )
    lines.append(f"| {label} |{cells}")
  lines += ["", out["verdict"]]
  return "\n".join(lines)


def verdict(out: dict) -> str:
  """The issue's question, answered from the numbers of every model."""
  parts = []
  for m, o in out["models"].items():
    r = o["rows"]
    extra = r[MAP_ROW]["temp_P"] - r[FLOOR_ONE]["temp_P"]
    vmap = r[PROBE_ROWS[0]]["temp_P"] - r[FLOOR_ONE]["temp_P"]
    over_sgd = r[MAP_ROW]["peak_P"] - r["optax.sgd"]["peak_P"]
    over_holding = r[MAP_ROW]["peak_P"] - r[FLOOR_GRAD]["peak_P"]
    # Beyond one copy and the state (the default line="next_batch" keeps u_{k−1}: 1 P),
    # in bytes: loop bookkeeping (the five rates and losses, the counter) and
    # activations; 1% of P is far below any parameter-sized buffer.
    state = round(r[MAP_ROW]["state_P"] * o["param_bytes"])
    excess = r[MAP_ROW]["peak"] - r[FLOOR_GRAD]["peak"] - o["param_bytes"] - state
    floor_over_sgd = r[FLOOR_ONE]["peak_P"] - r["optax.sgd"]["peak_P"]
    parts.append(
      f"{m}: `{MAP_ROW}` holds {extra:+.2f} P of scratch beyond the one-probe floor "
      f"(vmap: {vmap:+.2f} P), so "
      + ("one probe point at a time" if extra < 0.5 else "MORE than one probe point at a time")
      + f"; state {r[MAP_ROW]['state_P']:.4f} P; peak {r[MAP_ROW]['peak_P']:.2f} P against "
      f"`{FLOOR_GRAD}`'s {r[FLOOR_GRAD]['peak_P']:.2f} P: {over_holding:+.3f} P "
      f"({excess:+,} bytes beyond one copy and the state), "
      + ("within" if excess <= 0.01 * o["param_bytes"] else "NOT within")
      + " one extra parameter copy beyond the state, up to 1% of P for scalars and activations "
      f"(against optax.sgd's {r['optax.sgd']['peak_P']:.2f} P: {over_sgd:+.2f} P; "
      f"the one-probe floor itself is {floor_over_sgd:+.2f} P over optax.sgd)."
    )
  return "**Verdict.** " + " ".join(parts)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--models", default="mlp,transformer")
  ap.add_argument("--out-dir", default=io.RESULTS_DIR)
  ap.add_argument(
    "--render", action="store_true", help="only rewrite the Markdown from the existing memory.json"
  )
  args = ap.parse_args(argv)
  if args.render:
    with open(os.path.join(args.out_dir, "memory.json")) as f:
      out = json.load(f)
    out["verdict"] = verdict(out)
    io.write_results("memory", out, markdown(out), out_dir=args.out_dir)
    return
  out = {
    "command": io.command_line("benchmarks.studies.memory", argv),
    "machine": io.machine_info(),
    "quantities": {
      "state_P": "bytes of opt.init(params) / param bytes",
      "peak_P": "(argument + output + temp - alias) / param bytes of the compiled "
      "step with params and state donated (memory_analysis())",
      "temp_P": "temp_size_in_bytes / param bytes",
    },
    "models": {},
  }
  for m in args.models.split(","):
    out["models"][m] = measure(m)
    print(f"measured {m}", flush=True)
  out["verdict"] = verdict(out)
  md = markdown(out)
  io.write_results("memory", out, md, out_dir=args.out_dir)
  print(md)


if __name__ == "__main__":
  main()
