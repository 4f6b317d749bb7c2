"""A small causal transformer (Flax Linen) and its fully-sharded data-parallel layout.

Used by ``benchmarks.studies.sharded_transformer``, ``benchmarks.studies.memory``
and ``tests/test_sharded_transformer.py``. The default configuration
(:data:`CONFIG`: 4 pre-norm blocks, width 512, 8 heads, MLP 4×, vocabulary 512,
context 64, untied embeddings) has 13,159,936 parameters (float32: 52.6 MB).

FSDP layout (:func:`fsdp_specs`): every leaf is split along **one** axis over the
mesh axis ``"d"`` (its largest axis that the device count divides), so each
device holds 1/n of every parameter; a leaf with no such axis stays replicated
(none in the default configuration with n = 8). The batch is split along its
first axis over the same mesh axis. Under ``jax.jit`` XLA's SPMD partitioner
then all-gathers each weight where a matmul needs it whole (the forward and
backward passes), reduce-scatters or all-reduces the gradients, and an
element-wise optimizer update runs on the local shards.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


@dataclasses.dataclass(frozen=True)
class Config:
  """Shape of the model."""

  vocab: int = 512
  context: int = 64
  width: int = 512
  depth: int = 4
  heads: int = 8
  mlp_ratio: int = 4


CONFIG = Config()


class Block(nn.Module):
  """Pre-norm block: causal self-attention (no biases), then a GELU MLP, each residual."""

  config: Config

  @nn.compact
  def __call__(self, h, _):
    c = self.config
    mask = nn.make_causal_mask(jnp.ones(h.shape[:2], jnp.int32))
    a = nn.LayerNorm()(h)
    # No biases in the attention: the key's bias has an exactly zero gradient
    # (softmax ignores a shift shared by all keys), so its computed gradient is
    # rounding noise whose digits depend on the order of the reductions, and a
    # per-element method (Adam, Almeida, vSGD) would turn that noise into full
    # size steps that differ between a sharded and a single-device run.
    h = h + nn.MultiHeadDotProductAttention(
      num_heads=c.heads, qkv_features=c.width, use_bias=False
    )(a, a, mask=mask)
    m = nn.LayerNorm()(h)
    m = nn.Dense(c.mlp_ratio * c.width)(m)
    return h + nn.Dense(c.width)(nn.gelu(m)), None


class CausalLM(nn.Module):
  """Token and position embeddings, ``depth`` blocks, final norm, untied head.

  The blocks run under ``nn.scan`` (their params stacked along a leading
  ``depth`` axis), so the compiled program holds one block's code whatever the
  depth: compiling is what dominates a few steps on CPU.
  """

  config: Config = CONFIG

  @nn.compact
  def __call__(self, tokens):
    c = self.config
    pos = self.param("pos_embed", nn.initializers.normal(0.02), (c.context, c.width))
    h = nn.Embed(c.vocab, c.width, embedding_init=nn.initializers.normal(0.02))(tokens)
    h = h + pos[: tokens.shape[1]]
    blocks = nn.scan(
      Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=c.depth
    )
    h, _ = blocks(c, name="blocks")(h, None)
    return nn.Dense(c.vocab, name="head")(nn.LayerNorm()(h))


def init(key: jax.Array, config: Config = CONFIG) -> Any:
  """Linen params of :class:`CausalLM`."""
  return CausalLM(config).init(key, jnp.zeros((1, config.context), jnp.int32))["params"]


def make_loss(config: Config = CONFIG):
  """``loss(params, x, y)``: mean next-token cross-entropy, ``x``, ``y`` int tokens [B, T]."""
  model = CausalLM(config)

  def loss(params, x, y):
    logits = model.apply({"params": params}, x)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

  return loss


def batch(key: jax.Array, size: int, length: int, config: Config = CONFIG):
  """A synthetic batch (x, y): random tokens, y = x shifted by one (next token)."""
  tokens = jax.random.randint(key, (size, length + 1), 0, config.vocab)
  return tokens[:, :-1], tokens[:, 1:]


def num_params(params: Any) -> int:
  return sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))


def mesh(n: int = 8) -> Mesh:
  """A 1-D mesh ``("d",)`` over the first ``n`` devices."""
  if len(jax.devices()) < n:
    raise ValueError(
      f"needs {n} devices, found {len(jax.devices())}: on CPU set XLA_FLAGS="
      f"--xla_force_host_platform_device_count={n} before jax starts."
    )
  return Mesh(np.array(jax.devices()[:n]), ("d",))


def fsdp_spec(shape: tuple[int, ...], n: int) -> P:
  """PartitionSpec splitting the largest axis that ``n`` divides over ``"d"``."""
  axes = [i for i in np.argsort(shape)[::-1] if shape[i] % n == 0 and shape[i] >= n]
  if not axes:
    return P()
  spec = [None] * len(shape)
  spec[axes[0]] = "d"
  return P(*spec)


def fsdp_specs(tree: Any, n: int) -> Any:
  """:func:`fsdp_spec` for every leaf of ``tree``."""
  return jax.tree.map(lambda a: fsdp_spec(tuple(np.shape(a)), n), tree)


def shard_params(tree: Any, m: Mesh) -> Any:
  """``tree`` placed on ``m`` with the FSDP layout."""
  n = m.devices.size
  return jax.tree.map(
    lambda a, s: jax.device_put(a, NamedSharding(m, s)), tree, fsdp_specs(tree, n)
  )


def shard_batch(tree: Any, m: Mesh) -> Any:
  """Every leaf split along its first (batch) axis over ``"d"``."""
  return jax.tree.map(lambda a: jax.device_put(a, NamedSharding(m, P("d"))), tree)
