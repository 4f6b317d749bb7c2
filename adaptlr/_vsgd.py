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

import functools
from typing import Any, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptlr import _loss, _step, _validate
from adaptlr import curvature as _curvature
from adaptlr._granularity import GranularityLike, granularity_from, rate_dtype

# Extra args vSGD reads besides optax's value/grad/value_fn.
CONSUMES: frozenset[str] = frozenset({"curvature", "grad_sq", "logits_fn"})
_PAPER_C = "d/10"
# Curvature refreshed every k steps by default (curvature_every=None): for vSGD-l with the
# estimators vSGD computes itself; a caller's curvature ("given"), vSGD-fd's δ = ḡ and the
# grouped rates (one stale h⁺ = max h̄ steps a whole group) sample every step.
_DEFAULT_EVERY = {"hutchinson": 10, "gauss_newton": 10, "finite_difference": 1, "given": 1}
_START_MEMORY = ("init_samples", "adapted")


class VSGDState(NamedTuple):
  """State of :func:`scale_by_vsgd`."""

  learning_rate: Any  # η per group: 0 during the slow start, then lr · η* (Eq. 7 / 8)
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded), slow start included
  skipped: jax.Array  # int32: non-finite steps skipped
  grad_avg: Any  # ḡ per element (§4.1)
  sq_avg: Any  # per group: v̄ (element-wise) or l̄ = E‖∇‖² over the group (§4.1)
  curv_avg: Any  # h̄ per element (§4.3)
  curv_sq_avg: Any  # v̄_h = E[h²] per element (curvature_variance=True only; () otherwise)
  tau: Any  # τ per group: the memory size (§4.2, App. B)
  key: Any  # PRNG key (uint32[2]) for "hutchinson" / "gauss_newton"; () otherwise


def _vsgd_rate(
  num,
  sq_avg,
  h_plus,
  tau,
  warm,
  last_warm,
  *,
  dtype,
  learning_rate,
  min_curvature,
  batch_size,
  start_memory,
  min_learning_rate,
  max_learning_rate,
):
  """(η, τ) for one group from the updated averages (Eq. 7 / 8, §4.2, Alg. 1).

  num = Σ ḡ² over the group (ḡ² per element), sq_avg = l̄ (v̄), h_plus = h⁺ (h̄,
  or v̄_h / h̄ for vSGD-fd's rate); ``warm``: still in the slow start (§4.4),
  where η = 0 and τ is kept; ``last_warm``: its last update, after which the
  memory is ``start_memory``.
  """
  n = batch_size
  den = sq_avg if n is None else sq_avg / n + (n - 1.0) / n * num  # minibatch correction
  vpart = jnp.clip(_step.safe_div(num, den), 0.0, 1.0)  # ḡ² / v̄ ∈ [0, 1]
  rate = learning_rate * vpart / jnp.maximum(h_plus, min_curvature)  # Eq. 7 / 8
  rate = rate.astype(dtype)
  rate = jnp.clip(rate, min_learning_rate, max_learning_rate).astype(rate.dtype)
  rate = jnp.where(warm, jnp.zeros_like(rate), rate)
  tau = jnp.where(warm, tau, (1.0 - vpart) * tau + 1.0)  # §4.2, App. B
  if start_memory == "adapted":  # vsgd-bb.m: §4.2 applied once to τ = 1
    first = 2.0 - vpart
  elif start_memory == "init_samples":
    first = tau  # n₀, kept through the slow start
  else:  # py-optim: τ = 2
    first = jnp.full_like(tau, start_memory)
  tau = jnp.where(last_warm, first, tau).astype(dtype)
  return rate, tau


def _vsgd_element(
  g,
  sq,
  grad_avg,
  sq_avg,
  curv_avg,
  tau,
  old_rate,
  *,
  warm,
  last_warm,
  ok,
  first_d,
  c,
  dtype,
  learning_rate,
  min_curvature,
  batch_size,
  start_memory,
  min_learning_rate,
  max_learning_rate,
):
  """vSGD-l for one leaf, fused: (update, ḡ, v̄, η, τ) from the new sample (Alg. 1, Eq. 7).

  The element-wise twin of the grouped path (averages, then :func:`_vsgd_rate`), written
  so that XLA emits one loop per output array (ḡ, v̄, η, τ, and the update, which fuses
  into ``optax.apply_updates``): a divide used by two outputs would be materialised as an
  array of its own (XLA:CPU does not duplicate divides nor fuse loops with several
  outputs), so each output carries its own, and a non-finite step is folded into the
  averages' weights (the averages stay put) instead of a select over finished arrays.

  ``curv_avg`` is h̄ already updated; ``ok``: the step is finite (scalar); ``first_d``:
  the slow-start divisor k + 1; ``c``: the slow-start factor on v̄ (1 except on its last
  step, ``last_warm``, after which τ is ``start_memory``'s). An element whose g²
  overflows keeps its statistics and takes no step.
  """
  gd = g.astype(dtype)
  sq = gd * gd if sq is None else sq
  ok = ok & jnp.isfinite(sq)
  d = jnp.where(warm, first_d, tau)  # memory (§4.1)
  grad_avg = grad_avg + jnp.where(ok, (gd - grad_avg) / d, 0.0)  # ḡ
  c = jnp.where(ok, c, 1.0)
  sq_avg = sq_avg * c + jnp.where(ok, (sq - sq_avg) * c / d, 0.0)  # v̄ (× C after §4.4)
  num = grad_avg * grad_avg
  n = batch_size
  den = sq_avg if n is None else sq_avg / n + (n - 1.0) / n * num  # minibatch correction
  m = jnp.minimum(num, den)  # vpart = m / den ∈ [0, 1]
  den_h = den * jnp.maximum(curv_avg, min_curvature)
  live = ok & ~warm
  clamped = not (_is_value(min_learning_rate, 0.0) and _is_value(max_learning_rate, jnp.inf))
  rate = learning_rate * _step.safe_div(m, den_h)  # Eq. 7
  if clamped:
    rate = jnp.clip(rate, min_learning_rate, max_learning_rate)
    update = jnp.where(live, rate * gd, 0.0)
  else:  # own divide: no shared array
    update = _step.safe_div((learning_rate * gd) * m, den_h, live & (den_h > 0))
  rate = jnp.where(ok, jnp.where(warm, 0.0, rate), old_rate).astype(dtype)
  vpart = _step.safe_div(m, den)
  new_tau = tau + 1.0 - tau * vpart  # §4.2
  if start_memory == "adapted":  # τ after the slow start
    first = 2.0 - vpart
  elif start_memory == "init_samples":
    first = tau
  else:
    first = jnp.full_like(tau, start_memory)
  tau = jnp.where(live, new_tau, jnp.where(ok & last_warm, first, tau)).astype(dtype)
  return update.astype(g.dtype), grad_avg, sq_avg.astype(dtype), rate, tau


def _is_value(x: Any, value: float) -> bool:
  """``x`` is concretely the scalar ``value`` (a traced bound counts as not)."""
  x = _validate.concrete(x)
  return x is not None and bool(np.all(np.asarray(x) == value))


def scale_by_vsgd(
  learning_rate: Any = 1.0,
  *,
  granularity: GranularityLike = "element",
  curvature: str = "hutchinson",
  curvature_every: Optional[int] = None,
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
  _validate.learning_rate(learning_rate, "vsgd")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.choice("curvature", curvature, _curvature.ESTIMATORS)
  # n₀ = 1 would start the memory at τ = 1, a fixed point of §4.2 (one-sample
  # averages give ḡ² = v̄, so τ stays 1 and the rate stays 1/h whatever the noise).
  n0 = _validate.integer("init_samples", 10 if init_samples is None else init_samples, 2)
  groups = granularity_from(granularity)
  if curvature_every is None:
    every = _DEFAULT_EVERY[curvature] if groups.kind == "element" else 1
  else:
    every = _validate.integer("curvature_every", curvature_every, 1)
  if isinstance(slow_start, str):
    if slow_start != _PAPER_C:
      raise ValueError(
        f"slow_start must be a number >= 1 or {_PAPER_C!r} (the paper's rule), got {slow_start!r}."
      )
  else:
    _validate.in_range("slow_start", slow_start, 1.0, float("inf"))
  if isinstance(start_memory, str):
    _validate.choice("start_memory", start_memory, _START_MEMORY)
  else:  # τ = 1 is a fixed point of §4.2 (see init_samples above)
    _validate.in_range("start_memory", start_memory, 1.0, float("inf"), low_open=True)
  n = None if batch_size is None else _validate.integer("batch_size", batch_size, 1)
  _validate.positive("min_curvature", min_curvature)
  seed = _validate.integer("seed", 0 if seed is None else seed, 0)
  _validate.bounds(min_learning_rate, max_learning_rate)
  rule = dict(
    learning_rate=learning_rate,
    min_curvature=min_curvature,
    batch_size=n,
    start_memory=start_memory,
  )
  random = curvature in ("hutchinson", "gauss_newton")

  def init_fn(params: optax.Params) -> VSGDState:
    dtype = rate_dtype(params)
    return VSGDState(
      learning_rate=groups.init_rates(params, 0.0, dtype),
      **_step.counters(),
      grad_avg=optax.tree.zeros_like(params, dtype=dtype),
      sq_avg=groups.init_rates(params, 0.0, dtype),
      curv_avg=optax.tree.zeros_like(params, dtype=dtype),
      curv_sq_avg=optax.tree.zeros_like(params, dtype=dtype) if curvature_variance else (),
      tau=groups.init_rates(params, float(n0), dtype),
      key=jax.random.PRNGKey(seed) if random else (),
    )

  def slow_start_factor(params: optax.Params) -> float:
    if isinstance(slow_start, str):  # §4.4: C = d/10
      d = sum(int(jnp.size(p)) for p in jax.tree.leaves(params))
      return max(1.0, d / 10.0)
    return slow_start

  def estimate(grads, state, params, extra_args, key):
    """|diag H| (or its Gauss-Newton stand-in) per element at this step (§4.3)."""
    name = f"vsgd(curvature={curvature!r})"
    if curvature == "given":
      c = extra_args.get("curvature")
      if c is None:
        raise ValueError(
          "vsgd(curvature='given') needs the diagonal curvature as the "
          "`curvature` extra arg: `opt.update(grads, state, params, "
          "curvature=diag_h)` with diag_h a pytree like the params (e.g. a "
          "Gauss-Newton diagonal); or use curvature='hutchinson'."
        )
      return jax.tree.map(lambda x: jnp.abs(jnp.asarray(x)), c)
    _loss.require_params(params, name)
    if curvature == "gauss_newton":
      logits_fn = extra_args.get("logits_fn")
      if logits_fn is None:
        raise ValueError(
          f"{name} needs the model's logits as a function of the params: call "
          "`opt.update(grads, state, params, logits_fn=apply_fn, **batch)` where "
          "`apply_fn(params, **batch)` returns logits of shape (batch, classes) of a "
          "mean softmax cross-entropy (keyword args it accepts are forwarded); or use "
          "curvature='hutchinson', which needs only `value_fn`."
        )
      kwargs = _loss.value_fn_kwargs(logits_fn, extra_args)
      fn = functools.partial(logits_fn, **kwargs) if kwargs else logits_fn
      return _curvature.softmax_gauss_newton_diagonal(fn, params, key)
    value_fn = _loss.get_value_fn(
      extra_args,
      name,
      " to estimate the diagonal curvature (or pass curvature='given' and the "
      "`curvature` extra arg)",
      params=params,
    )
    if curvature == "hutchinson":
      return _curvature.hutchinson_diagonal(value_fn, params, key)
    # Finite differences (Schaul & LeCun 2013): δ = ḡ (the gradient itself on the first step).
    delta = jax.tree.map(
      lambda g, a: jnp.where(state.count == 0, g, a.astype(g.dtype)), grads, state.grad_avg
    )
    fallback = optax.tree.cast_like(state.curv_avg, params)
    return _curvature.finite_difference_diagonal(value_fn, params, grads, delta, fallback)

  def curvature_average(grads, state, params, extra_args, key, finite, warm):
    """(h̄, v̄_h, finite): h̄ (and v̄_h) moved towards a new sample on refresh steps.

    Samples: every slow-start step, then steps n₀, n₀ + k, n₀ + 2k, … (k =
    ``curvature_every``). Weight: the slow start's 1/(t + 1), then 1/τ for k = 1 and
    min(½, 1 − (1 − 1/τ)^k) for k > 1 (the weight a sample held for k steps of memory τ
    would get, at most ½); ``finite`` also requires the sample to be finite.
    """
    count = state.count
    dtype = rate_dtype(state.learning_rate)

    def refreshed():
      h = estimate(grads, state, params, extra_args, key)
      h = jax.tree.map(lambda x, a: jnp.abs(x).astype(a.dtype), h, state.curv_avg)
      ok = finite & jnp.isfinite(sum(jnp.sum(x) for x in jax.tree.leaves(h)))
      inv = jax.tree.map(lambda t: 1.0 / t, state.tau)
      if every > 1:
        inv = jax.tree.map(lambda f: jnp.minimum(0.5, 1.0 - (1.0 - f) ** every), inv)
      w = jax.tree.map(lambda f: jnp.where(warm, 1.0 / (count + 1).astype(dtype), f), inv)
      w = groups.broadcast(w, h)
      move = lambda a, x, f: a + jnp.where(ok, f * (x - a), 0.0).astype(a.dtype)
      avg = jax.tree.map(move, state.curv_avg, h, w)
      sq_avg = (
        jax.tree.map(lambda a, x, f: move(a, x * x, f), state.curv_sq_avg, h, w)
        if curvature_variance
        else ()
      )
      return avg, sq_avg, ok

    if every == 1:
      return refreshed()
    refresh = warm | ((count - n0) % every == 0)
    return jax.lax.cond(refresh, refreshed, lambda: (state.curv_avg, state.curv_sq_avg, finite))

  def update_fn(
    updates: optax.Updates,
    state: VSGDState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, VSGDState]:
    grads, _, _, extra_args = _step.direction_and_decay(
      None, updates, (), params, extra_args, weight_decay, mask, "vsgd"
    )
    dtype = rate_dtype(state.learning_rate)
    count = state.count
    bounds = dict(
      min_learning_rate=_step.bound_at(min_learning_rate, count),
      max_learning_rate=_step.bound_at(max_learning_rate, count),
    )
    warm = count < n0  # slow start (§4.4)
    key, sub = jax.random.split(state.key) if random else ((), None)

    g = jax.tree.map(lambda x: x.astype(dtype), grads)
    grad_sq = extra_args.get("grad_sq")
    if (grad_sq is None) != (n is None):
      raise ValueError(
        "vsgd: pass batch_size=n together with the `grad_sq` extra arg (the batch "
        "mean of the per-example squared gradients), or neither: without them "
        "the squared minibatch gradient is averaged, which needs no batch size."
      )
    if grad_sq is not None:
      grad_sq = jax.tree.map(lambda x: jnp.asarray(x).astype(dtype), grad_sq)
    c = slow_start_factor(grads)
    element = groups.kind == "element"

    # Finiteness of the inputs from one reduction each (NaN or inf make the sum so).
    # Element-wise, Σ g is read straight off g (a square would be written out first).
    check = sum(jnp.sum(x if element else jnp.square(x)) for x in jax.tree.leaves(g))
    if grad_sq is not None:
      check = check + sum(jnp.sum(x) for x in jax.tree.leaves(grad_sq))
    finite = _step.finite_from(check, extra_args.get("value"))
    curv_avg, curv_sq_avg, finite = curvature_average(
      grads, state, params, extra_args, sub, finite, warm
    )
    last_warm = count == n0 - 1

    if element and not curvature_variance:  # vSGD-l, fused
      first_d = (count + 1).astype(dtype)
      c_now = jnp.where(count == n0 - 1, c, 1.0).astype(dtype)
      new_updates, grad_avg, sq_avg, rate, tau = _step.map_rule(
        lambda gl, ql, *a: _vsgd_element(
          gl,
          None if grad_sq is None else ql,
          *a,
          warm=warm,
          last_warm=last_warm,
          ok=finite,
          first_d=first_d,
          c=c_now,
          dtype=dtype,
          **bounds,
          **rule,
        ),
        grads,
        grads if grad_sq is None else grad_sq,
        state.grad_avg,
        state.sq_avg,
        curv_avg,
        state.tau,
        state.learning_rate,
      )
      keep = lambda new, old: jnp.where(finite, new, old)
      new_state = VSGDState(
        learning_rate=rate,
        count=keep(optax.safe_increment(count), count),
        skipped=keep(state.skipped, state.skipped + 1),
        grad_avg=grad_avg,
        sq_avg=sq_avg,
        curv_avg=curv_avg,
        curv_sq_avg=state.curv_sq_avg,
        tau=tau,
        key=jax.tree.map(keep, key, state.key),
      )
      return new_updates, new_state

    if grad_sq is None:
      sq = groups.sq_norm(g, dtype)  # ‖∇‖² per group
    else:
      sq = groups.sum(grad_sq, dtype)
    # Memory: the arithmetic mean during the slow start (τ = k + 1), then 1/τ (§4.1).
    inv_tau = jax.tree.map(
      lambda t: jnp.where(warm, 1.0 / (count + 1).astype(dtype), 1.0 / t), state.tau
    )
    inv_tau_el = groups.broadcast(inv_tau, g)
    ema = lambda avg, x, f: (1.0 - f) * avg + f * x
    grad_avg = jax.tree.map(ema, state.grad_avg, g, inv_tau_el)  # Alg. 1: ḡ
    sq_avg = jax.tree.map(ema, state.sq_avg, sq, inv_tau)  #         l̄
    sq_avg = jax.tree.map(lambda v: jnp.where(count == n0 - 1, c * v, v).astype(dtype), sq_avg)
    # Rate (Eq. 8, Alg. 1) from the updated averages, then the memory.
    num = groups.sq_norm(grad_avg, dtype)  # Σ ḡ² per group
    if curvature_variance:
      # vSGD-fd (Schaul & LeCun 2013; py-optim vSGDfd): 1/h̄ becomes h̄ / v̄_h;
      # per group the largest v̄_h / h̄ (as h⁺ = max h̄). v̄_h / h̄ ≥ h̄ holds for
      # the exact averages (E[h²] ≥ E[h]²); enforced, as h² underflows first.
      inv = jax.tree.map(
        lambda hb, vh: jnp.maximum(_step.safe_div(vh, hb), hb), curv_avg, curv_sq_avg
      )
      h_plus = groups.max(inv, dtype)  # v̄_h / h̄
    else:
      h_plus = groups.max(curv_avg, dtype)  # h̄ or h⁺ = max h̄
    rate, tau = _step.map_rule(
      lambda m, v, hp, t: _vsgd_rate(m, v, hp, t, warm, last_warm, dtype=dtype, **bounds, **rule),
      num,
      sq_avg,
      h_plus,
      state.tau,
    )
    new_updates = groups.scale(rate, grads)  # θ ← θ − η ∇
    new_state = VSGDState(
      learning_rate=rate,
      count=jnp.asarray(optax.safe_increment(count)),
      skipped=state.skipped,
      grad_avg=grad_avg,
      sq_avg=sq_avg,
      curv_avg=curv_avg,
      curv_sq_avg=curv_sq_avg,
      tau=tau,
      key=key,
    )
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


@_step.descent(scale_by_vsgd)
def vsgd():
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

  **Curvature** (§4.3; ``curvature=``, needs ``value_fn`` unless "given" or
  "gauss_newton"):

  * ``"hutchinson"`` (default): :math:`|z \odot Hz|` with Rademacher z, Hz by
    forward-over-reverse autodiff on the same batch; exact for a diagonal
    Hessian, an upper bound in expectation otherwise. The PRNG key is in the
    state (``seed``).
  * ``"gauss_newton"``: the sampled-label Gauss-Newton diagonal of Sophia's
    Gauss-Newton-Bartlett estimator (Liu et al. 2023;
    ``adaptlr.curvature.softmax_gauss_newton_diagonal``), one forward and one
    backward pass of the ``logits_fn`` extra arg (``logits_fn(params, **batch)``
    -> logits of a mean softmax cross-entropy). A params -> scalar ``value_fn``
    has no Gauss-Newton matrix (that needs the split into model outputs and a
    loss on them), hence the extra arg; curvature of other loss terms (an L2
    penalty) is not in it.
  * ``"finite_difference"``: :math:`|(\nabla(\theta+\delta) -
    \nabla\theta)/\delta|` with :math:`\delta = \bar g` (the current gradient
    on the first step), same batch; one more gradient per sample. This is
    Schaul & LeCun's (ICLR 2013) estimate, but with the rate above it is not
    their vSGD-fd, whose rate differs (``curvature_variance``, below).
  * ``"given"``: the ``curvature`` extra arg (a pytree like the params, e.g.
    a Gauss-Newton diagonal such as the paper's bbprop); its absolute value
    is averaged.

  **Refresh** (``curvature_every`` = k; the paper's "could be skipped in all
  but a fraction of the updates"). The curvature is sampled on every
  slow-start update and then on updates :math:`n_0, n_0 + k, n_0 + 2k, \dots`
  (steps taken); in between :math:`\bar h` is kept and no estimate is
  computed (``jax.lax.cond``). A sample after the slow start enters
  :math:`\bar h` with weight :math:`1/\tau` for k = 1 (Alg. 1) and
  :math:`\min(\tfrac12, 1 - (1 - 1/\tau)^k)` for k > 1 (what a sample held
  for k steps of memory τ would get, at most half). Default k: 10 for vSGD-l
  with "hutchinson" or "gauss_newton", else 1 (a grouped rate rests on one
  :math:`h^+ = \max \bar h`). Without gradient noise the rates are Newton
  steps :math:`1/\bar h` that a stale curvature overshoots: pass
  ``curvature_every=1`` for deterministic problems.

  Measured (``benchmarks/results/vsgd_cost.md``): k = 10 reaches the losses of
  k = 1 on MNIST M0/M1, quadratic_deep and held-out Fashion-MNIST (within
  1 %); weighting a sample 1/τ (memory kτ steps) or min(1, k/τ) diverged;
  "gauss_newton" has no curvature where only an L2 term curves and diverged.
  "hutchinson" overestimates :math:`|\mathrm{diag}\,H|` on dense layers
  (``vsgd_curvature.md``), so the rates err small.

  **Cost**. vSGD-l makes one loop over the params per array it writes: the
  state's :math:`\bar g, \bar v, \bar h`, τ and rate, 5 beyond SGD's update
  (which fuses into ``optax.apply_updates``), plus one read of the gradient
  for the finiteness check. Fewer is not possible for this state without
  buffer donation: XLA:CPU emits no loop with several outputs, so each output
  computes its own divide (a shared one would be written out as an array; 12
  loops before). Between refreshes :math:`\bar h` is a copy; a clamped rate is
  written once more; grouped rates (their reductions come first) and
  ``curvature_variance`` take the unfused path.
  Per step: 1.89× ``optax.sgd`` (2.97× refreshed every step; 3.5× in 0.1),
  ``benchmarks/results/overhead.md``; quality: ``benchmarks/results/vsgd_cost.md``.

  **On networks** the default diverges on three of four networks (its curvature
  refreshed every 10 steps); ``curvature_every=1`` is finite on all four (2.75 /
  1.88 / 3.18 / 1.04× the best-tuned loss) but costs about two forward passes a
  step more, over issue 12's budget for a default: pass it on networks
  (``benchmarks/results/network_defaults.md``).

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
    curvature: ``"hutchinson"``, ``"gauss_newton"`` (with the ``logits_fn``
      extra arg), ``"finite_difference"`` or ``"given"`` (the ``curvature``
      extra arg).
    curvature_every: k ≥ 1, sample the curvature on every k-th step after the
      slow start (see **Refresh**); ``None``: 10 for vSGD-l with
      "hutchinson" or "gauss_newton", else 1.
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
    seed: PRNG seed for ``"hutchinson"`` and ``"gauss_newton"``; ``None``: 0.
      ``init_samples``, ``curvature_every``, ``batch_size`` and ``seed`` are
      static ints: ``optax.inject_hyperparams`` leaves them alone unless they
      are passed (then name them in ``static_args``).
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
      ``value_fn`` (or the ``curvature`` extra arg for ``"given"``, the
      ``logits_fn`` extra arg for ``"gauss_newton"``) is missing,
      or ``grad_sq`` and ``batch_size`` are not given together.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> h = jnp.array([1.0, 10.0, 100.0])              # badly conditioned
    >>> loss = lambda w, c: 0.5 * jnp.sum(h * (w - c) ** 2)
    >>> opt = adaptlr.vsgd()
    >>> w = jnp.ones(3); state = opt.init(w)
    >>> @jax.jit
    ... def step(w, state, c):
    ...   updates, state = opt.update(jax.grad(loss)(w, c), state, w,
    ...                               value_fn=loss, c=c)
    ...   return optax.apply_updates(w, updates), state
    >>> for t in range(300):
    ...   c = 0.1 * jax.random.normal(jax.random.key(t), (3,))
    ...   w, state = step(w, state, c)
    >>> bool(jnp.all(jnp.abs(w) < 0.05))
    True

  References:
    Schaul, Zhang & LeCun, No More Pesky Learning Rates, ICML 2013,
    arXiv:1206.1106: Eq. 7–8, §4.1–4.4, Alg. 1, App. B. Schaul & LeCun,
    Adaptive learning rates and parallelization for stochastic, sparse,
    non-smooth gradients, ICLR 2013, arXiv:1301.3764 (vSGD-fd). The authors'
    code: T. Schaul's py-optim (``vSGD``, ``vSGDfd``), S. Zhang's ``vsgd-bb.m``.
  """
