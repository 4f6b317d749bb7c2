"""The notebooks run, on small settings, and each executed ``.ipynb`` matches its source.

The source of each notebook is a jupytext percent-format script,
``notebooks/NN_name.py``; the committed ``NN_name.ipynb`` next to it is the same
notebook executed (``notebooks/README.md`` has the command). Here each ``.py``
source is executed by ``notebooks/_run.py`` (jupytext and nbclient) with
``ADAPTLR_NB_SMALL=1`` (the notebooks read it to shrink their settings; the
target is < 60 s per notebook on 2 CPU cores — a target, not an assertion: speed
lives in benchmarks, and `pytest --durations` shows it); the notebooks assert on
their own results, so a failing assert fails the test. The committed ``.ipynb``
must have the cell sources of its ``.py`` and carry outputs without errors.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
jupytext = pytest.importorskip("jupytext")

NB_DIR = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NB_DIR.glob("[0-9]*.py"))


def _runner():
  spec = importlib.util.spec_from_file_location("_nb_run", NB_DIR / "_run.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _cells(nb):
  return [(c.cell_type, c.source) for c in nb.cells]


def test_every_source_has_its_notebook_and_back():
  assert SOURCES, f"no notebook sources in {NB_DIR}"
  assert {p.stem for p in SOURCES} == {p.stem for p in NB_DIR.glob("[0-9]*.ipynb")}


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_source_and_has_outputs(source):
  nb = nbformat.read(source.with_suffix(".ipynb"), as_version=4)
  assert _cells(nb) == _cells(jupytext.read(source)), (
    f"{source.stem}.ipynb is out of date with {source.name}: "
    f"run `python notebooks/_run.py {source.stem}` (see notebooks/README.md)"
  )
  assert nb.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", "not a jupytext pair"
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code and all(c.get("execution_count") for c in code), (
    f"{source.stem}.ipynb was not executed"
  )
  assert not [o for c in code for o in c.outputs if o.output_type == "error"]


@pytest.mark.slow  # runs every notebook
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_runs_small(source, monkeypatch):
  monkeypatch.setenv("XLA_FLAGS", "")  # not the 8 simulated devices of conftest.py
  nb = jupytext.read(source)
  _runner().run(
    nb, small=True, timeout=600
  )  # raises CellExecutionError if a cell (or its asserts) fails
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert code and all(c.get("execution_count") for c in code)
  assert not [o for c in code for o in c.outputs if o.output_type == "error"]
