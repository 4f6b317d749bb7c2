"""adaptlr._granularity, _validate, _loss and _step: groups, reductions, validation, extra args."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptlr import _loss, _step, _validate
from adaptlr._granularity import Granularity, granularity_from, rate_dtype

PARAMS = {
  "dense": {"kernel": jnp.arange(6.0).reshape(2, 3), "bias": jnp.array([1.0, -2.0, 0.5])},
  "out": {"kernel": jnp.array([[3.0], [-1.0]])},
}
LABELS = {"dense": {"kernel": "w", "bias": "b"}, "out": "w"}  # a prefix for "out"


def _np(tree):
  return {k: np.asarray(v) for k, v in tree.items()}


def test_init_rates_structures():
  assert Granularity("global").init_rates(PARAMS, 0.1).shape == ()
  leaf = Granularity("leaf").init_rates(PARAMS, 0.1)
  assert jax.tree.structure(leaf) == jax.tree.structure(PARAMS)
  assert all(r.shape == () for r in jax.tree.leaves(leaf))
  elem = Granularity("element").init_rates(PARAMS, 0.1)
  assert jax.tree.map(jnp.shape, elem) == jax.tree.map(jnp.shape, PARAMS)
  lab = Granularity(LABELS).init_rates(PARAMS, 0.1)
  assert sorted(lab) == ["b", "w"]
  assert Granularity(lambda p: LABELS).init_rates(PARAMS, 0.1).keys() == lab.keys()


def test_grouped_vdot_matches_numpy():
  a = PARAMS
  b = jax.tree.map(lambda x: jnp.cos(x) + 0.5, PARAMS)
  leaves_a = [np.asarray(x) for x in jax.tree.leaves(a)]
  leaves_b = [np.asarray(x) for x in jax.tree.leaves(b)]
  per_leaf = [float(np.sum(x * y)) for x, y in zip(leaves_a, leaves_b)]
  np.testing.assert_allclose(Granularity("global").vdot(a, b), sum(per_leaf), rtol=1e-6)
  np.testing.assert_allclose(jax.tree.leaves(Granularity("leaf").vdot(a, b)), per_leaf, rtol=1e-6)
  # Leaves in order: dense/bias (b), dense/kernel (w), out/kernel (w).
  lab = Granularity(LABELS).vdot(a, b)
  np.testing.assert_allclose(
    [lab["b"], lab["w"]], [per_leaf[0], per_leaf[1] + per_leaf[2]], rtol=1e-6
  )
  elem = Granularity("element").vdot(a, b)
  for x, y, z in zip(leaves_a, leaves_b, jax.tree.leaves(elem)):
    np.testing.assert_allclose(z, x * y, rtol=1e-6)


def test_max_size_and_scale():
  g = Granularity(LABELS)
  np.testing.assert_allclose(g.max(PARAMS)["w"], 5.0)
  assert g.size(PARAMS) == {"b": 3, "w": 8}
  assert Granularity("global").size(PARAMS) == 11
  scaled = g.scale({"b": jnp.float32(2.0), "w": jnp.float32(-1.0)}, PARAMS)
  np.testing.assert_allclose(scaled["dense"]["bias"], 2.0 * PARAMS["dense"]["bias"])
  np.testing.assert_allclose(scaled["out"]["kernel"], -PARAMS["out"]["kernel"])


def test_reductions_accumulate_in_float32_for_bfloat16():
  x = {"w": jnp.full((4096,), 1.0 + 2**-8, jnp.bfloat16)}
  out = Granularity("global").vdot(x, x)
  assert out.dtype == jnp.float32
  np.testing.assert_allclose(out, 4096 * float(jnp.bfloat16(1.0 + 2**-8)) ** 2, rtol=1e-6)
  assert rate_dtype(x) == jnp.float32
  scaled = Granularity("global").scale(jnp.float32(0.5), x)
  assert scaled["w"].dtype == jnp.bfloat16


def test_bad_granularity_and_labels():
  with pytest.raises(ValueError, match="Unknown granularity 'layer'"):
    granularity_from("layer")
  with pytest.raises(ValueError, match="labels do not match"):
    Granularity({"dense": "w"}).init_rates(PARAMS, 0.1)


def test_validation_concrete_and_traced():
  with pytest.raises(ValueError, match="learning_rate must be positive"):
    _validate.positive("learning_rate", -1.0)
  with pytest.raises(ValueError, match="non-negative"):
    _validate.positive("beta", -1e-3, allow_zero=True)
  _validate.positive("beta", 0.0, allow_zero=True)
  with pytest.raises(ValueError, match="positive"):
    _validate.positive("learning_rate", float("nan"))
  jax.jit(lambda v: _validate.positive("learning_rate", v) or v)(-1.0)  # traced: passes
  with pytest.raises(ValueError, match=r"lie in \[0, 1\)"):
    _validate.in_range("momentum", 1.0, 0, 1, high_open=True)
  assert _validate.integer("k", np.int64(3)) == 3
  for bad in (0, 2.5, True, "3"):
    with pytest.raises(ValueError, match="k must be an integer"):
      _validate.integer("k", bad)
  with pytest.raises(ValueError, match="static_args"):
    jax.jit(lambda v: _validate.integer("k", v))(3)


def test_value_fn_kwargs_forwarding():
  def loss(params, x, *, y=0.0):
    return jnp.sum(params * x) + y

  extra = {"value": 1.0, "grad": 2.0, "value_fn": loss, "x": 3.0, "y": 4.0, "other": 5.0}
  assert _loss.value_fn_kwargs(loss, extra) == {"x": 3.0, "y": 4.0}
  fn = _loss.get_value_fn(extra, "m")
  assert float(fn(jnp.float32(2.0))) == 10.0
  var = lambda params, **kw: params + kw["x"]
  assert set(_loss.value_fn_kwargs(var, extra)) == {"x", "y", "other"}
  with pytest.raises(ValueError, match="value_fn=loss_fn"):
    _loss.get_value_fn({"x": 1.0}, "newton_lr")
  with pytest.raises(ValueError, match="value_and_grad"):
    _loss.get_value({}, "probabilistic_lr")


def test_skip_if_not_finite_keeps_state():
  from typing import NamedTuple

  class S(NamedTuple):
    learning_rate: jax.Array
    skipped: jax.Array

  old, new = S(jnp.float32(0.1), jnp.int32(0)), S(jnp.float32(jnp.nan), jnp.int32(0))
  upd, st = _step.skip_if_not_finite(jnp.asarray(False), {"w": jnp.array([jnp.nan, 1.0])}, new, old)
  np.testing.assert_array_equal(upd["w"], [0.0, 0.0])
  assert float(st.learning_rate) == np.float32(0.1) and int(st.skipped) == 1
  assert not bool(_step.tree_all_finite({"a": jnp.array([1.0, jnp.inf])}))
  assert bool(_step.tree_all_finite({"a": jnp.arange(3)}, None))
