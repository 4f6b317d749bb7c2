"""The loss a method evaluates: extra args, ``value_fn``, aux, masks, the scalar check.

Extra args follow optax's line searches: ``value`` (the loss at ``params``),
``grad``, ``value_fn`` (params -> scalar loss; with ``value_fn_has_aux=True``
it returns ``(loss, aux)`` and the aux is dropped). Keyword args that
``value_fn`` accepts (``x=..., y=...``) are forwarded to it; any other keyword
is ignored, never an error, so a method sits in any ``optax.chain``. Inside
``optax.masked`` the loss of the whole model is rebuilt from ``full_params``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Optional, TypeVar

import jax
import jax.numpy as jnp
import optax

T = TypeVar("T")

# The extra args adaptlr reads itself; never forwarded to ``value_fn``. Optax's
# line-search args, ``full_params`` (masks), and the methods' own (vsgd: ``curvature``,
# ``grad_sq``, ``logits_fn``); a test checks every method's ``consumes`` is here.
RESERVED_EXTRA_ARGS = frozenset(
  {"value", "grad", "value_fn", "value_fn_has_aux", "full_params"}
  | {"curvature", "grad_sq", "logits_fn"}
)


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
  extra arg adaptlr does not reserve is forwarded.
  """
  names, var_kw = _accepted_kwargs(value_fn)
  return {
    k: v for k, v in extra_args.items() if k not in RESERVED_EXTRA_ARGS and (k in names or var_kw)
  }


def loss_from(out: Any, has_aux: bool, who: str, flag: str = "value_fn_has_aux") -> Any:
  """The loss in a loss function's output: ``out[0]`` with ``has_aux``, else ``out``.

  A ``(loss, aux)`` pair without ``has_aux``, or anything but a pair with it, is a
  ``TypeError`` that names ``flag``.
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
      f"not a scalar loss. If it returns (loss, aux), pass {flag}=True."
    )
  return out


def get_value_fn(
  extra_args: dict[str, Any], method: str, why: str = "", params: Any = None
) -> Callable[[Any], jax.Array]:
  """``params -> scalar loss`` from the ``value_fn`` extra arg, its kwargs bound.

  The aux of ``value_fn_has_aux=True`` is dropped, the loss is checked to be a
  scalar at trace time, and inside ``optax.masked`` the frozen leaves come from
  ``full_params`` (:func:`unmask_value_fn`).

  Raises:
    ValueError: no ``value_fn`` was passed; the message says how to pass it.
  """
  value_fn = extra_args.get("value_fn")
  if value_fn is None:
    raise ValueError(
      f"{method} needs the loss as a function of the params{why}: call "
      "`opt.update(grads, state, params, value_fn=loss_fn, **batch)`; in Flax, "
      "adaptlr.flax.nnx_train_step or adaptlr.flax.nnx_value_fn (NNX), "
      "adaptlr.flax.linen_train_step or adaptlr.flax.apply_gradients (Linen)."
    )
  kwargs = value_fn_kwargs(value_fn, extra_args)
  bound = functools.partial(value_fn, **kwargs) if kwargs else value_fn
  has_aux = bool(extra_args.get("value_fn_has_aux", False))
  loss = lambda p: loss_from(bound(p), has_aux, method)
  return scalar_loss(unmask_value_fn(loss, params, extra_args, method), method)


def get_value(extra_args: dict[str, Any], method: str) -> jax.Array:
  """The ``value`` extra arg (the scalar loss at ``params``).

  Raises:
    ValueError: it is missing or not a scalar; the message says how to get it.
  """
  value = extra_args.get("value")
  if value is None:
    raise ValueError(
      f"{method} needs the loss at the current params: compute `value, grads = "
      "jax.value_and_grad(loss_fn)(params, **batch)` and call `opt.update(grads, state, "
      "params, value=value, value_fn=loss_fn, **batch)`."
    )
  value = jnp.asarray(value)
  if value.ndim != 0:
    raise ValueError(
      f"{method}: value must be the scalar loss, got shape {value.shape} (a "
      "per-example loss? reduce it, e.g. with .mean())."
    )
  return value


def require_params(params: Optional[T], method: str) -> T:
  """``params``; raises ``ValueError`` if they were not passed to ``update``."""
  if params is None:
    raise ValueError(
      f"{method} needs the current params: call `opt.update(grads, state, params, ...)`."
    )
  return params


def _is_masked(x: Any) -> bool:
  return isinstance(x, optax.MaskedNode)


def has_masked_nodes(tree: Any) -> bool:
  """Whether ``tree`` came through ``optax.masked`` (has ``MaskedNode`` leaves)."""
  return any(_is_masked(x) for x in jax.tree.leaves(tree, is_leaf=_is_masked))


def unmask_value_fn(
  value_fn: Callable[[Any], jax.Array], params: Any, extra_args: dict[str, Any], method: str
) -> Callable[[Any], jax.Array]:
  """``value_fn`` as a function of the part of the params a masked method sees.

  Inside ``optax.masked`` (and ``optax.multi_transform``) the frozen leaves are
  ``optax.MaskedNode``; they are taken from the ``full_params`` extra arg. Without
  it, a loss that does not read them is used as it is (traced once to check).

  Raises:
    ValueError: ``params`` is masked, the loss reads the frozen leaves and no
      ``full_params`` was passed.
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
        f"{method} inside optax.masked / optax.multi_transform sees only part of the "
        "params, but its probes evaluate the whole model's loss: pass "
        "full_params=params to opt.update as well."
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
