"""Test-session set-up: 8 simulated CPU devices for the sharding contract test.

XLA reads the flag once, when the backend starts, so it is set here before any
test imports jax. Computations that are not sharded still run on one device.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pytest  # noqa: E402  (after the XLA flags above)

# The per-method idiom matrices (Optax's common test suite, the Optax conventions, the
# Flax loops) run two representative methods in `make test` (tlr: no loss evaluation;
# newton_lr: value_fn probes) and every registered method in the slow tier (`make
# test-all`); every method's own contract runs in `make test` (tests/test_contract.py).
_IDIOM_FILES = {"test_optax_common.py", "test_optax_conventions.py", "test_flax.py"}
_FAST_METHODS = {"tlr", "newton_lr"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  del config
  for item in items:
    params = getattr(getattr(item, "callspec", None), "params", {})
    method = params.get("name", params.get("method"))
    if item.path.name in _IDIOM_FILES and isinstance(method, str):
      if method not in _FAST_METHODS:
        item.add_marker(pytest.mark.slow)
