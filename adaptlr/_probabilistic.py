"""Probabilistically motivated learning-rate adaptation (de Roos et al. 2021, Alg. 1).

Gaussian inference on the minimizer of a local quadratic model, with the base
optimizer's metric η·W as prior covariance, gives the step (Eq. 12)

    θ_{i+1} = θ_i − v_i · 2 Δf / (φ_i + R_i),    v_i = η W_i g_i,   φ_i = g_iᵀ v_i,

a Polyak step with a general metric when f* is known (Δf = f_i − f*, R = 0),
the base optimizer's own step when it is not (Δf = φ_i / 2, the implied
quadratic, Eq. 14). One extra forward pass on the same batch, f+ = L(θ_{i+1}),
compares the observed decrease with the expected one, φ_i / 2, and adapts η
(× 1.2 above 4/3, × 1/2 below 3/4: Alg. 1, lines 15–19).

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

  learning_rate: jax.Array  # η, the scale of the prior covariance η·W
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32: non-finite steps skipped
  uphill: jax.Array  # int32: steps with φ_i ≤ 0, not taken (see the docstring)
  loss_after: jax.Array  # f+ = L(θ_{i+1}) on the same batch, last adapted step (Alg. 1 l. 15)
  ratio: jax.Array  # (f_i − f+) / (φ_i / 2), last adapted step (Alg. 1 l. 16)
  direction_state: Any  # state of ``direction`` (() for SGD)


def _probabilistic_rate(
  eta,
  ratio,
  *,
  increase_factor,
  decrease_factor,
  increase_threshold,
  decrease_threshold,
  min_learning_rate,
  max_learning_rate,
):
  """η after a step whose observed/expected decrease is ``ratio`` (Alg. 1, lines 16–19)."""
  new = jnp.where(
    ratio > increase_threshold,
    eta * increase_factor,  # line 17
    jnp.where(
      ratio < decrease_threshold,
      eta * decrease_factor,  # line 19
      eta,
    ),
  )
  return jnp.clip(new, min_learning_rate, max_learning_rate).astype(eta.dtype)


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

  The building block of :func:`probabilistic_lr` (see there for the rule,
  Alg. 1 and Eq. 12, and every argument); its updates are
  :math:`+v_i\,2\Delta f/(\phi_i + R_i)`, for ``optax.chain``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with a
    :class:`ProbabilisticLRState`.
  """
  _validate.learning_rate(learning_rate, "probabilistic_lr")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.positive("noise_variance", noise_variance, allow_zero=True)
  _validate.in_range("increase_factor", increase_factor, 1.0, float("inf"))
  _validate.in_range("decrease_factor", decrease_factor, 0.0, 1.0, low_open=True)
  # Alg. 1's thresholds, or the horizon's (docstring, "Horizon")
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
  if max_scale is not None:
    _validate.positive("max_scale", max_scale)
  if adapt_every is None:
    adapt_every = 1
  if not callable(adapt_every) and not isinstance(adapt_every, jax.Array):
    _validate.integer("adapt_every", adapt_every, 1)
  _validate.bounds(min_learning_rate, max_learning_rate)
  direction = _step.search_direction(direction, "probabilistic_lr", momentum, nesterov)
  groups = granularity_from("global")
  every_step = not callable(adapt_every) and isinstance(adapt_every, int) and adapt_every == 1
  rule = dict(
    increase_factor=increase_factor,
    decrease_factor=decrease_factor,
    increase_threshold=increase_threshold,
    decrease_threshold=decrease_threshold,
    min_learning_rate=min_learning_rate,
    max_learning_rate=max_learning_rate,
  )

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

  def update_fn(
    updates: optax.Updates,
    state: ProbabilisticLRState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, ProbabilisticLRState]:
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
    gap = jnp.maximum(gap, 0.0)
    downhill = phi > 0
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
    new_eta = _probabilistic_rate(
      eta,
      ratio,
      **dict(  # lines 16–19
        rule,
        min_learning_rate=_step.bound_at(min_learning_rate, state.count + 1),
        max_learning_rate=_step.bound_at(max_learning_rate, state.count + 1),
      ),
    )
    if safeguard and f_min is None:  # the step raised the loss: not taken
      raised = adapt & ~(f_plus <= f_i)
      step = jax.tree.map(lambda s: jnp.where(raised, jnp.zeros_like(s), s), step)
    new_state = ProbabilisticLRState(
      learning_rate=jnp.where(adapt, new_eta, eta),
      count=jnp.asarray(optax.safe_increment(state.count)),
      skipped=state.skipped,
      uphill=state.uphill + (~downhill).astype(jnp.int32),
      loss_after=jnp.where(adapt, f_plus, state.loss_after),
      ratio=jnp.where(adapt, ratio, state.ratio).astype(dtype),
      direction_state=direction_state,
    )
    finite = _step.finite_from(phi, f_i)  # a non-finite g makes φ = η⟨g, W g⟩ so
    return _step.skip_if_not_finite(finite, step, new_state, state)

  # the horizon: the steps anneal after the rule, f₊ sees the undecayed step
  tx = optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]
  return _step.anneal(tx, decay_steps)


@_step.descent(scale_by_probabilistic_lr)
def probabilistic_lr():
  r"""A base optimizer with de Roos et al.'s learning-rate adaptation (Alg. 1).

  One step of Alg. 1, with :math:`f_i` = ``value`` (the loss at
  :math:`\theta_i` on this batch), :math:`g_i` the gradient and
  :math:`W(g_i)` the base optimizer's direction (``direction``):

  .. math::

    v_i &= \eta\, W(g_i), \qquad \phi_i = g_i^\top v_i
        &&\text{(lines 5–6)}\\
    \Delta f &= f_i - f^* \ \text{if}\ f^*\ \text{is given, else}\ \phi_i / 2
        &&\text{(lines 8–12, Eq. 14)}\\
    \theta_{i+1} &= \theta_i - v_i\, \frac{2\,\Delta f}{\phi_i + R_i}
        &&\text{(line 13, Eq. 12)}\\
    \rho &= \frac{f_i - f_+}{\phi_i / 2}, \quad f_+ = L(\theta_{i+1})
        &&\text{(lines 15–16, same batch)}\\
    \eta &\leftarrow 1.2\,\eta \ \text{if}\ \rho > 4/3, \quad
        \tfrac12\,\eta \ \text{if}\ \rho < 3/4 &&\text{(lines 16–19)}.

  Without :math:`f^*` and with :math:`R = 0` the step is the base optimizer's
  own step :math:`v_i`, and only η adapts; with :math:`f^*` and :math:`R = 0`
  it is a Polyak step in the metric W that does not depend on η at all (App.
  A, Fig. 4); :math:`R > 0` shortens it by :math:`\phi/(\phi + R)`.

  One global η, as in the paper: a single re-evaluation :math:`f_+` gives one
  ratio, so there is no ``granularity`` argument (per-group rates would need
  one re-evaluation per group).

  **Base optimizers** (Tab. 1, §2.3): ``None`` is SGD; ``optax.trace(β)`` is
  PyTorch-style momentum (:math:`m_i = \beta m_{i-1} + g_i`, the paper's
  rank-one covariance update); ``optax.scale_by_adam()``; Adagrad
  (``optax.scale_by_rss(initial_accumulator_value=0)``); RMSprop
  (``optax.scale_by_rms(decay=0.99)``, the PyTorch default α). The paper sets
  the momentum (β, β1) to 0.5 for its adaptation.

  **φ_i ≤ 0** (§2.3: with momentum or Adam, :math:`\eta W_i` is not positive
  definite when :math:`m_{i-1}` points uphill, :math:`\beta\langle m_{i-1},
  g_i\rangle < -\|g_i\|^2`): the inference is undefined — Eq. 12 would step
  uphill, or, with :math:`f^*`, along :math:`v_i` by the unbounded factor
  :math:`2\Delta f/\phi_i`. Such a step is **not taken** (zero update), η is
  kept, and ``state.uphill`` counts it; the base optimizer's state (its
  momentum) is updated as usual, so the next direction turns downhill.
  A small *positive* :math:`\phi_i` with ``f_min`` still gives the long step
  :math:`2\Delta f/\phi_i` (the Polyak step's known weakness in flat regions,
  §3.1); with a momentum or Adam metric, whose rank-one term makes
  :math:`\phi_i` small whenever :math:`m_{i-1}` is nearly orthogonal to
  :math:`g_i`, pass ``max_scale``: heavy-ball β = 0.95 with ``f_min=0`` on a
  parabola of condition 10 diverges (loss 1e53) without it and converges with
  ``max_scale=1``.

  **f* above the loss.** With :math:`f_i < f^*`, Eq. 12 would step backwards
  (uphill) to climb to :math:`f^*`; :math:`\Delta f` is clipped at 0 (as
  optax's ``polyak_sgd(variant="sps+")``), so the step is zero there.

  **Noise** :math:`R_i` (``noise_variance``): 0 (the paper's experiments), a
  constant, or, with ``relative_noise=True``, ``noise_variance`` ×
  :math:`|f_i|` (App. A uses :math:`R_i = 0.05 f_i`).

  **Cost.** One extra forward pass per step (:math:`f_+`; the paper reports
  +41% per epoch, §4.2; ours: ``benchmarks/results/overhead.md``). ``adapt_every=k``
  adapts η only every k-th step and skips that forward on the others (inside
  ``jax.lax.cond``; under ``jax.vmap`` both branches run); a callable
  ``step -> bool`` gives any schedule, e.g. the paper's "every 2^i-th epoch"
  (§4.4): ``lambda t: jnp.log2(t // steps_per_epoch + 1) % 1 == 0``. Off by
  default. (With ``optax.inject_hyperparams``, pass a callable schedule in
  ``static_args``.)

  **Horizon** (``decay_steps=T``, adaptlr's addition for networks). The steps
  are multiplied by a cosine decay from 1 to 0 over T updates, after the rule
  (``f₊`` still probes the undecayed step, so η keeps tracking the line), and
  η aims past the batch's line minimum: it grows while the step falls short of
  it (ρ > 1) and shrinks beyond 1.75× it (ρ < 1/4), as a cosine schedule's peak
  lies above the best constant rate. Chosen on the MNIST MLP and the F-MNIST
  CNN (``benchmarks/results/horizon.md``: on Adam 0.025 / 0.35 against Alg. 1's
  0.030 / 0.42, the decay alone 0.035 / 0.36); on the four networks of
  ``benchmarks/results/networks/`` the median regret over η₀ falls from 1.33–2.7
  to 1.08–2.16 (the held-out F-MNIST MLP: 1.97 to 1.87; the LM level). Pass
  T = the number of updates of the run.

  **Safeguard** (``safeguard=True``). The rule adapts η only after a step, so
  one step with η far too large is taken in full (the paper's rule lowers η by
  1/2 per step, slower than a divergence grows). f₊ is already computed on the
  same batch: a step that does not lower it is not taken. (Only without
  ``f_min``: with :math:`f^*` and no noise the Polyak step does not depend on
  η, so a rejected step would be proposed again.) Measured
  (``benchmarks/results/safeguards_optax.md``): on optax's contrib problems
  Rosenbrock (30k steps) diverges from η₀ = 1e-3 and 0.1 with the paper's
  rule and is solved from 1e-3, 1e-2 and 0.1 with the safeguard; on sklearn digits softmax
  regression (batch 64, 20 epochs, SGD and Adam, η₀ = 1e-3 … 1) final losses
  move by a few percent either way, with no systematic cost.

  Args:
    learning_rate: initial η (> 0), the scale of the prior covariance (the
      paper's experiments start anywhere in 1e-5 … 1 and suggest 1e-4 … 1e-3,
      §4.4).
    direction: the base optimizer's direction W(g) as an optax
      transformation without its learning rate (``None``: SGD).
    f_min: the lower bound :math:`f^*` of the loss, or ``None`` (the
      paper's default: the implied quadratic).
    noise_variance: :math:`R \ge 0` (absolute), or the factor of
      :math:`|f_i|` when ``relative_noise``.
    relative_noise: :math:`R_i` = ``noise_variance`` · :math:`|f_i|`.
    increase_factor: :math:`\alpha_\uparrow` (1.2).
    decrease_factor: :math:`\alpha_\downarrow` (1/2).
    increase_threshold: the ratio above which η grows (``None``: 4/3, Alg. 1;
      1 with ``decay_steps``).
    decrease_threshold: the ratio below which η shrinks (``None``: 3/4;
      1/4 with ``decay_steps``).
    max_scale: optional cap on the step factor :math:`2\Delta f/(\phi+R)`
      (the maximal step of Loizou et al.'s SPS_max; useful with ``f_min``
      in flat regions, §3.1); ``None``: no cap (the paper).
    adapt_every: adapt η every k-th step (int ≥ 1), or a callable of the
      int32 step count returning a boolean; ``None``: every step. An int is
      static: ``optax.inject_hyperparams`` leaves it alone unless it is
      passed (then name it in ``static_args``).
    momentum: heavy-ball momentum as in ``optax.sgd``: the metric W is
      ``optax.trace(momentum, nesterov)`` (Tab. 1's momentum row); ``None``:
      none. Not combinable with ``direction``.
    nesterov: Nesterov momentum (needs ``momentum``).
    safeguard: without ``f_min``, a step whose loss after it, f₊ (line 15,
      computed anyway), is not below :math:`f_i` is not taken (η is lowered
      by line 19 as in the paper); ``False``: the paper's rule, which takes
      it. See above.
    min_learning_rate: lower clamp of η (default 0).
    max_learning_rate: upper clamp of η (default inf).
      Either bound may be a schedule of the step count: a ceiling that
      moves (warmup or decay on top of the learned rate), or a floor.
    weight_decay: decoupled weight decay λ ≥ 0, as in ``optax.adamw``: the
      step is :math:`-\alpha(u + \lambda\, m \odot w)`. The rule and its
      probes see the loss that step descends, :math:`L + \tfrac{\lambda}{2}
      \|m \odot w\|^2` (its gradient, ``value`` and ``value_fn``): with the
      gradient as direction this is the method on that loss.
    mask: the leaves that decay (``m``): a pytree of bools or a callable
      ``params -> bools``, as ``optax.adamw``'s ``mask``; ``None``: all.
    decay_steps: the run's number of updates T: the steps anneal by a cosine
      decay to 0 over T and the thresholds default to the horizon's (see
      "Horizon"); ``None``: no decay (the paper).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose updates are
    :math:`-v_i\,2\Delta f/(\phi_i + R_i)`, ready for ``optax.apply_updates``
    (:func:`scale_by_probabilistic_lr` followed by ``optax.scale(-1)``). Each
    update needs ``params``,
    ``value`` (the loss at ``params`` on this batch) and ``value_fn`` (with
    the batch forwarded as keyword arguments). The state is a
    :class:`ProbabilisticLRState`.

  Raises:
    ValueError: for bad hyperparameters, or at update time when ``value``,
      ``value_fn`` or ``params`` is missing.

  Example:
    Adam with the adaptation, from a far too small rate:

    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
    >>> x = jax.random.normal(jax.random.key(0), (64, 4)); y = x @ jnp.ones(4)
    >>> opt = adaptlr.probabilistic_lr(1e-5, direction=optax.scale_by_adam(b1=0.5))
    >>> w = jnp.zeros(4); state = opt.init(w)
    >>> for _ in range(150):
    ...   value, grad = jax.value_and_grad(loss)(w, x, y)
    ...   updates, state = opt.update(grad, state, w, value=value, value_fn=loss, x=x, y=y)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w, x, y) < 1e-2)
    True

    SGD, whose η grows ×1.2 a step while the decrease beats the expected one:

    >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> opt = adaptlr.probabilistic_lr(1e-3)
    >>> w = jnp.zeros(2); state = opt.init(w)
    >>> for _ in range(20):
    ...   value, grad = jax.value_and_grad(loss)(w)
    ...   updates, state = opt.update(grad, state, w, value=value, value_fn=loss)
    ...   w = optax.apply_updates(w, updates)
    >>> float(optax.tree.get(state, "learning_rate")) > 1e-3
    True

  References:
    de Roos et al., A Probabilistically Motivated Learning Rate Adaptation
    for Stochastic Optimization, arXiv:2102.10880 (2021): §2 (Eq. 12), §2.2–2.3 (Tab. 1), §3
    (Alg. 1, Eq. 14), App. A (Fig. 4).
  """
