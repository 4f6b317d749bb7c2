"""adaptlr.probes: batched loss probes along a line, per-group lines, jvp derivatives."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _problems import REF, flat, ref_loss, ref_params

from adaptlr import probes as _probes
from adaptlr._granularity import granularity_from


def _mlp():
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {
    "w1": jax.random.normal(k1, (6, 16)) * 0.5,
    "b1": jnp.zeros(16),
    "w2": jax.random.normal(k2, (16, 3)) * 0.5,
  }
  x = jax.random.normal(k3, (32, 6))
  y = jnp.arange(32) % 3

  def loss(p, x, y):
    h = jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"]
    return -jnp.mean(jax.nn.log_softmax(h)[jnp.arange(len(y)), y])

  u = jax.grad(loss)(params, x, y)
  return loss, params, u, x, y


@pytest.mark.parametrize(
  "offsets", [_probes.FIVE_POINT, pytest.param((-3.0, 0.5, 2.0), marks=pytest.mark.slow)]
)
def test_vmap_equals_map_equals_unroll_equals_sequential(offsets):
  loss, params, u, x, y = _mlp()
  fn = lambda p: loss(p, x=x, y=y)
  eta, eps = 0.3, 0.05
  jfn = jax.jit(lambda p, u, e: fn(jax.tree.map(lambda w, d: w - e * d, p, u)))
  sequential = np.array([float(jfn(params, u, eta + k * eps)) for k in offsets])
  for mode, batch_size in [("vmap", None), ("map", None), ("map", 2), ("unroll", None)]:
    probe = functools.partial(_probes.line_probes, fn, mode=mode, batch_size=batch_size)
    got = jax.jit(lambda p, u, probe=probe: probe(p, u, eta, eps, offsets))(params, u)
    assert got.shape == (len(offsets),)
    np.testing.assert_allclose(np.asarray(got), sequential, rtol=2e-6, err_msg=mode)


def test_vmap_mode_is_one_batched_call_and_map_is_a_loop():
  """vmap: the model's matmuls appear once, batched; map: a loop; unroll: K calls."""
  loss, params, u, x, y = _mlp()
  fn = lambda p: loss(p, x, y)

  def count(mode):
    jaxpr = jax.make_jaxpr(lambda p, u: _probes.line_probes(fn, p, u, 0.1, 0.01, mode=mode))(
      params, u
    )
    text = str(jaxpr)
    return text.count("dot_general"), ("while" in text) or ("scan" in text)

  dots_vmap, loop_vmap = count("vmap")
  dots_map, loop_map = count("map")
  dots_unroll, loop_unroll = count("unroll")
  assert dots_vmap == 2 and not loop_vmap  # two layers, each one batched matmul
  assert dots_map == 2 and loop_map  # the same two, inside a loop
  assert dots_unroll == 10 and not loop_unroll  # five separate forward passes


def test_line_probes_forward_kwargs_under_vmap_of_rates():
  """Probes work under an outer jax.vmap over η (hyperparameter sweeps)."""
  loss, params, u, x, y = _mlp()
  fn = lambda p: loss(p, x, y)
  etas = jnp.array([0.1, 0.2])
  probe = jax.jit(lambda e: _probes.line_probes(fn, params, u, e, 0.1 * e))
  batched = jax.jit(jax.vmap(probe))(etas)
  for i, e in enumerate(etas):
    np.testing.assert_allclose(batched[i], probe(e), rtol=1e-6)


def test_bad_mode_raises():
  with pytest.raises(ValueError, match="mode"):
    _probes.evaluate_batched(jnp.sin, jnp.ones(3), mode="pmap")


def _ref_line(granularity, rates_flat, w, u, s):
  ids = REF.group_ids(granularity)
  return lambda r: REF.loss(w - r[ids] * u, s)


@pytest.mark.parametrize("granularity", ["global", "leaf", "labels"])
@pytest.mark.parametrize("mode", ["vmap", "map"])
def test_group_probes_and_derivatives_match_numpy(granularity, mode):
  """Row j moves group j's rate alone; exact ∂_j F, ∂²_jj F of the separable REF loss."""
  spec = {"leaf": "leaf", "global": "global", "labels": {"a": "x", "b": "y"}}[granularity]
  groups = granularity_from(spec)
  with jax.enable_x64(True):
    params = ref_params()
    s = 0.05
    value_fn = lambda p: ref_loss(p, s)
    u = jax.grad(value_fn)(params)
    rates = groups.init_rates(params, 0.0)
    rates = jax.tree.map(lambda r: r + 0.1, rates)
    flat_rates = jax.flatten_util.ravel_pytree(rates)[0]
    if groups.kind == "leaf":
      rates = {"a": rates["a"], "b": rates["b"] * 2}
      flat_rates = jax.flatten_util.ravel_pytree(rates)[0]
    eps = jax.tree.map(lambda r: 0.25 * r, rates)
    offsets = (-2, -1, 0, 1, 2)
    probes = jax.jit(
      lambda p, u, r, e: _probes.group_line_probes(
        value_fn, p, u, r, e, groups.broadcast, offsets, mode=mode
      )
    )(params, u, rates, eps)
    value, slopes, curvatures = jax.jit(
      lambda p, u, r: _probes.group_line_derivatives(value_fn, p, u, r, groups.broadcast, mode=mode)
    )(params, u, rates)
    w, uf, r0 = flat(params), flat(u), np.asarray(flat_rates)
    ids = REF.group_ids(granularity)
    F = lambda r: REF.loss(w - r[ids] * uf, s)
    expected = np.array(
      [[F(r0 + k * 0.25 * r0[j] * np.eye(len(r0))[j]) for k in offsets] for j in range(len(r0))]
    )
    np.testing.assert_allclose(np.asarray(probes), expected, rtol=1e-12)
    p = w - r0[ids] * uf
    d1 = -np.bincount(ids, REF.grad(p, s) * uf)
    d2 = np.bincount(ids, REF.hess_diag(p, s) * uf * uf)
    np.testing.assert_allclose(float(value), F(r0), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.flatten_util.ravel_pytree(slopes)[0]), d1, rtol=1e-10)
    np.testing.assert_allclose(
      np.asarray(jax.flatten_util.ravel_pytree(curvatures)[0]), d2, rtol=1e-10
    )


def test_line_derivatives_exact_on_a_quadratic():
  with jax.enable_x64(True):
    a = jnp.array([1.0, 3.0])
    loss = lambda w: 0.5 * jnp.sum(a * w**2)
    w = jnp.array([1.0, -2.0])
    u = jax.grad(loss)(w)
    f, d1, d2 = _probes.line_derivatives(loss, w, u, 0.2)
    np.testing.assert_allclose(float(d1), -float(jnp.sum(a * (w - 0.2 * u) * u)))
    np.testing.assert_allclose(float(d2), float(jnp.sum(a * u * u)))
    np.testing.assert_allclose(float(f), float(loss(w - 0.2 * u)))
