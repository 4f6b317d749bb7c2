"""Trainable Learning Rate: efficient GD-TLR (Alg. 2), global and per-layer.

The rate is a trainable parameter of L_α(α) = L(w_t − α g_t) (Eq. 2), moved by one
bounded Newton step whose derivatives come from consecutive gradients (Eq. 7–9):

    α_{t+1} = α_t (1 + ⟨g_t, g_{t−1}⟩ / max(4⟨g_t, g_t − g_{t−1}⟩, ⟨g_t, g_{t−1}⟩ / c)).

References:
  Trainable Learning Rate, anonymous submission to ICLR 2022 (OpenReview):
  Eq. 2, 7–10, Alg. 1–2, App. D.2.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple, Optional, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptlr import _step, _validate
from adaptlr._granularity import GranularityLike, Rates, granularity_from, rate_dtype

# Extra args TLR reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()
# What replaces g in Eq. 7–9 with a search direction (see docs/methods/tlr.md).
InnerProducts = Literal["gradient", "displacement"]
INNER_PRODUCTS = get_args(InnerProducts)


class TLRState(NamedTuple):
  """State of :func:`scale_by_tlr`. Per-group fields: one () array per group."""

  learning_rate: Rates  # α per group (a scalar, a pytree of scalars, or per element)
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32 (): non-finite steps skipped
  prev_direction: optax.Updates  # u_{t−1} (g_{t−1} for SGD); accumulating: last window's sum
  prev_inner: Rates  # per group: ⟨g_{t−1}, u_{t−1}⟩ (‖g_{t−1}‖² for SGD), for the safeguard
  ceiling: Rates  # per group: the safeguard's cap after a detected divergence (inf before)
  bound: Rates  # per group: the next update's c (Eq. 9); () unless max_bound (cold start)
  grad_sum: optax.Updates  # ∑ g over the window; () unless accumulation_steps > 1
  direction_sum: optax.Updates  # ∑ u over the window; () unless accumulating with a direction
  direction_state: optax.OptState  # state of ``direction``; () for SGD


def _tlr_rate(rate, ceiling, bound, ip, gu, prev_gu, base_bound, max_bound, safeguard, window):
  """Eq. 7–9 for one group: (α_{t+1}, ceiling, next c) from α_t and the inner products.

  ip = ⟨g_t, u_{t−1}⟩ (−∂L/∂α, Eq. 7), gu = ⟨g_t, u_t⟩ (4(gu − ip) is α·∂²L/∂α², Eq. 8),
  prev_gu = ⟨g_{t−1}, u_{t−1}⟩; ``window``: the accumulation steps K.
  """
  # For SGD gu = ‖g_t‖² ≥ 0, which keeps α_{t+1}/α_t in (3/4, 1 + c]; a direction
  # can point uphill (gu < 0): floor gu at 0 to keep that range (α stays > 0).
  gu = jnp.maximum(gu, 0.0)
  newton = 4.0 * (gu - ip)
  den = jnp.maximum(newton, ip / bound)  # Eq. 9
  ratio = _step.safe_div(ip, den)  # 0/0 keeps α
  new = rate * (1.0 + ratio)  # Alg. 2, line 5
  capped = (ip > 0) & (ip / bound > newton)
  # Cold start: a capped update doubles the next c (up to max_bound), else resets it.
  next_bound = jnp.where(capped, jnp.minimum(2.0 * bound, max_bound), base_bound)
  if safeguard:
    # Divergence: k = −ip / prev_gu > 1 (1-D: |1 − αλ| > 1); brake to the secant
    # step along u_{t−1}, α/(1 + k^{1/K}); K > 1: a ceiling of 1.5× the braked rate
    # from then on; an even K also reads a same-sign sum that more than doubled
    # (k < −2) as a divergence, which must not widen c either (docs/methods/tlr.md).
    k = -ip / jnp.where(prev_gu > 0, prev_gu, 1.0)
    diverging = (prev_gu > 0) & (k > 1.0)
    if window % 2 == 0:
      aliased = (prev_gu > 0) & (-k > 2.0)
      diverging = diverging | aliased
      k = jnp.abs(k)
    braked = rate / (1.0 + jnp.where(diverging, k, 1.0) ** (1.0 / window))
    new = jnp.where(diverging, jnp.minimum(new, braked), new)
    if window > 1:
      ceiling = jnp.where(diverging, jnp.minimum(ceiling, 1.5 * braked), ceiling)
      new = jnp.minimum(new, ceiling)
    next_bound = jnp.where(diverging, base_bound, next_bound)
  return new.astype(rate.dtype), ceiling.astype(rate.dtype), next_bound.astype(rate.dtype)


def _check_max_bound(max_bound, bound):
  """Raises ``ValueError`` if concrete values give max_bound < bound or not finite."""
  mb, b = _validate.concrete(max_bound), _validate.concrete(bound)
  if mb is not None and not np.all(np.isfinite(mb)):
    raise ValueError(f"tlr: max_bound must be finite (1: at most doubling), got {max_bound!r}.")
  if mb is not None and b is not None and np.any(np.asarray(mb) < np.asarray(b)):
    raise ValueError(
      f"tlr: max_bound must be >= bound (the cold start only widens c), got max_bound="
      f"{max_bound!r} < bound={bound!r}; pass max_bound=None for the paper's fixed bound."
    )


def scale_by_tlr(
  learning_rate: Any = 0.01,
  *,
  bound: Any = 0.25,
  max_bound: Any = None,
  granularity: GranularityLike = "global",
  accumulation_steps: Optional[int] = None,
  momentum: Optional[float] = None,
  nesterov: bool = False,
  direction: Optional[optax.GradientTransformation] = None,
  inner_products: InnerProducts = "gradient",
  safeguard: bool = True,
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the search direction by a learning rate trained with GD-TLR (Eq. 7–10).

  The building block of :func:`tlr` (see there for the rule and every option):
  its updates are :math:`+\alpha u`, for ``optax.chain``; its state a :class:`TLRState`.
  """
  learning_rate = _validate.learning_rate(learning_rate, "tlr")
  _validate.weight_decay(weight_decay, mask)
  _validate.flag("safeguard", safeguard)
  _validate.positive("bound", bound)
  cold_start = max_bound is not None
  max_bound = bound if max_bound is None else max_bound
  _validate.positive("max_bound", max_bound)
  _check_max_bound(max_bound, bound)
  k = accumulation_steps = _validate.integer(
    "accumulation_steps", 1 if accumulation_steps is None else accumulation_steps, 1
  )
  _validate.bounds(min_learning_rate, max_learning_rate)
  _validate.choice("inner_products", inner_products, INNER_PRODUCTS)
  groups = granularity_from(granularity)
  direction = _step.search_direction(direction, "tlr", momentum, nesterov)  # as optax.sgd
  displacement = inner_products == "displacement"
  accumulate = k > 1

  def init_fn(params: optax.Params) -> TLRState:
    dtype = rate_dtype(params)
    acc = lambda: optax.tree.zeros_like(params, dtype=dtype)
    return TLRState(
      learning_rate=_step.initial_rates(
        groups, params, learning_rate, dtype, min_learning_rate, max_learning_rate
      ),
      **_step.counters(),
      prev_direction=acc() if accumulate else optax.tree.zeros_like(params),
      prev_inner=groups.init_rates(params, 0.0, dtype),
      ceiling=groups.init_rates(params, jnp.inf, dtype),
      bound=groups.init_rates(params, bound, dtype) if cold_start else (),
      grad_sum=acc() if accumulate else (),
      direction_sum=acc() if (accumulate and direction is not None) else (),
      direction_state=_step.direction_init(direction, params),
    )

  def update_fn(updates, state, params=None, **extra_args):
    grads, u, direction_state, extra_args = _step.direction_and_decay(
      direction, updates, state.direction_state, params, extra_args, weight_decay, mask, "tlr"
    )
    if accumulate:  # Eq. 10
      window_g = grad_sum = optax.tree.add(state.grad_sum, grads)
      direction_sum = optax.tree.add(state.direction_sum, u) if direction is not None else ()
      window_u = direction_sum if direction is not None else grad_sum
      window_end, has_prev = (state.count + 1) % k == 0, state.count + 1 >= 2 * k
    else:
      window_g, window_u = grads, u
      window_end, has_prev = jnp.asarray(True), state.count >= 1

    dtype = rate_dtype(state.learning_rate)
    # Eq. 7–9 with a direction: "gradient" reads ⟨g_t, u_{t−1}⟩ and ⟨g_t, u_t⟩;
    # "displacement" reads G_t = (w_{t−K} − w_t)/α = U_t in both slots (Eq. 10, App. D).
    first = window_u if displacement else window_g
    ip = groups.vdot(first, state.prev_direction, dtype)  # ⟨g_t, u_{t−1}⟩, Eq. 7
    gu = groups.vdot(first, window_u, dtype)  # ⟨g_t, u_t⟩
    bounds = (
      state.bound if cold_start else jax.tree.map(lambda r: jnp.full_like(r, bound), state.ceiling)
    )
    rule = lambda r, m, c, a, b, p: _tlr_rate(r, m, c, a, b, p, bound, max_bound, safeguard, k)
    candidate, ceiling, next_bound = _step.map_rule(
      rule, state.learning_rate, state.ceiling, bounds, ip, gu, state.prev_inner
    )
    candidate = _step.clip_rates(candidate, min_learning_rate, max_learning_rate, state.count)
    adapt = window_end & has_prev
    rate = optax.tree.where(adapt, candidate, state.learning_rate)
    ceiling = optax.tree.where(adapt, ceiling, state.ceiling)
    next_bound = optax.tree.where(adapt, next_bound, state.bound) if cold_start else ()

    if accumulate:
      prev_direction = optax.tree.where(window_end, window_u, state.prev_direction)
      prev_inner = optax.tree.where(window_end, gu, state.prev_inner)
      zero_if_end = lambda t: optax.tree.where(window_end, optax.tree.zeros_like(t), t)
      grad_sum = zero_if_end(grad_sum)
      direction_sum = zero_if_end(direction_sum) if direction is not None else ()
    else:
      prev_direction = optax.tree.cast_like(u, state.prev_direction)
      prev_inner, grad_sum, direction_sum = gu, (), ()

    new_updates = groups.scale(rate, u)  # Alg. 2, line 6
    new_state = TLRState(
      learning_rate=rate,
      **_step.next_counters(state),
      prev_direction=prev_direction,
      prev_inner=prev_inner,
      ceiling=ceiling,
      bound=next_bound,
      grad_sum=grad_sum,
      direction_sum=direction_sum,
      direction_state=direction_state,
    )
    # ⟨g, u⟩ sees every entry of g (of the window sum, which includes g_t).
    finite = _step.finite_from((gu, ip), extra_args.get("value"))
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@_step.descent(scale_by_tlr)
def tlr():
  r"""SGD (or any search direction) with a Trainable Learning Rate (GD-TLR, Alg. 2).

  The rate is a trainable parameter of the loss after the step,
  :math:`L_\alpha(\alpha) = L(w_t - \alpha g_t)` (Eq. 2), moved by one bounded
  Newton step whose derivatives come from consecutive gradients (Eq. 7–9), per
  group of parameters (``granularity``):

  .. math::

    \alpha_{t+1} = \alpha_t \Big(1 + \frac{\langle g_t, g_{t-1}\rangle}
        {\max\big(4\langle g_t, g_t - g_{t-1}\rangle,\;
                  \langle g_t, g_{t-1}\rangle / c\big)}\Big),   \qquad (9)

  then :math:`w_{t+1} = w_t - \alpha_{t+1} g_t` (Alg. 2, l. 6), so
  :math:`\alpha_{t+1} \le (1 + c)\,\alpha_t`; the first step (no
  :math:`g_{t-1}`) and a zero gradient keep :math:`\alpha`.

  * **Safeguard** (default): on a detected divergence, :math:`g_t \approx -k g_{t-1}`,
    :math:`k > 1`, the rate is capped at the secant line-search step
    :math:`\alpha_t/(1+k)`; the paper's rule brakes by only :math:`1/(4(k+1))`.
  * **Minibatches** (Sec. 4, Eq. 10): consecutive minibatch gradients disagree, so
    ``accumulation_steps=K`` sums them over windows of K steps (paper: a third of
    an epoch) and moves the rate once per window, from the last two sums.
  * **Search direction and momentum**: the weights step along :math:`u_t`; Eq. 7–9
    read :math:`\langle g_t, u_{t-1}\rangle` and :math:`\langle g_t, u_t\rangle`: the
    paper's displacement form diverged in 14 of 60 runs where SGD converged.
  * **Cold start** (``max_bound``, off): a capped update doubles the next
    :math:`c`; not the default, as it diverges on a held-out LM from 5 of 6 rates.

  See docs/methods/tlr.md for the measured story.

  Args:
    learning_rate: initial rate :math:`\alpha_0` (> 0).
    bound: :math:`c > 0` of Eq. 9, the largest relative increase per update
      (paper: 1/4).
    max_bound: the cold start's largest :math:`c` (finite, ``>= bound``; 1: at
      most doubling); ``None`` (default): the paper's fixed ``bound``.
    accumulation_steps: the window K of Eq. 10, an int >= 1 (``None``: 1, full
      batch); static under ``optax.inject_hyperparams`` unless passed.
    inner_products: (reproduction) ``"displacement"`` reads the paper's momentum
      (App. D) in Eq. 7–9; ``"gradient"`` (default) adaptlr's, see above.
    safeguard: brake on a detected divergence; ``False`` is the paper's rule.
    granularity, direction, momentum, nesterov, min_learning_rate, max_learning_rate: the
      shared options, see docs/options.md (``granularity="leaf"`` is the paper's sgd_tlr_pl).
    weight_decay, mask: the shared options too.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with updates :math:`-\alpha u`
    and a :class:`TLRState`; ``optax.tree.get(state, "learning_rate")``: the rate(s).

  Raises:
    ValueError: for a bad option (see docs/options.md), or a ``max_bound`` below
      ``bound`` or not finite.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w: jnp.sum((w - 3.0) ** 2)
    >>> opt = adaptlr.tlr(learning_rate=1e-3)
    >>> w = jnp.zeros(4)
    >>> state = opt.init(w)
    >>> for _ in range(60):
    ...   updates, state = opt.update(jax.grad(loss)(w), state, w)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w) < 1e-3)
    True
    >>> float(optax.tree.get(state, "learning_rate")) > 1e-3  # the rate grew
    True

  References:
    Trainable Learning Rate, anonymous submission to ICLR 2022 (OpenReview),
    Eq. 2, 7–10, Alg. 2, App. D and D.2; the authors' code, github.com/georgeretsi/NTLR.
  """
