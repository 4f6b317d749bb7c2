"""Trainable Learning Rate: efficient GD-TLR (Alg. 2), global and per-layer.

The rate is a trainable parameter of the loss after the step,
L_α(α) = L(w_t − α g_t) (Eq. 2), moved by one bounded Newton step whose
derivatives come from consecutive gradients (Eq. 7–9):

    α_{t+1} = α_t (1 + ⟨g_t, g_{t−1}⟩ / max(4⟨g_t, g_t − g_{t−1}⟩, ⟨g_t, g_{t−1}⟩ / c)).

References:
  Trainable Learning Rate, anonymous submission to ICLR 2022 (OpenReview):
  Eq. 2, 7–10, Alg. 1–2, App. D.2.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptlr import _step, _validate
from adaptlr._granularity import GranularityLike, granularity_from, rate_dtype

# Extra args TLR reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()
# What replaces g in Eq. 7–9 with a search direction (see tlr).
INNER_PRODUCTS = ("gradient", "displacement")


class TLRState(NamedTuple):
  """State of :func:`scale_by_tlr`."""

  learning_rate: Any  # α per group (scalar, pytree of scalars, or per element)
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32: non-finite steps skipped
  prev_direction: Any  # u_{t−1} (= g_{t−1} for SGD); accumulating: the previous window's sum
  prev_inner: Any  # ⟨g_{t−1}, u_{t−1}⟩ per group (‖g_{t−1}‖² for SGD), for the safeguard
  ceiling: Any  # per group: the safeguard's cap after a detected divergence (inf before)
  bound: Any  # per group: this update's c (Eq. 9), widened by the cold start (() without it)
  grad_sum: Any  # ∑ g over the current window (() unless accumulation_steps > 1)
  direction_sum: Any  # ∑ u over the current window (() unless accumulating with a direction)
  direction_state: Any  # state of ``direction`` (() for SGD)


def _tlr_rate(rate, ceiling, bound, ip, gu, prev_gu, base_bound, max_bound, safeguard, window):
  """Eq. 7–9 for one group: (α_{t+1}, ceiling, next c) from α_t and the inner products.

  ip = ⟨g_t, u_{t−1}⟩ (−∂L/∂α, Eq. 7), gu = ⟨g_t, u_t⟩ (‖g_t‖², so 4(gu − ip) is
  α·∂²L/∂α², Eq. 8), prev_gu = ⟨g_{t−1}, u_{t−1}⟩; ``window`` = accumulation steps.
  Cold start: an update capped by c (Eq. 9's max is its second term) doubles the
  next update's c, up to ``max_bound``; an uncapped one resets it to ``base_bound``.
  """
  # For SGD gu = ‖g_t‖² ≥ 0, which keeps α_{t+1}/α_t in (3/4, 1 + c]; a direction
  # can point uphill (gu < 0): floor gu at 0 to keep that range (α stays > 0).
  gu = jnp.maximum(gu, 0.0)
  newton = 4.0 * (gu - ip)
  den = jnp.maximum(newton, ip / bound)  # Eq. 9
  ratio = _step.safe_div(ip, den)  # 0/0 keeps α
  new = rate * (1.0 + ratio)  # Alg. 2, line 5
  capped = (ip > 0) & (ip / bound > newton)
  next_bound = jnp.where(capped, jnp.minimum(2.0 * bound, max_bound), base_bound)  # cold start
  if safeguard:
    # Divergence: g_t's component along −u_{t−1} is longer than g_{t−1}'s own,
    # k = −ip / prev_gu > 1 (1-D: |1 − αλ| > 1). Over a window of K steps the
    # sums grow by k ≈ r^K for a per-step factor r, and the secant of f′(α)
    # along u_{t−1} puts the line-search step at α/(1 + r): brake to that
    # (α/(1+k) for K = 1). With K > 1 a divergence is seen a whole window late
    # and costs a factor r^K, so the rate also never again exceeds 1.5× the
    # braked rate (between the line-search step 1/λ and the stability limit 2/λ).
    # An even window sums an oscillation g, −r·g into sums of one sign, (−r)^K > 0,
    # which the rule reads as "speed up": there a same-sign sum that more than
    # doubled along u_{t−1} (k = ip / prev_gu > 2; a contraction never exceeds 1,
    # and a tiny rate, G_t ≈ G_{t−1}, gives k ≈ 1) is a divergence too.
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
    # (an odd window's divergence has ip < 0, already uncapped; an even window's
    # aliased one has ip > 0 and may be capped: it must not widen c)
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
  inner_products: str = "gradient",
  safeguard: bool = True,
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the search direction by a learning rate trained with GD-TLR.

  The building block of :func:`tlr` (see there for the rule, Eq. 7–10, and
  every argument); its updates are :math:`+\alpha u`, for ``optax.chain``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with a :class:`TLRState`.
  """
  _validate.learning_rate(learning_rate, "tlr")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.positive("bound", bound)
  cold_start = max_bound is not None
  max_bound = bound if max_bound is None else max_bound
  _validate.positive("max_bound", max_bound)
  _check_max_bound(max_bound, bound)
  accumulation_steps = _validate.integer(
    "accumulation_steps", 1 if accumulation_steps is None else accumulation_steps, 1
  )
  _validate.bounds(min_learning_rate, max_learning_rate)
  _validate.choice("inner_products", inner_products, INNER_PRODUCTS)
  groups = granularity_from(granularity)
  direction = _step.search_direction(direction, "tlr", momentum, nesterov)  # as optax.sgd
  displacement = inner_products == "displacement"
  k = accumulation_steps
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

  def update_fn(
    updates: optax.Updates,
    state: TLRState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, TLRState]:
    grads, u, direction_state, extra_args = _step.direction_and_decay(
      direction, updates, state.direction_state, params, extra_args, weight_decay, mask, "tlr"
    )
    if accumulate:  # Eq. 10
      grad_sum = optax.tree.add(state.grad_sum, grads)
      direction_sum = optax.tree.add(state.direction_sum, u) if direction is not None else ()
      window_g = grad_sum
      window_u = direction_sum if direction is not None else grad_sum
      window_end = (state.count + 1) % k == 0
      has_prev = state.count + 1 >= 2 * k
    else:
      window_g, window_u = grads, u
      window_end = jnp.asarray(True)
      has_prev = state.count >= 1

    dtype = rate_dtype(state.learning_rate)
    # Eq. 7–9 with a direction: "gradient" reads ⟨g_t, u_{t−1}⟩ and ⟨g_t, u_t⟩;
    # "displacement" reads G_t = (w_{t−K} − w_t)/α = U_t in both slots (Eq. 10, App. D).
    first = window_u if displacement else window_g
    ip = groups.vdot(first, state.prev_direction, dtype)  # ⟨g_t, u_{t−1}⟩, Eq. 7
    gu = groups.vdot(first, window_u, dtype)  # ⟨g_t, u_t⟩
    candidate, ceiling, next_bound = _step.map_rule(
      lambda r, m, c, a, b, p: _tlr_rate(r, m, c, a, b, p, bound, max_bound, safeguard, k),
      state.learning_rate,
      state.ceiling,
      state.bound if cold_start else jax.tree.map(lambda r: jnp.full_like(r, bound), state.ceiling),
      ip,
      gu,
      state.prev_inner,
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
      count=jnp.asarray(optax.safe_increment(state.count)),
      skipped=state.skipped,
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

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


@_step.descent(scale_by_tlr)
def tlr():
  r"""SGD (or any search direction) with a Trainable Learning Rate (GD-TLR, Alg. 2).

  The rate is a trainable parameter of the augmented loss
  :math:`L_\alpha(\alpha) = L(w_t - \alpha g_t)` (Eq. 2), updated by one
  bounded Newton step whose derivatives come from consecutive gradients
  (Eq. 7–9). Per group of parameters (``granularity``):

  .. math::

    \alpha_{t+1} = \alpha_t \Big(1 + \frac{\langle g_t, g_{t-1}\rangle}
        {\max\big(4\langle g_t, g_t - g_{t-1}\rangle,\;
                  \langle g_t, g_{t-1}\rangle / c\big)}\Big),   \qquad (9)

    w_{t+1} = w_t - \alpha_{t+1} g_t,                          \qquad \text{(Alg. 2, l. 6)}

  so :math:`\alpha_{t+1} \le (1 + c)\,\alpha_t`. The first step (no
  :math:`g_{t-1}`) keeps :math:`\alpha`; so does a zero gradient (no 0/0).

  **Cold start** (``max_bound``, adaptlr's, off by default): an update capped by
  :math:`c` doubles the next one's :math:`c`, up to ``max_bound``; an uncapped
  update or a detected divergence resets it to ``bound``. Not the default: on the
  networks profile it cuts the MNIST MLP's median regret 14.3 → 3.03 but diverges
  on the held-out LM from 5 of 6 initial rates (the paper's bound: 2 of 6;
  ``benchmarks/results/network_defaults.md``).

  **Safeguard** (``safeguard=True``, the default). When the iterates diverge,
  :math:`g_t \approx -k g_{t-1}` with :math:`k > 1`, and the paper's rule lowers
  :math:`\alpha` by only :math:`1/(4(k+1))` per step: the faster the divergence,
  the weaker the brake. The safeguard acts only on a detected divergence,
  :math:`k = -\langle g_t, u_{t-1}\rangle / \langle g_{t-1}, u_{t-1}\rangle > 1`
  (in 1-D exactly :math:`|1 - \alpha\lambda| > 1`), and then caps
  :math:`\alpha_{t+1}` at the secant (exact quadratic line-search) step along
  the previous direction, :math:`\alpha_t/(1+k)`; with windows of :math:`K`
  steps, :math:`\alpha_t/(1+k^{1/K})`, and after a detected divergence the rate
  never again exceeds 1.5× the braked rate (between the line-search step
  :math:`1/\lambda` and the stability limit :math:`2/\lambda`). An even window
  sums an oscillation into sums of one sign, which the paper's rule reads as
  "speed up": there a same-sign window sum that more than doubled along
  :math:`u_{t-1}` (:math:`k < -2`) is a divergence too. ``safeguard=False`` is
  the paper's rule exactly. Measured: the paper's rule diverges on
  ill-conditioned least squares from most initial rates where the safeguard
  converges, and the two agree where nothing diverges
  (``benchmarks/results/tlr_safeguard.md``).

  **Minibatches** (Sec. 4, Eq. 10). Consecutive minibatch gradients see
  different data and their inner product is mostly negative, so the rate would
  collapse. With ``accumulation_steps=k`` the gradients are summed over windows
  of ``k`` steps; the rate is updated only at a window's end, from the current
  and the previous window's sums, and held in between. The paper's default is a
  third of an epoch: ``k ≈ steps_per_epoch / 3``. Full-batch GD: ``k = 1``.

  **Search direction and momentum** (``direction``, e.g.
  ``optax.scale_by_adam()``; ``momentum=m, nesterov=...`` is
  ``direction=optax.trace(m, nesterov=...)``, as in ``optax.sgd``). The weights
  step along :math:`u_t` (window sums :math:`U_t` with ``accumulation_steps``)
  and ``inner_products`` says what replaces :math:`g` in Eq. 7–9:

  * ``"gradient"`` (default): the line is :math:`L(w - \alpha u)`, whose slope
    at :math:`\alpha_t` is :math:`-\langle g_t, u_{t-1}\rangle`; the rule uses
    :math:`\langle g_t, u_{t-1}\rangle` for :math:`\langle g_t, g_{t-1}\rangle`
    and :math:`\langle g_t, u_t\rangle` for :math:`\|g_t\|^2`.
  * ``"displacement"``: the paper's momentum (Sec. 4 Eq. 10, App. D, momentum
    0.8) and the authors' NTLR code: :math:`G_t = (w_{t-K} - w_t)/\alpha`, the
    weights' displacement over the rate (:math:`= U_t`), in both slots,
    :math:`\langle G_t, G_{t-1}\rangle` and :math:`\|G_t\|^2`. (NTLR also
    drops the upper bound, updates the rate after the step and warms up for
    3K + 1 steps; the paper, followed here, does not.)

  Both reduce to Alg. 2 when :math:`u = g`. Why the default
  (``benchmarks/results/tlr_momentum.md``, float64, 4 problems × 3 momenta ×
  α₀ = 1e-4 … 1): the displacement form ends lower at momentum 0.8 where it
  converges, but a momentum-smoothed displacement rarely reverses, so its
  rate grows unchecked: 14 of 60 runs diverged where fixed-rate SGD with the
  same momentum converged (13 at 0.9); the gradient form diverged only where
  that SGD did too.

  Args:
    learning_rate: initial rate :math:`\alpha_0` (> 0).
    bound: :math:`c > 0` of Eq. 9, the largest relative increase per update
      (paper: 1/4).
    max_bound: the cold start's largest :math:`c` (``>= bound``; 1: at most
      doubling per update); ``None`` (default): the paper's fixed ``bound``.
    granularity: ``"global"`` (sgd_tlr), ``"leaf"`` (sgd_tlr_pl, one rate per
      tensor, App. D.2), ``"element"``, or labels (a pytree or callable as in
      ``optax.multi_transform``).
    accumulation_steps: window length ``k`` of Eq. 10 (an int ``>= 1``);
      about ``steps_per_epoch / 3`` for minibatch SGD; ``None``: 1 (full
      batch). It shapes the computation: ``optax.inject_hyperparams`` leaves
      it static unless it is passed (then name it in ``static_args``).
    momentum: heavy-ball momentum m ∈ [0, 1) as in ``optax.sgd``: the
      direction ``optax.trace(m, nesterov=nesterov)``; ``None``: SGD. The
      paper's momentum runs (m = 0.8, App. D) are ``momentum=0.8,
      inner_products="displacement"``.
    nesterov: Nesterov momentum (needs ``momentum``).
    direction: optional optax transformation turning gradients into the
      search direction (not together with ``momentum``); ``None`` is SGD.
    inner_products: ``"gradient"`` (default) or ``"displacement"`` (the
      paper's momentum): what Eq. 7–9 read with a direction (see above).
    safeguard: brake on detected divergence (see above); ``False`` is the
      paper's rule exactly.
    min_learning_rate: lower clamp of the rates (default 0: never binds).
    max_learning_rate: upper clamp of the rates (default inf: never binds).
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
    :math:`-\alpha u`, ready for ``optax.apply_updates``
    (:func:`scale_by_tlr` followed by ``optax.scale(-1)``). Its state holds a
    :class:`TLRState`; the current rate(s) are
    ``optax.tree.get(state, "learning_rate")``.

  Raises:
    ValueError: for a non-positive ``learning_rate`` or ``bound``,
      ``accumulation_steps < 1``, bad clamps, an unknown granularity or
      ``inner_products``, ``momentum`` outside [0, 1), ``momentum`` together
      with ``direction``, or ``nesterov`` without ``momentum``.

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
    Eq. 2, 7–10, Alg. 2, App. D and D.2; the authors' code,
    github.com/georgeretsi/NTLR.
  """
