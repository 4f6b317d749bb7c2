"""Optax's own contract for contributed optimizers, run on every adaptlr method.

A faithful port of ``optax/contrib/_common_test.py`` as shipped with optax
0.2.8 (the class ``ContribTest``, its seven tests, their problems and
tolerances), parametrized over ``adaptlr.registry.METHODS`` instead of optax's
list of contrib optimizers. The problems (``_setup_parabola`` …) and
``test_utils`` are imported from optax itself, so they stay optax's.

The only change is the extra args: where optax passes ``value`` to ``momo`` or
``obj_fn`` to ``sophia``, a method whose registry entry says
``needs_value_fn`` / ``needs_value`` gets ``value_fn=obj_fn`` (and ``value``)
from the same objective, as optax's line searches are called. Every method runs
with its defaults and ``learning_rate`` set to its default (so that
``inject_hyperparams`` has a hyperparameter to inject, as in optax's list).
"""

from __future__ import annotations

import functools
import inspect

import jax
import jax.numpy as jnp
import optax
import pytest
from optax._src import base, test_utils, update, utils
from optax.contrib import _common_test as common
from optax.schedules import _inject, _schedule
from optax.transforms import _accumulation

import adaptlr

METHODS = adaptlr.registry.METHODS
NAMES = sorted(METHODS)
_TARGETS = {
  "parabola": common._setup_parabola,
  "rosenbrock": common._setup_rosenbrock,
  "matrix_parabola": common._setup_matrix_parabola,
  "mixed_tensor_target": common._setup_mixed_tensor_target,
}


def _opt_kwargs(name):
  default = inspect.signature(METHODS[name].optimizer).parameters["learning_rate"].default
  return {"learning_rate": default}


def _factory(name):
  return METHODS[name].optimizer


def _loss_kwargs(name, value, obj_fn):
  """The extra args a method that needs the loss gets (optax's momo/sophia branch)."""
  spec = METHODS[name]
  kwargs = {}
  if spec.needs_value or spec.needs_value_fn:
    kwargs["value"] = value
  if spec.needs_value_fn:
    kwargs["value_fn"] = obj_fn
  return kwargs


def _value_kwargs(name, value):
  """``value`` for a method that reads it (optax passes it to momo)."""
  spec = METHODS[name]
  return {"value": value} if (spec.needs_value or spec.needs_value_fn) else {}


def _bind_value_fn(name, update_fn, obj_fn):
  """``update_fn`` with ``value_fn`` bound (optax binds sophia's ``obj_fn`` so)."""
  if METHODS[name].needs_value_fn:
    return functools.partial(update_fn, value_fn=obj_fn)
  return update_fn


@pytest.mark.parametrize("name", NAMES)
def test_optimizers_accept_extra_args(name):
  # (optax's `wrap` parameter only matters for its wrappers: adaptlr has none.)
  opt = _factory(name)(**_opt_kwargs(name))
  initial_params, _, objective = common._setup_rosenbrock(jnp.float32)

  @jax.jit
  def step(params, state):
    value, updates = jax.value_and_grad(objective)(params)
    update_kwargs = {"unexpected_extra_args_your_optimizer_doesnt_expect": 1}
    update_kwargs.update(_loss_kwargs(name, value, objective))
    updates, state = opt.update(updates, state, params, **update_kwargs)
    params = update.apply_updates(params, updates)
    return params, state

  params = initial_params
  state = opt.init(params)
  for _ in range(2):
    params, state = step(params, state)

  params = initial_params
  state = opt.init(params)
  params, state = step(params, state)
  with test_utils.log_compilations() as compilation_logs:
    _ = step(params, state)
  assert not compilation_logs, 'Optimizer recompiles on second call to "update".'


@pytest.mark.parametrize("target", sorted(_TARGETS))
@pytest.mark.parametrize("name", NAMES)
def test_optimizers(name, target):
  dtype = jnp.dtype("float32")
  opt = _factory(name)(**_opt_kwargs(name))  # every method at its defaults
  initial_params, final_params, obj_fn = _TARGETS[target](dtype)

  @jax.jit
  def step(params, state):
    value, updates = jax.value_and_grad(obj_fn)(params)
    update_kwargs = _loss_kwargs(name, value, obj_fn)
    updates, state = opt.update(updates, state, params, **update_kwargs)
    params = update.apply_updates(params, updates)
    return params, state

  params = initial_params
  state = opt.init(params)
  # Test that tree_map_params works: a no-op change.
  state = optax.tree.map_params(opt, lambda v: v, state)

  def f(params_state, _):
    return step(*params_state), None

  (params, state), _ = jax.lax.scan(f, (params, state), length=30_000)
  test_utils.assert_trees_all_close(params, final_params, rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("name", NAMES)
def test_optimizers_can_be_wrapped_in_inject_hyperparams(name):
  factory = _factory(name)
  hparams = _opt_kwargs(name)
  opt = factory(**hparams)

  # optax's list of hyperparameters that cannot be injected: adaptlr's
  # methods have none of them, and need no static_args of their own.
  static_args = []
  for uninjectable_hparam in [
    "warmup_steps",
    "num_betas",
    "clip_value_fn",
    "ns_steps",
    "rank",
    "update_proj_gap",
  ]:
    if uninjectable_hparam in inspect.signature(factory).parameters.keys():
      static_args.append(uninjectable_hparam)
  static_args = tuple(static_args)
  opt_inject = _inject.inject_hyperparams(factory, static_args)(**hparams)

  params = [jnp.negative(jnp.ones((2, 3))), jnp.ones((2, 5, 2))]
  grads = [jnp.ones((2, 3)), jnp.negative(jnp.ones((2, 5, 2)))]

  # As optax does for sophia's obj_fn.
  obj_fn = lambda x: optax.tree.norm(x, squared=True)
  update_kwargs = _value_kwargs(name, jnp.array(1.0))
  update_fn = _bind_value_fn(name, opt.update, obj_fn)
  inject_update_fn = _bind_value_fn(name, opt_inject.update, obj_fn)

  state = jax.jit(opt.init)(params)
  updates, new_state = jax.jit(update_fn)(grads, state, params, **update_kwargs)

  state_inject = jax.jit(opt_inject.init)(params)
  updates_inject, new_state_inject = jax.jit(inject_update_fn)(
    grads, state_inject, params, **update_kwargs
  )

  test_utils.assert_trees_all_close(updates_inject, updates, rtol=1e-5)
  test_utils.assert_trees_all_close(new_state_inject.inner_state, new_state, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_preserve_dtype(name, dtype):
  dtype = jnp.dtype(dtype)
  opt = _factory(name)(**_opt_kwargs(name))
  fun = lambda x: jnp.sum(x**2)

  params = jnp.array([1.0, 2.0], dtype=dtype)
  value, grads = jax.value_and_grad(fun)(params)
  state = jax.jit(opt.init)(params)
  update_kwargs = _value_kwargs(name, value)
  update_fn = _bind_value_fn(name, opt.update, fun)
  updates, _ = jax.jit(update_fn)(grads, state, params, **update_kwargs)
  assert updates.dtype == params.dtype


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("name", NAMES)
def test_gradient_accumulation(name, dtype):
  dtype = jnp.dtype(dtype)
  opt = _factory(name)(**_opt_kwargs(name))
  fun = lambda x: jnp.sum(x**2)
  # As optax does for sophia: the loss is bound into update.
  update_fn = _bind_value_fn(name, opt.update, fun)
  opt = base.GradientTransformationExtraArgs(opt.init, update_fn)
  opt = _accumulation.MultiSteps(opt, every_k_schedule=4)

  params = jnp.array([1.0, 2.0], dtype=dtype)
  value, grads = jax.value_and_grad(fun)(params)
  state = jax.jit(opt.init)(params)
  update_kwargs = _value_kwargs(name, value)
  updates, _ = jax.jit(opt.update)(grads, state, params, **update_kwargs)
  test_utils.assert_trees_all_equal(updates, jnp.zeros_like(grads))


@pytest.mark.parametrize(
  "dtype",
  [jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64],
  ids=["float16", "bfloat16", "float32", "float64"],
)
@pytest.mark.parametrize("name", NAMES)
def test_state_shape_dtype_shard_stability(name, dtype):
  with utils.x64_precision(dtype in (jnp.float64, jnp.complex128)):
    opt = _factory(name)(**_opt_kwargs(name))
    initial_params, _, objective = common._setup_parabola(dtype)

    @jax.jit
    def step(params, state):
      value, updates = jax.value_and_grad(objective)(params)
      value = value.astype(
        jnp.float16 if dtype != jnp.float16 else jnp.bfloat16
      )  # confuse dtype intentionally
      update_kwargs = _loss_kwargs(name, value, objective)
      # defeat compiler optimization, use lax.cond to check for stability
      cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
      updates, state = jax.lax.cond(
        cond, lambda: opt.update(updates, state, params, **update_kwargs), lambda: (params, state)
      )
      params = update.apply_updates(params, updates)
      return params, state

    params = initial_params
    state = opt.init(params)
    for _ in range(2):
      params, new_state = step(params, state)
      assert jax.tree.leaves(params)[0].dtype == dtype
      cond = jax.random.randint(jax.random.key(0), (), 0, 2) == 0
      state = jax.lax.cond(
        cond,
        lambda: state,  # noqa: B023
        lambda: new_state,  # noqa: B023
      )


@pytest.mark.parametrize("name", NAMES)
def test_optimizers_accept_learning_rate_schedule_if_type_annotated_as_such(name):
  initial_params, _, obj_fn = common._setup_parabola(jnp.float32)
  opt_setup = _factory(name)
  opt_kwargs = _opt_kwargs(name)

  lr_arg = inspect.signature(opt_setup).parameters.get("learning_rate", None)
  if lr_arg is None or lr_arg.annotation not in (
    base.ScalarOrSchedule,
    base.Schedule,
    "ScalarOrSchedule",
    "base.ScalarOrSchedule",
    "optax.ScalarOrSchedule",
  ):
    pytest.skip("Optimizer doesn't accept a learning schedule.")
  opt_with_schedule = opt_setup(**dict(opt_kwargs, learning_rate=_schedule.constant_schedule(1e-3)))
  opt_with_lr = opt_setup(**dict(opt_kwargs, learning_rate=1e-3))

  def step(opt, params, state):
    value, updates = jax.value_and_grad(obj_fn)(params)
    update_kwargs = _loss_kwargs(name, value, obj_fn)
    updates, state = opt.update(updates, state, params, **update_kwargs)
    params = update.apply_updates(params, updates)
    return params, state

  params_with_schedule, params_with_lr = initial_params, initial_params
  state_with_schedule = opt_with_schedule.init(params_with_schedule)
  state_with_lr = opt_with_lr.init(params_with_lr)
  for _ in range(10):
    params_with_schedule, state_with_schedule = step(
      opt_with_schedule, params_with_schedule, state_with_schedule
    )
    params_with_lr, state_with_lr = step(opt_with_lr, params_with_lr, state_with_lr)
  test_utils.assert_trees_all_close(params_with_schedule, params_with_lr)


def test_port_covers_optax_contrib_tests():
  """Every test of optax's ContribTest has its port here (catches a new optax test)."""
  theirs = {n.rstrip("0123456789") for n in dir(common.ContribTest) if n.startswith("test_")}
  ours = {n for n in globals() if n.startswith("test_")}
  assert theirs <= ours, theirs - ours
