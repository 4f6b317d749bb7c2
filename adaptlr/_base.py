"""Shared plumbing every method uses: validation, extra args, the method skeleton.

* Validation: concrete bad hyperparameters raise ``ValueError`` when the
  optimizer is built; traced ones (under ``jax.vmap``, ``jax.jit`` or
  ``optax.inject_hyperparams``) pass through unchecked.
* Extra args follow optax's line searches: ``value`` (loss at ``params``),
  ``grad``, ``value_fn`` (params -> scalar loss; with ``value_fn_has_aux=True``
  it returns ``(loss, aux)``, as for ``jax.value_and_grad(..., has_aux=True)``,
  and the aux is dropped). Keyword args that ``value_fn``
  accepts (``x=..., y=...``) are forwarded to it; any other keyword is ignored,
  never an error, so an adaptlr method sits in any ``optax.chain``.
* Non-finite guard: a step whose loss or gradient is not finite is skipped; the
  state is kept as it was (the rates stay finite) and a counter records it.
* Method skeleton: what every method's ``init_fn``/``update_fn`` shares (the
  ``count``/``skipped`` counters, the optional search direction, zeros in the
  rate dtype, a guarded division, the per-group rule applied over a pytree, the
  finite-check tail and the ``scale_by_* -> *`` alias), so that each method
  module holds only its paper's rule. See ``CONTRIBUTING.md``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional, cast

import jax
import jax.core
import jax.numpy as jnp
import optax

# Optax's line-search extra args (and ``value_fn_has_aux``, the flag for a
# ``value_fn`` that returns ``(loss, aux)``); every method may read them, none is forwarded
# to ``value_fn``. A method's own extra args are declared in its module
# (``CONSUMES``) and its registry entry (``MethodSpec.consumes``).
LINE_SEARCH_EXTRA_ARGS = frozenset({"value", "grad", "value_fn", "value_fn_has_aux"})
# adaptlr's own extra args for every method: the whole params, for a method
# inside ``optax.masked`` / ``optax.multi_transform`` that evaluates the loss.
SHARED_EXTRA_ARGS = frozenset({"full_params"})


@functools.cache
def reserved_extra_args() -> frozenset[str]:
  """Extra-arg names adaptlr consumes itself; never forwarded to ``value_fn``.

  Optax's ``value``, ``grad``, ``value_fn`` and every registered method's
  ``consumes`` (the union: a method in a chain must not pass another method's
  extra arg on to the loss).
  """
  from adaptlr import registry  # here, not at import: registry imports the methods

  consumed = (spec.consumes for spec in registry.METHODS.values())
  return LINE_SEARCH_EXTRA_ARGS.union(SHARED_EXTRA_ARGS, *consumed)


# ---------------------------------------------------------------- validation --
def _concrete(value: Any) -> Optional[Any]:
  """``value`` as a NumPy value if it is concrete, else ``None`` (traced)."""
  if value is None or isinstance(value, jax.core.Tracer):
    return None
  try:
    return jax.device_get(value)
  except (jax.errors.ConcretizationTypeError, TypeError):
    return None


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
  """Raises ``ValueError`` if a concrete ``value`` is not > 0 (or >= 0)."""
  v = _concrete(value)
  if v is None:
    return
  import numpy as np

  v = np.asarray(v)
  bad = (v < 0) if allow_zero else (v <= 0)
  if np.any(bad) or np.any(np.isnan(v)):
    need = "non-negative" if allow_zero else "positive"
    raise ValueError(f"{name} must be {need}, got {value!r}.")


def check_range(
  name: str,
  value: Any,
  low: float,
  high: float,
  *,
  low_open: bool = False,
  high_open: bool = False,
) -> None:
  """Raises ``ValueError`` if a concrete ``value`` lies outside [low, high]."""
  v = _concrete(value)
  if v is None:
    return
  import numpy as np

  v = np.asarray(v)
  below = (v <= low) if low_open else (v < low)
  above = (v >= high) if high_open else (v > high)
  if np.any(below) or np.any(above) or np.any(np.isnan(v)):
    lb, hb = ("(" if low_open else "["), (")" if high_open else "]")
    raise ValueError(f"{name} must lie in {lb}{low}, {high}{hb}, got {value!r}.")


def check_int(name: str, value: Any, minimum: int = 1) -> int:
  """``value`` as a Python int; raises ``ValueError`` unless it is one >= ``minimum``.

  Integer options shape the computation, so they must be static: a traced
  value (e.g. from ``optax.inject_hyperparams`` without ``static_args``) is an
  error that says how to pass it.
  """
  if isinstance(value, jax.core.Tracer):
    raise ValueError(
      f"{name} must be a static Python int, got a traced value: with "
      f"optax.inject_hyperparams pass static_args=({name!r},)."
    )
  import numpy as np

  if isinstance(value, (bool, np.bool_)) or not (
    isinstance(value, (int, np.integer))
    or (
      hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.integer) and jnp.ndim(value) == 0
    )
  ):
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  value = int(value)
  if value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  return value


def check_one_of(name: str, value: Any, options: tuple[Any, ...]) -> None:
  """Raises ``ValueError`` unless ``value`` is one of ``options``."""
  if value not in options:
    raise ValueError(f"{name} must be one of {options}, got {value!r}.")


def check_bounds(
  min_value: Any, max_value: Any, name: str = "learning_rate", *, signed_min: bool = False
) -> None:
  """Raises ``ValueError`` for a bad ``[min_<name>, max_<name>]`` clamp.

  ``signed_min``: the minimum may be any number, −inf included (not NaN);
  otherwise it must be >= 0. A bound may be a schedule (a callable of the step
  count): it is checked at step 0.
  """
  min_value = min_value(0) if callable(min_value) else min_value
  max_value = max_value(0) if callable(max_value) else max_value
  if signed_min:
    lo = _concrete(min_value)
    if lo is not None:
      import numpy as np

      if np.any(np.isnan(np.asarray(lo))):
        raise ValueError(f"min_{name} must be a number (or None), got {min_value!r}.")
  else:
    check_positive(f"min_{name}", min_value, allow_zero=True)
  check_positive(f"max_{name}", max_value)
  lo, hi = _concrete(min_value), _concrete(max_value)
  if lo is not None and hi is not None:
    import numpy as np

    if np.any(np.asarray(lo) > np.asarray(hi)):
      raise ValueError(f"min_{name} ({min_value}) must not exceed max_{name} ({max_value}).")


# ---------------------------------------------------------------- extra args --
def _accepted_kwargs(fn: Callable[..., Any]) -> tuple[frozenset[str], bool]:
  try:
    sig = inspect.signature(fn)
  except (TypeError, ValueError):
    return frozenset(), True
  names = frozenset(
    p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
  )
  var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
  return names, var_kw


def value_fn_kwargs(value_fn: Callable[..., Any], extra_args: dict[str, Any]) -> dict[str, Any]:
  """The keyword args among ``extra_args`` that ``value_fn`` accepts.

  Named parameters of ``value_fn`` are forwarded; if it takes ``**kwargs`` every
  extra arg adaptlr does not consume itself is forwarded.
  """
  names, var_kw = _accepted_kwargs(value_fn)
  return {
    k: v for k, v in extra_args.items() if k not in reserved_extra_args() and (k in names or var_kw)
  }


def get_value_fn(
  extra_args: dict[str, Any],
  method: str,
  why: str = "",
  params: Any = None,
) -> Callable[[Any], jax.Array]:
  """``params -> loss`` from the ``value_fn`` extra arg, with its kwargs bound.

  With the extra arg ``value_fn_has_aux=True``, ``value_fn`` returns ``(loss,
  aux)`` and the returned function keeps the loss. The loss is checked to be a
  scalar when it is traced. Inside ``optax.masked`` (``params`` has
  ``MaskedNode`` leaves) it is the loss of the part the method sees, the frozen
  leaves taken from the ``full_params`` extra arg.

  Raises:
    ValueError: if no ``value_fn`` was passed, or ``params`` is masked and no
      ``full_params`` was passed; the message says what to pass.
  """
  from adaptlr import _conventions  # here: _conventions imports this module

  value_fn = extra_args.get("value_fn")
  if value_fn is None:
    raise ValueError(
      f"{method} needs the loss as a function of the params{why}: call "
      "`opt.update(grads, state, params, value_fn=loss_fn, **batch)` where "
      "`loss_fn(params, **batch)` returns a scalar (or `(loss, aux)` with "
      "`value_fn_has_aux=True`); keyword args that loss_fn accepts (e.g. "
      "x=..., y=...) are forwarded to it. In Flax the helpers pass it: NNX "
      "`adaptlr.flax.nnx_train_step(optimizer, model, loss_fn, **batch)` or "
      "`optimizer.update(model, grads, value=loss, value_fn="
      "adaptlr.flax.nnx_value_fn(model, loss_fn), **batch)`; Linen "
      "`adaptlr.flax.linen_train_step(state, loss_fn, **batch)` or "
      "`adaptlr.flax.apply_gradients(state, grads, value=loss, value_fn=loss_fn, "
      "**batch)` (`TrainState.apply_gradients` passes no extra args)."
    )
  kwargs = value_fn_kwargs(value_fn, extra_args)
  fn = functools.partial(value_fn, **kwargs) if kwargs else value_fn
  fn = _loss_only(fn, bool(extra_args.get("value_fn_has_aux", False)), method)
  fn = _conventions.unmask_value_fn(fn, params, extra_args, method)
  return _conventions.scalar_loss(fn, method)


def loss_from(out: Any, has_aux: bool, who: str, flag: str = "value_fn_has_aux") -> Any:
  """The loss in a loss function's output: ``out[0]`` with ``has_aux``, else ``out``.

  A ``(loss, aux)`` pair without ``has_aux``, or anything but a pair with it, is a
  ``TypeError`` that names ``flag`` (the option the caller spells ``has_aux``).
  """
  if has_aux:
    if not (isinstance(out, (tuple, list)) and len(out) == 2):
      raise TypeError(
        f"{who}: {flag}=True but the loss function returned "
        f"{type(out).__name__}, not a (loss, aux) pair."
      )
    return out[0]
  if isinstance(out, (tuple, list)):
    raise TypeError(
      f"{who}: the loss function returned a {type(out).__name__} of length {len(out)}, "
      f"not a scalar loss. If it returns (loss, aux), pass {flag}=True "
      "(value_fn_has_aux=True to an optimizer's update; has_aux=True to the "
      "adaptlr.flax helpers)."
    )
  return out


def _loss_only(fn: Callable[..., Any], has_aux: bool, method: str) -> Callable[..., Any]:
  """``fn`` returning only its loss (see :func:`loss_from`)."""
  return lambda params: loss_from(fn(params), has_aux, method)


def get_value(extra_args: dict[str, Any], method: str) -> jax.Array:
  """The ``value`` extra arg (the loss at ``params``).

  Raises:
    ValueError: if it is missing; the message says how to get it.
  """
  value = extra_args.get("value")
  if value is None:
    raise ValueError(
      f"{method} needs the loss at the current params: compute "
      "`value, grads = jax.value_and_grad(loss_fn)(params, **batch)` and call "
      "`opt.update(grads, state, params, value=value, value_fn=loss_fn, **batch)`."
    )
  value = jnp.asarray(value)
  if value.ndim != 0:
    raise ValueError(
      f"{method}: value must be the scalar loss, got shape {value.shape} (a "
      "per-example loss? reduce it, e.g. with .mean())."
    )
  return value


def require_params(params: Any, method: str) -> None:
  """Raises ``ValueError`` if ``params`` was not passed to ``update``."""
  if params is None:
    raise ValueError(
      f"{method} needs the current params: call `opt.update(grads, state, params, ...)`."
    )


# ------------------------------------------------------------ non-finite guard --
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

  A non-finite entry of g makes every sum of products with it non-finite (NaN
  or ±inf, also against zeros: inf·0 = NaN), so the grouped ⟨g, ·⟩ a rule needs
  anyway tells, without another pass over the gradients. (A finite gradient
  whose square overflows also counts as non-finite: that step is skipped too.)
  ``scalars``: e.g. the loss ``value`` (``None`` is ignored).
  """
  return tree_all_finite(reductions, *scalars)


def skip_if_not_finite(
  finite: jax.Array, updates: Any, new_state: Any, old_state: Any
) -> tuple[Any, Any]:
  """Zero updates and the old state (with ``skipped + 1``) unless ``finite``.

  ``new_state`` and ``old_state`` are NamedTuples with a ``skipped`` counter.
  """
  updates = jax.tree.map(lambda u: jnp.where(finite, u, jnp.zeros_like(u)), updates)
  kept = old_state._replace(skipped=old_state.skipped + 1)
  state = optax.tree.where(finite, new_state, kept)
  return updates, state


# ------------------------------------------------------------ method skeleton --
def counters() -> dict[str, jax.Array]:
  """The ``count`` and ``skipped`` fields every state starts with (int32 zeros).

  ``count`` counts the steps taken (:func:`optax.safe_increment`), ``skipped``
  the non-finite steps :func:`skip_if_not_finite` did not take.
  """
  return {"count": jnp.zeros([], jnp.int32), "skipped": jnp.zeros([], jnp.int32)}


def next_count(count: jax.Array) -> jax.Array:
  """``count + 1``, saturating at the int32 maximum (:func:`optax.safe_increment`)."""
  return cast(jax.Array, optax.safe_increment(count))


def zeros(params: Any, dtype: Any) -> Any:
  """Zeros shaped like each leaf of ``params``, in ``dtype`` (the rate dtype).

  Built with ``jnp.zeros_like``, so each leaf keeps the sharding of its
  parameter: on sharded params the state is born sharded, not whole on one
  device.
  """
  return optax.tree.zeros_like(params, dtype=dtype)


def safe_div(num: Any, den: Any, ok: Any = None) -> jax.Array:
  """``num / den`` where ``ok`` (default ``den > 0``), else 0; no 0/0 and no NaN gradient."""
  ok = den > 0 if ok is None else ok
  return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def map_rule(rule: Callable[..., tuple[Any, ...]], *trees: Any) -> tuple[Any, ...]:
  """A method's per-group rule over pytrees of groups, its outputs unzipped.

  ``rule(*leaves)`` returns a tuple of n arrays for one group; the result is n
  pytrees shaped like ``trees[0]``. Only plain tuples are unzipped: optax's
  ``MaskedNode`` (a NamedTuple, what ``optax.masked`` leaves for masked-out
  groups) is a node with no leaves and stays as it is.
  """
  out = jax.tree.map(rule, *trees)
  # Unzip along the structure of the groups, not by "is a tuple": params that
  # are themselves a tuple (optax's mixed tensor target) must not be unzipped.
  treedef = jax.tree.structure(trees[0])
  per_group = treedef.flatten_up_to(out)
  if per_group:
    n = len(per_group[0])
  else:  # every group masked out: n from the rule's signature of outputs, no computation
    n = len(jax.eval_shape(rule, *(jax.ShapeDtypeStruct((), jnp.float32) for _ in trees)))
  return tuple(treedef.unflatten([o[i] for o in per_group]) for i in range(n))


def bound_at(bound: Any, count: Any) -> Any:
  """A bound (``min_learning_rate``/``max_learning_rate``) at step ``count``.

  A bound may be a schedule, a callable of the step count (warmup or decay of
  the ceiling on a learned rate); a number is returned as it is.
  """
  return bound(count) if callable(bound) else bound


def clip_rates(rates: Any, low: Any, high: Any, count: Any = 0) -> Any:
  """Rates clamped to [low, high] at step ``count`` (bounds may be schedules)."""
  low, high = bound_at(low, count), bound_at(high, count)
  return jax.tree.map(lambda r: jnp.clip(r, low, high).astype(r.dtype), rates)


def cast_like(tree: Any, like: Any) -> Any:
  """``tree`` with each leaf cast to the dtype of the matching ``like`` leaf."""
  return jax.tree.map(lambda x, y: jnp.asarray(x).astype(jnp.asarray(y).dtype), tree, like)


def init_direction(
  direction: Optional[optax.GradientTransformation],
  method: str = "direction",
) -> Optional[optax.GradientTransformationExtraArgs]:
  """The search-direction transformation, with extra-args support.

  Raises:
    ValueError: unless ``direction`` is a transformation that points downhill
      (see :func:`adaptlr._conventions.check_direction`).
  """
  from adaptlr import _conventions  # here: _conventions imports this module

  if direction is None:
    return None
  _conventions.check_direction(direction, method)
  return optax.with_extra_args_support(direction)


def direction_init(
  direction: Optional[optax.GradientTransformationExtraArgs],
  params: optax.Params,
) -> optax.OptState:
  """The initial state of ``direction`` (``()`` for SGD)."""
  return direction.init(params) if direction is not None else ()


def apply_direction(
  direction: Optional[optax.GradientTransformationExtraArgs],
  grads: optax.Updates,
  state: optax.OptState,
  params: Optional[optax.Params],
  extra_args: dict[str, Any],
) -> tuple[optax.Updates, optax.OptState]:
  """The search direction u for ``grads``: the gradient itself when ``direction`` is None."""
  if direction is None:
    return grads, state
  return direction.update(grads, state, params, **extra_args)


def transformation(
  init_fn: Callable[[optax.Params], Any],
  update_fn: Callable[..., tuple[optax.Updates, Any]],
) -> optax.GradientTransformationExtraArgs:
  """The method's ``init_fn``/``update_fn`` as an optax transformation.

  Both are typed as Optax types them (``optax.Params``, ``optax.Updates`` and
  the method's own state class); the state class narrows ``optax.OptState``,
  which a type checker reads as an incompatible callback, so the narrowing is
  accepted here, once.
  """
  return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


def descent(
  transform: optax.GradientTransformationExtraArgs,
) -> optax.GradientTransformationExtraArgs:
  """``transform`` followed by ``optax.scale(-1)``: a ``scale_by_*`` made an optimizer."""
  return optax.chain(transform, optax.scale(-1.0))
