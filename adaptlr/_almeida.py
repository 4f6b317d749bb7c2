"""Almeida & Langlois' per-parameter rates, as Schaul, Zhang & LeCun (2013) §2 state them.

Per element, with v_i a running average of ∇_i²:

    η_i(t) = max(0, η_0 ∇_i(t) ∇_i(t−1) / v_i),   θ_i ← θ_i − η_i(t) ∇_i(t).

References:
  L. B. Almeida, T. Langlois, J. D. Amaral, A. Plakhov, Parameter adaptation
  in stochastic optimization, in On-line Learning in Neural Networks
  (D. Saad, ed.), Cambridge University Press, 1999.
  T. Schaul, S. Zhang, Y. LeCun, No More Pesky Learning Rates, ICML 2013,
  arXiv:1206.1106, §2.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adaptlr import _step, _validate
from adaptlr._granularity import rate_dtype

# Extra args Almeida's rule reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()


class AlmeidaState(NamedTuple):
  """State of :func:`scale_by_almeida`."""

  learning_rate: Any  # η_i per element: the rates of the last step
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32: non-finite steps skipped
  prev_grad: Any  # ∇(t−1) per element
  sq_avg: Any  # v_i ≈ E[∇_i²] (running average, memory τ)


def _almeida_rate(grad, prev_grad, sq_avg, first, *, learning_rate, dtype):
  """η_i(t) = max(0, η_0 ∇_i(t) ∇_i(t−1) / v_i) per element (§2); 0 where v_i = 0.

  On the first step ∇(t−1) := ∇(t), so that step is SGD with rate η_0.
  """
  prev_grad = jnp.where(first, grad, prev_grad)
  r = learning_rate * grad * prev_grad / jnp.where(sq_avg > 0, sq_avg, 1.0)
  return jnp.where(sq_avg > 0, jnp.maximum(r, 0.0), 0.0).astype(dtype)


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

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with an :class:`AlmeidaState`.
  """
  _validate.learning_rate(learning_rate, "almeida")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.in_range("tau", tau, 1.0, float("inf"))
  _validate.bounds(min_learning_rate, max_learning_rate)

  def init_fn(params: optax.Params) -> AlmeidaState:
    dtype = rate_dtype(params)
    return AlmeidaState(
      learning_rate=_step.clip_rates(
        optax.tree.full_like(params, learning_rate, dtype=dtype),
        min_learning_rate,
        max_learning_rate,
      ),
      **_step.counters(),
      prev_grad=optax.tree.zeros_like(params, dtype=dtype),
      sq_avg=optax.tree.zeros_like(params, dtype=dtype),
    )

  def update_fn(
    updates: optax.Updates,
    state: AlmeidaState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, AlmeidaState]:
    grads, _, _, extra_args = _step.direction_and_decay(
      None, updates, (), params, extra_args, weight_decay, mask, "almeida"
    )
    dtype = rate_dtype(state.learning_rate)
    g = jax.tree.map(lambda x: x.astype(dtype), grads)
    frac = jnp.maximum(1.0 / tau, 1.0 / (state.count + 1).astype(dtype))
    sq_avg = jax.tree.map(
      lambda v, x: ((1.0 - frac) * v + frac * x * x).astype(dtype), state.sq_avg, g
    )
    first = state.count == 0
    rate = jax.tree.map(
      lambda x, prev, v: _almeida_rate(x, prev, v, first, learning_rate=learning_rate, dtype=dtype),
      g,
      state.prev_grad,
      sq_avg,
    )
    rate = _step.clip_rates(rate, min_learning_rate, max_learning_rate, state.count)
    new_updates = jax.tree.map(lambda r, x: (r * x).astype(x.dtype), rate, grads)
    new_state = AlmeidaState(
      learning_rate=rate,
      count=jnp.asarray(optax.safe_increment(state.count)),
      skipped=state.skipped,
      prev_grad=g,
      sq_avg=sq_avg,
    )
    finite = _step.finite_from(  # NaN, inf, or g² overflows
      sum(jnp.sum(v) for v in jax.tree.leaves(sq_avg)), extra_args.get("value")
    )
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


@_step.descent(scale_by_almeida)
def almeida():
  r"""SGD with Almeida's per-parameter rates (Schaul et al. 2013, §2).

  .. math::

    v_i \leftarrow (1 - \tau^{-1}) v_i + \tau^{-1} \nabla_i(t)^2, \qquad
    \eta_i(t) = \max\Big(0,\; \eta_0\, \frac{\nabla_i(t)\, \nabla_i(t-1)}{v_i}\Big),
    \qquad \theta_i \leftarrow \theta_i - \eta_i(t)\, \nabla_i(t).

  A component whose gradient keeps its sign moves with a rate about
  :math:`\eta_0` (more when the gradient grows); one whose gradient flips
  (oscillation, noise) stops. Choices where the paper is silent: v is updated
  with :math:`\nabla(t)` before the rate (as the authors' code orders it); it
  is the arithmetic mean of the squared gradients for the first τ steps (no
  bias towards its zero start), then the running average; on the first step
  :math:`\nabla(t-1) := \nabla(t)`, so that step is SGD with rate
  :math:`\eta_0`; where :math:`v_i = 0` the rate is 0.

  Args:
    learning_rate: :math:`\eta_0 > 0` (paper's best on MNIST: 1e-3).
    tau: time constant :math:`\tau \ge 1` of v (paper's best: 1e3 – 1e4).
    min_learning_rate: lower clamp of the rates (default 0, the paper's max).
    max_learning_rate: upper clamp (default inf).
      Either bound may be a schedule of the step count: a ceiling that
      moves (warmup or decay on top of the learned rate), or a floor.
    weight_decay: decoupled weight decay λ ≥ 0, as in ``optax.adamw``: the
      step is :math:`-\alpha(u + \lambda\, m \odot w)`. The rule and its
      probes see the loss that step descends, :math:`L + \tfrac{\lambda}{2}
      \|m \odot w\|^2` (its gradient, ``value`` and ``value_fn``): with the
      gradient as direction this is the method on that loss.
    mask: the leaves that decay (``m``): a pytree of bools or a callable
      ``params -> bools``, as ``optax.adamw``'s ``mask``; ``None``: all.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose updates are
    :math:`-\eta \odot \nabla`, ready for ``optax.apply_updates``
    (:func:`scale_by_almeida` followed by ``optax.scale(-1)``); its state holds
    an :class:`AlmeidaState`, whose ``learning_rate`` are the per-element rates
    of the last step.

  Raises:
    ValueError: for bad hyperparameters.

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
