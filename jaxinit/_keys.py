"""The key streams: how every network's randomness derives from ``(root_seed, seed)``.

One derivation for the whole library, so that the same seed means the same
network everywhere: the sweep (:func:`jaxinit.sweep`), training
(:func:`jaxinit.train` starts from it), :mod:`jaxinit.lsuv` and
:mod:`jaxinit.isometry`.

- Seed ``s``'s key is ``fold_in(key(root_seed), s)`` (:func:`seed_key`).
- Under it, each use folds in its own stream number: the sweep's generated
  inputs (``STREAM_INPUTS``), the layers (``STREAM_LAYERS``: layer ``l``'s
  weight and bias keys are ``fold_in(fold_in(fold_in(k, STREAM_LAYERS), l), i)``,
  ``i`` = 0, 1; :func:`layer_keys`), the sweep's backward cotangent
  (``STREAM_COTANGENT``), training's mini-batch order (``STREAM_BATCHES``) and, in
a model grid (:class:`jaxinit.ModelGrid`), the ``nnx.Rngs`` the user's factory builds
its model with (``STREAM_MODEL``: every parameter the grid does not set).

A network's numbers therefore depend on its own seed only, never on the rest of
a grid or on how the work is batched or split, and every initializer sees the
same keys for a seed (common random numbers).
"""

from __future__ import annotations

import jax

__all__ = [
    "ROOT_SEED_LIMIT",
    "SEED_LIMIT",
    "STREAM_BATCHES",
    "STREAM_COTANGENT",
    "STREAM_INPUTS",
    "STREAM_LAYERS",
    "STREAM_MODEL",
    "layer_keys",
    "seed_key",
]

SEED_LIMIT = 2**31  # seeds are folded into keys as int32
ROOT_SEED_LIMIT = 2**32  # the sweep's draw program makes the root key from a uint32
STREAM_INPUTS, STREAM_LAYERS, STREAM_COTANGENT, STREAM_BATCHES, STREAM_MODEL = 0, 1, 2, 3, 4


def seed_key(root_seed, seed) -> jax.Array:
    """The key of every network with this ``seed``: ``fold_in(key(root_seed), seed)``.

    Traceable: the sweep's draw program calls it on ``uint32``/``int32`` arrays,
    which give the same key as the Python ints.
    """
    return jax.random.fold_in(jax.random.key(root_seed), seed)


def layer_keys(key: jax.Array, layer) -> tuple[jax.Array, jax.Array]:
    """Layer ``layer``'s weight and bias keys under a seed's ``key``:
    ``fold_in(fold_in(fold_in(key, STREAM_LAYERS), layer), i)`` for ``i`` = 0, 1.

    Traceable (``layer`` may be traced). The sweep kernel, training's MLP,
    :mod:`jaxinit.lsuv` and :mod:`jaxinit.isometry` all draw with these keys, so
    their networks are the same for the same seed key.
    """
    k = jax.random.fold_in(jax.random.fold_in(key, STREAM_LAYERS), layer)
    return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)
