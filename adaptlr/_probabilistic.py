"""Probabilistically motivated learning-rate adaptation (de Roos et al. 2021, Alg. 1).

Gaussian inference on the minimizer of a local quadratic model, with the base
optimizer's metric η·W as prior covariance, gives the step (Eq. 12)

    θ_{i+1} = θ_i − v_i · 2 Δf / (φ_i + R_i),    v_i = η W_i g_i,   φ_i = g_iᵀ v_i,

with Δf = f_i − f* when f* is known, else φ_i / 2 (the implied quadratic,
Eq. 14). One extra forward pass, f+ = L(θ_{i+1}) on the same batch, compares the
observed decrease with the expected φ_i / 2 and adapts η (× 1.2 above 4/3,
× 1/2 below 3/4: Alg. 1, lines 15–19).

References:
  F. de Roos, C. Jidling, A. Wills, T. Schön, P. Hennig, A Probabilistically
  Motivated Learning Rate Adaptation for Stochastic Optimization,
  arXiv:2102.10880 (2021): §2–3, Alg. 1, Tab. 1, App. A.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from adaptlr import _loss, _step, _validate
from adaptlr._granularity import granularity_from, rate_dtype

# Extra args the adaptation reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()


class ProbabilisticLRState(NamedTuple):
  """State of :func:`scale_by_probabilistic_lr`."""

  learning_rate: jax.Array  # float (): η, the scale of the prior covariance η·W
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32 (): non-finite steps skipped
  uphill: jax.Array  # int32 (): steps with φ_i ≤ 0, not taken
  loss_after: jax.Array  # float (): f+ = L(θ_{i+1}), last adapted step (Alg. 1 l. 15)
  ratio: jax.Array  # float (): (f_i − f+) / (φ_i / 2), last adapted step (l. 16)
  direction_state: optax.OptState  # state of ``direction`` (() for SGD)


def scale_by_probabilistic_lr(
  learning_rate: Any = 1e-3,
  *,
  direction: Optional[optax.GradientTransformation] = None,
  f_min: Any = None,
  noise_variance: Any = 0.0,
  relative_noise: bool = False,
  increase_factor: Any = 1.2,
  decrease_factor: Any = 0.5,
  increase_threshold: Any = None,
  decrease_threshold: Any = None,
  max_scale: Any = None,
  adapt_every: Union[None, int, Callable[[jax.Array], jax.Array]] = None,
  momentum: Optional[Any] = None,
  nesterov: bool = False,
  safeguard: bool = True,
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
  decay_steps: Optional[int] = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the base direction by de Roos et al.'s inference step; adapts η.

  The building block of :func:`probabilistic_lr`, which documents the rule and
  every option; its updates are :math:`+v_i\,2\Delta f/(\phi_i + R_i)`, for
  ``optax.chain``. The state is a :class:`ProbabilisticLRState`.
  """
  learning_rate = _validate.learning_rate(learning_rate, "probabilistic_lr")
  _validate.weight_decay(weight_decay, mask)
  _validate.flag("relative_noise", relative_noise)
  _validate.flag("safeguard", safeguard)
  _validate.positive("noise_variance", noise_variance, allow_zero=True)
  _validate.in_range("increase_factor", increase_factor, 1.0, float("inf"))
  _validate.in_range("decrease_factor", decrease_factor, 0.0, 1.0, low_open=True)
  # Alg. 1's thresholds, or the horizon's (see decay_steps)
  if increase_threshold is None:
    increase_threshold = 4.0 / 3.0 if decay_steps is None else 1.0
  if decrease_threshold is None:
    decrease_threshold = 3.0 / 4.0 if decay_steps is None else 0.25
  _validate.positive("increase_threshold", increase_threshold)
  _validate.positive("decrease_threshold", decrease_threshold)
  lo, hi = _validate.concrete(decrease_threshold), _validate.concrete(increase_threshold)
  if lo is not None and hi is not None and float(lo) > float(hi):
    raise ValueError(
      f"decrease_threshold ({decrease_threshold}) must not exceed "
      f"increase_threshold ({increase_threshold})."
    )
  _validate.either("max_scale", max_scale, _validate.positive)
  _validate.either("f_min", f_min, _validate.finite)
  if adapt_every is None:
    adapt_every = 1
  if not callable(adapt_every) and _validate.concrete(adapt_every) is not None:  # not traced
    _validate.integer("adapt_every", adapt_every, 1)
  _validate.bounds(min_learning_rate, max_learning_rate)
  direction = _step.search_direction(direction, "probabilistic_lr", momentum, nesterov)
  groups = granularity_from("global")
  every_step = not callable(adapt_every) and isinstance(adapt_every, int) and adapt_every == 1

  def init_fn(params: optax.Params) -> ProbabilisticLRState:
    dtype = rate_dtype(params)
    return ProbabilisticLRState(
      learning_rate=_step.clip_rates(
        jnp.asarray(learning_rate, dtype), min_learning_rate, max_learning_rate
      ),
      **_step.counters(),
      uphill=jnp.zeros([], jnp.int32),
      loss_after=jnp.asarray(jnp.inf, dtype),
      ratio=jnp.asarray(jnp.nan, dtype),
      direction_state=_step.direction_init(direction, params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    method = "probabilistic_lr"
    _loss.require_params(params, method)
    grads, w_g, direction_state, extra_args = _step.direction_and_decay(  # W(g_i)
      direction, updates, state.direction_state, params, extra_args, weight_decay, mask, method
    )
    f_i = _loss.get_value(extra_args, method)
    value_fn = _loss.get_value_fn(
      extra_args, method, " to re-evaluate the loss after the step (Alg. 1, line 15)", params=params
    )
    eta = state.learning_rate
    dtype = eta.dtype
    f_i = f_i.astype(dtype)
    phi = eta * groups.vdot(grads, w_g, dtype)  # lines 5–6
    r_i = jnp.asarray(noise_variance, dtype)
    if relative_noise:
      r_i = r_i * jnp.abs(f_i)
    if f_min is None:
      gap = phi / 2  # line 11, Eq. 14
    else:
      gap = f_i - jnp.asarray(f_min, dtype)  # line 9
    gap = jnp.maximum(gap, 0.0)  # f_i below f*: no step (as sps+)
    downhill = phi > 0  # φ_i ≤ 0: the inference is undefined, no step (§2.3)
    scale = _step.safe_div(2 * gap, phi + r_i, downhill)  # Eq. 12
    if max_scale is not None:
      scale = jnp.minimum(scale, max_scale)
    step = groups.scale(eta * scale, w_g)  # line 13: v_i·2Δf/(φ+R)

    if callable(adapt_every):
      adapt = jnp.asarray(adapt_every(state.count), bool)
    elif every_step:
      adapt = jnp.asarray(True)
    else:
      adapt = state.count % adapt_every == 0
    adapt = adapt & downhill
    after = lambda: value_fn(
      jax.tree.map(lambda p, s: (p - s).astype(p.dtype), params, step)
    ).astype(dtype)
    if every_step:
      f_plus = after()  # line 15
    else:
      f_plus = jax.lax.cond(adapt, after, lambda: state.loss_after)
    ratio = (f_i - f_plus) / jnp.where(downhill, phi / 2, 1.0)  # line 16
    ratio = jnp.where(jnp.isfinite(f_plus), ratio, -jnp.inf)  # f+ blew up: too large
    shrunk = jnp.where(ratio < decrease_threshold, eta * decrease_factor, eta)  # line 19
    # An expected decrease φ/2 below the rounding of f (16 ulps) makes the ratio rounding
    # noise, which would halve a tiny η to 0: a step too small to measure grows (line 17).
    unmeasurable = phi / 2 <= _step.rounding_level(jnp.abs(f_i))
    grow = (ratio > increase_threshold) | (unmeasurable & jnp.isfinite(f_plus))
    new_eta = jnp.where(grow, eta * increase_factor, shrunk)  # line 17
    floor, ceil = (
      _step.bound_at(b, state.count + 1) for b in (min_learning_rate, max_learning_rate)
    )
    new_eta = jnp.clip(new_eta, floor, ceil).astype(dtype)
    if safeguard and f_min is None:  # the step raised the loss: not taken
      raised = adapt & ~(f_plus <= f_i)
      step = jax.tree.map(lambda s: jnp.where(raised, jnp.zeros_like(s), s), step)
    new_state = ProbabilisticLRState(
      learning_rate=jnp.where(adapt, new_eta, eta),
      **_step.next_counters(state),
      uphill=state.uphill + (~downhill).astype(jnp.int32),
      loss_after=jnp.where(adapt, f_plus, state.loss_after),
      ratio=jnp.where(adapt, ratio, state.ratio).astype(dtype),
      direction_state=direction_state,
    )
    finite = _step.finite_from(phi, f_i)  # a non-finite g makes φ = η⟨g, W g⟩ non-finite
    return _step.skip_if_not_finite(finite, step, new_state, state)

  # the horizon: the steps anneal after the rule, f₊ sees the undecayed step
  tx = optax.GradientTransformationExtraArgs(init_fn, update_fn)
  return _step.anneal(tx, decay_steps)


@_step.descent(scale_by_probabilistic_lr)
def probabilistic_lr():
  r"""A base optimizer with de Roos et al.'s learning-rate adaptation (Alg. 1).

  With :math:`f_i` = ``value``, :math:`g_i` the gradient, :math:`W(g_i)` the direction (Tab. 1):

  .. math::

    v_i &= \eta\, W(g_i), \qquad \phi_i = g_i^\top v_i
        &&\text{(lines 5–6)}\\
    \Delta f &= f_i - f^* \ \text{if}\ f^*\ \text{is given, else}\ \phi_i / 2
        &&\text{(lines 8–12, Eq. 14)}\\
    \theta_{i+1} &= \theta_i - v_i\, \frac{2\,\Delta f}{\phi_i + R_i}
        &&\text{(line 13, Eq. 12)}\\
    \rho &= \frac{f_i - f_+}{\phi_i / 2}, \quad f_+ = L(\theta_{i+1})
        &&\text{(lines 15–16)}\\
    \eta &\leftarrow 1.2\,\eta \ \text{if}\ \rho > 4/3, \quad
        \tfrac12\,\eta \ \text{if}\ \rho < 3/4 &&\text{(lines 16–19)}.

  One global η, one extra forward pass a step. Unlike Alg. 1 (why: docs/methods/
  probabilistic_lr.md), a step with :math:`\phi_i \le 0` (uphill momentum or Adam
  metric, §2.3) is not taken (``state.uphill``), :math:`\Delta f` is clipped at 0, with
  ``safeguard`` a step that does not lower :math:`f_+` is not taken, and where
  :math:`\phi_i/2` is below 16 ulps of :math:`f_i` (ρ is rounding noise) η grows.

  Args:
    learning_rate: initial η (> 0), the prior covariance's scale (§4.4: 1e-4 … 1e-3).
    f_min: the lower bound :math:`f^*` of the loss; ``None``: the implied quadratic.
    noise_variance: :math:`R \ge 0`, or the factor of :math:`|f_i|` when ``relative_noise``.
    relative_noise: :math:`R_i` = ``noise_variance`` · :math:`|f_i|` (App. A).
    increase_factor: :math:`\alpha_\uparrow` ≥ 1 (1.2).
    decrease_factor: :math:`\alpha_\downarrow` in (0, 1] (1/2).
    increase_threshold: ρ above which η grows; ``None``: 4/3, or 1 with ``decay_steps``.
    decrease_threshold: ρ below which η shrinks; ``None``: 3/4, or 1/4 with ``decay_steps``.
    max_scale: cap on the factor :math:`2\Delta f/(\phi+R)` (SPS_max's; for ``f_min``
      with a momentum or Adam metric); ``None``: none (the paper).
    adapt_every: adapt η (and evaluate :math:`f_+`) every k-th step (a static int
      ≥ 1), or a callable ``count -> bool``; ``None``: every step.
    safeguard: without ``f_min``, a step whose :math:`f_+` is not below :math:`f_i`
      is not taken; ``False``: Alg. 1, which takes it.
    decay_steps: T, the run's number of updates (``None``: the paper): the steps
      are multiplied by a cosine decay to 0 over T updates after the rule
      (:math:`f_+` sees the undecayed step), and the thresholds default to 1, 1/4
      instead of Alg. 1's 4/3, 3/4.
    direction, momentum, nesterov, min_learning_rate, max_learning_rate, weight_decay, mask: the
      shared options, see docs/options.md.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (updates :math:`-v_i\,2\Delta f/(\phi_i+R_i)`,
    a :class:`ProbabilisticLRState`); ``update`` needs ``params``, ``value``, ``value_fn``.

  Raises:
    ValueError: for bad hyperparameters, or a missing ``value``, ``value_fn`` or ``params``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
    >>> x = jax.random.normal(jax.random.key(0), (64, 4)); y = x @ jnp.ones(4)
    >>> opt = adaptlr.probabilistic_lr(1e-5, direction=optax.scale_by_adam(b1=0.5))  # η₀ tiny
    >>> w = jnp.zeros(4); state = opt.init(w)
    >>> for _ in range(150):
    ...   value, grad = jax.value_and_grad(loss)(w, x, y)
    ...   updates, state = opt.update(grad, state, w, value=value, value_fn=loss, x=x, y=y)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w, x, y) < 1e-2)
    True

    >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> opt = adaptlr.probabilistic_lr(1e-3)  # SGD
    >>> w = jnp.zeros(2); state = opt.init(w)
    >>> for _ in range(20):
    ...   value, grad = jax.value_and_grad(loss)(w)
    ...   updates, state = opt.update(grad, state, w, value=value, value_fn=loss)
    ...   w = optax.apply_updates(w, updates)
    >>> float(optax.tree.get(state, "learning_rate")) > 1e-3  # η grew, × 1.2 a step
    True

  References:
    de Roos et al., `A Probabilistically Motivated Learning Rate Adaptation for
    Stochastic Optimization <https://arxiv.org/abs/2102.10880>`_, 2021: Eq. 12,
    Tab. 1, Alg. 1, Eq. 14, App. A.
  """
