"""adaptlr: Optax optimizers that learn their own learning rate while they train.

Every method is a pure ``optax.GradientTransformationExtraArgs``: it drops into
``optax.chain``, ``jax.jit``, ``jax.vmap`` over hyperparameters and Flax loops.
"""

from adaptlr._granularity import Granularity
from adaptlr._hypergradient import HypergradientState
from adaptlr._hypergradient import hypergradient
from adaptlr._hypergradient import scale_by_hypergradient
from adaptlr._tlr import TLRState
from adaptlr._tlr import scale_by_tlr
from adaptlr._tlr import tlr
from adaptlr._almeida import AlmeidaState
from adaptlr._almeida import almeida
from adaptlr._almeida import scale_by_almeida
from adaptlr._smd import SMDState
from adaptlr._smd import scale_by_smd
from adaptlr._smd import smd
from adaptlr._vsgd import VSGDState
from adaptlr._vsgd import scale_by_vsgd
from adaptlr._vsgd import vsgd
from adaptlr._newton import NewtonLRState
from adaptlr._newton import newton_lr
from adaptlr._newton import scale_by_newton_lr
from adaptlr._probabilistic import ProbabilisticLRState
from adaptlr._probabilistic import probabilistic_lr
from adaptlr._probabilistic import scale_by_probabilistic_lr

from adaptlr import registry

__version__ = "0.1.0"

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
]


def __getattr__(name):
  # `adaptlr.flax` (Flax NNX/Linen helpers) is imported on first use, so that
  # `import adaptlr` never imports Flax.
  if name == "flax":
    import importlib

    return importlib.import_module("adaptlr.flax")
  raise AttributeError(f"module 'adaptlr' has no attribute {name!r}")
