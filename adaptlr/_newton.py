"""Newton's method on the learning rate (Ravaut & Gorti §3.2, §4.1, §5.2, §5.3).

One Newton step on the loss along the step, f(η) = L(w − η u), with f′ and f″
exact by forward-mode autodiff or from five loss probes (Eq. 6–10), gives the
rate of the next step: η_{k+1} = η_k − f′(η_k) / f″(η_k)   (Eq. 10).

References:
  M. Ravaut, S. Gorti, Gradient descent revisited via an adaptive online
  learning rate, arXiv:1801.09136 (2018): §3.2, §4.1, §5.2, §5.3.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from adaptlr import _loss, _step, _validate
from adaptlr import probes as _probes
from adaptlr._granularity import GranularityLike, Rates, granularity_from, rate_dtype

# Extra args newton_lr reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()
DERIVATIVES = ("autodiff", "finite_difference")
LINES = ("next_batch", "this_batch")


class NewtonLRState(NamedTuple):
  """State of :func:`scale_by_newton_lr`."""

  learning_rate: Rates  # float () per group: η_{k+1}, the rate the next step uses
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32 (): steps not taken (non-finite input or f(η_k))
  loss_after: jax.Array  # float (): f(η_k) on this batch: L(w_k − η_k u_k) (§4.1), or for
  # line="next_batch" L(w_k) (the last step's line at η_{k−1})
  velocity: Rates  # float () per group: δ(t) of §5.2, the last change of η
  direction_state: optax.OptState  # state of ``direction`` (() for SGD)
  prev_direction: optax.Updates  # u_{k−1}, like params (line="next_batch"); () otherwise


def _newton_rate(rate, velocity, num, den, tol_num, tol_den, *, delta, max_change, beta, lo, hi):
  """(η_{k+1}, δ_{k+1}, the line's own rate) for one group: η_k − num/den (Eq. 10–13, §5.2).

  num/den = f′/f″; for finite differences num = 2ε(f(η+ε) − f(η−ε)), den = f(η+2ε) + f(η−2ε)
  − 2f(η) (Eq. 11's δ test is the paper's); ``tol_*``: their rounding levels (0 if exact).
  """
  dtype = rate.dtype
  num, den = num.astype(dtype), den.astype(dtype)
  if max_change is None:  # the paper's rule
    # Eq. 11–12: δ is added "when it reaches zero machine, but only when it
    # does so" (§4.1): where the computed second difference is exactly 0.
    den = jnp.where(den == 0, delta, den)
    step = -num / den  # Eq. 10
  else:
    # Bounded rule: a convex line takes the Newton step (capped above); a concave or flat one
    # (f″ ≤ 0: Newton would head for a maximum) moves η by the factor 1 + c downhill along the
    # line, sign(−f′). A slope or a curvature below the probes' rounding level counts as zero.
    c = jnp.asarray(max_change, dtype)
    convex = den > tol_den
    newton = -num / jnp.where(convex, den, 1.0)
    sloped = jnp.abs(num) > tol_num
    downhill = jnp.where(num < 0, c * rate, rate / (1 + c) - rate)
    step = jnp.where(convex, newton, jnp.where(sloped, downhill, 0.0))
  clamp = lambda r: jnp.clip(jnp.maximum(r, delta), lo, hi)
  line_rate = clamp(rate + step)  # Eq. 10, 13: this line's own best rate (for the safeguard)
  proposal = rate + beta * velocity + step  # §5.2
  if max_change is not None:
    proposal = jnp.clip(proposal, rate / (1 + c), rate * (1 + c))
  proposal = clamp(proposal)  # Eq. 13
  # A non-finite probe (the line blows up within the stencil): shrink η.
  shrink = 2.0 if max_change is None else 1 + c
  ok = jnp.isfinite(num) & jnp.isfinite(den) & jnp.isfinite(proposal)
  # (Not floored at δ: if the loss overflows even there, η keeps shrinking.)
  shrunk = jnp.clip(rate / shrink, lo, hi)
  proposal = jnp.where(ok, proposal, shrunk).astype(dtype)
  line_rate = jnp.where(ok, line_rate, shrunk).astype(dtype)
  return proposal, (proposal - rate).astype(dtype), line_rate


def scale_by_newton_lr(
  learning_rate: Any = 0.01,
  *,
  derivatives: Literal["autodiff", "finite_difference"] = "autodiff",
  line: Literal["next_batch", "this_batch"] = "next_batch",
  eps: Any = None,
  relative_eps: Any = 0.25,
  max_change: Any = 1.0,
  safeguard: bool = True,
  rate_momentum: Any = 0.0,
  momentum: Optional[float] = None,  # deprecated name of rate_momentum
  delta: Any = 1e-6,
  granularity: GranularityLike = "global",
  direction: Optional[optax.GradientTransformation] = None,
  probe_mode: Literal["vmap", "map", "unroll"] = "vmap",
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the search direction by a rate learned by Newton's method on η.

  The building block of :func:`newton_lr` (see there for the rule, Eq. 10–13,
  and every argument); its updates are :math:`+\eta u`, for ``optax.chain``.
  Returns an ``optax.GradientTransformationExtraArgs`` with a :class:`NewtonLRState`.
  """
  if momentum is not None:  # the deprecated name of rate_momentum
    if _validate.number("rate_momentum", rate_momentum) not in (None, 0.0):
      raise ValueError("newton_lr: pass rate_momentum= only (momentum= is its old name), not both.")
    msg = "newton_lr: momentum= is renamed rate_momentum= (momentum on the rate η, §5.2); "
    warnings.warn(msg + "momentum= will be removed in 0.3.", DeprecationWarning, stacklevel=3)
    rate_momentum = momentum
  learning_rate = _validate.learning_rate(learning_rate, "newton_lr")
  _validate.weight_decay(weight_decay, mask)
  _validate.flag("safeguard", safeguard)
  _validate.choice("derivatives", derivatives, DERIVATIVES)
  _validate.choice("line", line, LINES)
  _validate.either("eps", eps, _validate.positive)
  _validate.in_range("relative_eps", relative_eps, 0.0, 0.5, low_open=True, high_open=True)
  _validate.either("max_change", max_change, _validate.positive)
  _validate.in_range("rate_momentum", rate_momentum, 0.0, 1.0, high_open=True)
  _validate.positive("delta", delta, allow_zero=True)
  _validate.choice("probe_mode", probe_mode, _probes.PROBE_MODES)
  _validate.bounds(min_learning_rate, max_learning_rate)
  groups = granularity_from(granularity)
  if groups.kind == "element":
    raise ValueError(
      "newton_lr does not support granularity='element' (it would probe one line per scalar "
      "parameter): use 'global', 'leaf' or labels, or adaptlr.vsgd for per-element rates."
    )
  direction = _validate.direction(direction, "newton_lr")
  rule = dict(delta=delta, max_change=max_change, beta=rate_momentum)
  next_batch = line == "next_batch"

  def init_fn(params: optax.Params) -> NewtonLRState:
    dtype = rate_dtype(params)
    return NewtonLRState(
      learning_rate=_step.initial_rates(
        groups, params, learning_rate, dtype, min_learning_rate, max_learning_rate
      ),
      **_step.counters(),
      loss_after=jnp.asarray(jnp.inf, dtype),
      velocity=groups.init_rates(params, 0.0, dtype),
      direction_state=_step.direction_init(direction, params),
      prev_direction=optax.tree.zeros_like(params) if next_batch else (),
    )

  def line_fit(value_fn, params, u, rate):
    """f(η_k) and, per group, (num, den, tol_num, tol_den): num/den = f′/f″ at η_k."""
    dtype = rate_dtype(rate)
    step = (lambda r: eps * jnp.ones_like(r)) if eps is not None else (lambda r: relative_eps * r)
    if derivatives == "autodiff":  # exact, nested jvp
      if groups.kind == "global":
        f_0, d1, d2 = _probes.line_derivatives(value_fn, params, u, rate, order=2)
        f_0, d1, d2 = f_0.astype(dtype), d1.astype(dtype), d2.astype(dtype)
      else:
        f_0, d1, d2 = _probes.group_line_derivatives(
          value_fn, params, u, rate, groups.broadcast, mode=probe_mode
        )
      return f_0, d1, d2, jax.tree.map(jnp.zeros_like, d1), jax.tree.map(jnp.zeros_like, d2)
    e = jax.tree.map(step, rate)  # Eq. 6–10
    if groups.kind == "global":
      f = _probes.line_probes(value_fn, params, u, rate, e, mode=probe_mode)[None, :]
      unravel, e_flat = (lambda x: x[0]), e[None]
    else:
      f = _probes.group_line_probes(value_fn, params, u, rate, e, groups.broadcast, mode=probe_mode)
      unravel, e_flat = ravel_pytree(rate)[1], ravel_pytree(e)[0]
    f = f.astype(dtype)
    f_0 = f[0, 2]
    num = 2 * e_flat * (f[:, 3] - f[:, 1])
    den = f[:, 4] + f[:, 0] - 2 * f[:, 2]
    # Rounding level of the second difference of five loss values.
    tol_den = _step.rounding_level(jnp.max(jnp.abs(f), axis=1))
    return f_0, unravel(num), unravel(den), unravel(2 * e_flat * tol_den), unravel(tol_den)

  def update_fn(updates, state, params=None, **extra_args):
    _loss.require_params(params, "newton_lr")
    grads, u, direction_state, extra_args = _step.direction_and_decay(
      direction, updates, state.direction_state, params, extra_args, weight_decay, mask, "newton_lr"
    )
    value_fn = _loss.get_value_fn(
      extra_args, "newton_lr", " to probe the loss along the step direction", params=params
    )
    finite = _step.tree_all_finite(grads, extra_args.get("value"))
    # Reduce the check before probing: left to the scheduler, XLA:CPU computed the
    # element-wise isfinite(g) mask (1 byte per parameter, 1/4 P in float32) before
    # the lax.map loop and reduced it after, holding it across the probes.
    finite, u = jax.lax.optimization_barrier((finite, u))
    rate = state.learning_rate
    if next_batch:
      # §5.3's held-out batch, at no extra pass: the last step's line
      # f(η) = L(w_{k−1} − η u_{k−1}) measured on this batch, at η_{k−1} (here, w_k).
      # Its Newton rate is this step's (a zero u_{k−1}, at the first step: η unchanged).
      lo, hi = (_step.bound_at(b, state.count) for b in (min_learning_rate, max_learning_rate))
      prev = optax.tree.add(params, groups.scale(rate, state.prev_direction))
      loss_after, num, den, tol_num, tol_den = line_fit(value_fn, prev, state.prev_direction, rate)
    else:
      # η_{k+1} is the next step's rate: clamped to the bounds of that step.
      lo, hi = (_step.bound_at(b, state.count + 1) for b in (min_learning_rate, max_learning_rate))
      loss_after, num, den, tol_num, tol_den = line_fit(value_fn, params, u, rate)
    new_rate, velocity, line_rate = _step.map_rule(
      lambda *a: _newton_rate(*a, lo=lo, hi=hi, **rule),
      *(rate, state.velocity, num, den, tol_num, tol_den),
    )
    step_ok = jnp.isfinite(loss_after)
    if next_batch:
      step_rate = new_rate
      if safeguard:
        # η was fitted on the last line: where this direction curves more, it can
        # overshoot. A step that raises this batch's loss beyond rounding (16 ulps: a tiny
        # η's step may not change it) is not taken and η shrinks by 1 + c
        # (deterministic Rosenbrock diverged without this).
        f_0 = extra_args.get("value")
        f_0 = jnp.asarray(value_fn(params) if f_0 is None else f_0)
        f_step = value_fn(optax.tree.sub(params, groups.scale(step_rate, u)))
        downhill = f_step <= f_0 + _step.rounding_level(jnp.abs(f_0))
        shrink = 2.0 if max_change is None else 1 + max_change
        shrunk = jax.tree.map(lambda r: jnp.clip(r / shrink, lo, hi), new_rate)
        new_rate = optax.tree.where(downhill, new_rate, shrunk)
        step_ok = step_ok & downhill
    else:
      # The step uses η_k (§4.1) — with the safeguard, this line's own Newton
      # rate if that is smaller; it is not taken if f(η_k) is not finite.
      step_rate = jax.tree.map(jnp.minimum, rate, line_rate) if safeguard else rate
    new_updates = jax.tree.map(
      lambda x: jnp.where(step_ok, x, jnp.zeros_like(x)), groups.scale(step_rate, u)
    )
    new_state = NewtonLRState(
      learning_rate=new_rate,
      count=state.count + step_ok.astype(jnp.int32),
      skipped=state.skipped + (~step_ok).astype(jnp.int32),
      loss_after=loss_after.astype(state.loss_after.dtype),
      velocity=velocity,
      direction_state=direction_state,
      prev_direction=optax.tree.where(
        step_ok, optax.tree.cast_like(u, state.prev_direction), optax.tree.zeros_like(u)
      )
      if next_batch
      else (),
    )
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


@_step.descent(scale_by_newton_lr)
def newton_lr():
  r"""SGD (or any direction) whose rate is learned by Newton's method on η.

  With :math:`f(\eta) = L(w_k - \eta u_k)` the loss along the step (Eq. 1–2;
  :math:`u = g` for SGD), each update steps with :math:`\eta_k` and takes one Newton
  step on the rate for the next (§4.1), floored at δ (Eq. 11–13), with momentum (§5.2):

  .. math::

    \eta_{k+1} = \eta_k - \frac{f'(\eta_k)}{f''(\eta_k)}
    = \eta_k - 2\epsilon\,\frac{f(\eta_k+\epsilon) - f(\eta_k-\epsilon)}
          {f(\eta_k+2\epsilon) + f(\eta_k-2\epsilon) - 2 f(\eta_k)} \qquad (10)

  The paper's rule is ``derivatives="finite_difference", eps=1e-5, max_change=None,
  line="this_batch", safeguard=False``. The defaults differ by measurement
  (docs/methods/newton_lr.md):

  * exact f′, f″ by ``jax.jvp``: the paper's ε puts the float32 f″ below rounding;
  * η moves by a factor 1 + ``max_change`` at most a step (a concave line: downhill);
  * ``line="next_batch"``: f is the last step's line measured on this batch (§5.3's
    held-out batch), and its rate is this step's. A batch's own line minimum lies far
    beyond a rate that helps the next batch: on a CNN η doubled to ~10, killing it.

  Args:
    learning_rate: initial rate :math:`\eta_0 > 0`.
    derivatives: ``"autodiff"`` (exact) or ``"finite_difference"`` (Eq. 6–10).
    line: ``"next_batch"`` (one params-sized buffer: u_{k−1}) or ``"this_batch"`` (§4.1).
    eps: (reproduction) absolute finite-difference step ε (the paper: 1e-5);
      ``None``: ε = ``relative_eps``·η.
    relative_eps: ρ in ε = ρη, 0 < ρ < 1/2.
    max_change: c > 0, the bounded rule; ``None``: the paper's (Eq. 10–13).
    safeguard: ``"next_batch"``: a step must lower this batch's loss (one forward pass,
      two without ``value``); ``"this_batch"``: step with min(η_k, the line's rate).
    rate_momentum: β ∈ [0, 1) on the changes of η (§5.2; the paper tries 0.9);
      weight momentum is ``direction=optax.trace(0.9)``.
    momentum: deprecated name of ``rate_momentum``, removed in 0.3.
    delta: δ of Eq. 11–13, the floor of η (added to a zero f″ by the paper's rule).
    probe_mode: ``"vmap"`` (one batched call), ``"map"`` (``jax.lax.map``, for
      large models) or ``"unroll"`` (performance: separate calls, for CPU).
    granularity, direction, min_learning_rate, max_learning_rate, weight_decay, mask: the
      shared options, see docs/options.md (no ``"element"``).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with updates :math:`-\eta u_k`
    and a :class:`NewtonLRState`; each update needs ``params`` and ``value_fn``.

  Raises:
    ValueError: for bad options, or at update time without ``params`` or ``value_fn``.

  Example:
    Probes on a held-out batch (§5.3): the gradient comes from the training
    batch, the line f(η) from the validation batch.

    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
    >>> kx, kv = jax.random.split(jax.random.key(0))
    >>> x, x_val = jax.random.normal(kx, (64, 3)), jax.random.normal(kv, (32, 3))
    >>> y, y_val = x @ jnp.ones(3), x_val @ jnp.ones(3)
    >>> opt = adaptlr.newton_lr(1e-4, line="this_batch")
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> for _ in range(30):
    ...   g = jax.grad(loss)(w, x, y)
    ...   updates, state = opt.update(g, state, w, value_fn=loss, x=x_val, y=y_val)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w, x, y) < 1e-3)
    True

    On a quadratic line one Newton step on η is exact:

    >>> loss = lambda w: jnp.sum(2.0 * (w - 1.5) ** 2)
    >>> opt = adaptlr.newton_lr(1e-3, max_change=None, line="this_batch")
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> updates, state = opt.update(jax.grad(loss)(w), state, w, value_fn=loss)
    >>> round(float(optax.tree.get(state, "learning_rate")), 4)  # exact: 1/4
    0.25

  References:
    Ravaut & Gorti, Gradient descent revisited via an adaptive online learning
    rate, arXiv:1801.09136: §3.2 (Eq. 5–10), §4.1 (Eq. 11–13), §5.2, §5.3, §6.1.
  """
