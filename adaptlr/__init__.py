"""adaptlr: Optax optimizers that learn their own learning rate while they train.

Every method is a pure ``optax.GradientTransformationExtraArgs``: it drops into
``optax.chain``, ``jax.jit``, ``jax.vmap`` over hyperparameters and Flax loops.
"""

from adaptlr._granularity import Granularity
from adaptlr.hypergradient import HypergradientState
from adaptlr.hypergradient import hypergradient
from adaptlr.hypergradient import scale_by_hypergradient
from adaptlr.tlr import TLRState
from adaptlr.tlr import scale_by_tlr
from adaptlr.tlr import tlr

__version__ = "0.1.0"

__all__ = [
    "Granularity",
    "HypergradientState",
    "TLRState",
    "hypergradient",
    "scale_by_hypergradient",
    "scale_by_tlr",
    "tlr",
]


def __getattr__(name):
  # `adaptlr.flax` (Flax NNX/Linen helpers) is imported on first use, so that
  # `import adaptlr` never imports Flax.
  if name == "flax":
    import importlib

    return importlib.import_module("adaptlr.flax")
  raise AttributeError(f"module 'adaptlr' has no attribute {name!r}")
