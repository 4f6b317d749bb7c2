"""The one list of adaptlr's methods, and :func:`learning_rate`, which reads their states.

The top layer: it imports every method. The contract and Flax tests and the
benchmarks read this registry (a test checks that the README's method table
has a row for each entry); a new method is added by writing its module and one
:class:`MethodSpec` entry below (see ``CONTRIBUTING.md``).

Example:
  >>> import adaptlr
  >>> spec = adaptlr.registry.METHODS["tlr"]
  >>> spec.optimizer is adaptlr.tlr, spec.needs_value_fn
  (True, False)
  >>> sorted(adaptlr.registry.METHODS)[:3]
  ['almeida', 'hypergradient', 'newton_lr']
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax
import optax

from adaptlr import _almeida, _hypergradient, _newton, _probabilistic, _smd, _tlr, _vsgd


@dataclasses.dataclass(frozen=True)
class MethodSpec:
  """What the rest of the project needs to know about one method.

  Attributes:
    name: the public name, ``adaptlr.<name>`` is :attr:`optimizer`.
    optimizer: the user-facing alias (updates ready for ``optax.apply_updates``).
    scale_by: its ``scale_by_*`` building block (updates are ``+rate * direction``).
    state: the NamedTuple state class of :attr:`scale_by`.
    needs_value_fn: ``update`` raises without the ``value_fn`` extra arg.
    needs_value: ``update`` raises without the ``value`` extra arg.
    initial_rate: ``learning_rate`` is an initial rate that the method adapts
      (``False`` for vSGD, where it is a factor on the estimated rate).
    consumes: extra-arg names the method reads itself besides optax's
      ``value``, ``grad`` and ``value_fn`` (its module's ``CONSUMES``); the
      union over all methods is in ``adaptlr._loss.RESERVED_EXTRA_ARGS``, never
      forwarded to ``value_fn``.
    paper: the reference, by title and venue.
  """

  name: str
  optimizer: Callable[..., Any]
  scale_by: Callable[..., Any]
  state: type
  needs_value_fn: bool = False
  needs_value: bool = False
  initial_rate: bool = True
  consumes: frozenset[str] = frozenset()
  paper: str = ""


_TLR = "Trainable Learning Rate, anonymous submission to ICLR 2022 (OpenReview)"
_RG = (
  "Ravaut & Gorti, Gradient descent revisited via an adaptive online learning rate, "
  "arXiv:1801.09136"
)
_VSGD = "Schaul, Zhang & LeCun, No More Pesky Learning Rates, ICML 2013, arXiv:1206.1106"


def _spec(module: Any, name: str, state: type, **kwargs: Any) -> MethodSpec:
  """The entry of ``module``'s method: ``module.<name>``, ``module.scale_by_<name>``."""
  optimizer, scale_by = getattr(module, name), getattr(module, f"scale_by_{name}")
  return MethodSpec(name, optimizer, scale_by, state, consumes=module.CONSUMES, **kwargs)


_BAYDIN = "Baydin et al., Online Learning Rate Adaptation with Hypergradient Descent, ICLR 2018"
_DE_ROOS = (
  "de Roos, Jidling, Wills, Schön & Hennig, A Probabilistically Motivated Learning Rate "
  "Adaptation for Stochastic Optimization, arXiv:2102.10880"
)
METHODS: Mapping[str, MethodSpec] = {
  s.name: s
  for s in (
    _spec(_tlr, "tlr", _tlr.TLRState, paper=_TLR),
    _spec(
      _hypergradient,
      "hypergradient",
      _hypergradient.HypergradientState,
      paper=f"{_RG}; {_BAYDIN}, arXiv:1703.04782",
    ),
    _spec(_newton, "newton_lr", _newton.NewtonLRState, needs_value_fn=True, paper=_RG),
    _spec(
      _probabilistic,
      "probabilistic_lr",
      _probabilistic.ProbabilisticLRState,
      needs_value_fn=True,
      needs_value=True,
      paper=_DE_ROOS,
    ),
    _spec(_vsgd, "vsgd", _vsgd.VSGDState, needs_value_fn=True, initial_rate=False, paper=_VSGD),
    _spec(
      _smd, "smd", _smd.SMDState, needs_value_fn=True, paper=_VSGD + ", App. C (Schraudolph's SMD)"
    ),
    _spec(_almeida, "almeida", _almeida.AlmeidaState, paper=_VSGD + ", §2 (Almeida et al.)"),
  )
}

_STATES = frozenset(spec.state.__name__ for spec in METHODS.values())


def _is_learned_rate(path, value) -> bool:
  del value
  last = path[-1] if path else None
  return isinstance(last, optax.tree_utils.NamedTupleKey) and last.tuple_name in _STATES


def learning_rate(state: optax.OptState) -> Any:
  """The learned rate(s) of the adaptlr method in ``state``.

  Finds the ``learning_rate`` field of the method's own state wherever it sits:
  directly, in an ``optax.chain``, under ``optax.inject_hyperparams`` (whose
  ``hyperparams["learning_rate"]`` is only the *initial* rate), ``optax.masked``
  or ``optax.MultiSteps``: ``optax.tree.get`` with a filter that keeps
  adaptlr's states only.

  Args:
    state: an optimizer state holding exactly one adaptlr method's state.

  Returns:
    The rate: a scalar, a pytree of scalars, or per-element rates, per the
    method's ``granularity``.

  Raises:
    ValueError: ``state`` holds no adaptlr method's state, or several (then
      use ``optax.tree.get_all_with_path`` with the same filter).

  Example:
    >>> import jax, jax.numpy as jnp, optax, adaptlr
    >>> opt = optax.inject_hyperparams(adaptlr.tlr)(learning_rate=0.1)
    >>> state = jax.jit(opt.init)(jnp.ones(3))
    >>> round(float(adaptlr.learning_rate(state)), 6)
    0.1
  """
  found = optax.tree.get_all_with_path(state, "learning_rate", _is_learned_rate)
  if len(found) == 1:
    return found[0][1]
  if not found:
    raise ValueError(
      "No adaptlr method's state found: pass the state returned by the adaptlr "
      "optimizer's init/update (possibly inside chain, inject_hyperparams, masked or "
      "MultiSteps)."
    )
  paths = [jax.tree_util.keystr(p) for p, _ in found]
  raise ValueError(
    f"Several adaptlr methods' states found ({paths}): read each with "
    "optax.tree.get_all_with_path(state, 'learning_rate', filtering)."
  )
