"""Executes notebook sources (``NN_name.py``) and writes the paired ``NN_name.ipynb``.

    python notebooks/_run.py                  # every notebook, human-sized settings
    python notebooks/_run.py 02_sweeps        # one notebook
    python notebooks/_run.py --small          # the test suite's settings (ADAPTLR_NB_SMALL=1)

The same as ``jupytext --to ipynb --execute notebooks/NN_name.py`` without
nbconvert: jupytext reads the percent-format source, nbclient runs it with this
folder as the working directory (so ``import _shared`` works) and this checkout's
``adaptlr`` first on the kernel's path.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import jupytext
import nbclient

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOKS = sorted(p.stem for p in HERE.glob("[0-9]*.py"))


def run(nb, *, small=False, timeout=1800):
  """Executes the notebook ``nb`` in place; returns the seconds taken.

  Args:
    nb: a notebook, as ``jupytext.read`` returns it.
    small: sets ``ADAPTLR_NB_SMALL=1`` (the test suite's quick settings) for the kernel.
    timeout: seconds a cell may run.

  Raises:
    nbclient.exceptions.CellExecutionError: if a cell (or an assert in it) fails.
  """
  env = {"ADAPTLR_NB_SMALL": "1" if small else "0",
         "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
  saved = {k: os.environ.get(k) for k in env}
  os.environ.update(env)   # the kernel inherits this process's environment
  try:
    start = time.perf_counter()
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": str(HERE)}}).execute()
    return time.perf_counter() - start
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)
      else:
        os.environ[k] = v


def execute(name, *, small=False):
  """Runs ``name.py`` and writes ``name.ipynb`` with its outputs; returns the seconds taken."""
  nb = jupytext.read(HERE / f"{name}.py")
  seconds = run(nb, small=small)
  write(nb, HERE / f"{name}.ipynb")
  return seconds


def write(nb, path):
  """Writes ``nb`` as ``.ipynb`` with cell ids by position, so a rerun only changes what changed."""
  for i, cell in enumerate(nb.cells):
    cell.id = f"cell-{i}"
    cell.metadata.pop("execution", None)   # timestamps
  jupytext.write(nb, path, fmt="ipynb")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("names", nargs="*", default=NOTEBOOKS, help=f"any of {NOTEBOOKS}")
  parser.add_argument("--small", action="store_true", help="the test suite's quick settings")
  args = parser.parse_args()
  unknown = sorted(set(args.names) - set(NOTEBOOKS))
  if unknown:
    parser.error(f"unknown notebooks {unknown}; pass any of {NOTEBOOKS}")
  for name in args.names:
    print(f"{name}: executed in {execute(name, small=args.small):.1f} s", file=sys.stderr)


if __name__ == "__main__":
  main()
