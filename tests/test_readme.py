"""The README's self-contained example runs and trains."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_usage_example_runs(capsys):
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  usage = next(b for b in blocks if "import jax, jax.numpy as jnp, optax, adaptlr" in b)
  namespace = {}
  exec(compile(usage, "README.md", "exec"), namespace)
  loss = float(namespace["loss_fn"](namespace["params"], namespace["x"], namespace["y"]))
  assert loss < 1e-3, loss
  assert "learning rate" in capsys.readouterr().out


def test_readme_method_table_lists_every_registered_method():
  from adaptlr.registry import METHODS

  text = README.read_text()
  table = text[: text.index("## Quick start")]
  missing = [name for name in METHODS if f"`{name}`" not in table]
  assert not missing, f"add a row for {missing} to the README's method table"


def test_readme_optax_idioms_run(capsys):
  """The Optax section: inject_hyperparams, schedules as bounds, momentum and weight
  decay, an Adam direction and multi_transform all train and report a learned rate."""
  blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
  idioms = next(b for b in blocks if "# Optax idioms" in b)
  namespace = {}
  exec(compile(idioms, "README.md", "exec"), namespace)
  out = capsys.readouterr().out
  for name in namespace["optimizers"]:
    assert name in out
  losses = [float(line.split("loss")[1].split()[0]) for line in out.splitlines() if "loss" in line]
  assert len(losses) == len(namespace["optimizers"])
  start = float(namespace["loss_fn"](namespace["params"], namespace["x"], namespace["y"]))
  assert all(v < 0.1 * start for v in losses), (start, losses)


def test_readme_network_table_is_the_committed_results():
  """The README's network table is generated from the committed `networks`
  results (benchmarks.report.summary_table): a number in it is one they hold."""
  import json

  from benchmarks import report

  results = README.parent / "benchmarks" / "results" / "networks" / "results.json"
  table = report.summary_table(json.loads(results.read_text()))
  assert table in README.read_text(), (
    "regenerate the README's network table: python -c \"import json; from benchmarks "
    "import report; print(report.summary_table(json.load(open("
    "'benchmarks/results/networks/results.json'))))\""
  )


def test_readme_recommendation_table_is_the_committed_results():
  """The README's "Which optimizer should I use?" table is generated from the
  committed `networks` results (benchmarks.report.recommendation_table)."""
  import json

  from benchmarks import report

  results = README.parent / "benchmarks" / "results" / "networks" / "results.json"
  table = report.recommendation_table(json.loads(results.read_text()))
  assert "**recommended**" in table and "`contrib.prodigy`" in table
  assert table in README.read_text(), (
    "regenerate the README's recommendation table: python -c \"import json; from "
    "benchmarks import report; print(report.recommendation_table(json.load(open("
    "'benchmarks/results/networks/results.json'))))\""
  )
