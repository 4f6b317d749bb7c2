"""Hypergradient descent: gradient descent on the learning rate.

The loss after a step, f(η) = L(w − η u), has the slope −⟨g_t, u_{t−1}⟩ at the rate
just used (Ravaut & Gorti Eq. 4, TLR Eq. 7, Baydin et al.), so one step on η is

    η_t = η_{t−1} + β ⟨g_t, u_{t−1}⟩.

References:
  M. Ravaut, S. Gorti, Gradient descent revisited via an adaptive online learning rate,
  arXiv:1801.09136 (2018), §3.1. Trainable Learning Rate, anonymous submission to ICLR
  2022 (OpenReview), Alg. 1, App. D.4. A. G. Baydin, R. Cornish, D. Martínez Rubio,
  M. Schmidt, F. Wood, Online Learning Rate Adaptation with Hypergradient Descent,
  ICLR 2018, arXiv:1703.04782.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adaptlr import _loss, _step, _validate
from adaptlr import probes as _probes
from adaptlr._granularity import GranularityLike, Rates, granularity_from, rate_dtype

# Extra args hypergradient descent reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()
_NAME = "hypergradient"


class HypergradientState(NamedTuple):
  """State of :func:`scale_by_hypergradient`."""

  learning_rate: Rates  # η per group (a scalar, a pytree of scalars, or per element)
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32 (): non-finite steps skipped
  prev_direction: optax.Updates  # u_{t−1} (zeros before the first step); () with lookahead
  direction_state: optax.OptState  # state of ``direction``; () for SGD


def _hypergradient_rate(rate, slope, norm, hyper_lr, multiplicative):
  """η_t for one group from η_{t−1}, the slope ⟨g_t, u_{t−1}⟩ and ‖g_t‖‖u_{t−1}‖ (Eq. 3)."""
  if multiplicative:
    new = rate * (1.0 + hyper_lr * _step.safe_div(slope, norm))
  else:
    new = rate + hyper_lr * slope
  return new.astype(rate.dtype)


def _divergence_brake(new, rate, slope, prev_sq):
  """η_{t−1}/(1 + k), the secant step along g_{t−1}, where SGD diverges; elsewhere ``new``.

  k = −⟨g_t, g_{t−1}⟩/‖g_{t−1}‖² > 1; as :func:`adaptlr.tlr`'s safeguard.
  """
  k = -_step.safe_div(slope, prev_sq)
  diverging = (prev_sq > 0) & (k > 1.0)
  return jnp.where(diverging, rate / (1.0 + jnp.where(diverging, k, 0.0)), new).astype(new.dtype)


def scale_by_hypergradient(
  learning_rate: Any = 0.01,
  *,
  hyper_lr: Any = 1e-3,
  multiplicative: bool = False,
  lookahead: bool = False,
  granularity: GranularityLike = "global",
  direction: Optional[optax.GradientTransformation] = None,
  momentum: Optional[Any] = None,
  nesterov: bool = False,
  safeguard: bool = True,
  min_learning_rate: Optional[Any] = 0.0,  # None: −inf (Baydin et al.)
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the search direction by a rate learned by hypergradient descent (Eq. 3–4).

  The building block of :func:`hypergradient` (see there for the rules and every
  option): its updates are :math:`+\eta u`, for ``optax.chain``; its state a
  :class:`HypergradientState`.
  """
  learning_rate = _validate.learning_rate(learning_rate, _NAME)
  _validate.weight_decay(weight_decay, mask)
  _validate.flag("multiplicative", multiplicative)
  _validate.flag("lookahead", lookahead)
  _validate.flag("safeguard", safeguard)
  _validate.positive("hyper_lr", hyper_lr, allow_zero=True)
  if min_learning_rate is None:  # Baydin et al.: no clamp
    min_learning_rate = -jnp.inf
  _validate.bounds(min_learning_rate, max_learning_rate, signed_min=True)
  if multiplicative and lookahead:
    raise ValueError(
      "multiplicative=True and lookahead=True cannot be combined: the look-ahead slope comes "
      "from a jvp, which has no gradient norm to normalize by. Use one or the other."
    )
  groups = granularity_from(granularity)
  direction = _step.search_direction(direction, _NAME, momentum, nesterov)
  brake = safeguard and direction is None and not (multiplicative or lookahead)

  def init_fn(params: optax.Params) -> HypergradientState:
    return HypergradientState(
      learning_rate=_step.initial_rates(
        groups, params, learning_rate, rate_dtype(params), min_learning_rate, max_learning_rate
      ),
      **_step.counters(),
      prev_direction=() if lookahead else optax.tree.zeros_like(params),
      direction_state=_step.direction_init(direction, params),
    )

  def lookahead_slope(params, u, rate, extra_args):
    """−∂_α L(w − α u) at α_t (TLR Eq. 7 at the look-ahead point), per group."""
    name = f"{_NAME}(lookahead=True)"
    _loss.require_params(params, name)
    why = " to take the slope at the look-ahead point w − αu"
    value_fn = _loss.get_value_fn(extra_args, name, why, params=params)
    if groups.kind == "global":
      _, slope = _probes.line_derivatives(value_fn, params, u, rate, order=1)
      return -slope
    ahead = jax.tree.map(lambda w, s: (w - s).astype(w.dtype), params, groups.scale(rate, u))
    return groups.vdot(jax.grad(value_fn)(ahead), u, rate_dtype(rate))

  def update_fn(updates, state, params=None, **extra_args):
    grads, u, direction_state, extra_args = _step.direction_and_decay(
      direction, updates, state.direction_state, params, extra_args, weight_decay, mask, _NAME
    )
    rate = state.learning_rate
    dtype = rate_dtype(rate)
    if lookahead:  # TLR Alg. 1, lines 4–5
      ip = lookahead_slope(params, u, rate, extra_args)
    else:
      ip = groups.vdot(grads, state.prev_direction, dtype)  # −f′(η_{t−1}), Eq. 4
    if multiplicative:  # ‖g_t‖‖u_{t−1}‖
      sq_g, sq_u = groups.sq_norm(grads, dtype), groups.sq_norm(state.prev_direction, dtype)
      norms = jax.tree.map(lambda a, b: jnp.sqrt(a * b), sq_g, sq_u)
    else:
      norms = ip  # unused by Eq. 3
    rule = lambda r, h, n: _hypergradient_rate(r, h, n, hyper_lr, multiplicative)
    new_rate = jax.tree.map(rule, rate, ip, norms)
    if brake:  # see docs/methods/hypergradient.md, "Safeguard"
      prev_sq = groups.sq_norm(state.prev_direction, dtype)  # ‖g_{t−1}‖²
      new_rate = jax.tree.map(_divergence_brake, new_rate, rate, ip, prev_sq)
    # Eq. 13: the clamp
    new_rate = _step.clip_rates(new_rate, min_learning_rate, max_learning_rate, state.count)

    new_updates = groups.scale(new_rate, u)
    new_state = HypergradientState(
      learning_rate=new_rate,
      **_step.next_counters(state),
      prev_direction=() if lookahead else optax.tree.cast_like(u, state.prev_direction),
      direction_state=direction_state,
    )
    finite = _step.finite_from((ip, new_rate), extra_args.get("value"))
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@_step.descent(scale_by_hypergradient)
def hypergradient():
  r"""SGD (or any direction) with hypergradient descent on the learning rate.

  With :math:`f(\eta) = L(w_{t-1} - \eta u_{t-1})`, whose slope at the rate just
  used is :math:`f'(\eta_{t-1}) = -\langle g_t, u_{t-1}\rangle`, the additive rule
  (Ravaut & Gorti §3.1 Eq. 3–4, TLR App. D.4, Baydin et al.'s SGD-HD) is

  .. math::

    \eta_t = \max\big(\eta_{t-1} + \beta \langle g_t, u_{t-1}\rangle,\;
             \eta_{\min}\big), \qquad w_{t+1} = w_t - \eta_t u_t .  \qquad (3)

  ``multiplicative=True`` (Baydin et al.) normalizes the step,
  :math:`\eta_t = \eta_{t-1}(1 + \beta \cos(g_t, u_{t-1}))`; ``lookahead=True``
  (TLR's naive GD-TLR, Alg. 1) takes the slope at the point the step is about
  to reach, :math:`\partial_\alpha L(w_t - \alpha u_t)|_{\alpha_t}`, from
  ``value_fn`` (one extra pass). :math:`\beta` is in units of 1/‖g‖² and must be
  tuned per problem (TLR Fig. 2), which is why :func:`adaptlr.tlr` exists.

  * **Clamp**: :math:`\eta_{\min} = 0` is TLR App. D.4; Ravaut & Gorti (Eq. 13)
    floor at 1e-6; Baydin et al. do not clamp (``min_learning_rate=None``).
  * **Safeguard** (default, SGD-HD only): on a detected divergence,
    :math:`k = -\langle g_t, g_{t-1}\rangle/\|g_{t-1}\|^2 > 1`, η is set to the
    secant line-search step :math:`\eta_{t-1}/(1+k)`, as :func:`adaptlr.tlr`'s.
  * **On networks** the default settles at a one-step greedy rate, 11–540× below
    the best fixed rate: it does not remove the sweep.

  See docs/methods/hypergradient.md for the measured story.

  Args:
    learning_rate: initial rate :math:`\eta_0` (> 0).
    hyper_lr: :math:`\beta \ge 0`, the hypergradient step size (Baydin et
      al.'s SGD-HD runs: 1e-3).
    multiplicative: the normalized multiplicative rule (Baydin et al.).
    lookahead: TLR Alg. 1, the slope at the look-ahead point from
      ``value_fn``; not combinable with ``multiplicative``.
    safeguard: on a detected divergence of SGD-HD (no direction), η is set to
      the secant line-search step; ``False`` is Baydin et al.'s rule.
    min_learning_rate: the clamp :math:`\eta_{\min}` (default 0, TLR App.
      D.4); ``None`` (= ``-inf``): Baydin et al.'s rule, η may turn negative.
    granularity, direction, momentum, nesterov, max_learning_rate, weight_decay, mask: the
      shared options, see docs/options.md
      (``momentum=0.9, nesterov=True``: SGDN-HD; ``optax.scale_by_adam()``: Adam-HD).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with updates :math:`-\eta u`
    and a :class:`HypergradientState`.

  Raises:
    ValueError: for a bad option (see docs/options.md), ``multiplicative``
      with ``lookahead``, or (at update time) ``lookahead`` without ``value_fn``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
    >>> x = jax.random.normal(jax.random.key(0), (32, 3)); y = x @ jnp.ones(3)
    >>> opt = adaptlr.hypergradient(0.01, hyper_lr=1e-3, lookahead=True)
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> for _ in range(100):
    ...   g = jax.grad(loss)(w, x, y)
    ...   updates, state = opt.update(g, state, w, value_fn=loss, x=x, y=y)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w, x, y) < 1e-2)
    True
    >>> opt = adaptlr.hypergradient(0.01, hyper_lr=0.01)
    >>> w = jnp.array([3.0, -1.0]); state = opt.init(w)
    >>> for _ in range(3):
    ...   updates, state = opt.update(2 * w, state, w)
    ...   w = optax.apply_updates(w, updates)
    >>> float(optax.tree.get(state, "learning_rate")) > 0.01
    True

  References:
    Ravaut & Gorti, Gradient descent revisited via an adaptive online learning
    rate, arXiv:1801.09136, §3.1, Eq. 3–4 and 13. Trainable Learning Rate,
    ICLR 2022 submission, Alg. 1 and App. D.4. Baydin et al., Online Learning
    Rate Adaptation with Hypergradient Descent, ICLR 2018, arXiv:1703.04782.
  """
