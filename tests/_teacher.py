"""Synthetic classification data for the training tests."""

import jax
import numpy as np


def teacher_data(seed: int, n: int, d: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples of ``d`` Gaussian features labelled by a random linear teacher."""
    kx, kw = jax.random.split(jax.random.key(seed))
    x = np.asarray(jax.random.normal(kx, (n, d)))
    y = np.argmax(x @ np.asarray(jax.random.normal(kw, (d, classes))), axis=1).astype(np.int32)
    return x, y
