"""Newton's method on the learning rate (Ravaut & Gorti §3.2, §4.1, §5.2, §5.3).

The loss after a step, as a function of the rate, is f(η) = L(w − η u). One
Newton step on it, with f′ and f″ from five loss probes (Eq. 6–10) or exact by
forward-mode autodiff, gives the rate of the next step:

    η_{k+1} = η_k − f′(η_k) / f″(η_k)
            = η_k − 2ε (f(η+ε) − f(η−ε)) / (f(η+2ε) + f(η−2ε) − 2f(η)).   (Eq. 10)

References:
  M. Ravaut, S. Gorti, Gradient descent revisited via an adaptive online
  learning rate, arXiv:1801.09136 (2018): §3.2, §4.1, §5.2, §5.3.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from adaptlr import _loss, _step, _validate
from adaptlr import probes as _probes
from adaptlr._granularity import GranularityLike, granularity_from, rate_dtype

# Extra args newton_lr reads besides optax's value/grad/value_fn: none.
CONSUMES: frozenset[str] = frozenset()
DERIVATIVES = ("autodiff", "finite_difference")
# A finite-difference slope or curvature below this many ulps of the loss is
# rounding noise (the bounded rule treats it as zero).
_ROUNDING = 16


class NewtonLRState(NamedTuple):
  """State of :func:`scale_by_newton_lr`."""

  learning_rate: Any  # η_{k+1} per group: the rate the next step uses
  count: jax.Array  # int32 (): steps taken (non-finite steps excluded)
  skipped: jax.Array  # int32: steps not taken (non-finite input or f(η_k))
  loss_after: jax.Array  # L^{(k+1)} = f(η_k) = L(w_k − η_k u_k), this step's batch (§4.1)
  velocity: Any  # δ(t) of §5.2 per group: the last change of η
  direction_state: Any  # state of ``direction`` (() for SGD)


def _newton_rate(
  rate,
  velocity,
  num,
  den,
  tol_num,
  tol_den,
  *,
  delta,
  max_change,
  momentum,
  min_learning_rate,
  max_learning_rate,
):
  """(η_{k+1}, δ_{k+1}) for one group from η_k − num/den (Eq. 10–13, §5.2).

  ``num / den`` is f′/f″; for finite differences num = 2ε(f(η+ε) − f(η−ε)) and
  den = f(η+2ε) + f(η−2ε) − 2f(η), so that the δ test of Eq. 11 is the paper's.
  ``tol_num``, ``tol_den``: the rounding levels of num and den for finite
  differences, 0 for exact derivatives; used by the bounded rule only.
  """
  dtype = rate.dtype
  num, den = num.astype(dtype), den.astype(dtype)
  if max_change is None:  # the paper's rule
    # Eq. 11–12: δ is added "when it reaches zero machine, but only when it
    # does so" (§4.1): where the computed second difference is exactly 0.
    den = jnp.where(den == 0, delta, den)
    step = -num / den  # Eq. 10
  else:
    # Bounded rule: a convex line takes the Newton step (capped above); a
    # concave or flat one (f″ ≤ 0: Newton would head for a maximum) moves η
    # by the factor 1 + c downhill along the line, sign(−f′). A slope or a
    # curvature below the probes' rounding level counts as zero.
    c = jnp.asarray(max_change, dtype)
    convex = den > tol_den
    newton = -num / jnp.where(convex, den, 1.0)
    sloped = jnp.abs(num) > tol_num
    downhill = jnp.where(num < 0, c * rate, rate / (1 + c) - rate)
    step = jnp.where(convex, newton, jnp.where(sloped, downhill, 0.0))
  clamp = lambda r: jnp.clip(jnp.maximum(r, delta), min_learning_rate, max_learning_rate)
  # This line's own estimate of its best rate (for the safeguard).
  line_rate = clamp(rate + step)  # Eq. 10, 13
  proposal = rate + momentum * velocity + step  # §5.2
  if max_change is not None:
    proposal = jnp.clip(proposal, rate / (1 + c), rate * (1 + c))
  proposal = clamp(proposal)  # Eq. 13
  # A non-finite probe (the line blows up within the stencil): shrink η.
  shrink = 2.0 if max_change is None else 1 + c
  ok = jnp.isfinite(num) & jnp.isfinite(den) & jnp.isfinite(proposal)
  # (Not floored at δ: if the loss overflows even there, η keeps shrinking.)
  shrunk = jnp.clip(rate / shrink, min_learning_rate, max_learning_rate)
  proposal = jnp.where(ok, proposal, shrunk).astype(dtype)
  line_rate = jnp.where(ok, line_rate, shrunk).astype(dtype)
  return proposal, (proposal - rate).astype(dtype), line_rate


def scale_by_newton_lr(
  learning_rate: Any = 0.01,
  *,
  derivatives: str = "autodiff",
  eps: Any = None,
  relative_eps: Any = 0.25,
  max_change: Any = 1.0,
  safeguard: bool = True,
  momentum: Any = 0.0,
  delta: Any = 1e-6,
  granularity: GranularityLike = "global",
  direction: Optional[optax.GradientTransformation] = None,
  probe_mode: str = "vmap",
  min_learning_rate: Any = 0.0,
  max_learning_rate: Any = jnp.inf,
  weight_decay: Any = 0.0,
  mask: Any = None,
) -> optax.GradientTransformationExtraArgs:
  r"""Scales the search direction by a rate learned by Newton's method on η.

  The building block of :func:`newton_lr` (see there for the rule, Eq. 10–13,
  and every argument); its updates are :math:`+\eta u`, for ``optax.chain``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` with a :class:`NewtonLRState`.
  """
  _validate.learning_rate(learning_rate, "newton_lr")
  _validate.positive("weight_decay", weight_decay, allow_zero=True)
  _validate.choice("derivatives", derivatives, DERIVATIVES)
  if eps is not None:
    _validate.positive("eps", eps)
  _validate.in_range("relative_eps", relative_eps, 0.0, 0.5, low_open=True, high_open=True)
  if max_change is not None:
    _validate.positive("max_change", max_change)
  _validate.in_range("momentum", momentum, 0.0, 1.0, high_open=True)
  _validate.positive("delta", delta, allow_zero=True)
  _validate.choice("probe_mode", probe_mode, _probes.PROBE_MODES)
  _validate.bounds(min_learning_rate, max_learning_rate)
  groups = granularity_from(granularity)
  if groups.kind == "element":
    raise ValueError(
      "newton_lr does not support granularity='element' (it would probe one "
      "line per scalar parameter): use 'global', 'leaf' or labels, or "
      "adaptlr.vsgd for per-element rates."
    )
  direction = _validate.direction(direction, "newton_lr")
  fd = derivatives == "finite_difference"
  rule = dict(delta=delta, max_change=max_change, momentum=momentum)

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
    )

  def line(value_fn, params, u, rate):
    """f(η_k) and, per group, (num, den, tol_num, tol_den): num/den = f′/f″ at η_k."""
    dtype = rate_dtype(rate)
    abs_eps: Any = eps
    step = (
      (lambda r: abs_eps * jnp.ones_like(r)) if eps is not None else (lambda r: relative_eps * r)
    )
    zero = lambda t: jax.tree.map(jnp.zeros_like, t)
    if not fd:  # exact, nested jvp
      if groups.kind == "global":
        f_0, d1, d2 = _probes.line_derivatives(value_fn, params, u, rate, order=2)
        f_0, d1, d2 = f_0.astype(dtype), d1.astype(dtype), d2.astype(dtype)
      else:
        f_0, d1, d2 = _probes.group_line_derivatives(
          value_fn, params, u, rate, groups.broadcast, mode=probe_mode
        )
      return f_0, d1, d2, zero(d1), zero(d2)
    e = jax.tree.map(step, rate)  # Eq. 6–10
    if groups.kind == "global":
      f = _probes.line_probes(value_fn, params, u, rate, e, mode=probe_mode)[None, :]
      unravel = lambda x: x[0]
      e_flat = e[None]
    else:
      f = _probes.group_line_probes(value_fn, params, u, rate, e, groups.broadcast, mode=probe_mode)
      unravel = ravel_pytree(rate)[1]
      e_flat = ravel_pytree(e)[0]
    f = f.astype(dtype)
    f_0 = f[0, 2]
    num = 2 * e_flat * (f[:, 3] - f[:, 1])
    den = f[:, 4] + f[:, 0] - 2 * f[:, 2]
    # Rounding level of the second difference of five loss values.
    tol_den = _ROUNDING * jnp.finfo(dtype).eps * jnp.max(jnp.abs(f), axis=1)
    return f_0, unravel(num), unravel(den), unravel(2 * e_flat * tol_den), unravel(tol_den)

  def update_fn(
    updates: optax.Updates,
    state: NewtonLRState,
    params: Optional[optax.Params] = None,
    **extra_args: Any,
  ) -> tuple[optax.Updates, NewtonLRState]:
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
    # η_{k+1} is the next step's rate: clamped to the bounds of that step.
    bounds = dict(
      min_learning_rate=_step.bound_at(min_learning_rate, state.count + 1),
      max_learning_rate=_step.bound_at(max_learning_rate, state.count + 1),
    )
    loss_after, num, den, tol_num, tol_den = line(value_fn, params, u, rate)

    new_rate, velocity, line_rate = _step.map_rule(
      lambda *a: _newton_rate(*a, **bounds, **rule),
      rate,
      state.velocity,
      num,
      den,
      tol_num,
      tol_den,
    )

    # The step uses η_k (§4.1) — with the safeguard, this line's own Newton
    # rate if that is smaller; it is not taken if f(η_k) is not finite.
    step_rate = jax.tree.map(jnp.minimum, rate, line_rate) if safeguard else rate
    step_ok = jnp.isfinite(loss_after)
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
    )
    return _step.skip_if_not_finite(finite, new_updates, new_state, state)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


@_step.descent(scale_by_newton_lr)
def newton_lr():
  r"""SGD (or any direction) whose rate is learned by Newton's method on η.

  With :math:`f(\eta) = L(w_k - \eta u_k)` the loss along this step's direction
  (Eq. 1–2; :math:`u = g` for SGD), each update (§4.1)

  1. steps the weights with the current rate, :math:`w_{k+1} = w_k - \eta_k u_k`;
  2. probes the same line around :math:`\eta_k` and takes one Newton step on
     the rate, for the next update,

     .. math::

       \eta_{k+1} = \eta_k - \frac{f'(\eta_k)}{f''(\eta_k)}
       = \eta_k - 2\epsilon\,\frac{f(\eta_k+\epsilon) - f(\eta_k-\epsilon)}
             {f(\eta_k+2\epsilon) + f(\eta_k-2\epsilon) - 2 f(\eta_k)} ;
       \qquad (10)

  3. records :math:`L^{(k+1)} = f(\eta_k)`, the loss after the step on this
     batch, in ``state.loss_after`` (one of the probes: free).

  The paper's rule exactly is ``derivatives="finite_difference", eps=1e-5,
  max_change=None, safeguard=False`` (δ = 1e-6, Eq. 11–13). The defaults were
  chosen by measurement in float32 from initial rates 1e-5 … 1 on six problems
  (``benchmarks/results/newton_defaults.md``): they keep more of the initial
  rates near the best tuned SGD run than the paper's rule, which diverges on
  some of them.

  **Derivatives.** ``"autodiff"`` (default): exact :math:`f, f', f''` by
  nested forward-mode ``jax.jvp`` along :math:`u` — no ε, about two forward
  passes. ``"finite_difference"``: the five probes
  :math:`f(\eta_k + j\epsilon)`, :math:`j = -2 \dots 2` (Eq. 6–10), in one
  batched call (``probe_mode``). Per-step costs: ``benchmarks/results/overhead.md``.

  **Relative ε** (default). The paper's ε = 1e-5 (§6.1) makes the denominator
  :math:`4\epsilon^2 f'' \approx 10^{-10} f''`, below the float32 rounding of
  a loss value: the float32 f″ comes out wrong or 0 — the paper's "sudden and
  extreme amplitude variations" (§4.2.1). Here ε = ρη (``relative_eps``
  ρ = 1/4, every probe at a positive rate): the stencil scales with the step,
  and on a quadratic line the five-point Newton step is exact for every ε.
  With ``max_change`` set, a slope or curvature below 16 ulps of the probed
  loss counts as zero (rounding noise). ``eps=1e-5`` (absolute) reproduces the
  paper.

  **Bounded change** (``max_change=c``, default 1). The paper's rule
  (``None``) moves η by any factor in one update. With ``c`` the stored rate
  moves by at most a factor :math:`1+c` per update, up or down, so one
  outlying line cannot explode or collapse it.

  **Concave lines.** Where :math:`f''(\eta_k) \le 0` Newton heads for the
  maximum of its model (§3.2); the paper's rule only guards the division
  (Eq. 11–12: δ is added to the denominator "when it reaches zero machine,
  but only when it does so", §4.1: where it is exactly 0) and floors η at δ
  (Eq. 13). With ``max_change=c`` a concave (or flat) line moves η by
  the factor :math:`1+c` downhill along the line: :math:`\times(1+c)` if
  :math:`f'(\eta_k) < 0`, :math:`\div(1+c)` if :math:`f' > 0`, kept if
  :math:`f' = 0`. The floor :math:`\eta \ge \delta` (Eq. 13) applies always.

  **Safeguard** (``safeguard=True``, default). In the paper's order the step
  uses :math:`\eta_k`, a rate fitted to the *previous* line, which can
  overshoot where successive lines differ in curvature. The probes of the
  current line are known before the step is returned, so the safeguard steps
  with :math:`\min(\eta_k, \hat\eta_k)`, :math:`\hat\eta_k` this line's own
  Newton estimate. ``state.loss_after`` stays :math:`f(\eta_k)`.
  ``safeguard=False`` is the paper's order.

  **Momentum on η** (§5.2): :math:`\eta_{k+1} = \eta_k + \delta_{k+1}`,
  :math:`\delta_{k+1} = \beta\,\delta_k - f'/f''`; the stored
  :math:`\delta_{k+1}` is the change actually made (after the clamps).

  **Validation probes** (§5.3): ``value_fn`` may evaluate a held-out batch
  while the gradient comes from the training batch (see the example).

  **Granularity.** ``"global"`` (the paper: one line, one rate). ``"leaf"``
  and labels: one line per group, group j's rate moves alone along
  :math:`u_j` (a diagonal Newton step per group, cross-group curvature
  ignored), at G nested jvps or :math:`4G + 1` probes for G groups, batched.
  ``"element"`` is not supported: use :func:`adaptlr.vsgd`.

  **On networks** the default stays and does not remove the sweep: it fits each
  batch's line minimum (MNIST MLP: insensitive, 4.1× the best-tuned loss), and on
  the CNN concave lines at initialization double η to ~10 and the network stops
  learning (``benchmarks/results/networks/``). There use
  :func:`adaptlr.probabilistic_lr` with ``decay_steps``.

  **Non-finite losses.** A step whose own loss :math:`f(\eta_k)` is not finite
  is not taken (zero update, counted in ``skipped``); when any probe is not
  finite η is divided by :math:`1+c` (2 for the paper's rule), below δ if
  need be.

  Args:
    learning_rate: initial rate :math:`\eta_0` (> 0).
    derivatives: ``"autodiff"`` (exact f′, f″ by nested jvp) or
      ``"finite_difference"`` (Eq. 6–10, five probes).
    eps: absolute finite-difference step ε (the paper: 1e-5); ``None`` uses
      ``relative_eps``·η. Ignored for ``"autodiff"``.
    relative_eps: ρ in ε = ρη when ``eps`` is None (0 < ρ < 1/2 keeps every
      probe at a positive rate).
    max_change: c > 0: η moves by at most a factor 1 + c per update, with the
      concave-line rule above; ``None``: the paper's unbounded rule (Eq. 10–13).
    safeguard: step with min(η_k, this line's Newton rate); ``False``: the
      paper's order (the step uses η_k).
    momentum: β ∈ [0, 1) on the η updates (§5.2; the paper tries 0.9). This
      is the paper's momentum of the *rate*; momentum of the weights, as in
      ``optax.sgd(lr, momentum=0.9)``, is ``direction=optax.trace(0.9)``.
    delta: δ of Eq. 11–13 (the paper: 1e-6): added to a denominator that is
      exactly zero (paper's rule only) and the floor of η.
    granularity: ``"global"``, ``"leaf"`` or labels (see above).
    direction: optional optax transformation for the search direction u
      (``optax.trace(0.9)``, ``optax.scale_by_adam()``); ``None``: the
      gradient (the paper's SGD).
    probe_mode: how probes are batched: ``"vmap"`` (one batched call, the
      default), ``"map"`` (``jax.lax.map``: one parameter copy at a time, for
      large models) or ``"unroll"`` (separate calls in one graph). With
      ``"autodiff"`` it batches the per-group jvps.
    min_learning_rate: lower clamp of the rates (default 0; Eq. 13's δ
      applies as well).
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
    :math:`-\eta u_k`, ready for ``optax.apply_updates``
    (:func:`scale_by_newton_lr` followed by ``optax.scale(-1)``); its state
    holds a :class:`NewtonLRState`. Each update needs ``params`` and
    ``value_fn``; extra keyword args that ``value_fn`` accepts (the batch) are
    forwarded to it.

  Raises:
    ValueError: for bad hyperparameters at construction, or at update time
      when ``params`` or ``value_fn`` is missing.

  Example:
    Probes on a held-out batch (§5.3): the gradient comes from the training
    batch, the line f(η) from the validation batch.

    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
    >>> kx, kv = jax.random.split(jax.random.key(0))
    >>> x, x_val = jax.random.normal(kx, (64, 3)), jax.random.normal(kv, (32, 3))
    >>> y, y_val = x @ jnp.ones(3), x_val @ jnp.ones(3)
    >>> opt = adaptlr.newton_lr(1e-4)
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> for _ in range(30):
    ...   g = jax.grad(loss)(w, x, y)
    ...   updates, state = opt.update(g, state, w, value_fn=loss, x=x_val, y=y_val)
    ...   w = optax.apply_updates(w, updates)
    >>> bool(loss(w, x, y) < 1e-3)
    True

    On a quadratic line one Newton step on η is exact:

    >>> loss = lambda w: jnp.sum(2.0 * (w - 1.5) ** 2)
    >>> opt = adaptlr.newton_lr(1e-3, max_change=None)
    >>> w = jnp.zeros(3); state = opt.init(w)
    >>> updates, state = opt.update(jax.grad(loss)(w), state, w, value_fn=loss)
    >>> round(float(optax.tree.get(state, "learning_rate")), 4)  # exact: 1/4
    0.25

  References:
    Ravaut & Gorti, Gradient descent revisited via an adaptive online learning
    rate, arXiv:1801.09136: §3.2 (Eq. 5–10), §4.1 (Eq. 11–13), §5.2, §5.3, §6.1.
  """
