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
from benchmarks.studies import memory
from benchmarks.studies.sharded_transformer import collective_counts, collectives

PARAMS = {"w": jnp.ones((7, 5)), "b": jnp.ones(5)}
P = 40 * 4   # 40 float32 numbers
S = 4        # one float32 or int32 scalar

# field -> bytes, for the default (global / per-element) configurations.
EXPECTED = {
    "tlr": (adaptlr.tlr, {"learning_rate": S, "count": S, "skipped": S, "prev_direction": P,
                          "prev_inner": S, "ceiling": S, "grad_sum": 0, "direction_sum": 0,
                          "direction_state": 0}),
    "newton_lr": (adaptlr.newton_lr, {"learning_rate": S, "count": S, "skipped": S,
                                      "loss_after": S, "velocity": S, "direction_state": 0}),
    "vsgd": (adaptlr.vsgd, {"learning_rate": P, "count": S, "skipped": S, "grad_avg": P,
                            "sq_avg": P, "curv_avg": P, "tau": P, "key": 2 * 4}),
    "almeida": (adaptlr.almeida, {"learning_rate": P, "count": S, "skipped": S,
                                  "prev_grad": P, "sq_avg": P}),
}


def _loss(p, x, y):
  return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_state_bytes_field_by_field(name):
  make, fields = EXPECTED[name]
  state = make().init(PARAMS)
  inner = state[0]   # the method's NamedTuple; state[1] is the sign-flip's EmptyState
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
  assert m["alias"] == P + state_bytes          # params and state donated
  assert m["output"] >= P + state_bytes + S     # new params, state and the loss
  assert m["peak"] == m["argument"] + m["output"] + m["temp"] - m["alias"]


HLO = """
  ROOT %all-reduce.3 = (f32[], f32[], f32[16]{0}) all-reduce(%a, %b, %c), channel_id=1, to_apply=%add
  %all-gather = f32[16,64]{0,1} all-gather(%bitcast), channel_id=1, dimensions={1}
  %wrapped_copy = f32[16,64]{1,0} fusion(%all-gather), kind=kLoop, calls=%copy
  %ag-start = (bf16[8]{0}, bf16[64]{0}) all-gather-start(%p), dimensions={0}
  %ag-done = bf16[64]{0} all-gather-done(%ag-start)
"""


def test_collectives_reads_kind_and_bytes():
  assert collectives(HLO) == [("all-reduce", 4 + 4 + 16 * 4), ("all-gather", 16 * 64 * 4),
                              ("all-gather", (8 + 64) * 2)]
  counts = collective_counts(HLO)
  assert counts["all-reduce"] == 1 and counts["all-gather"] == 2
  assert counts["reduce-scatter"] == 0
