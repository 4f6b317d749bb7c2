"""Small test problems, each in JAX and in independent NumPy form.

* ``REF``: the reference problem every method's NumPy reading is checked on:
  params ``{"a": (3,), "b": (2, 2)}`` (7 scalars, two leaves), a smooth
  non-quadratic loss with per-element curvature, and a per-step ``shift``
  keyword (a stand-in for the minibatch) that the loss takes, so the
  ``value_fn`` kwarg forwarding is exercised too.
* parabola, Rosenbrock, and a mixed-shape pytree quadratic for convergence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

# ------------------------------------------------------------ reference problem --
_H = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([[0.5, 4.0], [1.5, 2.5]])}
_W0 = {"a": np.array([0.5, -1.0, 2.0]), "b": np.array([[1.0, 0.3], [-0.7, 0.2]])}
QUARTIC = 0.1


def ref_loss(params, shift=0.0):
  """JAX: Σ ½ h (w − s)² + 0.1 Σ (w − s)⁴."""
  return sum(
    jnp.sum(0.5 * h * (w - shift) ** 2 + QUARTIC * (w - shift) ** 4)
    for h, w in zip(jax.tree.leaves(_H), jax.tree.leaves(params))
  )


@dataclasses.dataclass(frozen=True)
class RefProblem:
  """The reference problem as flat NumPy float64 vectors (leaf order a, b)."""

  h: np.ndarray = dataclasses.field(
    default_factory=lambda: np.concatenate([_H["a"].ravel(), _H["b"].ravel()])
  )
  w0: np.ndarray = dataclasses.field(
    default_factory=lambda: np.concatenate([_W0["a"].ravel(), _W0["b"].ravel()])
  )
  leaf_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.array([0, 0, 0, 1, 1, 1, 1]))

  def shift(self, t: int) -> float:
    return 0.1 * np.sin(1.0 + t)

  def loss(self, w: np.ndarray, shift: float) -> float:
    d = w - shift
    return float(np.sum(0.5 * self.h * d**2 + QUARTIC * d**4))

  def grad(self, w: np.ndarray, shift: float) -> np.ndarray:
    d = w - shift
    return self.h * d + 4 * QUARTIC * d**3

  def hess_diag(self, w: np.ndarray, shift: float) -> np.ndarray:
    d = w - shift
    return self.h + 12 * QUARTIC * d**2

  def group_ids(self, granularity: str) -> np.ndarray:
    """Group index per scalar for "global", "leaf", "element" or "labels"."""
    if granularity == "global":
      return np.zeros(7, int)
    if granularity in ("leaf", "labels"):  # labels: {"a": "x", "b": "y"}
      return self.leaf_ids
    if granularity == "element":
      return np.arange(7)
    raise ValueError(granularity)


REF = RefProblem()
REF_LABELS = {"a": "x", "b": "y"}


def ref_params(dtype=jnp.float64):
  return jax.tree.map(lambda x: jnp.asarray(x, dtype), _W0)


def flat(tree: Any) -> np.ndarray:
  """Leaves concatenated (jax.tree.leaves order), as float64 NumPy."""
  return np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree)])


def run_ref(opt, steps: int, dtype=jnp.float64, params=None):
  """Runs ``opt`` on the reference problem; returns per-step flat params and rates.

  Every update gets the full set of extra args: ``value``, ``grad``,
  ``value_fn`` and the forwarded ``shift`` kwarg.
  """
  params = ref_params(dtype) if params is None else params
  state = opt.init(params)
  traj, rates = [], []

  @jax.jit
  def step(params, state, shift):
    value, grad = jax.value_and_grad(ref_loss)(params, shift)
    updates, state = opt.update(
      grad, state, params, value=value, grad=grad, value_fn=ref_loss, shift=shift
    )
    return optax.apply_updates(params, updates), state

  for t in range(steps):
    params, state = step(params, state, jnp.asarray(REF.shift(t), dtype))
    traj.append(flat(params))
    rates.append(flat(optax.tree.get(state, "learning_rate")))
  return np.array(traj), np.array(rates), state


def runtime_uphill() -> optax.GradientTransformation:
  """u = −g on params of fewer than 4 elements, u = g otherwise.

  A direction that points uphill at run time (as momentum or Adam can), for the
  tests of how the methods treat such a step. adaptlr rejects a direction that
  is uphill by construction (``optax.adam(lr)``, ``optax.scale(-1)``) by
  applying it once to a 4-element probe when the method is built; this one
  passes that probe.
  """
  return optax.stateless(lambda g, _: jax.tree.map(lambda x: -x if x.size < 4 else x, g))


# ---------------------------------------------------------- convergence problems --
def parabola(params):
  return jnp.sum(2.0 * (params - 1.5) ** 2)


def rosenbrock(params):
  x, y = params[0], params[1]
  return (1.0 - x) ** 2 + 100.0 * (y - x**2) ** 2


_MIXED_H = {
  "w": jnp.linspace(0.5, 3.0, 12).reshape(3, 4),
  "b": jnp.array([1.0, 2.0, 0.7, 1.3]),
  "s": jnp.array(1.7),
}


def mixed_quadratic(params):
  return sum(
    jnp.sum(0.5 * h * (p - 1.0) ** 2)
    for h, p in zip(jax.tree.leaves(_MIXED_H), jax.tree.leaves(params))
  )


CONVERGENCE = {
  "parabola": (parabola, lambda: jnp.zeros(5), 0.0),
  "rosenbrock": (rosenbrock, lambda: jnp.array([-1.2, 1.0]), 0.0),
  "mixed_pytree": (
    mixed_quadratic,
    lambda: {"w": jnp.zeros((3, 4)), "b": jnp.zeros(4), "s": jnp.zeros(())},
    0.0,
  ),
}


def scan_train(opt, loss: Callable[[Any], jax.Array], params: Any, steps: int):
  """A whole training run under ``jax.lax.scan``; returns (params, state, losses)."""
  state = opt.init(params)

  def step(carry, _):
    p, s = carry
    value, grad = jax.value_and_grad(loss)(p)
    u, s = opt.update(grad, s, p, value=value, grad=grad, value_fn=loss)
    p = optax.apply_updates(p, u)
    return (p, s), value

  (params, state), losses = jax.lax.scan(step, (params, state), None, length=steps)
  return params, state, losses


# ------------------------------------------------------------ small network --
def digits_mlp_final_losses(make, rates, epochs=15, init_scale=1 / 8):
  """sklearn digits (1797 × 64), MLP 64-64-10 ReLU, batch 64, ``epochs`` epochs (28
  steps each), one compiled run vmapped over the initial rates: final training loss
  per rate. ``make(rate, steps)`` builds the optimizer; the weights start N(0, init_scale²)
  (a small scale, as DeepOBS's truncated normal 0.03, gives tiny initial gradients)."""
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  x, y = jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y)
  n, batch = x.shape[0], 64
  spe = n // batch
  keys = jax.random.split(jax.random.key(1), epochs)
  idx = jnp.concatenate([jax.random.permutation(k, n)[: spe * batch] for k in keys])
  idx = idx.reshape(-1, batch)
  k1, k2 = jax.random.split(jax.random.key(0))
  p0 = {
    "w1": jax.random.normal(k1, (64, 64)) * init_scale,
    "b1": jnp.zeros(64),
    "w2": jax.random.normal(k2, (64, 10)) * init_scale,
    "b2": jnp.zeros(10),
  }

  def loss(p, x, y):
    h = jax.nn.relu(x @ p["w1"] + p["b1"])
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(h @ p["w2"] + p["b2"], y))

  def run(lr):
    opt = make(lr, idx.shape[0])

    def step(carry, ib):
      p, s = carry
      v, g = jax.value_and_grad(loss)(p, x[ib], y[ib])
      u, s = opt.update(g, s, p, value=v, value_fn=loss, x=x[ib], y=y[ib])
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), idx)
    return loss(p, x, y)

  return np.asarray(jax.jit(jax.vmap(run))(jnp.asarray(rates, jnp.float32)))
