"""Fast checks of the benchmarks: data, problems, methods, harness, report, study I/O."""

from __future__ import annotations

import dataclasses
import gzip
import importlib
import json
import struct
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adaptlr.registry import METHODS
from benchmarks import data, harness, io, methods, problems, runner
from benchmarks.studies import overhead


# ------------------------------------------------------------------ data --
@pytest.mark.parametrize(
  "name,n_train,n_test,dim,kind",
  [
    ("digits", 1437, 360, 64, "classification"),
    ("diabetes", 353, 89, 10, "regression"),
    ("mnist_small", 4000, 1000, 784, "classification"),
    ("boston", 400, 106, 13, "regression"),
  ],
)
def test_bundled_loaders_shapes_dtypes(name, n_train, n_test, dim, kind):
  x, y = data.load(name, "train")
  xt, yt = data.load(name, "test")
  assert x.shape == (n_train, dim) and xt.shape == (n_test, dim)
  assert x.dtype == np.float32 and xt.dtype == np.float32
  assert y.shape == (n_train,) and yt.shape == (n_test,)
  assert y.dtype == (np.int32 if kind == "classification" else np.float32)
  assert data.info(name).bundled and data.info(name).kind == kind
  xa, _ = data.load(name, "all")
  assert len(xa) == n_train + n_test
  # deterministic split, and image sets scaled to [0, 1]
  np.testing.assert_array_equal(data.load(name, "train")[0], x)
  if name in ("digits", "mnist_small"):
    assert 0.0 <= x.min() and x.max() <= 1.0 and len(np.unique(y)) == 10


def test_missing_set_names_its_install_step(tmp_path, monkeypatch):
  monkeypatch.setenv("ADAPTLR_DATA", str(tmp_path))
  monkeypatch.delenv("ADAPTLR_MNIST", raising=False)
  with pytest.raises(data.DataNotFoundError, match="make data"):
    data.load("mnist")
  assert not data.available("mnist")
  with pytest.raises(data.DataNotFoundError, match="not installable offline"):
    data.load("cifar10", path=str(tmp_path))
  with pytest.raises(data.DataNotFoundError, match="SVHN"):
    data.load("svhn", path=str(tmp_path))
  with pytest.raises(ValueError, match="unknown data set"):
    data.load("imagenet")
  with pytest.raises(ValueError, match="split"):
    data.load("digits", "valid")


def _write_idx(path, arr, gz):
  header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
  opener = gzip.open if gz else open
  with opener(path, "wb") as f:
    f.write(header + arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_loader_user_files(tmp_path, monkeypatch, gz):
  rng = np.random.default_rng(0)
  imgs = rng.integers(0, 256, (5, 28, 28))
  labels = np.arange(5)
  sfx = ".gz" if gz else ""
  _write_idx(tmp_path / f"t10k-images-idx3-ubyte{sfx}", imgs, gz)
  _write_idx(tmp_path / f"t10k-labels-idx1-ubyte{sfx}", labels, gz)
  x, y = data.load("mnist", "test", path=str(tmp_path))
  assert x.shape == (5, 784) and x.dtype == np.float32 and y.dtype == np.int32
  np.testing.assert_allclose(x * 255.0, imgs.reshape(5, -1), atol=1e-4)
  np.testing.assert_array_equal(y, labels)
  monkeypatch.setenv("ADAPTLR_FASHION_MNIST", str(tmp_path))
  assert data.load("fashion_mnist", "test")[0].shape == (5, 784)


# -------------------------------------------------------------- problems --
@pytest.mark.slow  # harness runs
@pytest.mark.parametrize("name", problems.NAMES)
def test_each_problem_loss_runs(name):
  p = problems.build(name, "tiny")
  params = p.init(jax.random.key(0))
  d = jax.tree.map(jnp.asarray, p.data)
  ctx = p.round_ctx(d, jax.random.key(1), 0)
  x, y = p.batch(d, ctx, jax.random.key(2), 0, 0)
  value, grad = jax.value_and_grad(p.loss)(params, x=x, y=y)
  assert np.isfinite(float(value))
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grad))
  metrics = p.evaluate(params, d, p.steps_per_round)
  assert np.isfinite(float(metrics["train_loss"]))
  assert ("test_acc" in metrics) == p.has_accuracy
  assert p.steps >= 1 and p.tlr_window >= 1


def test_quadratic_deep_matches_deepobs_spec():
  q = problems.quadratic_deep_hessian()
  np.testing.assert_allclose(q, q.T, atol=1e-10)
  eig = np.sort(np.linalg.eigvalsh(q))
  assert np.all((eig[:90] > 0) & (eig[:90] < 1)) and np.all((eig[90:] > 30) & (eig[90:] < 60))
  p = problems.build("quadratic_deep", "quick")
  assert (p.steps, p.batch_size, p.steps_per_epoch) == (700, 128, 7)
  # loss at θ₀ = 1: ½ 1ᵀQ1 + ½ E[xᵀQx] (up to sampling) — the DeepOBS scale
  l0 = float(
    p.evaluate(p.init(jax.random.key(0)), jax.tree.map(jnp.asarray, p.data), 0)["train_loss"]
  )
  expect = 0.5 * np.ones(100) @ q @ np.ones(100) + 0.5 * 0.36 * np.trace(q)
  assert abs(l0 - expect) / expect < 0.05


# -------------------------------------------------------------- registry --
def test_registry_reads_adaptlr_registry():
  reg = methods.registry()
  for name in (
    "sgd",
    "sgd_momentum",
    "sgd_multistep",
    "adam",
    "polyak_sgd",
    "sls",
    "dog",
    "prodigy",
    "mechanize",
    "dadapt_adamw",
    "momo",
    "momo_adam",
  ):
    assert name in reg
  adaptlr_rows = [n for n, m in reg.items() if m.family == "adaptlr"]
  # every registered method runs; variants are configurations of a registered method
  assert set(METHODS) <= set(adaptlr_rows)
  assert {"tlr_pl", "probabilistic_lr_adam"} <= set(adaptlr_rows)
  configs = {c.name: c for c in methods.adaptlr_configs()}
  assert list(configs) == adaptlr_rows
  for name in adaptlr_rows:
    spec = METHODS[configs[name].method]
    assert reg[name].swept == spec.initial_rate, name
  assert not reg["vsgd"].swept and reg["tlr"].swept
  # a configuration builds its registered optimizer with its settings: tlr_pl is
  # tlr with one rate per leaf, tlr one global rate
  prob = problems.build("boston_linreg", "tiny")
  params = {"w": jnp.zeros(3), "b": jnp.zeros(2)}
  for name, n_rates in (("tlr", 1), ("tlr_pl", 2)):
    state = reg[name].make(0.01, prob).init(params)
    assert len(jax.tree.leaves(reg[name].lr_reader(state))) == n_rates, name


@pytest.mark.parametrize("renamed", ["tlr", "probabilistic_lr", "newton_lr", "smd"])
def test_renamed_method_fails_loudly_or_runs_under_its_new_name(monkeypatch, renamed):
  """A method renamed in adaptlr.registry never vanishes from the benchmarks."""
  registry = {(k + "_v2" if k == renamed else k): v for k, v in METHODS.items()}
  for module, attr, table in (
    (methods, "ADAPTLR_REGISTRY", "ADAPTLR_CONFIGS"),
    (overhead, "METHODS", "ROWS"),
  ):
    build = methods.registry if module is methods else overhead.registry
    configured = any(c.method == renamed for c in getattr(module, table))
    monkeypatch.setattr(module, attr, registry)
    if configured:  # its benchmark settings name the old name
      with pytest.raises(ValueError, match=renamed):
        build()
    else:  # run at its defaults, under the new name
      names = build()
      assert renamed + "_v2" in names and renamed not in names


def test_overhead_rows_cover_the_registry():
  rows = overhead.registry()
  assert list(rows)[:2] == ["optax.sgd", "optax.adam"]
  assert set(METHODS) <= set(rows)
  assert {"tlr(leaf)", "vsgd(given; curvature free)", "newton_lr(autodiff)"} <= set(rows)


# ------------------------------------------------------- tuning freedom --
def _fake_result(finals, swept=True, init=100.0):
  finals = np.asarray(finals, float)[None, :]  # [seeds=1, rates]
  rates = np.asarray([1e-3, 1e-2, 1e-1][: finals.shape[1]] if swept else [np.nan])
  return {
    "rates": rates,
    "swept": swept,
    "final": {"train_loss": finals},
    "init": {"train_loss": np.full(finals.shape, init)},
    "curves": {"train_loss": np.stack([np.full(finals.shape, init), finals], -1)},
    "steps": np.array([10, 20]),
  }


def test_tuning_freedom_hand_made_example():
  prob = types.SimpleNamespace(f_star=None)
  results = {
    "sgd": _fake_result([5.0, 2.0, np.nan]),  # best baseline: 2.0
    "adam": _fake_result([3.0, 2.5, 4.0]),
    "tlr": _fake_result([2.1, 2.2, 2.3]),  # threshold 2.2 (+atol 1e-4)
    "dog": _fake_result([2.19], swept=False),
    "bad": _fake_result([9.0, np.inf, 2.21]),
  }
  tf = harness.tuning_freedom(results, prob)
  assert tf["threshold"] == pytest.approx(2.2 + 1e-6 * 100.0)
  got = {k: v["reached"] for k, v in tf["methods"].items()}
  assert got == {"sgd": 1, "adam": 0, "tlr": 2, "dog": 1, "bad": 0}
  assert tf["methods"]["tlr"]["of"] == 3 and tf["methods"]["dog"]["of"] == 1
  # with a known minimum the 10% is on the excess loss: f* = 1.5 → 1.5 + 1.1·0.5
  tf = harness.tuning_freedom(results, types.SimpleNamespace(f_star=1.5))
  assert tf["threshold"] == pytest.approx(1.5 + 1.1 * 0.5 + 1e-6 * 98.5)
  assert tf["methods"]["tlr"]["reached"] == 0 and tf["methods"]["sgd"]["reached"] == 1
  assert harness.steps_to_target(results["tlr"], 2.15) == [20, None, None]


# ---------------------------------------------------------- end to end --
@pytest.mark.slow  # harness runs
def test_harness_tiny_profile_end_to_end(tmp_path):
  command = ["python", "-m", "benchmarks", "run", "--profile", "tiny"]
  out = runner.run_profile(
    "tiny",
    problems=["boston_linreg"],
    methods=["tlr", "dog"],
    out_dir=tmp_path,
    progress=False,
    studies=False,
    command=command,
  )
  for f in (
    "results.json",
    "report.md",
    "loss_boston_linreg.png",
    "lr_boston_linreg.png",
    "tuning_freedom.png",
  ):
    assert (tmp_path / f).stat().st_size > 0, f
  res = json.loads((tmp_path / "results.json").read_text())
  assert res["command"] == command == out["command"]
  assert res["machine"]["versions"]["jax"] == jax.__version__
  prob = res["problems"]["boston_linreg"]
  assert set(prob["methods"]) == {"sgd", "sgd_momentum", "sgd_multistep", "adam", "tlr", "dog"}
  tlr = prob["methods"]["tlr"]
  assert len(tlr["per_rate"]["final_train_loss"]) == 6
  assert len(tlr["curves"]["lr"][0]) == len(prob["steps"])
  assert prob["tuning_freedom"]["dog"]["of"] == 1
  assert prob["methods"]["sgd"]["time_vs_sgd"] == pytest.approx(1.0)
  md = (tmp_path / "report.md").read_text()
  assert "Tuning freedom" in md and "`tlr`" in md and "Reproductions" in md
  assert "Command: `python -m benchmarks run --profile tiny`" in md

  # every run is stored (raw/, a checkpoint after each method); --reuse loads the
  # stored runs and --rerun runs the named ones again
  stored = json.loads(gzip.decompress((tmp_path / "raw" / "boston_linreg.json.gz").read_bytes()))
  assert set(stored["runs"]) == set(prob["methods"])
  again = runner.run_profile(
    "tiny",
    problems=["boston_linreg"],
    methods=["tlr", "dog"],
    out_dir=tmp_path / "again",
    progress=False,
    studies=False,
    reuse=tmp_path,
    rerun=["tlr"],
  )["problems"]["boston_linreg"]
  for name, rec in again["methods"].items():
    assert rec["reused"] == (name != "tlr"), name
    np.testing.assert_allclose(
      np.asarray(rec["final_per_seed"]["train_loss"], float),
      np.asarray(prob["methods"][name]["final_per_seed"]["train_loss"], float),
      rtol=1e-5,
    )
  assert again["tuning_freedom"] == prob["tuning_freedom"]
  # a stored run of another budget is not reused
  other = problems.build("boston_linreg", "tiny", steps=20)
  assert runner.load_raw(tmp_path, other) == {}
  # nor one of another model or objective (the builder's notes name them), while a
  # reworded budget reason (after " Budget: ") keeps the runs
  same = problems.build("boston_linreg", "tiny")
  assert set(runner.load_raw(tmp_path, same)) == set(prob["methods"])
  changed = dataclasses.replace(same, notes=same.notes + " Weight decay 0.0005.")
  assert runner.load_raw(tmp_path, changed) == {}
  reworded = dataclasses.replace(same, notes=same.notes + " Budget: why, reworded.")
  assert set(runner.load_raw(tmp_path, reworded)) == set(prob["methods"])


def test_unknown_method_is_an_error():
  with pytest.raises(ValueError, match="unknown methods"):
    runner.run_profile(
      "tiny", problems=["boston_linreg"], methods=["tlr_renamed"], progress=False, studies=False
    )


# ------------------------------------------------------------ study I/O --
def test_command_line_quotes_arguments():
  assert (
    io.command_line("benchmarks.studies.newton_defaults", ["--configs", "a;b", "--x", 1])
    == "python -m benchmarks.studies.newton_defaults --configs 'a;b' --x 1"
  )
  assert io.command_line("benchmarks.studies.tlr_safeguard", []) == (
    "python -m benchmarks.studies.tlr_safeguard"
  )


def test_write_results_json_markdown_png(tmp_path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots()
  ax.plot([0, 1], [1, 0])
  payload = {"results": {"a": 1.5}}
  paths = io.write_results("study", payload, "# study", figure=fig, out_dir=str(tmp_path / "r"))
  plt.close(fig)
  assert paths == {k: str(tmp_path / "r" / f"study.{k}") for k in ("json", "md", "png")}
  got = json.loads((tmp_path / "r" / "study.json").read_text())
  assert got["results"] == {"a": 1.5} and "command" not in payload
  assert got["command"].startswith("python")
  assert got["machine"]["versions"]["jax"] == jax.__version__
  assert got["machine"]["cpu_count"] >= 1 and got["machine"]["device_kinds"]
  assert (tmp_path / "r" / "study.md").read_text() == "# study\n"
  assert (tmp_path / "r" / "study.png").read_bytes()[:4] == b"\x89PNG"
  # a given command and machine are kept
  io.write_results("s2", {"command": "x", "machine": "m"}, "", out_dir=str(tmp_path))
  assert json.loads((tmp_path / "s2.json").read_text()) == {"command": "x", "machine": "m"}


def _studies():
  import pkgutil

  import benchmarks.studies

  # the studies, not their shared private helpers (``_design``)
  mods = pkgutil.iter_modules(benchmarks.studies.__path__)
  return sorted(m.name for m in mods if not m.name.startswith("_"))


def test_every_study_is_indexed_in_the_results_readme():
  index = open("benchmarks/results/README.md").read()
  missing = [n for n in _studies() if f"benchmarks.studies.{n}" not in index]
  assert not missing, f"add a row to benchmarks/results/README.md for {missing}"


@pytest.mark.parametrize("name", _studies())
def test_studies_import_from_their_package(name):
  module = importlib.import_module(f"benchmarks.studies.{name}")
  assert callable(module.main)
  assert f"benchmarks.studies.{name}" in open(module.__file__).read()


@pytest.mark.slow  # harness runs
def test_overhead_study_writes_its_results(tmp_path):
  argv = ["--rounds", "1", "--steps", "1", "--methods", "tlr", "--out", str(tmp_path / "overhead")]
  overhead.main(argv)
  got = json.loads((tmp_path / "overhead.json").read_text())
  assert got["command"] == "python -m benchmarks.studies.overhead " + " ".join(argv)
  assert set(got["results"]) == {"optax.sgd", "tlr"}
  assert got["results"]["optax.sgd"]["ratio_vs_sgd"] == 1.0
  assert got["machine"]["cpu_count"] >= 1
  assert got["command"] in (tmp_path / "overhead.md").read_text()
  with pytest.raises(SystemExit):
    overhead.main(["--methods", "tlr_renamed", "--out", str(tmp_path / "o2")])
