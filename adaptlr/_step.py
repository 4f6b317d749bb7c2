"""The step machinery every method shares, below the methods and above validation and loss.

* counters and the non-finite guard: a step whose loss or gradient is not
  finite is skipped, the state kept as it was and ``skipped`` counted;
* the per-group rule over pytrees (:func:`map_rule`), a guarded division;
* the initial rates and their clamps (bounds may be schedules of the step);
* the search direction (``direction`` or ``momentum``), decoupled weight decay
  with the loss the rules see made consistent, and the horizon's anneal;
* :func:`descent`: the optimizer alias of a ``scale_by_*``, one signature.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Optional, ParamSpec

import jax
import jax.numpy as jnp
import optax

from adaptlr import _loss, _validate

P = ParamSpec("P")


# ------------------------------------------------------------ counters, guard --
def counters() -> dict[str, jax.Array]:
  """The ``count`` and ``skipped`` fields every state starts with (int32 zeros)."""
  return {"count": jnp.zeros([], jnp.int32), "skipped": jnp.zeros([], jnp.int32)}


def next_counters(state: Any) -> dict[str, jax.Array]:
  """``count + 1`` (``optax.safe_increment``) and ``skipped`` as it was: a step taken."""
  return {"count": jnp.asarray(optax.safe_increment(state.count)), "skipped": state.skipped}


def tree_all_finite(*trees: Any) -> jax.Array:
  """True iff every floating leaf of every tree is finite (a scalar bool)."""
  ok = jnp.asarray(True)
  for tree in trees:
    for leaf in jax.tree.leaves(tree):
      leaf = jnp.asarray(leaf)
      if jnp.issubdtype(leaf.dtype, jnp.inexact):
        ok = ok & jnp.all(jnp.isfinite(leaf))
  return ok


def finite_from(reductions: Any, *scalars: Any) -> jax.Array:
  """Finiteness of the gradients read off inner products already computed.

  A non-finite entry of g makes every sum of products with it non-finite (also
  against zeros: inf·0 = NaN), so the grouped ⟨g, ·⟩ a rule needs anyway tells
  without another pass over the gradients. ``scalars``: e.g. the loss ``value``.
  """
  return tree_all_finite(reductions, *scalars)


def skip_if_not_finite(
  finite: jax.Array, updates: Any, new_state: Any, old_state: Any
) -> tuple[Any, Any]:
  """Zero updates and the old state (with ``skipped + 1``) unless ``finite``.

  A step whose updates overflow (a finite gradient times a huge rate) is not taken either.
  """
  finite = finite & tree_all_finite(updates)
  updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
  kept = old_state._replace(skipped=old_state.skipped + 1)
  return updates, optax.tree.where(finite, new_state, kept)


# ------------------------------------------------------------------ the rule --
def safe_div(num: Any, den: Any, ok: Any = None) -> jax.Array:
  """``num / den`` where ``ok`` (default ``den > 0``), else 0; no 0/0 and no NaN gradient."""
  ok = den > 0 if ok is None else ok
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def rounding_level(loss_magnitude: jax.Array) -> jax.Array:
  """16 ulps of a loss of this magnitude: a change of the loss below it is rounding noise."""
  return 16 * jnp.finfo(loss_magnitude.dtype).eps * loss_magnitude


def map_rule(rule: Callable[..., tuple[Any, ...]], *trees: Any) -> tuple[Any, ...]:
  """A per-group rule over pytrees of groups, its tuple of outputs unzipped.

  Only the groups' structure is unzipped: params that are themselves tuples
  stay whole, and optax's ``MaskedNode`` (a group masked out) passes through.
  """
  out = jax.tree.map(rule, *trees)
  treedef = jax.tree.structure(trees[0])
  per_group = treedef.flatten_up_to(out)
  if per_group:
    n = len(per_group[0])
  else:  # every group masked out: n from the rule's outputs, no computation
    n = len(jax.eval_shape(rule, *(jax.ShapeDtypeStruct((), jnp.float32) for _ in trees)))
  return tuple(treedef.unflatten([o[i] for o in per_group]) for i in range(n))


# ------------------------------------------------------------- rates, clamps --
def bound_at(bound: Any, count: Any) -> Any:
  """A bound (``min_learning_rate``/``max_learning_rate``, a number or schedule) at ``count``."""
  return bound(count) if callable(bound) else bound


def clip_rates(rates: Any, low: Any, high: Any, count: Any = 0) -> Any:
  """Rates clamped to [low, high] at step ``count``."""
  low, high = bound_at(low, count), bound_at(high, count)
  return jax.tree.map(lambda r: jnp.clip(r, low, high).astype(r.dtype), rates)


def initial_rates(groups, params, learning_rate, dtype, low, high) -> Any:
  """``groups.init_rates`` clamped to the bounds at step 0 (no unclamped first step)."""
  rates = groups.init_rates(params, learning_rate, dtype)
  return clip_rates(rates, low, high, jnp.zeros([], jnp.int32))


# ---------------------------------------------------- direction, weight decay --
def search_direction(
  direction: Optional[optax.GradientTransformation],
  method: str,
  momentum: Any = None,
  nesterov: bool = False,
) -> Optional[optax.GradientTransformationExtraArgs]:
  """The transformation ``g -> u`` a method scales: ``direction``, momentum, or None (SGD).

  ``momentum=m, nesterov=...`` is ``optax.trace(m, nesterov)``, as in ``optax.sgd``.
  """
  _validate.flag("nesterov", nesterov)
  if momentum is not None:
    if direction is not None:
      raise ValueError(
        f"{method}: pass either direction or momentum, not both (momentum=m is "
        "direction=optax.trace(m, nesterov=nesterov))."
      )
    _validate.in_range("momentum", momentum, 0.0, 1.0, high_open=True)
    direction = optax.trace(decay=momentum, nesterov=nesterov)
  elif nesterov:
    raise ValueError(f"{method}: nesterov=True needs a momentum (e.g. momentum=0.9).")
  return _validate.direction(direction, method)


def direction_init(
  direction: Optional[optax.GradientTransformationExtraArgs], params: optax.Params
) -> optax.OptState:
  """The initial state of ``direction`` (``()`` for SGD)."""
  return direction.init(params) if direction is not None else ()


def _decays(weight_decay: Any) -> bool:
  """False only for a Python 0 (no decay: nothing added, nothing traced)."""
  return not (isinstance(weight_decay, (int, float)) and weight_decay == 0)


def _decayed_loss(extra_args: dict[str, Any], decay_tx: Any, params: Any) -> dict[str, Any]:
  """``value`` and ``value_fn`` of the decayed loss L + λ/2 ‖m⊙w‖²."""

  def penalty(p):
    d, _ = decay_tx.update(optax.tree.zeros_like(p), decay_tx.init(p), p)
    return jnp.asarray(0.5 * optax.tree.vdot(d, p))  # λ/2 ‖m⊙w‖² (= ½⟨λ m⊙w, w⟩)

  extra_args = dict(extra_args)
  if extra_args.get("value") is not None:
    v = jnp.asarray(extra_args["value"])
    extra_args["value"] = v + penalty(params).astype(v.dtype)
  value_fn = extra_args.get("value_fn")
  if value_fn is not None:
    has_aux = bool(extra_args.get("value_fn_has_aux", False))

    @functools.wraps(value_fn)  # keeps its signature: kwargs are forwarded as before
    def decayed_fn(p, *args, **kwargs):
      out = value_fn(p, *args, **kwargs)
      v = jnp.asarray(out[0] if has_aux else out)
      v = v + penalty(p).astype(v.dtype)
      return (v, out[1]) if has_aux else v

    extra_args["value_fn"] = decayed_fn
  return extra_args


def direction_and_decay(
  direction: Optional[optax.GradientTransformationExtraArgs],
  updates: optax.Updates,
  direction_state: optax.OptState,
  params: Optional[optax.Params],
  extra_args: dict[str, Any],
  weight_decay: Any,
  mask: Any,
  method: str,
) -> tuple[optax.Updates, optax.Updates, optax.OptState, dict[str, Any]]:
  """``(g, u, direction_state, extra_args)`` for a method's rule, decay included.

  Decoupled weight decay as in ``optax.adamw``: the step is ``−α (u + λ m⊙w)``,
  ``u`` the direction of the raw gradient. So that every rule and probe sees the
  loss that step descends, L + λ/2 ‖m⊙w‖², the gradient the rule reads is
  ``g + λ m⊙w`` and ``value`` / ``value_fn`` get ``+ λ/2 ‖m⊙w‖²``.
  """
  grads, loss_args, decay = updates, extra_args, None
  if _decays(weight_decay):
    params = _loss.require_params(params, f"{method}(weight_decay=...)")
    decay_tx = optax.add_decayed_weights(weight_decay, mask)
    decay, _ = decay_tx.update(optax.tree.zeros_like(updates), decay_tx.init(params), params)
    decay = jax.tree.map(lambda d, g: d.astype(g.dtype), decay, updates)
    grads = optax.tree.add(updates, decay)
    loss_args = _decayed_loss(extra_args, decay_tx, params)
  if direction is None:
    return grads, grads, direction_state, loss_args
  u, direction_state = direction.update(updates, direction_state, params, **extra_args)
  if decay is not None:
    u = jax.tree.map(lambda a, d: (a + d).astype(a.dtype), u, decay)
  return grads, u, direction_state, loss_args


# ------------------------------------------------------------------ horizon --
def anneal(tx: optax.GradientTransformation, decay_steps: Optional[int]) -> Any:
  """``tx`` with its steps multiplied by a cosine decay from 1 to 0 over ``decay_steps``.

  For a method that fits its rate from probes of its own step, the decay comes
  after the rule: the probes see the undecayed step, so the learned rate keeps
  tracking the line while the steps anneal. ``None``: ``tx`` itself.
  """
  if decay_steps is None:
    return tx
  decay_steps = _validate.integer("decay_steps", decay_steps, 1)
  return optax.chain(tx, optax.scale_by_schedule(optax.cosine_decay_schedule(1.0, decay_steps)))


# ------------------------------------------------------------------- aliases --
def descent(
  scale_by: Callable[P, optax.GradientTransformationExtraArgs],
) -> Callable[[Callable[..., Any]], Callable[P, optax.GradientTransformationExtraArgs]]:
  """Decorator: the optimizer ``chain(scale_by(...), optax.scale(-1))``.

  The result has ``scale_by``'s signature (each option is declared once) and
  the decorated function's name and docstring (the user-facing documentation).
  """

  def make(documented: Callable[..., Any]) -> Callable[P, optax.GradientTransformationExtraArgs]:
    @functools.wraps(scale_by)
    def optimizer(*args: P.args, **kwargs: P.kwargs) -> optax.GradientTransformationExtraArgs:
      return optax.chain(scale_by(*args, **kwargs), optax.scale(-1.0))

    for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
      setattr(optimizer, attr, getattr(documented, attr))
    return optimizer

  return make
