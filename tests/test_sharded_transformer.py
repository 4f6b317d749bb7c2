"""Every method on a 13M-parameter causal transformer, fully sharded over 8 CPU devices.

Params use the FSDP layout of ``benchmarks.models.transformer`` (each leaf split
along one axis over the mesh axis ``"d"``), the batch is split along its first
axis. For every method of ``adaptlr.registry.METHODS`` at its defaults:

1. the jitted training step compiles with sharded params and batch, and its
   losses, params and float state over 3 steps equal the single-device step's
   (float32: only the order of the reductions differs);
2. its params come out with the layout they went in with, each device holding
   exactly 1/8 of every parameter, and the compiled step's per-device argument
   and output sizes are the per-device shards' bytes (the 1/8 that FSDP
   promises, plus the replicated scalars); ``init`` on sharded params returns a
   state sharded the same way (per-element state is built with
   ``jnp.zeros_like`` / ``jnp.full_like``, which keep the parameter's sharding);
3. its update, compiled alone on sharded gradients and params, reduces by
   all-reducing a few scalars and never moves a parameter-sized array: no
   all-gather (a gathered copy), reduce-scatter, all-to-all or
   collective-permute. The whole step's forward and backward passes do gather
   (that is FSDP); there no single all-gather may exceed the largest parameter
   leaf (never a gathered copy of all the params).

Compiled with ``xla_backend_optimization_level=0`` (LLVM's code generation
only; the HLO, its partitioning and buffer assignment are unchanged) to keep
the file's compile time down.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from adaptlr.registry import METHODS
from benchmarks.models import transformer as T
from benchmarks.studies.memory import train_step
from benchmarks.studies.sharded_transformer import (
  collectives,
  separable_loss,
  update_only,
)

# one worker runs the whole file under xdist (--dist loadgroup, pyproject.toml), so each
# method compiles its single-device and sharded steps once (_runs is cached per process)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sharded_transformer")]

STEPS, BATCH, LENGTH = 3, 8, 16
FAST = {"xla_backend_optimization_level": 0}
NAMES = sorted(METHODS)


def _need_8():
  if len(jax.devices()) < 8:
    pytest.skip("needs --xla_force_host_platform_device_count=8 (tests/conftest.py)")


@functools.cache
def _model():
  params = T.init(jax.random.key(0))
  batches = [T.batch(jax.random.key(10 + i), BATCH, LENGTH) for i in range(STEPS)]
  return params, T.make_loss(), batches


def _nbytes(tree, per_device=False):
  leaves = jax.tree.leaves(tree)
  if per_device:
    return sum(a.addressable_shards[0].data.nbytes for a in leaves)
  return sum(np.asarray(a).nbytes for a in leaves)


@functools.cache
def _runs(name):
  """(single-device run, sharded run): each losses, params, state, compiled, inputs."""
  params, loss, batches = _model()
  mesh = T.mesh(8)
  opt = METHODS[name].optimizer()
  step = jax.jit(train_step(opt, loss))

  def run(p, batches):
    s = opt.init(p)
    inputs = (p, s, *batches[0])
    compiled = step.lower(*inputs).compile(FAST)
    losses = []
    for xy in batches:
      p, s, v = compiled(p, s, *xy)
      losses.append(float(v))
    return {
      "losses": np.array(losses),
      "params": p,
      "state": s,
      "compiled": compiled,
      "inputs": inputs,
    }

  single = run(params, batches)
  sharded = run(T.shard_params(params, mesh), [T.shard_batch(xy, mesh) for xy in batches])
  return single, sharded


def test_model_is_large_and_fully_sharded():
  _need_8()
  params, _, _ = _model()
  assert T.num_params(params) >= 10_000_000
  specs = jax.tree.leaves(T.fsdp_specs(params, 8), is_leaf=lambda s: isinstance(s, P))
  assert all("d" in spec for spec in specs), "a parameter would be replicated"


@pytest.mark.parametrize("name", NAMES)
def test_trajectory_equals_single_device(name):
  _need_8()
  single, sharded = _runs(name)
  np.testing.assert_allclose(sharded["losses"], single["losses"], rtol=1e-4)
  assert single["losses"][-1] != single["losses"][0]
  _assert_trees_close(sharded["params"], single["params"])
  _assert_trees_close(sharded["state"], single["state"])


def _assert_trees_close(actual, desired, rtol=1e-4, atol=1e-5):
  """Leaf by leaf, with the absolute tolerance relative to the whole tree's largest value.

  A leaf whose exact gradient is zero (the attention's key bias: softmax ignores
  it) holds rounding noise of size 1e-12 whose digits depend on the reduction
  order: only its size relative to the tree is meaningful.
  """
  floats = lambda t: [
    np.asarray(a) for a in jax.tree.leaves(t) if jnp.issubdtype(a.dtype, jnp.floating)
  ]
  finite = [np.abs(b[np.isfinite(b)]) for b in floats(desired)]
  scale = max((float(np.max(b)) for b in finite if b.size), default=0.0)
  for a, b in zip(floats(actual), floats(desired)):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)
  ints = lambda t: [
    np.asarray(a) for a in jax.tree.leaves(t) if not jnp.issubdtype(a.dtype, jnp.floating)
  ]
  for a, b in zip(ints(actual), ints(desired)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_params_and_memory_stay_sharded(name):
  _need_8()
  single, sharded = _runs(name)
  params, _, _ = _model()
  mesh = T.mesh(8)
  specs = jax.tree.leaves(T.fsdp_specs(params, 8), is_leaf=lambda s: isinstance(s, P))
  for leaf, spec in zip(jax.tree.leaves(sharded["params"]), specs):
    assert leaf.sharding.is_equivalent_to(NamedSharding(mesh, spec), leaf.ndim), (
      leaf.sharding,
      spec,
    )
    assert len(leaf.sharding.device_set) == 8
    assert leaf.addressable_shards[0].data.size * 8 == leaf.size
  # State leaves shaped like a parameter are split the same way.
  for leaf in jax.tree.leaves(sharded["state"]):
    if leaf.size >= 4096:
      assert leaf.addressable_shards[0].data.size * 8 == leaf.size, leaf.shape
  # The compiled step's per-device inputs and outputs are the shards' bytes.
  m8 = sharded["compiled"].memory_analysis()
  m1 = single["compiled"].memory_analysis()
  # (The compiled step's input layout is what jit chose, which for the state is the
  # layout of the state it returns: see test_init_state_is_sharded_like_params.)
  x, y = sharded["inputs"][2:]
  assert m8.argument_size_in_bytes == _nbytes(
    (sharded["params"], sharded["state"], x, y), per_device=True
  )
  assert m1.argument_size_in_bytes == _nbytes(single["inputs"])
  # Outputs: the shards, plus the output tuple's table of 8-byte buffer pointers.
  out8 = (sharded["params"], sharded["state"], jnp.float32(0))
  extra = m8.output_size_in_bytes - _nbytes(out8, per_device=True)
  assert 0 <= extra <= 8 * len(jax.tree.leaves(out8)), extra
  # Params and state: 1/8 per device, up to the replicated scalars (< 1 KB).
  full = _nbytes((single["params"], single["state"]))
  per_device = _nbytes((sharded["params"], sharded["state"]), per_device=True)
  assert full / 8 <= per_device <= full / 8 + 1024


@pytest.mark.parametrize("name", NAMES)
def test_init_state_is_sharded_like_params(name):
  _need_8()
  params, _, _ = _model()
  state = METHODS[name].optimizer().init(T.shard_params(params, T.mesh(8)))
  for leaf in jax.tree.leaves(state):
    if leaf.size >= 4096:
      assert leaf.addressable_shards[0].data.size * 8 == leaf.size, (leaf.shape, leaf.sharding)


@pytest.mark.parametrize("name", NAMES)
def test_update_reduces_by_all_reduce_without_gathering(name):
  _need_8()
  params, _, _ = _model()
  ps = T.shard_params(params, T.mesh(8))
  opt = METHODS[name].optimizer()
  grads = jax.jit(jax.grad(separable_loss))(ps)
  hlo = jax.jit(update_only(opt)).lower(grads, opt.init(ps), ps).compile(FAST).as_text()
  ops = collectives(hlo)
  kinds = {op for op, _ in ops}
  assert kinds == {"all-reduce"}, f"{name}'s update moves arrays: {ops}"
  # Scalars (a few per reduction, tupled by XLA's combiner), never a leaf.
  assert max(b for _, b in ops) <= 1024, ops


@pytest.mark.parametrize("name", NAMES)
def test_step_gathers_at_most_one_leaf_at_a_time(name):
  _need_8()
  _, sharded = _runs(name)
  params, _, _ = _model()
  ops = collectives(sharded["compiled"].as_text())
  assert any(op == "all-reduce" for op, _ in ops)
  largest_leaf = max(np.asarray(a).nbytes for a in jax.tree.leaves(params))
  gathers = [b for op, b in ops if op == "all-gather"]
  assert max(gathers, default=0) <= largest_leaf
