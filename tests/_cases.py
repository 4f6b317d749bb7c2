"""The methods under the contract (tests/test_contract.py), one section per method.

Every method in ``adaptlr.registry.METHODS`` has a section here, in registry
order (tests/test_registry.py checks it), with:

* ``CASES``: one ``Case`` per method configuration that must keep the whole
  contract (convergence, jit, inject_hyperparams, vmap, dtypes, non-finite,
  sharding, checkpoints, bad input);
* ``REF_CASES``: configurations checked step by step, in float64, against an
  independent NumPy reading of the paper's formula on ``_problems.REF``.

The contract calls every update with ``value``, ``grad``, ``value_fn`` and the
loss's own kwargs, as optax's line searches are called; a method ignores what
it does not need.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Optional

import numpy as np
import optax
from _problems import REF_LABELS
from _ref_newton import newton_reference
from _ref_probabilistic import probabilistic_reference
from _ref_tlr import hypergradient_reference, tlr_reference
from _ref_vsgd import almeida_reference, smd_reference, vsgd_reference

import adaptlr


@dataclasses.dataclass(frozen=True)
class Case:
  id: str  # "<registry name>" or "<registry name>-<variant>"
  make: Callable[..., Any]  # the user-facing alias, e.g. adaptlr.tlr
  kwargs: dict  # its arguments for the contract runs
  hparams: dict  # float hyperparameter -> values to vmap over
  converge: dict  # problem -> (steps, max final loss[, kwargs])
  bad: tuple = ()  # (kwargs, regex) that must raise ValueError when built
  needs_value_fn: bool = False  # raises without value_fn
  needs_value: bool = False  # raises without value
  atol: float = 1e-5  # float32 tolerance for trajectory equalities


@dataclasses.dataclass(frozen=True)
class RefCase:
  id: str
  make: Callable[..., Any]
  kwargs: dict
  reference: Callable[..., Any]  # reference(prob, steps, **ref_kwargs) -> (traj, rates)
  ref_kwargs: Optional[dict] = None  # defaults to kwargs
  steps: int = 30
  rtol: float = 1e-9


_COMMON_BAD = (
  ({"learning_rate": -0.1}, "learning_rate"),
  ({"learning_rate": 0.0}, "learning_rate"),
  ({"granularity": "layer"}, "granularity"),
)

# ------------------------------------------------------------------- tlr --
_TLR_CASES = [
  Case(
    "tlr",
    adaptlr.tlr,
    {"learning_rate": 0.01},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "bound": (0.1, 0.25, 0.5)},
    converge={"parabola": (100, 1e-6), "rosenbrock": (3000, 1e-3), "mixed_pytree": (200, 1e-6)},
    bad=_COMMON_BAD
    + (
      ({"bound": 0.0}, "bound"),
      ({"bound": -1.0}, "bound"),
      ({"max_bound": 0.0}, "max_bound"),
      ({"max_bound": 0.1}, "max_bound"),
      ({"bound": 0.5, "max_bound": np.float32(0.25)}, "max_bound"),
      ({"max_bound": float("inf")}, "max_bound"),
      ({"accumulation_steps": 0}, "accumulation_steps"),
      ({"accumulation_steps": 2.5}, "accumulation_steps"),
      ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
      ({"direction": "adam"}, "direction"),
    ),
  ),
  Case(
    "tlr-cold-start",
    adaptlr.tlr,
    {"learning_rate": 0.01, "max_bound": 1.0},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "max_bound": (0.5, 1.0, 2.0)},
    converge={"parabola": (100, 1e-6), "mixed_pytree": (200, 1e-6)},
  ),
  Case(
    "tlr-leaf-accum",
    adaptlr.tlr,
    {"learning_rate": 0.01, "granularity": "leaf", "accumulation_steps": 3},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1)},
    converge={"parabola": (150, 1e-6), "mixed_pytree": (400, 1e-6)},
  ),
  Case(
    "tlr-adam",
    adaptlr.tlr,
    {"learning_rate": 0.01, "direction": optax.scale_by_adam()},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1)},
    converge={"parabola": (300, 1e-5), "mixed_pytree": (400, 1e-5)},
  ),
]
_TLR_REF_CASES = [
  RefCase("tlr-global", adaptlr.tlr, {"learning_rate": 0.01}, tlr_reference, steps=40),
  RefCase(
    "tlr-paper-rule",
    adaptlr.tlr,
    {"learning_rate": 0.3, "safeguard": False},
    tlr_reference,
    steps=40,
  ),
  # the cold start: from 1e-4 the bound caps several updates in a row, c doubles to 1
  RefCase(
    "tlr-cold-start",
    adaptlr.tlr,
    {"learning_rate": 1e-4, "max_bound": 1.0},
    tlr_reference,
    steps=40,
  ),
  RefCase(
    "tlr-cold-start-accumulate",
    adaptlr.tlr,
    {"learning_rate": 1e-4, "accumulation_steps": 3, "max_bound": 2.0},
    tlr_reference,
    steps=60,
  ),
  RefCase("tlr-safeguard-trips", adaptlr.tlr, {"learning_rate": 0.3}, tlr_reference, steps=40),
  RefCase(
    "tlr-leaf", adaptlr.tlr, {"learning_rate": 0.01, "granularity": "leaf"}, tlr_reference, steps=40
  ),
  RefCase(
    "tlr-labels",
    adaptlr.tlr,
    {"learning_rate": 0.01, "granularity": REF_LABELS},
    tlr_reference,
    ref_kwargs={"learning_rate": 0.01, "granularity": "labels"},
  ),
  RefCase(
    "tlr-element", adaptlr.tlr, {"learning_rate": 0.01, "granularity": "element"}, tlr_reference
  ),
  RefCase(
    "tlr-accumulate",
    adaptlr.tlr,
    {"learning_rate": 0.05, "accumulation_steps": 4, "bound": 0.5},
    tlr_reference,
    steps=60,
  ),
  RefCase(
    "tlr-accumulate-leaf-safeguard",
    adaptlr.tlr,
    {"learning_rate": 0.3, "accumulation_steps": 3, "granularity": "leaf"},
    tlr_reference,
    steps=60,
  ),
  RefCase(
    "tlr-even-window",
    adaptlr.tlr,
    {"learning_rate": 0.3, "accumulation_steps": 2},
    tlr_reference,
    steps=60,
  ),  # the aliased-divergence test fires here
  RefCase(
    "tlr-momentum",
    adaptlr.tlr,
    {"learning_rate": 0.01, "direction": optax.trace(0.5)},
    tlr_reference,
    ref_kwargs={"learning_rate": 0.01, "momentum": 0.5},
  ),
]

# --------------------------------------------------------- hypergradient --
_HYPERGRADIENT_CASES = [
  Case(
    "hypergradient",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 1e-3},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "hyper_lr": (1e-4, 1e-3, 1e-2)},
    # Rosenbrock's gradients (~10²) make β = 1e-3 diverge: the meta rate
    # needs tuning per problem (TLR Fig. 2 / App. D.4), so it is given here.
    converge={
      "parabola": (200, 1e-6),
      "rosenbrock": (5000, 1e-2, {"learning_rate": 1e-3, "hyper_lr": 1e-7}),
      "mixed_pytree": (300, 1e-6),
    },
    bad=_COMMON_BAD
    + (
      ({"hyper_lr": -1e-3}, "hyper_lr"),
      ({"multiplicative": True, "lookahead": True}, "multiplicative"),
      # issue 10: Optax conventions
      ({"direction": optax.adam(1e-3)}, r"optax\.scale_by_adam\(\)"),
      ({"momentum": 0.9, "direction": optax.trace(0.5)}, "either direction or momentum"),
      ({"nesterov": True}, "nesterov"),
      ({"weight_decay": -1e-3}, "weight_decay"),
      ({"learning_rate": optax.linear_schedule(0.1, 0.01, 10)}, "max_learning_rate="),
    ),
  ),
  Case(  # issue 10: SGDN-HD sugar, decoupled weight decay, a ceiling schedule
    "hypergradient-nesterov-decay-ceiling",
    adaptlr.hypergradient,
    {
      "learning_rate": 0.01,
      "hyper_lr": 1e-3,
      "momentum": 0.9,
      "nesterov": True,
      "weight_decay": 1e-4,
      "max_learning_rate": optax.linear_schedule(0.01, 0.5, 50),
    },
    hparams={"learning_rate": (1e-3, 1e-2), "weight_decay": (0.0, 1e-4)},
    converge={"parabola": (300, 1e-6), "mixed_pytree": (400, 1e-6)},
  ),
  Case(
    "hypergradient-mult-leaf",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 0.05, "multiplicative": True, "granularity": "leaf"},
    hparams={"learning_rate": (1e-3, 1e-2), "hyper_lr": (0.01, 0.05)},
    converge={"parabola": (200, 1e-6), "mixed_pytree": (300, 1e-6)},
  ),
  Case(
    "hypergradient-lookahead",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 1e-3, "lookahead": True},
    hparams={"learning_rate": (1e-3, 1e-2), "hyper_lr": (1e-4, 1e-3)},
    converge={"parabola": (200, 1e-6), "mixed_pytree": (300, 1e-6)},
    needs_value_fn=True,
  ),
]
_HYPERGRADIENT_REF_CASES = [
  RefCase(
    "hypergradient",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 1e-3},
    hypergradient_reference,
  ),
  # Baydin et al.'s rule exactly: here the divergence brake (safeguard=True,
  # tests/test_optax_conventions.py) fires on one leaf.
  RefCase(
    "hypergradient-leaf",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 1e-3, "granularity": "leaf", "safeguard": False},
    hypergradient_reference,
    ref_kwargs={"learning_rate": 0.01, "hyper_lr": 1e-3, "granularity": "leaf"},
  ),
  RefCase(
    "hypergradient-clamp",
    adaptlr.hypergradient,
    {"learning_rate": 0.3, "hyper_lr": 0.05, "min_learning_rate": 1e-6},
    hypergradient_reference,
  ),
  RefCase(
    "hypergradient-multiplicative",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 0.1, "multiplicative": True},
    hypergradient_reference,
  ),
  RefCase(
    "hypergradient-lookahead",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 3e-3, "lookahead": True},
    hypergradient_reference,
  ),
  RefCase(
    "hypergradient-lookahead-labels",
    adaptlr.hypergradient,
    {"learning_rate": 0.01, "hyper_lr": 3e-3, "lookahead": True, "granularity": REF_LABELS},
    hypergradient_reference,
    ref_kwargs={
      "learning_rate": 0.01,
      "hyper_lr": 3e-3,
      "lookahead": True,
      "granularity": "labels",
    },
  ),
]

# ------------------------------------------------------------- newton_lr --
_NEWTON_LR_CASES = [
  Case(
    "newton_lr",
    adaptlr.newton_lr,
    {"learning_rate": 0.01},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "max_change": (0.5, 1.0, 4.0)},
    converge={
      "parabola": (30, 1e-6),
      "rosenbrock": (3000, 1e-3, {"learning_rate": 1e-3}),
      "mixed_pytree": (60, 1e-6),
    },
    bad=_COMMON_BAD
    + (
      ({"granularity": "element"}, "element"),
      ({"derivatives": "fd"}, "derivatives"),
      ({"line": "next"}, "line"),
      ({"eps": -1e-5}, "eps"),
      ({"relative_eps": 0.5}, "relative_eps"),
      ({"relative_eps": 0.0}, "relative_eps"),
      ({"max_change": 0.0}, "max_change"),
      ({"rate_momentum": 1.0}, "rate_momentum"),
      ({"delta": -1.0}, "delta"),
      ({"probe_mode": "pmap"}, "probe_mode"),
      ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
      ({"direction": "adam"}, "direction"),
    ),
    needs_value_fn=True,
  ),
  Case(
    "newton_lr-fd-leaf",
    adaptlr.newton_lr,
    {"learning_rate": 0.1, "derivatives": "finite_difference", "granularity": "leaf"},
    hparams={"learning_rate": (1e-2, 0.1), "relative_eps": (0.05, 0.25)},
    converge={"parabola": (30, 1e-6), "mixed_pytree": (60, 1e-6)},
    needs_value_fn=True,
    atol=1e-4,
  ),
  Case(
    "newton_lr-paper-rule-momentum",
    adaptlr.newton_lr,
    {"learning_rate": 0.01, "max_change": None, "safeguard": False, "rate_momentum": 0.9},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "rate_momentum": (0.0, 0.9)},
    converge={"parabola": (60, 1e-6), "mixed_pytree": (300, 1e-6)},
    needs_value_fn=True,
  ),
  Case(
    "newton_lr-adam",
    adaptlr.newton_lr,
    {"learning_rate": 0.01, "direction": optax.scale_by_adam()},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1)},
    converge={"parabola": (100, 1e-6), "rosenbrock": (3000, 1e-6), "mixed_pytree": (300, 1e-6)},
    needs_value_fn=True,
  ),
]
_NEWTON_LR_REF_CASES = [
  RefCase("newton-default", adaptlr.newton_lr, {"learning_rate": 0.01}, newton_reference),
  RefCase(
    "newton-safeguard-trips",
    adaptlr.newton_lr,
    {"learning_rate": 0.5, "line": "this_batch"},
    newton_reference,
  ),
  # η₀ = 2: the first steps overshoot and are not taken (η halves), 5 of 30 in all
  RefCase(
    "newton-next-batch-downhill-check", adaptlr.newton_lr, {"learning_rate": 2.0}, newton_reference
  ),
  RefCase(
    "newton-next-batch",
    adaptlr.newton_lr,
    {"learning_rate": 0.01, "max_change": 0.5},
    newton_reference,
  ),
  RefCase(
    "newton-next-batch-fd-leaf",
    adaptlr.newton_lr,
    {
      "learning_rate": 0.05,
      "line": "next_batch",
      "derivatives": "finite_difference",
      "granularity": "leaf",
    },
    newton_reference,
    rtol=1e-7,
  ),
  RefCase(
    "newton-autodiff-paper-rule",
    adaptlr.newton_lr,
    {"learning_rate": 0.05, "max_change": None, "safeguard": False, "line": "this_batch"},
    newton_reference,
  ),
  # An absolute ε = 1e-4 (second difference 4ε²f″ of the order of δ): Eq. 10, δ added only
  # at an exact zero (§4.1). The paper's ε = 1e-5 is in test_faithful.py (its tolerance is
  # the rounding of a 1e-9 second difference).
  RefCase(
    "newton-fd-small-eps",
    adaptlr.newton_lr,
    {
      "learning_rate": 0.05,
      "derivatives": "finite_difference",
      "eps": 1e-4,
      "max_change": None,
      "safeguard": False,
      "line": "this_batch",
    },
    newton_reference,
    rtol=1e-6,
  ),
  RefCase(
    "newton-fd-relative-leaf",
    adaptlr.newton_lr,
    {
      "learning_rate": 0.01,
      "derivatives": "finite_difference",
      "granularity": "leaf",
      "line": "this_batch",
    },
    newton_reference,
    rtol=1e-7,
  ),
  RefCase(
    "newton-labels-momentum-trace",
    adaptlr.newton_lr,
    {
      "learning_rate": 0.01,
      "granularity": REF_LABELS,
      "rate_momentum": 0.9,
      "direction": optax.trace(0.5),
    },
    newton_reference,
    ref_kwargs={
      "learning_rate": 0.01,
      "granularity": "labels",
      "rate_momentum": 0.9,
      "trace": 0.5,
    },
  ),
]

# ------------------------------------------------------ probabilistic_lr --
_PROBABILISTIC_LR_CASES = [
  Case(
    "probabilistic_lr",
    adaptlr.probabilistic_lr,
    {"learning_rate": 1e-3},
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "increase_factor": (1.1, 1.2, 1.5)},
    converge={"parabola": (200, 1e-6), "mixed_pytree": (300, 1e-6), "rosenbrock": (3000, 1e-3)},
    bad=(
      _COMMON_BAD[0],
      _COMMON_BAD[1],
      ({"noise_variance": -0.1}, "noise_variance"),
      ({"increase_factor": 0.9}, "increase_factor"),
      ({"decrease_factor": 1.5}, "decrease_factor"),
      ({"decrease_factor": 0.0}, "decrease_factor"),
      ({"increase_threshold": 0.5}, "threshold"),
      ({"max_scale": 0.0}, "max_scale"),
      ({"adapt_every": 0}, "adapt_every"),
      ({"adapt_every": 1.5}, "adapt_every"),
      ({"decay_steps": 0}, "decay_steps"),
      ({"decay_steps": 10.5}, "decay_steps"),
      ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
      ({"direction": "adam"}, "direction"),
    ),
    needs_value_fn=True,
    needs_value=True,
  ),
  Case(
    "probabilistic_lr-adam-fmin-noise",
    adaptlr.probabilistic_lr,
    {
      "learning_rate": 1e-2,
      "direction": optax.scale_by_adam(b1=0.5),
      "f_min": 0.0,
      "noise_variance": 0.05,
      "relative_noise": True,
    },
    hparams={"learning_rate": (1e-3, 1e-2, 0.1), "noise_variance": (0.01, 0.1)},
    converge={"parabola": (300, 1e-5), "rosenbrock": (3000, 1e-3), "mixed_pytree": (300, 1e-5)},
    needs_value_fn=True,
    needs_value=True,
  ),
]
_PROBABILISTIC_LR_REF_CASES = [
  RefCase("prob-sgd", adaptlr.probabilistic_lr, {"learning_rate": 0.01}, probabilistic_reference),
  RefCase(
    "prob-sgd-fmin",
    adaptlr.probabilistic_lr,
    {"learning_rate": 0.01, "f_min": 0.0},
    probabilistic_reference,
  ),
  RefCase(
    "prob-fmin-noise-max-scale",
    adaptlr.probabilistic_lr,
    {"learning_rate": 0.01, "f_min": 0.0, "noise_variance": 0.1, "max_scale": 3.0},
    probabilistic_reference,
  ),
  RefCase(
    "prob-relative-noise-adapt-every",
    adaptlr.probabilistic_lr,
    {"learning_rate": 0.3, "noise_variance": 0.05, "relative_noise": True, "adapt_every": 3},
    probabilistic_reference,
  ),
  RefCase(
    "prob-momentum",
    adaptlr.probabilistic_lr,
    {"learning_rate": 0.05, "direction": optax.trace(0.5)},
    probabilistic_reference,
    ref_kwargs={"learning_rate": 0.05, "base": "momentum", "beta": 0.5},
  ),
  RefCase(
    "prob-adam-fmin",
    adaptlr.probabilistic_lr,
    {
      "learning_rate": 0.01,
      "direction": optax.scale_by_adam(b1=0.5),
      "f_min": 0.0,
      "noise_variance": 0.01,
    },
    probabilistic_reference,
    ref_kwargs={
      "learning_rate": 0.01,
      "base": "adam",
      "b1": 0.5,
      "f_min": 0.0,
      "noise_variance": 0.01,
    },
  ),
  RefCase(
    "prob-adam",
    adaptlr.probabilistic_lr,
    {"learning_rate": 0.01, "direction": optax.scale_by_adam(b1=0.5)},
    probabilistic_reference,
    ref_kwargs={"learning_rate": 0.01, "base": "adam", "b1": 0.5},
  ),
  # the horizon: cosine-decayed steps, f₊ of the undecayed one, thresholds 1 and 1/4
  RefCase(
    "prob-adam-horizon",
    adaptlr.probabilistic_lr,
    {"learning_rate": 0.01, "direction": optax.scale_by_adam(b1=0.5), "decay_steps": 12},
    probabilistic_reference,
    ref_kwargs={
      "learning_rate": 0.01,
      "base": "adam",
      "b1": 0.5,
      "decay_steps": 12,
      "increase_threshold": 1.0,
      "decrease_threshold": 0.25,
    },
  ),
  RefCase(
    "prob-sgd-horizon-paper-thresholds",
    adaptlr.probabilistic_lr,
    {
      "learning_rate": 0.05,
      "decay_steps": 8,
      "increase_threshold": 4 / 3,
      "decrease_threshold": 3 / 4,
    },
    probabilistic_reference,
    ref_kwargs={"learning_rate": 0.05, "decay_steps": 8},
  ),
  # from a rate so small that the expected decrease is below the rounding of f: η grows
  RefCase(
    "prob-sgd-unmeasurable",
    adaptlr.probabilistic_lr,
    {"learning_rate": 1e-20},
    probabilistic_reference,
  ),
]

# ------------------------------------------------------------------ vsgd --
_VSGD_BAD = _COMMON_BAD + (
  ({"curvature": "bbprop"}, "curvature"),
  ({"init_samples": 1}, "init_samples"),
  ({"curvature_every": 0}, "curvature_every"),
  ({"slow_start": 0.5}, "slow_start"),
  ({"slow_start": "d/2"}, "slow_start"),
  ({"batch_size": 0}, "batch_size"),
  ({"min_curvature": 0.0}, "min_curvature"),
  ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
)

_VSGD_CASES = [
  Case(
    "vsgd",
    adaptlr.vsgd,
    {"init_samples": 2},
    hparams={"learning_rate": (0.5, 1.0), "slow_start": (2.0, 20.0)},
    # Rosenbrock's large off-diagonal Hessian makes the per-element |z ⊙ Hz| noisy enough
    # that 3000 deterministic steps of vSGD-l succeed or not depending on the Hutchinson
    # seed; vSGD-g (one rate, curvature h⁺ = max h̄) solves it.
    converge={
      "parabola": (200, 1e-6),
      "mixed_pytree": (200, 1e-6),
      "rosenbrock": (3000, 1e-2, {"granularity": "global"}),
    },
    bad=_VSGD_BAD,
    needs_value_fn=True,
  ),
  Case(
    "vsgd-leaf-fd",
    adaptlr.vsgd,
    {"granularity": "leaf", "curvature": "finite_difference", "init_samples": 3},
    hparams={"min_curvature": (1e-6, 10.0)},
    converge={"parabola": (300, 1e-6), "mixed_pytree": (300, 1e-6)},
    needs_value_fn=True,
  ),
  Case(  # the curvature refreshed every 10th step (a tenth of the estimate's cost)
    "vsgd-refresh-10",
    adaptlr.vsgd,
    {"init_samples": 2, "curvature_every": 10},
    hparams={"learning_rate": (0.5, 1.0)},
    converge={"parabola": (200, 1e-6), "mixed_pytree": (200, 1e-6)},
    needs_value_fn=True,
  ),
]
_VSGD_REF_CASES = [
  RefCase("vsgd-element", adaptlr.vsgd, {"init_samples": 3}, vsgd_reference, steps=40),
  RefCase("vsgd-element-default-start", adaptlr.vsgd, {}, vsgd_reference, steps=40),
  RefCase(
    "vsgd-leaf", adaptlr.vsgd, {"init_samples": 3, "granularity": "leaf"}, vsgd_reference, steps=40
  ),
  RefCase(
    "vsgd-global",
    adaptlr.vsgd,
    {"init_samples": 3, "granularity": "global"},
    vsgd_reference,
    steps=40,
  ),
  RefCase(
    "vsgd-labels-paper-C",
    adaptlr.vsgd,
    {"init_samples": 4, "granularity": REF_LABELS, "slow_start": "d/10", "learning_rate": 0.7},
    vsgd_reference,
    ref_kwargs={
      "init_samples": 4,
      "granularity": "labels",
      "slow_start": "d/10",
      "learning_rate": 0.7,
    },
  ),
  RefCase(
    "vsgd-refresh-10",
    adaptlr.vsgd,
    {"init_samples": 3, "curvature_every": 10},
    vsgd_reference,
    steps=40,
  ),
  RefCase(
    "vsgd-refresh-4",
    adaptlr.vsgd,
    {"init_samples": 3, "curvature_every": 4},
    vsgd_reference,
    steps=40,
  ),
  RefCase(
    "vsgd-leaf-refresh-3",
    adaptlr.vsgd,
    {"init_samples": 2, "curvature_every": 3, "granularity": "leaf"},
    vsgd_reference,
    steps=40,
  ),
  RefCase(
    "vsgd-fd",
    adaptlr.vsgd,
    {"init_samples": 3, "curvature": "finite_difference"},
    vsgd_reference,
    steps=40,
  ),
  RefCase(
    "vsgd-global-fd",
    adaptlr.vsgd,
    {"init_samples": 2, "curvature": "finite_difference", "granularity": "global"},
    vsgd_reference,
    steps=40,
  ),
]

# ------------------------------------------------------------------- smd --
_SMD_CASES = [
  Case(
    "smd",
    adaptlr.smd,
    {"learning_rate": 0.05, "meta_lr": 0.01, "tau": 10.0},
    hparams={"learning_rate": (0.01, 0.05), "meta_lr": (1e-3, 0.1), "tau": (2.0, 10.0)},
    converge={
      "parabola": (200, 1e-6),
      "mixed_pytree": (300, 1e-6),
      "rosenbrock": (3000, 5e-2, {"learning_rate": 1e-3}),
    },
    bad=_COMMON_BAD
    + (
      ({"meta_lr": -1.0}, "meta_lr"),
      ({"tau": 0.5}, "tau"),
      ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
    ),
    needs_value_fn=True,
  ),
]
_SMD_REF_CASES = [
  RefCase(
    "smd",
    adaptlr.smd,
    {"learning_rate": 0.05, "meta_lr": 0.05, "tau": 10.0},
    smd_reference,
    steps=40,
  ),
  RefCase(
    "smd-leaf",
    adaptlr.smd,
    {"learning_rate": 0.05, "meta_lr": 0.05, "tau": 5.0, "granularity": "leaf"},
    smd_reference,
    steps=40,
  ),
  RefCase(
    "smd-element",
    adaptlr.smd,
    {"learning_rate": 0.05, "meta_lr": 0.05, "tau": 5.0, "granularity": "element"},
    smd_reference,
    steps=40,
  ),
]

# --------------------------------------------------------------- almeida --
_ALMEIDA_CASES = [
  Case(
    "almeida",
    adaptlr.almeida,
    {"learning_rate": 0.1, "tau": 10.0},
    hparams={"learning_rate": (0.05, 0.1), "tau": (2.0, 10.0)},
    converge={
      "parabola": (200, 1e-6),
      "mixed_pytree": (300, 1e-6),
      "rosenbrock": (3000, 0.1, {"learning_rate": 1e-3}),
    },
    bad=_COMMON_BAD[:2]
    + (
      ({"tau": 0.5}, "tau"),
      ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
    ),
  ),
]
_ALMEIDA_REF_CASES = [
  RefCase(
    "almeida", adaptlr.almeida, {"learning_rate": 0.1, "tau": 5.0}, almeida_reference, steps=40
  ),
]

# ------------------------------------------------------------------------- all --
CASES = [
  *_TLR_CASES,
  *_HYPERGRADIENT_CASES,
  *_NEWTON_LR_CASES,
  *_PROBABILISTIC_LR_CASES,
  *_VSGD_CASES,
  *_SMD_CASES,
  *_ALMEIDA_CASES,
]
REF_CASES = [
  *_TLR_REF_CASES,
  *_HYPERGRADIENT_REF_CASES,
  *_NEWTON_LR_REF_CASES,
  *_PROBABILISTIC_LR_REF_CASES,
  *_VSGD_REF_CASES,
  *_SMD_REF_CASES,
  *_ALMEIDA_REF_CASES,
]
