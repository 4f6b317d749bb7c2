"""The notebooks run, on small settings, and match their generator.

Each notebook in ``notebooks/`` is executed with nbclient and
``ADAPTLR_NB_SMALL=1`` (the notebooks read it to shrink their settings; the
target is < 60 s per notebook on 2 CPU cores — a target, not an assertion:
speed lives in benchmarks, and `pytest --durations` shows it). The committed
notebooks must be what ``notebooks/_build.py`` generates (cell sources) and must
carry outputs without errors.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NB_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9]*.ipynb"))


def _builder():
  spec = importlib.util.spec_from_file_location("_nb_build", NB_DIR / "_build.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_every_generated_notebook_is_committed():
  names = {p.stem for p in NOTEBOOKS}
  assert set(_builder().NOTEBOOKS) == names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_generator_and_has_outputs(path):
  nb = nbformat.read(path, as_version=4)
  cells = _builder().NOTEBOOKS[path.stem]()
  assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in cells], (
      f"{path.name} is out of date: run `python notebooks/_build.py --execute {path.stem}`")
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.get("execution_count") for c in code), f"{path.name} was not executed"
  assert not [o for c in code for o in c.outputs if o.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_small(path, monkeypatch):
  monkeypatch.setenv("ADAPTLR_NB_SMALL", "1")
  monkeypatch.setenv("XLA_FLAGS", "")  # not the 8 simulated devices of conftest.py
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(   # raises CellExecutionError if a cell (or its asserts) fails
      nb, timeout=600, kernel_name="python3",
      resources={"metadata": {"path": str(NB_DIR)}}).execute()
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.get("execution_count") for c in code)
