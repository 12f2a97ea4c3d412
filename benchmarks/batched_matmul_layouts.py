"""Which layout of a many-model matmul XLA:CPU runs fastest at width 100 (issue 17).

12 models, batch 128, (M, B, w) × (M, w, w), chained 20 times through tanh so dispatch does
not dominate; GFLOP/s of: the batched einsum jaxinit's vmapped step lowers to, the same with
the batch axis first, one dot per model unrolled, one block-diagonal GEMM, and NumPy's
batched matmul. Quiet machine only; run with ``JAX_NUM_CPU_DEVICES=1`` and ``=2``::

    JAX_NUM_CPU_DEVICES=2 .venv/bin/python benchmarks/batched_matmul_layouts.py [--repeats 30]
"""

import argparse
import functools
import json
import pathlib
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from _measure import alone  # load, other processes' CPU and the matmul peak, in the same run


def best(f, *a, n=30):
    """The best of ``n`` timed calls, after one warm-up."""
    f(*a).block_until_ready()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f(*a).block_until_ready()
        ts.append(time.perf_counter() - t)
    return min(ts)


def rep(fn):
    """``fn`` chained 20 times through tanh, jitted: dispatch does not dominate."""

    def g(x, w):
        for _ in range(20):
            x = jnp.tanh(fn(x, w))
        return x

    return jax.jit(g)


def layouts(repeats: int = 30) -> dict:
    """GFLOP/s of each layout, the best of ``repeats`` timed calls."""
    best_of = functools.partial(best, n=repeats)
    M, B, W = 12, 128, 100
    k = jax.random.key(0)
    x = jax.random.normal(k, (M, B, W))
    w = jax.random.normal(k, (M, W, W))
    xt = jnp.transpose(x, (1, 0, 2))  # (B, M, W)

    flops = 2 * M * B * W * W * 20

    res = {}
    res["einsum mbi,mio"] = best_of(rep(lambda x, w: jnp.einsum("mbi,mio->mbo", x, w)), x, w)
    res["einsum bmi,mio (batch-major)"] = best_of(
        rep(lambda x, w: jnp.einsum("bmi,mio->bmo", x, w)), xt, w
    )
    res["unrolled per-model dots"] = best_of(
        rep(lambda x, w: jnp.stack([x[m] @ w[m] for m in range(M)])), x, w
    )
    res["block-diagonal one GEMM"] = best_of(
        rep(
            lambda x, w: (
                (
                    x.transpose(1, 0, 2).reshape(B, M * W)
                    @ jax.scipy.linalg.block_diag(*[w[m] for m in range(M)])
                )
                .reshape(B, M, W)
                .transpose(1, 0, 2)
            )
        ),
        x,
        w,
    )
    a = np.asarray(x)
    bnp = np.asarray(w)
    t = time.perf_counter()
    for _ in range(20):
        a = np.tanh(np.matmul(a, bnp))
    res["numpy matmul (batched)"] = time.perf_counter() - t
    return {k: round(flops / v / 1e9, 1) for k, v in res.items()}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=30, help="timed calls per layout (best of)")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error(f"--repeats must be at least 1; got {args.repeats}")
    out = alone(functools.partial(layouts, args.repeats))
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
