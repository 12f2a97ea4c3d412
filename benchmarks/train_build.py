r"""Building many models for ``ji.train``: vmapped over the seeds, against one at a time and Flax's ensemble.

    python benchmarks/train_build.py [--models 64 256 1024] [--hidden 100 100 100 100] [--quick]

``ji.train`` stacks the parameters of every model of a group before its first step. Timed,
for the classic MNIST MLP (784-100-100-100-100-10, ``he_normal``, normal(0.1) biases) and
each number of models (one init, that many seeds):

- **jaxinit**: ``training._run.built_models``, what ``train`` runs: from ``VMAP_SEEDS`` seeds
  one ``jax.vmap`` over the seeds, run eagerly (the same draws as each model alone);
- **one at a time**: ``TrainGrid.build`` per model and ``np.stack``, what ``train`` ran
  before (and still runs below ``VMAP_SEEDS`` seeds);
- **peer**: Flax's ensemble pattern, written as a user would: ``jax.jit(jax.vmap(make))``
  over the keys, ``make`` building an ``nnx.Sequential`` of ``nnx.Linear`` with
  ``jax.nn.initializers.he_normal()`` and returning its state;
- **yardstick**: ``../shared/peers/peer_jax_naive.py``'s ``run_combo`` (a network's draws and
  forward pass), 50 warm calls before and after, so that runs made apart compare as ratios
  (``warm_x_naive``).

Each is timed on a first call (its compiles included, jax's persistent cache off) and again
on other seeds (warm). Prints the load average before and after, the CPU other processes used
meanwhile and one JSON line; ratios are to the peer's time in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pathlib
import sys

if __name__ == "__main__":  # fresh compiles; only as a script (see compile_cuts.py)
    os.environ.setdefault("JAXINIT_COMPILATION_CACHE", "0")

import jax
import numpy as np
from flax import nnx

import jaxinit as ji
from jaxinit.training import _run

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the modules beside this file

from _measure import alone, naive_peer_seconds, no_persistent_cache, timed


def _grid(n: int, hidden: tuple[int, ...], first_seed: int) -> ji.TrainGrid:
    return ji.TrainGrid(
        inits=["he_normal"],
        seeds=range(first_seed, first_seed + n),
        hidden=hidden,
        bias_inits="normal(stddev=0.1)",
    )


def jaxinit_build(grid: ji.TrainGrid, d_in: int, d_out: int):
    ((act, width),) = grid.groups()
    return _run.built_models(grid, d_in, d_out, act, width)[1]


def one_at_a_time(grid: ji.TrainGrid, d_in: int, d_out: int):
    ((act, width),) = grid.groups()
    states = [
        nnx.state(grid.build(d_in, d_out, init=i, seed=s, activation=act, width=width))
        for i, _, s in grid.group_models()
    ]
    return jax.tree.map(lambda *a: np.stack(a), *states)


def flax_ensemble(d_in: int, hidden: tuple[int, ...], d_out: int):
    """The peer: ``jit(vmap(make))`` over keys, a plain Flax MLP per key."""
    sizes = (d_in, *hidden, d_out)

    def make(key):
        rngs = nnx.Rngs(key)
        layers = [
            nnx.Linear(m, n, kernel_init=jax.nn.initializers.he_normal(), rngs=rngs)
            for m, n in itertools.pairwise(sizes)
        ]
        return nnx.state(nnx.Sequential(*layers))

    build = jax.jit(jax.vmap(make))
    return lambda n, first_seed: build(jax.random.split(jax.random.key(first_seed), n))


def measure(
    models: list[int], d_in: int, hidden: tuple[int, ...], d_out: int, calls: int = 50
) -> dict:
    rows = []
    with no_persistent_cache():
        naive = [naive_peer_seconds(calls)]
        peer = flax_ensemble(d_in, hidden, d_out)
        for n in models:
            row = {"models": n}
            for name, fn in (
                ("jaxinit", lambda g: jaxinit_build(g, d_in, d_out)),
                ("one_at_a_time", lambda g: one_at_a_time(g, d_in, d_out)),
                ("peer", lambda g: peer(len(g.seeds), g.seeds[0])),
            ):
                jax.clear_caches()  # each first call compiles afresh, whatever ran before
                first = timed(lambda fn=fn, n=n: fn(_grid(n, hidden, 0)))
                warm = timed(lambda fn=fn, n=n: fn(_grid(n, hidden, n)))
                row[name] = {"first_s": round(first, 6), "warm_s": round(warm, 6)}
            for name in ("jaxinit", "one_at_a_time"):
                row[name]["first_x_peer"] = round(row[name]["first_s"] / row["peer"]["first_s"], 2)
                row[name]["warm_x_peer"] = round(row[name]["warm_s"] / row["peer"]["warm_s"], 2)
            rows.append(row)
        naive.append(naive_peer_seconds(calls))
    out = {"jaxinit": ji.__file__, "vmap_seeds": _run.VMAP_SEEDS, "rows": rows}
    if naive[0] is not None:  # the yardstick before and after, and the warm builds against it
        out["naive_peer_s"] = [round(t, 4) for t in naive]
        for row in rows:
            for name in ("jaxinit", "one_at_a_time", "peer"):
                row[name]["warm_x_naive"] = round(row[name]["warm_s"] / min(naive), 2)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--hidden", type=int, nargs="+", default=[100, 100, 100, 100])
    p.add_argument("--quick", action="store_true", help="2 models of 6-4-3 (a smoke test)")
    args = p.parse_args(argv)
    if min(args.models) < 1 or min(args.hidden) < 1:
        p.error(f"--models and --hidden must be positive; got {args.models} and {args.hidden}")
    d_in, d_out = 784, 10
    if args.quick:
        d_in, d_out, args.models, args.hidden = 6, 3, [2], [4]
    calls = 2 if args.quick else 50
    out = alone(lambda: measure(args.models, d_in, tuple(args.hidden), d_out, calls), peak_n=256)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
