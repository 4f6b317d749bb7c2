"""adaptlr.flax: NNX and Linen loops pass value/grad/value_fn correctly.

Each method is trained on a small MLP through the Flax helpers and, step for
step, through an equivalent pure-functional optax loop on the same params;
the two must agree (the helpers add nothing and lose nothing), and the loss
must go down. Every method of adaptlr.registry.METHODS is run. (The docstring
examples of adaptlr.flax run in tests/test_docs.py.)
"""

from __future__ import annotations

import functools
import pathlib
import re
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from flax.training.train_state import TrainState

import adaptlr
import adaptlr.flax as aflax
from adaptlr.registry import METHODS as METHODS_REGISTRY

STEPS = 25

# Arguments per registered method for a 25-step MLP run (default: learning_rate=0.05).
_KWARGS = {
  "hypergradient": {"learning_rate": 0.05, "hyper_lr": 1e-3, "lookahead": True},
  "vsgd": {},
}
# name -> (factory, needs value_fn): every registered method, and tlr inside a chain.
_METHODS = {
  name: (
    functools.partial(spec.optimizer, **_KWARGS.get(name, {"learning_rate": 0.05})),
    spec.needs_value_fn or "lookahead" in _KWARGS.get(name, {}),
  )
  for name, spec in METHODS_REGISTRY.items()
}
_METHODS["tlr_chain_clip"] = (
  lambda: optax.chain(optax.clip_by_global_norm(10.0), adaptlr.tlr(0.05)),
  False,
)
METHODS = sorted(_METHODS)


def _data(n=128, d=8):
  kx, kw = jax.random.split(jax.random.key(42))
  x = jax.random.normal(kx, (n, d))
  y = jnp.sin(x @ jax.random.normal(kw, (d, 1)) * 0.5)
  return x, y


class NnxMLP(nnx.Module):
  def __init__(self, rngs, d=8, h=32):
    self.l1 = nnx.Linear(d, h, rngs=rngs)
    self.l2 = nnx.Linear(h, 1, rngs=rngs)

  def __call__(self, x):
    return self.l2(nnx.tanh(self.l1(x)))


class LinenMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    return nn.Dense(1)(nn.tanh(nn.Dense(32)(x)))


def nnx_loss(model, x, y):
  return jnp.mean((model(x) - y) ** 2)


def _functional_run(tx, loss_p, params, x, y, steps=STEPS):
  """The reference: a plain optax loop on a params pytree, all extra args passed."""

  @jax.jit
  def step(params, state):
    value, grad = jax.value_and_grad(loss_p)(params, x, y)
    updates, state = tx.update(
      grad, state, params, value=value, grad=grad, value_fn=loss_p, x=x, y=y
    )
    return optax.apply_updates(params, updates), state, value

  state = tx.init(params)
  losses = []
  for _ in range(steps):
    params, state, value = step(params, state)
    losses.append(float(value))
  return params, state, losses


def _assert_trees_close(a, b, rtol=2e-5, atol=2e-6):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for u, v in zip(la, lb):
    if jnp.issubdtype(jnp.asarray(u).dtype, jax.dtypes.prng_key):
      u, v = jax.random.key_data(u), jax.random.key_data(v)
    np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


# ------------------------------------------------------------------ packaging --
def test_import_adaptlr_does_not_import_flax():
  code = (
    "import sys, adaptlr; assert 'flax' not in sys.modules, 'flax imported'; "
    "import adaptlr.flax; assert 'flax.nnx' in sys.modules"
  )
  subprocess.run([sys.executable, "-c", code], check=True)


_BLOCK_FLAX = """
import sys
class _NoFlax:
  def find_spec(self, name, path=None, target=None):
    if name == "flax" or name.startswith("flax."):
      raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    return None
sys.meta_path.insert(0, _NoFlax())
"""


def test_flax_is_optional():
  """Without Flax: every optimizer imports and steps; adaptlr.flax says what to install."""
  code = (
    _BLOCK_FLAX
    + """
import jax.numpy as jnp, adaptlr
from adaptlr import registry
for spec in registry.METHODS.values():
  spec.optimizer()
opt = adaptlr.tlr(0.1)
params = {"w": jnp.ones(3)}
updates, _ = opt.update({"w": jnp.ones(3)}, opt.init(params), params)
assert "flax" not in sys.modules
try:
  import adaptlr.flax
except ImportError as e:
  assert "pip install adaptlr[flax]" in str(e), e
  print("OK")
else:
  raise AssertionError("adaptlr.flax imported without flax")
"""
  )
  out = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    cwd=pathlib.Path(__file__).resolve().parent.parent,
  )
  assert out.returncode == 0, out.stderr
  assert out.stdout.strip().endswith("OK"), out.stdout


def test_pyproject_flax_is_an_extra():
  try:
    import tomllib
  except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")
  project = tomllib.loads(
    (pathlib.Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
  )["project"]
  name = lambda req: re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower()
  assert "flax" not in {name(r) for r in project["dependencies"]}
  extras = project["optional-dependencies"]
  for extra in ("flax", "dev", "bench"):  # `make test` / `make demo` install dev, bench
    assert "flax" in {name(r) for r in extras[extra]}, extra
  assert project["license"] == "Apache-2.0"
  license_text = (pathlib.Path(__file__).resolve().parent.parent / "LICENSE").read_text()
  assert "Apache License" in license_text


def test_lazy_attribute():
  assert adaptlr.flax is aflax


# ------------------------------------------------------------------------ NNX --
@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_value_fn_matches_optimizer_params():
  """value_fn takes exactly the tree nnx.Optimizer hands to tx.update."""
  model = NnxMLP(nnx.Rngs(0))
  x, y = _data()
  seen = {}

  def spy_update(updates, state, params=None, **extra):
    seen["params"], seen["extra"] = params, extra
    return jax.tree.map(jnp.zeros_like, updates), state

  spy = optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), spy_update)
  optimizer = nnx.Optimizer(model, spy, wrt=nnx.Param)
  loss = aflax.nnx_train_step(optimizer, model, nnx_loss, x=x, y=y)
  extra = seen["extra"]
  assert set(extra) == {"value", "grad", "value_fn", "x", "y"}
  value_fn = extra["value_fn"]
  np.testing.assert_allclose(value_fn(seen["params"], x=x, y=y), loss, rtol=1e-6)
  assert jax.tree.structure(extra["grad"]) == jax.tree.structure(seen["params"])
  # The explicit builder gives the same function of the same tree.
  vf = aflax.nnx_value_fn(model, nnx_loss)
  np.testing.assert_allclose(vf(seen["params"], x, y), loss, rtol=1e-6)
  # Its signature names the batch args, so adaptlr/optax forward them.
  import inspect

  assert list(inspect.signature(vf).parameters) == ["params", "x", "y"]


@pytest.mark.parametrize("method", METHODS)
def test_nnx_loop_matches_functional(method):
  make, _ = _METHODS[method]
  x, y = _data()
  model = NnxMLP(nnx.Rngs(0))
  graphdef, params0, rest = nnx.split(model, nnx.Param, ...)
  params0, rest = nnx.as_pure(params0), nnx.as_pure(rest)
  optimizer = nnx.Optimizer(model, make(), wrt=nnx.Param)

  @nnx.jit
  def train_step(model, optimizer, x, y):
    return aflax.nnx_train_step(optimizer, model, nnx_loss, x=x, y=y)

  losses = [float(train_step(model, optimizer, x, y)) for _ in range(STEPS)]
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.7 * losses[0], losses

  loss_p = lambda p, x, y: nnx_loss(nnx.merge(graphdef, p, rest), x, y)
  params_ref, state_ref, losses_ref = _functional_run(make(), loss_p, params0, x, y)
  np.testing.assert_allclose(losses, losses_ref, rtol=2e-5)
  _assert_trees_close(nnx.as_pure(nnx.state(model, nnx.Param)), params_ref)
  _assert_trees_close(nnx.as_pure(optimizer.opt_state), state_ref)


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_nnx_explicit_value_fn_equals_train_step():
  """The spelled-out loop (nnx_value_fn + nnx.value_and_grad + update) is the same step."""
  make, _ = _METHODS["hypergradient"]
  x, y = _data()
  m1, m2 = NnxMLP(nnx.Rngs(0)), NnxMLP(nnx.Rngs(0))
  o1 = nnx.Optimizer(m1, make(), wrt=nnx.Param)
  o2 = nnx.Optimizer(m2, make(), wrt=nnx.Param)

  @nnx.jit
  def explicit(model, optimizer, x, y):
    value_fn = aflax.nnx_value_fn(model, nnx_loss)
    loss, grads = nnx.value_and_grad(nnx_loss)(model, x, y)
    optimizer.update(model, grads, value=loss, grad=grads, value_fn=value_fn, x=x, y=y)
    return loss

  helper = nnx.jit(lambda m, o, x, y: aflax.nnx_train_step(o, m, nnx_loss, x=x, y=y))
  for _ in range(5):
    explicit(m1, o1, x, y)
    helper(m2, o2, x, y)
  _assert_trees_close(nnx.state(m1, nnx.Param), nnx.state(m2, nnx.Param))


def test_nnx_value_fn_is_required():
  """Without value_fn a probing method says what to pass, naming the Flax helpers too."""
  x, y = _data()
  model = NnxMLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, adaptlr.hypergradient(0.05, lookahead=True), wrt=nnx.Param)
  grads = nnx.grad(nnx_loss)(model, x, y)
  with pytest.raises(ValueError, match="value_fn") as err:
    optimizer.update(model, grads)
  msg = str(err.value)
  for name in (
    "opt.update(grads, state, params, value_fn=loss_fn",  # plain optax
    "adaptlr.flax.nnx_train_step",
    "adaptlr.flax.nnx_value_fn",  # NNX
    "adaptlr.flax.linen_train_step",
    "adaptlr.flax.apply_gradients",
  ):  # Linen
    assert name in msg, (name, msg)


# --------------------------------------------------- NNX with random streams --
class DropNet(nnx.Module):
  """Dropout whose keys come from an `rngs` argument, as in Flax's MNIST tutorial."""

  def __init__(self, rngs, d=8, h=32):
    self.l1 = nnx.Linear(d, h, rngs=rngs)
    self.drop = nnx.Dropout(0.5)
    self.l2 = nnx.Linear(h, 1, rngs=rngs)

  def __call__(self, x, rngs=None):
    return self.l2(self.drop(nnx.tanh(self.l1(x)), rngs=rngs))


def drop_loss(model, rngs, batch):  # the tutorial's signature: (loss, aux)
  pred = model(batch["x"], rngs)
  return jnp.mean((pred - batch["y"]) ** 2), pred


def _probe_spy():
  """An optimizer recording value_fn(params) - value: 0 iff the probes see the gradient's masks."""

  def update(updates, state, params=None, **extra):
    # The batch is forwarded by the update, or bound in value_fn.
    batch = {k: extra[k] for k in ("rngs", "batch") if k in extra}
    diff = extra["value_fn"](params, **batch) - extra["value"]
    return jax.tree.map(jnp.zeros_like, updates), {"diff": diff}

  return optax.GradientTransformationExtraArgs(lambda p: {"diff": jnp.zeros(())}, update)


def _spy_diff(optimizer):
  return float(nnx.as_pure(optimizer.opt_state)["diff"])


def _count(rngs):
  return int(rngs.default.count[...])


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_nnx_rngs_loss_through_optimizer_update():
  """optimizer.update(model, grads, ..., rngs=rngs) with a loss that draws from rngs."""
  x, y = _data()
  batch = {"x": x, "y": y}
  model, rngs = DropNet(nnx.Rngs(0)), nnx.Rngs(1)
  optimizer = nnx.Optimizer(model, _probe_spy(), wrt=nnx.Param)

  @nnx.jit
  def bound(model, optimizer, rngs, batch):  # value_fn built (and rngs bound) before the gradient
    value_fn = aflax.nnx_value_fn(model, drop_loss, rngs, batch, has_aux=True)
    (loss, _), grads = nnx.value_and_grad(drop_loss, has_aux=True)(model, rngs, batch)
    optimizer.update(model, grads, value=loss, value_fn=value_fn)
    return loss

  @nnx.jit
  def forwarded(model, optimizer, rngs, batch):  # rngs forwarded by the update, after the gradient
    value_fn = aflax.nnx_value_fn(model, drop_loss, has_aux=True)
    (loss, _), grads = nnx.value_and_grad(drop_loss, has_aux=True)(model, rngs, batch)
    optimizer.update(model, grads, value=loss, value_fn=value_fn, rngs=rngs, batch=batch)
    return loss

  bound(model, optimizer, rngs, batch)
  assert _spy_diff(optimizer) == 0.0  # the gradient's dropout mask
  assert _count(rngs) == 1  # advanced by the gradient only; the probes never touch it
  forwarded(model, optimizer, rngs, batch)
  assert abs(_spy_diff(optimizer)) > 1e-4  # the next mask: dropout does matter here
  assert _count(rngs) == 2

  for method in ("newton_lr", "probabilistic_lr"):  # and the real methods train with it
    model, rngs = DropNet(nnx.Rngs(0)), nnx.Rngs(1)
    optimizer = nnx.Optimizer(
      model, adaptlr.registry.METHODS[method].optimizer(0.05), wrt=nnx.Param
    )
    losses = [float(bound(model, optimizer, rngs, batch)) for _ in range(30)]
    assert np.isfinite(losses).all(), (method, losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]), (method, losses)
    forwarded(model, optimizer, rngs, batch)


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_nnx_train_step_with_rngs_argument():
  """nnx_train_step(..., rngs=rngs): no trace-level error, probes see the gradient's mask,
  and rngs / model / loss move exactly as with nnx.value_and_grad."""
  x, y = _data()
  batch = {"x": x, "y": y}
  model, rngs = DropNet(nnx.Rngs(0)), nnx.Rngs(1)
  optimizer = nnx.Optimizer(model, _probe_spy(), wrt=nnx.Param)
  step = nnx.jit(
    lambda m, o, r, b: aflax.nnx_train_step(o, m, drop_loss, has_aux=True, rngs=r, batch=b)
  )
  twin, twin_rngs = DropNet(nnx.Rngs(0)), nnx.Rngs(1)
  ref = nnx.jit(lambda m, r, b: nnx.value_and_grad(drop_loss, has_aux=True)(m, r, b))
  for k in range(3):
    loss, pred = step(model, optimizer, rngs, batch)
    (ref_loss, ref_pred), _ = ref(twin, twin_rngs, batch)
    assert _spy_diff(optimizer) == 0.0
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(pred, ref_pred, rtol=1e-6, atol=1e-7)
    assert _count(rngs) == _count(twin_rngs) == k + 1

  model, rngs = DropNet(nnx.Rngs(0)), nnx.Rngs(1)
  optimizer = nnx.Optimizer(model, adaptlr.newton_lr(0.05), wrt=nnx.Param)
  losses = [float(step(model, optimizer, rngs, batch)[0]) for _ in range(30)]
  assert np.isfinite(losses).all() and np.mean(losses[-5:]) < np.mean(losses[:5]), losses


# ------------------------------------------------------------ (loss, aux) --
def _aux_loss(params, x, y):
  pred = jnp.tanh(x @ params["w"]) @ params["v"]
  return jnp.mean((pred - y) ** 2), {"pred": pred}


@pytest.mark.parametrize(
  "method", sorted(n for n, spec in adaptlr.registry.METHODS.items() if spec.needs_value_fn)
)
@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_value_fn_has_aux(method):
  """value_fn returning (loss, aux) with value_fn_has_aux=True is the scalar loss's step;
  without the flag the error says what to pass (it was `'tuple' has no attribute 'astype'`)."""
  x, y = _data()
  k1, k2 = jax.random.split(jax.random.key(3))
  params = {"w": 0.3 * jax.random.normal(k1, (8, 16)), "v": 0.3 * jax.random.normal(k2, (16, 1))}
  scalar = lambda p, x, y: _aux_loss(p, x, y)[0]
  tx = adaptlr.registry.METHODS[method].optimizer()
  state = tx.init(params)
  value, grad = jax.value_and_grad(scalar)(params, x, y)
  ref, _ = tx.update(grad, state, params, value=value, grad=grad, value_fn=scalar, x=x, y=y)
  got, _ = tx.update(
    grad, state, params, value=value, grad=grad, value_fn=_aux_loss, value_fn_has_aux=True, x=x, y=y
  )
  _assert_trees_close(got, ref, rtol=1e-6, atol=1e-8)
  with pytest.raises(TypeError, match="value_fn_has_aux=True"):
    tx.update(grad, state, params, value=value, grad=grad, value_fn=_aux_loss, x=x, y=y)


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_linen_apply_gradients_has_aux():
  x, y = _data()
  model = LinenMLP()
  params = model.init(jax.random.key(0), x)["params"]

  def loss_fn(params, x, y):  # the Linen example's (loss, logits)
    pred = model.apply({"params": params}, x)
    return jnp.mean((pred - y) ** 2), pred

  scalar = lambda params, x, y: loss_fn(params, x, y)[0]
  make = lambda: TrainState.create(apply_fn=model.apply, params=params, tx=adaptlr.newton_lr(0.05))
  (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
  ref = aflax.apply_gradients(make(), grads, value=loss, value_fn=scalar, x=x, y=y)
  got = aflax.apply_gradients(make(), grads, has_aux=True, value=loss, value_fn=loss_fn, x=x, y=y)
  _assert_trees_close(got.params, ref.params, rtol=1e-6, atol=1e-8)
  _assert_trees_close(got.opt_state, ref.opt_state, rtol=1e-6, atol=1e-8)
  with pytest.raises(TypeError, match="has_aux=True"):
    aflax.apply_gradients(make(), grads, value=loss, value_fn=loss_fn, x=x, y=y)
  with pytest.raises(TypeError, match="has_aux=True"):
    aflax.linen_train_step(make(), loss_fn, x=x, y=y)
  state, (loss2, pred) = aflax.linen_train_step(make(), loss_fn, has_aux=True, x=x, y=y)
  np.testing.assert_allclose(loss2, loss, rtol=1e-6)
  _assert_trees_close(state.params, ref.params, rtol=1e-6, atol=1e-8)
  # has_aux spelled both ways (the helper's and the optimizer's own flag): one strip, same step.
  both = aflax.apply_gradients(
    make(), grads, has_aux=True, value_fn_has_aux=True, value=loss, value_fn=loss_fn, x=x, y=y
  )
  _assert_trees_close(both.params, ref.params, rtol=1e-6, atol=1e-8)
  # has_aux=True with a scalar loss: an error that names has_aux, not an IndexError.
  model = NnxMLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, adaptlr.newton_lr(0.05), wrt=nnx.Param)
  with pytest.raises(TypeError, match="has_aux=True but the loss function returned"):
    aflax.nnx_train_step(optimizer, model, nnx_loss, has_aux=True, x=x, y=y)


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_linen_helpers_forward_extra_args_through_multisteps():
  """optax.MultiSteps' transformation is untyped but takes extra args: the helpers pass them."""
  x, y = _data()
  model = LinenMLP()
  params = model.init(jax.random.key(0), x)["params"]
  loss_fn = lambda params, x, y: jnp.mean((model.apply({"params": params}, x) - y) ** 2)
  tx = optax.MultiSteps(adaptlr.newton_lr(0.05), every_k_schedule=2).gradient_transformation()
  state = TrainState.create(apply_fn=model.apply, params=params, tx=tx)
  losses = []
  for _ in range(6):
    state, loss = aflax.linen_train_step(state, loss_fn, x=x, y=y)
    losses.append(float(loss))
  assert losses[-1] < losses[0], losses


class StatefulNet(nnx.Module):
  """BatchNorm statistics, a dropout RNG stream, and a frozen first layer."""

  def __init__(self, rngs):
    self.frozen = nnx.Linear(8, 16, rngs=rngs)
    self.bn = nnx.BatchNorm(16, rngs=rngs)
    self.drop = nnx.Dropout(0.3, rngs=rngs)
    self.head = nnx.Linear(16, 1, rngs=rngs)

  def __call__(self, x):
    return self.head(self.drop(self.bn(nnx.relu(self.frozen(x)))))


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
@pytest.mark.parametrize("graph", [True, False])
def test_nnx_stateful_model_and_wrt_subset(graph):
  """Only the `wrt` params move; BatchNorm stats and RNG counters advance as with nnx.grad."""
  x, y = _data()
  wrt = nnx.All(nnx.Param, nnx.Any(nnx.PathContains("head"), nnx.PathContains("bn")))
  tx = adaptlr.hypergradient(0.05, lookahead=True)
  m1, m2 = StatefulNet(nnx.Rngs(0)), StatefulNet(nnx.Rngs(0))
  o1 = nnx.Optimizer(m1, tx, wrt=wrt, graph=graph)
  o2 = nnx.Optimizer(m2, tx, wrt=wrt, graph=graph)
  frozen0 = np.asarray(m1.frozen.kernel[...])

  @nnx.jit
  def helper(model, optimizer, x, y):
    return aflax.nnx_train_step(optimizer, model, nnx_loss, x=x, y=y)

  @nnx.jit
  def explicit(model, optimizer, x, y):
    value_fn = aflax.nnx_value_fn(model, nnx_loss, wrt=wrt, graph=graph)
    diff = nnx.DiffState(0, wrt)
    loss, grads = nnx.value_and_grad(nnx_loss, argnums=diff)(model, x, y)
    # Same dropout mask: value_fn (a snapshot from before the gradient) gives the same loss.
    same = jnp.allclose(value_fn(nnx.as_pure(nnx.state(model, wrt)), x, y), loss, rtol=1e-6)
    optimizer.update(model, grads, value=loss, grad=grads, value_fn=value_fn, x=x, y=y)
    return loss, same

  if graph:  # nnx.value_and_grad with a DiffState needs graph mode
    for _ in range(4):
      l1 = helper(m1, o1, x, y)
      l2, same = explicit(m2, o2, x, y)
      np.testing.assert_allclose(l1, l2, rtol=1e-6)
      assert bool(same)
    _assert_trees_close(nnx.state(m1), nnx.state(m2))
  else:
    for _ in range(4):
      helper(m1, o1, x, y)
  np.testing.assert_array_equal(m1.frozen.kernel[...], frozen0)
  assert float(jnp.abs(m1.bn.mean[...]).sum()) > 0  # running stats moved


def test_nnx_plain_optax_optimizer():
  """nnx_train_step also drives an optax peer without extra-args support."""
  x, y = _data()
  model = NnxMLP(nnx.Rngs(0))
  plain = optax.GradientTransformation(optax.sgd(0.1).init, optax.sgd(0.1).update)
  optimizer = nnx.Optimizer(model, plain, wrt=nnx.Param)
  step = nnx.jit(lambda m, o, x, y: aflax.nnx_train_step(o, m, nnx_loss, x=x, y=y))
  first = step(model, optimizer, x, y)
  for _ in range(10):
    last = step(model, optimizer, x, y)
  assert last < first


def test_nnx_has_aux_and_learning_rate():
  x, y = _data()
  model = NnxMLP(nnx.Rngs(0))
  optimizer = nnx.Optimizer(model, adaptlr.hypergradient(0.05, lookahead=True), wrt=nnx.Param)

  def loss_aux(model, x, y):
    pred = model(x)
    return jnp.mean((pred - y) ** 2), {"mae": jnp.mean(jnp.abs(pred - y))}

  step = nnx.jit(lambda m, o, x, y: aflax.nnx_train_step(o, m, loss_aux, has_aux=True, x=x, y=y))
  loss, aux = step(model, optimizer, x, y)
  assert set(aux) == {"mae"}
  assert np.isfinite(float(aflax.learning_rate(optimizer)))
  assert float(aflax.learning_rate(optimizer)) != 0.05  # the rate moved


# ---------------------------------------------------------------------- Linen --
# The Linen step is a thin wrapper (apply_gradients); its equivalence with the
# functional loop is checked for one method of each kind, to keep the file fast.
LINEN_REFERENCE = ("tlr", "hypergradient")


@pytest.mark.parametrize("method", [m for m in METHODS if m != "tlr_chain_clip"])
def test_linen_loop_matches_functional(method):
  make, _ = _METHODS[method]
  x, y = _data()
  model = LinenMLP()
  params0 = model.init(jax.random.key(0), x)["params"]
  loss_p = lambda params, x, y: jnp.mean((model.apply({"params": params}, x) - y) ** 2)
  state = TrainState.create(apply_fn=model.apply, params=params0, tx=make())

  @jax.jit
  def train_step(state, x, y):
    return aflax.linen_train_step(state, loss_p, x=x, y=y)

  losses = []
  for _ in range(STEPS):
    state, loss = train_step(state, x, y)
    losses.append(float(loss))
  assert np.all(np.isfinite(losses))
  assert losses[-1] < 0.7 * losses[0], losses
  assert int(state.step) == STEPS
  rate = jax.tree.leaves(aflax.learning_rate(state))[0]
  assert np.isfinite(float(jnp.ravel(jnp.asarray(rate))[0]))
  if method not in LINEN_REFERENCE:
    return

  params_ref, state_ref, losses_ref = _functional_run(make(), loss_p, params0, x, y)
  np.testing.assert_allclose(losses, losses_ref, rtol=2e-5)
  _assert_trees_close(state.params, params_ref)
  _assert_trees_close(state.opt_state, state_ref)


@pytest.mark.slow  # a training loop (the Flax loops and README section run in make test)
def test_linen_apply_gradients_keeps_subclass_fields():
  class StateWithStats(TrainState):
    batch_stats: dict

  x, y = _data()
  model = LinenMLP()
  params = model.init(jax.random.key(0), x)["params"]
  loss_p = lambda params, x, y: jnp.mean((model.apply({"params": params}, x) - y) ** 2)
  state = StateWithStats.create(
    apply_fn=model.apply,
    params=params,
    tx=adaptlr.hypergradient(0.05, lookahead=True),
    batch_stats={"m": jnp.ones(3)},
  )
  loss, grads = jax.value_and_grad(loss_p)(state.params, x, y)
  new = aflax.apply_gradients(state, grads, value=loss, value_fn=loss_p, x=x, y=y)
  assert isinstance(new, StateWithStats) and int(new.step) == 1
  np.testing.assert_array_equal(new.batch_stats["m"], jnp.ones(3))
  # Plain TrainState.apply_gradients cannot pass value_fn: the method says so.
  with pytest.raises(ValueError, match="value_fn"):
    state.apply_gradients(grads=grads)
