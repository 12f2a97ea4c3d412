"""Synthetic classification data for the training tests, and the reference step they train by."""

import functools

import jax
import numpy as np
import optax
from flax import nnx


def teacher_data(seed: int, n: int, d: int, classes: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples of ``d`` Gaussian features labelled by a random linear teacher."""
    kx, kw = jax.random.split(jax.random.key(seed))
    x = np.asarray(jax.random.normal(kx, (n, d)))
    y = np.argmax(x @ np.asarray(jax.random.normal(kw, (d, classes))), axis=1).astype(np.int32)
    return x, y


@functools.partial(jax.jit, static_argnums=(0, 1))
def reference_step(tx, graphdef, params, opt, xb, yb):
    """One optimizer step of one model written out by hand: softmax cross-entropy, ``tx``."""

    def loss_fn(p):
        logits = nnx.merge(graphdef, p)(xb)
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, loss
