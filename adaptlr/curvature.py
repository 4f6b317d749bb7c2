"""Diagonal curvature and Hessian-vector products, shared by vsgd and smd.

For a loss ``L`` (``value_fn`` with its forwarded kwargs) at params ``w``:

* :func:`hvp`: H v by forward-over-reverse autodiff, exact, no step (SMD's Hv,
  Schaul et al. 2013 App. C).
* :func:`hutchinson_diagonal`: z ⊙ Hz with Rademacher z; E[z ⊙ Hz] = diag(H).
* :func:`finite_difference_diagonal`: |(∇L(w + δ) − ∇L(w)) / δ| on the same
  batch (vSGD-fd, Schaul & LeCun 2013).
* :func:`softmax_gauss_newton_diagonal`: an unbiased Gauss-Newton diagonal of a
  softmax cross-entropy (Sophia's estimator, Liu et al. 2023).

All take and return pytrees shaped like the params, in the params' dtypes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ESTIMATORS = ("hutchinson", "finite_difference", "gauss_newton", "given")


def grad_and_hvp(value_fn: Callable[[Any], jax.Array], params: Any, v: Any) -> tuple[Any, Any]:
  """(∇L(w), H v) in one forward-over-reverse pass (``jax.jvp`` of ``jax.grad``).

  Integer leaves (counters, ids) are constants: their gradient and H v are
  zeros of their dtype, as optax's transformations take them.
  """
  inexact = lambda p: jnp.issubdtype(jnp.asarray(p).dtype, jnp.inexact)
  v = jax.tree.map(
    lambda p, t: (
      jnp.asarray(t).astype(jnp.asarray(p).dtype)
      if inexact(p)
      else np.zeros(jnp.shape(p), jax.dtypes.float0)
    ),
    params,
    v,
  )
  g, hv = jax.jvp(jax.grad(value_fn, allow_int=True), (params,), (v,))
  fix = lambda p, x: x if inexact(p) else jnp.zeros(jnp.shape(p), jnp.asarray(p).dtype)
  return jax.tree.map(fix, params, g), jax.tree.map(fix, params, hv)


def hvp(value_fn: Callable[[Any], jax.Array], params: Any, v: Any) -> Any:
  """The Hessian-vector product H v at ``params`` (exact, forward-over-reverse).

  Example:
    >>> import jax.numpy as jnp
    >>> loss = lambda w: 0.5 * w @ jnp.array([[2.0, 1.0], [1.0, 3.0]]) @ w
    >>> hvp(loss, jnp.zeros(2), jnp.array([1.0, 0.0])).tolist()
    [2.0, 1.0]
  """
  return grad_and_hvp(value_fn, params, v)[1]


def rademacher_like(key: jax.Array, params: Any) -> Any:
  """A pytree of independent ±1 entries shaped and typed like ``params``.

  One random 32-bit word gives 32 signs: ``jax.random.rademacher`` draws a word
  per element, which costs more than the HVP itself for a large model on CPU.
  """
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, max(len(leaves), 1))
  shifts = jnp.arange(32, dtype=jnp.uint32)

  def signs(k, p):
    p = jnp.asarray(p)
    size = int(p.size)
    words = jax.random.bits(k, (-(-size // 32),), jnp.uint32)
    bits = (words[:, None] >> shifts) & jnp.uint32(1)
    z = 2 * bits.reshape(-1)[:size].astype(p.dtype) - 1
    return z.reshape(p.shape)

  return jax.tree.unflatten(treedef, [signs(k, p) for k, p in zip(keys, leaves)])


def hutchinson_diagonal(
  value_fn: Callable[[Any], jax.Array], params: Any, key: jax.Array, *, absolute: bool = True
) -> Any:
  """Hutchinson's diagonal estimate z ⊙ Hz (Rademacher z), or its absolute value.

  ``E[z ⊙ Hz] = diag(H)`` for any symmetric H, every draw exact for a diagonal
  H. ``absolute=True`` (what vSGD averages, as the paper's |bbprop|) gives
  ``|z ⊙ Hz|``, an upper bound in expectation (``E|z_i (Hz)_i| ≥ |H_ii|``), so
  rates err small. Cost: one forward-over-reverse pass.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> loss = lambda w: jnp.sum(jnp.array([1.0, 4.0]) * w ** 2)
    >>> hutchinson_diagonal(loss, jnp.ones(2), jax.random.key(0)).tolist()
    [2.0, 8.0]
  """
  z = rademacher_like(key, params)
  hz = hvp(value_fn, params, z)
  est = jax.tree.map(lambda a, b: a * b, z, hz)
  return jax.tree.map(jnp.abs, est) if absolute else est


def finite_difference_diagonal(
  value_fn: Callable[[Any], jax.Array], params: Any, grad: Any, delta: Any, fallback: Any = None
) -> Any:
  """|(∇L(w + δ) − ∇L(w)) / δ| elementwise (Schaul & LeCun 2013), on the same ``value_fn``.

  ``grad`` is ∇L(w). It divides by the step taken in the params' dtype,
  ``(w + δ) − w``; where that is 0 (δ_i below w_i's precision) the result is
  ``fallback`` (a pytree like the params; default 0). Cost: one more gradient.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> loss = lambda w: jnp.sum(jnp.array([1.0, 4.0]) * w ** 2)
    >>> w = jnp.array([1.0, -1.0])
    >>> g = jax.grad(loss)(w)
    >>> finite_difference_diagonal(loss, w, g, jnp.array([0.5, 0.0]),
    ...                            fallback=jnp.array([7.0, 7.0])).tolist()
    [2.0, 7.0]
  """
  shifted = jax.tree.map(
    lambda w, d: (w + jnp.asarray(d).astype(w.dtype)).astype(w.dtype), params, delta
  )
  step = jax.tree.map(lambda a, w: a - w, shifted, params)
  grad_shifted = jax.grad(value_fn)(shifted)
  if fallback is None:
    fallback = jax.tree.map(jnp.zeros_like, params)

  def leaf(g1, g0, s, fb):
    s = s.astype(g1.dtype)
    ok = s != 0
    est = jnp.abs((g1 - g0.astype(g1.dtype)) / jnp.where(ok, s, 1))
    return jnp.where(ok, est, jnp.asarray(fb).astype(g1.dtype))

  return jax.tree.map(leaf, grad_shifted, grad, step, fallback)


def softmax_gauss_newton_diagonal(
  logits_fn: Callable[[Any], jax.Array], params: Any, key: jax.Array
) -> Any:
  """Unbiased Gauss-Newton diagonal of ``mean_n CE(softmax(logits_fn(w)_n), y_n)``.

  The Gauss-Newton (= Fisher) matrix is ``G = (1/N) Σ_n J_nᵀ (diag p_n − p_n p_nᵀ) J_n``.
  With labels ŷ_n ~ softmax(logits_n) and ``s = ∇_w Σ_n CE(logits_n, ŷ_n)``,
  ``E[s ⊙ s] = N diag(G)`` (cross terms have mean 0), so ``s ⊙ s / N`` is an
  unbiased, non-negative estimate for one forward and one backward pass: the
  role of vSGD's bbprop; Sophia's Gauss-Newton-Bartlett estimator (Liu et al.,
  arXiv:2305.14342, Alg. 2). Extra loss terms are not included (add ``λ`` for
  an L2 penalty ``λ/2 ‖w‖²``).

  Args:
    logits_fn: params -> logits of shape ``(N, K)`` (the batch bound in).
    params: the point.
    key: PRNG key for the sampled labels.

  Returns:
    A pytree like ``params``.
  """
  logits, pullback = jax.vjp(logits_fn, params)  # the one forward pass
  logits = jax.lax.stop_gradient(logits)
  n = logits.shape[0]
  labels = jax.random.categorical(key, logits, axis=-1)
  # ∂/∂logits of Σ_n CE(logits_n, ŷ_n) = softmax(logits) − onehot(ŷ): one backward pass.
  probs = jax.nn.softmax(logits, axis=-1)
  (s,) = pullback(probs - jax.nn.one_hot(labels, logits.shape[-1], dtype=probs.dtype))
  return jax.tree.map(lambda x: x * x / n, s)
