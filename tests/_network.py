"""The reference network of a seed, written out plainly: the engine's tests and the
"one network per seed" test share it.

The key derivation is spelled out here with ``jax.random`` (not through
``jaxinit._keys``), so that it is an independent statement of the streams: seed
``s``'s key ``k = fold_in(key(root_seed), s)``; inputs ``normal(fold_in(k, 0))``;
layer ``l``'s weight ``init(fold_in(fold_in(fold_in(k, 1), l), 0), (fan_in, width))``
and bias ``(…, 1)``; the backward cotangent ``normal(fold_in(k, 2))``.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.sweeping._kernel import BN_EPS  # the engine's batch-norm epsilon


class Network(NamedTuple):
    x: jax.Array  # (batch, d_in)
    weights: list  # (fan_in, width) per layer
    biases: list  # (width,) per layer
    cotangent: jax.Array  # (batch, width): the sweep's backward seed


def _seed(grid, seed: int) -> jax.Array:
    return jax.random.fold_in(jax.random.key(grid.root_seed), seed)


def input_key(grid, seed: int) -> jax.Array:
    return jax.random.fold_in(_seed(grid, seed), 0)


def layer_key(grid, seed: int, layer: int, which: int) -> jax.Array:
    """Layer ``layer``'s weight (``which=0``) or bias (1) key."""
    return jax.random.fold_in(
        jax.random.fold_in(jax.random.fold_in(_seed(grid, seed), 1), layer), which
    )


def cotangent_key(grid, seed: int) -> jax.Array:
    return jax.random.fold_in(_seed(grid, seed), 2)


def network(grid, init, bias, depth: int, width: int, seed: int) -> Network:
    """The sweep's network for ``(init, bias, depth, width, seed)`` of ``grid``."""
    if isinstance(grid.inputs, str):
        x = jax.random.normal(input_key(grid, seed), (grid.batch_size, grid.d_in))
    else:
        x = jnp.asarray(grid.inputs)
    weights, biases = [], []
    for l in range(depth):
        fan_in = grid.d_in if l == 0 else width
        weights.append(init(layer_key(grid, seed, l, 0), (fan_in, width)))
        biases.append(bias(layer_key(grid, seed, l, 1), (width,)))
    cotangent = jax.random.normal(cotangent_key(grid, seed), (grid.batch_size, width))
    return Network(x, weights, biases, cotangent)


def forward(net: Network, act, probes=None, *, batchnorm: bool = False, weights=None):
    """``(zs, hs)``: every layer's pre- and post-activations. ``probes`` (zeros) are added to
    the pre-activations (their gradient is the pre-activations'); ``weights`` replace the
    network's (to differentiate with respect to them). With batch norm the bias is not used."""
    h, zs, hs = net.x, [], []
    weights = net.weights if weights is None else weights
    probes = [0.0] * len(weights) if probes is None else probes
    for w, b, p in zip(weights, net.biases, probes, strict=True):
        u = h @ w
        if batchnorm:
            z = (u - u.mean(0, keepdims=True)) / jnp.sqrt(u.var(0, keepdims=True) + BN_EPS)
        else:
            z = u + b[None, :]
        z = z + p
        h = act(z)
        zs.append(z)
        hs.append(h)
    return zs, hs


def backward(net: Network, act, *, batchnorm: bool = False):
    """``(dz, dw)``: jax.grad of ``sum(h_L * cotangent)`` with respect to every layer's
    pre-activations and weights."""
    probes = [jnp.zeros((net.x.shape[0], b.shape[0])) for b in net.biases]

    def loss(ws, ps):
        return jnp.sum(
            forward(net, act, ps, batchnorm=batchnorm, weights=ws)[1][-1] * net.cotangent
        )

    dw, dz = jax.grad(loss, argnums=(0, 1))(net.weights, probes)
    return dz, dw


def forward_stats(net: Network, act) -> dict[str, np.ndarray]:
    """The sweep's forward statistics per layer, in float32 as the engine computes them."""
    zs, hs = forward(net, act)
    return {
        "pre_mean": np.array([z.mean() for z in zs]),
        "pre_var": np.array([z.var() for z in zs]),
        "post_mean": np.array([h.mean() for h in hs]),
        "post_var": np.array([h.var() for h in hs]),
        "dead": np.array([(h == 0).mean() for h in hs]),
    }
