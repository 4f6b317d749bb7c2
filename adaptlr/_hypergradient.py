"""First-order learning-rate rules: gradient descent on the learning rate.

The loss after a step, as a function of the rate, is f(η) = L(w − η u). Its
slope at the rate just used is −⟨g_t, u_{t−1}⟩ (Ravaut & Gorti Eq. 4, TLR
Eq. 7, Baydin et al.'s hypergradient), so one step of gradient descent on η is

    η_t = η_{t−1} + β ⟨g_t, u_{t−1}⟩.

References:
  M. Ravaut, S. Gorti, Gradient descent revisited via an adaptive online
  learning rate, arXiv:1801.09136 (2018), §3.1.
  Trainable Learning Rate, anonymous submission to ICLR 2022 (OpenReview),
  Alg. 1 and App. D.4.
  A. G. Baydin, R. Cornish, D. Martínez Rubio, M. Schmidt, F. Wood, Online
  Learning Rate Adaptation with Hypergradient Descent, ICLR 2018,
  arXiv:1703.04782.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from adaptlr import _loss, _step, _validate
from adaptlr import probes as _probes
from adaptlr._granularity import GranularityLike, granularity_from, rate_dtype

# Extra args hypergradient descent reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()


class HypergradientState(NamedTuple):
  """State of :func:`scale_by_hypergradient`."""

  learning_rate: Any  # η per group
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32: non-finite steps skipped
  prev_direction: Any  # u_{t−1} (zeros before the first step; () with lookahead)
  direction_state: Any  # state of ``direction`` (() for SGD)


def _hypergradient_rate(rate, slope, norm, *, hyper_lr, multiplicative):
  """η_t for one group from η_{t−1} and the slope ⟨g_t, u_{t−1}⟩ = −f′(η_{t−1}).

  Additive (Eq. 3): η_{t−1} + β⟨g_t, u_{t−1}⟩; multiplicative (Baydin et al.):
  η_{t−1}(1 + β⟨g_t, u_{t−1}⟩ / (‖g_t‖‖u_{t−1}‖)), ``norm`` = ‖g_t‖‖u_{t−1}‖.
  """
  if multiplicative:
    new = rate * (1.0 + hyper_lr * _step.safe_div(slope, norm))
  else:
    new = rate + hyper_lr * slope
  return new.astype(rate.dtype)


def _divergence_brake(new, rate, slope, prev_sq):
  """η_t = η_{t−1}/(1 + k) when SGD diverges, k = −⟨g_t, g_{t−1}⟩/‖g_{t−1}‖² > 1.

  The secant (exact quadratic line-search) step along g_{t−1}, as
  :func:`adaptlr.tlr`'s safeguard; otherwise ``new`` (Baydin et al.'s rule).
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
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the search direction by a rate learned by hypergradient descent.

  The building block of :func:`hypergradient` (see there for the rules, Eq. 3–4,
  and every argument); its updates are :math:`+\eta u`, for ``optax.chain``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with a :class:`HypergradientState`.
  """
  _validate.learning_rate(learning_rate, "hypergradient")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.positive("hyper_lr", hyper_lr, allow_zero=True)
  if min_learning_rate is None:  # Baydin et al.: no clamp
    min_learning_rate = -jnp.inf
  _validate.bounds(min_learning_rate, max_learning_rate, signed_min=True)
  if multiplicative and lookahead:
    raise ValueError(
      "multiplicative=True and lookahead=True cannot be combined: the "
      "look-ahead slope comes from a jvp, which has no gradient norm to "
      "normalize by. Use one or the other."
    )
  groups = granularity_from(granularity)
  direction = _step.search_direction(direction, "hypergradient", momentum, nesterov)
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
    _loss.require_params(params, "hypergradient(lookahead=True)")
    value_fn = _loss.get_value_fn(
      extra_args,
      "hypergradient(lookahead=True)",
      " to take the slope at the look-ahead point w − αu",
      params=params,
    )
    if groups.kind == "global":
      _, slope = _probes.line_derivatives(value_fn, params, u, rate, order=1)
      return -slope
    ahead = jax.tree.map(lambda w, s: (w - s).astype(w.dtype), params, groups.scale(rate, u))
    return groups.vdot(jax.grad(value_fn)(ahead), u, rate_dtype(rate))

  def update_fn(
    updates: optax.Updates,
    state: HypergradientState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, HypergradientState]:
    grads, u, direction_state, extra_args = _step.direction_and_decay(
      direction,
      updates,
      state.direction_state,
      params,
      extra_args,
      weight_decay,
      mask,
      "hypergradient",
    )
    rate = state.learning_rate
    dtype = rate_dtype(rate)
    if lookahead:  # TLR Alg. 1, lines 4–5
      ip = lookahead_slope(params, u, rate, extra_args)
    else:
      ip = groups.vdot(grads, state.prev_direction, dtype)  # −f′(η_{t−1}), Eq. 4
    if multiplicative:  # ‖g_t‖‖u_{t−1}‖
      norms = jax.tree.map(
        lambda a, b: jnp.sqrt(a * b),
        groups.sq_norm(grads, dtype),
        groups.sq_norm(state.prev_direction, dtype),
      )
    else:
      norms = ip  # unused by Eq. 3
    new_rate = jax.tree.map(
      lambda r, h, n: _hypergradient_rate(
        r, h, n, hyper_lr=hyper_lr, multiplicative=multiplicative
      ),
      rate,
      ip,
      norms,
    )
    if brake:  # see hypergradient()
      prev_sq = groups.sq_norm(state.prev_direction, dtype)  # ‖g_{t−1}‖²
      new_rate = jax.tree.map(_divergence_brake, new_rate, rate, ip, prev_sq)
    new_rate = _step.clip_rates(  # Eq. 13
      new_rate, min_learning_rate, max_learning_rate, state.count
    )

    new_updates = groups.scale(new_rate, u)
    new_state = HypergradientState(
      learning_rate=new_rate,
      count=jnp.asarray(optax.safe_increment(state.count)),
      skipped=state.skipped,
      prev_direction=() if lookahead else optax.tree.cast_like(u, state.prev_direction),
      direction_state=direction_state,
    )
    finite = _step.finite_from((ip, new_rate), extra_args.get("value"))
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


@_step.descent(scale_by_hypergradient)
def hypergradient():
  r"""SGD (or any direction) with hypergradient descent on the learning rate.

  **Additive** (default; Ravaut & Gorti §3.1 Eq. 3–4, TLR App. D.4, Baydin et
  al. SGD-HD). With :math:`f(\eta) = L(w_{t-1} - \eta u_{t-1})`,
  :math:`f'(\eta_{t-1}) = -\langle g_t, u_{t-1}\rangle`, so

  .. math::

    \eta_t = \max\big(\eta_{t-1} + \beta \langle g_t, u_{t-1}\rangle,\;
             \eta_{\min}\big), \qquad w_{t+1} = w_t - \eta_t u_t .  \qquad (3)

  **Clamp.** The default :math:`\eta_{\min} = 0` is TLR App. D.4
  (:math:`\alpha_{t+1} = \max(0, \alpha_t + \eta\langle g_t, g_{t-1}\rangle)`);
  Ravaut & Gorti Eq. 13 floor at :math:`\delta = 10^{-6}`
  (``min_learning_rate=1e-6``); Baydin et al.'s SGD-HD, Adam-HD and their
  code (``gbaydin/hypergradient-descent``) do not clamp: the rate may turn
  negative, a step uphill (``min_learning_rate=None``, or ``-jnp.inf``).

  **Defaults and where they come from.** ``hyper_lr`` β = 1e-3: Baydin et
  al.'s SGD-HD / SGDN-HD runs (``run.sh``: logistic regression, MLP and VGG
  on MNIST / CIFAR-10 with η₀ = 1e-3; their code's own default is 1e-6, and
  Adam-HD uses 1e-7 – 1e-8). ``learning_rate`` η₀ = 0.01 is adaptlr's common
  initial rate, not a paper's (Baydin et al. start at 1e-3, TLR App. D.4 at
  0.1). ``min_learning_rate`` = 0: TLR App. D.4, as above. The additive rule
  is Baydin et al.'s and Ravaut & Gorti's Eq. 3–4; ``multiplicative`` and
  ``lookahead`` are off by default.

  **On networks** the default stays and does not remove the sweep: it settles at
  a one-step greedy rate, the same from every small η₀ and 11–540× below the best
  fixed (effective) rate (``network_rates.md``); on heavy-ball momentum it won the
  design networks but diverged on the held-out F-MNIST MLP
  (``benchmarks/results/network_defaults.md``).

  **Multiplicative** (``multiplicative=True``, Baydin et al. §"multiplicative
  rule"): the step is scale-free,

  .. math::

    \eta_t = \eta_{t-1}\Big(1 + \beta
      \frac{\langle g_t, u_{t-1}\rangle}{\|g_t\|\,\|u_{t-1}\|}\Big).

  **Lookahead** (``lookahead=True``, TLR's naive GD-TLR, Alg. 1): the slope is
  taken at the point the step is about to reach, on the same batch,
  :math:`\partial_\alpha L(w_t - \alpha u_t)|_{\alpha_t}`, then
  :math:`\alpha_{t+1} = \alpha_t - \beta\,\partial_\alpha L`, then the step
  :math:`w_{t+1} = w_t - \alpha_{t+1} u_t`. It needs ``value_fn`` and costs one
  extra pass: a forward-mode ``jax.jvp`` along :math:`u_t` for a global rate,
  a gradient at the look-ahead point for per-group rates (one slope per group).

  With ``direction`` (``optax.trace(0.9)`` for SGDN-HD,
  ``optax.scale_by_adam()`` for Adam-HD) :math:`u` is the direction, else the
  gradient. :math:`\beta` (``hyper_lr``) is a meta learning rate in units of
  1/‖g‖² for the additive rule: it must be tuned per problem (TLR Fig. 2,
  App. D.4) — which is why :func:`adaptlr.tlr` and :func:`adaptlr.newton_lr`
  exist.

  **Safeguard** (``safeguard=True``, SGD-HD only). With β in units of 1/‖g‖²,
  large gradients make the additive rule overshoot: once the iterates diverge
  (:math:`g_t \approx -k g_{t-1}`, :math:`k > 1`) it drives η to the clamp and
  then, from a step of 0, jumps by :math:`\beta\|g\|^2`. On detected
  divergence, :math:`k = -\langle g_t, g_{t-1}\rangle/\|g_{t-1}\|^2 > 1`, η is
  set to the secant line-search step :math:`\eta_{t-1}/(1+k)` (as
  :func:`adaptlr.tlr`'s safeguard); elsewhere the rule is Baydin et al.'s.
  Measured (``benchmarks/results/safeguards_optax.md``): with the default
  β = 1e-3, Rosenbrock (optax's contrib problems, 30k steps) diverges from
  η₀ = 1e-3 and 1e-2 with Baydin et al.'s rule and is solved with the
  safeguard (|w − w*| ≈ 5e-5; from η₀ = 0.1, ten times the stability limit
  there, it still diverges); on sklearn digits softmax regression (batch 64, 20 epochs) the
  final losses are unchanged. With a momentum or Adam direction it is off:
  heavy-ball gradients oscillate without diverging, and there the test fired
  spuriously.

  Args:
    learning_rate: initial rate :math:`\eta_0` (> 0).
    hyper_lr: :math:`\beta \ge 0`, the hypergradient step size (Baydin et
      al.'s runs use 1e-3 for SGD-HD with η₀ = 1e-3).
    multiplicative: use the normalized multiplicative rule.
    lookahead: TLR Alg. 1 (slope at the look-ahead point from ``value_fn``);
      not combinable with ``multiplicative``.
    granularity: ``"global"``, ``"leaf"``, ``"element"`` or labels.
    direction: optional optax transformation for the search direction
      (``optax.trace(0.9)``: SGDN-HD; ``optax.scale_by_adam()``: Adam-HD),
      a ``scale_by_*`` transformation: a full optimizer (``optax.adam(lr)``)
      points uphill and is an error.
    momentum: heavy-ball momentum as in ``optax.sgd`` (Baydin et al.'s
      SGDN-HD with ``nesterov=True``): ``direction=optax.trace(momentum,
      nesterov)``. ``None``: none.
    nesterov: Nesterov momentum (needs ``momentum``).
    safeguard: on detected divergence of SGD-HD (no direction), set η to the
      secant line-search step (see above); ``False`` is Baydin et al.'s rule.
    min_learning_rate: lower clamp (default 0, TLR App. D.4); any number, or
      ``None`` (= ``-inf``) for Baydin et al.'s unclamped rule (the rate may
      go negative).
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
    :math:`-\eta u`, ready for ``optax.apply_updates``
    (:func:`scale_by_hypergradient` followed by ``optax.scale(-1)``); its state
    holds a :class:`HypergradientState`.

  Raises:
    ValueError: for bad hyperparameters, or at update time when
      ``lookahead=True`` and no ``value_fn`` was passed.

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
