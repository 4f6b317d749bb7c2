"""Runs a benchmark profile: problems × methods, reproductions, outputs.

``run_profile(profile, problems=None, methods=None, out_dir=None)`` runs every
(problem, method) pair as one compiled ``vmap``-over-rates-and-seeds run (see
:mod:`benchmarks.harness`), computes the metrics and the tuning-freedom table,
runs the reproduction studies, and writes ``out_dir`` (default
``benchmarks/results/<profile>/``): ``results.json`` (every number, machine
info, versions, the command), ``report.md`` and PNG plots.
"""

from __future__ import annotations

import datetime
import gzip
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Optional

import numpy as np

from benchmarks import data as data_lib
from benchmarks import harness, io, report
from benchmarks import methods as methods_lib
from benchmarks import problems as problems_lib
from benchmarks import reproductions as reproductions_lib
from benchmarks.io import machine_info

RESULTS_ROOT = pathlib.Path(__file__).resolve().parent / "results"


def _clean(x):
  """JSON-safe: NaN/inf -> None, NumPy -> Python, floats to 6 significant digits."""
  if isinstance(x, dict):
    return {str(k): _clean(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_clean(v) for v in x]
  if isinstance(x, np.ndarray):
    return _clean(x.tolist())
  if isinstance(x, (np.floating, float)):
    x = float(x)
    return float(f"{x:.6g}") if np.isfinite(x) else None
  if isinstance(x, (np.integer,)):
    return int(x)
  if isinstance(x, np.bool_):
    return bool(x)
  return x


def _method_record(res: dict, problem, target, sgd_sps) -> dict:
  """``sgd_sps``: optax.sgd's seconds per step per run at the same vmap width."""
  seed_mean = lambda a: np.mean(np.asarray(a, np.float64), axis=0)
  rec = {
    "family": res["family"],
    "swept": res["swept"],
    "rates": [float(f"{r:.6g}") for r in res["rates"]] if res["swept"] else [None],
    "per_rate": harness.summarize(res, problem, target),
    "final_per_seed": res["final"],
    "curves": {k: seed_mean(v) for k, v in res["curves"].items()},  # [rates, rounds]
    "initial": {k: seed_mean(v) for k, v in res["init"].items()},
    "initial_per_seed": res["init"],
    "compile_s": res["compile_s"],
    "run_s": res["run_s"],
    "sec_per_step": res["sec_per_step"],
    "time_vs_sgd": (res["sec_per_step"] / sgd_sps) if sgd_sps else None,
    "reused": bool(res.get("reused", False)),
  }
  return rec


def _regret_records(results, problem) -> dict:
  """Best-tuned baseline, per-method regret and the settling check (issue 11)."""
  rg = harness.regret(results, problem)
  return {
    "best_tuned": rg["best_tuned"],
    "regret": rg["methods"],
    "settling": harness.settling(results, problem),
    "settling_constant": harness.settling(results, problem, among=methods_lib.CONSTANT_BASELINES),
  }


def _raw_path(out_dir, problem_name) -> pathlib.Path:
  return pathlib.Path(out_dir) / "raw" / f"{problem_name}.json.gz"


def _decode_raw(rec: dict) -> dict:
  def arr(x):
    return np.asarray(
      [np.nan if v is None else v for v in np.ravel(np.asarray(x, object))], np.float64
    ).reshape(np.shape(np.asarray(x, object)))

  out = dict(rec)
  for key in ("curves", "init", "final"):
    out[key] = {k: arr(v) for k, v in rec[key].items()}
  out["rates"] = arr(rec["rates"]).astype(np.float32)
  out["seeds"] = np.asarray(rec["seeds"], np.int32)
  out["steps"] = np.asarray(rec["steps"], np.int64)
  return out


def _model_notes(notes: str) -> str:
  return notes.split(" Budget: ")[0]


def load_raw(reuse_dir, problem) -> dict:
  """The stored runs of ``reuse_dir/raw/<problem>.json.gz`` that match
  ``problem``'s budget (title, data, steps, batch, rates, seeds, and the builder's
  description of the model and objective); {} if none."""
  path = _raw_path(reuse_dir, problem.name)
  if not path.exists():
    return {}
  stored = json.loads(gzip.decompress(path.read_bytes()))
  spec, now = stored.get("spec", {}), _clean(problem.describe())
  keys = ("title", "dataset", "steps", "steps_per_round", "batch_size", "train_size")
  same = all(spec.get(k) == now[k] for k in keys + ("rates", "seeds"))
  # the builder's notes name the model's sizes and weight decay; the budget's reason
  # after " Budget: " may be reworded without invalidating the runs
  same = same and _model_notes(spec.get("notes", "")) == _model_notes(now["notes"])
  if not same:
    print(
      f"[benchmarks] not reusing {path}: its budget differs from {problem.name}'s",
      file=sys.stderr,
    )
    return {}
  return {name: _decode_raw(rec) for name, rec in stored["runs"].items()}


def run_problem(problem, method_objs, bar=None, reuse=None, out_dir=None) -> dict:
  """Runs each method on ``problem``; a method in ``reuse`` (name -> stored run)
  is taken from there. With ``out_dir`` the runs so far are written to
  ``out_dir/raw/<problem>.json.gz`` after each method (a checkpoint: ``--reuse``
  that folder to resume, or to re-run only some methods)."""
  results = {}
  reuse = reuse or {}
  for m in method_objs:
    if bar is not None:
      bar.set_postfix_str(f"{problem.name} / {m.name}")
    if m.name in reuse:
      results[m.name] = {**reuse[m.name], "reused": True}
    else:
      results[m.name] = harness.run_method(problem, m)
    if out_dir is not None:
      path = _raw_path(out_dir, problem.name)
      path.parent.mkdir(parents=True, exist_ok=True)
      runs = {n: _clean({k: v for k, v in r.items() if k != "reused"}) for n, r in results.items()}
      blob = json.dumps({"spec": _clean(problem.describe()), "runs": runs}).encode()
      path.write_bytes(gzip.compress(blob, mtime=0))
    if bar is not None:
      bar.update(1)
  return results


def run_profile(
  profile: str = "quick",
  problems: Optional[Sequence[str]] = None,
  methods: Optional[Sequence[str]] = None,
  out_dir=None,
  progress: bool = True,
  studies: Optional[bool] = None,
  plots: bool = True,
  command: Optional[list] = None,
  overrides: Optional[dict] = None,
  reuse=None,
  rerun: Sequence[str] = (),
) -> dict:
  """Runs the profile and writes its outputs; returns the results dict.

  ``overrides`` (e.g. ``{"seeds": (0,), "rates": (1e-3,), "steps": 200}``) go to
  every problem's builder: for smoke tests of a long profile (its report records
  the command, so such a run is never mistaken for the profile's).

  ``reuse``: a results folder whose ``raw/`` runs (same problem budget) are
  loaded instead of run, except the methods named in ``rerun``: to resume an
  interrupted run, or to re-run one method against stored baselines (their
  timings were measured in that earlier process; the report marks them).
  """
  t_start = time.perf_counter()
  reg = methods_lib.registry()
  problem_names = list(problems or problems_lib.PROFILES[profile])
  for p in problem_names:
    if p not in problems_lib.NAMES:
      raise ValueError(f"unknown problem {p!r}; known: {list(problems_lib.NAMES)}.")
  method_names = list(methods or reg)
  unknown = [m for m in method_names if m not in reg]
  if unknown:
    raise ValueError(f"unknown methods {unknown}; available: {list(reg)}.")
  # the baselines define the tuning-freedom threshold and the timing reference
  for b in reversed(methods_lib.BASELINES):
    if b not in method_names:
      method_names.insert(0, b)
  out_dir = pathlib.Path(out_dir or RESULTS_ROOT / profile)
  out_dir.mkdir(parents=True, exist_ok=True)

  built, skipped = {}, {}
  for name in problem_names:
    try:
      built[name] = problems_lib.build(name, profile, **(overrides or {}))
    except data_lib.DataNotFoundError as e:
      skipped[name] = str(e)
      print(f"[benchmarks] skipping {name}: {e}", file=sys.stderr)

  pairs = [(p, [reg[m] for m in method_names if reg[m].applies_to(p)]) for p in built.values()]
  bar = io.progress_bar(sum(len(ms) for _, ms in pairs), progress, f"benchmarks [{profile}]")
  out = {
    "profile": profile,
    "command": command if command is not None else [sys.executable, *sys.argv],
    "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "machine": machine_info(),
    "tolerance": harness.TOLERANCE,
    "methods": {
      n: {"family": reg[n].family, "swept": reg[n].swept, "description": reg[n].description}
      for n in method_names
    },
    "skipped_problems": skipped,
    "problems": {},
  }
  raw = {}
  for problem, method_objs in pairs:
    stored = load_raw(reuse, problem) if reuse is not None else {}
    stored = {k: v for k, v in stored.items() if k not in set(rerun)}
    results = run_problem(problem, method_objs, bar, reuse=stored, out_dir=out_dir)
    raw[problem.name] = results
    tf = harness.tuning_freedom(results, problem)
    tf_raw = harness.tuning_freedom(results, problem, excess=False)
    target = tf["threshold"]
    # timing reference: optax.sgd at the same vmap width (rates × seeds for swept
    # methods; seeds only for rate-free ones, from one extra single-rate sgd run)
    sgd_sps = {True: results["sgd"]["sec_per_step"] if "sgd" in results else None, False: None}
    if "sgd" in results and any(not r["swept"] for r in results.values()):
      mid = problem.rates[len(problem.rates) // 2]
      sgd_sps[False] = harness.run_method(problem, reg["sgd"], rates=(mid,))["sec_per_step"]
    out["problems"][problem.name] = {
      "spec": problem.describe(),
      "threshold": target,
      "tuning_freedom": tf["methods"],
      "threshold_raw": tf_raw["threshold"],
      "tuning_freedom_raw": tf_raw["methods"],
      "methods": {
        n: _method_record(r, problem, target, sgd_sps[r["swept"]]) for n, r in results.items()
      },
      "sgd_sec_per_step": {"swept_width": sgd_sps[True], "seeds_width": sgd_sps[False]},
      "steps": results[next(iter(results))]["steps"],
      **_regret_records(results, problem),
    }
  bar.close()

  run_studies = studies if studies is not None else profile == "full"
  out["reproductions"] = reproductions_lib.reproductions(
    out, built, raw, profile, run_extra=run_studies, progress=progress
  )
  out["wall_s"] = time.perf_counter() - t_start
  out["finished"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  out = _clean(out)
  report.write_all(out, out_dir, plots=plots)
  return out
