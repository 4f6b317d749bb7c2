"""The package's layers (CONTRIBUTING.md, "The layers"): imports go down, never in a circle.

Read from the source with ``ast``: every ``adaptlr`` module imports only modules of
a lower layer, at module level; ``benchmarks/`` has no import circle, function-level
imports included.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LAYERS = {
  "_validate": 0,
  "_granularity": 1,
  "_loss": 1,
  "probes": 2,
  "curvature": 2,
  "_step": 3,
  "_tlr": 4,
  "_hypergradient": 4,
  "_newton": 4,
  "_probabilistic": 4,
  "_vsgd": 4,
  "_smd": 4,
  "_almeida": 4,
  "registry": 5,
  "flax": 6,
  "__init__": 6,
}
# The one import inside a function: `adaptlr.flax` on first use, so `import adaptlr`
# never imports Flax (an optional dependency), not to dodge a circle.
LAZY = {("__init__", "flax")}


def _imports(path: pathlib.Path, package: str):
  """(imported module, at module level?) for each import of ``package`` in ``path``."""
  tree = ast.parse(path.read_text())
  top = {id(n) for n in tree.body}
  for node in ast.walk(tree):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      if node.module == package:
        names = [a.name for a in node.names]
      elif node.module.startswith(package + "."):
        names = [node.module[len(package) + 1 :].split(".")[0]]
    elif isinstance(node, ast.Import):
      names = [a.name.split(".")[1] for a in node.names if a.name.startswith(package + ".")]
    elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module":
      arg = node.args[0] if node.args else None
      if isinstance(arg, ast.Constant) and str(arg.value).startswith(package + "."):
        names = [str(arg.value).split(".")[1]]
    for name in names:
      yield name, id(node) in top


def test_every_module_has_a_layer():
  modules = {p.stem for p in (ROOT / "adaptlr").glob("*.py")}
  assert modules == set(LAYERS), f"add {modules - set(LAYERS)} to LAYERS and CONTRIBUTING.md"


@pytest.mark.parametrize("module", sorted(LAYERS))
def test_imports_go_down(module):
  for name, at_top in _imports(ROOT / "adaptlr" / f"{module}.py", "adaptlr"):
    assert name in LAYERS, f"{module} imports unknown adaptlr.{name}"
    if (module, name) in LAZY:
      continue
    assert at_top, f"{module} imports adaptlr.{name} inside a function"
    below = LAYERS[name] < LAYERS[module] or (module == "__init__" and name != "__init__")
    assert below, f"{module} (layer {LAYERS[module]}) imports {name} (layer {LAYERS[name]})"


def test_benchmarks_have_no_import_circle():
  files = {
    str(p.relative_to(ROOT / "benchmarks").with_suffix("")).replace("/", "."): p
    for p in (ROOT / "benchmarks").rglob("*.py")
  }
  graph = {}
  for mod, path in files.items():
    deps = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
      if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("benchmarks"):
        base = node.module[len("benchmarks") :].lstrip(".")
        for a in node.names:
          full = f"{base}.{a.name}" if base else a.name
          deps.add(full if full in files else base)
    graph[mod] = {d for d in deps if d in files and d != mod and not d.endswith("__init__")}

  def cycle_from(start):
    stack, seen = [(start, [start])], set()
    while stack:
      node, path = stack.pop()
      for nxt in graph.get(node, ()):
        if nxt == start:
          return path + [start]
        if nxt not in seen:
          seen.add(nxt)
          stack.append((nxt, path + [nxt]))
    return None

  cycles = [c for c in map(cycle_from, graph) if c]
  assert not cycles, f"import circles in benchmarks/: {cycles}"


def test_docstrings_are_optax_sized():
  """The longest docstring in ``adaptlr/`` is at most 80 lines (Optax's contrib methods:
  the rule, Args, an Example, References; measured stories live in docs/methods/)."""
  lengths = {}
  for path in (ROOT / "adaptlr").glob("*.py"):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)):
        doc = ast.get_docstring(node, clean=False)
        if doc:
          lengths[f"{path.name}:{getattr(node, 'name', '<module>')}"] = doc.count("\n") + 1
  longest = max(lengths, key=lengths.get)
  assert lengths[longest] <= 80, (longest, lengths[longest])
