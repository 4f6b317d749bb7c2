"""vSGD: variance-based SGD with adaptive learning rates ("No More Pesky Learning Rates").

Per group, from moving averages with memory τ of the gradient ḡ, its square v̄ (or
l̄ over a group) and the diagonal curvature h̄ (Alg. 1):

    η*_i = ḡ_i² / (h̄_i v̄_i)   (Eq. 7, per element),   η* = Σ ḡ² / (h⁺ l̄)   (Eq. 8, per group),

then τ ← (1 − Σ ḡ² / l̄) τ + 1 (§4.2, App. B).

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
from typing import Any, Literal, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptlr import _loss, _step, _validate
from adaptlr import curvature as _curvature
from adaptlr._granularity import GranularityLike, Rates, granularity_from, rate_dtype

# Extra args vSGD reads besides optax's value/grad/value_fn.
CONSUMES: frozenset[str] = frozenset({"curvature", "grad_sq", "logits_fn"})
_PAPER_C = "d/10"
_START_MEMORY = ("init_samples", "adapted")


class VSGDState(NamedTuple):
  """State of :func:`scale_by_vsgd`."""

  learning_rate: Rates  # η per group (see granularity): 0 in the slow start, then lr · η* (Eq. 7/8)
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded), slow start included
  skipped: jax.Array  # int32 (): non-finite steps skipped
  grad_avg: optax.Updates  # ḡ per element (§4.1)
  sq_avg: Rates  # per group: v̄ (element-wise) or l̄ = E‖∇‖² over the group (§4.1)
  curv_avg: optax.Updates  # h̄ per element (§4.3)
  curv_sq_avg: optax.Updates  # v̄_h = E[h²] per element; () unless curvature_variance
  tau: Rates  # τ per group: the memory size (§4.2, App. B)
  key: Any  # uint32 (2,): the PRNG key; () unless "hutchinson" or "gauss_newton"


def _start_memory(start_memory, tau, vpart):
  """τ after the slow start: n₀ kept, py-optim's number (τ = 2), or vsgd-bb.m's 2 − vpart₀."""
  if start_memory == "adapted":  # vsgd-bb.m: §4.2 applied once to τ = 1
    return 2.0 - vpart
  if start_memory == "init_samples":
    return tau  # n₀, kept through the slow start
  return jnp.full_like(tau, start_memory)  # py-optim: τ = 2


class _Rule(NamedTuple):
  """The rate rule's options and this step's clamp (the bounds may be schedules)."""

  learning_rate: Any  # the factor on η*
  min_curvature: Any
  batch_size: Optional[int]  # n, with the grad_sq extra arg
  start_memory: Any
  min_learning_rate: Any
  max_learning_rate: Any


def _vsgd_rate(num, sq_avg, h_plus, tau, warm, last_warm, rule: _Rule, dtype):
  """(η, τ) for one group from the updated averages (Eq. 7 / 8, §4.2, Alg. 1).

  num = Σ ḡ² (ḡ² per element), sq_avg = l̄ (v̄), h_plus = h⁺ (h̄, or vSGD-fd's v̄_h / h̄);
  ``warm``: in the slow start (§4.4): η = 0, τ kept; ``last_warm``: its last update.
  """
  n = rule.batch_size
  den = sq_avg if n is None else sq_avg / n + (n - 1.0) / n * num  # minibatch correction
  vpart = jnp.clip(_step.safe_div(num, den), 0.0, 1.0)  # ḡ² / v̄ ∈ [0, 1]
  rate = rule.learning_rate * vpart / jnp.maximum(h_plus, rule.min_curvature)  # Eq. 7 / 8
  rate = rate.astype(dtype)
  rate = jnp.clip(rate, rule.min_learning_rate, rule.max_learning_rate).astype(rate.dtype)
  rate = jnp.where(warm, jnp.zeros_like(rate), rate)
  tau = jnp.where(warm, tau, (1.0 - vpart) * tau + 1.0)  # §4.2, App. B
  tau = jnp.where(last_warm, _start_memory(rule.start_memory, tau, vpart), tau).astype(dtype)
  return rate, tau


def _vsgd_element(g, sq, grad_avg, sq_avg, curv_avg, tau, old_rate, *, step, rule: _Rule, dtype):
  """vSGD-l for one leaf, fused: (update, ḡ, v̄, η, τ) from the new sample (Alg. 1, Eq. 7).

  The element-wise twin of the grouped path, written so that XLA emits one loop per
  output array (a divide shared by two outputs would be written out as an array: each
  output computes its own), a non-finite step folded into the averages' weights.
  ``curv_avg`` is h̄ already updated; ``step`` = (warm, last_warm, ok: the step is
  finite, first_d: the slow-start divisor k + 1, c: the factor on v̄, 1 except on the
  last slow-start step). An element whose g² overflows keeps its statistics, no step.
  """
  warm, last_warm, ok, first_d, c = step
  gd = g.astype(dtype)
  sq = gd * gd if sq is None else sq
  ok = ok & jnp.isfinite(sq)
  d = jnp.where(warm, first_d, tau)  # memory (§4.1)
  grad_avg = grad_avg + jnp.where(ok, (gd - grad_avg) / d, 0.0)  # ḡ
  c = jnp.where(ok, c, 1.0)
  sq_avg = sq_avg * c + jnp.where(ok, (sq - sq_avg) * c / d, 0.0)  # v̄ (× C after §4.4)
  num = grad_avg * grad_avg
  n = rule.batch_size
  den = sq_avg if n is None else sq_avg / n + (n - 1.0) / n * num  # minibatch correction
  m = jnp.minimum(num, den)  # vpart = m / den ∈ [0, 1]
  den_h = den * jnp.maximum(curv_avg, rule.min_curvature)
  live = ok & ~warm
  lo, hi = rule.min_learning_rate, rule.max_learning_rate
  rate = rule.learning_rate * _step.safe_div(m, den_h)  # Eq. 7
  if not (_is_value(lo, 0.0) and _is_value(hi, jnp.inf)):  # clamped
    rate = jnp.clip(rate, lo, hi)
    update = jnp.where(live, rate * gd, 0.0)
  else:  # own divide: no shared array
    update = _step.safe_div((rule.learning_rate * gd) * m, den_h, live & (den_h > 0))
  rate = jnp.where(ok, jnp.where(warm, 0.0, rate), old_rate).astype(dtype)
  vpart = _step.safe_div(m, den)
  new_tau = tau + 1.0 - tau * vpart  # §4.2
  first = _start_memory(rule.start_memory, tau, vpart)  # τ after the slow start
  tau = jnp.where(live, new_tau, jnp.where(ok & last_warm, first, tau)).astype(dtype)
  update = update.astype(g.dtype)
  update = jnp.where(jnp.isfinite(update), update, jnp.zeros_like(update))  # an overflow: no step
  return update, grad_avg, sq_avg.astype(dtype), rate, tau


def _is_value(x: Any, value: float) -> bool:
  """``x`` is concretely the scalar ``value`` (a traced bound counts as not)."""
  x = _validate.concrete(x)
  return x is not None and bool(np.all(np.asarray(x) == value))


def scale_by_vsgd(
  learning_rate: Any = 1.0,
  *,
  granularity: GranularityLike = "element",
  curvature: Literal["hutchinson", "gauss_newton", "finite_difference", "given"] = "hutchinson",
  curvature_every: Optional[int] = None,
  init_samples: Optional[int] = None,
  slow_start: Union[float, Literal["d/10"]] = 2.0,
  start_memory: Union[float, Literal["init_samples", "adapted"]] = "init_samples",
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

  The building block of :func:`vsgd`, which documents the rule (Eq. 7–8) and every
  option; its updates are :math:`+\eta \nabla`, for ``optax.chain``. The state is a
  :class:`VSGDState`.
  """
  learning_rate = _validate.learning_rate(learning_rate, "vsgd")
  _validate.weight_decay(weight_decay, mask)
  _validate.flag("curvature_variance", curvature_variance)
  _validate.choice("curvature", curvature, _curvature.ESTIMATORS)
  # n₀ = 1 would start the memory at τ = 1, a fixed point of §4.2 (one-sample
  # averages give ḡ² = v̄, so τ stays 1 and the rate stays 1/h whatever the noise).
  n0 = _validate.integer("init_samples", 10 if init_samples is None else init_samples, 2)
  groups = granularity_from(granularity)
  every = 1 if curvature_every is None else _validate.integer("curvature_every", curvature_every, 1)
  if not isinstance(slow_start, str):
    _validate.in_range("slow_start", slow_start, 1.0, float("inf"))
  elif slow_start != _PAPER_C:
    raise ValueError(
      f"slow_start must be a number >= 1 or {_PAPER_C!r} (the paper's rule), got {slow_start!r}."
    )
  if isinstance(start_memory, str):
    _validate.choice("start_memory", start_memory, _START_MEMORY)
  else:  # τ = 1 is a fixed point of §4.2 (see init_samples above)
    _validate.in_range("start_memory", start_memory, 1.0, float("inf"), low_open=True)
  n = None if batch_size is None else _validate.integer("batch_size", batch_size, 1)
  _validate.positive("min_curvature", min_curvature)
  seed = _validate.integer("seed", 0 if seed is None else seed, 0)
  _validate.bounds(min_learning_rate, max_learning_rate)
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
          "vsgd(curvature='given') needs the diagonal curvature as the `curvature` extra arg: "
          "`opt.update(grads, state, params, curvature=diag_h)` with diag_h a pytree like the "
          "params (e.g. a Gauss-Newton diagonal); or use curvature='hutchinson'."
        )
      return jax.tree.map(lambda x: jnp.abs(jnp.asarray(x)), c)
    _loss.require_params(params, name)
    if curvature == "gauss_newton":
      logits_fn = extra_args.get("logits_fn")
      if logits_fn is None:
        raise ValueError(
          f"{name} needs the model's logits as a function of the params: call `opt.update("
          "grads, state, params, logits_fn=apply_fn, **batch)` where `apply_fn(params, **batch)"
          "` returns logits of shape (batch, classes) of a mean softmax cross-entropy (keyword "
          "args it accepts are forwarded); or use curvature='hutchinson', which needs only "
          "`value_fn`."
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

    Samples: every slow-start step, then steps n₀, n₀ + k, n₀ + 2k, … (k = ``curvature_every``)
    with weight 1/(t + 1), then 1/τ (k = 1) or min(½, 1 − (1 − 1/τ)^k) (k > 1, what a sample
    held for k steps of memory τ would get); ``finite`` also requires a finite sample.
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
      move_sq = lambda a, x, f: move(a, x * x, f)
      sq_avg = jax.tree.map(move_sq, state.curv_sq_avg, h, w) if curvature_variance else ()
      return avg, sq_avg, ok

    if every == 1:
      return refreshed()
    refresh = warm | ((count - n0) % every == 0)
    return jax.lax.cond(refresh, refreshed, lambda: (state.curv_avg, state.curv_sq_avg, finite))

  def update_fn(updates, state, params=None, **extra_args):
    grads, _, _, extra_args = _step.direction_and_decay(
      None, updates, (), params, extra_args, weight_decay, mask, "vsgd"
    )
    dtype = rate_dtype(state.learning_rate)
    count = state.count
    lo, hi = (_step.bound_at(b, count) for b in (min_learning_rate, max_learning_rate))
    rule = _Rule(learning_rate, min_curvature, n, start_memory, lo, hi)
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
      step = (warm, last_warm, finite, first_d, c_now)
      element_rule = lambda gl, ql, *a: _vsgd_element(
        gl, None if grad_sq is None else ql, *a, step=step, rule=rule, dtype=dtype
      )
      trees = (grads, grads if grad_sq is None else grad_sq, state.grad_avg, state.sq_avg)
      new_updates, grad_avg, sq_avg, rate, tau = _step.map_rule(
        element_rule, *trees, curv_avg, state.tau, state.learning_rate
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
      inv = lambda hb, vh: jnp.maximum(_step.safe_div(vh, hb), hb)
      h_plus = groups.max(jax.tree.map(inv, curv_avg, curv_sq_avg), dtype)  # v̄_h / h̄
    else:
      h_plus = groups.max(curv_avg, dtype)  # h̄ or h⁺ = max h̄
    group_rule = lambda m, v, hp, t: _vsgd_rate(m, v, hp, t, warm, last_warm, rule, dtype)
    rate, tau = _step.map_rule(group_rule, num, sq_avg, h_plus, state.tau)
    new_updates = groups.scale(rate, grads)  # θ ← θ − η ∇
    new_state = VSGDState(
      learning_rate=rate,
      **_step.next_counters(state),
      grad_avg=grad_avg,
      sq_avg=sq_avg,
      curv_avg=curv_avg,
      curv_sq_avg=curv_sq_avg,
      tau=tau,
      key=key,
    )
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@_step.descent(scale_by_vsgd)
def vsgd():
  r"""vSGD (vSGD-l / -b / -g): SGD whose rates are estimated, not tuned.

  From moving averages with memory τ (§4.1) of the gradient :math:`\bar g`, its
  square :math:`\bar v` (or :math:`\bar l = E\|\nabla\|^2` over a group) and the
  diagonal curvature :math:`\bar h \approx E|\mathrm{diag}\,H|` (§4.3), each step
  of Alg. 1 takes the rate that minimizes a noisy quadratic's expected next loss,

  .. math::

    \eta^*_i = \frac{\bar g_i^2}{\bar h_i\,\bar v_i}
        \quad \text{(7, vSGD-l)}, \qquad
    \eta^* = \frac{\sum_i \bar g_i^2}{h^+ \bar l},\ h^+ = \max_i \bar h_i
        \quad \text{(8, vSGD-g)},

  times ``learning_rate``, steps :math:`\theta \leftarrow \theta - \eta^* \nabla` and
  updates :math:`\tau \leftarrow (1 - \sum \bar g^2/\bar l)\,\tau + 1` (§4.2, App. B).
  ``granularity``: ``"element"`` is vSGD-l (the paper's best), ``"global"`` vSGD-g,
  ``"leaf"`` or labels vSGD-b (Eq. 8 per block). The first ``init_samples`` updates
  (the slow start, §4.4) only gather statistics: **they return zero updates**.

  Where the paper leaves room, adaptlr's defaults are measured (see docs/methods/vsgd.md
  for the story): the slow start's C = 2, n₀ = 10 (py-optim's) beat the paper's d/10 on
  MNIST; the memory n₀ after it gave the lowest training loss. The curvature is sampled
  every step: refreshed every 10th (a tenth of the cost) it diverged on three of four
  benchmark networks, as one near-0 draw of :math:`|z \odot Hz|` held h̄ low for 10 steps.

  Args:
    learning_rate: factor on :math:`\eta^*` (> 0; 1 is the paper); no rate to tune.
    curvature: the estimate of :math:`|\mathrm{diag}\,H|`: ``"hutchinson"``
      (:math:`|z \odot Hz|`, needs ``value_fn``), ``"gauss_newton"`` (sampled-label,
      needs the ``logits_fn`` extra arg), ``"finite_difference"`` (Schaul & LeCun
      2013, needs ``value_fn``) or ``"given"`` (the ``curvature`` extra arg).
    curvature_every: k ≥ 1, sample the curvature every k-th step after the slow
      start (``None``: 1); k = 10 costs a tenth of the estimate (see above).
    init_samples: :math:`n_0 \ge 2`, the slow-start updates (zero steps); ``None``: 10.
    slow_start: C ≥ 1, the factor on :math:`\bar v, \bar l` after the slow start;
      or (reproduction) ``"d/10"``, the paper's max(1, d/10), d the parameter count.
    start_memory: (reproduction) τ after the slow start: ``"init_samples"`` (n₀),
      a number > 1 (py-optim: 2.0) or ``"adapted"`` (2 − vpart₀, vsgd-bb.m).
    curvature_variance: (reproduction) vSGD-fd's rate (with ``"finite_difference"``):
      :math:`\bar h/\bar v_h` in place of :math:`1/\bar h`.
    batch_size: n, with the ``grad_sq`` extra arg (the batch mean of the
      per-example squared gradients), both or neither: the authors' variance term.
    min_curvature: lower bound on :math:`h^+` (> 0): rates ≤ ``learning_rate / min_curvature``.
    seed: PRNG seed of "hutchinson" and "gauss_newton"; ``None``: 0.
    granularity, min_learning_rate, max_learning_rate, weight_decay, mask: the
      shared options, see docs/options.md (default granularity: ``"element"``).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` (updates :math:`-\eta \nabla`, a
    :class:`VSGDState`); ``update`` needs ``value_fn`` and the batch for the curvature.

  Raises:
    ValueError: for bad hyperparameters; at update time, a missing ``value_fn``
      (``curvature`` or ``logits_fn`` extra arg), or only one of ``grad_sq``, ``batch_size``.

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
    Schaul, Zhang & LeCun, `No More Pesky Learning Rates
    <https://arxiv.org/abs/1206.1106>`_, ICML 2013: Eq. 7–8, §4.1–4.4, Alg. 1, App. B.
    Schaul & LeCun, `Adaptive learning rates and parallelization for stochastic,
    sparse, non-smooth gradients <https://arxiv.org/abs/1301.3764>`_, ICLR 2013
    (vSGD-fd). The authors' code: T. Schaul's py-optim, S. Zhang's ``vsgd-bb.m``.
  """
