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
# # Probes: the loss along the step, by five batched evaluations or by autodiff
#
# `adaptlr.newton_lr` (Ravaut & Gorti) takes a Newton step on the learning rate of the *line*
# f(η) = L(w − η u): η ← η − f′(η)/f″(η). The paper gets f′ and f″ from five loss values,
# f(η + kε) for k = −2 … 2 (Eq. 6–10):
#
# f′(η) ≈ (f(η+ε) − f(η−ε)) / 2ε,   f″(η) ≈ (f(η+2ε) + f(η−2ε) − 2 f(η)) / 4ε²,
#
# with ε = 10⁻⁵ (§6.1). adaptlr evaluates the five probes in **one batched call** (`jax.vmap` over the
# five rates; `lax.map` or an unrolled loop for models too large to hold five copies) and also offers the
# exact derivatives by nested forward-mode autodiff (`jax.jvp` twice, no ε). This notebook
#
# 1. compares the probes with autodiff, in float32 and float64, over ε;
# 2. shows why ε = 10⁻⁵ fails in float32 (and what adaptlr does instead);
# 3. measures what the probes cost;
# 4. trains with `newton_lr` on Boston Housing (the paper's §4.2.1) with the paper's ε and with adaptlr's
#    defaults.

# %%
import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from _shared import MLP, SMALL, cross_entropy, positive
from flax import nnx

import adaptlr
import adaptlr.flax
from adaptlr import probes as _probes

jax.config.update("jax_enable_x64", True)   # for the float64 references; everything else is explicit

F32, F64 = jnp.float32, jnp.float64
REPS = 5 if SMALL else 50
STEPS = 60 if SMALL else 200

# %% [markdown]
# ## A line through a real loss
#
# An NNX MLP on scikit-learn's digits, a few SGD steps in, with the step direction u = the gradient. Its
# parameters are float64, and `adaptlr.flax.nnx_value_fn` turns the model into `value_fn(params, x, y)`:
# the same function evaluates in float32 when given float32 parameters and data.

# %%
from sklearn.datasets import load_digits

digits = load_digits()
Xd = (digits.data / 16.0 - 0.3) / 0.4
yd = digits.target

model = MLP(64, 64, activation=nnx.tanh, param_dtype=F64, rngs=nnx.Rngs(0))
value_fn = adaptlr.flax.nnx_value_fn(model, cross_entropy)
w64 = nnx.as_pure(nnx.state(model, nnx.Param))
x64, y = jnp.asarray(Xd, F64), jnp.asarray(yd)
for _ in range(10):                                     # a few SGD steps: a typical point
  w64 = jax.tree.map(lambda w, g: w - 0.5 * g, w64, jax.grad(value_fn)(w64, x64, y))
u64 = jax.grad(value_fn)(w64, x64, y)
w32, u32, x32 = jax.tree.map(lambda a: a.astype(F32), (w64, u64, x64))
eta32, eta64 = jnp.asarray(0.5, F32), jnp.asarray(0.5, F64)   # the rate, in the params' dtype as in newton_lr



def f64(w):
  return value_fn(w, x64, y)


def f32(w):
  return value_fn(w, x32, y)


ref = _probes.line_derivatives(f64, w64, u64, eta64, order=2)      # exact f, f′, f″ (float64 autodiff)
ad32 = _probes.line_derivatives(f32, w32, u32, eta32, order=2)     # the same in float32
print("          f(η)          f′(η)          f″(η)")
print("f64 AD ", "  ".join(f"{float(v):+.8e}" for v in ref))
print("f32 AD ", "  ".join(f"{float(v):+.8e}" for v in ad32))


# %% [markdown]
# ## Five probes in one batched call, against autodiff, over ε
#
# `_probes.line_probes(value_fn, w, u, η, ε)` returns f(η + kε), k = −2 … 2, from one `jax.vmap`-ed
# evaluation. The finite differences converge to the autodiff values as ε shrinks — until the rounding
# of f takes over.

# %%
def fd_derivatives(f, w, u, eta, eps):
  fm2, fm1, f0, fp1, fp2 = _probes.line_probes(f, w, u, eta, eps)
  return (fp1 - fm1) / (2 * eps), (fp2 + fm2 - 2 * f0) / (4 * eps ** 2)


def fd_over_eps(f, w, u, eta):  # one compiled function of ε per line
  return jax.jit(lambda e: fd_derivatives(f, w, u, eta, e))


epsilons = np.logspace(-8, -0.5, 31)
errors = {}
for name, f, w, u, eta in (("float32", f32, w32, u32, eta32), ("float64", f64, w64, u64, eta64)):
  fd = fd_over_eps(f, w, u, eta)
  d1, d2 = zip(*[fd(jnp.asarray(e, eta.dtype)) for e in epsilons], strict=True)
  errors[name] = (np.abs(np.asarray(d1) / float(ref[1]) - 1), np.abs(np.asarray(d2) / float(ref[2]) - 1))

fig, ax = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
for k, title in enumerate(("f′ (first derivative)", "f″ (second derivative)")):
  for name, ls in (("float32", "-"), ("float64", "--")):
    ax[k].loglog(epsilons, np.maximum(errors[name][k], 1e-16), ls, marker=".", label=name)
  ax[k].axvline(1e-5, color="red", lw=1, label="ε = 1e-5 (the paper)")
  ax[k].axvline(0.25 * float(eta32), color="green", lw=1, label="ε = η/4 (adaptlr's default)")
  ax[k].set(xlabel="ε", title=f"relative error of {title}")
ax[0].set_ylabel("|finite difference / autodiff − 1|")
ax[1].legend(fontsize=8)
fig.tight_layout()

i = np.argmin(np.abs(epsilons - 1e-5))
print(f"at ε = {epsilons[i]:.1e}: float32 error of f′ {errors['float32'][0][i]:.1e}, "
      f"of f″ {errors['float32'][1][i]:.1e};  float64: {errors['float64'][0][i]:.1e}, {errors['float64'][1][i]:.1e}")

# %% [markdown]
# ## Why ε = 10⁻⁵ fails in float32
#
# The second difference f(η+2ε) + f(η−2ε) − 2f(η) is about 4ε² f″ — here 4·10⁻¹⁰ · f″ — while each
# loss value carries a float32 rounding error of about 6·10⁻⁸ |f| (half a unit in the last place, more
# after summing over a batch). The signal is thousands of times smaller than the noise: the probes
# differ by a few dozen units in the last place (that is the slope, still usable), but their second
# difference — all that f″ is made of — is 0 or a few ulps of either sign. Newton's step
# f′/f″ then jumps by orders of magnitude or points uphill — the paper's "sudden and extreme amplitude
# variations that we cannot really explain" (§4.2.1). In float64 the rounding is 10⁻¹⁶ and ε = 10⁻⁵
# works, which is why the rule looks fine in a float64 reference implementation.

# %%
eps = jnp.asarray(1e-5, F32)
probes = np.asarray(_probes.line_probes(f32, w32, u32, eta32, eps), np.float32)
ulp = np.spacing(probes[2])
print(f"float32 probes f(η + kε), η = {float(eta32)}, ε = 1e-5:")
for k, v in zip(range(-2, 3), probes, strict=True):
  print(f"  k = {k:+d}: {v:.9g}   ({(v - probes[2]) / ulp:+.0f} ulp from f(η))")
second = float(probes[4]) + float(probes[0]) - 2 * float(probes[2])
print(f"second difference: {second:+.3e}  vs  4ε²f″ = {4e-10 * float(ref[2]):+.3e}  (one ulp of f: {ulp:.1e})")
d1, d2 = fd_derivatives(f32, w32, u32, eta32, eps)
newton = f"{float(d1) / float(d2):+.3g}" if float(d2) else "undefined (f″ = 0: Eq. 11 adds δ = 1e-6 to it)"
print(f"Newton step f′/f″ from these probes: {newton};   exact: {float(ref[1] / ref[2]):+.3g}")


# %% [markdown]
# adaptlr's `newton_lr` therefore defaults to **exact derivatives by autodiff** (`derivatives="autodiff"`),
# and its finite-difference mode uses a step **relative to the rate**, ε = η/4 (`relative_eps=0.25`): the
# stencil then spans changes of the loss as large as the step itself makes, far above rounding, and on a
# quadratic line (least squares, or any loss near a minimum) the five-point Newton step is exact for any
# ε. `eps=1e-5` reproduces the paper.
#
# ## What the probes cost
#
# One `newton_lr` update on the MLP (digits, full batch), jitted, against a plain SGD step: the five
# probes batched with `jax.vmap` (one call; on an accelerator about the cost of one forward pass),
# sequentially with `lax.map` (one parameter copy at a time), unrolled (separate calls in one graph), and
# exact derivatives by nested `jax.jvp`.

# %%
def timed_step(opt, reps=REPS):
  state = opt.init(w32)

  @jax.jit
  def step(w, state):
    v, g = jax.value_and_grad(f32)(w)
    updates, state = opt.update(g, state, w, value=v, value_fn=f32)
    return optax.apply_updates(w, updates), state

  w, state = jax.block_until_ready(step(w32, state))          # compile
  t0 = time.perf_counter()
  for _ in range(reps):
    w, state = step(w, state)
  jax.block_until_ready(w)
  return (time.perf_counter() - t0) / reps

variants = {
    "SGD (no probes)": optax.sgd(0.1),
    "newton_lr, 5 probes, vmap": adaptlr.newton_lr(0.1, derivatives="finite_difference"),
    "newton_lr, 5 probes, lax.map": adaptlr.newton_lr(0.1, derivatives="finite_difference", probe_mode="map"),
    "newton_lr, 5 probes, unrolled": adaptlr.newton_lr(0.1, derivatives="finite_difference", probe_mode="unroll"),
    "newton_lr, autodiff (jvp∘jvp)": adaptlr.newton_lr(0.1),
}
times = {name: timed_step(opt) for name, opt in variants.items()}
base = times["SGD (no probes)"]
print(f"device: {jax.devices()[0].platform}; {REPS} steps each")
for name, t in times.items():
  print(f"{name:32s} {1e3 * t:8.3f} ms/step  ({t / base:4.1f}× SGD)")

# %% [markdown]
# (On a CPU these timings are small-model numbers and noisy; the point is the ratio. A batched call pays
# off on accelerators, where five evaluations of a small model run in parallel.)
#
# ## Training with `newton_lr`: Boston Housing, full batch (Ravaut & Gorti §4.2.1)
#
# Linear regression on mlxtend's bundled Boston Housing data (506 houses, 13 standardized features),
# mean squared error, initial rate 10⁻² as in the paper. Along this line f is exactly quadratic, so the
# finite differences have no truncation error at all: everything that goes wrong is rounding.

# %%
from mlxtend.data import boston_housing_data

Xb, yb = boston_housing_data()
Xb = (Xb - Xb.mean(0)) / Xb.std(0)


def boston(dtype):
  x, t = jnp.asarray(Xb, dtype), jnp.asarray(yb, dtype)

  def loss(p):
    return jnp.mean((x @ p["w"] + p["b"] - t) ** 2)

  return loss, {"w": jnp.zeros(13, dtype), "b": jnp.zeros((), dtype)}


def train(opt, dtype, steps=STEPS):
  loss, params = boston(dtype)

  def step(carry, _):
    params, state = carry
    value, grad = jax.value_and_grad(loss)(params)
    updates, state = opt.update(grad, state, params, value=value, value_fn=loss)
    rate = optax.tree.get(state, "learning_rate", 0.1)
    return (optax.apply_updates(params, updates), state), (value, rate)

  run = jax.jit(lambda: jax.lax.scan(step, (params, opt.init(params)), None, steps)[1])
  return [np.asarray(a, np.float64) for a in run()]

paper = dict(derivatives="finite_difference", eps=1e-5, max_change=None, line="this_batch")
configs = {
    "paper (ε = 1e-5), float32": (adaptlr.newton_lr(1e-2, **paper), F32),
    "paper (ε = 1e-5), float64": (adaptlr.newton_lr(1e-2, **paper), F64),
    "paper rule, ε = η/4, float32": (adaptlr.newton_lr(1e-2, derivatives="finite_difference", max_change=None, line="this_batch"), F32),
    "adaptlr default (autodiff), float32": (adaptlr.newton_lr(1e-2), F32),
    "GD η = 0.1 (reference), float32": (optax.sgd(0.1), F32),
}
curves = {name: train(opt, dt) for name, (opt, dt) in configs.items()}

fig, ax = plt.subplots(1, 2, figsize=(13, 4))
for name, (loss, rate) in curves.items():
  ax[0].semilogy(np.where(np.isfinite(loss), loss, np.nan), label=name)
  ax[1].semilogy(positive(rate), label=name)
ax[0].set(xlabel="step", title="training loss (MSE)", ylim=(10, 1e6))
ax[1].set(xlabel="step", title="learning rate")
ax[0].legend(fontsize=8)
fig.tight_layout()
for name, (loss, rate) in curves.items():
  print(f"{name:38s} final loss {loss[-1]:10.4g}   largest rate {np.nanmax(rate):9.3g}")

# %% [markdown]
# With the paper's ε = 10⁻⁵ in float32 the rate is driven by rounding noise and the run diverges; the
# identical rule in float64 converges, and so does float32 with a stencil relative to the rate. The
# default (`derivatives="autodiff"`, rate changes bounded by ×2 per step) starts more slowly from 10⁻²
# and converges without oscillation.
