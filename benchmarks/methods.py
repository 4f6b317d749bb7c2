"""The methods the benchmarks compare: optax baselines and peers, and adaptlr.

``registry() -> dict[name, Method]``. Each :class:`Method` builds its optimizer
from an initial rate (a traced scalar: the harness ``jax.vmap``s over it) and
the problem; methods with ``swept=False`` have no initial rate and run once
per seed.

Every update receives the same extra args (``value``, ``grad``, ``value_fn``
and the batch as ``x=``, ``y=``); a method ignores what it does not need.

adaptlr methods come from ``adaptlr.registry.METHODS``, the one list of
methods: each runs with the problem-dependent paper settings of
``ADAPTLR_CONFIGS`` (the rest of its arguments keep the library's defaults,
which are the papers' defaults), swept over the rate grid iff its
``MethodSpec.initial_rate``. ``ADAPTLR_CONFIGS`` may also name benchmark
variants of a registered method (``tlr_pl``, ``probabilistic_lr_adam``); a
registered method without an entry runs with its defaults, and an entry whose
method is not registered (a renamed method) raises.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from optax import contrib

from adaptlr.registry import METHODS as ADAPTLR_REGISTRY

# Baselines for the tuning-freedom threshold: best final training loss of these
# over the whole rate grid ("best-tuned"). The two modern anchors run on the
# network problems only (NETWORK_PROBLEMS), so the other problems' thresholds
# are the four classic baselines'.
BASELINES = ("sgd", "sgd_momentum", "sgd_multistep", "adam", "adamw_cosine", "schedule_free_adamw")
# fixed-rate baselines: the settling check of a budget reads the best of these
CONSTANT_BASELINES = ("sgd", "sgd_momentum", "adam")
NETWORK_PROBLEMS = ("mnist_mlp", "fmnist_mlp", "fmnist_2c2d", "brown_lm")
# What runs on the network problems (their budgets cost ~200 runs per step, so
# the set is the question's: the anchors issue 11 names, plain SGD as the timing
# reference, and each adaptlr family of issue 12; SMD, Almeida, TLR per layer,
# SPS, SLS, Momo-SGD and the multistep schedule run on the other problems).
NETWORK_METHODS = (
  "sgd",
  "sgd_momentum",
  "adam",
  "adamw_cosine",
  "schedule_free_adamw",
  "prodigy",
  "dadapt_adamw",
  "dog",
  "mechanize",
  "momo_adam",
  "tlr",
  "tlr_cold_start",
  "hypergradient",
  "hypergradient_momentum",
  "newton_lr",
  "probabilistic_lr",
  "probabilistic_lr_adam",
  "probabilistic_lr_cosine",
  "probabilistic_lr_adam_cosine",
  "vsgd",
  "vsgd_every_10",
)
# AlgoPerf's calibrated baselines warm up linearly over 5% of the step budget.
WARMUP_FRACTION = 0.05


@dataclasses.dataclass(frozen=True)
class Method:
  name: str
  family: str  # "baseline" | "peer" | "adaptlr"
  make: Callable[[Any, Any], optax.GradientTransformation]  # (rate, problem) -> opt
  swept: bool = True  # takes an initial rate (vmapped over the grid)
  lr_reader: Callable[[Any], Any] | None = None  # state -> current rate(s)
  # (state, params) -> the parameters to evaluate (schedule-free: the average x)
  eval_params: Callable[[Any, Any], Any] | None = None
  description: str = ""
  only: tuple[str, ...] | None = None  # run on these problems only (None: all)

  def applies_to(self, problem) -> bool:
    if problem.methods is not None and self.name not in problem.methods:
      return False
    return self.only is None or problem.name in self.only


def _tree_get(name):
  def read(state):
    return optax.tree.get(state, name)

  return read


def _read_injected(state):
  """The rate of an ``optax.inject_hyperparams`` state (schedules included)."""
  return optax.tree.get(state, "hyperparams")["learning_rate"]


def _read_dog(state):
  s = optax.tree.get(state, "max_dist")
  g = optax.tree.get(state, "sum_sq_norm_grads")
  return s / jnp.sqrt(g + 1e-8)


def _read_mechanic(state):
  return jnp.sum(optax.tree.get(state, "s"))


def _multistep(rate, problem):
  steps = problem.steps
  sched = optax.piecewise_constant_schedule(rate, {int(0.5 * steps): 0.1, int(0.75 * steps): 0.1})
  return optax.inject_hyperparams(optax.sgd)(learning_rate=sched)


def _warmup_steps(problem) -> int:
  return max(1, int(WARMUP_FRACTION * problem.steps))


def _adamw_cosine(rate, problem):
  # AlgoPerf's calibrated baseline shape: linear warmup over 5% of the budget
  # from 0 to the swept peak rate, cosine decay to 0 at the end of the budget;
  # optax.adamw defaults otherwise (b1 0.9, b2 0.999, eps 1e-8, weight decay 1e-4).
  # The unit-peak schedule times the rate: the rate is traced (vmapped).
  shape = optax.warmup_cosine_decay_schedule(
    0.0, 1.0, warmup_steps=_warmup_steps(problem), decay_steps=problem.steps
  )
  return optax.inject_hyperparams(optax.adamw)(learning_rate=lambda t: rate * shape(t))


def _schedule_free_adamw(rate, problem):
  # Defazio et al. 2024: b1 0.9, b2 0.999, linear warmup (5% of the budget, as
  # the AlgoPerf submission), no weight decay (optax's default); evaluated at
  # the averaged iterate x (optax.contrib.schedule_free_eval_params).
  return contrib.schedule_free_adamw(learning_rate=rate, warmup_steps=_warmup_steps(problem))


def _read_schedule_free(state):
  return optax.tree.get(state, "max_lr")


def _sls(rate, problem):
  del rate
  # Armijo backtracking (Vaswani et al. 2019's SLS): c = 0.1, step ≤ 10, grows
  # by 1.5 after each accepted step (optax's default reset), ≤ 30 halvings·0.8.
  return optax.chain(
    optax.scale(-1.0),
    optax.scale_by_backtracking_linesearch(
      max_backtracking_steps=30, slope_rtol=0.1, max_learning_rate=10.0
    ),
  )


def _optax_methods():
  inj = optax.inject_hyperparams
  lr_state = _read_injected
  return [
    Method(
      "sgd",
      "baseline",
      lambda r, p: inj(optax.sgd)(learning_rate=r),
      lr_reader=lr_state,
      description="optax.sgd, fixed rate",
    ),
    Method(
      "sgd_momentum",
      "baseline",
      lambda r, p: inj(optax.sgd)(learning_rate=r, momentum=0.9),
      lr_reader=lr_state,
      description="optax.sgd, momentum 0.9",
    ),
    Method(
      "sgd_multistep",
      "baseline",
      _multistep,
      lr_reader=lr_state,
      description="optax.sgd, rate × 0.1 at 50% and 75% of the budget (TLR's sgd_mstep)",
    ),
    Method(
      "sgd_inverse_time",
      "peer",
      lambda r, p: inj(optax.sgd)(learning_rate=lambda t: r / (1.0 + t)),
      lr_reader=lr_state,
      only=("noisy_quadratic", "nonstationary_quadratic"),
      description="optax.sgd with the cooling schedule η₀/(1 + t) (vSGD Figs. 1–2)",
    ),
    Method(
      "adam",
      "baseline",
      lambda r, p: inj(optax.adam)(learning_rate=r),
      lr_reader=lr_state,
      description="optax.adam, defaults",
    ),
    Method(
      "adamw_cosine",
      "baseline",
      _adamw_cosine,
      lr_reader=lr_state,
      only=NETWORK_PROBLEMS,
      description="optax.adamw, linear warmup (5% of the budget) + cosine decay "
      "to 0, swept over the peak rate (AlgoPerf's calibrated baseline)",
    ),
    Method(
      "schedule_free_adamw",
      "baseline",
      _schedule_free_adamw,
      lr_reader=_read_schedule_free,
      only=NETWORK_PROBLEMS,
      eval_params=contrib.schedule_free_eval_params,
      description="optax.contrib.schedule_free_adamw, warmup 5% of the budget, "
      "b1 0.9, swept; evaluated at the averaged iterate",
    ),
    Method(
      "polyak_sgd",
      "peer",
      lambda r, p: optax.polyak_sgd(),
      swept=False,
      description="optax.polyak_sgd (SPS, f* = 0, max rate 1)",
    ),
    Method(
      "sls",
      "peer",
      _sls,
      swept=False,
      lr_reader=_tree_get("learning_rate"),
      description="optax.scale_by_backtracking_linesearch on −g: Armijo c = 0.1, "
      "max rate 10, ×1.5 reset",
    ),
    Method(
      "dog",
      "peer",
      lambda r, p: contrib.dog(),
      swept=False,
      lr_reader=_read_dog,
      description="optax.contrib.dog, defaults",
    ),
    Method(
      "prodigy",
      "peer",
      lambda r, p: contrib.prodigy(),
      swept=False,
      lr_reader=_tree_get("estim_lr"),
      description="optax.contrib.prodigy, defaults (rate read: d)",
    ),
    Method(
      "mechanize",
      "peer",
      lambda r, p: contrib.mechanize(optax.adam(1.0)),
      swept=False,
      lr_reader=_read_mechanic,
      description="optax.contrib.mechanize(optax.adam(1.0)) (rate read: Σ s)",
    ),
    Method(
      "dadapt_adamw",
      "peer",
      lambda r, p: contrib.dadapt_adamw(),
      swept=False,
      lr_reader=_tree_get("estim_lr"),
      description="optax.contrib.dadapt_adamw, defaults (rate read: d)",
    ),
    Method(
      "momo",
      "peer",
      lambda r, p: contrib.momo(learning_rate=r),
      description="optax.contrib.momo, swept over its rate (the method's cap)",
    ),
    Method(
      "momo_adam",
      "peer",
      lambda r, p: contrib.momo_adam(learning_rate=r),
      description="optax.contrib.momo_adam, swept over its rate",
    ),
  ]


@dataclasses.dataclass(frozen=True)
class AdaptlrConfig:
  """A named benchmark configuration of a method of ``adaptlr.registry.METHODS``.

  Attributes:
    name: the benchmark's name for it (report rows, ``--methods``).
    method: the registry key of the method it calls.
    kwargs: ``problem -> dict``, the paper settings that depend on the problem;
      the other arguments keep the library's defaults.
    description: one line for the report.
    only: run on these problems only (``None``: all).
  """

  name: str
  method: str
  kwargs: Callable[[Any], dict] = lambda problem: {}
  description: str = ""
  only: tuple[str, ...] | None = None  # run on these problems only (None: all)


# Paper settings and benchmark variants of adaptlr's methods, grouped by method in
# registry order; a registered method without an entry runs with its defaults.
ADAPTLR_CONFIGS = (
  # TLR Sec. 4: accumulate over a third of an epoch; 1 for full batch.
  AdaptlrConfig(
    "tlr",
    "tlr",
    lambda p: {"accumulation_steps": p.tlr_window},
    "adaptlr.tlr, global rate, accumulation = ⅓ epoch (1 full batch)",
  ),
  # issue 12: TLR's cold start (c doubles while it caps, up to 1), measured, not the default
  AdaptlrConfig(
    "tlr_cold_start",
    "tlr",
    lambda p: {"accumulation_steps": p.tlr_window, "max_bound": 1.0},
    "adaptlr.tlr(max_bound=1): the cold start (c doubles while it caps the update, up to 1), "
    "accumulation = ⅓ epoch",
    only=NETWORK_PROBLEMS,
  ),
  AdaptlrConfig(
    "tlr_pl",
    "tlr",
    lambda p: {"accumulation_steps": p.tlr_window, "granularity": "leaf"},
    "adaptlr.tlr(granularity='leaf') (sgd_tlr_pl)",
  ),
  AdaptlrConfig(
    "hypergradient",
    "hypergradient",
    lambda p: {"hyper_lr": 1e-3},  # SGD-HD's β
    "adaptlr.hypergradient, additive, β = 1e-3 (Baydin et al.)",
  ),
  # issue 12: the additive rule on heavy-ball momentum 0.9 (Baydin et al.'s SGDN-HD is
  # on Nesterov's), the design networks' best hypergradient candidate
  # (studies/network_defaults.py)
  AdaptlrConfig(
    "hypergradient_momentum",
    "hypergradient",
    lambda p: {"momentum": 0.9},
    "adaptlr.hypergradient(momentum=0.9): additive, β = 1e-3, on heavy-ball momentum 0.9",
    only=NETWORK_PROBLEMS,
  ),
  # de Roos et al. §4: SGD with momentum 0.5 ("β of 0.5 for both optimizers")
  AdaptlrConfig(
    "probabilistic_lr",
    "probabilistic_lr",
    lambda p: {"direction": optax.trace(0.5)},
    "adaptlr.probabilistic_lr on SGD with momentum 0.5 (de Roos et al.)",
  ),
  AdaptlrConfig(
    "probabilistic_lr_adam",
    "probabilistic_lr",
    lambda p: {"direction": optax.scale_by_adam(b1=0.5)},
    "adaptlr.probabilistic_lr on Adam with β₁ = 0.5 (de Roos et al.)",
  ),
  # adaptlr's horizon (issue 12): the same, with decay_steps = the run's steps; on the
  # network problems, the question it answers (its design study: studies/horizon.py)
  AdaptlrConfig(
    "probabilistic_lr_cosine",
    "probabilistic_lr",
    lambda p: {"direction": optax.trace(0.5), "decay_steps": p.steps},
    "adaptlr.probabilistic_lr on SGD with momentum 0.5, decay_steps = the run's steps",
    only=NETWORK_PROBLEMS,
  ),
  AdaptlrConfig(
    "probabilistic_lr_adam_cosine",
    "probabilistic_lr",
    lambda p: {"direction": optax.scale_by_adam(b1=0.5), "decay_steps": p.steps},
    "adaptlr.probabilistic_lr on Adam with β₁ = 0.5, decay_steps = the run's steps",
    only=NETWORK_PROBLEMS,
  ),
  AdaptlrConfig("vsgd", "vsgd", description="adaptlr.vsgd, library defaults"),
  # vSGD-l with its curvature refreshed every 10th step (a tenth of the estimate's cost):
  # 0.2.0's development default, which diverged on three of the four networks
  AdaptlrConfig(
    "vsgd_every_10",
    "vsgd",
    lambda p: {"curvature_every": 10},
    "adaptlr.vsgd(curvature_every=10): the curvature refreshed every 10th step",
    only=NETWORK_PROBLEMS,
  ),
)


def adaptlr_configs() -> list[AdaptlrConfig]:
  """Every adaptlr benchmark configuration, in registry order.

  Raises:
    ValueError: an entry of ``ADAPTLR_CONFIGS`` names a method that
      ``adaptlr.registry.METHODS`` does not have (renamed or removed), or two
      entries share a name.
  """
  unknown = sorted({c.method for c in ADAPTLR_CONFIGS} - set(ADAPTLR_REGISTRY))
  if unknown:
    raise ValueError(
      f"benchmarks.methods.ADAPTLR_CONFIGS names adaptlr methods {unknown} that "
      f"adaptlr.registry.METHODS does not have (it has {list(ADAPTLR_REGISTRY)}); "
      "rename or remove those entries."
    )
  names = [c.name for c in ADAPTLR_CONFIGS]
  if len(set(names)) != len(names):
    raise ValueError(f"benchmarks.methods.ADAPTLR_CONFIGS repeats a name: {names}.")
  configs = []
  for method in ADAPTLR_REGISTRY:
    declared = [c for c in ADAPTLR_CONFIGS if c.method == method]
    configs += declared or [
      AdaptlrConfig(method, method, description=f"adaptlr.{method}, library (paper) defaults")
    ]
  return configs


def _adaptlr_method(config: AdaptlrConfig) -> Method:
  spec = ADAPTLR_REGISTRY[config.method]
  # vSGD's learning_rate is a factor on its estimated rate ("There is no initial
  # rate to tune"): such methods run once, at the default.
  swept = spec.initial_rate

  def make(rate, problem):
    kw = dict(config.kwargs(problem))
    if swept:
      kw["learning_rate"] = rate
    return spec.optimizer(**kw)

  return Method(
    config.name,
    "adaptlr",
    make,
    swept=swept,
    lr_reader=_tree_get("learning_rate"),
    description=config.description,
    only=config.only,
  )


def registry() -> dict[str, Method]:
  """Every method by name: optax baselines and peers, then adaptlr's (registry order)."""
  methods = {m.name: m for m in _optax_methods()}
  for config in adaptlr_configs():
    methods[config.name] = _adaptlr_method(config)
  return methods


def read_rate(method: Method, state) -> jax.Array:
  """The method's current rate as one scalar (the mean over groups); NaN if none."""
  if method.lr_reader is None:
    return jnp.asarray(jnp.nan, jnp.float32)
  try:
    value = method.lr_reader(state)
  except (KeyError, ValueError, TypeError, AttributeError):
    return jnp.asarray(jnp.nan, jnp.float32)
  if value is None:
    return jnp.asarray(jnp.nan, jnp.float32)
  leaves = [jnp.ravel(jnp.asarray(v, jnp.float32)) for v in jax.tree.leaves(value)]
  if not leaves:
    return jnp.asarray(jnp.nan, jnp.float32)
  return jnp.mean(jnp.concatenate(leaves))
