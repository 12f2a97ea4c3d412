"""A whole many-model SGD step in two layouts, back to back (issue 17).

``jit(lax.scan(step))`` over 200 steps of 12 MNIST MLPs (784-4×width-10 ReLU, batch 128):
the vmapped step jaxinit's program lowers to (activations ``(model, batch, width)``), and the
same step written batch-major (``(batch, model, width)``, ``einsum`` everywhere, one ``grad``
of the summed loss). Prints GFLOP/s of each and the largest parameter difference after the
200 steps. Quiet machine only; the figures are in ``benchmarks/README.md``::

    JAX_NUM_CPU_DEVICES=1 .venv/bin/python benchmarks/step_layouts.py --width 100 \
        --data-dir ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import itertools
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.data import load_mnist

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _measure import alone  # load, other processes' CPU and the matmul peak, in the same run

MODELS, STEPS, BATCH, DEPTH, RATE = 12, 200, 128, 4, 0.01


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    w, steps = args.width, args.steps
    x, y = load_mnist("train", data_dir=args.data_dir)
    xs, ys = jnp.asarray(x), jnp.asarray(y)
    sizes = [x.shape[1], *(w,) * DEPTH, 10]

    def init(k):
        ks = jax.random.split(k, len(sizes) - 1)
        return [
            (jax.random.normal(ks[i], (a, b)) * np.sqrt(2 / a), jnp.zeros(b))
            for i, (a, b) in enumerate(itertools.pairwise(sizes))
        ]

    params = jax.vmap(init)(jax.random.split(jax.random.key(0), MODELS))
    order = jnp.asarray(np.random.default_rng(0).integers(0, len(x), (steps, BATCH)))

    # the data are arguments, not constants: a closure would embed 188 MB of MNIST in each
    # program (seconds to compile and to compress into the persistent cache)
    def loss_one(p, rows, xs, ys):
        h = xs[rows]
        for k, b in p[:-1]:
            h = jax.nn.relu(h @ k + b[None, :])
        logits = h @ p[-1][0] + p[-1][1][None, :]
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), ys[rows][:, None], 1).mean()

    def vmapped(p, rows, xs, ys):
        g = jax.vmap(jax.grad(loss_one), in_axes=(0, None, None, None))(p, rows, xs, ys)
        return jax.tree.map(lambda a, b: a - RATE * b, p, g)

    def loss_batch_major(p, rows, xs, ys):
        h = jax.nn.relu(jnp.einsum("bi,mio->bmo", xs[rows], p[0][0]) + p[0][1][None])
        for k, b in p[1:-1]:
            h = jax.nn.relu(jnp.einsum("bmi,mio->bmo", h, k) + b[None])
        logits = jnp.einsum("bmi,mio->bmo", h, p[-1][0]) + p[-1][1][None]
        labels = jnp.broadcast_to(ys[rows][:, None, None], (BATCH, MODELS, 1))
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels, 2).mean(0).sum()

    def batch_major(p, rows, xs, ys):
        g = jax.grad(loss_batch_major)(p, rows, xs, ys)
        return jax.tree.map(lambda a, b: a - RATE * b, p, g)

    flops = 6 * BATCH * sum(a * b for a, b in itertools.pairwise(sizes))
    flops -= 2 * BATCH * sizes[0] * sizes[1]  # no gradient for the input

    def timed() -> dict:
        out, finals = {"width": w, "devices": len(jax.devices())}, []
        for name, step in (("vmapped", vmapped), ("batch_major", batch_major)):
            run = jax.jit(
                lambda p, o, xs, ys, step=step: jax.lax.scan(
                    lambda q, r: (step(q, r, xs, ys), None), p, o
                )[0]
            )
            finals.append(jax.block_until_ready(run(params, order, xs, ys)))  # compiles
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                jax.block_until_ready(run(params, order, xs, ys))
                best = min(best, time.perf_counter() - t)
            out[f"{name}_gflops"] = round(flops * MODELS * steps / best / 1e9, 1)
        out["max_abs_diff"] = max(
            float(jnp.max(jnp.abs(a - b)))
            for a, b in zip(jax.tree.leaves(finals[0]), jax.tree.leaves(finals[1]), strict=True)
        )
        return out

    out = alone(timed)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
