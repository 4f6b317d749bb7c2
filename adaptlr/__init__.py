"""adaptlr: Optax optimizers that learn their own learning rate while they train.

Every method is a pure ``optax.GradientTransformationExtraArgs``: it drops into
``optax.chain``, ``jax.jit``, ``jax.vmap`` over hyperparameters and Flax loops.
"""

from adaptlr import registry
from adaptlr._almeida import AlmeidaState, almeida, scale_by_almeida
from adaptlr._granularity import Granularity
from adaptlr._hypergradient import HypergradientState, hypergradient, scale_by_hypergradient
from adaptlr._newton import NewtonLRState, newton_lr, scale_by_newton_lr
from adaptlr._probabilistic import ProbabilisticLRState, probabilistic_lr, scale_by_probabilistic_lr
from adaptlr._smd import SMDState, scale_by_smd, smd
from adaptlr._tlr import TLRState, scale_by_tlr, tlr
from adaptlr._vsgd import VSGDState, scale_by_vsgd, vsgd
from adaptlr.registry import learning_rate

__version__ = "0.2.0"

__all__ = [
  "Granularity",
  "HypergradientState",
  "TLRState",
  "hypergradient",
  "scale_by_hypergradient",
  "scale_by_tlr",
  "tlr",
  "AlmeidaState",
  "SMDState",
  "VSGDState",
  "almeida",
  "scale_by_almeida",
  "scale_by_smd",
  "scale_by_vsgd",
  "smd",
  "vsgd",
  "NewtonLRState",
  "newton_lr",
  "scale_by_newton_lr",
  "ProbabilisticLRState",
  "probabilistic_lr",
  "scale_by_probabilistic_lr",
  "registry",
  "learning_rate",
]


def __getattr__(name: str):
  # `adaptlr.flax` (Flax NNX/Linen helpers) is imported on first use, so that
  # `import adaptlr` never imports Flax.
  if name == "flax":
    import importlib

    return importlib.import_module("adaptlr.flax")
  raise AttributeError(f"module 'adaptlr' has no attribute {name!r}")
