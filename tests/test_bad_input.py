"""Bad input never reaches the training loop (docs/options.md, "Bad input").

Property-based (Hypothesis) over every option of every registered method, read
from the signatures: any value either raises ``TypeError``/``ValueError`` when
the optimizer is built (or, for what needs the params, such as granularity labels,
when it is first traced), with a message that names the option, or the method runs
5 jitted steps on a small problem with finite params and finite learned rates.
Traced values (a ``jax.vmap`` sweep with bad entries) never corrupt the other runs.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import adaptlr
from adaptlr.registry import METHODS

# Options that need a companion to run at all (the tests pass them; each is validated too).
_BASE = {"vsgd": {"init_samples": 2}}
_SETTINGS = settings(
  max_examples=20,
  derandomize=True,  # a fixed seed: the same examples on every run
  deadline=None,
  suppress_health_check=list(HealthCheck),
  database=None,
)

_BAD_VALUES = [
  float("nan"),
  float("inf"),
  float("-inf"),
  0,
  0.0,
  -1.0,
  -1,
  1e30,
  1e-30,
  1e300,
  None,
  "x",
  "",
  True,
  [0.1, 0.2],
  (1, 2),
  {"a": 1.0},
  np.ones(3, np.float32),
  np.array([1, 2]),
  np.array(0.5 + 1j),
  jnp.ones((2, 2)),
  optax.constant_schedule(0.1),
  optax.linear_schedule(1.0, float("nan"), 10),
  object(),
]


_VALUES = st.one_of(
  st.sampled_from(_BAD_VALUES),
  st.floats(allow_nan=True, allow_infinity=True, width=64),
  st.integers(-(10**6), 10**6),
  st.text(max_size=4),
  st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=3),
)


def _options(name):
  return sorted(inspect.signature(METHODS[name].scale_by).parameters)


def _params():
  return {"w": jnp.array([1.0, -2.0, 0.5], jnp.float32), "b": jnp.array(0.3, jnp.float32)}


def _loss(params, x, y):
  pred = x @ params["w"] + params["b"]
  return jnp.mean((pred - y) ** 2)


_X = jnp.array([[1.0, 0.0, 2.0], [0.0, 1.0, -1.0], [1.0, 1.0, 1.0], [2.0, -1.0, 0.0]])
_Y = jnp.array([1.0, -1.0, 0.5, 2.0])


def _run(opt, params, steps=5):
  """5 jitted steps with every extra arg a method may read; the params and the state."""

  @jax.jit
  def step(params, state):
    value, grads = jax.value_and_grad(_loss)(params, _X, _Y)
    updates, state = opt.update(
      grads, state, params, value=value, grad=grads, value_fn=_loss, x=_X, y=_Y
    )
    return optax.apply_updates(params, updates), state

  state = opt.init(params)
  for _ in range(steps):
    params, state = step(params, state)
  return params, state


def _all_finite(tree):
  leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]
  return all(np.all(np.isfinite(x)) for x in leaves if x.dtype.kind == "f")


def _build_or_run(name, option, value):
  spec = METHODS[name]
  kwargs = {**_BASE.get(name, {}), option: value}
  try:  # built, then traced: an option that needs the params (labels) is checked then
    params, state = _run(spec.optimizer(**kwargs), _params())
  except (TypeError, ValueError) as e:
    assert option in str(e), f"{name}({option}={value!r}) raised without naming it: {e}"
    return "raised"
  assert _all_finite(params), f"{name}({option}={value!r}): non-finite params {params}"
  assert _all_finite(adaptlr.learning_rate(state)), f"{name}({option}={value!r}): rates"
  return "ran"


@pytest.mark.filterwarnings("ignore:newton_lr. momentum= is renamed:DeprecationWarning")
@pytest.mark.parametrize("name", sorted(METHODS))
def test_any_option_value_raises_or_trains(name):
  options = _options(name)

  @_SETTINGS
  @given(option=st.sampled_from(options), value=_VALUES)
  def check(option, value):
    _build_or_run(name, option, value)

  check()


# The 13 cases that slipped through before: each raised nothing when the optimizer was built.
_SLIPPED = [(m, "learning_rate", float("inf")) for m in ("tlr", "smd", "almeida")]
_SLIPPED += [(m, "min_learning_rate", float("inf")) for m in ("tlr", "smd", "almeida")]
_SLIPPED += [(m, "learning_rate", None) for m in sorted(METHODS)]


@pytest.mark.parametrize(
  "name,option,value", _SLIPPED, ids=[f"{m}-{o}-{v}" for m, o, v in _SLIPPED]
)
def test_cases_that_slipped_through_raise_when_built(name, option, value):
  with pytest.raises((TypeError, ValueError), match=option):
    METHODS[name].optimizer(**{**_BASE.get(name, {}), option: value})


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16], ids=["float16", "bfloat16"])
def test_params_of_any_float_dtype_and_empty_and_int_leaves(name, dtype):
  """Half-precision params, an empty leaf and an integer leaf (a step counter kept in the
  params, whose gradient is zero): finite params and rates, the int leaf untouched."""
  spec = METHODS[name]
  opt = spec.optimizer(**_BASE.get(name, {}))
  params = {
    "w": jnp.array([1.0, -2.0, 0.5], dtype),
    "b": jnp.array(0.3, dtype),
    "empty": jnp.zeros((0,), dtype),
    "n": jnp.array(7, jnp.int32),
  }

  def loss(p, x, y):
    pred = x.astype(dtype) @ p["w"] + p["b"] + jnp.sum(p["empty"])
    return jnp.mean((pred.astype(jnp.float32) - y) ** 2)

  @jax.jit
  def step(p, state):
    value, grads = jax.value_and_grad(loss, allow_int=True)(p, _X, _Y)
    grads = {**grads, "n": jnp.zeros((), jnp.int32)}  # float0 -> a zero int gradient
    updates, state = opt.update(grads, state, p, value=value, value_fn=loss, x=_X, y=_Y)
    return optax.apply_updates(p, updates), state

  state = opt.init(params)
  for _ in range(5):
    params, state = step(params, state)
  assert params["w"].dtype == dtype and params["n"].dtype == jnp.int32
  assert int(params["n"]) == 7
  assert _all_finite(params) and _all_finite(adaptlr.learning_rate(state))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_vmap_sweep_with_bad_entries_keeps_the_good_runs(name):
  """A traced learning_rate that is NaN, ±inf, 0 or negative: that run stays finite (it
  starts at the floor, min_learning_rate = 0, and is skipped or clamped from there),
  and the good run equals the same run made alone."""
  spec = METHODS[name]
  make = lambda lr: spec.optimizer(learning_rate=lr, **_BASE.get(name, {}))
  good = 0.05

  def run(lr):
    return _run(make(lr), _params())[0]

  rates = jnp.array([good, jnp.nan, jnp.inf, -jnp.inf, 0.0, -1.0], jnp.float32)
  swept = jax.vmap(run)(rates)
  assert _all_finite(swept), swept
  alone = run(good)
  for k in alone:
    np.testing.assert_allclose(swept[k][0], alone[k], rtol=1e-6, atol=1e-7)
