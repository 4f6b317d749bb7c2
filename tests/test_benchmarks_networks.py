"""Issue 11: the Brown-corpus language model, the modern anchors, regret and settling."""

import dataclasses
import math

import numpy as np
import pytest

pytest.importorskip("flax")

from benchmarks import data, harness, methods, problems, report

# ------------------------------------------------------------------ brown --


def test_strip_tags_keeps_words_one_line_per_sentence():
  tagged = "\n\n\tThe/at jury/nn said/vbd 1/2/cd ``/`` no/at ''/'' ./.\n\n\n\tA/at b/nn-tl\n"
  assert data.strip_tags(tagged) == "The jury said 1/2 `` no '' .\nA b\n"


def test_brown_slice_splits_by_file_and_strips_tags():
  folder = data.BROWN_SLICE
  train = data.brown_text(folder, "train")
  test = data.brown_text(folder, "test")
  names = sorted(n for n, _ in train + test)
  assert len(names) == 20 and len(set(names)) == 20  # every file once
  # every 10th file of the sorted list is held out, whole
  assert [n for n, _ in test] == [names[9], names[19]]
  for _, text in train + test:
    assert not any(
      "/" in tok and tok.rsplit("/", 1)[1].isalpha() and tok.islower() for tok in text.split()[:200]
    )
  first = dict(train)["ca01"]
  assert first.startswith(
    "The Fulton County Grand Jury said Friday an investigation of "
    "Atlanta's recent primary election produced"
  )
  x, y = data.load("brown_slice", "test")
  assert x.dtype == np.uint8 and x.max() < 128
  assert len(x) == sum(len(t) for _, t in test)
  assert np.array_equal(np.unique(y), np.arange(len(test)))  # file index per character
  assert bytes(x[:20]).decode() == test[0][1][:20]


# --------------------------------------------------------------------- lm --
@pytest.mark.slow  # harness runs
def test_tiny_lm_runs_one_round_through_the_harness():
  p = problems.build("brown_lm", "tiny")
  assert p.rounds == 1 and p.has_accuracy
  reg = methods.registry()
  for name in ("adam", "schedule_free_adamw"):
    r = harness.run_method(p, reg[name], rates=(1e-2,), seeds=(0,))
    # a near-zero init predicts the uniform distribution over the 128 codes
    np.testing.assert_allclose(r["init"]["train_loss"], math.log(128), atol=0.05)
    assert r["curves"]["train_loss"].shape == (1, 1, 1)
    for k in ("train_loss", "test_loss", "test_acc"):
      assert np.all(np.isfinite(r["final"][k]))
    assert np.all(r["final"]["train_loss"] < math.log(128))


def test_networks_profile_runs_only_the_networks_with_three_seeds():
  assert set(problems.PROFILES["networks"]) == set(methods.NETWORK_PROBLEMS)
  for name in problems.PROFILES["networks"]:
    b = problems.BUDGETS["networks"][name]
    assert len(b.get("seeds", (0, 1, 2))) >= 3
    assert "rates" not in b  # the whole grid 1e-5 … 1
    assert problems.BUDGETS["full"][name] == b


def test_network_problems_run_the_network_method_set():
  reg = methods.registry()
  assert set(methods.NETWORK_METHODS) <= set(reg)
  # the anchors of issue 11 and every adaptlr family of issue 12
  for name in (
    "adamw_cosine",
    "schedule_free_adamw",
    "prodigy",
    "dadapt_adamw",
    "dog",
    "mechanize",
    "momo_adam",
    "sgd_momentum",
    "adam",
    "sgd",
    "tlr",
    "hypergradient",
    "newton_lr",
    "probabilistic_lr",
    "probabilistic_lr_adam",
    "probabilistic_lr_cosine",
    "probabilistic_lr_adam_cosine",  # the README's recommendation for networks
    "vsgd",
  ):
    assert name in methods.NETWORK_METHODS, name
  assert report.RECOMMENDED_NETWORKS in methods.NETWORK_METHODS
  for name in problems.PROFILES["networks"]:
    assert problems.BUDGETS["networks"][name]["methods"] == methods.NETWORK_METHODS
  tiny = dataclasses.replace(
    problems.build("rosenbrock", "tiny"), name="mnist_mlp", methods=methods.NETWORK_METHODS
  )
  assert not reg["smd"].applies_to(tiny) and reg["tlr"].applies_to(tiny)


@pytest.mark.slow  # harness runs
def test_one_run_at_a_time_equals_the_vmapped_runs():
  # the convnet runs its rates × seeds one at a time (XLA:CPU's vmapped
  # convolutions are slow); the results must be the vmapped ones
  p = problems.build("fmnist_2c2d", "tiny", rates=(1e-2, 1e-1), seeds=(0, 1))
  assert p.unroll_rounds and p.vmap_runs
  p = dataclasses.replace(p, final_data=None)  # the 20,000-image final evaluation
  seq = dataclasses.replace(p, vmap_runs=False)
  for name in ("schedule_free_adamw",):  # evaluated at its average: eval_params too
    m = methods.registry()[name]
    a, b = harness.run_method(p, m), harness.run_method(seq, m)
    assert b["curves"]["train_loss"].shape == a["curves"]["train_loss"].shape
    for part in ("curves", "final", "init"):
      for k in a[part]:
        np.testing.assert_allclose(b[part][k], a[part][k], rtol=2e-4, atol=1e-6, err_msg=k)
  assert not problems.BUDGETS["networks"]["fmnist_2c2d"]["vmap_runs"]


def test_anchors_only_on_the_networks():
  reg = methods.registry()
  quick = problems.build("rosenbrock", "tiny")
  for name in ("adamw_cosine", "schedule_free_adamw"):
    assert name in methods.BASELINES and reg[name].swept
    assert not reg[name].applies_to(quick)


def test_adamw_cosine_schedule_warms_up_then_decays_to_zero():
  import jax
  import jax.numpy as jnp

  p = problems.build("rosenbrock", "tiny")  # 30 steps: warmup = 1 step
  opt = methods.registry()["adamw_cosine"].make(0.5, p)
  params = {"theta": jnp.zeros(2)}
  state = opt.init(params)
  lrs = []
  for _ in range(p.steps):
    _, state = opt.update({"theta": jnp.ones(2)}, state, params)
    lrs.append(float(methods.read_rate(methods.registry()["adamw_cosine"], state)))
  # the rate used by update k is the schedule at count k − 1: 0 (warmup from 0,
  # one step), then the peak 0.5 cosine-decayed over the remaining 29 steps
  sched = [0.0] + [
    0.25 * (1 + math.cos(math.pi * (t - 1) / (p.steps - 1))) for t in range(1, p.steps)
  ]
  np.testing.assert_allclose(lrs, sched, rtol=1e-4, atol=1e-6)

  # the harness traces the rate (vmap over the grid)
  def rate_after(rate, n):
    m = methods.registry()["adamw_cosine"]
    o = m.make(rate, p)
    s = o.init(params)
    for _ in range(n):
      _, s = o.update({"theta": jnp.ones(2)}, s, params)
    return methods.read_rate(m, s)

  got = jax.jit(jax.vmap(lambda r: rate_after(r, 3)))(jnp.asarray([0.5, 0.1]))
  np.testing.assert_allclose(got, [sched[2], sched[2] / 5], rtol=1e-4)


# ----------------------------------------------------------------- metrics --
def _fake(name, finals, swept=True, curve=None):
  finals = np.asarray(finals, float)[None, :]  # [1 seed, rates]
  rates = np.asarray([10.0**-k for k in range(finals.shape[1])]) if swept else [np.nan]
  c = curve if curve is not None else np.repeat(finals[..., None], 5, -1)
  return {
    "swept": swept,
    "rates": np.asarray(rates),
    "final": {"train_loss": finals},
    "curves": {"train_loss": c},
    "steps": np.arange(1, 6) * 10,
    "init": {"train_loss": np.full_like(finals, 3.0)},
  }


def test_regret_median_and_worst_against_numpy():
  results = {
    "sgd": _fake("sgd", [0.4, 0.2, 0.8]),
    "adam": _fake("adam", [0.5, 0.25, np.nan]),
    "prodigy": _fake("prodigy", [0.3], swept=False),
    "tlr": _fake("tlr", [0.22, 0.22, 0.24, 0.9]),
  }
  p = dataclasses.replace(problems.build("rosenbrock", "tiny"), f_star=None)
  rg = harness.regret(results, p)
  assert rg["best_tuned"]["method"] == "sgd" and rg["best_tuned"]["final_train_loss"] == 0.2
  assert rg["methods"]["tlr"]["median"] == pytest.approx(np.median([1.1, 1.1, 1.2, 4.5]))
  assert rg["methods"]["tlr"]["worst"] == pytest.approx(4.5)
  assert rg["methods"]["prodigy"]["median"] == pytest.approx(1.5)
  assert rg["methods"]["adam"]["worst"] == np.inf  # diverged rate
  # the tuning-freedom count uses the same best-tuned value
  tf = harness.tuning_freedom(results, p)
  assert tf["methods"]["tlr"]["reached"] == 2


def test_settling_reads_the_last_fifth_of_the_best_tuned_curve():
  curve = np.asarray([[[2.0, 1.0, 0.6, 0.5, 0.46]]])  # [seed, rate, rounds]
  results = {"adam": _fake("adam", [0.46], curve=curve)}
  s = harness.settling(results)
  assert (s["step_from"], s["step_to"]) == (40, 50)
  assert s["improvement"] == pytest.approx((0.5 - 0.46) / 0.5)
  assert s["settled"]
  # among the fixed-rate baselines only: a cosine schedule that ends lower (and
  # drops at its end by design) does not decide whether the budget has settled
  cos = np.asarray([[[2.0, 1.0, 0.6, 0.5, 0.3]]])
  results["adamw_cosine"] = _fake("adamw_cosine", [0.3], curve=cos)
  assert harness.settling(results)["method"] == "adamw_cosine"
  assert not harness.settling(results)["settled"]
  s = harness.settling(results, among=methods.CONSTANT_BASELINES)
  assert s["method"] == "adam" and s["settled"]


def test_network_rates_compares_effective_rates_against_numpy():
  from benchmarks.studies import network_rates

  def rec(rates, lr_curves, finals):
    return {
      "rates": rates,
      "curves": {"lr": lr_curves},
      "per_rate": {"final_train_loss": finals},
    }

  results = {
    "problems": {
      "p": {
        "steps": [10, 20, 30, 40],
        "methods": {
          "sgd": rec([0.01, 0.1], [[0.01] * 4, [0.1] * 4], [0.5, 0.2]),
          "sgd_momentum": rec([0.01, 0.1], [[0.01] * 4, [0.1] * 4], [0.3, None]),
          # momentum 0.5: effective rate 2η
          "probabilistic_lr": rec(
            [0.01, 0.1], [[0.01, 0.02, 0.03, 0.05], [0.1, 0.1, 0.04, 0.06]], [0.4, 0.4]
          ),
        },
      }
    }
  }
  row = network_rates.analyse(results)["p"]["rows"]["probabilistic_lr"]
  # best fixed: sgd 0.1 (0.2) beats sgd_momentum 0.01 (0.3; its 0.1 diverged)
  assert row["reference"] == {"method": "sgd", "rate": 0.1, "effective": 0.1, "loss": 0.2}
  eff = 2 * np.asarray([[0.01, 0.02, 0.03, 0.05], [0.1, 0.1, 0.04, 0.06]])
  last_half = eff[:, 2:].mean(axis=1)
  assert row["median_last_half"] == pytest.approx(np.median(last_half))
  assert row["ratio_last_half"] == pytest.approx(np.median(last_half) / 0.1)
  assert row["median_end"] == pytest.approx(np.median(eff[:, -1]))
  assert row["spread_end"] == pytest.approx(0.12 / 0.10)
  md = network_rates.markdown(network_rates.analyse(results), "x", "cmd")
  assert "`probabilistic_lr`" in md and "`sgd` 0.1" in md


def test_horizon_study_report(tmp_path):
  """The horizon design study's tables and figure from a synthetic result, and its
  candidates: the decayed ones chain a schedule of the problem's steps."""
  import types

  import jax.numpy as jnp

  from benchmarks import io
  from benchmarks.studies import horizon

  rows = {
    label: {
      "final_train_loss": [0.3 + i, 0.2 + i, 0.25 + i],
      "test_loss": [0.4, 0.3, 0.35],
      "curve": [[1.0, 0.5, 0.3 + i]] * 3,
    }
    for i, label in enumerate([*horizon.CANDIDATES, *horizon.REFERENCES])
  }
  result = {"mnist_mlp": {"steps": 30, "rounds": 3, "rows": rows}}
  md = horizon.markdown(result, "python -m benchmarks.studies.horizon", "a machine")
  assert "| adam: horizon | 2.3 (0.4) | 2.2 (0.3) | 2.25 (0.35) | 2.25 |" in md
  assert "Design set: `mnist_mlp` and `fmnist_2c2d`" in md
  paths = io.write_results("horizon", {"x": 1}, md, figure=horizon.figure(result), out_dir=tmp_path)
  assert all((tmp_path / f"horizon.{e}").stat().st_size > 0 for e in ("json", "md", "png"))
  assert set(paths) == {"json", "md", "png"}

  problem = types.SimpleNamespace(steps=30)
  w = jnp.zeros(3)
  for label, make in horizon.CANDIDATES.items():
    state = make(0.01, problem).init(w)
    decayed = "ScaleByScheduleState" in repr(state)
    assert decayed == ("Alg. 1" not in label), label


@pytest.mark.slow  # harness runs
def _iterates(opt, steps=25):
  """The iterates of ``opt`` on a non-quadratic loss (its curvature changes along the run:
  a stale estimate is not the fresh one); some candidates meet at the minimum."""
  import jax
  import jax.numpy as jnp
  import optax

  loss = lambda p: jnp.sum((p - jnp.arange(3.0)) ** 2 * jnp.arange(1.0, 4.0) + (p - 1.0) ** 4)

  def step(carry, _):
    p, state = carry
    v, g = jax.value_and_grad(loss)(p)
    u, state = opt.update(g, state, p, value=v, value_fn=loss)
    return (optax.apply_updates(p, u), state), p

  w = jnp.zeros(3)
  return np.asarray(
    jax.jit(lambda c: jax.lax.scan(step, c, None, length=steps)[1])((w, opt.init(w)))
  )


def test_network_defaults_study_report(tmp_path):
  """The design study of tlr / hypergradient / vsgd defaults: its tables (the
  default in bold, ∞ for a diverged run, the rate-free vsgd in one column) and
  figure from a synthetic result, and its candidates: one default per family,
  built with the library's own defaults (no keyword but the minibatch window)."""
  import types

  import adaptlr
  from benchmarks import io
  from benchmarks.studies import network_defaults as nd

  fams = {}
  for fam, cands in nd.CANDIDATES.items():
    n = 3 if fam != "vsgd" else 1
    fams[fam] = {
      label: {
        "default": default,
        "final_train_loss": [0.5 + i, float("inf"), 0.25 + i][:n],
        "test_loss": [0.4] * n,
        "final_lr": [0.1 * (i + 1)] * n,
        "lr_curve": [[0.01, 0.1, 0.1 * (i + 1)]] * n,
      }
      for i, (label, (_, _, default)) in enumerate(cands.items())
    }
  result = {"fmnist_2c2d": {"steps": 30, "rounds": 3, "families": fams}}
  md = nd.markdown(result, "python -m benchmarks.studies.network_defaults", "a machine")
  assert "| cold start: c doubles up to 1 | 1.5 (0.2) | ∞ (0.2) | 1.25 (0.2) | 1.5 |" in md
  assert "| **paper: c = 1/4** | 0.5 (0.1) | ∞ (0.1) | 0.25 (0.1) | 0.5 |" in md
  assert "| `vsgd` | one run (rate-free) | median |" in md
  assert "| **per element, curvature every step** | 3.5 (0.4) | 3.5 |" in md
  assert "Design set: `mnist_mlp` and `fmnist_2c2d`" in md
  io.write_results("network_defaults", {"x": 1}, md, figure=nd.figure(result), out_dir=tmp_path)
  assert all((tmp_path / f"network_defaults.{e}").stat().st_size > 0 for e in ("json", "md", "png"))

  problem = types.SimpleNamespace(steps=30, tlr_window=1)
  library = {
    "tlr": adaptlr.tlr(0.01, accumulation_steps=1),
    "hypergradient": adaptlr.hypergradient(0.01),
    "vsgd": adaptlr.vsgd(),
  }
  for fam, cands in nd.CANDIDATES.items():
    defaults = [label for label, (_, _, d) in cands.items() if d]
    assert len(defaults) == 1, (fam, defaults)
    runs = {label: _iterates(make(0.01, problem)) for label, (make, _, _) in cands.items()}
    np.testing.assert_array_equal(runs[defaults[0]], _iterates(library[fam]), err_msg=fam)
    others = [label for label in runs if label != defaults[0]]
    assert all(not np.array_equal(runs[o], runs[defaults[0]]) for o in others), fam


def test_design_study_command_line_writes_its_results(tmp_path):
  """``benchmarks.studies._design.main``, the command line the design studies share:
  it runs the study on the problems given and writes json, md and png under --out."""
  import json
  import types

  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  from benchmarks.studies import _design

  calls = []
  study = types.ModuleType("benchmarks.studies.fake_study", "A fake study.\n\nMore.")
  study.DESIGN_PROBLEMS, study.DESIGN_SEEDS, study.RATES = ("mnist_mlp",), (100,), (1e-2,)
  study.run = lambda problems: calls.append(problems) or {"mnist_mlp": {"x": 1}}
  study.markdown = lambda result, command, machine: f"# fake\n\n`{command}`\n"
  study.figure = lambda result: plt.figure()
  _design.main(study, ["--out", str(tmp_path), "--problems", "fmnist_2c2d"])
  assert calls == [("fmnist_2c2d",)]
  payload = json.loads((tmp_path / "fake_study.json").read_text())
  assert payload["design_problems"] == ["fmnist_2c2d"] and payload["design_seeds"] == [100]
  assert "benchmarks.studies.fake_study" in (tmp_path / "fake_study.md").read_text()
  assert (tmp_path / "fake_study.png").stat().st_size > 0
  # run as `python -m benchmarks.studies.fake_study` the module is `__main__`: the spec names it
  study.__name__, study.__spec__ = "__main__", types.SimpleNamespace(name="benchmarks.studies.ran")
  _design.main(study, ["--out", str(tmp_path / "m")])
  assert (tmp_path / "m" / "ran.md").exists() and not (tmp_path / "m" / "__main__.md").exists()


def test_newton_networks_study_default_is_the_library_default(tmp_path):
  """The newton_lr design study: one candidate in bold, built as the library default
  (same iterates over 25 steps on a non-quadratic loss), the others differ from it but
  the one without the downhill check (which never fires there), and its report."""

  import adaptlr
  from benchmarks.studies import newton_networks as nn

  (cands,) = nn.CANDIDATES.values()
  (default,) = [label for label, (_, _, d) in cands.items() if d]
  runs = {label: _iterates(make(0.01, None)) for label, (make, _, _) in cands.items()}
  np.testing.assert_array_equal(runs[default], _iterates(adaptlr.newton_lr(0.01)))
  assert not np.array_equal(runs["this batch, c = 1 (the former default)"], runs[default])
  assert not np.array_equal(runs["next batch, c = 0.5"], runs[default])
  rows = {"final_train_loss": [0.5, 0.4, 0.3], "test_loss": [0.4] * 3, "final_lr": [0.1] * 3}
  result = {
    "fmnist_2c2d": {
      "steps": 30,
      "rounds": 3,
      "families": {
        "newton_lr": {
          label: {**rows, "default": d, "lr_curve": [[0.01, 0.1]] * 3}
          for label, (_, _, d) in cands.items()
        }
      },
    }
  }
  md = nn.markdown(result, "python -m benchmarks.studies.newton_networks", "a machine")
  assert "| **next batch, c = 1** | 0.5 (0.1) | 0.4 (0.1) | 0.3 (0.1) | 0.4 |" in md
  assert "## What was chosen" in md
  assert nn.figure(result) is not None


def test_defaults_learn_flags_every_seed_that_does_not_learn():
  """report.defaults_learn: a rate fails when any seed ends non-finite or above 0.8× its
  start; the others pass."""
  from benchmarks import report

  rec = {
    "rates": [1e-5, 1.0],
    "final_per_seed": {"train_loss": [[0.5, 2.0], [0.7, None]]},  # seeds × rates
    "initial_per_seed": {"train_loss": [[2.0, 2.0], [2.0, 2.0]]},
  }
  out = {"problems": {"p": {"methods": {"tlr": rec}}}}
  res = report.defaults_learn(out, methods=("tlr",))["tlr"]["p"]
  assert res["runs"] == 2
  assert [r for r, _ in res["failed"]] == [1.0]
  assert res["failed"][0][1][0] == 1.0 and not np.isfinite(res["failed"][0][1][1])
