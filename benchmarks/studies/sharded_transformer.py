"""Every method on a 13M-parameter transformer, fully sharded over 8 simulated CPU devices.

The model is ``benchmarks.models.transformer`` (4 blocks, width 512, 13.2M
parameters); params and batch use its FSDP layout on a 1-D mesh of 8 devices
(every parameter split along one axis, the batch along its first axis). For
every method of ``adaptlr.registry.METHODS`` at its defaults, and
``optax.sgd`` / ``optax.adam`` as anchors, this records:

* whether the jitted training step compiles with sharded params and batch, and
  the largest relative difference of its loss and params from the single-device
  step over ``--steps`` steps (same batches);
* per-device memory from the compiled step's ``memory_analysis()`` (argument,
  output, temp bytes; the single-device step's beside it), and the shard of
  every parameter after the steps (its size × 8 = the full size?);
* the collectives of the compiled HLO: of the whole step, and of the optimizer
  update alone, compiled on sharded gradients and params with a separable
  ``value_fn`` (Σ (w − 1)², which needs no gathered leaf). In the update alone,
  every inner product, norm and finiteness check must be a local partial sum
  followed by an ``all-reduce`` of a few scalars: any ``all-gather`` there
  would be a gathered copy of the parameters or gradients. In the whole step
  the forward and backward passes legitimately gather (FSDP gathers weights, or
  XLA's partitioner chooses to gather activations), so there the check is that
  no single all-gather is larger than the largest parameter leaf;
* the wall time per step, 8 devices and 1 device — only when ``--time`` is
  given (otherwise everything is compiled with ``memory.FAST_COMPILE``, LLVM's
  optimization level 0: same HLO, same memory analysis, half the compile time).
  The 8 devices are simulated by XLA on the same CPU cores
  (``--xla_force_host_platform_device_count``): the time says nothing about real
  multi-device speed, only that the program runs.

Command: python -m benchmarks.studies.sharded_transformer [--steps 3] [--time]
Writes benchmarks/results/sharded_transformer.{json,md}.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before jax starts: 8 simulated CPU devices
  os.environ.setdefault("XLA_FLAGS", "")
  if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"

import argparse
import json
import re
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding

from adaptlr.registry import METHODS
from benchmarks import io
from benchmarks.models import transformer as T
from benchmarks.studies.memory import FAST_COMPILE, train_step, tree_bytes

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {
  "pred": 1,
  "s8": 1,
  "u8": 1,
  "s16": 2,
  "u16": 2,
  "f16": 2,
  "bf16": 2,
  "s32": 4,
  "u32": 4,
  "f32": 4,
  "s64": 8,
  "u64": 8,
  "f64": 8,
}
_LINE = re.compile(r"=\s+(.*?)\s+(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")
_ARRAY = re.compile(r"\b(" + "|".join(_BYTES) + r")\[([\d,]*)\]")


def collectives(hlo: str) -> list[tuple[str, int]]:
  """``(op, result bytes)`` for every collective op in compiled HLO text.

  Args:
    hlo: ``jax.jit(f).lower(...).compile().as_text()`` (the partitioned module:
      shapes are per device).

  Returns:
    One entry per collective instruction (``all-reduce``, ``all-gather``,
    ``reduce-scatter``, ``all-to-all``, ``collective-permute``; asynchronous
    ``-start`` forms counted once), with the bytes of its result (a tuple's
    elements summed).
  """
  out = []
  for line in hlo.splitlines():
    m = _LINE.search(line)
    if m is None:
      continue
    size = sum(
      _BYTES[t] * int(np.prod([int(d) for d in dims.split(",") if d]))
      for t, dims in _ARRAY.findall(m.group(1))
    )
    out.append((m.group(2), size))
  return out


def collective_counts(hlo: str) -> dict[str, int]:
  """How many of each collective ``hlo`` has."""
  ops = [op for op, _ in collectives(hlo)]
  return {c: ops.count(c) for c in COLLECTIVES}


def separable_loss(params: Any) -> jax.Array:
  """Σ (w − 1)² over every leaf: a loss that never needs a gathered leaf."""
  return sum(jnp.sum((w - 1.0) ** 2) for w in jax.tree.leaves(params))


def update_only(opt: optax.GradientTransformation):
  """``opt.update`` with ``value``, ``grad`` and ``value_fn=separable_loss``."""

  def update(grad, state, params):
    return opt.update(
      grad, state, params, value=separable_loss(params), grad=grad, value_fn=separable_loss
    )

  return update


def optimizers() -> dict[str, Callable[[], optax.GradientTransformation]]:
  """Row label -> factory: optax.sgd, optax.adam, then every registered method's defaults."""
  rows = {"optax.sgd": lambda: optax.sgd(0.01), "optax.adam": lambda: optax.adam(1e-3)}
  rows.update({name: spec.optimizer for name, spec in METHODS.items()})
  return rows


def max_rel_diff(a: Any, b: Any) -> float:
  """max |a − b| over all leaves / max |b| over all leaves (finite values).

  Relative to the whole tree, not leaf by leaf: a leaf whose exact value is zero
  (the attention's key bias gets a zero gradient: softmax ignores it) holds
  rounding noise whose digits depend on the order of the reductions.
  """
  diff, scale = 0.0, 0.0
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(y)
    if not ok.any():
      continue
    diff = max(diff, float(np.max(np.abs(x[ok] - y[ok]))))
    scale = max(scale, float(np.max(np.abs(y[ok]))))
  return diff / scale if scale else diff


def shard_bytes(tree: Any) -> int:
  """Bytes one device holds of ``tree`` (its first addressable shard of every leaf)."""
  return sum(a.addressable_shards[0].data.nbytes for a in jax.tree.leaves(tree))


def run(
  label: str,
  make,
  *,
  steps: int,
  batch: int,
  length: int,
  timed: bool,
  compiler_options: dict | None = None,
) -> dict:
  """One row: sharded vs single-device trajectory, memory, collectives (and times)."""
  mesh = T.mesh(8)
  params = T.init(jax.random.key(0))
  loss = T.make_loss()
  batches = [T.batch(jax.random.key(10 + i), batch, length) for i in range(steps)]
  opt = make()
  step = jax.jit(train_step(opt, loss))
  row: dict[str, Any] = {}

  def trajectory(p, batches):
    s = opt.init(p)
    compiled = step.lower(p, s, *batches[0]).compile(compiler_options)
    losses, times = [], []
    for xy in batches:
      t0 = time.perf_counter()
      p, s, v = compiled(p, s, *xy)
      jax.block_until_ready((p, s, v))
      times.append(time.perf_counter() - t0)
      losses.append(float(v))
    return compiled, p, s, losses, times

  c1, p1, s1, l1, t1 = trajectory(params, batches)
  ps = T.shard_params(params, mesh)
  c8, p8, s8, l8, t8 = trajectory(ps, [T.shard_batch(xy, mesh) for xy in batches])
  row["losses_1"], row["losses_8"] = l1, l8
  row["loss_max_rel_diff"] = max(abs(a - b) / abs(b) for a, b in zip(l8, l1))
  row["params_max_rel_diff"] = max_rel_diff(p8, p1)
  row["state_max_rel_diff"] = max_rel_diff(
    [a for a in jax.tree.leaves(s8) if jnp.issubdtype(a.dtype, jnp.floating)],
    [a for a in jax.tree.leaves(s1) if jnp.issubdtype(a.dtype, jnp.floating)],
  )
  expected = T.fsdp_specs(params, 8)
  row["params_stay_sharded"] = all(
    a.sharding.is_equivalent_to(NamedSharding(mesh, spec), a.ndim)
    and a.addressable_shards[0].data.size * 8 == a.size
    for a, spec in zip(
      jax.tree.leaves(p8),
      jax.tree.leaves(expected, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec)),
    )
  )
  row["param_shard_bytes"] = shard_bytes(p8)
  row["state_shard_bytes"] = shard_bytes(s8)
  row["param_bytes"] = tree_bytes(params)
  row["state_bytes"] = tree_bytes(s1)
  for tag, c in (("8", c8), ("1", c1)):
    m = c.memory_analysis()
    row[f"memory_{tag}"] = {
      "argument": int(m.argument_size_in_bytes),
      "output": int(m.output_size_in_bytes),
      "temp": int(m.temp_size_in_bytes),
    }
  hlo = c8.as_text()
  row["step_collectives"] = collective_counts(hlo)
  gathers = [b for op, b in collectives(hlo) if op == "all-gather"]
  row["step_largest_all_gather_bytes"] = max(gathers, default=0)
  row["largest_param_leaf_bytes"] = max(a.nbytes for a in jax.tree.leaves(params))
  grads = jax.jit(jax.grad(separable_loss))(ps)
  upd = jax.jit(update_only(opt)).lower(grads, opt.init(ps), ps).compile(compiler_options)
  ops = collectives(upd.as_text())
  row["update_collectives"] = collective_counts(upd.as_text())
  row["update_all_reduce_bytes"] = [b for op, b in ops if op == "all-reduce"]
  if timed:
    row["ms_per_step_8"] = float(np.median(t8[1:]) * 1e3) if steps > 1 else None
    row["ms_per_step_1"] = float(np.median(t1[1:]) * 1e3) if steps > 1 else None
  return row


def markdown(out: dict) -> str:
  rows = out["rows"]
  mb = lambda b: f"{b / 1e6:.1f}"
  lines = [
    "# Every method on a sharded 13M-parameter transformer (8 simulated CPU devices)",
    "",
    (
      f"Model: {out['model']}. FSDP: every parameter split along one axis over a 1-D mesh "
      f"of 8 devices, batch ({out['batch']} × {out['length']} tokens) split along its "
      f"first axis. {out['steps']} steps, sharded vs single device, same batches."
    ),
    "",
    (
      f"Command: `{out['command']}` · machine: {io.machine_line(out['machine'])}. The 8 "
      "devices are simulated on the same CPU cores: this checks correctness, memory and "
      "communication, not speed."
    ),
    "",
    "## Trajectory and per-device memory",
    "",
    (
      "Max relative difference sharded vs single device: of the per-step losses, and of the "
      "params and float state after the last step (max |Δ| over the tree / max |single| over "
      "the tree). Memory from the compiled step's `memory_analysis()` per device, in MB "
      "(8 devices / 1 device)."
    ),
    "",
    (
      "| method | compiles | Δ loss | Δ params | Δ state | params sharded 1/8 | "
      "argument MB | output MB | temp MB |"
    ),
    "|---|---|---:|---:|---:|---|---:|---:|---:|",
  ]
  for label, r in rows.items():
    if "error" in r:
      lines.append(f"| {label} | **no**: {r['error']} | | | | | | | |")
      continue
    m8, m1 = r["memory_8"], r["memory_1"]
    lines.append(
      f"| {label} | yes | {r['loss_max_rel_diff']:.1e} | {r['params_max_rel_diff']:.1e} | "
      f"{r['state_max_rel_diff']:.1e} | {'yes' if r['params_stay_sharded'] else 'NO'} | "
      f"{mb(m8['argument'])} / {mb(m1['argument'])} | {mb(m8['output'])} / "
      f"{mb(m1['output'])} | {mb(m8['temp'])} / {mb(m1['temp'])} |"
    )
  lines += [
    "",
    "## Collectives in the compiled HLO (per device program)",
    "",
    (
      "Whole step: counts of all-reduce / all-gather / other collectives, and the largest "
      "all-gather against the largest parameter leaf "
      f"({mb(next(iter(rows.values())).get('largest_param_leaf_bytes', 0))} MB). Update alone "
      "(sharded gradients and params, separable `value_fn`): every collective, and the "
      "bytes each all-reduce carries."
    ),
    "",
    (
      "| method | step: all-reduce | step: all-gather | step: other | largest all-gather MB |"
      " update: all-reduce | update: all-gather | update: other | update all-reduce bytes |"
    ),
    "|---|---:|---:|---:|---:|---:|---:|---:|---|",
  ]
  for label, r in rows.items():
    if "error" in r:
      continue
    sc, uc = r["step_collectives"], r["update_collectives"]
    other = lambda c: sum(v for k, v in c.items() if k not in ("all-reduce", "all-gather"))
    lines.append(
      f"| {label} | {sc['all-reduce']} | {sc['all-gather']} | {other(sc)} | "
      f"{mb(r['step_largest_all_gather_bytes'])} | {uc['all-reduce']} | "
      f"{uc['all-gather']} | {other(uc)} | {sorted(set(r['update_all_reduce_bytes']))} |"
    )
  if any("ms_per_step_8" in r for r in rows.values()):
    lines += [
      "",
      "## Time per step (simulated devices: not a speed measurement)",
      "",
      "| method | 8 simulated devices, ms | 1 device, ms |",
      "|---|---:|---:|",
    ]
    for label, r in rows.items():
      if r.get("ms_per_step_8") is not None:
        lines.append(f"| {label} | {r['ms_per_step_8']:.0f} | {r['ms_per_step_1']:.0f} |")
  if not any("ms_per_step_8" in r for r in rows.values()):
    lines += [
      "",
      (
        "No times: run without `--time` (the machine was shared with other jobs, and "
        "simulated devices say nothing about real speed anyway)."
      ),
    ]
  ours = max(
    (
      max(r["params_max_rel_diff"], r["state_max_rel_diff"])
      for label, r in rows.items()
      if label in METHODS and "error" not in r
    ),
    default=float("nan"),
  )
  lines += [
    "",
    out["summary"],
    "",
    "Notes:",
    "",
    (
      "- XLA's all-reduce combiner merges the per-leaf partial sums of one update into "
      "one or two tuple all-reduces (the bytes column: a few dozen float32 scalars), so "
      "the count is per update, not per inner product."
    ),
    (
      "- The whole step's all-gathers and all-to-alls are the model's (optax.sgd has the "
      "same); none is larger than one parameter leaf."
    ),
    (
      "- Δ params of optax.adam (and Δ state of the per-element methods) is larger than "
      "float32 rounding: a per-element rule that divides by |g| (Adam's first step is "
      "≈ lr · sign(g)) turns the reduction-order noise of a near-zero gradient element "
      "into a step-sized difference. The largest Δ params or Δ state of adaptlr's "
      f"methods: {ours:.1e}."
    ),
    (
      "- `init` builds per-element state with `zeros_like` / `full_like` of the "
      "params, so on sharded params every method's state is born sharded like them "
      "(`tests/test_sharded_transformer.py::test_init_state_is_sharded_like_params`)."
    ),
  ]
  return "\n".join(lines)


def summary(rows: dict) -> str:
  bad = []
  for label, r in rows.items():
    if "error" in r:
      bad.append(f"{label} does not compile")
      continue
    if r["update_collectives"]["all-gather"] or any(
      r["update_collectives"][k] for k in ("reduce-scatter", "all-to-all", "collective-permute")
    ):
      bad.append(f"{label}'s update moves arrays between devices {r['update_collectives']}")
    if r["update_all_reduce_bytes"] and max(r["update_all_reduce_bytes"]) > 1024:
      bad.append(f"{label}'s update all-reduces {max(r['update_all_reduce_bytes'])} bytes")
    if not r["params_stay_sharded"]:
      bad.append(f"{label}'s params come out unsharded")
  if bad:
    return "**Findings.** " + "; ".join(bad) + "."
  return (
    "**Findings.** Every method compiles sharded and keeps its params sharded (each "
    "device holds 1/8 of every parameter); in every update alone the only "
    "collectives are all-reduces of at most 1 KB (scalars: the global inner products, "
    "norms and finiteness checks), never an all-gather."
  )


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--steps", type=int, default=3)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--length", type=int, default=32)
  ap.add_argument(
    "--time",
    action="store_true",
    help="also time the steps (simulated devices: not a speed measurement)",
  )
  ap.add_argument("--methods", default="", help="comma-separated subset (default: all)")
  ap.add_argument("--out-dir", default=io.RESULTS_DIR)
  ap.add_argument(
    "--render",
    action="store_true",
    help="only rewrite the Markdown from the existing sharded_transformer.json",
  )
  args = ap.parse_args(argv)
  if args.render:
    with open(os.path.join(args.out_dir, "sharded_transformer.json")) as f:
      out = json.load(f)
    out["summary"] = summary(out["rows"])
    io.write_results("sharded_transformer", out, markdown(out), out_dir=args.out_dir)
    return
  makers = optimizers()
  wanted = [m for m in args.methods.split(",") if m] or list(makers)
  unknown = sorted(set(wanted) - set(makers))
  if unknown:
    ap.error(f"unknown --methods {unknown}; known: {list(makers)}")
  c = T.CONFIG
  params = jax.eval_shape(T.init, jax.random.key(0))
  out = {
    "command": io.command_line("benchmarks.studies.sharded_transformer", argv),
    "machine": io.machine_info(),
    "model": (
      f"causal transformer, {c.depth} blocks, width {c.width}, {c.heads} heads, "
      f"vocabulary {c.vocab}, {T.num_params(params):,} params, float32"
    ),
    "compiler_options": None if args.time else FAST_COMPILE,
    "steps": args.steps,
    "batch": args.batch,
    "length": args.length,
    "rows": {},
  }
  for label in wanted:
    try:
      out["rows"][label] = run(
        label,
        makers[label],
        steps=args.steps,
        batch=args.batch,
        length=args.length,
        timed=args.time,
        compiler_options=None if args.time else FAST_COMPILE,
      )
    except Exception as e:  # noqa: BLE001 - a method that fails is a finding, reported
      out["rows"][label] = {"error": f"{type(e).__name__}: {e}"[:300]}
    print(
      label,
      {
        k: v
        for k, v in out["rows"][label].items()
        if k.endswith(("diff", "collectives")) or k == "error"
      },
      flush=True,
    )
  out["summary"] = summary(out["rows"])
  md = markdown(out)
  io.write_results("sharded_transformer", out, md, out_dir=args.out_dir)
  print(md)


if __name__ == "__main__":
  main()
