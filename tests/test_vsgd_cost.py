"""vSGD's cost (issue 13): the sampled Gauss-Newton curvature, the curvature refresh schedule
(``curvature_every``) and the fused per-element rule, each against an independent NumPy reading."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptlr
from adaptlr import curvature as _curvature


# ------------------------------------------------------ sampled Gauss-Newton diagonal --
def _softmax_regression(seed=0, n=6, d=3, k=4):
  rng = np.random.RandomState(seed)
  x = rng.normal(size=(n, d))
  params = {"w": rng.normal(size=(d, k)), "b": rng.normal(size=k)}
  return x, params


def _gn_diagonal_numpy(x, params):
  """diag of G = (1/N) Σ_n J_nᵀ (diag p_n − p_n p_nᵀ) J_n for logits x W + b, in closed
  form: ∂z_nk/∂W_dk = x_nd, so G_(dk),(dk) = (1/N) Σ_n x_nd² p_nk (1 − p_nk); b: the mean
  of p_nk (1 − p_nk)."""
  z = x @ params["w"] + params["b"]
  p = np.exp(z - z.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  q = p * (1 - p)
  return {"w": (x * x).T @ q / len(x), "b": q.mean(0)}


def test_sampled_gauss_newton_expectation_is_the_gn_diagonal():
  x, params_np = _softmax_regression()
  params = jax.tree.map(jnp.asarray, params_np)
  logits = lambda p: jnp.asarray(x) @ p["w"] + p["b"]
  draws = jax.jit(jax.vmap(lambda k: _curvature.softmax_gauss_newton_diagonal(logits, params, k)))(
    jax.random.split(jax.random.key(0), 20000)
  )
  want = _gn_diagonal_numpy(x, params_np)
  for name in ("w", "b"):
    d = np.asarray(draws[name], np.float64)
    assert np.all(d >= 0)
    se = d.std(0) / np.sqrt(len(d))
    np.testing.assert_array_less(np.abs(d.mean(0) - want[name]), 5 * se + 1e-12)


def test_sampled_gauss_newton_is_one_forward_pass():
  x, params_np = _softmax_regression()
  calls = []

  def logits(p):
    calls.append(1)
    return jnp.asarray(x) @ p["w"] + p["b"]

  jax.make_jaxpr(lambda p: _curvature.softmax_gauss_newton_diagonal(logits, p, jax.random.key(1)))(
    jax.tree.map(jnp.asarray, params_np)
  )
  assert len(calls) == 1


def test_vsgd_gauss_newton_uses_logits_fn_and_says_what_to_pass():
  x, params_np = _softmax_regression()
  y = jnp.array([0, 1, 2, 3, 0, 1])
  params = jax.tree.map(jnp.asarray, params_np)
  logits_fn = lambda p, x, y: jnp.asarray(x) @ p["w"] + p["b"]
  loss = lambda p, x, y: jnp.mean(
    optax.softmax_cross_entropy_with_integer_labels(logits_fn(p, x, y), y)
  )
  opt = adaptlr.vsgd(curvature="gauss_newton", curvature_every=1, init_samples=2)
  state = opt.init(params)
  with pytest.raises(ValueError, match="logits_fn"):
    opt.update(jax.grad(loss)(params, x, y), state, params, value_fn=loss, x=x, y=y)
  _, state = opt.update(
    jax.grad(loss)(params, x, y), state, params, value_fn=loss, logits_fn=logits_fn, x=x, y=y
  )
  # The first slow-start sample is h̄ itself: one sampled-label draw with the state's key.
  _, sub = jax.random.split(jax.random.PRNGKey(0))
  want = _curvature.softmax_gauss_newton_diagonal(lambda p: logits_fn(p, x, y), params, sub)
  for a, b in zip(jax.tree.leaves(state[0].curv_avg), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=1e-6)


# -------------------------------------------------------------- refresh schedule --
@pytest.mark.parametrize("k,n0", [(1, 3), pytest.param(3, 2, marks=pytest.mark.slow), (4, 3)])
def test_curvature_every_is_the_documented_schedule(k, n0):
  """With curvature="given" the step-t sample is t + 1 everywhere: h̄ tells which steps
  sampled and with which weight (independent NumPy reading of the documented rule)."""
  params = {"a": jnp.array([0.3, -0.2]), "b": jnp.array([[0.1]])}
  opt = adaptlr.scale_by_vsgd(curvature="given", curvature_every=k, init_samples=n0)
  state = opt.init(params)
  hbar, refreshed = 0.0, []
  for t in range(14):
    g = jax.tree.map(
      lambda p, t=t: p + 0.05 * np.sin(t + jnp.arange(p.size).reshape(p.shape)), params
    )
    tau_before = np.asarray(state.tau["a"])
    _, state = opt.update(
      g, state, params, curvature=jax.tree.map(lambda p, t=t: jnp.full_like(p, t + 1.0), params)
    )
    warm = t < n0
    refresh = warm or (t - n0) % k == 0
    if refresh:
      w = (
        1 / (t + 1)
        if warm
        else (1 / tau_before if k == 1 else np.minimum(0.5, 1 - (1 - 1 / tau_before) ** k))
      )
      hbar = (1 - w) * hbar + w * (t + 1.0)
      refreshed.append(t)
    np.testing.assert_allclose(np.asarray(state.curv_avg["a"]), hbar, rtol=1e-5)
  assert refreshed == [t for t in range(14) if t < n0 or (t - n0) % k == 0]


def test_bad_curvature_every():
  with pytest.raises(ValueError, match="curvature_every"):
    adaptlr.vsgd(curvature_every=0)


def test_element_whose_square_overflows_keeps_its_statistics():
  """vSGD-l reads finiteness off Σ g; an element with a finite g whose g² overflows
  (float32) keeps its averages and takes no step, the others update."""
  params = jnp.array([1.0, -2.0, 0.5])
  opt = adaptlr.scale_by_vsgd(curvature="given", init_samples=2)
  state = opt.init(params)
  for t in range(3):
    g = jnp.array([0.3, -0.1, 0.2]) * (1 + 0.1 * t)
    _, state = opt.update(g, state, params, curvature=jnp.ones(3))
  before = state
  u, state = opt.update(jnp.array([0.3, 1e30, 0.2]), state, params, curvature=jnp.ones(3))
  assert int(state.count) == int(before.count) + 1 and int(state.skipped) == 0
  assert float(u[1]) == 0.0 and np.all(np.isfinite(np.asarray(u)))
  for field in ("grad_avg", "sq_avg", "tau", "learning_rate"):
    new, old = np.asarray(getattr(state, field)), np.asarray(getattr(before, field))
    assert new[1] == old[1], field
    assert np.all(np.isfinite(new)), field
  assert not np.allclose(np.asarray(state.grad_avg)[[0, 2]], np.asarray(before.grad_avg)[[0, 2]])
