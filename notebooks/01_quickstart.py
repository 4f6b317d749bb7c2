# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # adaptlr quick start: a Flax NNX model with a learning rate that trains itself
#
# `adaptlr.tlr` (Trainable Learning Rate, ICLR 2022 submission) treats the learning rate as one more
# parameter and updates it with a bounded Newton step built from consecutive gradients. Here it trains a
# small MLP on scikit-learn's bundled **digits** (8×8 images, no download) from initial rates spread over
# four decades, next to plain SGD with the same rates.
#
# * every adaptlr method is an `optax.GradientTransformationExtraArgs`: it goes into `optax.chain` and
#   `nnx.Optimizer` like any optax optimizer;
# * `adaptlr.flax.nnx_train_step` is a one-line NNX step that also passes the extra arguments
#   (`value`, `grad`, `value_fn`) the probing methods need;
# * the Linen version is at the end.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _shared import MLP, SMALL, accuracy, cross_entropy, smooth
from flax import nnx

import adaptlr
import adaptlr.flax

EPOCHS = 4 if SMALL else 30
BATCH = 64
RATES = [1e-3, 1e-1, 1.0] if SMALL else [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
print(f"jax {jax.__version__}, adaptlr {adaptlr.__version__}, SMALL={SMALL}")

# %% [markdown]
# ## Data and model
#
# 1,797 digits, 80 % for training; pixels scaled to [0, 1] and standardized with the training statistics.
# The model (`MLP`: one hidden layer of 128 units) and its loss (`cross_entropy`) come from `_shared.py`
# in this folder, which all the notebooks import.

# %%
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
y = digits.target.astype(np.int32)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0, stratify=y)
mu, sd = X_train.mean(0), X_train.std(0) + 0.1
X_train, X_test = (X_train - mu) / sd, (X_test - mu) / sd
STEPS_PER_EPOCH = len(X_train) // BATCH
print(X_train.shape, X_test.shape, "steps per epoch:", STEPS_PER_EPOCH)

loss_fn = cross_entropy  # mean softmax cross-entropy of model(x); MLP: 64 -> 128 (relu) -> 10


def new_model(seed=0):
  return MLP(64, 128, rngs=nnx.Rngs(seed))


# %% [markdown]
# ## The training loop
#
# `adaptlr.flax.nnx_train_step(optimizer, model, loss_fn, x=x, y=y)` computes the loss and the gradient,
# then calls `optimizer.update(model, grads, value=..., grad=..., value_fn=..., x=x, y=y)`. For an optimizer
# that needs none of the extra arguments (TLR, SGD) it is the usual step; for one that probes the loss
# (below) it is what makes it work. `adaptlr.flax.learning_rate(optimizer)` reads the current rate.

# %%
@nnx.jit
def train_step(model, optimizer, x, y):
  return adaptlr.flax.nnx_train_step(optimizer, model, loss_fn, x=x, y=y)


test_accuracy = nnx.jit(accuracy)


def current_rate(optimizer, default=np.nan):  # optax.sgd keeps no learning_rate: default
  return float(adaptlr.flax.learning_rate(optimizer, default=default))


def train(tx, seed=0, fixed_rate=np.nan):
  model = new_model(seed)
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  order = np.random.default_rng(seed)
  hist = {"loss": [], "lr": [], "acc": []}
  for _ in range(EPOCHS):
    perm = order.permutation(len(X_train))
    for i in range(STEPS_PER_EPOCH):
      idx = perm[i * BATCH:(i + 1) * BATCH]
      hist["loss"].append(float(train_step(model, optimizer, X_train[idx], y_train[idx])))
      hist["lr"].append(current_rate(optimizer, fixed_rate))
    hist["acc"].append(float(test_accuracy(model, X_test, y_test)))
  return {k: np.asarray(v) for k, v in hist.items()}


# %% [markdown]
# ## TLR in an optax chain
#
# On minibatches, consecutive gradients see different data, so TLR sums them over a window and updates
# the rate once per window (Sec. 4, Eq. 10); the paper's default window is a third of an epoch. Here TLR
# sits after a gradient clip in an `optax.chain`, the way it would in any optax pipeline.

# %%
def tlr(rate):
  return optax.chain(
      optax.clip_by_global_norm(5.0),
      adaptlr.tlr(learning_rate=rate, accumulation_steps=STEPS_PER_EPOCH // 3),
  )

t0 = time.perf_counter()
runs = {}
for rate in RATES:
  runs["tlr", rate] = train(tlr(rate))
  runs["sgd", rate] = train(optax.sgd(rate), fixed_rate=rate)
print(f"{2 * len(RATES)} runs of {EPOCHS} epochs in {time.perf_counter() - t0:.1f} s")


def tail(h):  # the mean training loss over the last epoch
  return np.mean(h["loss"][-STEPS_PER_EPOCH:])


print(f"{'initial rate':>12} | {'TLR loss':>9} {'acc':>6} {'final rate':>10} | {'SGD loss':>9} {'acc':>6}")
for rate in RATES:
  t, s = runs["tlr", rate], runs["sgd", rate]
  print(f"{rate:12.0e} | {tail(t):9.4f} {t['acc'][-1]:6.3f} {t['lr'][-1]:10.3g} | {tail(s):9.4f} {s['acc'][-1]:6.3f}")


# %%
fig, ax = plt.subplots(1, 3, figsize=(15, 4))
colors = plt.cm.viridis(np.linspace(0, 0.9, len(RATES)))
for c, rate in zip(colors, RATES, strict=True):
  for name, ls in (("tlr", "-"), ("sgd", ":")):
    h = runs[name, rate]
    label = f"{name} α0={rate:g}"
    ax[0].plot(smooth(h["loss"], STEPS_PER_EPOCH), ls, color=c, label=label)
    ax[1].plot(h["lr"], ls, color=c, label=label)
    ax[2].plot(np.arange(1, EPOCHS + 1), h["acc"], ls, color=c, label=label)
ax[0].set(yscale="log", xlabel="step", title="training loss (one-epoch moving average)")
ax[1].set(yscale="log", xlabel="step", title="learning rate")
ax[2].set(xlabel="epoch", title="test accuracy", ylim=(0.5, 1.0))
ax[2].legend(fontsize=7, ncol=2)
fig.tight_layout()

# %% [markdown]
# SGD (dotted) is only as good as its rate; TLR (solid) moves every initial rate towards a working one —
# the rate first grows by at most ×1.25 per window (the bound c = 1/4 of Eq. 9) and then decays
# once the windowed gradients start to disagree. Its remaining sensitivity is how many windows it
# takes to get there from a very small α₀.
#
# ## A method that probes the loss: `value_fn` in one line
#
# `adaptlr.hypergradient(lookahead=True)` (TLR's naive GD-TLR, Alg. 1) takes the slope of the loss at
# the point the step is about to reach, so it needs the loss as a function of the parameters that
# `nnx.Optimizer` hands to optax. The same `train_step` passes it; spelled out, the step is:
#
# ```python
# value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn)          # before the gradient: same dropout masks
# loss, grads = nnx.value_and_grad(loss_fn)(model, x, y)
# optimizer.update(model, grads, value=loss, value_fn=value_fn, x=x, y=y)
# ```

# %%
model = new_model()
optimizer = nnx.Optimizer(model, adaptlr.hypergradient(0.01, lookahead=True), wrt=nnx.Param)
x, y_ = X_train[:BATCH], y_train[:BATCH]
try:                        # a plain update has no value_fn: the method says what to pass
  optimizer.update(model, nnx.grad(loss_fn)(model, x, y_))
except ValueError as err:
  print("ValueError:", err)

hd = train(adaptlr.hypergradient(0.01, hyper_lr=1e-3, lookahead=True))
print(f"hypergradient (look-ahead): test accuracy {hd['acc'][-1]:.3f}, "
      f"rate 0.01 -> {hd['lr'][-1]:.3g}")

# %% [markdown]
# ## The same with Linen
#
# `TrainState.apply_gradients` does not forward extra arguments; `adaptlr.flax.apply_gradients(state,
# grads, **extra_args)` is the same step with them, and `adaptlr.flax.linen_train_step` also computes the
# loss and gradient. A Linen loss is already a function of the parameters, so it is its own `value_fn`.

# %%
import flax.linen as nn
from flax.training.train_state import TrainState


class LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(10)(nn.relu(nn.Dense(128)(x)))


linen_model = LinenMLP()
state = TrainState.create(
    apply_fn=linen_model.apply,
    params=linen_model.init(jax.random.key(0), X_train[:1])["params"],
    tx=adaptlr.hypergradient(0.01, lookahead=True))


def linen_loss(params, x, y):
  logits = linen_model.apply({"params": params}, x)
  return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@jax.jit
def linen_step(state, x, y):
  return adaptlr.flax.linen_train_step(state, linen_loss, x=x, y=y)


order = np.random.default_rng(0)
for _ in range(min(EPOCHS, 5)):
  perm = order.permutation(len(X_train))
  for i in range(STEPS_PER_EPOCH):
    idx = perm[i * BATCH:(i + 1) * BATCH]
    state, loss = linen_step(state, X_train[idx], y_train[idx])
acc = jnp.mean(jnp.argmax(linen_model.apply({"params": state.params}, X_test), -1) == y_test)
print(f"Linen: {int(state.step)} steps, loss {float(loss):.4f}, test accuracy {float(acc):.3f}, "
      f"rate {float(adaptlr.flax.learning_rate(state)):.3g}")
