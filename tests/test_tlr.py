"""adaptlr.tlr: the rule's invariants, the safeguard, accumulation, real data."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _problems import digits_mlp_final_losses
from hypothesis import given, settings
from hypothesis import strategies as st

import adaptlr

RATES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def _rates_over_run(opt, grads):
  params = jnp.zeros_like(grads[0])
  state = opt.init(params)
  out = []
  for g in grads:
    _, state = opt.update(g, state, params)
    out.append(float(optax.tree.get(state, "learning_rate")))
  return np.array(out)


def test_first_step_and_zero_gradient_keep_the_rate():
  grads = [jnp.array([1.0, 2.0]), jnp.zeros(2), jnp.zeros(2), jnp.array([0.5, 0.5])]
  rates = _rates_over_run(adaptlr.tlr(0.1), grads)
  np.testing.assert_allclose(rates[:3], 0.1, rtol=1e-7)  # first step; then 0/0
  assert np.all(np.isfinite(rates))


@settings(max_examples=60, deadline=None)
@given(
  st.lists(st.lists(st.floats(-10, 10), min_size=3, max_size=3), min_size=2, max_size=8),
  st.floats(0.05, 2.0),
)
def test_paper_rule_stays_in_its_range(grads, bound):
  """Eq. 9 with SGD: every update multiplies α by a factor in (3/4, 1 + c]."""
  grads = [jnp.asarray(g, jnp.float32) for g in grads]
  rates = _rates_over_run(adaptlr.tlr(0.1, bound=bound, safeguard=False), grads)
  factors = rates[1:] / rates[:-1]
  assert np.all(factors > 0.75 - 1e-6)
  assert np.all(factors <= 1.0 + bound + 1e-5)


def test_rate_changes_only_at_window_ends():
  k = 4
  grads = [jnp.array([np.cos(0.3 * t), 1.0 + 0.1 * t]) for t in range(20)]
  rates = _rates_over_run(adaptlr.tlr(0.1, accumulation_steps=k), grads)
  changed = np.flatnonzero(np.diff(np.concatenate([[np.float32(0.1)], rates])) != 0)
  assert len(changed) > 0
  # The first update needs two window sums: it happens at step 2k - 1 at the earliest.
  assert changed.min() >= 2 * k - 1
  assert np.all((changed + 1) % k == 0)


@pytest.mark.slow  # training runs
def test_direction_never_drives_the_rate_to_zero():
  """With Adam's direction ⟨g_t, u_t⟩ can be negative; α must stay positive."""
  loss = lambda p: jnp.sum(2.0 * (p - 1.5) ** 2)
  opt = adaptlr.tlr(0.01, direction=optax.scale_by_adam())
  p = jnp.zeros(5)
  state = opt.init(p)
  rates = []
  for _ in range(300):
    u, state = opt.update(jax.grad(loss)(p), state, p)
    p = optax.apply_updates(p, u)
    rates.append(float(optax.tree.get(state, "learning_rate")))
  assert min(rates) > 1e-6
  assert float(loss(p)) < 1e-6


def _ill_conditioned_least_squares(n=64, d=8, cond=100.0, seed=0):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.normal(size=(n, d)))
  v, _ = np.linalg.qr(rng.normal(size=(d, d)))
  a = (q * np.sqrt(np.geomspace(1, cond, d) * n)) @ v.T
  b = a @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
  return a, b


@pytest.mark.slow  # training runs
def test_safeguard_rescues_the_paper_rule_full_batch():
  """The issue's failure case, float64: 8-D least squares, condition number 100.

  The paper's rule blows up from every initial rate 1e-4 … 1; the safeguarded
  default converges from all of them, below GD with step 1/L.
  """
  with jax.enable_x64(True):
    a, b = map(jnp.asarray, _ill_conditioned_least_squares())
    loss = lambda w: 0.5 * jnp.mean((a @ w - b) ** 2)
    fopt = float(loss(jnp.linalg.lstsq(a, b)[0]))
    lmax = float(jnp.linalg.eigvalsh(a.T @ a / a.shape[0]).max())

    def run(make, lr):
      opt = make(lr)

      def step(carry, _):
        w, s = carry
        u, s = opt.update(jax.grad(loss)(w), s, w)
        w = optax.apply_updates(w, u)
        return (w, s), loss(w) - fopt

      w0 = jnp.zeros(8)
      return jax.lax.scan(step, (w0, opt.init(w0)), None, length=100)[1]

    rates = jnp.asarray(RATES)
    paper = jax.jit(jax.vmap(lambda lr: run(lambda r: adaptlr.tlr(r, safeguard=False), lr)))(rates)
    guarded = jax.jit(jax.vmap(lambda lr: run(adaptlr.tlr, lr)))(rates)
    gd = run(lambda r: optax.sgd(1.0 / lmax), 0.0)
  peaks = np.nanmax(np.where(np.isfinite(paper), paper, np.inf), axis=1)
  assert np.all(peaks > 1e10), peaks
  final = np.asarray(guarded[:, -1])
  assert np.all(np.isfinite(guarded))
  assert np.all(final < float(gd[-1])), (final, float(gd[-1]))


def _digits():
  from sklearn.datasets import load_digits

  x, y = load_digits(return_X_y=True)
  return jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y)


def _softmax_loss(p, x, y):
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y))


@pytest.mark.slow
def test_real_data_digits_matches_best_tuned_sgd():
  """Contract item 11: sklearn digits (1797 × 64), softmax regression, batch 64, 40 epochs.

  tlr (accumulation_steps = steps_per_epoch / 3, per the paper) from every
  initial rate 1e-4 … 1 reaches a final training loss within 10% of the best
  fixed-rate SGD of the same grid, in the same number of steps (measured:
  TLR 0.064–0.080 for the five rates, best SGD 0.087 at rate 1; SGD at 0.1 is
  3× worse and below it diverges from nothing but slowness).
  """
  x, y = _digits()
  n, batch, epochs = x.shape[0], 64, 40
  spe = n // batch
  p0 = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
  keys = jax.random.split(jax.random.key(1), epochs)
  idx = jnp.concatenate([jax.random.permutation(k, n)[: spe * batch] for k in keys])
  idx = idx.reshape(-1, batch)

  def run(opt):
    def step(carry, ib):
      p, s = carry
      u, s = opt.update(jax.grad(_softmax_loss)(p, x[ib], y[ib]), s, p)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(step, (p0, opt.init(p0)), idx)
    return _softmax_loss(p, x, y)

  rates = jnp.asarray(RATES, jnp.float32)
  sgd = np.asarray(jax.jit(jax.vmap(lambda lr: run(optax.sgd(lr))))(rates))
  tlr = np.asarray(
    jax.jit(jax.vmap(lambda lr: run(adaptlr.tlr(lr, accumulation_steps=spe // 3))))(rates)
  )
  best = np.nanmin(np.where(np.isfinite(sgd), sgd, np.nan))
  print("digits final train loss: SGD", sgd, "TLR", tlr)
  assert np.all(tlr <= 1.1 * best), (tlr, best)
  # Fixed-rate SGD is not tuning-free on the same grid.
  assert np.sum(sgd <= 1.1 * best) <= 2


@pytest.mark.slow  # training runs
def test_safeguard_sees_divergence_through_even_windows():
  """Summed over an even window, an oscillation g, −r·g, r²·g, … gives window sums
  of one sign: the rule reads "speed up" while the iterates blow up (seen on
  DeepOBS quadratic_deep with accumulation_steps=2). Full-batch least squares,
  condition number 100, windows of 2 and 4 steps."""
  with jax.enable_x64(True):
    a, b = map(jnp.asarray, _ill_conditioned_least_squares(seed=3))
    loss = lambda w: 0.5 * jnp.mean((a @ w - b) ** 2)
    fopt = float(loss(jnp.linalg.lstsq(a, b)[0]))

    def run(k, safeguard, lr):
      opt = adaptlr.tlr(lr, accumulation_steps=k, safeguard=safeguard)

      def step(carry, _):
        w, s = carry
        u, s = opt.update(jax.grad(loss)(w), s, w)
        w = optax.apply_updates(w, u)
        return (w, s), loss(w) - fopt

      w0 = jnp.zeros(8)
      return jax.lax.scan(step, (w0, opt.init(w0)), None, length=300)[1]

    rates = jnp.asarray([1e-3, 1e-2])
    for k in (2, 4):
      paper = jax.vmap(functools.partial(run, k, False))(rates)
      guarded = jax.vmap(functools.partial(run, k, True))(rates)
      assert np.all(np.nanmax(np.where(np.isfinite(paper), paper, np.inf), axis=1) > 1e6), k
      assert np.all(np.isfinite(guarded)) and np.all(guarded[:, -1] < 1e-2), (k, guarded[:, -1])


@pytest.mark.slow  # small-network training
def test_default_and_cold_start_on_a_small_network():
  """The default (the paper's fixed bound) and the opt-in cold start on a small
  MLP (sklearn digits, 15 epochs, windows of a third of an epoch), from α₀ = 1e-5,
  1e-3, 0.1, 1. Measured (jax 0.10): the default 0.75 / 0.066 / 0.037 / 0.029 (from
  1e-5 it has barely started); the cold start 2.55 / 0.037 / 1.36 / 0.029: faster from
  1e-3, but from 1e-5 and 0.1 it doubles the rate past the stable one and the network
  dies (an earlier jax measured 0.072 from 1e-5: the doubling is that sensitive) — as
  it diverges on the networks profile's LM, why it is not the default."""
  rates = (1e-5, 1e-3, 0.1, 1.0)
  default = digits_mlp_final_losses(lambda lr, t: adaptlr.tlr(lr, accumulation_steps=9), rates)
  cold = digits_mlp_final_losses(
    lambda lr, t: adaptlr.tlr(lr, accumulation_steps=9, max_bound=1.0), rates
  )
  assert np.all(default[1:] < 0.1), default
  assert default[0] > 0.5, default  # the paper's ×1.25 per window from 1e-5
  assert cold[1] < 0.75 * default[1], (cold, default)  # the cold start is faster from 1e-3
  assert np.max(cold) > 10 * np.max(default[1:]), (cold, default)  # but kills the network
  assert cold[3] == pytest.approx(default[3], rel=1e-3)  # nothing to start from 1
