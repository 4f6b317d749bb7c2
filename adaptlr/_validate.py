"""Validation of hyperparameters: one check per kind of option.

The bottom layer: it imports nothing from adaptlr. Every method validates each
option by its kind (a rate, a non-negative number, a factor in a range, a
static integer, a flag, a choice, a clamp pair, a direction), so a new option
is validated by declaring its kind.

A concrete bad value raises when the optimizer is built: ``TypeError`` for a
value of the wrong type (``None``, a string, a list, a schedule where a number
is expected), ``ValueError`` for a number out of range; each message names the
option and says what to pass. A traced value (under ``jax.vmap``, ``jax.jit``
or ``optax.inject_hyperparams``) cannot be checked here: a bad traced rate
becomes 0 (:func:`learning_rate`), and a step whose update is not finite is not
taken (``_step.skip_if_not_finite``), so neither reaches the params.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import optax

_FLOAT32_MAX = float(np.finfo(np.float32).max)


class OptionTypeError(TypeError, ValueError):
  """An option of the wrong type: a ``TypeError``, and a ``ValueError`` as adaptlr 0.1 raised."""


def concrete(value: Any) -> Optional[np.ndarray]:
  """``value`` as a NumPy array if it is concrete, else ``None`` (traced or ``None``)."""
  if value is None or isinstance(value, jax.core.Tracer):
    return None
  try:
    return np.asarray(jax.device_get(value))
  except (jax.errors.ConcretizationTypeError, TypeError, ValueError):
    return None


def number(name: str, value: Any, what: str = "a number") -> Optional[float]:
  """A concrete scalar real ``value`` as a float; ``None`` if it is traced.

  Raises:
    TypeError: ``value`` is not a real number (``None``, a bool, a string, a
      schedule, an object array).
    ValueError: ``value`` is not a scalar.
  """
  if isinstance(value, jax.core.Tracer):
    return None
  bad = value is None or isinstance(value, (str, bytes, bool, np.bool_)) or callable(value)
  v = None if bad else concrete(value)
  if v is None or v.dtype.kind not in "iuf":
    raise OptionTypeError(f"{name} must be {what}, got {value!r}.")
  if v.ndim != 0:
    raise ValueError(
      f"{name} must be a scalar, got shape {v.shape}; to sweep values, jax.vmap the "
      "whole training over them."
    )
  if np.isfinite(v) and abs(float(v)) > _FLOAT32_MAX:  # would be ±inf in float32 rates
    raise ValueError(f"{name} must be within float32's range (±3.4e38), got {value!r}.")
  return float(v)


def positive(name: str, value: Any, *, allow_zero: bool = False, allow_inf: bool = False) -> None:
  """``value`` > 0 (``allow_zero``: >= 0), finite unless ``allow_inf``."""
  word = "non-negative" if allow_zero else "positive"
  need = f"{word} (a {'' if allow_inf else 'finite '}number {'>=' if allow_zero else '>'} 0)"
  v = number(name, value, need)
  if v is None:
    return
  if np.isnan(v) or (v < 0 if allow_zero else v <= 0) or (np.isinf(v) and not allow_inf):
    raise ValueError(f"{name} must be {need}, got {value!r}.")


def in_range(
  name: str,
  value: Any,
  low: float,
  high: float,
  *,
  low_open: bool = False,
  high_open: bool = False,
) -> None:
  """``value`` in [low, high] (open ends as told); an infinite end is always open."""
  lb, hb = ("(" if low_open else "["), (")" if high_open or np.isinf(high) else "]")
  need = f"a number in {lb}{low}, {high}{hb}"
  v = number(name, value, need)
  if v is None:
    return
  below = v <= low if low_open else v < low
  above = v >= high if (high_open or np.isinf(high)) else v > high
  if np.isnan(v) or below or above:
    raise ValueError(f"{name} must lie in {lb}{low}, {high}{hb}, got {value!r}.")


def finite(name: str, value: Any) -> None:
  """``value`` is a finite number."""
  v = number(name, value, "a finite number")
  if v is not None and not np.isfinite(v):
    raise ValueError(f"{name} must be a finite number, got {value!r}.")


def integer(name: str, value: Any, minimum: int = 1) -> int:
  """``value`` as a Python int >= ``minimum``.

  Integer options shape the computation, so they must be static: a traced
  value (``optax.inject_hyperparams`` without ``static_args``) is an error that
  says how to pass it.
  """
  if isinstance(value, jax.core.Tracer):
    raise ValueError(
      f"{name} must be a static Python int, got a traced value: with "
      f"optax.inject_hyperparams pass static_args=({name!r},)."
    )
  scalar_int = hasattr(value, "dtype") and jnp.issubdtype(value.dtype, jnp.integer)
  if isinstance(value, (bool, np.bool_)) or not (
    isinstance(value, (int, np.integer)) or (scalar_int and jnp.ndim(value) == 0)
  ):
    raise OptionTypeError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  if int(value) < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  return int(value)


def flag(name: str, value: Any) -> bool:
  """``value`` as a bool: ``True`` or ``False``."""
  if not isinstance(value, (bool, np.bool_)):
    raise OptionTypeError(f"{name} must be True or False, got {value!r}.")
  return bool(value)


def choice(name: str, value: Any, options: tuple[Any, ...]) -> None:
  """``value`` is one of ``options``."""
  if not isinstance(value, (str, int, float)) or value not in options:
    raise ValueError(f"{name} must be one of {options}, got {value!r}.")


def bound_value(bound: Any) -> Any:
  """A bound at step 0: a schedule's value, or the number itself."""
  return bound(0) if callable(bound) else bound


def bounds(
  min_value: Any, max_value: Any, name: str = "learning_rate", *, signed_min: bool = False
) -> None:
  """A clamp ``[min_<name>, max_<name>]``: numbers or schedules of the step count.

  The floor is a finite number >= 0 (``signed_min``: any number but NaN, −inf
  included); the ceiling a positive number, +inf included. A schedule is
  checked at step 0.
  """
  lo_name, hi_name = f"min_{name}", f"max_{name}"
  lo_need = "a number or a schedule" if signed_min else "a finite number >= 0 or a schedule"
  lo = number(lo_name, bound_value(min_value), lo_need)
  hi = number(hi_name, bound_value(max_value), "a positive number (inf: no ceiling) or a schedule")
  if lo is not None and (np.isnan(lo) or (not signed_min and (lo < 0 or np.isinf(lo)))):
    raise ValueError(f"{lo_name} must be {lo_need}, got {min_value!r}.")
  if hi is not None and (np.isnan(hi) or hi <= 0):
    raise ValueError(f"{hi_name} must be a positive number (inf: no ceiling), got {max_value!r}.")
  if lo is not None and hi is not None and lo > hi:
    raise ValueError(f"{lo_name} ({min_value}) must not exceed {hi_name} ({max_value}).")


def learning_rate(value: Any, method: str) -> Any:
  """The initial rate a method adapts: a positive finite scalar, not a schedule.

  Returns the value; a traced one (a ``jax.vmap`` sweep) that is NaN, ±inf or <= 0
  becomes 0, so that run starts at its floor, ``min_learning_rate``, and no bad
  entry of a sweep reaches the params.
  """
  if callable(value):
    raise OptionTypeError(
      f"{method}: learning_rate is the initial rate the method adapts (vsgd: a factor on "
      "its estimate), not a schedule. For warmup or decay on top of the learned rate pass "
      "the schedule as a ceiling, max_learning_rate=schedule (or a floor, "
      "min_learning_rate=schedule)."
    )
  v = None if isinstance(value, (str, bytes)) else concrete(value)
  if v is not None and v.dtype.kind in "iuf" and v.ndim != 0:
    raise ValueError(
      f"{method}: learning_rate must be a scalar, got shape {v.shape}. To sweep "
      "rates, jax.vmap the whole training over them; for one rate per parameter group pass "
      "granularity='leaf' or labels."
    )
  positive("learning_rate", value)
  if isinstance(value, jax.core.Tracer):
    return jnp.where(jnp.isfinite(value) & (value > 0), value, jnp.zeros_like(value))
  return value


def direction(value: Any, method: str) -> Optional[optax.GradientTransformationExtraArgs]:
  """A search direction: ``None`` (the gradient) or a transformation that points downhill.

  The method takes the descent step itself (updates ``−α u``), so ``u`` must be a
  ``scale_by_*`` transformation with ⟨g, u⟩ > 0; a full optimizer such as
  ``optax.adam(1e-3)`` points uphill. Checked by applying it once to a probe.
  """
  if value is None:
    return None
  if not (hasattr(value, "init") and hasattr(value, "update")):
    raise OptionTypeError(
      f"{method}: direction must be an optax GradientTransformation (e.g. "
      f"optax.scale_by_adam() or optax.trace(0.9)), got {value!r}."
    )
  inner = _probe(value)
  if inner is not None and inner < 0:
    raise ValueError(
      f"{method}: direction points uphill (⟨g, u⟩ < 0), like a full optimizer such as "
      f"optax.adam(1e-3). Pass the direction alone: optax.scale_by_adam() instead of "
      "optax.adam(lr), optax.trace(0.9) instead of optax.sgd(lr, momentum=0.9)."
    )
  return optax.with_extra_args_support(value)


def _probe(value: Any) -> Optional[float]:
  """⟨g, u⟩ for the direction on a small probe, or None if it cannot be probed."""
  params = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
  grads = np.array([0.5, -1.0, 2.0, -0.25], np.float32)
  try:
    with jax.ensure_compile_time_eval():
      tx = optax.with_extra_args_support(value)
      u, _ = tx.update(jnp.asarray(grads), tx.init(jnp.asarray(params)), jnp.asarray(params))
      return float(jnp.vdot(jnp.asarray(grads), jnp.asarray(u)))
  except Exception:  # pylint: disable=broad-except
    # A direction that needs a particular params structure (masks, labels) or
    # extra args cannot be probed on a vector: it is trusted.
    return None


def weight_decay(value: Any, mask: Any) -> None:
  """Decoupled weight decay: ``value`` >= 0 and ``mask`` None, a pytree of bools or a callable."""
  positive("weight_decay", value, allow_zero=True)
  if isinstance(mask, (str, bytes, int, float)) and not isinstance(mask, bool):
    raise OptionTypeError(
      f"mask must be None, a pytree of bools or a callable params -> bools, got {mask!r}."
    )


def either(name: str, value: Any, check: Callable[[str, Any], Any]) -> None:
  """``value`` is ``None`` (the option is off) or passes ``check``."""
  if value is not None:
    check(name, value)
