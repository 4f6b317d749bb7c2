"""Checks an installed adaptlr wheel from outside the source tree (run by .ci/wheel_check.sh).

Usage: python -I wheel_smoke.py DIST_DIR, from a directory that holds no adaptlr source, in a
virtual environment where the wheel in DIST_DIR is installed with its ``flax`` extra.

Checks: the wheel's files are ``adaptlr/`` and its dist-info only, with ``py.typed`` and the
license; the sdist has the changelog and no tests; the package imported is the installed one;
``adaptlr.__version__`` equals the wheel's version and its metadata's; ``import adaptlr`` does not
import Flax; every method of ``adaptlr.registry.METHODS``, built at its defaults, takes jitted
steps on a small quadratic with finite params and rates; ``adaptlr.flax.nnx_train_step`` trains
an NNX model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import pathlib
import sys
import sysconfig
import tarfile
import zipfile


def check_wheel_files(dist: pathlib.Path) -> str:
  """The wheel's version, after checking the files and metadata it ships."""
  (wheel,) = dist.glob("adaptlr-*.whl")
  version = wheel.name.split("-")[1]
  info = f"adaptlr-{version}.dist-info/"
  with zipfile.ZipFile(wheel) as zf:
    names = zf.namelist()
    metadata = zf.read(info + "METADATA").decode()
  stray = [n for n in names if not n.startswith(("adaptlr/", info))]
  assert not stray, f"files outside adaptlr/ in the wheel: {stray}"
  for name in (
    "adaptlr/py.typed",
    "adaptlr/__init__.py",
    "adaptlr/flax.py",
    info + "licenses/LICENSE",
  ):
    assert name in names, f"{name} missing from {wheel.name}"
  for line in (f"Version: {version}", "License-Expression: Apache-2.0", "Provides-Extra: flax"):
    assert line in metadata.splitlines(), f"METADATA lacks {line!r}"
  (sdist,) = dist.glob(f"adaptlr-{version}.tar.gz")
  with tarfile.open(sdist) as tf:
    members = {m.name.split("/", 1)[-1] for m in tf.getmembers()}
  for name in ("CHANGELOG.md", "LICENSE", "README.md", "adaptlr/py.typed"):
    assert name in members, f"{name} missing from {sdist.name}"
  assert not any(m.startswith("tests/") for m in members), "partial tests/ in the sdist"
  print(f"{wheel.name}: {len(names)} files, METADATA ok; {sdist.name}: {len(members)} entries")
  return version


def check_installed(version: str) -> None:
  import adaptlr

  site = pathlib.Path(sysconfig.get_paths()["purelib"]).resolve()
  where = pathlib.Path(adaptlr.__file__).resolve()
  assert site in where.parents, f"adaptlr imported from {where}, not the installed wheel"
  assert adaptlr.__version__ == version, (adaptlr.__version__, version)
  assert importlib.metadata.version("adaptlr") == version
  assert importlib.resources.files("adaptlr").joinpath("py.typed").is_file(), "no py.typed"
  assert "flax" not in sys.modules, "import adaptlr imported flax"
  print(f"adaptlr {adaptlr.__version__} from {where.parent}")


def check_methods() -> None:
  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax

  import adaptlr

  h = jnp.array([1.0, 4.0, 10.0])

  def loss_fn(params):
    return 0.5 * jnp.sum(h * params["w"] ** 2) + params["b"] ** 2

  params0 = {"w": jnp.array([1.0, -2.0, 0.5]), "b": jnp.array(0.5)}
  assert set(adaptlr.registry.METHODS) <= set(adaptlr.__all__)
  for name, spec in adaptlr.registry.METHODS.items():
    opt = spec.optimizer()

    @jax.jit
    def step(params, state, opt=opt):
      loss, grads = jax.value_and_grad(loss_fn)(params)
      updates, state = opt.update(grads, state, params, value=loss, grad=grads, value_fn=loss_fn)
      return optax.apply_updates(params, updates), state, loss

    params, state = params0, opt.init(params0)
    losses = []
    for _ in range(3):
      params, state, loss = step(params, state)
      losses.append(float(loss))
    finite = all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(params))
    assert finite, f"{name}: non-finite params {params}"
    rate = adaptlr.learning_rate(state)
    assert all(np.all(np.isfinite(r)) for r in jax.tree.leaves(rate)), f"{name}: rate {rate}"
    print(f"{name:17s} 3 jitted steps, loss {losses[0]:.4g} -> {float(loss_fn(params)):.4g}")


def check_flax() -> None:
  if sys.version_info < (3, 11):  # flax>=0.11, the flax extra, needs Python 3.11
    assert importlib.util.find_spec("flax") is None
    print("adaptlr.flax not checked: the flax extra needs Python >= 3.11")
    return
  import jax
  import jax.numpy as jnp
  from flax import nnx

  import adaptlr
  import adaptlr.flax

  model = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
  x = jax.random.normal(jax.random.key(1), (32, 3))
  y = x.sum(1, keepdims=True)
  loss_fn = lambda model, x, y: jnp.mean((model(x) - y) ** 2)
  optimizer = nnx.Optimizer(model, adaptlr.newton_lr(), wrt=nnx.Param)
  step = nnx.jit(lambda m, o, x, y: adaptlr.flax.nnx_train_step(o, m, loss_fn, x=x, y=y))
  losses = [float(step(model, optimizer, x, y)) for _ in range(20)]
  assert losses[-1] < 0.5 * losses[0], losses
  print(f"adaptlr.flax.nnx_train_step (newton_lr): loss {losses[0]:.4g} -> {losses[-1]:.4g}")


def main() -> None:
  version = check_wheel_files(pathlib.Path(sys.argv[1]))
  check_installed(version)
  check_methods()
  check_flax()
  print("wheel smoke test passed")


if __name__ == "__main__":
  main()
