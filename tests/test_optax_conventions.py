"""Optax idioms and bad input (issue 10, items 5 and 7–13), for every registered method.

Each test names the item it covers. Methods come from ``adaptlr.registry``;
the small quadratic and its NumPy gradient are written out here.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import adaptlr

METHODS = adaptlr.registry.METHODS
NAMES = sorted(METHODS)
_H = {"w": jnp.array([1.0, 2.0, 3.0]), "b": jnp.array([0.5, 4.0])}
_P0 = {"w": jnp.array([1.0, -1.0, 2.0]), "b": jnp.array([0.5, -0.3])}


def loss(params):
  return sum(jnp.sum(0.5 * _H[k] * params[k] ** 2) for k in params)


def _make(name, **kwargs):
  spec = METHODS[name]
  if name == "vsgd":
    kwargs.setdefault("init_samples", 2)
  return spec.optimizer(**kwargs)


def _kwargs(name, params, value_fn=loss):
  """The extra args a method needs (value and value_fn from the loss)."""
  return {"value": value_fn(params), "value_fn": value_fn}


def _close(a, b, **kwargs):
  """Leaf by leaf ``assert_allclose`` of two pytrees (or lists of leaves)."""
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **kwargs)


def _run(opt, params, steps, value_fn=loss, **extra):
  state = opt.init(params)
  traj = []
  for _ in range(steps):
    grads = jax.grad(value_fn)(params)
    updates, state = opt.update(grads, state, params, **_kwargs(None, params, value_fn), **extra)
    traj.append(updates)
    params = optax.apply_updates(params, updates)
  return params, state, traj


# ------------------------------------------------------------------ item 5 --
@pytest.mark.parametrize("name", NAMES)
def test_inject_hyperparams_without_static_args(name):
  """Item 5: the plain idiom with jit(init), and the learned rate read directly."""
  opt = optax.inject_hyperparams(METHODS[name].optimizer)(learning_rate=0.1)
  plain = METHODS[name].optimizer(learning_rate=0.1)
  params = _P0
  state = jax.jit(opt.init)(params)
  pstate = plain.init(params)
  step = jax.jit(lambda g, s, p, v: opt.update(g, s, p, value=v, value_fn=loss))
  pstep = jax.jit(lambda g, s, p, v: plain.update(g, s, p, value=v, value_fn=loss))
  p, q = params, params
  for _ in range(3):
    u, state = step(jax.grad(loss)(p), state, p, loss(p))
    v, pstate = pstep(jax.grad(loss)(q), pstate, q, loss(q))
    p, q = optax.apply_updates(p, u), optax.apply_updates(q, v)
  _close(
    adaptlr.learning_rate(state),
    jax.tree.leaves(optax.tree.get(pstate, "learning_rate")),
    rtol=1e-6,
  )
  # The helper finds the method's own rate, not inject_hyperparams' initial one.
  assert state.hyperparams["learning_rate"] == pytest.approx(0.1)


def _int_options(name):
  """The options of ``name`` whose documented value is a Python int (not bool)."""
  sig = inspect.signature(METHODS[name].optimizer)
  return [
    k
    for k, p in sig.parameters.items()
    if "int" in str(p.annotation) and "Granularity" not in str(p.annotation)
  ]


def test_integer_options_default_to_none():
  """Item 5: no int default is injected (bools are never injected by optax)."""
  for name in NAMES:
    sig = inspect.signature(METHODS[name].optimizer)
    for k, p in sig.parameters.items():
      d = p.default
      assert not (isinstance(d, int) and not isinstance(d, bool)), (name, k, d)


@pytest.mark.parametrize(
  "name,option,value",
  [("tlr", "accumulation_steps", 3), ("vsgd", "init_samples", 4), ("vsgd", "seed", 1)],
)
def test_injected_int_option_names_static_args(name, option, value):
  """Item 5: an int option passed to inject_hyperparams: the error names static_args."""
  opt = optax.inject_hyperparams(METHODS[name].optimizer)(**{option: value})
  with pytest.raises(ValueError, match=f"static_args=\\('{option}',\\)"):
    jax.jit(opt.init)(_P0)
  ok = optax.inject_hyperparams(METHODS[name].optimizer, static_args=(option,))(**{option: value})
  jax.jit(ok.init)(_P0)


def test_learning_rate_helper_errors():
  with pytest.raises(ValueError, match="No adaptlr"):
    adaptlr.learning_rate(optax.sgd(0.1).init(_P0))
  two = optax.chain(adaptlr.tlr(), adaptlr.almeida())
  with pytest.raises(ValueError, match="Several"):
    adaptlr.learning_rate(two.init(_P0))


# ------------------------------------------------------------------ item 7 --
@pytest.mark.parametrize("name", NAMES)
def test_learning_rate_schedule_is_a_clear_error(name):
  """Item 7: learning_rate=schedule says to use max_learning_rate=schedule."""
  with pytest.raises(ValueError, match="max_learning_rate=schedule"):
    METHODS[name].optimizer(learning_rate=optax.linear_schedule(0.1, 0.01, 100))


@pytest.mark.parametrize("name", NAMES)
def test_bounds_as_schedules(name):
  """Item 7: max_learning_rate=schedule caps every step: |update_t| ≤ ceiling(t)·|g_t|."""
  ceiling = optax.linear_schedule(1e-3, 0.2, 5)  # warmup: ramps the ceiling up
  decay = optax.linear_schedule(0.2, 1e-3, 5)  # decay: brings it down
  rate0 = 0.1 if METHODS[name].initial_rate else 1.0
  for cap in (ceiling, decay):
    opt = _make(name, learning_rate=rate0, max_learning_rate=cap)
    params, state = _P0, opt.init(_P0)
    for t in range(8):
      grads = jax.grad(loss)(params)
      updates, state = opt.update(grads, state, params, **_kwargs(name, params))
      for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
        assert np.all(
          np.abs(np.asarray(u)) <= float(cap(t)) * np.abs(np.asarray(g)) * (1 + 1e-5) + 1e-12
        ), (t, u, g)
      params = optax.apply_updates(params, updates)
  # floor: a min_learning_rate schedule is respected too
  floor = optax.constant_schedule(0.05)
  opt = _make(name, learning_rate=rate0, min_learning_rate=floor)
  _, state, _ = _run(opt, _P0, 3)
  assert all(
    np.all(np.asarray(r) >= 0.05 * (1 - 1e-6))
    for r in jax.tree.leaves(adaptlr.learning_rate(state))
  )


def test_chaining_a_factor_after_a_method_is_absorbed():
  """Item 7 (documented): chain(tlr(), scale(0.1)) learns a ~10x larger rate."""
  p = {"w": jnp.array([1.0, -1.0, 2.0]), "b": jnp.array([0.5, -0.3])}
  h = {"w": jnp.ones(3), "b": jnp.ones(2)}  # one curvature: a clear optimum 1/h
  lsq = lambda q: sum(jnp.sum(0.5 * h[k] * q[k] ** 2) for k in q)
  _, s1, _ = _run(adaptlr.tlr(0.01), p, 40, value_fn=lsq)
  _, s2, _ = _run(optax.chain(adaptlr.tlr(0.01), optax.scale(0.1)), p, 40, value_fn=lsq)
  r1, r2 = float(adaptlr.learning_rate(s1)), float(adaptlr.learning_rate(s2))
  assert r2 / r1 > 5.0, (r1, r2)  # 0.96 and 9.0 (README)


# ------------------------------------------------------------------ item 8 --
def _with_direction(name):
  return "direction" in inspect.signature(METHODS[name].optimizer).parameters


@pytest.mark.parametrize("name", [n for n in NAMES if _with_direction(n)])
@pytest.mark.parametrize(
  "full",
  [optax.adam(1e-3), optax.sgd(0.1, momentum=0.9), optax.scale(-1.0)],
  ids=["adam", "sgd", "scale-1"],
)
def test_uphill_direction_is_an_error(name, full):
  """Item 8: a full optimizer as direction names optax.scale_by_adam()."""
  with pytest.raises(ValueError, match=r"optax\.scale_by_adam\(\)"):
    METHODS[name].optimizer(direction=full)
  # the same check under jit (inject_hyperparams builds the method while tracing)
  with pytest.raises(ValueError, match="uphill"):
    jax.jit(
      optax.inject_hyperparams(METHODS[name].optimizer, static_args=("direction",))(
        direction=full
      ).init
    )(_P0)
  METHODS[name].optimizer(direction=optax.scale_by_adam())  # downhill: fine


@pytest.mark.parametrize("name", ["hypergradient", "probabilistic_lr"])
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_is_trace_direction(name, nesterov):
  """Item 8: momentum=/nesterov= are optax.sgd's: direction=optax.trace(m, nesterov)."""
  a, _, _ = _run(METHODS[name].optimizer(0.05, momentum=0.9, nesterov=nesterov), _P0, 6)
  b, _, _ = _run(
    METHODS[name].optimizer(0.05, direction=optax.trace(0.9, nesterov=nesterov)), _P0, 6
  )
  _close(a, jax.tree.leaves(b), rtol=1e-6)
  with pytest.raises(ValueError, match="either direction or momentum"):
    METHODS[name].optimizer(momentum=0.9, direction=optax.scale_by_adam())


@pytest.mark.parametrize("name", NAMES)
def test_weight_decay_is_the_method_on_the_decayed_loss(name):
  """Item 8: weight_decay=λ, mask=m runs the method on L + λ/2 ‖m⊙w‖², probes included.

  With the gradient as direction the step is −α(g + λ m⊙w) (decoupled decay
  scaled by the learned rate, as optax.adamw's); the rules and probes see the
  loss that step descends.
  """
  lam, mask = 0.3, {"w": True, "b": False}
  decayed = lambda p: loss(p) + 0.5 * lam * jnp.sum(p["w"] ** 2)
  a, sa, _ = _run(_make(name, learning_rate=0.05, weight_decay=lam, mask=mask), _P0, 6)
  b, sb, _ = _run(_make(name, learning_rate=0.05), _P0, 6, value_fn=decayed)
  _close(a, jax.tree.leaves(b), rtol=2e-5, atol=1e-7)
  _close(adaptlr.learning_rate(sa), jax.tree.leaves(adaptlr.learning_rate(sb)), rtol=2e-5)
  with pytest.raises(ValueError, match="weight_decay"):
    _make(name, weight_decay=-0.1)


@pytest.mark.parametrize("name", [n for n in NAMES if _with_direction(n)])
def test_weight_decay_with_a_direction_is_decoupled(name):
  """Item 8: with direction=scale_by_adam() the step is −α(adam(g) + λw), adamw's."""
  lam, lr = 0.1, 0.05
  opt = METHODS[name].optimizer(
    lr, direction=optax.scale_by_adam(), weight_decay=lam, max_learning_rate=lr
  )  # pins α at lr for the comparison
  ref = optax.adamw(lr, weight_decay=lam)
  s, r = opt.init(_P0), ref.init(_P0)
  grads = jax.grad(loss)(_P0)
  u, s = opt.update(grads, s, _P0, **_kwargs(name, _P0))
  v, _ = ref.update(grads, r, _P0)
  rate = float(jax.tree.leaves(adaptlr.learning_rate(s))[0])  # the rate of this step
  _close(u, [x * rate / lr for x in jax.tree.leaves(v)], rtol=1e-5)


# ------------------------------------------------------------------ item 9 --
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("wrapper", ["masked", "multi_transform"])
def test_masks_freeze_a_bias(name, wrapper):
  """Item 9: every method inside optax.masked / multi_transform, the bias frozen."""
  if wrapper == "masked":
    opt = optax.chain(
      optax.masked(_make(name, learning_rate=0.05), {"w": True, "b": False}),
      optax.masked(optax.set_to_zero(), {"w": False, "b": True}),
    )
  else:
    opt = optax.multi_transform(
      {"adapt": _make(name, learning_rate=0.05), "frozen": optax.set_to_zero()},
      {"w": "adapt", "b": "frozen"},
    )
  params, state = _P0, opt.init(_P0)
  for _ in range(6):
    grads = jax.grad(loss)(params)
    updates, state = opt.update(
      grads, state, params, value=loss(params), value_fn=loss, full_params=params
    )
    params = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(np.asarray(params["b"]), np.asarray(_P0["b"]))
  assert float(loss(params)) < float(loss(_P0))


@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n].needs_value_fn])
def test_masked_without_full_params_says_what_to_pass(name):
  opt = optax.masked(_make(name, learning_rate=0.05), {"w": True, "b": False})
  state = opt.init(_P0)
  with pytest.raises(ValueError, match="full_params=params"):
    opt.update(jax.grad(loss)(_P0), state, _P0, value=loss(_P0), value_fn=loss)


# ----------------------------------------------------------------- item 10 --
@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n].needs_value_fn])
def test_non_scalar_value_fn_is_a_clear_error(name):
  """Item 10: a per-example loss (no .mean()) is reported at trace time."""
  per_example = lambda p: 0.5 * _H["w"] * p["w"] ** 2 + jnp.sum(p["b"] ** 2)
  opt = _make(name, learning_rate=0.05)
  state = opt.init(_P0)
  with pytest.raises(ValueError, match="scalar"):
    jax.jit(lambda g, s, p: opt.update(g, s, p, value=loss(p), value_fn=per_example))(
      jax.grad(loss)(_P0), state, _P0
    )


# ----------------------------------------------------------------- item 11 --
@pytest.mark.parametrize("name", [n for n in NAMES if METHODS[n].initial_rate])
def test_initial_rate_clamped_from_the_first_step(name):
  """Item 11: learning_rate=10, max_learning_rate=1: the first update is ≤ 1·|u|."""
  opt = _make(name, learning_rate=10.0, max_learning_rate=1.0)
  state = opt.init(_P0)
  assert all(np.all(np.asarray(r) <= 1.0) for r in jax.tree.leaves(adaptlr.learning_rate(state)))
  grads = jax.grad(loss)(_P0)
  updates, state = opt.update(grads, state, _P0, **_kwargs(name, _P0))
  for u, g in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
    assert np.all(np.abs(np.asarray(u)) <= np.abs(np.asarray(g)) * (1 + 1e-6)), (u, g)


# ----------------------------------------------------------------- item 12 --
@pytest.mark.parametrize("name", NAMES)
def test_zero_size_and_integer_leaves_pass_through(name):
  """Item 12: a zero-size leaf and an integer leaf whose gradient is integer zeros.

  (optax's own transformations take integer leaves with integer-zero gradients,
  not jax.grad(allow_int=True)'s float0: optax.sgd fails on float0 too.)
  """
  params = {
    "w": jnp.array([1.0, -2.0]),
    "empty": jnp.zeros((0, 3)),
    "n": jnp.array([3, 4], jnp.int32),
  }
  f = lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(p["empty"] ** 2)
  opt = _make(name, learning_rate=0.1)
  state = opt.init(params)
  for _ in range(3):
    grads = dict(jax.grad(f, allow_int=True)(params), n=jnp.zeros(2, jnp.int32))
    updates, state = opt.update(grads, state, params, value=f(params), value_fn=f)
    assert updates["empty"].shape == (0, 3)
    params = optax.apply_updates(params, updates)
  np.testing.assert_array_equal(np.asarray(params["n"]), [3, 4])
  assert params["n"].dtype == jnp.int32


# ----------------------------------------------------------------- item 13 --
@pytest.mark.slow  # a vmapped training demo
@pytest.mark.parametrize("name", NAMES)
def test_vector_learning_rate_points_to_vmap(name):
  """Item 13: a vector rate outside vmap says that a sweep needs jax.vmap."""
  with pytest.raises(ValueError, match="jax.vmap"):
    METHODS[name].optimizer(learning_rate=jnp.array([0.01, 0.1]))

  # ... and inside vmap it is a sweep: one run per rate
  def final(lr):
    opt = _make(name, learning_rate=lr)
    p, _, _ = _run(opt, _P0, 2)
    return p["w"]

  lrs = jnp.array([0.01, 0.05]) if METHODS[name].initial_rate else jnp.array([0.5, 1.0])
  swept = jax.vmap(final)(lrs)
  np.testing.assert_allclose(swept[1], final(lrs[1]), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ item 6 --
def _hd_reference(h, w0, steps, lr, beta, safeguard):
  """Baydin et al.'s SGD-HD in NumPy, with the documented divergence brake."""
  w, eta, prev = w0.copy(), lr, np.zeros_like(w0)
  traj, rates, braked = [], [], 0
  for _ in range(steps):
    g = h * w
    ip = float(g @ prev)
    new = eta + beta * ip  # η_t = η_{t−1} + β⟨g_t, g_{t−1}⟩
    pg = float(prev @ prev)
    if safeguard and pg > 0 and -ip / pg > 1.0:  # k > 1: diverging
      new = eta / (1.0 - ip / pg)  # the secant step η/(1 + k)
      braked += 1
    assert new > 0  # the clamp never binds here
    eta = new
    w = w - eta * g
    prev = g
    traj.append(w.copy())
    rates.append(eta)
  return np.array(traj), np.array(rates), braked


@pytest.mark.parametrize("safeguard", [True, False])
def test_hypergradient_safeguard_matches_numpy(safeguard):
  """Item 6: the brake fires only on detected divergence; safeguard=False is Baydin's."""
  h = np.array([1.0, 4.0, 0.5])
  w0 = np.array([1.0, -1.0, 2.0])
  with jax.enable_x64(True):
    f = lambda w: 0.5 * jnp.sum(jnp.asarray(h) * w**2)
    opt = adaptlr.hypergradient(0.6, hyper_lr=0.01, safeguard=safeguard)
    w, s = jnp.asarray(w0), None
    s = opt.init(w)
    traj, rates = [], []
    for _ in range(12):
      u, s = opt.update(jax.grad(f)(w), s, w)
      w = optax.apply_updates(w, u)
      traj.append(np.asarray(w))
      rates.append(float(adaptlr.learning_rate(s)))
  ref_traj, ref_rates, braked = _hd_reference(h, w0, 12, 0.6, 0.01, safeguard)
  assert (braked > 0) == safeguard
  np.testing.assert_allclose(rates, ref_rates, rtol=1e-10)
  np.testing.assert_allclose(traj, ref_traj, rtol=1e-10, atol=1e-12)


def test_probabilistic_safeguard_keeps_rosenbrock_finite():
  """Item 6: a step that raises the loss it was probed on is not taken (paper: taken)."""
  from optax.contrib import _common_test as common

  p0, _, f = common._setup_rosenbrock(jnp.float32)
  ends = {}
  for safeguard in (True, False):
    opt = adaptlr.probabilistic_lr(safeguard=safeguard)

    def body(c, _, opt=opt):
      p, s = c
      v, g = jax.value_and_grad(f)(p)
      u, s = opt.update(g, s, p, value=v, value_fn=f)
      return (optax.apply_updates(p, u), s), None

    (p, _), _ = jax.lax.scan(body, (p0, opt.init(p0)), length=2000)
    ends[safeguard] = float(f(p))
  assert ends[True] < 1e-2 and not ends[False] < 1.0, ends
