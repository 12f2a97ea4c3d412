"""The threefry-2x32 hash in NumPy, bit for bit jax's.

A sweep needs a few keys per seed (one per stream, layer and draw); making
them inside a compiled program costs a threefry hash per derivation level,
and XLA:CPU compiles each one into kernels of its own. The same hash on the
host costs microseconds per seed and nothing to compile.

Threefry-2x32 with 20 rounds (Salmon et al. 2011, "Parallel random numbers:
as easy as 1, 2, 3"), the hash jax's threefry keys use. How jax lays its keys
and counters over the hash is jax's own, and lives in :mod:`jaxinit._jax_compat`
(``host_key_data``, ``host_fold_in``); ``tests/test_jax_compat.py`` checks them
against ``jax.random.key_data`` and ``jax.random.fold_in``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["hash2x32"]

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


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
