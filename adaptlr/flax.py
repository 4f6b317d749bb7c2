"""Flax integration: NNX and Linen training loops that pass adaptlr's extra args.

The methods that probe the loss need ``value_fn``, the loss as a function of
the params tree that reaches the optax update. :func:`nnx_value_fn` builds it
for NNX and :func:`nnx_train_step` is the whole NNX step::

    loss = adaptlr.flax.nnx_train_step(optimizer, model, loss_fn, x=x, y=y)

For Linen, :func:`apply_gradients` is ``TrainState.apply_gradients`` with extra
args forwarded and :func:`linen_train_step` the whole step. Needs ``pip install
adaptlr[flax]``. See docs/flax.md for dropout, BatchNorm and ``(loss, aux)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import optax

from adaptlr import _loss

try:
  from flax import nnx
except ImportError as e:  # pragma: no cover - exercised in a subprocess test
  raise ImportError(
    "adaptlr.flax needs Flax, an optional dependency of adaptlr: install it with "
    "`pip install adaptlr[flax]` (or `pip install flax`). The optimizers themselves "
    "(`import adaptlr`) do not need it."
  ) from e

__all__ = ["apply_gradients", "learning_rate", "linen_train_step", "nnx_train_step", "nnx_value_fn"]


# -------------------------------------------------------------------- helpers --
def _graph_kwargs(graph: bool | None) -> dict[str, Any]:
  return {} if graph is None else {"graph": graph}


def _loss_only(out: Any, has_aux: bool) -> Any:
  return _loss.loss_from(out, has_aux, "adaptlr.flax", flag="has_aux")


def _strip_aux(loss_fn: Callable[..., Any]) -> Callable[..., Any]:
  """``loss_fn`` returning ``(loss, aux)`` -> the same function returning ``loss``."""
  return _with_params_signature(lambda params, *a, **k: loss_fn(params, *a, **k)[0], loss_fn)


def _is_rngs(x: Any) -> bool:
  return isinstance(x, nnx.Rngs)


def _rngs_snapshot(tree: Any) -> Any:
  """``tree`` with every ``nnx.Rngs`` replaced by its state now (plain arrays)."""
  return jax.tree.map(lambda r: nnx.as_pure(r) if _is_rngs(r) else r, tree, is_leaf=_is_rngs)


def _fresh_rngs(tree: Any) -> Any:
  """``tree`` with every ``nnx.Rngs`` (or snapshot) replaced by a copy of this trace."""

  def fresh(r):
    if not _is_rngs(r):
      return r
    val = lambda v: v.get_value() if isinstance(v, nnx.Variable) else v
    streams = dict(r.items())
    new = nnx.Rngs(**{name: val(s.key) for name, s in streams.items()})
    for name, s in streams.items():
      new[name].count.set_value(val(s.count))
    return new

  return jax.tree.map(fresh, tree, is_leaf=_is_rngs)


def _advance_rngs(tree: Any, after: Any) -> None:
  """Write the ``nnx.Rngs`` states in ``after`` (a snapshot) back to those in ``tree``."""
  leaves = lambda t: jax.tree.leaves(t, is_leaf=_is_rngs)
  for r, a in zip(leaves(tree), leaves(after)):
    if _is_rngs(r):
      for name, s in r.items():
        s.key.set_value(a[name].key)
        s.count.set_value(a[name].count)


def _with_params_signature(fn: Callable, loss_fn: Callable) -> Callable:
  """``fn`` with ``loss_fn``'s signature (first arg ``params``): its kwargs get forwarded."""
  try:
    sig = inspect.signature(loss_fn)
  except (TypeError, ValueError):  # builtins, some C callables: forward everything
    return fn
  rest = list(sig.parameters.values())[1:]
  if any(p.name == "params" for p in rest):
    return fn
  first = inspect.Parameter("params", inspect.Parameter.POSITIONAL_OR_KEYWORD)
  try:
    fn.__signature__ = sig.replace(parameters=[first, *rest])
  except (ValueError, TypeError):
    pass
  return fn


def _is_extra_args(tx: Any) -> bool:
  """Whether ``tx.update`` takes extra args (e.g. ``optax.MultiSteps``'s does, untyped)."""
  if isinstance(tx, optax.GradientTransformationExtraArgs):
    return True
  try:
    params = inspect.signature(tx.update).parameters.values()
  except (TypeError, ValueError):
    return False
  return any(p.kind is p.VAR_KEYWORD for p in params)


# ------------------------------------------------------------------------ NNX --
def nnx_value_fn(
  model: nnx.Module,
  loss_fn: Callable[..., Any],
  *batch_args: Any,
  wrt: Any = nnx.Param,
  has_aux: bool = False,
  graph: bool | None = None,
  **batch_kwargs: Any,
) -> Callable[..., jax.Array]:
  """The loss as a function of the params that ``nnx.Optimizer`` hands to optax.

  Merges the params (the ``nnx.State`` ``wrt`` selects) with ``model``'s other
  state as it is now (BatchNorm statistics, RNG counters) and calls ``loss_fn``;
  ``model`` and ``nnx.Rngs`` arguments are never mutated. Build it before the
  gradient, so that the probes see the gradient's dropout masks.

  Args:
    model: the NNX module being trained.
    loss_fn: ``loss_fn(model, *batch) -> loss`` (or ``(loss, aux)``).
    *batch_args: optional batch to bind now (e.g. ``rngs, batch``).
    **batch_kwargs: the same, by keyword.
    wrt: the filter given to ``nnx.Optimizer`` (default ``nnx.Param``).
    has_aux: ``loss_fn`` returns ``(loss, aux)``; ``value_fn`` returns the loss.
    graph: NNX graph mode, as ``nnx.Optimizer(..., graph=...)``.

  Returns:
    ``value_fn(params, ...)`` with ``loss_fn``'s signature (so the batch given to
    ``optimizer.update`` reaches it); with a bound batch, ``value_fn(params)``.

  Example:
    >>> import jax, jax.numpy as jnp, adaptlr, adaptlr.flax
    >>> from flax import nnx
    >>> model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    >>> x = jax.random.normal(jax.random.key(1), (32, 3)); y = x.sum(1, keepdims=True)
    >>> loss_fn = lambda model, x, y: jnp.mean((model(x) - y) ** 2)
    >>> tx = adaptlr.hypergradient(0.05, lookahead=True)
    >>> optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    >>> @nnx.jit
    ... def train_step(model, optimizer, x, y):
    ...   value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn)
    ...   loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    ...   optimizer.update(model, grads, value=loss, value_fn=value_fn, x=x, y=y)
    ...   return loss
    >>> losses = [train_step(model, optimizer, x, y) for _ in range(51)]
    >>> bool(losses[-1] < 0.05 * losses[0])
    True
  """
  graphdef, _, rest = nnx.split(model, wrt, ..., **_graph_kwargs(graph))
  value_fn = _merged_value_fn(graphdef, nnx.as_pure(rest), loss_fn, has_aux)
  if not batch_args and not batch_kwargs:
    return value_fn
  bound_args, bound_kwargs = _rngs_snapshot((batch_args, batch_kwargs))
  return lambda params: value_fn(params, *bound_args, **bound_kwargs)


def _merged_value_fn(graphdef, rest, loss_fn, has_aux):
  """``params -> loss_fn(nnx.merge(graphdef, params, rest), ...)``, ``nnx.Rngs`` args copied."""

  def value_fn(params, *args, **kwargs):
    merged = nnx.merge(graphdef, nnx.as_pure(params), rest)
    args, kwargs = _fresh_rngs((args, kwargs))
    return _loss_only(loss_fn(merged, *args, **kwargs), has_aux)

  return _with_params_signature(value_fn, loss_fn)


def nnx_train_step(
  optimizer: nnx.Optimizer,
  model: nnx.Module,
  loss_fn: Callable[..., Any],
  *,
  has_aux: bool = False,
  **batch: Any,
) -> Any:
  """One NNX training step: loss, gradient, and ``optimizer.update`` with extra args.

  The gradient is for ``optimizer.wrt``; other state changes (BatchNorm statistics) go
  back to ``model``; ``optimizer.update`` gets ``value``, ``grad``, ``value_fn`` and the
  batch (only ``(model, grads)`` for an optimizer without extra args).

  Args:
    optimizer: an ``nnx.Optimizer`` built on ``model``.
    model: the module being trained; updated in place.
    loss_fn: ``loss_fn(model, **batch) -> scalar`` (or ``(scalar, aux)``).
    has_aux: ``loss_fn`` returns ``(loss, aux)``.
    **batch: keyword args of ``loss_fn``, forwarded to it and to ``value_fn``;
      an ``nnx.Rngs`` among them advances as with ``nnx.value_and_grad``.

  Returns:
    The loss before the step (``(loss, aux)`` with ``has_aux=True``).

  Example:
    >>> import jax, jax.numpy as jnp, adaptlr, adaptlr.flax
    >>> from flax import nnx
    >>> model = nnx.Sequential(nnx.Linear(4, 16, rngs=nnx.Rngs(0)), nnx.tanh,
    ...                        nnx.Linear(16, 1, rngs=nnx.Rngs(1)))
    >>> x = jax.random.normal(jax.random.key(1), (64, 4)); y = jnp.sin(x[:, :1])
    >>> loss_fn = lambda model, x, y: jnp.mean((model(x) - y) ** 2)
    >>> tx = adaptlr.hypergradient(0.1, lookahead=True)
    >>> optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    >>> step = nnx.jit(lambda m, o, x, y: adaptlr.flax.nnx_train_step(o, m, loss_fn, x=x, y=y))
    >>> losses = [float(step(model, optimizer, x, y)) for _ in range(100)]
    >>> losses[-1] < 0.2 * losses[0]
    True
  """
  wrt, gkw = optimizer.wrt, _graph_kwargs(getattr(optimizer, "graph", None))
  graphdef, params, rest = nnx.split(model, wrt, ..., **gkw)
  rest = nnx.as_pure(rest)
  # The random state the gradient draws from; the probes get the same one.
  batch_now = _rngs_snapshot(batch)

  def loss_and_state(p):  # p: the wrt Variables (so grads are too: Optimizer filters by type)
    merged = nnx.merge(graphdef, p, rest)
    local = _fresh_rngs(batch_now)  # Rngs of this trace: drawing from them is allowed here
    out = loss_fn(merged, **local)
    loss = _loss_only(out, has_aux)
    aux = out[1] if has_aux else None
    _, _, new_rest = nnx.split(merged, wrt, ..., **gkw)
    return loss, (aux, nnx.as_pure(new_rest), _rngs_snapshot(local))

  grad_fn = jax.value_and_grad(loss_and_state, has_aux=True)
  (loss, (aux, new_rest, batch_after)), grads = grad_fn(params)
  nnx.update(model, new_rest)
  _advance_rngs(batch, batch_after)  # the caller's Rngs move on, as with nnx.value_and_grad

  if _is_extra_args(optimizer.tx):
    value_fn = _merged_value_fn(graphdef, rest, loss_fn, has_aux)  # pre-step snapshot
    optimizer.update(model, grads, value=loss, grad=grads, value_fn=value_fn, **batch_now)
  else:
    optimizer.update(model, grads)
  return (loss, aux) if has_aux else loss


# ---------------------------------------------------------------------- Linen --
def apply_gradients(state: Any, grads: Any, *, has_aux: bool = False, **extra_args: Any) -> Any:
  """``state.apply_gradients(grads=grads)`` that forwards extra args to ``tx.update``.

  The same step as ``TrainState.apply_gradients`` (subclass fields kept) with
  ``tx.update(grads, opt_state, params, **extra_args)``.

  Args:
    state: a ``TrainState`` (or subclass).
    grads: gradients with the structure of ``state.params``.
    has_aux: ``value_fn`` (and ``value``) give ``(loss, aux)``; the optimizer gets the loss.
    **extra_args: ``value``, ``grad``, ``value_fn`` and the batch, for ``tx.update``.

  Returns:
    The updated ``TrainState``.

  Example:
    >>> import jax, jax.numpy as jnp, adaptlr, adaptlr.flax
    >>> import flax.linen as nn
    >>> from flax.training.train_state import TrainState
    >>> x = jax.random.normal(jax.random.key(1), (32, 3)); y = x.sum(1, keepdims=True)
    >>> model = nn.Dense(1)
    >>> state = TrainState.create(apply_fn=model.apply,
    ...     params=model.init(jax.random.key(0), x)["params"],
    ...     tx=adaptlr.hypergradient(0.05, lookahead=True))
    >>> loss_fn = lambda params, x, y: jnp.mean((model.apply({"params": params}, x) - y) ** 2)
    >>> @jax.jit
    ... def train_step(state, x, y):
    ...   loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y)
    ...   return adaptlr.flax.apply_gradients(
    ...       state, grads, value=loss, value_fn=loss_fn, x=x, y=y), loss
    >>> state, first = train_step(state, x, y)
    >>> for _ in range(50): state, last = train_step(state, x, y)
    >>> bool(last < 0.05 * first)
    True
  """
  from flax.linen.fp8_ops import OVERWRITE_WITH_GRADIENT  # as TrainState does

  owg = not isinstance(grads, jax.Array) and OVERWRITE_WITH_GRADIENT in grads
  grads_opt = grads["params"] if owg else grads
  params_opt = state.params["params"] if owg else state.params
  if has_aux:
    extra_args.pop("value_fn_has_aux", None)  # has_aux=True already strips the aux
    if extra_args.get("value_fn") is not None:
      extra_args["value_fn"] = _strip_aux(extra_args["value_fn"])
    if isinstance(extra_args.get("value"), (tuple, list)):
      extra_args["value"] = extra_args["value"][0]
  kwargs = extra_args if _is_extra_args(state.tx) else {}
  updates, opt_state = state.tx.update(grads_opt, state.opt_state, params_opt, **kwargs)
  new_params = optax.apply_updates(params_opt, updates)
  if owg:
    new_params = {"params": new_params, OVERWRITE_WITH_GRADIENT: grads[OVERWRITE_WITH_GRADIENT]}
  return state.replace(step=state.step + 1, params=new_params, opt_state=opt_state)


def linen_train_step(
  state: Any, loss_fn: Callable[..., Any], *, has_aux: bool = False, **batch: Any
) -> tuple[Any, Any]:
  """One Linen training step: ``(new_state, loss)`` with every extra arg passed.

  ``jax.value_and_grad(loss_fn)(state.params, **batch)``, then :func:`apply_gradients`
  with ``value``, ``grad``, ``value_fn=loss_fn`` and the batch. Use inside ``jax.jit``.

  Args:
    state: a ``TrainState``.
    loss_fn: ``loss_fn(params, **batch) -> scalar`` (or ``(scalar, aux)``).
    has_aux: ``loss_fn`` returns ``(loss, aux)``.
    **batch: keyword args of ``loss_fn``.

  Returns:
    ``(new_state, loss)``, or ``(new_state, (loss, aux))`` with ``has_aux``.

  Example:
    >>> import jax, jax.numpy as jnp, adaptlr, adaptlr.flax, flax.linen as nn
    >>> from flax.training.train_state import TrainState
    >>> model, x = nn.Dense(1), jax.random.normal(jax.random.key(1), (32, 3))
    >>> params = model.init(jax.random.key(0), x)["params"]
    >>> state = TrainState.create(apply_fn=model.apply, params=params, tx=adaptlr.tlr(0.01))
    >>> loss_fn = lambda p, x: jnp.mean((model.apply({"params": p}, x) - x.sum(1)[:, None]) ** 2)
    >>> step = jax.jit(lambda s, x: adaptlr.flax.linen_train_step(s, loss_fn, x=x))
    >>> state, first = step(state, x)
    >>> for _ in range(50): state, last = step(state, x)
    >>> bool(last < 0.05 * first)
    True
  """
  checked = lambda params, **b: _loss_only(loss_fn(params, **b), False)
  grad_fn = jax.value_and_grad(loss_fn if has_aux else checked, has_aux=has_aux)
  out, grads = grad_fn(state.params, **batch)
  loss = out[0] if has_aux else out
  state = apply_gradients(
    state, grads, has_aux=has_aux, value=loss, grad=grads, value_fn=loss_fn, **batch
  )
  return state, out


# ----------------------------------------------------------------- inspection --
def learning_rate(obj: Any, default: Any = None) -> Any:
  """The current learning rate(s) of an ``nnx.Optimizer``, a ``TrainState`` or an optax state.

  ``optax.tree.get(opt_state, "learning_rate", default)`` with NNX's variable wrappers
  removed: ``default`` when no field is so named; ``KeyError`` when several are.

  Example:
    >>> import optax, adaptlr, adaptlr.flax
    >>> from flax import nnx
    >>> tx = optax.chain(optax.clip(1.0), adaptlr.tlr(0.03))
    >>> optimizer = nnx.Optimizer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)), tx, wrt=nnx.Param)
    >>> print(f"{adaptlr.flax.learning_rate(optimizer):.3f}")
    0.030
  """
  opt_state = getattr(obj, "opt_state", obj)
  return optax.tree.get(nnx.as_pure(opt_state), "learning_rate", default)
