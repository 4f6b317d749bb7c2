"""vSGD: variance-based SGD with adaptive learning rates ("No More Pesky Learning Rates").

Per group, from moving averages of the gradient ḡ, its square v̄ (or l̄ over a
group) and the diagonal curvature h̄ (Alg. 1):

    η*_i = ḡ_i² / (h̄_i v̄_i)   (Eq. 7, per element),   η* = Σ ḡ² / (h⁺ l̄)   (Eq. 8, per group).

References:
  T. Schaul, S. Zhang, Y. LeCun, No More Pesky Learning Rates, ICML 2013,
  arXiv:1206.1106: §3–5, Alg. 1, App. B.
  T. Schaul, Y. LeCun, Adaptive learning rates and parallelization for
  stochastic, sparse, non-smooth gradients, ICLR 2013, arXiv:1301.3764
  (vSGD-fd's rate and finite-difference curvature, minibatches). The authors'
  code: T. Schaul's py-optim and S. Zhang's vsgd-bb.m.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import optax

from adaptlr import _base, _conventions
from adaptlr import curvature as _curvature
from adaptlr._granularity import GranularityLike, granularity_from, rate_dtype

# Extra args vSGD reads besides optax's value/grad/value_fn.
CONSUMES: frozenset[str] = frozenset({"curvature", "grad_sq"})
_PAPER_C = "d/10"
_START_MEMORY = ("init_samples", "adapted")


class VSGDState(NamedTuple):
  """State of :func:`scale_by_vsgd`."""

  learning_rate: Any   # η per group: 0 during the slow start, then lr · η* (Eq. 7 / 8)
  count: jax.Array     # int32: steps taken (non-finite steps excluded), slow start included
  skipped: jax.Array   # int32: non-finite steps skipped
  grad_avg: Any        # ḡ per element (§4.1)
  sq_avg: Any          # per group: v̄ (element-wise) or l̄ = E‖∇‖² over the group (§4.1)
  curv_avg: Any        # h̄ per element (§4.3)
  curv_sq_avg: Any     # v̄_h = E[h²] per element (curvature_variance=True only; () otherwise)
  tau: Any             # τ per group: the memory size (§4.2, App. B)
  key: Any             # PRNG key (uint32[2]) for curvature="hutchinson"; () otherwise


def _vsgd_rate(num, sq_avg, h_plus, tau, warm, last_warm, *, dtype, learning_rate,
               min_curvature, batch_size, start_memory, min_learning_rate,
               max_learning_rate):
  """(η, τ) for one group from the updated averages (Eq. 7 / 8, §4.2, Alg. 1).

  num = Σ ḡ² over the group (ḡ² per element), sq_avg = l̄ (v̄), h_plus = h⁺ (h̄,
  or v̄_h / h̄ for vSGD-fd's rate); ``warm``: still in the slow start (§4.4),
  where η = 0 and τ is kept; ``last_warm``: its last update, after which the
  memory is ``start_memory``.
  """
  n = batch_size
  den = sq_avg if n is None else sq_avg / n + (n - 1.0) / n * num   # minibatch correction
  vpart = jnp.clip(_base.safe_div(num, den), 0.0, 1.0)              # ḡ² / v̄ ∈ [0, 1]
  rate = learning_rate * vpart / jnp.maximum(h_plus, min_curvature)  # Eq. 7 / 8
  rate = rate.astype(dtype)
  rate = jnp.clip(rate, min_learning_rate, max_learning_rate).astype(rate.dtype)
  rate = jnp.where(warm, jnp.zeros_like(rate), rate)
  tau = jnp.where(warm, tau, (1.0 - vpart) * tau + 1.0)              # §4.2, App. B
  if start_memory == "adapted":       # vsgd-bb.m: §4.2 applied once to τ = 1
    first = 2.0 - vpart
  elif start_memory == "init_samples":
    first = tau                       # n₀, kept through the slow start
  else:                               # py-optim: τ = 2
    first = jnp.full_like(tau, start_memory)
  tau = jnp.where(last_warm, first, tau).astype(dtype)
  return rate, tau


def scale_by_vsgd(
    learning_rate: Any = 1.0,
    *,
    granularity: GranularityLike = "element",
    curvature: str = "hutchinson",
    init_samples: Optional[int] = None,
    slow_start: Union[float, str] = 2.0,
    start_memory: Union[float, str] = "init_samples",
    curvature_variance: bool = False,
    batch_size: Optional[int] = None,
    min_curvature: Any = 1e-6,
    seed: Optional[int] = None,
    min_learning_rate: Any = 0.0,
    max_learning_rate: Any = jnp.inf,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales gradients by vSGD's estimate of the greedy-optimal learning rate.

  The building block of :func:`vsgd` (see there for the rule, Eq. 7–8, and
  every argument); its updates are :math:`+\eta \nabla`, for ``optax.chain``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with a :class:`VSGDState`.
  """
  _conventions.check_learning_rate(learning_rate, "vsgd")
  _base.check_positive("learning_rate", learning_rate)
  _conventions.check_weight_decay(weight_decay)
  _base.check_one_of("curvature", curvature, _curvature.ESTIMATORS)
  # n₀ = 1 would start the memory at τ = 1, a fixed point of §4.2 (one-sample
  # averages give ḡ² = v̄, so τ stays 1 and the rate stays 1/h whatever the noise).
  n0 = _base.check_int("init_samples", 10 if init_samples is None else init_samples, 2)
  if isinstance(slow_start, str):
    if slow_start != _PAPER_C:
      raise ValueError(
          f"slow_start must be a number >= 1 or {_PAPER_C!r} (the paper's rule), "
          f"got {slow_start!r}.")
  else:
    _base.check_range("slow_start", slow_start, 1.0, float("inf"))
  if isinstance(start_memory, str):
    _base.check_one_of("start_memory", start_memory, _START_MEMORY)
  else:   # τ = 1 is a fixed point of §4.2 (see init_samples above)
    _base.check_range("start_memory", start_memory, 1.0, float("inf"), low_open=True)
  n = None if batch_size is None else _base.check_int("batch_size", batch_size, 1)
  _base.check_positive("min_curvature", min_curvature)
  seed = _base.check_int("seed", 0 if seed is None else seed, 0)
  _base.check_bounds(min_learning_rate, max_learning_rate)
  groups = granularity_from(granularity)
  rule = dict(learning_rate=learning_rate, min_curvature=min_curvature, batch_size=n,
              start_memory=start_memory)

  def init_fn(params: optax.Params) -> VSGDState:
    dtype = rate_dtype(params)
    return VSGDState(
        learning_rate=groups.init_rates(params, 0.0, dtype),
        **_base.counters(),
        grad_avg=_base.zeros(params, dtype),
        sq_avg=groups.init_rates(params, 0.0, dtype),
        curv_avg=_base.zeros(params, dtype),
        curv_sq_avg=_base.zeros(params, dtype) if curvature_variance else (),
        tau=groups.init_rates(params, float(n0), dtype),
        key=jax.random.PRNGKey(seed) if curvature == "hutchinson" else (),
    )

  def slow_start_factor(params: optax.Params) -> float:
    if isinstance(slow_start, str):                                  # §4.4: C = d/10
      d = sum(int(jnp.size(p)) for p in jax.tree.leaves(params))
      return max(1.0, d / 10.0)
    return slow_start

  def estimate(grads, state, params, extra_args):
    """|diag H| per element at this step (§4.3), and the next PRNG key."""
    if curvature == "given":
      c = extra_args.get("curvature")
      if c is None:
        raise ValueError(
            "vsgd(curvature='given') needs the diagonal curvature as the "
            "`curvature` extra arg: `opt.update(grads, state, params, "
            "curvature=diag_h)` with diag_h a pytree like the params (e.g. a "
            "Gauss-Newton diagonal); or use curvature='hutchinson'.")
      return jax.tree.map(lambda x: jnp.abs(jnp.asarray(x)), c), state.key
    _base.require_params(params, f"vsgd(curvature={curvature!r})")
    value_fn = _base.get_value_fn(
        extra_args, f"vsgd(curvature={curvature!r})",
        " to estimate the diagonal curvature (or pass curvature='given' and the "
        "`curvature` extra arg)", params=params)
    if curvature == "hutchinson":
      key, sub = jax.random.split(state.key)
      return _curvature.hutchinson_diagonal(value_fn, params, sub), key
    # Finite differences (Schaul & LeCun 2013): δ = ḡ (the gradient itself on the first step).
    delta = jax.tree.map(
        lambda g, a: jnp.where(state.count == 0, g, a.astype(g.dtype)), grads, state.grad_avg)
    fallback = _base.cast_like(state.curv_avg, params)
    h = _curvature.finite_difference_diagonal(value_fn, params, grads, delta, fallback)
    return h, state.key

  def update_fn(
      updates: optax.Updates, state: VSGDState, params: Optional[optax.Params] = None,
      **extra_args: Any,
  ) -> tuple[optax.Updates, VSGDState]:
    grads, _, _, extra_args = _conventions.direction_and_decay(
        None, updates, (), params, extra_args, weight_decay, mask, "vsgd")
    dtype = rate_dtype(state.learning_rate)
    count = state.count
    bounds = dict(min_learning_rate=_base.bound_at(min_learning_rate, count),
                  max_learning_rate=_base.bound_at(max_learning_rate, count))
    warm = count < n0                                                  # slow start (§4.4)

    h, key = estimate(grads, state, params, extra_args)                # §4.3
    h = jax.tree.map(lambda x, a: x.astype(a.dtype), h, state.curv_avg)

    g = jax.tree.map(lambda x: x.astype(dtype), grads)
    grad_sq = extra_args.get("grad_sq")
    if (grad_sq is None) != (n is None):
      raise ValueError(
          "vsgd: pass batch_size=n together with the `grad_sq` extra arg (the batch "
          "mean of the per-example squared gradients), or neither: without them "
          "the squared minibatch gradient is averaged, which needs no batch size.")
    if grad_sq is None:
      sq = groups.sq_norm(g, dtype)                                     # ∇² or ‖∇‖² per group
    else:
      sq = groups.sum(jax.tree.map(lambda x: jnp.asarray(x).astype(dtype), grad_sq), dtype)

    # Memory: the arithmetic mean during the slow start (τ = k + 1), then 1/τ (§4.1).
    inv_tau = jax.tree.map(
        lambda t: jnp.where(warm, 1.0 / (count + 1).astype(dtype), 1.0 / t), state.tau)
    inv_tau_el = groups.broadcast(inv_tau, g)
    ema = lambda avg, x, f: (1.0 - f) * avg + f * x
    grad_avg = jax.tree.map(ema, state.grad_avg, g, inv_tau_el)       # Alg. 1: ḡ
    curv_avg = jax.tree.map(ema, state.curv_avg, h, inv_tau_el)       #         h̄
    curv_sq_avg = jax.tree.map(                                       #         v̄_h
        lambda a, x, f: ema(a, x * x, f), state.curv_sq_avg, h, inv_tau_el
    ) if curvature_variance else ()
    sq_avg = jax.tree.map(ema, state.sq_avg, sq, inv_tau)             #         v̄ or l̄
    c = slow_start_factor(grads)
    sq_avg = jax.tree.map(lambda v: jnp.where(count == n0 - 1, c * v, v).astype(dtype), sq_avg)

    # Rate (Eq. 7 / Eq. 8, Alg. 1) from the updated averages, then the memory.
    num = groups.sq_norm(grad_avg, dtype)                             # Σ ḡ² per group
    if curvature_variance:
      # vSGD-fd (Schaul & LeCun 2013; py-optim vSGDfd): 1/h̄ becomes h̄ / v̄_h;
      # per group the largest v̄_h / h̄ (as h⁺ = max h̄). v̄_h / h̄ ≥ h̄ holds for
      # the exact averages (E[h²] ≥ E[h]²); enforced, as h² underflows first.
      inv = jax.tree.map(lambda hb, vh: jnp.maximum(_base.safe_div(vh, hb), hb),
                         curv_avg, curv_sq_avg)
      h_plus = groups.max(inv, dtype)                                 # v̄_h / h̄
    else:
      h_plus = groups.max(curv_avg, dtype)                            # h̄ or h⁺ = max h̄
    last_warm = count == n0 - 1
    rate, tau = _base.map_rule(
        lambda m, v, hp, t: _vsgd_rate(m, v, hp, t, warm, last_warm, dtype=dtype, **bounds,
                                       **rule),
        num, sq_avg, h_plus, state.tau)

    new_updates = groups.scale(rate, grads)                           # θ ← θ − η ∇
    new_state = VSGDState(
        learning_rate=rate,
        count=_base.next_count(count),
        skipped=state.skipped,
        grad_avg=grad_avg,
        sq_avg=sq_avg,
        curv_avg=curv_avg,
        curv_sq_avg=curv_sq_avg,
        tau=tau,
        key=key,
    )
    # One reduction over the inputs (NaN, inf, or a square that overflows): the rate and
    # the averages are finite whenever g², h (and grad_sq) are.
    check = sum(jnp.sum(x) for x in jax.tree.leaves((jax.tree.map(jnp.square, g), h, grad_sq)))
    finite = _base.finite_from(check, extra_args.get("value"))
    return _base.skip_if_not_finite(finite, new_updates, new_state, state)

  return _base.transformation(init_fn, update_fn)


def vsgd(
    learning_rate: Any = 1.0,
    *,
    granularity: GranularityLike = "element",
    curvature: str = "hutchinson",
    init_samples: Optional[int] = None,
    slow_start: Union[float, str] = 2.0,
    start_memory: Union[float, str] = "init_samples",
    curvature_variance: bool = False,
    batch_size: Optional[int] = None,
    min_curvature: Any = 1e-6,
    seed: Optional[int] = None,
    min_learning_rate: Any = 0.0,
    max_learning_rate: Any = jnp.inf,
    weight_decay: Any = 0.0,
    mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""vSGD (vSGD-l / -b / -g): SGD whose rates are estimated, not tuned.

  **Rates** (§3–5). For a noisy quadratic the rate that minimizes the expected
  loss after the next step is estimated from moving averages of the gradient
  :math:`\bar g \approx E[\nabla]`, its square :math:`\bar v \approx
  E[\nabla^2]` (or :math:`\bar l \approx E\|\nabla\|^2` over a group) and the
  diagonal curvature :math:`\bar h \approx E|\mathrm{diag}\,H|`:

  .. math::

    \eta^*_i = \frac{\bar g_i^2}{\bar h_i\,\bar v_i}
        \quad \text{(7, vSGD-l)}, \qquad
    \eta^* = \frac{\sum_i \bar g_i^2}{h^+ \bar l},\ h^+ = \max_i \bar h_i
        \quad \text{(8, vSGD-g)}.

  ``granularity="element"`` is vSGD-l (Eq. 7, the paper's best); ``"global"``
  vSGD-g (Eq. 8); ``"leaf"`` (vSGD-b, one rate per tensor) or labels (one rate
  per named group, as ``optax.multi_transform``): Eq. 8 within each block.

  Per group the order is Alg. 1's: average the new gradient and curvature
  with memory τ (§4.1: :math:`\bar x \leftarrow (1-\tau^{-1})\bar x +
  \tau^{-1} x`), take the rate from the updated averages, update the memory
  (§4.2; App. B for a group) :math:`\tau \leftarrow (1 - \sum \bar g^2/\bar l)
  \tau + 1`, and step :math:`\theta \leftarrow \theta - \eta^* \nabla`.
  ``learning_rate`` multiplies :math:`\eta^*` (1, the default, is the paper).
  :math:`h^+` is bounded below by ``min_curvature`` (§4.3), so no rate exceeds
  ``learning_rate / min_curvature``.

  **Curvature** (§4.3; ``curvature=``, needs ``value_fn`` unless "given"):

  * ``"hutchinson"`` (default): :math:`|z \odot Hz|` with Rademacher z, Hz by
    forward-over-reverse autodiff on the same batch; exact for a diagonal
    Hessian, an upper bound in expectation otherwise. The PRNG key is in the
    state (``seed``).
  * ``"finite_difference"``: :math:`|(\nabla(\theta+\delta) -
    \nabla\theta)/\delta|` with :math:`\delta = \bar g` (the current gradient
    on the first step), same batch; one more gradient per step. This is
    Schaul & LeCun's (ICLR 2013) estimate, but with the rate above it is not
    their vSGD-fd, whose rate differs (``curvature_variance``, below).
  * ``"given"``: the ``curvature`` extra arg (a pytree like the params, e.g.
    a Gauss-Newton diagonal such as the paper's bbprop, or
    ``adaptlr.curvature.softmax_gauss_newton_diagonal``); its absolute value
    is averaged.

  Measured on MNIST (``benchmarks/results/vsgd_curvature.md``): on dense layers
  ``"hutchinson"`` overestimates :math:`|\mathrm{diag}\,H|` several-fold, so
  the rates err small and vSGD-l stays stable untuned; an accurate
  Gauss-Newton diagonal steps as a diagonal Newton method and wants a larger
  ``slow_start``.

  **vSGD-fd** (Schaul & LeCun, ICLR 2013; py-optim ``vSGDfd``) is
  ``curvature="finite_difference", curvature_variance=True``: the rate
  :math:`\bar g^2/\bar v \cdot \bar h/\bar v_h`, with :math:`\bar v_h` the
  running mean of :math:`h^2` (same memory), replaces :math:`1/\bar h` by
  :math:`\bar h/\bar v_h \le 1/\bar h`, smaller where the curvature estimate
  is noisy (per group the smallest; :math:`1/\bar h` where :math:`h^2`
  underflows). Where this differs from py-optim: the finite-difference step is
  :math:`\bar g` (py-optim adds 1e-9; a step below the params' precision falls
  back to :math:`\bar h` here); during the slow start it is the running mean
  of the gradients so far (py-optim draws all :math:`n_0` samples at once and
  uses their mean); with minibatches :math:`\bar v_h` averages the square of
  the batch's h, py-optim the per-sample squares (larger: smaller rates); and
  py-optim's outlier rule (τ += 1 where :math:`(\nabla - \bar g)^2` exceeds the
  estimated variance, on by default in its ``vSGD`` and ``vSGDfd``) is not
  implemented. Measured (``benchmarks/results/vsgd_memory.md``): this rate
  diverged on MNIST M1 (τ₀ = n₀ and 2) and M0 (τ₀ = 2) where the
  :math:`1/\bar h` rate with the same curvature did not, so it is off by
  default and offered to reproduce the paper.

  **Slow start** (§4.4). The first ``init_samples`` updates only gather
  statistics: **they return zero updates** and the state's ``learning_rate``
  is 0. After them the averages are the arithmetic means of those samples,
  :math:`\bar v` / :math:`\bar l` multiplied by C = ``slow_start``. The
  overestimate damps the first steps (rates about 1/C of :math:`\eta^*`) and
  fades after about :math:`C n_0` steps. ``slow_start="d/10"`` is the paper's
  rule C = d/10 (d the number of parameters); the default C = 2 with
  ``init_samples=10`` is py-optim's (``vSGD.slow_constant``, ``init_samples``;
  ``vsgd-bb.m`` takes both as options), which beat d/10 in minibatch training
  on MNIST (``benchmarks/results/vsgd_mnist.md``).

  **Memory after the slow start** (``start_memory``; the paper does not say):
  the τ the next update averages with is ``"init_samples"``, τ = n₀ (the
  default, adaptlr's); a number, e.g. 2.0, py-optim's ``vSGD`` (τ = 2); or
  ``"adapted"``, τ = 2 − vpart₀, S. Zhang's ``vsgd-bb.m`` (its forgetting
  factor starts at 0, τ = 1, and §4.2 updates it once from the slow-start
  averages, vpart₀ = Σḡ²/(C v̄)). The default is kept by measurement
  (``benchmarks/results/vsgd_memory.md``, MNIST M0/M1, batch 128, 6 epochs):
  vSGD-l ends at a lower training loss with n₀ than with 2 or 2 − vpart₀ on
  both (M1: 0.095 / 0.121 / 0.196, test error 3.14 / 3.40 / 4.35 %; training
  errors within 0.3 points); -b and -g differ by under 0.1 points; with
  ``"finite_difference"``, τ = 2 did better on M1.

  **Minibatches**. By default :math:`\bar v` averages the square of the
  minibatch gradient it is given, which directly estimates the second moment
  of that gradient, :math:`\bar v_1/n + (n-1)/n\,\bar g^2` (per-sample
  :math:`\bar v_1`): no batch size is needed. To average per-sample squares
  instead, as the authors' code does (less noisy), pass the batch mean of the
  per-example squared gradients as the ``grad_sq`` extra arg and the batch
  size ``n`` as ``batch_size``; the variance term is then corrected as in
  that code: :math:`\bar g^2 / (\bar v/n + (n-1)/n\,\bar g^2)`.

  Args:
    learning_rate: factor on the estimated rate :math:`\eta^*` (> 0; 1 is
      the paper). There is no initial rate to tune.
    granularity: ``"element"`` (vSGD-l), ``"leaf"`` (vSGD-b), ``"global"``
      (vSGD-g), or labels (a pytree or callable as in
      ``optax.multi_transform``).
    curvature: ``"hutchinson"``, ``"finite_difference"`` or ``"given"``
      (the ``curvature`` extra arg).
    init_samples: :math:`n_0 \ge 2`, the slow-start updates (zero steps).
      ``None``: 10.
    slow_start: C ≥ 1, the overestimate of :math:`\bar v, \bar l` after the
      slow start, or ``"d/10"`` for the paper's max(1, d/10).
    start_memory: τ after the slow start: ``"init_samples"`` (n₀, default),
      a number > 1 (py-optim: 2.0) or ``"adapted"`` (2 − vpart₀, vsgd-bb.m).
    curvature_variance: the rate uses :math:`\bar h/\bar v_h` in place of
      :math:`1/\bar h`: vSGD-fd's rate (with ``"finite_difference"``).
    batch_size: n, only with the ``grad_sq`` extra arg (see above).
    min_curvature: lower bound on :math:`h^+` (> 0).
    seed: PRNG seed for ``"hutchinson"``; ``None``: 0. ``init_samples``,
      ``batch_size`` and ``seed`` are static ints: ``optax.inject_hyperparams``
      leaves them alone unless they are passed (then name them in
      ``static_args``).
    min_learning_rate: lower clamp of the rates (default 0).
    max_learning_rate: upper clamp of the rates (default inf).
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
    :math:`-\eta \nabla`, ready for ``optax.apply_updates``
    (:func:`scale_by_vsgd` followed by ``optax.scale(-1)``); its state holds
    a :class:`VSGDState`, the current rate(s) are
    ``optax.tree.get(state, "learning_rate")``. Call ``update`` with
    ``value_fn`` (and the batch as keyword args) for the curvature estimate.

  Raises:
    ValueError: for bad hyperparameters when built; at update time, when
      ``value_fn`` (or the ``curvature`` extra arg for ``"given"``) is missing,
      or ``grad_sq`` and ``batch_size`` are not given together.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> h = jnp.array([1.0, 10.0, 100.0])              # badly conditioned
    >>> loss = lambda w, c: 0.5 * jnp.sum(h * (w - c) ** 2)
    >>> opt = adaptlr.vsgd()
    >>> w = jnp.ones(3); state = opt.init(w)
    >>> for t in range(300):
    ...   c = 0.1 * jax.random.normal(jax.random.key(t), (3,))
    ...   updates, state = opt.update(jax.grad(loss)(w, c), state, w,
    ...                               value_fn=loss, c=c)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(jnp.all(jnp.abs(w) < 0.05))
    True

  References:
    Schaul, Zhang & LeCun, No More Pesky Learning Rates, ICML 2013,
    arXiv:1206.1106: Eq. 7–8, §4.1–4.4, Alg. 1, App. B. Schaul & LeCun,
    Adaptive learning rates and parallelization for stochastic, sparse,
    non-smooth gradients, ICLR 2013, arXiv:1301.3764 (vSGD-fd). The authors'
    code: T. Schaul's py-optim (``vSGD``, ``vSGDfd``), S. Zhang's ``vsgd-bb.m``.
  """
  return _base.descent(scale_by_vsgd(
      learning_rate, granularity=granularity, curvature=curvature,
      init_samples=init_samples, slow_start=slow_start, start_memory=start_memory,
      curvature_variance=curvature_variance, batch_size=batch_size,
      min_curvature=min_curvature, seed=seed,
      min_learning_rate=min_learning_rate, max_learning_rate=max_learning_rate,
      weight_decay=weight_decay, mask=mask))
