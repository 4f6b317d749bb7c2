"""Diagonal curvature estimators and Hessian-vector products (adaptlr.curvature).

Each estimator is checked on quadratics whose Hessian is known: exact where the
docstring says exact, unbiased (Monte-Carlo mean within a CLT bound) where it
says unbiased.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _problems import flat

from adaptlr import curvature as _curvature


def _dense_quadratic(seed=0, d=7):
  """A random symmetric indefinite H, split over a pytree {"a": (3,), "b": (2, 2)}."""
  rng = np.random.default_rng(seed)
  m = rng.normal(size=(d, d))
  h = (m + m.T) / 2
  b = rng.normal(size=d)

  def unflat(v):
    return {"a": v[:3], "b": v[3:].reshape(2, 2)}

  def loss(p):
    v = jnp.concatenate([p["a"], p["b"].ravel()])
    return 0.5 * v @ jnp.asarray(h) @ v + jnp.asarray(b) @ v

  return h, loss, unflat


def test_hvp_is_exact_on_a_dense_quadratic():
  with jax.enable_x64(True):
    h, loss, unflat = _dense_quadratic()
    rng = np.random.default_rng(1)
    w, v = rng.normal(size=7), rng.normal(size=7)
    got = _curvature.hvp(loss, unflat(jnp.asarray(w)), unflat(jnp.asarray(v)))
    np.testing.assert_allclose(flat(got), h @ v, rtol=1e-12)
    g, hv = _curvature.grad_and_hvp(loss, unflat(jnp.asarray(w)), unflat(jnp.asarray(v)))
    np.testing.assert_allclose(flat(g), flat(jax.grad(loss)(unflat(jnp.asarray(w)))), rtol=1e-12)
    np.testing.assert_allclose(flat(hv), h @ v, rtol=1e-12)


def test_rademacher_signs():
  params = {"w": jnp.zeros((37, 5)), "b": jnp.zeros(3, jnp.bfloat16), "s": jnp.zeros(())}
  z = jax.jit(_curvature.rademacher_like)(jax.random.PRNGKey(0), params)
  assert jax.tree.map(lambda x: (x.shape, x.dtype), z) == jax.tree.map(
    lambda x: (x.shape, x.dtype), params
  )
  values = np.concatenate([np.asarray(x, np.float32).ravel() for x in jax.tree.leaves(z)])
  assert set(np.unique(values)) == {-1.0, 1.0}
  big = _curvature.rademacher_like(jax.random.PRNGKey(1), jnp.zeros(20000))
  assert abs(float(jnp.mean(big))) < 4 / np.sqrt(20000)  # balanced
  # Neighbouring signs (same 32-bit word) are uncorrelated.
  assert abs(float(jnp.mean(big[1:] * big[:-1]))) < 4 / np.sqrt(20000)
  other = _curvature.rademacher_like(jax.random.PRNGKey(2), jnp.zeros(20000))
  assert abs(float(jnp.mean(big * other))) < 4 / np.sqrt(20000)


def test_hutchinson_exact_for_a_diagonal_hessian():
  h = {"w": jnp.linspace(-2.0, 3.0, 12).reshape(3, 4), "b": jnp.array([0.5, 7.0])}
  loss = lambda p: sum(
    jnp.sum(0.5 * hh * x**2 + x) for hh, x in zip(jax.tree.leaves(h), jax.tree.leaves(p))
  )
  params = {"w": jnp.ones((3, 4)), "b": jnp.array([2.0, -1.0])}
  est_fn = jax.jit(
    lambda k, a: _curvature.hutchinson_diagonal(loss, params, k, absolute=a), static_argnums=1
  )
  for seed in range(3):
    est = est_fn(jax.random.PRNGKey(seed), True)
    np.testing.assert_allclose(flat(est), np.abs(flat(h)), rtol=1e-6)
    signed = est_fn(jax.random.PRNGKey(seed), False)
    np.testing.assert_allclose(flat(signed), flat(h), rtol=1e-6)


def test_hutchinson_unbiased_for_a_dense_hessian():
  with jax.enable_x64(True):
    h, loss, unflat = _dense_quadratic(seed=3)
    w = unflat(jnp.asarray(np.random.default_rng(0).normal(size=7)))
    keys = jax.random.split(jax.random.PRNGKey(0), 4000)
    draws = jax.jit(
      jax.vmap(lambda k: flat_jnp(_curvature.hutchinson_diagonal(loss, w, k, absolute=False)))
    )(keys)
    draws = np.asarray(draws)
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(mean - np.diag(h)) < 4 * se + 1e-12)
    # |z ⊙ Hz| errs on the large side: its mean bounds |H_ii| from above.
    absolute = np.abs(draws).mean(0)
    assert np.all(absolute >= np.abs(np.diag(h)) - 4 * se)
    assert np.any(absolute > np.abs(np.diag(h)) + 4 * se)


def flat_jnp(tree):
  return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(tree)])


def test_finite_difference_exact_for_a_diagonal_quadratic():
  with jax.enable_x64(True):
    hd = np.array([1.0, 2.0, 3.0, 0.5, 4.0, 1.5, 2.5])
    c = np.linspace(-1, 1, 7)
    loss = lambda p: 0.5 * jnp.sum(jnp.asarray(hd) * (flat_jnp(p) - jnp.asarray(c)) ** 2)
    params = {"a": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array([[1.0, 0.3], [-0.7, 0.2]])}
    grad = jax.grad(loss)(params)
    for scale in (1e-3, 1.0, 30.0):  # any step: the secant is the slope
      wave = lambda x, scale=scale: scale * jnp.cos(jnp.arange(x.size).reshape(x.shape) + 1.0)
      delta = jax.tree.map(wave, params)
      est = _curvature.finite_difference_diagonal(loss, params, grad, delta)
      np.testing.assert_allclose(flat(est), hd, rtol=1e-9)


def test_finite_difference_secant_and_fallback():
  loss = lambda w: jnp.sum(w**4)  # separable: secant slope per element
  w = jnp.array([1.0, -2.0, 1e4, 0.5])
  delta = jnp.array([0.5, 0.1, 1e-6, 0.0])  # 1e4 + 1e-6 == 1e4 in float32
  fallback = jnp.array([-1.0, -1.0, 42.0, 7.0])
  est = _curvature.finite_difference_diagonal(loss, w, jax.grad(loss)(w), delta, fallback)
  secant = lambda a, d: abs(4 * (a + d) ** 3 - 4 * a**3) / d
  np.testing.assert_allclose(np.asarray(est)[:2], [secant(1.0, 0.5), secant(-2.0, 0.1)], rtol=1e-4)
  np.testing.assert_array_equal(np.asarray(est)[2:], [42.0, 7.0])  # no 0 or inf


def _softmax_problem(seed=0, n=5, d=3, k=4):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(n, d)))
  params = {"w": jnp.asarray(rng.normal(size=(d, k))), "b": jnp.asarray(rng.normal(size=k))}
  logits_fn = lambda p: jnp.tanh(x @ p["w"]) * 2.0 + p["b"]  # non-linear in w
  return params, logits_fn, n


def _exact_gauss_newton_diagonal(params, logits_fn, n):
  z = logits_fn(params)
  p = jax.nn.softmax(z, axis=-1)
  jac = jax.jacobian(logits_fn)(params)  # leaves (n, k, *shape)
  out = {}
  for name, j in jac.items():
    jf = j.reshape(j.shape[0], j.shape[1], -1)  # (n, k, P)
    hess_out = jax.vmap(lambda q: jnp.diag(q) - jnp.outer(q, q))(p)
    g = jnp.einsum("nkp,nkl,nlp->p", jf, hess_out, jf) / n
    out[name] = g.reshape(params[name].shape)
  return out


def test_softmax_gauss_newton_diagonal_is_unbiased():
  with jax.enable_x64(True):
    params, logits_fn, n = _softmax_problem()
    exact = flat(jax.jit(lambda p: _exact_gauss_newton_diagonal(p, logits_fn, n))(params))
    keys = jax.random.split(jax.random.PRNGKey(0), 6000)
    draws = np.asarray(
      jax.jit(
        jax.vmap(lambda k: flat_jnp(_curvature.softmax_gauss_newton_diagonal(logits_fn, params, k)))
      )(keys)
    )
    assert np.all(draws >= 0)
    mean, se = draws.mean(0), draws.std(0) / np.sqrt(len(draws))
    assert np.all(np.abs(mean - exact) < 4.5 * se + 1e-12), (mean, exact)


def test_softmax_gauss_newton_equals_hessian_for_a_linear_model():
  with jax.enable_x64(True):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = jnp.asarray(rng.integers(0, 4, size=6))
    params = {"w": jnp.asarray(rng.normal(size=(3, 4))), "b": jnp.zeros(4)}
    logits_fn = lambda p: x @ p["w"] + p["b"]
    loss = lambda p: jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits_fn(p), y))
    exact = flat(jax.jit(lambda p: _exact_gauss_newton_diagonal(p, logits_fn, 6))(params))
    hess = jax.jit(jax.hessian(lambda v: loss({"b": v[:4], "w": v[4:].reshape(3, 4)})))(
      jnp.concatenate([params["b"], params["w"].ravel()])
    )
    np.testing.assert_allclose(exact, np.diag(hess), rtol=1e-10)


@pytest.mark.parametrize("estimator", ["hutchinson", "finite_difference"])
def test_estimators_jit_and_keep_dtypes(estimator):
  params = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": jnp.ones(2, jnp.float32)}
  loss = lambda p: jnp.sum(p["w"].astype(jnp.float32) ** 2) + jnp.sum(3.0 * p["b"] ** 2)

  @jax.jit
  def est(p):
    if estimator == "hutchinson":
      return _curvature.hutchinson_diagonal(loss, p, jax.random.PRNGKey(0))
    g = jax.grad(loss)(p)
    return _curvature.finite_difference_diagonal(loss, p, g, g)

  out = est(params)
  assert out["w"].dtype == jnp.bfloat16 and out["b"].dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out["w"], np.float32), 2.0, rtol=1e-2)
  np.testing.assert_allclose(np.asarray(out["b"]), 6.0, rtol=1e-6)
