"""Flax integration: NNX and Linen training loops that pass adaptlr's extra args.

Install with ``pip install adaptlr[flax]``: Flax is an optional dependency, and
``import adaptlr`` alone never imports it (this module is imported on first use,
``import adaptlr.flax`` or ``adaptlr.flax.<name>``).

Methods that probe the loss along the line (``hypergradient(lookahead=True)``,
``newton_lr``, ``vsgd``, ``probabilistic_lr``) need ``value_fn``: the loss as a
function of *exactly the params tree that reaches the optax update*. This module
builds it for both Flax APIs.

**NNX.** ``nnx.Optimizer.update(model, grads, **kwargs)`` forwards ``kwargs`` to
``tx.update`` (through ``nnx.as_pure``), and passes as params
``nnx.as_pure(nnx.state(model, optimizer.wrt))``: an ``nnx.State`` of plain
arrays holding the variables selected by ``wrt`` (Flax 0.12,
``flax/nnx/training/optimizer.py``). :func:`nnx_value_fn` returns a function of
that State: it merges it with the model's graph definition and the rest of its
state (batch statistics, RNG counters, variables outside ``wrt``) frozen when
it was built, and calls your loss on the merged copy; the model itself is never
touched. :func:`nnx_train_step` is the whole step in one call::

    loss = adaptlr.flax.nnx_train_step(optimizer, model, loss_fn, x=x, y=y)

or, spelled out (build ``value_fn`` *before* the gradient, so that the probes
see the same dropout masks as the gradient)::

    value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn, wrt=nnx.Param)
    loss, grads = nnx.value_and_grad(loss_fn)(model, x=x, y=y)
    optimizer.update(model, grads, value=loss, value_fn=value_fn, x=x, y=y)

**Random streams.** A loss that takes an ``nnx.Rngs`` argument (dropout keys,
as in Flax's MNIST tutorial: ``loss_fn(model, rngs, batch)``) works in both:
``value_fn`` never mutates an ``Rngs`` it is given, it draws from a fresh copy
of its state on every call, so every probe sees the masks that state gives.
:func:`nnx_train_step` hands the probes the state from *before* the gradient
(the gradient's masks) and advances your ``Rngs`` as ``nnx.value_and_grad``
does. Spelled out, bind the batch when building ``value_fn``, before the
gradient::

    value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn, rngs, batch, has_aux=True)
    (loss, logits), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model, rngs, batch)
    optimizer.update(model, grads, value=loss, value_fn=value_fn)

(``optimizer.update(..., value_fn=nnx_value_fn(model, loss_fn), rngs=rngs,
batch=batch)`` also works, with the probes drawing the masks of ``rngs`` as it
is after the gradient, i.e. the next ones.)

**Linen.** ``TrainState.apply_gradients`` calls ``tx.update(grads, opt_state,
params)`` with no extra args. :func:`apply_gradients` is the same step with
extra args forwarded; :func:`linen_train_step` computes the loss and gradient
too. A Linen loss is already a function of the params, so it *is* the
``value_fn``.

**``(loss, aux)`` losses.** Every helper takes ``has_aux=True`` (as
``jax.value_and_grad``) and hands the optimizer a ``value_fn`` returning the
loss alone, so optax's own line searches accept it too. Calling an optimizer
directly, pass ``value_fn_has_aux=True`` with the ``value_fn``.

In all of them, keyword args after the loss (``x=..., y=...``) are the batch:
they go to your loss for the gradient and, through the optimizer's extra args,
to ``value_fn`` (adaptlr and optax's line searches forward the keyword args that
``value_fn``'s signature names). Everything here works under ``jax.jit`` /
``nnx.jit`` and with any optax transformation; extra args are only passed when
the optimizer accepts them (``optax.GradientTransformationExtraArgs``).
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

__all__ = [
  "apply_gradients",
  "learning_rate",
  "linen_train_step",
  "nnx_train_step",
  "nnx_value_fn",
]


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
  """``tree`` with every ``nnx.Rngs`` (or its ``nnx.as_pure`` snapshot) replaced by a new one.

  The copy starts from the same keys and counters, so it draws the same keys,
  and it belongs to the current trace, so a loss may draw from it under
  ``jax.jvp`` / ``jax.grad`` / ``jax.vmap`` (the probes) without touching the
  caller's ``Rngs`` (``nnx.Optimizer.update`` passes extra args through
  ``nnx.as_pure``, which leaves an ``Rngs`` that cannot be drawn from).
  """

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
  for r, a in zip(
    jax.tree.leaves(tree, is_leaf=_is_rngs), jax.tree.leaves(after, is_leaf=_is_rngs)
  ):
    if _is_rngs(r):
      for name, s in r.items():
        s.key.set_value(a[name].key)
        s.count.set_value(a[name].count)


def _with_params_signature(
  fn: Callable[..., Any], loss_fn: Callable[..., Any]
) -> Callable[..., Any]:
  """``fn`` advertising the signature of ``loss_fn`` with its first argument named ``params``.

  adaptlr (``_loss.value_fn_kwargs``) and optax's line searches forward to
  ``value_fn`` exactly the keyword args its signature names, so the batch
  arguments of ``loss_fn`` (``x``, ``y``, ...) must appear there.
  """
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

  ``nnx.Optimizer(model, tx, wrt=wrt).update(model, grads, **kw)`` calls
  ``tx.update(grads, opt_state, params, **kw)`` with
  ``params = nnx.as_pure(nnx.state(model, wrt))`` (an ``nnx.State`` of arrays).
  The returned ``value_fn(params, *batch_args, **batch_kwargs)`` merges such a
  State with ``model``'s graph definition and the rest of its state and returns
  ``loss_fn(merged_model, *batch_args, **batch_kwargs)``: pure, jittable,
  vmappable, and differentiable in ``params``.

  The non-``wrt`` state (BatchNorm statistics, dropout RNG counters, frozen
  variables) is a snapshot taken now, and state updates made by ``loss_fn``
  during probes are discarded. Build it before computing the gradient and the
  probes see the same dropout masks as the gradient did (and the loss at the
  current params equals the ``value`` from ``nnx.value_and_grad``).

  An ``nnx.Rngs`` argument of ``loss_fn`` is never mutated: each call draws
  from a fresh copy of its state. Pass the batch here (``nnx_value_fn(model,
  loss_fn, rngs, batch)``) to bind it now, before the gradient advances
  ``rngs``: then ``value_fn(params)`` takes the params only and the probes see
  the gradient's dropout masks.

  Args:
    model: the NNX module being trained.
    loss_fn: ``loss_fn(model, ...) -> scalar`` (or ``(scalar, aux)`` with
      ``has_aux=True``); its arguments after the model are the batch.
    *batch_args: optional batch to bind now (positional args of ``loss_fn``
      after the model); ``nnx.Rngs`` among them are snapshotted.
    wrt: the filter passed to ``nnx.Optimizer`` (default ``nnx.Param``);
      ``value_fn``'s params are the variables it selects.
    has_aux: ``loss_fn`` returns ``(loss, aux)``; ``value_fn`` returns the loss.
    graph: NNX graph mode, as for ``nnx.Optimizer(..., graph=...)`` (``None``:
      the current ``nnx.set_graph_mode``).
    **batch_kwargs: optional batch to bind now (keyword args of ``loss_fn``).

  Returns:
    Without a bound batch, ``value_fn(params, ...)``, whose signature is
    ``loss_fn``'s with the model replaced by ``params``, so that keyword args
    passed to ``optimizer.update`` (``x=..., y=...``) are forwarded to it.
    With one, ``value_fn(params)``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> import adaptlr.flax
    >>> from flax import nnx
    >>> model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
    >>> x = jax.random.normal(jax.random.key(1), (32, 3)); y = x.sum(1, keepdims=True)
    >>> loss_fn = lambda model, x, y: jnp.mean((model(x) - y) ** 2)
    >>> optimizer = nnx.Optimizer(
    ...     model, adaptlr.hypergradient(0.05, lookahead=True), wrt=nnx.Param)
    >>> @nnx.jit
    ... def train_step(model, optimizer, x, y):
    ...   value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn)
    ...   loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
    ...   optimizer.update(model, grads, value=loss, value_fn=value_fn, x=x, y=y)
    ...   return loss
    >>> first = train_step(model, optimizer, x, y)
    >>> for _ in range(50):
    ...   last = train_step(model, optimizer, x, y)
    >>> bool(last < 0.05 * first)
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

  Computes ``loss_fn(model, **batch)`` and its gradient with respect to the
  variables ``optimizer.wrt`` selects, writes the other state changes the
  forward pass made (BatchNorm statistics, RNG counters) back to ``model``,
  then calls ``optimizer.update(model, grads, value=loss, grad=grads,
  value_fn=nnx_value_fn(...), **batch)``: every adaptlr method gets what it
  needs. For an optimizer without extra-args support only ``(model, grads)``
  is passed, so the same loop runs optax peers (``optax.sgd``, ``optax.adam``).

  Call it inside your ``nnx.jit``-ed step (it is plain traceable code).

  Args:
    optimizer: an ``nnx.Optimizer`` built on ``model`` (any ``wrt``, graph or
      tree mode).
    model: the module being trained; updated in place.
    loss_fn: ``loss_fn(model, **batch) -> scalar`` (or ``(scalar, aux)`` with
      ``has_aux=True``).
    has_aux: ``loss_fn`` returns ``(loss, aux)``.
    **batch: keyword args of ``loss_fn`` (``x=..., y=...``, ``rngs=rngs``),
      forwarded to ``loss_fn`` and to ``value_fn``. An ``nnx.Rngs`` among them
      is advanced as ``nnx.value_and_grad`` would; the probes draw the same
      keys (dropout masks) as the gradient did.

  Returns:
    The loss before the step (``(loss, aux)`` with ``has_aux=True``).

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> import adaptlr.flax
    >>> from flax import nnx
    >>> class MLP(nnx.Module):
    ...   def __init__(self, rngs):
    ...     self.l1 = nnx.Linear(4, 16, rngs=rngs); self.l2 = nnx.Linear(16, 1, rngs=rngs)
    ...   def __call__(self, x):
    ...     return self.l2(nnx.tanh(self.l1(x)))
    >>> x = jax.random.normal(jax.random.key(1), (64, 4)); y = jnp.sin(x[:, :1])
    >>> loss_fn = lambda model, x, y: jnp.mean((model(x) - y) ** 2)
    >>> model = MLP(nnx.Rngs(0))
    >>> optimizer = nnx.Optimizer(
    ...     model, adaptlr.hypergradient(0.1, lookahead=True), wrt=nnx.Param)
    >>> step = nnx.jit(lambda m, o, x, y: adaptlr.flax.nnx_train_step(o, m, loss_fn, x=x, y=y))
    >>> losses = [float(step(model, optimizer, x, y)) for _ in range(100)]
    >>> losses[-1] < 0.2 * losses[0]
    True
  """
  wrt = optimizer.wrt
  graph = getattr(optimizer, "graph", None)
  gkw = _graph_kwargs(graph)
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

  (loss, (aux, new_rest, batch_after)), grads = jax.value_and_grad(loss_and_state, has_aux=True)(
    params
  )
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

  ``flax.training.train_state.TrainState.apply_gradients`` calls
  ``tx.update(grads, opt_state, params)`` only (its ``**kwargs`` replace
  dataclass fields). This is the same step — ``step + 1``, new ``params`` and
  ``opt_state``, any subclass fields kept — with ``tx.update(grads,
  opt_state, params, **extra_args)``. Use ``state.replace(...)`` afterwards for
  other fields (e.g. ``batch_stats``).

  Args:
    state: a ``TrainState`` (or subclass).
    grads: gradients with the structure of ``state.params``.
    has_aux: ``value_fn`` returns ``(loss, aux)`` (the ``loss_fn`` you give
      ``jax.value_and_grad(..., has_aux=True)``); the optimizer gets the loss
      alone. ``value`` may then be the ``(loss, aux)`` pair too.
    **extra_args: ``value=``, ``grad=``, ``value_fn=`` and the batch
      (``x=..., y=...``), forwarded to the optimizer.

  Returns:
    The updated ``TrainState``.

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> import adaptlr.flax
    >>> import flax.linen as nn
    >>> from flax.training.train_state import TrainState
    >>> x = jax.random.normal(jax.random.key(1), (32, 3)); y = x.sum(1, keepdims=True)
    >>> model = nn.Dense(1)
    >>> state = TrainState.create(apply_fn=model.apply,
    ...     params=model.init(jax.random.key(0), x)["params"],
    ...     tx=adaptlr.hypergradient(0.05, lookahead=True))
    >>> def loss_fn(params, x, y):
    ...   return jnp.mean((state.apply_fn({"params": params}, x) - y) ** 2)
    >>> @jax.jit
    ... def train_step(state, x, y):
    ...   loss, grads = jax.value_and_grad(loss_fn)(state.params, x, y)
    ...   state = adaptlr.flax.apply_gradients(
    ...       state, grads, value=loss, value_fn=loss_fn, x=x, y=y)
    ...   return state, loss
    >>> state, first = train_step(state, x, y)
    >>> for _ in range(50):
    ...   state, last = train_step(state, x, y)
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
  tx = state.tx
  if _is_extra_args(tx):
    updates, opt_state = tx.update(grads_opt, state.opt_state, params_opt, **extra_args)
  else:
    updates, opt_state = tx.update(grads_opt, state.opt_state, params_opt)
  new_params = optax.apply_updates(params_opt, updates)
  if owg:
    new_params = {"params": new_params, OVERWRITE_WITH_GRADIENT: grads[OVERWRITE_WITH_GRADIENT]}
  return state.replace(step=state.step + 1, params=new_params, opt_state=opt_state)


def linen_train_step(
  state: Any,
  loss_fn: Callable[..., Any],
  *,
  has_aux: bool = False,
  **batch: Any,
) -> tuple[Any, Any]:
  """One Linen training step: ``(new_state, loss)`` with every extra arg passed.

  ``loss, grads = jax.value_and_grad(loss_fn)(state.params, **batch)``, then
  :func:`apply_gradients` with ``value=loss, grad=grads, value_fn=loss_fn`` and
  the batch. Call it inside your ``jax.jit``-ed step.

  Args:
    state: a ``TrainState``.
    loss_fn: ``loss_fn(params, **batch) -> scalar`` (or ``(scalar, aux)`` with
      ``has_aux=True``): the loss as a function of ``state.params``.
    has_aux: ``loss_fn`` returns ``(loss, aux)``.
    **batch: keyword args of ``loss_fn``.

  Returns:
    ``(new_state, loss)``, or ``(new_state, (loss, aux))`` with ``has_aux``.

  Example:
    >>> import jax, jax.numpy as jnp, adaptlr
    >>> import adaptlr.flax
    >>> import flax.linen as nn
    >>> from flax.training.train_state import TrainState
    >>> x = jax.random.normal(jax.random.key(1), (32, 3)); y = x.sum(1, keepdims=True)
    >>> model = nn.Dense(1)
    >>> state = TrainState.create(apply_fn=model.apply,
    ...     params=model.init(jax.random.key(0), x)["params"], tx=adaptlr.tlr(0.01))
    >>> loss_fn = lambda params, x, y: jnp.mean((model.apply({"params": params}, x) - y) ** 2)
    >>> step = jax.jit(lambda s, x, y: adaptlr.flax.linen_train_step(s, loss_fn, x=x, y=y))
    >>> state, first = step(state, x, y)
    >>> for _ in range(50):
    ...   state, last = step(state, x, y)
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

  ``optax.tree.get(opt_state, "learning_rate", default)`` with NNX's variable
  wrappers removed: ``default`` when no state field is named
  ``learning_rate`` (``optax.sgd`` keeps none), ``KeyError`` when several are
  (then use ``optax.tree.get_all_with_path``).

  Example:
    >>> import jax.numpy as jnp, optax, adaptlr
    >>> import adaptlr.flax
    >>> from flax import nnx
    >>> optimizer = nnx.Optimizer(nnx.Linear(2, 1, rngs=nnx.Rngs(0)),
    ...                           optax.chain(optax.clip(1.0), adaptlr.tlr(0.03)),
    ...                           wrt=nnx.Param)
    >>> print(f"{adaptlr.flax.learning_rate(optimizer):.3f}")
    0.030
  """
  opt_state = getattr(obj, "opt_state", obj)
  return optax.tree.get(nnx.as_pure(opt_state), "learning_rate", default)
