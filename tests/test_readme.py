"""The README: every Python block runs on its own, and every number is a committed one."""

import json
import math
import pathlib
import re
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
RESULTS = ROOT / "benchmarks" / "results"
MAX_LINES = 200


def _python_blocks() -> list[str]:
  return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _block_id(index: int) -> str:
  return f"{index}-{'flax' if 'from flax' in _python_blocks()[index] else 'optax'}"


def _method_table() -> str:
  text = README.read_text()
  return text[: text.index("\n## ")]


def _networks() -> dict:
  return json.loads((RESULTS / "networks" / "results.json").read_text())


@pytest.mark.parametrize("index", range(len(_python_blocks())), ids=_block_id)
def test_readme_python_block_runs(index, capsys):
  """Each block runs in a fresh namespace (so it defines all it uses) and trains."""
  namespace = {"__name__": "__readme__"}
  with warnings.catch_warnings():
    warnings.simplefilter("error", UserWarning)  # e.g. float64 data truncated to float32
    exec(compile(_python_blocks()[index], f"README.md block {index}", "exec"), namespace)
  out = capsys.readouterr().out
  match = re.search(r"loss ([\d.]+) -> ([\d.]+), learned rate ([\d.e+-]+)", out)
  assert match, f"the block must print 'loss A -> B, learned rate R'; it printed {out!r}"
  first, last, rate = map(float, match.groups())
  assert last < 0.1 * first, (first, last)
  assert math.isfinite(rate) and rate > 0, rate
  losses = namespace["losses"]
  assert all(map(math.isfinite, losses)), losses


def test_readme_examples_use_the_recommended_configuration():
  """The first examples are the configuration the benchmarks recommend for networks."""
  from benchmarks import methods, report

  config = next(c for c in methods.ADAPTLR_CONFIGS if c.name == report.RECOMMENDED_NETWORKS)
  problem = type("Problem", (), {"steps": 7})()
  assert set(config.kwargs(problem)) == {"direction", "decay_steps"}, config
  blocks = _python_blocks()
  assert len(blocks) == 2, "one Optax and one Flax NNX example"
  for block in blocks:
    assert f"adaptlr.{config.method}(" in block, block
    assert "direction=optax.scale_by_adam(b1=0.5)" in block and "decay_steps=num_steps" in block


def test_readme_method_table_lists_every_registered_method():
  from adaptlr.registry import METHODS

  table = _method_table()
  missing = [name for name in METHODS if f"`{name}`" not in table]
  assert not missing, f"add a row for {missing} to the README's method table"


def test_readme_step_costs_are_the_committed_results():
  """The method table's step cost is overhead.json's ratio to optax.sgd, per method."""
  from adaptlr.registry import METHODS

  overhead = json.loads((RESULTS / "overhead.json").read_text())["results"]
  rows = {
    m.group(1): m.group(2)
    for m in re.finditer(r"^\| `(\w+)` \|.*\| ([\d.]+)× \|$", _method_table(), re.M)
  }
  assert set(rows) == set(METHODS), rows
  for name, cost in rows.items():
    assert cost == f"{overhead[name]['ratio_vs_sgd']:.2f}", (name, cost)


def test_readme_recommendation_table_is_the_committed_results():
  """The README's one results table is generated from the committed `networks`
  results (benchmarks.report.recommendation_table)."""
  from benchmarks import report

  table = report.recommendation_table(_networks())
  assert "**recommended**" in table and "`contrib.prodigy`" in table
  assert table in README.read_text(), (
    "regenerate the README's recommendation table: python -c \"import json; from "
    "benchmarks import report; print(report.recommendation_table(json.load(open("
    "'benchmarks/results/networks/results.json'))))\""
  )
  assert README.read_text().count("\n|---|") == 2, "the method table and one results table"


def test_readme_networks_description_is_the_committed_results():
  """ "the four networks ... initial rates 1e-5 … 1 with 3 seeds" as the results hold."""
  specs = [p["spec"] for p in _networks()["problems"].values()]
  rates = sorted({r for s in specs for r in s["rates"]})
  seeds = {len(s["seeds"]) for s in specs}
  assert len(seeds) == 1, seeds
  fmt = lambda r: re.sub(r"e-0*", "e-", f"{r:.0e}") if r < 1 else f"{r:g}"
  words = {3: "three", 4: "four", 5: "five", 6: "six"}
  text = " ".join(README.read_text().split())
  assert f"the {words.get(len(specs), len(specs))} networks of the `networks` benchmark" in text
  assert f"initial rates {fmt(rates[0])} … {fmt(rates[-1])} with {seeds.pop()} seeds" in text


def test_readme_command_times_are_measured():
  """`make test`'s time is the Makefile's measured one; `make demo`'s bound holds for
  the committed quick report."""
  text = README.read_text()
  test_time = re.search(r"make test .*?: (\d+ min \d+ s) of tests", text).group(1)
  assert test_time in (ROOT / "Makefile").read_text(), test_time
  bound = float(re.search(r"make demo .*?\(< (\d+) min", text).group(1))
  quick = (RESULTS / "quick" / "report.md").read_text()
  wall = float(re.search(r"wall time ([\d.]+) min", quick).group(1))
  assert wall < bound, (wall, bound)


def test_readme_is_short_and_has_no_issue_numbers_or_version_history():
  text = README.read_text()
  assert len(text.splitlines()) <= MAX_LINES, len(text.splitlines())
  assert not re.search(r"\bissues? #?\d+", text, re.I), "no issue numbers in the README"
  assert not re.search(r"adaptlr \d+\.\d", text), "version history goes to CHANGELOG.md"


def test_readme_links_point_at_files():
  text = README.read_text()
  links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
  missing = [t for t in links if "://" not in t and not (ROOT / t).exists()]
  assert not missing, missing
