"""Issue 9: where adaptlr follows the papers and the authors' code, step by step (float64).

1. newton_lr's δ (Ravaut & Gorti §4.1, Eq. 11–12): added only where the second
   difference is exactly zero, so the paper's rule follows Eq. 10 (reference:
   _ref_newton.py).
2. TLR with momentum (Sec. 4 Eq. 10, App. D; the authors' NTLR): the
   displacement over the rate in both slots of Eq. 9 (reference: _ref_tlr.py).
3. hypergradient without a clamp (Baydin et al.'s SGD-HD): the rate may turn
   negative (reference: _ref_tlr.py).
4. vSGD's memory after the slow start: n₀, py-optim's τ = 2 or vsgd-bb.m's
   2 − vpart₀ (reference: _ref_vsgd.py).
5. vSGD-fd's rate vpart · h̄ / v̄_h (Schaul & LeCun 2013; py-optim ``vSGDfd``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _problems import REF, REF_LABELS, run_ref
from _ref_newton import newton_reference
from _ref_tlr import hypergradient_reference, tlr_reference
from _ref_vsgd import vsgd_reference

import adaptlr

_FD_PAPER = dict(
  derivatives="finite_difference", eps=1e-5, max_change=None, safeguard=False, line="this_batch"
)

# (id, optimizer, kwargs, reference, reference kwargs (None: the same), steps[, (rtol, atol)]).
# ε = 1e-5: the second difference 4ε²f″ ≈ 1e-9 carries rounding of 1e-16 |f| / 1e-9,
# so the two summation orders agree to ~1e-6 (δ = 1e-6 added to it was a 1e3× change).
CASES = [
  (
    "newton-paper-rule-eps-1e-5",
    adaptlr.newton_lr,
    dict(learning_rate=0.05, **_FD_PAPER),
    newton_reference,
    None,
    30,
    (1e-5, 1e-6),
  ),
  (
    "newton-paper-rule-eps-1e-5-leaf",
    adaptlr.newton_lr,
    dict(learning_rate=0.05, granularity="leaf", **_FD_PAPER),
    newton_reference,
    None,
    30,
    (1e-5, 1e-6),
  ),
  (
    "tlr-momentum-displacement",
    adaptlr.tlr,
    dict(learning_rate=0.01, momentum=0.5, inner_products="displacement"),
    tlr_reference,
    None,
    40,
  ),
  (
    "tlr-nesterov-displacement-leaf",
    adaptlr.tlr,
    dict(
      learning_rate=0.01,
      momentum=0.5,
      nesterov=True,
      inner_products="displacement",
      granularity="leaf",
    ),
    tlr_reference,
    None,
    40,
  ),
  (
    "tlr-momentum-displacement-window",
    adaptlr.tlr,
    dict(learning_rate=0.05, momentum=0.8, inner_products="displacement", accumulation_steps=3),
    tlr_reference,
    None,
    60,
  ),
  (
    "tlr-momentum-gradient",
    adaptlr.tlr,
    dict(learning_rate=0.01, momentum=0.5, inner_products="gradient"),
    tlr_reference,
    None,
    40,
  ),
  (
    "tlr-direction-trace-displacement",
    adaptlr.tlr,
    dict(learning_rate=0.01, direction=optax.trace(0.5), inner_products="displacement"),
    tlr_reference,
    dict(learning_rate=0.01, momentum=0.5, inner_products="displacement"),
    40,
  ),
  (
    "hypergradient-unclamped",
    adaptlr.hypergradient,
    dict(learning_rate=0.3, hyper_lr=0.03, min_learning_rate=None),
    hypergradient_reference,
    dict(learning_rate=0.3, hyper_lr=0.03, min_learning_rate=-np.inf),
    30,
  ),
  # safeguard=False: Baydin et al.'s rule exactly (the divergence brake fires here)
  (
    "hypergradient-negative-floor-leaf",
    adaptlr.hypergradient,
    dict(
      learning_rate=0.3, hyper_lr=0.03, min_learning_rate=-0.1, granularity="leaf", safeguard=False
    ),
    hypergradient_reference,
    dict(learning_rate=0.3, hyper_lr=0.03, min_learning_rate=-0.1, granularity="leaf"),
    30,
  ),
  (
    "vsgd-element-memory-2",
    adaptlr.vsgd,
    dict(init_samples=3, start_memory=2.0),
    vsgd_reference,
    None,
    40,
  ),
  (
    "vsgd-element-memory-adapted",
    adaptlr.vsgd,
    dict(init_samples=3, start_memory="adapted"),
    vsgd_reference,
    None,
    40,
  ),
  (
    "vsgd-leaf-memory-adapted",
    adaptlr.vsgd,
    dict(init_samples=3, start_memory="adapted", granularity="leaf"),
    vsgd_reference,
    None,
    40,
  ),
  (
    "vsgd-labels-memory-2",
    adaptlr.vsgd,
    dict(init_samples=4, start_memory=2.0, granularity=REF_LABELS),
    vsgd_reference,
    dict(init_samples=4, start_memory=2.0, granularity="labels"),
    40,
  ),
  (
    "vsgd-global-memory-adapted",
    adaptlr.vsgd,
    dict(init_samples=2, start_memory="adapted", granularity="global", slow_start=5.0),
    vsgd_reference,
    None,
    40,
  ),
  (
    "vsgd-fd-authors-rate",
    adaptlr.vsgd,
    dict(init_samples=3, curvature="finite_difference", curvature_variance=True, start_memory=2.0),
    vsgd_reference,
    None,
    40,
  ),
  (
    "vsgd-fd-authors-rate-leaf",
    adaptlr.vsgd,
    dict(
      init_samples=3, curvature="finite_difference", curvature_variance=True, granularity="leaf"
    ),
    vsgd_reference,
    None,
    40,
  ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_numpy_reference(case):
  _, make, kwargs, reference, ref_kwargs, steps, *tol = case
  rtol, atol = tol[0] if tol else (1e-9, 1e-12)
  with jax.enable_x64(True):
    traj, rates, _ = run_ref(make(**kwargs), steps)
  ref_traj, ref_rates = reference(REF, steps, **(ref_kwargs or kwargs))
  np.testing.assert_allclose(rates, ref_rates, rtol=rtol, atol=atol)
  np.testing.assert_allclose(traj, ref_traj, rtol=rtol, atol=atol)
  assert np.ptp(ref_rates) > 0


# ------------------------------------------------------------------ 1. newton δ --
def _least_squares(d=8, n=32, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, d)) * np.geomspace(1, 10, d)
  b = rng.normal(size=n)
  return lambda w: 0.5 * jnp.mean((jnp.asarray(a) @ w - jnp.asarray(b)) ** 2)


def _newton_rates(loss, n, **kwargs):
  opt = adaptlr.newton_lr(1e-3, max_change=None, safeguard=False, line="this_batch", **kwargs)
  w = jnp.zeros(8)
  state = opt.init(w)
  step = jax.jit(lambda w, s: opt.update(jax.grad(loss)(w), s, w, value_fn=loss))
  rates = []
  for _ in range(n):
    u, state = step(w, state)
    w = optax.apply_updates(w, u)
    rates.append(float(optax.tree.get(state, "learning_rate")))
  return np.array(rates)


def test_paper_rule_follows_newton_on_least_squares():
  """The issue's case: 8-D least squares, float64. The five-point rule with ε = 1e-5
  (denominator 4ε²f″ ≈ 1e-9, below δ = 1e-6) is Newton's step: it matches the exact
  derivatives (Eq. 10 with f′, f″), where adding δ to every |den| < δ was off by up to 99%."""
  with jax.enable_x64(True):
    loss = _least_squares()
    fd = _newton_rates(loss, 20, derivatives="finite_difference", eps=1e-5)
    exact = _newton_rates(loss, 20, derivatives="autodiff")
  np.testing.assert_allclose(fd, exact, rtol=1e-4)


def test_delta_is_added_where_the_second_difference_is_exactly_zero():
  """A linear line, f(η) = L(w − η g) with L = Σ w: the second difference of the five
  probes is exactly 0 (binary fractions), so δ is added (Eq. 11–12) and
  η_{k+1} = η − 2ε (f(η+ε) − f(η−ε)) / δ = η + 4ε² ‖g‖² / δ."""
  with jax.enable_x64(True):
    loss = lambda w: jnp.sum(w)
    eta, eps, delta = 0.5, 0.25, 1e-6
    opt = adaptlr.newton_lr(
      eta,
      derivatives="finite_difference",
      eps=eps,
      max_change=None,
      safeguard=False,
      delta=delta,
      line="this_batch",
    )
    w = jnp.zeros(4)
    _, state = opt.update(jax.grad(loss)(w), opt.init(w), w, value_fn=loss)
    assert float(optax.tree.get(state, "learning_rate")) == eta + 4 * eps**2 * 4 / delta


# ------------------------------------------------------------- 2. TLR momentum --
def _tlr_run(opt, n=30):
  with jax.enable_x64(True):
    traj, rates, _ = run_ref(opt, n)
  return traj, rates


def test_momentum_is_the_trace_direction():
  """tlr(momentum=m, nesterov=...) is tlr(direction=optax.trace(m, nesterov=...))."""
  for nesterov in (False, True):
    a = _tlr_run(adaptlr.tlr(0.01, momentum=0.7, nesterov=nesterov))
    b = _tlr_run(adaptlr.tlr(0.01, direction=optax.trace(0.7, nesterov=nesterov)))
    np.testing.assert_array_equal(a[1], b[1])


def test_the_two_forms_agree_without_momentum_and_differ_with_it():
  sgd = [_tlr_run(adaptlr.tlr(0.01, inner_products=f)) for f in ("displacement", "gradient")]
  np.testing.assert_array_equal(sgd[0][1], sgd[1][1])
  mom = [
    _tlr_run(adaptlr.tlr(0.01, momentum=0.8, inner_products=f))
    for f in ("displacement", "gradient")
  ]
  assert np.max(np.abs(mom[0][1] / mom[1][1] - 1)) > 1e-2


def test_tlr_momentum_errors():
  with pytest.raises(ValueError, match="not both"):
    adaptlr.tlr(momentum=0.9, direction=optax.trace(0.9))
  with pytest.raises(ValueError, match="nesterov"):
    adaptlr.tlr(nesterov=True)
  with pytest.raises(ValueError, match="momentum"):
    adaptlr.tlr(momentum=1.0)
  with pytest.raises(ValueError, match="inner_products"):
    adaptlr.tlr(inner_products="displacements")


# ------------------------------------------------------------ 3. hypergradient --
def test_unclamped_hypergradient_rate_goes_negative():
  """Baydin et al.'s rule has no clamp: with a large β the rate crosses zero."""
  with jax.enable_x64(True):
    _, rates, _ = run_ref(adaptlr.hypergradient(0.3, hyper_lr=0.03, min_learning_rate=None), 30)
    _, clamped, _ = run_ref(adaptlr.hypergradient(0.3, hyper_lr=0.03), 30)
  assert rates.min() < 0 <= clamped.min()


def test_hypergradient_min_learning_rate_must_be_a_number():
  adaptlr.hypergradient(min_learning_rate=-jnp.inf)
  with pytest.raises(ValueError, match="min_learning_rate"):
    adaptlr.hypergradient(min_learning_rate=float("nan"))
  with pytest.raises(ValueError, match="min_learning_rate"):
    adaptlr.hypergradient(min_learning_rate=1.0, max_learning_rate=0.1)


# --------------------------------------------------------------------- 4–5. vSGD --
def _tau_after_slow_start(start_memory, n0=3):
  with jax.enable_x64(True):
    _, _, state = run_ref(
      adaptlr.vsgd(init_samples=n0, start_memory=start_memory, granularity="global"), n0
    )
  return float(optax.tree.get(state, "tau")), state


def test_memory_after_slow_start():
  assert _tau_after_slow_start("init_samples")[0] == 3.0
  assert _tau_after_slow_start(2.0)[0] == 2.0
  tau, _ = _tau_after_slow_start("adapted")
  assert 1.0 <= tau <= 2.0 and tau != 2.0  # 2 − vpart₀, vpart₀ ∈ (0, 1]


def test_vsgd_bad_memory_and_variance_options():
  with pytest.raises(ValueError, match="start_memory"):
    adaptlr.vsgd(start_memory=1.0)  # τ = 1 is a fixed point of §4.2
  with pytest.raises(ValueError, match="start_memory"):
    adaptlr.vsgd(start_memory="n0")


def test_authors_fd_rate_is_below_the_mean_curvature_rate():
  """h̄ / v̄_h ≤ 1 / h̄ (E[h²] ≥ E[h]²): from the same statistics (the first step after
  the slow start) the authors' vSGD-fd rate is the smaller one."""
  kw = dict(init_samples=3, curvature="finite_difference", start_memory=2.0)
  with jax.enable_x64(True):
    ref = run_ref(adaptlr.vsgd(**kw), 4)[1][3]
    var = run_ref(adaptlr.vsgd(curvature_variance=True, **kw), 4)[1][3]
  assert np.all(var <= ref * (1 + 1e-12)) and np.any(var < ref * (1 - 1e-3))
