"""Stochastic meta-descent (SMD), as Schaul, Zhang & LeCun (2013) App. C run it.

    θ_{t+1} = θ_t − η_t ∇,   η_{t+1} = η_t exp(−μ ∇ᵀv_t),
    v_{t+1} = (1 − 1/τ) v_t − η_t (∇ + (1 − 1/τ) H_t v_t).

References:
  N. N. Schraudolph, Local gain adaptation in stochastic gradient descent,
  ICANN 1999, DOI:10.1049/cp:19991170; Fast curvature matrix-vector products
  for second-order gradient descent, Neural Computation 14(7), 2002,
  DOI:10.1162/08997660260028683.
  T. Schaul, S. Zhang, Y. LeCun, No More Pesky Learning Rates, ICML 2013,
  arXiv:1206.1106, App. C.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adaptlr import _loss, _step, _validate
from adaptlr import curvature as _curvature
from adaptlr._granularity import GranularityLike, granularity_from, rate_dtype

# Extra args SMD reads besides optax's value/grad/value_fn: none (H v comes from value_fn).
CONSUMES: frozenset[str] = frozenset()


class SMDState(NamedTuple):
  """State of :func:`scale_by_smd`."""

  learning_rate: Any  # η per group: the rate the *next* step uses (η_{t+1} after step t)
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32: non-finite steps skipped
  trace: Any  # v_t ≈ ∂θ_t/∂ log η per element, decayed by 1 − 1/τ (zeros at start)


def _smd_rate(rate, gv, *, meta_lr, min_learning_rate, max_learning_rate):
  """η_{t+1} = η_t exp(−μ ∇ᵀv_t) for one group (App. C); an overflow keeps η_t."""
  new = rate * jnp.exp(-meta_lr * gv)
  new = jnp.where(jnp.isfinite(new), new, rate).astype(rate.dtype)
  return jnp.clip(new, min_learning_rate, max_learning_rate).astype(new.dtype)


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

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with an :class:`SMDState`.
  """
  _validate.learning_rate(learning_rate, "smd")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.positive("meta_lr", meta_lr, allow_zero=True)
  _validate.in_range("tau", tau, 1.0, float("inf"))
  _validate.bounds(min_learning_rate, max_learning_rate)
  groups = granularity_from(granularity)

  def init_fn(params: optax.Params) -> SMDState:
    dtype = rate_dtype(params)
    return SMDState(
      learning_rate=_step.initial_rates(
        groups, params, learning_rate, dtype, min_learning_rate, max_learning_rate
      ),
      **_step.counters(),
      trace=optax.tree.zeros_like(params, dtype=dtype),
    )

  def update_fn(
    updates: optax.Updates,
    state: SMDState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, SMDState]:
    params = _loss.require_params(params, "smd")
    grads, _, _, extra_args = _step.direction_and_decay(
      None, updates, (), params, extra_args, weight_decay, mask, "smd"
    )
    value_fn = _loss.get_value_fn(
      extra_args, "smd", " for the Hessian-vector product H v", params=params
    )
    dtype = rate_dtype(state.learning_rate)
    rate, v = state.learning_rate, state.trace
    # η_{t+1} is the next step's rate: clamped to the bounds of that step.
    bounds = dict(
      min_learning_rate=_step.bound_at(min_learning_rate, state.count + 1),
      max_learning_rate=_step.bound_at(max_learning_rate, state.count + 1),
    )
    hv = _curvature.hvp(value_fn, params, optax.tree.cast_like(v, params))  # H_t v_t
    g = jax.tree.map(lambda x: x.astype(dtype), grads)
    hv = jax.tree.map(lambda x: x.astype(dtype), hv)

    new_updates = groups.scale(rate, grads)  # θ_{t+1} = θ_t − η_t ∇
    gv = groups.vdot(g, v, dtype)  # ∇ᵀ v_t per group
    new_rate = jax.tree.map(  # η_{t+1}
      lambda r, x: _smd_rate(r, x, meta_lr=meta_lr, **bounds), rate, gv
    )
    keep = 1.0 - 1.0 / tau
    rate_el = groups.broadcast(rate, g)
    trace = jax.tree.map(  # v_{t+1}
      lambda vi, gi, hvi, r: (keep * vi - r * (gi + keep * hvi)).astype(dtype), v, g, hv, rate_el
    )

    new_state = SMDState(
      learning_rate=new_rate,
      count=jnp.asarray(optax.safe_increment(state.count)),
      skipped=state.skipped,
      trace=trace,
    )
    check = sum(jnp.sum(x * x) for x in jax.tree.leaves((g, hv)))  # NaN, inf, or overflow
    finite = _step.finite_from((check, gv), extra_args.get("value"))
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


@_step.descent(scale_by_smd)
def smd():
  r"""SGD with a rate adapted by stochastic meta-descent (Schaul et al. 2013, App. C).

  Exactly the updates of Schaul et al. (2013) App. C, all right-hand sides at
  step t (gradient :math:`\nabla` and Hessian :math:`H_t` at
  :math:`\theta_t`, on the current batch):

  .. math::

    \theta_{t+1} &= \theta_t - \eta_t \nabla, \\
    \eta_{t+1} &= \eta_t \exp(-\mu\, \nabla^\top v_t), \\
    v_{t+1} &= (1 - \tau^{-1})\, v_t - \eta_t\big(\nabla + (1 - \tau^{-1}) H_t v_t\big)

  with :math:`v_0 = 0`; :math:`H_t v_t` is an exact Hessian-vector product
  (forward-over-reverse autodiff on ``value_fn``). The paper's SMD has one
  global rate (the default); ``granularity`` gives one per group (per element:
  Schraudolph's per-parameter gains), with :math:`\nabla^\top v_t` taken
  within each group. A non-finite :math:`\eta_{t+1}` (an overflowing exp)
  keeps :math:`\eta_t`; rates are clamped to [``min_learning_rate``,
  ``max_learning_rate``].

  The state's ``learning_rate`` after an update is :math:`\eta_{t+1}`, the
  rate the next step will use (the step just taken used :math:`\eta_t`).

  Args:
    learning_rate: :math:`\eta_0 > 0` (paper's best on MNIST: 0.1 for M0,
      0.03 for M1 and M2).
    meta_lr: :math:`\mu \ge 0` (paper's grid 1e-4 … 1e-1).
    tau: the time constant :math:`\tau \ge 1` of v (paper's grid 10 … 1e5).
    granularity: ``"global"`` (the paper), ``"leaf"``, ``"element"`` or labels.
    min_learning_rate: lower clamp (default 0).
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
    :math:`-\eta_t\nabla`, ready for ``optax.apply_updates``
    (:func:`scale_by_smd` followed by ``optax.scale(-1)``); its state holds an
    :class:`SMDState`. Each update needs ``params`` and ``value_fn``.

  Raises:
    ValueError: for bad hyperparameters; at update time without ``params``
      or ``value_fn`` (needed for :math:`H_t v_t`).

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
