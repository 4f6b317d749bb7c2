"""The contract every adaptlr method keeps, parametrized over tests/_cases.py.

1. step by step against an independent NumPy reading of the paper (float64);
2. convergence on a parabola, Rosenbrock and a mixed-shape pytree under scan;
3. under jit, an unexpected extra kwarg is ignored and does not retrace;
4. optax.inject_hyperparams, named_chain and partition;
5. jax.vmap over float hyperparameters of a whole scanned run = runs one by one;
6. dtypes: bf16 params -> bf16 updates, float32 rates; state dtypes stable;
7. non-finite loss or gradient: step skipped, rates finite, counter, continues;
8. sharded params and batch on 8 simulated CPU devices = single device;
9. orbax checkpoint mid-training continues identically;
10. bad hyperparameters and missing extra args raise clear ValueErrors.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _cases import CASES, REF_CASES
from _problems import CONVERGENCE, REF, flat, mixed_quadratic, run_ref, scan_train

CASE_IDS = [c.id for c in CASES]
# The whole-run checks (jit, inject_hyperparams, vmap, dtypes, non-finite, sharding,
# checkpoints) run every method's main case in `make test` and its variants (ids with a
# "-") in the slow tier, as does their convergence (and every 1,000+-step run);
# references, bad input and extra args run every case.
WHOLE_RUN = [
  pytest.param(c, id=c.id, marks=[pytest.mark.slow] if "-" in c.id else []) for c in CASES
]


def _opt(case, **overrides):
  return case.make(**{**case.kwargs, **overrides})


def _linreg(seed=0, n=64, d=16, k=8):
  kx, kw = jax.random.split(jax.random.key(seed))
  x = jax.random.normal(kx, (n, d))
  y = x @ jax.random.normal(kw, (d, k)) * 0.5
  loss = lambda w, x, y: jnp.mean((x @ w - y) ** 2)
  return loss, x, y, jnp.zeros((d, k))


# ------------------------------------------------------------------------ 1 --
@pytest.mark.parametrize("case", REF_CASES, ids=[c.id for c in REF_CASES])
def test_matches_numpy_reference(case):
  with jax.enable_x64(True):
    traj, rates, _ = run_ref(case.make(**case.kwargs), case.steps)
  ref_traj, ref_rates = case.reference(REF, case.steps, **(case.ref_kwargs or case.kwargs))
  np.testing.assert_allclose(rates, ref_rates, rtol=case.rtol, atol=1e-12)
  np.testing.assert_allclose(traj, ref_traj, rtol=case.rtol, atol=1e-12)
  # The run must actually exercise the rule: the rate moved.
  assert np.ptp(ref_rates) > 0


# ------------------------------------------------------------------------ 2 --
# Every method's main case solves all three; variants list the problems they exercise.
# Runs of 1,000 steps or more (Rosenbrock) carry the `slow` marker: `-m "not slow"` skips them.
_CONVERGE = [
  pytest.param(
    c,
    p,
    id=f"{p}-{c.id}",
    marks=[pytest.mark.slow] if c.converge[p][0] >= 1000 or "-" in c.id else [],
  )
  for c in CASES
  for p in sorted(CONVERGENCE)
  if p in c.converge
]


def test_every_method_is_checked_on_every_problem():
  for make in {c.make for c in CASES}:
    covered = set().union(*(c.converge for c in CASES if c.make is make))
    assert covered == set(CONVERGENCE), f"{make.__name__} misses {set(CONVERGENCE) - covered}"


@pytest.mark.parametrize("case,problem", _CONVERGE)
def test_converges(case, problem):
  steps, tol, *overrides = case.converge[problem]
  overrides = overrides[0] if overrides else {}
  loss, init, optimum = CONVERGENCE[problem]
  params, state, losses = jax.jit(lambda p: scan_train(_opt(case, **overrides), loss, p, steps))(
    init()
  )
  final = float(loss(params))
  assert np.isfinite(final)
  assert final - optimum < tol, f"{case.id} on {problem}: final loss {final:.3g}"
  assert float(losses[0]) > final


# ------------------------------------------------------------------------ 3 --
@pytest.mark.parametrize("case", WHOLE_RUN)
def test_jit_ignores_unknown_kwarg_without_retracing(case):
  loss, x, y, w = _linreg()
  opt = _opt(case)
  traces = []

  def step(w, state, x, y, **unknown):
    traces.append(None)
    value, grad = jax.value_and_grad(loss)(w, x, y)
    return opt.update(grad, state, w, value=value, grad=grad, value_fn=loss, x=x, y=y, **unknown)

  jstep = jax.jit(step)
  state = opt.init(w)
  u1, s1 = jstep(w, state, x, y, unknown_kwarg=jnp.ones(3))
  u2, _ = jstep(w, s1, x + 1.0, y, unknown_kwarg=jnp.zeros(3))
  assert len(traces) == 1
  ref, _ = jax.jit(step)(w, state, x, y)
  np.testing.assert_allclose(flat(u1), flat(ref), rtol=1e-6, atol=1e-7)
  assert np.all(np.isfinite(flat(u2)))


# ------------------------------------------------------------------------ 4 --
def _run_steps(opt, params, steps=6):
  state = opt.init(params)
  out = []
  for _ in range(steps):
    value, grad = jax.value_and_grad(mixed_quadratic)(params)
    u, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=mixed_quadratic)
    params = optax.apply_updates(params, u)
    out.append(flat(params))
  return np.array(out), state


@pytest.mark.parametrize("case", WHOLE_RUN)
def test_inject_hyperparams_named_chain(case):
  p0 = CONVERGENCE["mixed_pytree"][1]()
  plain, _ = _run_steps(_opt(case), p0)
  # Integer and boolean options shape the computation: they are static_args.
  static = tuple(k for k, v in case.kwargs.items() if isinstance(v, (bool, int)))
  injected, state = _run_steps(
    optax.inject_hyperparams(case.make, static_args=static)(**case.kwargs), p0
  )
  np.testing.assert_allclose(injected, plain, rtol=1e-5, atol=1e-6)
  named, nstate = _run_steps(
    optax.named_chain(("clip", optax.clip_by_global_norm(1e6)), ("adapt", _opt(case))), p0
  )
  np.testing.assert_allclose(named, plain, rtol=1e-5, atol=1e-6)
  assert np.all(np.isfinite(flat(optax.tree.get(nstate["adapt"], "learning_rate"))))


@pytest.mark.parametrize(
  "case",
  [c for c in CASES if not c.needs_value_fn],
  ids=[c.id for c in CASES if not c.needs_value_fn],
)
def test_partition(case):
  """A method on part of the params (optax.partition) = the method on that part alone.

  Methods that evaluate ``value_fn`` need the whole params; use their
  ``granularity`` labels rather than ``optax.partition`` for them.
  """
  p0 = CONVERGENCE["mixed_pytree"][1]()
  labels = {"w": "adapt", "b": "adapt", "s": "fixed"}
  opt = optax.partition({"adapt": _opt(case), "fixed": optax.sgd(0.1)}, labels)
  traj, _ = _run_steps(opt, p0)
  sub = {"b": p0["b"], "w": p0["w"]}
  sub_loss = lambda p: mixed_quadratic({**p, "s": p0["s"]})
  alone = _opt(case)
  state = alone.init(sub)
  expected = []
  for _ in range(6):
    value, grad = jax.value_and_grad(sub_loss)(sub)
    u, state = alone.update(grad, state, sub, value=value, grad=grad, value_fn=sub_loss)
    sub = optax.apply_updates(sub, u)
    expected.append(flat(sub))
  # Leaves in order b (4), s (1), w (12): drop "s" at index 4.
  got = np.concatenate([traj[:, :4], traj[:, 5:]], axis=1)
  np.testing.assert_allclose(got, np.array(expected), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ 5 --
@pytest.mark.parametrize("case", WHOLE_RUN)
def test_vmap_over_hyperparameters(case):
  loss, init, _ = CONVERGENCE["mixed_pytree"]
  for name, values in case.hparams.items():
    run = lambda v, name=name: scan_train(_opt(case, **{name: v}), loss, init(), 25)[2]
    batched = jax.jit(jax.vmap(run))(jnp.asarray(values, jnp.float32))
    for i, v in enumerate(values):
      single = jax.jit(run)(jnp.float32(v))
      np.testing.assert_allclose(
        batched[i], single, rtol=1e-5, atol=case.atol, err_msg=f"{case.id}: vmap over {name}"
      )
    assert not np.allclose(batched[0], batched[-1]), f"{name} has no effect"


# ------------------------------------------------------------------------ 6 --
@pytest.mark.parametrize("case", WHOLE_RUN)
def test_bfloat16_params(case):
  params = {"w": jnp.ones((4, 3), jnp.bfloat16), "b": jnp.zeros(3, jnp.bfloat16)}
  loss = lambda p: (
    jnp.sum((p["w"].astype(jnp.float32) - 0.5) ** 2)
    + jnp.sum((p["b"].astype(jnp.float32) + 1.0) ** 2)
  )
  opt = _opt(case)
  state = opt.init(params)
  for _ in range(3):
    value, grad = jax.value_and_grad(loss)(params)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=loss)
    assert all(u.dtype == jnp.bfloat16 for u in jax.tree.leaves(updates))
    params = optax.apply_updates(params, updates)
  assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(params))
  rates = jax.tree.leaves(optax.tree.get(state, "learning_rate"))
  assert all(r.dtype == jnp.float32 for r in rates)
  assert float(loss(params)) < float(loss(jax.tree.map(jnp.ones_like, params)))


@pytest.mark.parametrize("case", WHOLE_RUN)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_state_dtypes_stable_under_cond(case, dtype):
  with jax.enable_x64(dtype == "float64"):
    params = {"w": jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3), "b": jnp.ones(3, dtype)}
    loss = lambda p: sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in jax.tree.leaves(p))
    opt = _opt(case)
    state = opt.init(params)
    value, grad = jax.value_and_grad(loss)(params)

    def do_step(s):
      return opt.update(grad, s, params, value=value, grad=grad, value_fn=loss)[1]

    # lax.cond requires both branches to return identical types.
    new_state = jax.jit(lambda s, c: jax.lax.cond(c, do_step, lambda s: s, s))(state, True)
    before = jax.tree.map(lambda x: (jnp.asarray(x).dtype, jnp.shape(x)), state)
    after = jax.tree.map(lambda x: (jnp.asarray(x).dtype, jnp.shape(x)), new_state)
    assert before == after


# ------------------------------------------------------------------------ 7 --
@pytest.mark.parametrize("case", WHOLE_RUN)
@pytest.mark.parametrize("bad", ["nan_grad", "inf_value"])
def test_non_finite_step_is_skipped(case, bad):
  loss, x, y, w = _linreg()
  opt = _opt(case)
  state = opt.init(w)
  step = jax.jit(
    lambda w, s, x, y, value, grad: opt.update(
      grad, s, w, value=value, grad=grad, value_fn=loss, x=x, y=y
    )
  )
  for _ in range(3):
    value, grad = jax.value_and_grad(loss)(w, x, y)
    u, state = step(w, state, x, y, value, grad)
    w = optax.apply_updates(w, u)
  value, grad = jax.value_and_grad(loss)(w, x, y)
  if bad == "nan_grad":
    grad = grad.at[0, 0].set(jnp.nan)
  else:
    value = jnp.asarray(jnp.inf)
  u, new_state = step(w, state, x, y, value, grad)
  assert np.all(np.asarray(u) == 0)
  assert int(optax.tree.get(new_state, "skipped")) == 1
  kept = jax.tree.map(
    lambda a, b: np.array_equal(a, b, equal_nan=True),
    optax.tree.set(new_state, skipped=jnp.int32(0)),
    optax.tree.set(state, skipped=jnp.int32(0)),
  )
  assert all(jax.tree.leaves(kept)), "the state changed on a skipped step"
  state = new_state
  before = float(loss(w, x, y))
  for _ in range(5):
    value, grad = jax.value_and_grad(loss)(w, x, y)
    u, state = step(w, state, x, y, value, grad)
    w = optax.apply_updates(w, u)
  rates = jax.tree.leaves(optax.tree.get(state, "learning_rate"))
  assert all(np.all(np.isfinite(r)) for r in rates)
  assert float(loss(w, x, y)) < before


# ------------------------------------------------------------------------ 8 --
@pytest.mark.parametrize("case", WHOLE_RUN)
def test_sharded_equals_single_device(case):
  if len(jax.devices()) < 8:
    pytest.skip("needs --xla_force_host_platform_device_count=8 (tests/conftest.py)")
  from jax.sharding import Mesh, NamedSharding
  from jax.sharding import PartitionSpec as P

  loss, x, y, w = _linreg(n=64, d=16, k=8)
  mesh = Mesh(np.array(jax.devices()[:8]), ("d",))
  shard = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))

  def run(w, x, y):
    opt = _opt(case)
    state = opt.init(w)

    def step(carry, _):
      w, s = carry
      value, grad = jax.value_and_grad(loss)(w, x, y)
      u, s = opt.update(grad, s, w, value=value, grad=grad, value_fn=loss, x=x, y=y)
      return (optax.apply_updates(w, u), s), value

    return jax.lax.scan(step, (w, state), None, length=15)

  (w1, _), l1 = jax.jit(run)(w, x, y)
  (w8, _), l8 = jax.jit(run)(shard(w, P("d")), shard(x, P("d")), shard(y, P("d")))
  assert len(w8.sharding.device_set) == 8
  np.testing.assert_allclose(np.asarray(l8), np.asarray(l1), rtol=1e-4, atol=1e-6)
  # float32 reductions summed in another order; a rate fitted on them (newton_lr on Adam)
  # carries that through 15 steps: 1.4e-4 measured at one of 128 weights
  np.testing.assert_allclose(np.asarray(w8), np.asarray(w1), rtol=3e-4, atol=1e-5)


# ------------------------------------------------------------------------ 9 --
@pytest.mark.parametrize("case", WHOLE_RUN)
def test_orbax_checkpoint_resume(case, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  loss, x, y, w0 = _linreg()
  opt = _opt(case)
  step = jax.jit(lambda w, s: _step(opt, loss, w, s, x, y))

  w, state = w0, opt.init(w0)
  for _ in range(4):
    w, state = step(w, state)
  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / "ckpt", {"w": w, "state": state})
  ckpt.wait_until_finished()
  for _ in range(4):
    w, state = step(w, state)

  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, {"w": w0, "state": opt.init(w0)})
  restored = ckpt.restore(tmp_path / "ckpt", abstract)
  w2, state2 = restored["w"], restored["state"]
  assert jax.tree.structure(state2) == jax.tree.structure(state)
  for _ in range(4):
    w2, state2 = step(w2, state2)
  np.testing.assert_array_equal(np.asarray(w2), np.asarray(w))
  for a, b in zip(jax.tree.leaves(state2), jax.tree.leaves(state)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _step(opt, loss, w, s, x, y):
  value, grad = jax.value_and_grad(loss)(w, x, y)
  u, s = opt.update(grad, s, w, value=value, grad=grad, value_fn=loss, x=x, y=y)
  return optax.apply_updates(w, u), s


# ----------------------------------------------------------------------- 10 --
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_bad_hyperparameters_raise(case):
  for kwargs, match in case.bad:
    with pytest.raises(ValueError, match=match):
      _opt(case, **kwargs)
  # Traced values are accepted (vmap / inject_hyperparams pass arrays through).
  jax.jit(lambda lr: _opt(case, learning_rate=lr).init(jnp.zeros(3)))(jnp.float32(-1.0))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_mismatched_labels_raise(case):
  if "granularity" not in inspect.signature(case.make).parameters:
    pytest.skip("no granularity argument")
  opt = _opt(case, granularity={"nope": "x"})
  with pytest.raises(ValueError, match="labels"):
    opt.init({"w": jnp.zeros(3), "b": jnp.zeros(2)})


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_missing_extra_args_raise(case):
  loss, x, y, w = _linreg()
  opt = _opt(case)
  state = opt.init(w)
  value, grad = jax.value_and_grad(loss)(w, x, y)
  full = dict(value=value, grad=grad, value_fn=loss, x=x, y=y)
  opt.update(grad, state, w, **full)  # the full set works
  if case.needs_value_fn:
    with pytest.raises(ValueError, match="value_fn"):
      opt.update(grad, state, w, value=value, grad=grad)
  if case.needs_value:
    with pytest.raises(ValueError, match="value"):
      opt.update(grad, state, w, value_fn=loss, x=x, y=y)
  if not (case.needs_value or case.needs_value_fn):
    opt.update(grad, state, w)  # plain optax call works
