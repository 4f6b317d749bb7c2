"""How many learning rates, and which parameters share one.

Every method learns one rate per *group* of parameters: ``"global"`` (one
scalar), ``"leaf"`` (one per tensor), ``"element"`` (one per scalar parameter)
or labels as in :func:`optax.multi_transform` (``{label: rate}``); see
docs/options.md. :class:`Granularity` holds that choice and the operations the
methods need: grouped sums, inner products (accumulated in float32 or wider)
and maxima, and scaling a tree by its group's rate. The rates are an ordinary
pytree, so a rule written with ``jax.tree.map`` reads the same for every
granularity.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Union

import chex
import jax
import jax.numpy as jnp
import optax

from adaptlr import _validate

GranularityLike = Union[str, Any, Callable[[Any], Any]]
# The rates of a state, one per group: a () array (global), a pytree of () arrays (leaf,
# labels: {label: rate}) or arrays shaped like the params (element).
Rates = chex.ArrayTree

_NAMED = ("global", "leaf", "element")


def rate_dtype(tree: Any) -> jnp.dtype:
  """The dtype rates and reductions are kept in: float32, or wider params'."""
  dtype = jnp.dtype(jnp.float32)
  for leaf in jax.tree.leaves(tree):
    leaf_dtype = jnp.asarray(leaf).dtype if not hasattr(leaf, "dtype") else leaf.dtype
    if jnp.issubdtype(leaf_dtype, jnp.floating):
      dtype = jnp.promote_types(dtype, leaf_dtype)
  return dtype


class Granularity:
  """A static description of the parameter groups that share a learning rate.

  Args:
    spec: ``"global"``, ``"leaf"``, ``"element"``, labels, or ``params -> labels``.

  Raises:
    ValueError: for an unknown string or ``None``.
    TypeError: labels that are not a pytree of strings.
  """

  def __init__(self, spec: GranularityLike = "global"):
    if isinstance(spec, Granularity):
      spec = spec.spec
    if isinstance(spec, str) and spec not in _NAMED:
      raise ValueError(
        f"Unknown granularity {spec!r}: pass 'global', 'leaf', 'element', a "
        "pytree of group labels shaped like the params, or a callable "
        "params -> labels (as for optax.multi_transform)."
      )
    if spec is None:
      raise ValueError("granularity=None: pass 'global', 'leaf', 'element' or labels.")
    if not (isinstance(spec, str) or callable(spec)):
      leaves = jax.tree.leaves(spec)
      if not leaves or not all(isinstance(x, str) for x in leaves):
        raise _validate.OptionTypeError(
          f"granularity labels must be a pytree of strings shaped like the params (or a "
          f"callable params -> labels), got {spec!r}; or pass 'global', 'leaf', 'element'."
        )
    self.spec = spec
    self.kind = spec if isinstance(spec, str) else "labels"

  def __repr__(self) -> str:
    return f"Granularity({self.spec!r})"

  # ---------------------------------------------------------------- labels --
  def labels(self, tree: Any) -> Any:
    """Per-leaf labels for ``tree`` (only for label granularity).

    Raises:
      ValueError: if the labels do not match the structure of ``tree``.
    """
    spec = self.spec
    if callable(spec):
      try:
        spec = spec(tree)
      except Exception as e:  # pylint: disable=broad-except
        raise ValueError(f"granularity: the callable {spec!r} failed on the params: {e}") from e
      Granularity(spec)  # a pytree of string labels, or an error that says so
    try:
      return jax.tree.map(lambda label, sub: jax.tree.map(lambda _: label, sub), spec, tree)
    except (ValueError, TypeError) as e:
      raise ValueError(
        "granularity: the labels do not match the params: pass a pytree of "
        "labels with the params' structure (or a prefix of it), or a callable "
        f"params -> such a pytree. Labels: {jax.tree.structure(spec)}; params: "
        f"{jax.tree.structure(tree)}."
      ) from e

  def label_names(self, tree: Any) -> list[str]:
    return sorted(set(jax.tree.leaves(self.labels(tree))), key=str)

  # ----------------------------------------------------------------- rates --
  def init_rates(self, params: Any, value: Any, dtype: Any = None) -> Any:
    """Rates initialised to ``value``: a scalar, pytree of scalars, or dict."""
    dtype = rate_dtype(params) if dtype is None else dtype
    fill = lambda shape=(): jnp.full(shape, value, dtype=dtype)
    if self.kind == "global":
      return fill()
    if self.kind == "leaf":
      return jax.tree.map(lambda _: fill(), params)
    if self.kind == "element":  # full_like: each rate keeps its parameter's sharding
      return optax.tree.full_like(params, value, dtype=dtype)
    return {name: fill() for name in self.label_names(params)}

  # ------------------------------------------------------------ reductions --
  def _reduce(self, tree: Any, leaf_op, combine) -> Any:
    """Apply ``leaf_op`` to each leaf, then ``combine`` within each group."""
    if self.kind == "element":
      return jax.tree.map(leaf_op, tree)
    if self.kind == "leaf":
      return jax.tree.map(lambda x: leaf_op(x, True), tree)
    per_leaf = [leaf_op(x, True) for x in jax.tree.leaves(tree)]
    if self.kind == "global":
      return combine(per_leaf)
    labels = jax.tree.leaves(self.labels(tree))
    return {
      name: combine([r for r, lab in zip(per_leaf, labels) if lab == name])
      for name in sorted(set(labels), key=str)
    }

  def sum(self, tree: Any, dtype: Any = None) -> Any:
    """Grouped sum of the elements of ``tree`` (elementwise for "element")."""
    dtype = rate_dtype(tree) if dtype is None else dtype

    def leaf_op(x, reduce=False):
      x = jnp.asarray(x).astype(dtype)
      return jnp.sum(x) if reduce else x

    return self._reduce(tree, leaf_op, lambda xs: sum(xs[1:], xs[0]))

  def max(self, tree: Any, dtype: Any = None) -> Any:
    """Grouped maximum of the elements of ``tree`` (−inf for a group of size 0)."""
    dtype = rate_dtype(tree) if dtype is None else dtype

    def leaf_op(x, reduce=False):
      x = jnp.asarray(x).astype(dtype)
      return jnp.max(x, initial=-jnp.inf) if reduce else x

    return self._reduce(tree, leaf_op, lambda xs: functools.reduce(jnp.maximum, xs[1:], xs[0]))

  def size(self, tree: Any) -> Any:
    """Number of elements per group, as Python ints in the rates' structure."""
    return self._reduce(tree, lambda x, reduce=False: int(jnp.size(x)) if reduce else 1, sum)

  def vdot(self, a: Any, b: Any, dtype: Any = None) -> Any:
    """Grouped inner products ⟨a, b⟩, accumulated in float32 or wider."""
    dtype = rate_dtype(a) if dtype is None else dtype
    prod = jax.tree.map(lambda x, y: x.astype(dtype) * y.astype(dtype), a, b)
    return self.sum(prod, dtype)

  def sq_norm(self, a: Any, dtype: Any = None) -> Any:
    """Grouped squared norms ‖a‖²."""
    return self.vdot(a, a, dtype)

  # ------------------------------------------------------------ broadcasts --
  def broadcast(self, rates: Any, like: Any) -> Any:
    """A pytree shaped like ``like`` holding each leaf's group rate.

    Scalar leaves, except for "element" (the rates themselves).
    """
    if self.kind == "global":
      return jax.tree.map(lambda _: rates, like)
    if self.kind in ("leaf", "element"):
      return rates
    return jax.tree.map(lambda label: rates[label], self.labels(like))

  def scale(self, rates: Any, tree: Any) -> Any:
    """``tree`` with each leaf multiplied by its group's rate, dtype preserved."""
    return jax.tree.map(lambda r, x: (r * x).astype(x.dtype), self.broadcast(rates, tree), tree)


def granularity_from(spec: GranularityLike) -> Granularity:
  """Validates ``spec`` and returns a :class:`Granularity`."""
  return spec if isinstance(spec, Granularity) else Granularity(spec)
