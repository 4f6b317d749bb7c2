"""Stochastic meta-descent (SMD), as Schaul, Zhang & LeCun (2013) App. C run it.

    θ_{t+1} = θ_t − η_t ∇,   η_{t+1} = η_t exp(−μ ∇ᵀv_t),
    v_{t+1} = (1 − 1/τ) v_t − η_t (∇ + (1 − 1/τ) H_t v_t).

References:
  N. N. Schraudolph, Local gain adaptation in stochastic gradient descent, ICANN 1999,
  DOI:10.1049/cp:19991170; Fast curvature matrix-vector products for second-order gradient
  descent, Neural Computation 14(7), 2002, DOI:10.1162/08997660260028683.
  T. Schaul, S. Zhang, Y. LeCun, No More Pesky Learning Rates, ICML 2013, arXiv:1206.1106, App. C.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from adaptlr import _loss, _step, _validate
from adaptlr import curvature as _curvature
from adaptlr._granularity import GranularityLike, Rates, granularity_from, rate_dtype

# Extra args SMD reads besides optax's value/grad/value_fn: none (H v comes from value_fn).
CONSUMES: frozenset[str] = frozenset()


class SMDState(NamedTuple):
  """State of :func:`scale_by_smd`."""

  learning_rate: Rates  # float () per group: η_{t+1}, the rate the next step uses
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32 (): non-finite steps skipped
  trace: optax.Updates  # v_t ≈ ∂θ_t/∂ log η, decayed by 1 − 1/τ (zeros at start)


def scale_by_smd(
  learning_rate: Any = 0.01,
  *,
  meta_lr: Any = 1e-3,
  tau: Any = 100.0,
  granularity: GranularityLike = "global",
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales gradients by a rate adapted by stochastic meta-descent (SMD).

  The building block of :func:`smd` (see there for the rule and every
  argument); its updates are :math:`+\eta_t \nabla`, for ``optax.chain``.
  Returns an ``optax.GradientTransformationExtraArgs`` with an :class:`SMDState`.
  """
  learning_rate = _validate.learning_rate(learning_rate, "smd")
  _validate.weight_decay(weight_decay, mask)
  _validate.positive("meta_lr", meta_lr, allow_zero=True)
  _validate.in_range("tau", tau, 1.0, float("inf"))
  _validate.bounds(min_learning_rate, max_learning_rate)
  groups = granularity_from(granularity)
  bounds = (min_learning_rate, max_learning_rate)

  def init_fn(params: optax.Params) -> SMDState:
    dtype = rate_dtype(params)
    rates = _step.initial_rates(groups, params, learning_rate, dtype, *bounds)
    return SMDState(rates, **_step.counters(), trace=optax.tree.zeros_like(params, dtype=dtype))

  def update_fn(updates, state, params=None, **extra):
    params = _loss.require_params(params, "smd")
    grads, _, _, extra = _step.direction_and_decay(
      None, updates, (), params, extra, weight_decay, mask, "smd"
    )
    value_fn = _loss.get_value_fn(
      extra, "smd", " for the Hessian-vector product H v", params=params
    )
    dtype = rate_dtype(state.learning_rate)
    rate, v = state.learning_rate, state.trace
    lo, hi = (_step.bound_at(b, state.count + 1) for b in bounds)  # η_{t+1}'s: the next step's

    def rate_rule(r, gv):  # η_{t+1} = η_t exp(−μ ∇ᵀv_t) per group (App. C); an overflow keeps η_t
      new = r * jnp.exp(-meta_lr * gv)
      new = jnp.where(jnp.isfinite(new), new, r).astype(r.dtype)
      return jnp.clip(new, lo, hi).astype(new.dtype)

    hv = _curvature.hvp(value_fn, params, optax.tree.cast_like(v, params))  # H_t v_t
    g, hv = (jax.tree.map(lambda x: x.astype(dtype), t) for t in (grads, hv))
    new_updates = groups.scale(rate, grads)  # θ_{t+1} = θ_t − η_t ∇
    gv = groups.vdot(g, v, dtype)  # ∇ᵀ v_t per group
    new_rate = jax.tree.map(rate_rule, rate, gv)  # η_{t+1}
    keep = 1.0 - 1.0 / tau
    rate_el = groups.broadcast(rate, g)
    trace = jax.tree.map(  # v_{t+1}
      lambda vi, gi, hvi, r: (keep * vi - r * (gi + keep * hvi)).astype(dtype), v, g, hv, rate_el
    )
    count = jnp.asarray(optax.safe_increment(state.count))
    new_state = SMDState(new_rate, count, state.skipped, trace)
    check = sum(jnp.sum(x * x) for x in jax.tree.leaves((g, hv)))  # NaN, inf, or overflow
    finite = _step.finite_from((check, gv), extra.get("value"))
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@_step.descent(scale_by_smd)
def smd():
  r"""SGD with a rate adapted by stochastic meta-descent (Schaul et al. 2013, App. C).

  Exactly App. C's updates, with :math:`\nabla, H_t` at :math:`\theta_t` and :math:`v_0 = 0`:

  .. math::

    \theta_{t+1} &= \theta_t - \eta_t \nabla, \\
    \eta_{t+1} &= \eta_t \exp(-\mu\, \nabla^\top v_t), \\
    v_{t+1} &= (1 - \tau^{-1})\, v_t - \eta_t\big(\nabla + (1 - \tau^{-1}) H_t v_t\big)

  :math:`H_t v_t` is an exact Hessian-vector product on ``value_fn``; with one rate per element
  it is Schraudolph's gain adaptation. See docs/methods/smd.md for the details.

  Args:
    learning_rate: :math:`\eta_0 > 0` (paper's MNIST best: 0.1 for M0, 0.03 for M1 and M2).
    meta_lr: :math:`\mu \ge 0` (paper's grid 1e-4 … 1e-1).
    tau: the time constant :math:`\tau \ge 1` of v (paper's grid 10 … 1e5).
    granularity, min_learning_rate, max_learning_rate, weight_decay, mask: the
      shared options, see docs/options.md.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with updates :math:`-\eta_t\nabla`
    and an :class:`SMDState`; each update needs ``params`` and ``value_fn``.

  Raises:
    ValueError: for bad options, or at update time without ``params`` or ``value_fn``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
    >>> x = jax.random.normal(jax.random.key(0), (32, 3)); y = x @ jnp.ones(3)
    >>> opt = adaptlr.smd(0.05, meta_lr=0.01, tau=10.0)
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> for _ in range(100):
    ...   g = jax.grad(loss)(w, x, y)
    ...   updates, state = opt.update(g, state, w, value_fn=loss, x=x, y=y)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w, x, y) < 1e-3)
    True
    >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> opt = adaptlr.smd(0.05, meta_lr=0.1)
    >>> w = jnp.zeros(2); state = opt.init(w)
    >>> for _ in range(20):
    ...   updates, state = opt.update(jax.grad(loss)(w), state, w, value_fn=loss)
    ...   w = optax.apply_updates(w, updates)
    >>> float(optax.tree.get(state, "learning_rate")) > 0.05   # SMD raised the rate
    True

  References:
    Schaul, Zhang & LeCun, No More Pesky Learning Rates, ICML 2013,
    arXiv:1206.1106, App. C; Schraudolph, ICANN 1999 and Neural Computation 2002.
  """
