"""Test-session set-up: 8 simulated CPU devices for the sharding contract test.

XLA reads the flag once, when the backend starts, so it is set here before any
test imports jax. Computations that are not sharded still run on one device.
"""

import os

os.environ.setdefault("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
