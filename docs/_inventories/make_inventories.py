"""Writes the intersphinx inventories the docs link through, without the network.

The docs build never downloads: ``docs/conf.py`` reads JAX's, Optax's, Flax's and
Python's ``objects.inv`` from this folder. Each holds only the names the docs
reference (signatures and pages), with the URL of that name's page in the
project's own docs; every name is checked against the installed package, and the
private path that autodoc resolves an annotation to (``optax._src.base.…``) points
to the same page. Refresh after adding a reference, or when a project moves a page:

  python docs/_inventories/make_inventories.py
"""

import importlib
import inspect
import pathlib
import sys
import zlib

HERE = pathlib.Path(__file__).resolve().parent

# name -> the name the project documents it under (None: the same). Optax and JAX
# give each name its own page: api/generated/<name>.html, _autosummary/<name>.html.
OPTAX = {
  "optax.GradientTransformation": None,
  "optax.GradientTransformationExtraArgs": None,
  "optax.OptState": None,
  "optax.Params": None,
  "optax.Updates": None,
  "optax.adam": None,
  "optax.adamw": None,
  "optax.apply_updates": None,
  "optax.chain": None,
  "optax.clip_by_global_norm": None,
  "optax.contrib.prodigy": None,
  "optax.contrib.reduce_on_plateau": None,
  "optax.contrib.schedule_free_adamw": None,
  "optax.inject_hyperparams": "optax.schedules.inject_hyperparams",
  "optax.linear_schedule": "optax.schedules.linear_schedule",
  "optax.masked": None,
  "optax.MultiSteps": None,
  "optax.multi_transform": "optax.partition",
  "optax.scale_by_adam": None,
  "optax.set_to_zero": None,
  "optax.sgd": None,
  "optax.trace": None,
  "optax.tree.get": "optax.tree_utils.tree_get",
  "optax.warmup_cosine_decay_schedule": "optax.schedules.warmup_cosine_decay_schedule",
}
JAX = {
  "jax.Array": None,
  "jax.jit": None,
  "jax.jvp": None,
  "jax.lax.map": None,
  "jax.value_and_grad": None,
  "jax.vmap": None,
}
# Flax groups names by page (docs_nnx/api_reference/ in the Flax repository).
FLAX = {
  "flax.nnx.Module": ("api_reference/flax.nnx/module.html", None),
  "flax.nnx.Optimizer": (
    "api_reference/flax.nnx/training/optimizer.html",
    "flax.nnx.optimizer.Optimizer",
  ),
  "flax.nnx.Rngs": ("api_reference/flax.nnx/rnglib.html", None),
  "flax.nnx.State": ("api_reference/flax.nnx/state.html", None),
  "flax.training.train_state.TrainState": ("api_reference/flax.training.html", None),
}
PYTHON = {
  "collections.abc.Callable": ("library/collections.abc.html", None),
  "collections.abc.Mapping": ("library/collections.abc.html", None),
  "typing.Any": ("library/typing.html", None),
}


def _resolve(name):
  """The installed object ``name`` names (an ImportError/AttributeError if gone)."""
  parts = name.split(".")
  for i in range(len(parts) - 1, 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:i]))
    except ImportError:
      continue
    for attr in parts[i:]:
      obj = getattr(obj, attr)
    return obj
  raise ImportError(name)


def _entries(names):
  """(name, role, uri) for each name and for the path autodoc resolves it to."""
  for name, (page, documented) in names.items():
    documented = documented or name
    obj = _resolve(name)
    role = "py:function" if inspect.isroutine(obj) else "py:class"  # type aliases: class
    uri = f"{page}#{documented}"
    yield name, role, uri
    if inspect.isroutine(obj) or isinstance(obj, type):
      private = f"{obj.__module__}.{obj.__qualname__}"
      if private != name:
        yield private, role, uri


def write(filename, project, names, version):
  lines = sorted({f"{n} {role} 1 {uri} -" for n, role, uri in _entries(names)})
  header = (
    f"# Sphinx inventory version 2\n# Project: {project}\n# Version: {version}\n"
    "# The remainder of this file is compressed using zlib.\n"
  )
  body = zlib.compress(("\n".join(lines) + "\n").encode())
  (HERE / filename).write_bytes(header.encode() + body)
  print(f"{filename}: {len(lines)} names ({project} {version})")


def main():
  import flax
  import jax
  import optax

  optax_pages = {n: (f"api/generated/{d or n}.html", d) for n, d in OPTAX.items()}
  write("optax.inv", "Optax", optax_pages, optax.__version__)
  jax_pages = {n: (f"_autosummary/{d or n}.html", d) for n, d in JAX.items()}
  write("jax.inv", "JAX", jax_pages, jax.__version__)
  write("flax.inv", "Flax", FLAX, flax.__version__)
  write("python.inv", "Python", PYTHON, f"{sys.version_info.major}.{sys.version_info.minor}")


if __name__ == "__main__":
  main()
