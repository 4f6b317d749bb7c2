"""Almeida & Langlois' per-parameter rates, as Schaul, Zhang & LeCun (2013) §2 state them.

Per element, with v_i a running average of ∇_i²: θ_i ← θ_i − η_i(t) ∇_i(t) with the rate
η_i(t) = max(0, η_0 ∇_i(t) ∇_i(t−1) / v_i).

References:
  L. B. Almeida, T. Langlois, J. D. Amaral, A. Plakhov, Parameter adaptation in stochastic
  optimization, in On-line Learning in Neural Networks (D. Saad, ed.), CUP, 1999.
  T. Schaul, S. Zhang, Y. LeCun, No More Pesky Learning Rates, ICML 2013, arXiv:1206.1106, §2.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptlr import _step, _validate
from adaptlr._granularity import rate_dtype

# Extra args Almeida's rule reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()


class AlmeidaState(NamedTuple):
  """State of :func:`scale_by_almeida`."""

  learning_rate: optax.Updates  # η_i per element: the rates of the last step
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32 (): non-finite steps skipped
  prev_grad: optax.Updates  # ∇(t−1) per element
  sq_avg: optax.Updates  # v_i ≈ E[∇_i²] (running average, memory τ)


def scale_by_almeida(
  learning_rate: Any = 1e-3,
  *,
  tau: Any = 1000.0,
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales each gradient component by Almeida's rate (Schaul et al. 2013, §2).

  The building block of :func:`almeida` (see there for the rule and every
  argument); its updates are :math:`+\eta \odot \nabla`, for ``optax.chain``.
  Returns an ``optax.GradientTransformationExtraArgs`` with an :class:`AlmeidaState`.
  """
  learning_rate = _validate.learning_rate(learning_rate, "almeida")
  _validate.weight_decay(weight_decay, mask)
  _validate.in_range("tau", tau, 1.0, float("inf"))
  _validate.bounds(min_learning_rate, max_learning_rate)
  bounds = (min_learning_rate, max_learning_rate)

  def init_fn(params: optax.Params) -> AlmeidaState:
    dtype = rate_dtype(params)
    rates = _step.clip_rates(optax.tree.full_like(params, learning_rate, dtype=dtype), *bounds)
    zeros = lambda: optax.tree.zeros_like(params, dtype=dtype)
    return AlmeidaState(rates, **_step.counters(), prev_grad=zeros(), sq_avg=zeros())

  def update_fn(updates, state, params=None, **extra):
    grads, _, _, extra = _step.direction_and_decay(
      None, updates, (), params, extra, weight_decay, mask, "almeida"
    )
    dtype = rate_dtype(state.learning_rate)
    g = jax.tree.map(lambda x: x.astype(dtype), grads)
    frac = jnp.maximum(1.0 / tau, 1.0 / (state.count + 1).astype(dtype))
    sq_avg = jax.tree.map(  # its sum is the finiteness check: NaN, inf, or g² overflows
      lambda v, x: ((1.0 - frac) * v + frac * x * x).astype(dtype), state.sq_avg, g
    )
    first = state.count == 0

    def rule(x, prev, v):  # η_i(t) = max(0, η_0 ∇_i(t) ∇_i(t−1) / v_i) (§2); 0 where v_i = 0
      prev = jnp.where(first, x, prev)  # the first step: ∇(t−1) := ∇(t), SGD with rate η_0
      r = learning_rate * x * prev / jnp.where(v > 0, v, 1.0)
      return jnp.where(v > 0, jnp.maximum(r, 0.0), 0.0).astype(dtype)

    rate = _step.clip_rates(jax.tree.map(rule, g, state.prev_grad, sq_avg), *bounds, state.count)
    new_updates = jax.tree.map(lambda r, x: (r * x).astype(x.dtype), rate, grads)
    count = jnp.asarray(optax.safe_increment(state.count))
    new_state = AlmeidaState(rate, count, state.skipped, prev_grad=g, sq_avg=sq_avg)
    finite = _step.finite_from(sum(jnp.sum(v) for v in jax.tree.leaves(sq_avg)), extra.get("value"))
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@_step.descent(scale_by_almeida)
def almeida():
  r"""SGD with Almeida's per-parameter rates (Schaul et al. 2013, §2).

  .. math::

    v_i \leftarrow (1 - \tau^{-1}) v_i + \tau^{-1} \nabla_i(t)^2, \qquad
    \eta_i(t) = \max\Big(0,\; \eta_0\, \frac{\nabla_i(t)\, \nabla_i(t-1)}{v_i}\Big),
    \qquad \theta_i \leftarrow \theta_i - \eta_i(t)\, \nabla_i(t).

  A component whose gradient keeps its sign moves with a rate about :math:`\eta_0`; one whose
  gradient flips (oscillation, noise) stops. Where the paper is silent (the order of the updates,
  v's start, the first step), docs/methods/almeida.md gives adaptlr's choices.

  Args:
    learning_rate: :math:`\eta_0 > 0` (paper's best on MNIST: 1e-3).
    tau: time constant :math:`\tau \ge 1` of v (paper's best: 1e3 – 1e4).
    min_learning_rate, max_learning_rate, weight_decay, mask: the shared
      options, see docs/options.md.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with updates :math:`-\eta \odot \nabla` and
    an :class:`AlmeidaState`, whose ``learning_rate`` are the per-element rates of the last step.

  Raises:
    ValueError: for bad options.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> opt = adaptlr.almeida(0.2, tau=5.0)
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> for _ in range(100):
    ...   updates, state = opt.update(jax.grad(loss)(w), state, w)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w) < 1e-4)
    True
    >>> opt = adaptlr.almeida(0.1, tau=10.0)
    >>> w = jnp.array([1.0, -1.0]); state = opt.init(w)
    >>> updates, state = opt.update(2 * w, state, w)      # first step: SGD with η₀
    >>> [round(u, 6) for u in updates.tolist()]
    [-0.2, 0.2]

  References:
    Schaul, Zhang & LeCun, No More Pesky Learning Rates, ICML 2013,
    arXiv:1206.1106, §2 and Table 1; Almeida et al. 1999.
  """
