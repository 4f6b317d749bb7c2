"""Optax conventions every method shares: rates, bounds, directions, masks.

* :func:`learning_rate`: the learned rate(s) in any optimizer state, also under
  ``optax.inject_hyperparams``, ``optax.chain``, ``optax.masked``.
* :func:`check_learning_rate`: ``learning_rate`` is the initial rate the method
  adapts: a schedule or a vector is an error that says what to pass.
* :func:`initial_rates`: the initial rates, clamped to the bounds (which may
  be schedules of the step count, see ``_base.clip_rates``).
* :func:`search_direction`: the user's ``direction`` (validated: it must point
  downhill) or ``momentum``/``nesterov`` sugar; :func:`direction_and_decay`
  adds decoupled ``weight_decay`` with the loss the rules see made consistent.
* :func:`unmask_value_fn`: the loss of the whole model for a method that sees
  only part of the params (``optax.masked``, ``optax.multi_transform``).
* :func:`scalar_loss`: a ``value_fn`` that returns a non-scalar is an error.
* :func:`anneal`: a cosine decay of the steps to 0 over a known horizon, after
  the rule (``decay_steps``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from adaptlr import _base

# ------------------------------------------------------------ learning rate --


def _state_names() -> frozenset[str]:
  from adaptlr import registry  # here: registry imports the methods

  return frozenset(spec.state.__name__ for spec in registry.METHODS.values())


def _is_learned_rate(path, value) -> bool:
  del value
  last = path[-1] if path else None
  return isinstance(last, optax.tree_utils.NamedTupleKey) and last.tuple_name in _state_names()


def learning_rate(state: optax.OptState) -> Any:
  """The learned rate(s) of the adaptlr method in ``state``.

  Finds the ``learning_rate`` field of the method's own state (one of the
  registry's state classes) wherever it sits: directly, in an
  ``optax.chain``/``named_chain``, under ``optax.inject_hyperparams`` (whose
  ``hyperparams["learning_rate"]`` is only the *initial* rate the method
  started from), ``optax.masked`` or ``optax.MultiSteps``. It is
  ``optax.tree.get(state, "learning_rate", filtering=...)`` with a filter that
  keeps adaptlr's states only.

  Args:
    state: an optimizer state holding exactly one adaptlr method's state.

  Returns:
    The rate: a scalar, a pytree of scalars, or per-element rates, per the
    method's ``granularity``.

  Raises:
    ValueError: if ``state`` holds no adaptlr method's state or several (then
      use ``optax.tree.get_all_with_path`` with the same filter).

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> opt = optax.inject_hyperparams(adaptlr.tlr)(learning_rate=0.1)
    >>> state = jax.jit(opt.init)(jnp.ones(3))
    >>> round(float(adaptlr.learning_rate(state)), 6)
    0.1
  """
  found = optax.tree.get_all_with_path(state, "learning_rate", _is_learned_rate)
  if len(found) == 1:
    return found[0][1]
  if not found:
    raise ValueError(
      "No adaptlr method's state found: pass the state returned by the "
      "adaptlr optimizer's init/update (possibly inside chain, "
      "inject_hyperparams, masked or MultiSteps)."
    )
  paths = [jax.tree_util.keystr(p) for p, _ in found]
  raise ValueError(
    f"Several adaptlr methods' states found ({paths}): read each with "
    "optax.tree.get_all_with_path(state, 'learning_rate', filtering)."
  )


# ---------------------------------------------------- initial rate, bounds --


def check_learning_rate(learning_rate: Any, method: str) -> None:
  """Raises ``ValueError`` for a schedule or a non-scalar initial rate.

  ``learning_rate`` is the initial rate α₀ that the method adapts. A schedule
  (``optax.linear_schedule(...)``) is an error that points to the bounds
  (``max_learning_rate=schedule`` for warmup or decay on top of the learned
  rate); a concrete vector is an error that points to ``jax.vmap`` (a sweep).
  """
  if callable(learning_rate):
    raise ValueError(
      f"{method}: learning_rate is a number (the initial rate the method adapts; "
      "vsgd: the factor on its estimated rate), not a schedule. For warmup or "
      "decay on top of the learned rate pass the schedule as a ceiling, "
      "max_learning_rate=schedule (the learned rate never exceeds "
      "schedule(step)); min_learning_rate=schedule is a floor. A factor "
      "chained after the method (optax.scale, optax.scale_by_schedule) is undone "
      "by the learned rate."
    )
  if jnp.ndim(learning_rate) != 0:
    raise ValueError(
      f"{method}: learning_rate must be a scalar, got shape "
      f"{jnp.shape(learning_rate)}. To sweep several rates, jax.vmap the whole "
      "training over them (init and update inside the vmapped function); to "
      "learn one rate per parameter group, pass granularity='leaf' or labels."
    )


def initial_rates(groups, params, learning_rate, dtype, low, high) -> Any:
  """``groups.init_rates`` clamped to the bounds at step 0 (no unclamped first step)."""
  rates = groups.init_rates(params, learning_rate, dtype)
  return _base.clip_rates(rates, low, high, jnp.zeros([], jnp.int32))


# ----------------------------------------------------------- direction --


def _probe_direction(direction) -> Optional[float]:
  """⟨g, u⟩ for ``direction`` on a small probe, or None if it cannot be probed."""
  params = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
  grads = np.array([0.5, -1.0, 2.0, -0.25], np.float32)
  try:
    with jax.ensure_compile_time_eval():
      tx = optax.with_extra_args_support(direction)
      u, _ = tx.update(jnp.asarray(grads), tx.init(jnp.asarray(params)), jnp.asarray(params))
      return float(jnp.vdot(jnp.asarray(grads), jnp.asarray(u)))
  except Exception:  # pylint: disable=broad-except
    # A direction that needs a particular params structure (masks, labels,
    # matrices) or extra args cannot be probed on a vector: it is trusted.
    return None


def check_direction(direction: Any, method: str) -> None:
  """Raises ``ValueError`` unless ``direction`` is a transformation pointing downhill.

  The method takes the descent step itself (updates ``−α u``), so the
  direction ``u`` must be a ``scale_by_*`` transformation with ⟨g, u⟩ > 0. A
  full optimizer (``optax.adam(1e-3)``: updates ``−lr·u``) points uphill: the
  rate would be driven to zero. Checked when the method is built, by applying
  ``direction`` once to a small probe gradient (eagerly, also under ``jit``).
  """
  if not (hasattr(direction, "init") and hasattr(direction, "update")):
    raise ValueError(
      f"{method}: direction must be an optax GradientTransformation (e.g. "
      f"optax.scale_by_adam() or optax.trace(0.9)), got {direction!r}."
    )
  inner = _probe_direction(direction)
  if inner is not None and inner < 0:
    raise ValueError(
      f"{method}: direction points uphill (⟨g, u⟩ < 0 on a probe gradient): it "
      "looks like a full optimizer such as optax.adam(1e-3), whose updates are "
      f"already −lr·u. {method} learns the rate and takes the descent step "
      "itself: pass the direction alone, e.g. optax.scale_by_adam() instead of "
      "optax.adam(lr), optax.trace(0.9) instead of optax.sgd(lr, momentum=0.9)."
    )


def search_direction(
  direction: Optional[optax.GradientTransformation],
  method: str,
  momentum: Any = None,
  nesterov: bool = False,
) -> Optional[optax.GradientTransformationExtraArgs]:
  """The transformation ``g -> u`` whose step a method scales by its learned rate.

  ``direction`` (validated by :func:`check_direction`), or heavy-ball /
  Nesterov momentum ``optax.trace(momentum, nesterov)`` as in ``optax.sgd``,
  or ``None``: the gradient itself (SGD).

  Raises:
    ValueError: for a bad direction, both ``direction`` and ``momentum``,
      ``nesterov`` without ``momentum``, or a momentum outside [0, 1).
  """
  if momentum is not None:
    if direction is not None:
      raise ValueError(
        f"{method}: pass either direction or momentum, not both (momentum=m is "
        "direction=optax.trace(m, nesterov=nesterov))."
      )
    _base.check_range("momentum", momentum, 0.0, 1.0, high_open=True)
    direction = optax.trace(decay=momentum, nesterov=nesterov)
  elif nesterov:
    raise ValueError(f"{method}: nesterov=True needs a momentum (e.g. momentum=0.9).")
  return _base.init_direction(direction, method)


def check_weight_decay(weight_decay: Any) -> None:
  """Raises ``ValueError`` for a negative (concrete) ``weight_decay``."""
  _base.check_positive("weight_decay", weight_decay, allow_zero=True)


def _decays(weight_decay: Any) -> bool:
  """False only for a Python 0 (no decay: nothing added, nothing traced)."""
  return not (isinstance(weight_decay, (int, float)) and weight_decay == 0)


def decayed(
  grads: optax.Updates,
  params: Optional[optax.Params],
  extra_args: dict[str, Any],
  weight_decay: Any,
  mask: Any,
  method: str,
) -> tuple[optax.Updates, dict[str, Any], Any]:
  """The gradient, extra args and decay term of the decayed loss L + λ/2 ‖m⊙w‖².

  Decoupled weight decay as in ``optax.adamw``: the step is ``−α (u + λ m⊙w)``
  with ``u`` the direction of the raw gradient. So that every rule and probe
  sees the loss that step descends, the gradient the rule reads is
  ``g + λ m⊙w`` and ``value`` / ``value_fn`` get ``+ λ/2 ‖m⊙w‖²``; with
  ``direction=None`` the method is exactly the method on the decayed loss.

  Returns:
    ``(grads, extra_args, decay)``: ``decay`` = λ m⊙w, or ``None`` without
    weight decay (then the inputs are returned unchanged).
  """
  if not _decays(weight_decay):
    return grads, extra_args, None
  _base.require_params(params, f"{method}(weight_decay=...)")
  assert params is not None
  decay_tx = optax.add_decayed_weights(weight_decay, mask)
  decay, _ = decay_tx.update(optax.tree.zeros_like(grads), decay_tx.init(params), params)
  decay = jax.tree.map(lambda d, g: d.astype(g.dtype), decay, grads)

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
  return optax.tree.add(grads, decay), extra_args, decay


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

  ``u`` is the direction of the raw gradient plus the decay term λ m⊙w
  (decoupled, as ``optax.adamw``); ``g`` and the loss extra args are those of
  the decayed loss (:func:`decayed`). Without decay and direction: ``u = g``.
  """
  grads, loss_args, decay = decayed(updates, params, extra_args, weight_decay, mask, method)
  if direction is None:
    return grads, grads, direction_state, loss_args
  u, direction_state = direction.update(updates, direction_state, params, **extra_args)
  if decay is not None:
    u = jax.tree.map(lambda a, d: (a + d).astype(a.dtype), u, decay)
  return grads, u, direction_state, loss_args


# ------------------------------------------------------------------ masks --


def _is_masked(x) -> bool:
  return isinstance(x, optax.MaskedNode)


def has_masked_nodes(tree: Any) -> bool:
  """Whether ``tree`` came through ``optax.masked`` (has ``MaskedNode`` leaves)."""
  return any(_is_masked(x) for x in jax.tree.leaves(tree, is_leaf=_is_masked))


def unmask_value_fn(
  value_fn: Callable[[Any], jax.Array],
  params: Any,
  extra_args: dict[str, Any],
  method: str,
) -> Callable[[Any], jax.Array]:
  """``value_fn`` as a function of the part of the params a masked method sees.

  Inside ``optax.masked`` (and ``optax.multi_transform``, which uses it) a
  method gets params whose frozen leaves are ``optax.MaskedNode``; the loss
  usually needs all of them. The caller passes the whole params as the extra
  arg ``full_params``; the frozen leaves are taken from there. Without it, a
  loss that does not read the frozen leaves is used as it is (checked by
  tracing it once with ``jax.eval_shape``).

  Raises:
    ValueError: if ``params`` is masked and no ``full_params`` was passed.
  """
  if params is None or not has_masked_nodes(params):
    return value_fn
  full = extra_args.get("full_params")
  if full is None:
    try:  # a loss that never reads the frozen leaves needs nothing more
      jax.eval_shape(value_fn, params)
      return value_fn
    except Exception as e:  # pylint: disable=broad-except
      raise ValueError(
        f"{method} inside optax.masked / optax.multi_transform sees only part of "
        "the params, but its probes evaluate the loss of the whole model: pass "
        "the whole params as well, opt.update(grads, state, params, "
        "value_fn=loss_fn, full_params=params, ...)."
      ) from e

  def merge(part):
    return jax.tree.map(lambda p, f: f if _is_masked(p) else p, part, full, is_leaf=_is_masked)

  return lambda part: value_fn(merge(part))


def scalar_loss(value_fn: Callable[[Any], Any], method: str) -> Callable[[Any], jax.Array]:
  """``value_fn`` checked, at trace time, to return a scalar."""

  def checked(params):
    value = value_fn(params)
    if jnp.ndim(value) != 0:
      raise ValueError(
        f"{method}: value_fn must return a scalar loss, got shape "
        f"{jnp.shape(value)} (a per-example loss? reduce it, e.g. with .mean())."
      )
    return value

  return checked


# ----------------------------------------------------------------- horizon --


def anneal(tx: optax.GradientTransformation, decay_steps: Optional[int]) -> Any:
  """``tx`` with its steps multiplied by a cosine decay from 1 to 0 over
  ``decay_steps`` updates (``optax.cosine_decay_schedule``); ``tx`` if ``None``.

  For a method that fits its rate from probes of its own step (``f₊`` of
  ``probabilistic_lr``), the decay comes after the rule: the probes see the
  undecayed step, so the learned rate keeps tracking the line while the steps
  anneal — a cosine schedule whose peak is learned instead of swept.

  Raises:
    ValueError: ``decay_steps`` is not an int ≥ 1.
  """
  if decay_steps is None:
    return tx
  _base.check_int("decay_steps", decay_steps, 1)
  shape = optax.cosine_decay_schedule(1.0, int(decay_steps))
  return optax.chain(tx, optax.scale_by_schedule(shape))
