"""The docs pages: every Python code block runs, and the result tables are the
committed results.

A page's code blocks run each on its own, or, on a page that says
``% docs-test: page order``, in page order in one namespace (a page whose
examples build on each other).
"""

import contextlib
import functools
import io
import json
import math
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGE_ORDER = "% docs-test: page order"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def _blocks(page):
  return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def _cases():
  for page in PAGES:
    name = page.relative_to(DOCS).as_posix()
    blocks = _blocks(page)
    group = pytest.mark.xdist_group(name)  # one worker per page: its runs are cached
    if PAGE_ORDER in page.read_text():
      yield pytest.param(name, None, id=name, marks=group)
    else:
      yield from (pytest.param(name, i, id=f"{name}[{i}]", marks=group) for i in range(len(blocks)))


@functools.cache
def _run(name, index):
  """Runs a page's blocks (all, in order, when ``index`` is None): (namespace, stdout)."""
  page = DOCS / name
  blocks = _blocks(page) if index is None else [_blocks(page)[index]]
  namespace, out = {"__name__": f"docs.{name}"}, io.StringIO()
  with contextlib.redirect_stdout(out):
    for block in blocks:
      exec(compile(block, str(page), "exec"), namespace)
  return namespace, out.getvalue()


def test_pages_have_code():
  assert any(_blocks(p) for p in PAGES), "no ```python blocks found under docs/"


@pytest.mark.parametrize("name, index", list(_cases()))
def test_docs_code_block_runs(name, index):
  _run(name, index)


@pytest.mark.xdist_group("optax.md")
def test_optax_page_idioms_train():
  """inject_hyperparams, schedules as bounds, momentum and weight decay, an Adam
  direction and multi_transform all train and report a learned rate."""
  namespace, out = _run("optax.md", None)
  losses = {}
  for line in out.splitlines():
    if " loss " in line and " rate " in line:
      name, rest = line.split(" loss ")
      losses[name.strip()] = float(rest.split()[0])
  assert set(losses) == set(namespace["optimizers"])
  start = float(namespace["loss_fn"](namespace["params"], namespace["x"], namespace["y"]))
  assert all(v < 0.1 * start for v in losses.values()), (start, losses)
  # the sweep: every initial rate trains
  assert all(float(v) < 0.1 * start for v in namespace["final_losses"])


@pytest.mark.xdist_group("getting_started.md")
@pytest.mark.parametrize("index", [0, 1])
def test_getting_started_examples_train(index):
  """The first examples (plain Optax, Flax NNX) train and report a learned rate."""
  namespace, out = _run("getting_started.md", index)
  match = re.search(r"loss ([\d.]+) -> ([\d.]+), learned rate ([\d.e+-]+)", out)
  assert match, out
  first, last, rate = map(float, match.groups())
  assert last < 0.1 * first, (first, last)
  assert math.isfinite(rate) and rate > 0, rate
  assert all(map(math.isfinite, namespace["losses"]))


@pytest.mark.xdist_group("flax.md")
def test_flax_page_examples_train():
  namespace, _ = _run("flax.md", None)
  for losses in (namespace["nnx_losses"], namespace["linen_losses"]):
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("module", ["adaptlr", "adaptlr.flax"])
def test_api_page_documents_every_public_name(module):
  """docs/api.md has an autodoc entry for every name in the module's ``__all__``."""
  import importlib

  api = (DOCS / "api.md").read_text()
  documented = set(re.findall(r"^\.\. auto\w+:: (?:adaptlr\.(?:flax\.)?)?(\w+)", api, re.M))
  missing = [n for n in importlib.import_module(module).__all__ if n not in documented]
  assert not missing, f"add {missing} to docs/api.md"


def _results(profile):
  return json.loads((ROOT / "benchmarks" / "results" / profile / "results.json").read_text())


@pytest.mark.parametrize(
  "page, profile, table",
  [
    ("which_optimizer.md", "networks", "recommendation_table"),
    ("which_optimizer.md", "networks", "summary_table"),
    ("benchmarks.md", "full", "summary_table"),
  ],
)
def test_tables_are_the_committed_results(page, profile, table):
  """The pages' result tables are generated from the committed results
  (benchmarks.report): a number in them is one the results hold."""
  from benchmarks import report

  expected = getattr(report, table)(_results(profile))
  assert expected in (DOCS / page).read_text(), (
    f"regenerate the {table} of docs/{page}: python -c \"import json; from benchmarks "
    f"import report; print(report.{table}(json.load(open("
    f"'benchmarks/results/{profile}/results.json'))))\""
  )
