"""The methods under the contract (tests/test_contract.py).

Every adaptlr method joins by adding entries here:

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
from typing import Any, Callable, Optional

import optax

import adaptlr
from _problems import REF_LABELS
from _ref_tlr import hypergradient_reference, tlr_reference


@dataclasses.dataclass(frozen=True)
class Case:
  id: str
  make: Callable[..., Any]                  # the user-facing alias, e.g. adaptlr.tlr
  kwargs: dict                              # its arguments for the contract runs
  hparams: dict                             # float hyperparameter -> values to vmap over
  converge: dict                            # problem -> (steps, largest final loss[, kwargs overrides])
  bad: tuple = ()                           # (kwargs, regex) that must raise ValueError when built
  needs_value_fn: bool = False              # raises without value_fn
  needs_value: bool = False                 # raises without value
  atol: float = 1e-5                        # float32 tolerance for trajectory equalities


@dataclasses.dataclass(frozen=True)
class RefCase:
  id: str
  make: Callable[..., Any]
  kwargs: dict
  reference: Callable[..., Any]             # reference(prob, steps, **ref_kwargs) -> (traj, rates)
  ref_kwargs: Optional[dict] = None         # defaults to kwargs
  steps: int = 30
  rtol: float = 1e-9


_COMMON_BAD = (
    ({"learning_rate": -0.1}, "learning_rate"),
    ({"learning_rate": 0.0}, "learning_rate"),
    ({"granularity": "layer"}, "granularity"),
)

CASES = [
    Case(
        "tlr", adaptlr.tlr, {"learning_rate": 0.01},
        hparams={"learning_rate": (1e-3, 1e-2, 0.1), "bound": (0.1, 0.25, 0.5)},
        converge={"parabola": (100, 1e-6), "rosenbrock": (3000, 1e-3),
                  "mixed_pytree": (200, 1e-6)},
        bad=_COMMON_BAD + (
            ({"bound": 0.0}, "bound"), ({"bound": -1.0}, "bound"),
            ({"accumulation_steps": 0}, "accumulation_steps"),
            ({"accumulation_steps": 2.5}, "accumulation_steps"),
            ({"min_learning_rate": 1.0, "max_learning_rate": 0.1}, "min_learning_rate"),
            ({"direction": "adam"}, "direction"),
        ),
    ),
    Case(
        "tlr-leaf-accum", adaptlr.tlr,
        {"learning_rate": 0.01, "granularity": "leaf", "accumulation_steps": 3},
        hparams={"learning_rate": (1e-3, 1e-2, 0.1)},
        converge={"parabola": (150, 1e-6), "mixed_pytree": (400, 1e-6)},
    ),
    Case(
        "tlr-adam", adaptlr.tlr,
        {"learning_rate": 0.01, "direction": optax.scale_by_adam()},
        hparams={"learning_rate": (1e-3, 1e-2, 0.1)},
        converge={"parabola": (300, 1e-5), "mixed_pytree": (400, 1e-5)},
    ),
    Case(
        "hypergradient", adaptlr.hypergradient, {"learning_rate": 0.01, "hyper_lr": 1e-3},
        hparams={"learning_rate": (1e-3, 1e-2, 0.1), "hyper_lr": (1e-4, 1e-3, 1e-2)},
        # Rosenbrock's gradients (~10²) make β = 1e-3 diverge: the meta rate
        # needs tuning per problem (TLR Fig. 2 / App. D.4), so it is given here.
        converge={"parabola": (200, 1e-6),
                  "rosenbrock": (5000, 1e-2, {"learning_rate": 1e-3, "hyper_lr": 1e-7}),
                  "mixed_pytree": (300, 1e-6)},
        bad=_COMMON_BAD + (
            ({"hyper_lr": -1e-3}, "hyper_lr"),
            ({"multiplicative": True, "lookahead": True}, "multiplicative"),
        ),
    ),
    Case(
        "hypergradient-mult-leaf", adaptlr.hypergradient,
        {"learning_rate": 0.01, "hyper_lr": 0.05, "multiplicative": True,
         "granularity": "leaf"},
        hparams={"learning_rate": (1e-3, 1e-2), "hyper_lr": (0.01, 0.05)},
        converge={"parabola": (200, 1e-6), "mixed_pytree": (300, 1e-6)},
    ),
    Case(
        "hypergradient-lookahead", adaptlr.hypergradient,
        {"learning_rate": 0.01, "hyper_lr": 1e-3, "lookahead": True},
        hparams={"learning_rate": (1e-3, 1e-2), "hyper_lr": (1e-4, 1e-3)},
        converge={"parabola": (200, 1e-6), "mixed_pytree": (300, 1e-6)},
        needs_value_fn=True,
    ),
]

REF_CASES = [
    RefCase("tlr-global", adaptlr.tlr, {"learning_rate": 0.01}, tlr_reference, steps=40),
    RefCase("tlr-paper-rule", adaptlr.tlr, {"learning_rate": 0.3, "safeguard": False},
            tlr_reference, steps=40),
    RefCase("tlr-safeguard-trips", adaptlr.tlr, {"learning_rate": 0.3}, tlr_reference,
            steps=40),
    RefCase("tlr-leaf", adaptlr.tlr, {"learning_rate": 0.01, "granularity": "leaf"},
            tlr_reference, steps=40),
    RefCase("tlr-labels", adaptlr.tlr, {"learning_rate": 0.01, "granularity": REF_LABELS},
            tlr_reference, ref_kwargs={"learning_rate": 0.01, "granularity": "labels"}),
    RefCase("tlr-element", adaptlr.tlr, {"learning_rate": 0.01, "granularity": "element"},
            tlr_reference),
    RefCase("tlr-accumulate", adaptlr.tlr,
            {"learning_rate": 0.05, "accumulation_steps": 4, "bound": 0.5},
            tlr_reference, steps=60),
    RefCase("tlr-accumulate-leaf-safeguard", adaptlr.tlr,
            {"learning_rate": 0.3, "accumulation_steps": 3, "granularity": "leaf"},
            tlr_reference, steps=60),
    RefCase("tlr-momentum", adaptlr.tlr, {"learning_rate": 0.01, "direction": optax.trace(0.5)},
            tlr_reference, ref_kwargs={"learning_rate": 0.01, "momentum": 0.5}),
    RefCase("hypergradient", adaptlr.hypergradient, {"learning_rate": 0.01, "hyper_lr": 1e-3},
            hypergradient_reference),
    RefCase("hypergradient-leaf", adaptlr.hypergradient,
            {"learning_rate": 0.01, "hyper_lr": 1e-3, "granularity": "leaf"},
            hypergradient_reference),
    RefCase("hypergradient-clamp", adaptlr.hypergradient,
            {"learning_rate": 0.3, "hyper_lr": 0.05, "min_learning_rate": 1e-6},
            hypergradient_reference),
    RefCase("hypergradient-multiplicative", adaptlr.hypergradient,
            {"learning_rate": 0.01, "hyper_lr": 0.1, "multiplicative": True},
            hypergradient_reference),
    RefCase("hypergradient-lookahead", adaptlr.hypergradient,
            {"learning_rate": 0.01, "hyper_lr": 3e-3, "lookahead": True},
            hypergradient_reference),
    RefCase("hypergradient-lookahead-labels", adaptlr.hypergradient,
            {"learning_rate": 0.01, "hyper_lr": 3e-3, "lookahead": True,
             "granularity": REF_LABELS},
            hypergradient_reference,
            ref_kwargs={"learning_rate": 0.01, "hyper_lr": 3e-3, "lookahead": True,
                        "granularity": "labels"}),
]
