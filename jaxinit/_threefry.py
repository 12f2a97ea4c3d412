"""jax's threefry key derivation on the host, in NumPy, bit for bit.

A sweep needs a few keys per seed (one per stream, layer and draw); making
them inside a compiled program costs a threefry hash per derivation level,
and XLA:CPU compiles each one into kernels of its own. The same hash on the
host costs microseconds per seed and nothing to compile.

Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random numbers:
as easy as 1, 2, 3"), exactly as ``jax._src.random.threefry2x32`` computes it;
``tests/test_engine.py`` checks it against ``jax.random.fold_in``.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["available", "fold_in", "hash2x32", "key_data"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def available() -> bool:
    """Whether jax's keys are threefry keys with the partitionable counter layout
    (its defaults), the layout that :func:`hash2x32` and the fused draws assume."""
    return bool(
        str(jax.config.jax_default_prng_impl) == "threefry2x32"
        and jax.config.jax_threefry_partitionable
    )


def _rotl(x: np.ndarray, d: int) -> np.ndarray:
    return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def hash2x32(k1, k2, x1, x2) -> tuple[np.ndarray, np.ndarray]:
    """The threefry-2x32 hash of counters ``(x1, x2)`` under key ``(k1, k2)``; uint32 arrays."""
    words = (np.atleast_1d(np.asarray(a, np.uint32)) for a in (k1, k2, x1, x2))
    k1, k2, x1, x2 = np.broadcast_arrays(*words)
    ks = (k1, k2, k1 ^ k2 ^ _PARITY)
    x1, x2 = x1 + ks[0], x2 + ks[1]
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x1 = x1 + x2
            x2 = _rotl(x2, r) ^ x1
        x1 = x1 + ks[(i + 1) % 3]
        x2 = x2 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x1, x2


def key_data(seed) -> np.ndarray:
    """The raw data ``(..., 2)`` of ``jax.random.key(seed)`` for non-negative integer seeds < 2³²."""
    seed = np.asarray(seed)
    if seed.dtype.kind not in "iu" or (seed < 0).any() or (seed >= 2**32).any():
        raise ValueError(f"seeds must be integers in [0, 2**32); got {seed!r}")
    return np.stack([np.zeros(seed.shape, np.uint32), seed.astype(np.uint32)], -1)


def fold_in(keys: np.ndarray, data) -> np.ndarray:
    """``jax.random.fold_in`` on raw key data ``(..., 2)`` and integer data (broadcast)."""
    keys = np.asarray(keys, np.uint32)
    data = np.asarray(data).astype(np.int64).astype(np.uint32)  # jax wraps to uint32 the same way
    o1, o2 = hash2x32(keys[..., 0], keys[..., 1], np.zeros_like(data), data)
    shape = np.broadcast_shapes(keys.shape[:-1], np.shape(data))
    return np.stack([o1, o2], -1).reshape(*shape, 2)
