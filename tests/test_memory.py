"""The accounting of ``benchmarks.studies.memory`` and the HLO reader of the sharding study.

State sizes are checked against what each method's NamedTuple fields must hold,
written out by hand from their documented shapes (one parameter copy per
per-element field, 4 bytes per scalar); the step's memory analysis against the
bytes of its arguments (params, state, batch) and its donations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptlr
from benchmarks.studies import memory, overhead
from benchmarks.studies.sharded_transformer import collective_counts, collectives

PARAMS = {"w": jnp.ones((7, 5)), "b": jnp.ones(5)}
P = 40 * 4  # 40 float32 numbers
S = 4  # one float32 or int32 scalar

# field -> bytes, for the default (global / per-element) configurations.
EXPECTED = {
  "tlr": (
    adaptlr.tlr,
    {
      "learning_rate": S,
      "count": S,
      "skipped": S,
      "prev_direction": P,
      "prev_inner": S,
      "ceiling": S,
      "bound": 0,
      "grad_sum": 0,
      "direction_sum": 0,
      "direction_state": 0,
    },
  ),
  "newton_lr": (
    adaptlr.newton_lr,
    {
      "learning_rate": S,
      "count": S,
      "skipped": S,
      "loss_after": S,
      "velocity": S,
      "direction_state": 0,
      "prev_direction": P,
    },
  ),
  "vsgd": (
    adaptlr.vsgd,
    {
      "learning_rate": P,
      "count": S,
      "skipped": S,
      "grad_avg": P,
      "sq_avg": P,
      "curv_avg": P,
      "curv_sq_avg": 0,
      "tau": P,
      "key": 2 * 4,
    },
  ),
  "almeida": (
    adaptlr.almeida,
    {"learning_rate": P, "count": S, "skipped": S, "prev_grad": P, "sq_avg": P},
  ),
}


def _loss(p, x, y):
  return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_state_bytes_field_by_field(name):
  make, fields = EXPECTED[name]
  state = make().init(PARAMS)
  inner = state[0]  # the method's NamedTuple; state[1] is the sign-flip's EmptyState
  assert type(inner)._fields == tuple(fields)
  for field, expected in fields.items():
    got = sum(np.asarray(a).nbytes for a in jax.tree.leaves(getattr(inner, field)))
    assert got == expected, f"{name}.{field}: {got} bytes, expected {expected}"
  assert memory.tree_bytes(state) == sum(fields.values())


def test_state_bytes_of_the_optax_anchors():
  assert memory.tree_bytes(optax.sgd(0.1).init(PARAMS)) == 0
  assert memory.tree_bytes(optax.adam(1e-3).init(PARAMS)) == 2 * P + S
  assert memory.tree_bytes(PARAMS) == P


def test_step_memory_is_arguments_outputs_and_scratch():
  x, y = jnp.ones((4, 7)), jnp.ones((4, 5))
  opt = adaptlr.tlr()
  state = opt.init(PARAMS)
  m = memory.step_memory(memory.train_step(opt, _loss), PARAMS, state, x, y)
  state_bytes = P + 5 * S
  batch = (4 * 7 + 4 * 5) * 4
  assert m["argument"] == P + state_bytes + batch
  assert m["alias"] == P + state_bytes  # params and state donated
  assert m["output"] >= P + state_bytes + S  # new params, state and the loss
  assert m["peak"] == m["argument"] + m["output"] + m["temp"] - m["alias"]


@pytest.mark.slow  # compiled memory analysis
def test_probe_mode_map_holds_one_parameter_copy():
  """``probe_mode="map"``: at most one parameter copy over SGD holding its gradient.

  On an MLP 128-512-10 (P = 284 KB, the first kernel 92 % of it), batch 8, with
  peaks from XLA's buffer assignment of the compiled step (``memory.step_memory``:
  argument + output + temp − alias, params and state donated), in bytes:

      peak(newton_lr(finite_difference, probe_mode="map"))
          ≤ peak(SGD holding g) + P + A,

  * peak(SGD holding g): ``memory.FLOOR_GRAD``, a plain SGD step whose update
    reads the gradient twice (w − η g / ‖g‖), so all of g is live at once, as
    in any method that takes an inner product with it before updating
    (``optax.sgd`` fuses each leaf's gradient into its update and need not
    hold all of it at once);
  * P: one parameter copy, the one probe point w − (η + kε) u that the
    ``lax.map`` loop holds at a time;
  * A: one forward pass's hidden activations (batch × 512 float32, 0.06 P),
    which the probe's forward may need besides the gradient's buffers.

  Measured (jax 0.10.2, XLA:CPU): map 3.07 P, SGD holding g 2.07 P, so
  +0.996 P against a bound of +1.06 P. It fails if the probes hold anything
  parameter-sized beyond the one point: the element-wise isfinite(g) mask
  (1 byte per parameter) once held across the loop was +1.23 P, and
  ``probe_mode="vmap"`` (five points at once) is +5.2 P, checked below so
  that the bound stays able to fail. This is the paper's ``line="this_batch"``.

  The default ``line="next_batch"`` also keeps u_{k−1} in its state (one P) and
  its downhill check evaluates the step point w − η u (at most one more), so it is
  bounded by + 3 P + A; measured +2.17 P (+2.04 P without the check).
  """
  params = overhead.mlp_init(jax.random.key(0), sizes=(128, 512, 10))
  x = jax.random.normal(jax.random.key(1), (8, 128))
  y = jnp.arange(8) % 10
  loss = overhead.mlp_loss
  p_bytes = memory.tree_bytes(params)
  activations = 8 * 512 * 4

  def peak(step, state=()):
    return memory.step_memory(step, params, state, x, y)["peak"]

  def newton(mode, line="this_batch"):
    opt = adaptlr.newton_lr(derivatives="finite_difference", probe_mode=mode, line=line)
    return peak(memory.train_step(opt, loss), opt.init(params))

  sgd = optax.sgd(1e-3)
  holding = peak(memory._floors(loss)[memory.FLOOR_GRAD])
  assert holding >= peak(memory.train_step(sgd, loss), sgd.init(params))
  bound = holding + p_bytes + activations
  got = newton("map")
  assert got <= bound, (
    f"probe_mode='map' peaks at {(got - holding) / p_bytes:+.3f} P over SGD holding its "
    f"gradient; the bound is {(bound - holding) / p_bytes:+.3f} P"
  )
  assert newton("vmap") > bound
  default_bound = holding + 3 * p_bytes + activations
  assert newton("map", line="next_batch") <= default_bound
  assert newton("vmap", line="next_batch") > default_bound


HLO = """
  ROOT %all-reduce.3 = (f32[], f32[], f32[16]{0}) all-reduce(%a, %b, %c), channel_id=1, to_apply=%add
  %all-gather = f32[16,64]{0,1} all-gather(%bitcast), channel_id=1, dimensions={1}
  %wrapped_copy = f32[16,64]{1,0} fusion(%all-gather), kind=kLoop, calls=%copy
  %ag-start = (bf16[8]{0}, bf16[64]{0}) all-gather-start(%p), dimensions={0}
  %ag-done = bf16[64]{0} all-gather-done(%ag-start)
"""


def test_collectives_reads_kind_and_bytes():
  assert collectives(HLO) == [
    ("all-reduce", 4 + 4 + 16 * 4),
    ("all-gather", 16 * 64 * 4),
    ("all-gather", (8 + 64) * 2),
  ]
  counts = collective_counts(HLO)
  assert counts["all-reduce"] == 1 and counts["all-gather"] == 2
  assert counts["reduce-scatter"] == 0
