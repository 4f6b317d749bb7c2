"""adaptlr.registry.METHODS is the one list of methods: everything else reads it."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _cases import CASES, REF_CASES

import adaptlr
from adaptlr import _loss
from adaptlr.registry import METHODS

_NAME_OF = {spec.optimizer: name for name, spec in METHODS.items()}


def test_every_public_method_is_registered():
  public = {n for n in adaptlr.__all__ if f"scale_by_{n}" in adaptlr.__all__}
  assert public == set(METHODS)
  for name, spec in METHODS.items():
    assert spec.name == name
    assert spec.optimizer is getattr(adaptlr, name)
    assert spec.scale_by is getattr(adaptlr, f"scale_by_{name}")
    assert spec.state.__name__ in adaptlr.__all__
    assert spec.state is getattr(adaptlr, spec.state.__name__)
    assert spec.paper


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_has_a_contract_case_and_a_reference_case(name):
  optimizer = METHODS[name].optimizer
  assert [c.id for c in CASES if c.make is optimizer], f"{name}: no Case in tests/_cases.py"
  assert [c.id for c in REF_CASES if c.make is optimizer], f"{name}: no RefCase"


def test_cases_use_registered_methods_only():
  assert {c.make for c in CASES + REF_CASES} <= set(_NAME_OF)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_alias_is_scale_by_then_negation(name):
  """The alias takes scale_by's arguments and returns the negated updates."""
  spec = METHODS[name]
  assert inspect.signature(spec.optimizer) == inspect.signature(spec.scale_by)
  assert spec.optimizer.__doc__ and "Example:" in spec.optimizer.__doc__
  assert spec.optimizer.__name__ in spec.scale_by.__doc__  # scale_by points to the alias


def test_consumed_extra_args_are_declared_by_the_methods():
  consumed = set().union(*(spec.consumes for spec in METHODS.values()))
  assert consumed == {"curvature", "grad_sq", "logits_fn"}
  assert _loss.RESERVED_EXTRA_ARGS == (
    {"value", "grad", "value_fn", "value_fn_has_aux", "full_params"} | consumed
  )
  loss = lambda w, x, curvature=None, grad_sq=None: jnp.sum(w * x)
  extra = {"x": 1.0, "curvature": 2.0, "grad_sq": 3.0, "value": 0.0, "other": 4.0}
  assert _loss.value_fn_kwargs(loss, extra) == {"x": 1.0}


_GROUPED = sorted(
  n for n, s in METHODS.items() if "granularity" in inspect.signature(s.optimizer).parameters
)


@pytest.mark.parametrize("name", _GROUPED)
def test_leaf_granularity_inside_optax_masked(name):
  """optax.masked leaves a MaskedNode (a NamedTuple) where a group is masked out;
  the per-group rule must pass it through (newton_lr raised IndexError)."""
  kwargs = {"vsgd": {"init_samples": 2}}.get(name, {"learning_rate": 0.01})
  opt = optax.masked(METHODS[name].optimizer(**kwargs, granularity="leaf"), {"a": True, "b": False})
  params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
  loss = lambda p: jnp.sum(p["a"] ** 2)
  state = opt.init(params)
  for _ in range(3):
    value, grads = jax.value_and_grad(loss)(params)
    updates, state = opt.update(grads, state, params, value=value, value_fn=loss)
    params = optax.apply_updates(params, updates)
  assert float(params["b"][0]) == 3.0  # masked out: untouched
  assert np.all(np.isfinite(np.asarray(params["a"])))
  # every group masked out (a multi_transform label that no leaf carries): a no-op, no error
  if METHODS[name].needs_value_fn:
    return  # the loss of fully masked params: tests/test_optax_conventions.py (issue 10, masks)
  opt = optax.multi_transform(
    {"x": METHODS[name].optimizer(**kwargs, granularity="leaf"), "y": optax.sgd(0.1)},
    {"a": "y", "b": "y"},
  )
  state = opt.init(params)
  value, grads = jax.value_and_grad(loss)(params)
  updates, state = opt.update(grads, state, params, value=value, value_fn=loss)
  np.testing.assert_allclose(updates["a"], -0.1 * grads["a"])
