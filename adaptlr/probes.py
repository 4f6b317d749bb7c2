"""The loss along a line, shared by the methods that probe it.

For params ``w``, a search direction ``u`` and a loss ``L`` (``value_fn`` with its
forwarded kwargs), the line is

    f(η) = L(w − η u),      f′(η) = −⟨∇L(w − η u), u⟩,      f″(η) = uᵀ ∇²L(w − η u) u.

:func:`line_derivatives` gives f, f′ (and f″) exactly by forward-mode autodiff;
:func:`line_probes` evaluates f at η + k ε (Ravaut & Gorti's five probes) in one
batched call (:func:`evaluate_batched`). With one rate per parameter group the
loss is F(r) = L(w − Σ_j r_j u_j): :func:`group_line_probes` and
:func:`group_line_derivatives` move one group's rate at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree


def point_on_line(params: Any, direction: Any, eta: Any) -> Any:
  """w − η u, each leaf kept in its params dtype."""
  return jax.tree.map(lambda w, u: (w - eta * u).astype(w.dtype), params, direction)


def line_fn(value_fn: Callable[[Any], jax.Array], params: Any, direction: Any):
  """f(η) = L(w − η u) as a function of a scalar η."""
  return lambda eta: value_fn(point_on_line(params, direction, eta))


def line_derivatives(
  value_fn: Callable[[Any], jax.Array], params: Any, direction: Any, eta: Any, order: int = 2
) -> tuple[jax.Array, ...]:
  """(f(η), f′(η)) for ``order=1``, (f(η), f′(η), f″(η)) for ``order=2``.

  Exact, by forward-mode autodiff: ``order=1`` is one ``jax.jvp`` (about one
  forward pass with tangents, no step ε); ``order=2`` nests two.

  Example:
    >>> import jax.numpy as jnp
    >>> from adaptlr import probes
    >>> loss = lambda w: jnp.sum(w ** 2)          # f(η) = (1 − η)² ‖w‖² along u = w
    >>> w = jnp.array([1.0, 2.0])
    >>> [round(float(v), 4) for v in probes.line_derivatives(loss, w, w, 0.5)]
    [1.25, -5.0, 10.0]
  """
  if order not in (1, 2):
    raise ValueError(f"order must be 1 or 2, got {order!r}.")
  f = line_fn(value_fn, params, direction)
  eta = jnp.asarray(eta)
  one = jnp.ones_like(eta)
  first = lambda e: jax.jvp(f, (e,), (one,))
  if order == 1:
    value, slope = first(eta)
    return value, slope
  (value, slope), (_, curvature) = jax.jvp(first, (eta,), (one,))
  return value, slope, curvature


# ------------------------------------------------------------ batched probes --
PROBE_MODES = ("vmap", "map", "unroll")
FIVE_POINT = (-2, -1, 0, 1, 2)


def evaluate_batched(
  fn: Callable[[Any], Any], xs: Any, *, mode: str = "vmap", batch_size: int | None = None
) -> Any:
  """``fn`` at every slice of ``xs`` along its leading axis, stacked.

  Args:
    fn: a function of one slice of ``xs``.
    xs: a pytree whose leaves share a leading (batch) axis.
    mode: ``"vmap"``: one batched call, near one evaluation's cost on GPU/TPU,
      one params copy per slice; ``"map"``: a ``jax.lax.map`` loop, for models too
      large to hold several copies; ``"unroll"``: separate calls in one graph,
      faster than a vmapped matmul on XLA:CPU.
    batch_size: with ``mode="map"``, slices per loop iteration; ``None``: one.

  Returns:
    ``fn``'s outputs stacked along a new leading axis.
  """
  if mode == "vmap":
    return jax.vmap(fn)(xs)
  if mode == "map":
    return jax.lax.map(fn, xs, batch_size=batch_size)
  if mode == "unroll":
    n = jax.tree.leaves(xs)[0].shape[0]
    outs = [fn(jax.tree.map(lambda x, i=i: x[i], xs)) for i in range(n)]
    return jax.tree.map(lambda *o: jnp.stack(o), *outs)
  raise ValueError(f"mode must be one of {PROBE_MODES}, got {mode!r}.")


def line_probes(
  value_fn: Callable[[Any], jax.Array],
  params: Any,
  direction: Any,
  eta: Any,
  eps: Any,
  offsets: Sequence[float] = FIVE_POINT,
  *,
  mode: str = "vmap",
  batch_size: int | None = None,
) -> jax.Array:
  """f(η + k ε) = L(w − (η + k ε) u) for every k in ``offsets``, batched.

  The default offsets (−2, −1, 0, 1, 2) are Ravaut & Gorti's stencil (Eq. 6–10).

  Args:
    value_fn: params -> scalar loss.
    params: the point w the line starts from.
    direction: u, shaped like ``params``.
    eta: the scalar rate η at the stencil's centre.
    eps: the scalar step ε.
    offsets: the multiples k of ε.
    mode, batch_size: as :func:`evaluate_batched`.

  Returns:
    The losses, shape ``(len(offsets),)``, in float32 (or ``eta``'s wider dtype).
  """
  eta = jnp.asarray(eta)
  dtype = jnp.promote_types(eta.dtype, jnp.float32)
  etas = eta.astype(dtype) + jnp.asarray(offsets, dtype) * jnp.asarray(eps, dtype)
  f = line_fn(value_fn, params, direction)
  values = evaluate_batched(f, etas, mode=mode, batch_size=batch_size)
  return values.astype(jnp.promote_types(values.dtype, dtype))


# ----------------------------------------------- one line per parameter group --
def point_on_lines(params: Any, direction: Any, leaf_rates: Any) -> Any:
  """w − r u with one rate per leaf (``leaf_rates`` shaped like ``params``)."""
  return jax.tree.map(lambda w, r, u: (w - r * u).astype(w.dtype), params, leaf_rates, direction)


def _group_line_fn(value_fn, params, direction, rates, broadcast):
  """F(r) = L(w − r_j u_j) as a function of the flat vector r of group rates.

  Returns ``(F, r0, unravel)``: F of a flat vector, r0 the flat current ``rates``
  and ``unravel`` back to their structure. ``broadcast`` is ``Granularity.broadcast``.
  """
  r0, unravel = ravel_pytree(rates)

  def fn(r):
    return value_fn(point_on_lines(params, direction, broadcast(unravel(r), params)))

  return fn, r0, unravel


def group_line_probes(
  value_fn: Callable[[Any], jax.Array],
  params: Any,
  direction: Any,
  rates: Any,
  eps: Any,
  broadcast: Callable[[Any, Any], Any],
  offsets: Sequence[float] = FIVE_POINT,
  *,
  mode: str = "vmap",
  batch_size: int | None = None,
) -> jax.Array:
  """F(r + k ε_j e_j) for every group j and offset k, in one batched call.

  Row j is :func:`line_probes` along group j's own line (the other rates fixed);
  the shared centre makes ``G·(K−1) + 1`` evaluations for G groups, K offsets.

  Args:
    value_fn, params, direction: as :func:`line_probes`.
    rates: the current rates (pytree).
    eps: ε per group (the rates' structure) or one scalar.
    broadcast: ``Granularity.broadcast``.
    offsets, mode, batch_size: as :func:`line_probes`.

  Returns:
    Loss values, shape ``(G, len(offsets))``, rows in ``ravel_pytree`` order
    of ``rates``.
  """
  fn, r0, _ = _group_line_fn(value_fn, params, direction, rates, broadcast)
  dtype = jnp.promote_types(r0.dtype, jnp.float32)
  r0 = r0.astype(dtype)
  g = r0.shape[0]
  eps_flat = ravel_pytree(eps)[0].astype(dtype)
  eps_flat = jnp.broadcast_to(eps_flat, (g,)) if eps_flat.size == 1 else eps_flat
  nonzero = [k for k in offsets if k != 0]
  ks = jnp.asarray(nonzero, dtype)
  # points[j, m] = r0 + ks[m] · eps_j · e_j
  shifts = ks[None, :, None] * eps_flat[:, None, None] * jnp.eye(g, dtype=dtype)[:, None, :]
  points = (r0[None, None, :] + shifts).reshape(g * len(nonzero), g)
  points = jnp.concatenate([r0[None, :], points], axis=0)
  values = evaluate_batched(fn, points, mode=mode, batch_size=batch_size)
  values = values.astype(jnp.promote_types(values.dtype, dtype))
  centre, moved = values[0], values[1:].reshape(g, len(nonzero))
  cols, m = [], 0
  for k in offsets:
    if k == 0:
      cols.append(jnp.broadcast_to(centre, (g,)))
    else:
      cols.append(moved[:, m])
      m += 1
  return jnp.stack(cols, axis=1)


def group_line_derivatives(
  value_fn: Callable[[Any], jax.Array],
  params: Any,
  direction: Any,
  rates: Any,
  broadcast: Callable[[Any, Any], Any],
  *,
  mode: str = "vmap",
  batch_size: int | None = None,
) -> tuple[jax.Array, Any, Any]:
  """F, ∂F/∂r_j and ∂²F/∂r_j² for every group j, exact (nested ``jax.jvp``).

  One nested jvp per group along the one-hot tangent e_j, batched as
  :func:`evaluate_batched`. Returns ``(value, slopes, curvatures)``: the scalar
  F(r) and two pytrees with the rates' structure.
  """
  fn, r0, unravel = _group_line_fn(value_fn, params, direction, rates, broadcast)
  g = r0.shape[0]

  def along(tangent):
    first = lambda r: jax.jvp(fn, (r,), (tangent,))
    (value, slope), (_, curvature) = jax.jvp(first, (r0,), (tangent,))
    return value, slope, curvature

  values, slopes, curvatures = evaluate_batched(
    along, jnp.eye(g, dtype=r0.dtype), mode=mode, batch_size=batch_size
  )
  dtype = jnp.promote_types(r0.dtype, jnp.float32)
  cast = lambda x: x.astype(jnp.promote_types(x.dtype, dtype))
  return cast(values[0]), unravel(cast(slopes)), unravel(cast(curvatures))
