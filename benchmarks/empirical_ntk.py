r"""The empirical NTK of a Flax model (``ji.theory.empirical_ntk``) against the eager and the jitted hand-written forms.

    python benchmarks/empirical_ntk.py [--seeds 4] [--models resnet cnn mlp transformer] [--quick]

For each model of the ``ntk_width`` experiment's kind (the zoo's ResNet at width 1024 on 4
inputs of 8 features, the zoo's CNN at 256 channels on 3 images of 4 × 4 × 2, a three-layer
ReLU MLP at width 1024 on 6 inputs) and the zoo's Transformer (2 blocks of width 128, gelu,
on 3 sequences of 6 tokens of 8 features), ``--seeds`` networks built beforehand, the kernel of
each timed three ways, in the standard parameterization (J Jᵀ, the same work for all):

- **jaxinit**: ``ji.theory.empirical_ntk`` (one program per model structure and input shapes);
- **eager**: jaxinit's sum run op by op, without ``jit`` (``jax.jacrev`` of the merged model
  and an ``einsum`` per parameter), which is how ``empirical_ntk`` ran before it compiled one
  program, and how a notebook writes it;
- **peer**: JAX's cookbook form ("Fast finite-width NTKs", the Jacobian contraction) written
  for an NNX model as a user would: ``jax.jit`` of a function of the split state that takes
  the ``jacrev`` and contracts every leaf.
- **yardstick**: ``../shared/peers/peer_jax_naive.py``'s ``run_combo``, 50 warm calls before
  and after, so runs made apart compare as ratios.

The first network's kernel is timed as a first call (compiles included: jax's caches cleared
and its persistent cache off), the others warm (mean). Every kernel is checked against the
peer's within float32 rounding. Prints the load average, the CPU other processes used and one
JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import sys

if __name__ == "__main__":  # fresh compiles; only as a script (see compile_cuts.py)
    os.environ.setdefault("JAXINIT_COMPILATION_CACHE", "0")

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxinit as ji
from jaxinit.theory import _empirical

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))  # the modules beside this file

from _measure import alone, naive_peer_seconds, no_persistent_cache, timed


class MLP(nnx.Module):
    """Dense -> relu -> Dense -> relu -> Dense(1)."""

    def __init__(self, d_in: int, width: int, *, rngs: nnx.Rngs):
        self.a = nnx.Linear(d_in, width, rngs=rngs)
        self.b = nnx.Linear(width, width, rngs=rngs)
        self.out = nnx.Linear(width, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.b(nnx.relu(self.a(x)))))


MODELS = ("resnet", "cnn", "mlp", "transformer")


def cases(quick: bool) -> dict[str, tuple]:
    """name -> (make(seed) -> model, inputs)."""
    rng = np.random.default_rng(0)
    w, c, d = (16, 8, 8) if quick else (1024, 256, 128)
    resnet = functools.partial(
        ji.models.ResNet, d_in=8, width=w, depth=2, alpha=0.5, norm=None, classes=1
    )
    cnn = functools.partial(
        ji.models.CNN, in_channels=2, channels=c, depth=2, classes=1, padding="CIRCULAR"
    )
    return {
        "resnet": (lambda s: resnet(rngs=nnx.Rngs(s)), rng.normal(size=(4, 8))),
        "cnn": (lambda s: cnn(rngs=nnx.Rngs(s)), rng.normal(size=(3, 4, 4, 2))),
        "mlp": (lambda s: MLP(8, w, rngs=nnx.Rngs(s)), rng.normal(size=(6, 8))),
        "transformer": (  # gelu: its function one object for every model (one program)
            lambda s: ji.models.Transformer(nnx.Rngs(s), d_in=8, d_model=d, depth=2, classes=1),
            rng.normal(size=(3, 6, 8)),
        ),
    }


def _contract(j1, j2, out_units: int):
    """Σ over parameters of the Jacobians' contraction, the output units averaged."""
    theta = sum(
        jnp.einsum("akp,bkp->ab", a.reshape(*a.shape[:2], -1), b.reshape(*b.shape[:2], -1))
        for a, b in zip(jax.tree.leaves(j1), jax.tree.leaves(j2), strict=True)
    )
    return theta / out_units


def eager(model, x):
    """jaxinit's own sum, op by op (no ``jit``): how ``empirical_ntk`` ran before."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    ones = jax.tree.map(lambda p: 1.0, params)
    return _empirical._ntk(graphdef, params, rest, ones, x, None)


@functools.partial(jax.jit, static_argnums=0)
def _peer(graphdef, params, rest, x):
    def f(p, x):
        y = nnx.merge(graphdef, p, rest)(x)
        return y.reshape(y.shape[0], -1)

    j = jax.jacrev(f)(params, x)
    return _contract(j, j, jax.tree.leaves(j)[0].shape[1])


def peer(model, x):
    """The cookbook's Jacobian contraction, jitted over the split state."""
    return _peer(*nnx.split(model, nnx.Param, ...), x)


def jaxinit(model, x):
    return ji.theory.empirical_ntk(model, x, parameterization="standard")


def measure(seeds: int, names: list[str], quick: bool, calls: int = 50) -> dict:
    rows = []
    with no_persistent_cache():
        naive = [naive_peer_seconds(calls)]
        for name in names:
            make, x = cases(quick)[name]
            x = jnp.asarray(x, jnp.float32)
            models = [make(s) for s in range(seeds)]
            row = {"model": name, "inputs": list(x.shape)}
            kernels = {}
            for how, fn in (("jaxinit", jaxinit), ("eager", eager), ("peer", peer)):
                jax.clear_caches()  # the first call compiles afresh, whatever ran before
                first = timed(functools.partial(fn, models[0], x))
                warm = [timed(functools.partial(fn, m, x)) for m in models[1:]]
                kernels[how] = [np.asarray(fn(m, x)) for m in models]
                row[how] = {"first_s": round(first, 4)}
                if warm:
                    row[how]["warm_s"] = round(float(np.mean(warm)), 5)
            for how in ("jaxinit", "eager"):
                row[how]["first_x_peer"] = round(row[how]["first_s"] / row["peer"]["first_s"], 2)
                if "warm_s" in row[how]:
                    row[how]["warm_x_peer"] = round(row[how]["warm_s"] / row["peer"]["warm_s"], 2)
                worst = max(
                    float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
                    for a, b in zip(kernels[how], kernels["peer"], strict=True)
                )
                row[how]["max_rel_diff_to_peer"] = float(f"{worst:.2e}")
            rows.append(row)
        naive.append(naive_peer_seconds(calls))
    out = {"jaxinit": ji.__file__, "seeds": seeds, "rows": rows}
    if naive[0] is not None:  # the yardstick before and after
        out["naive_peer_s"] = [round(t, 4) for t in naive]
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=4, help="networks per model (default 4)")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument(
        "--quick",
        action="store_true",
        help="width 16 (8 channels, d_model 8), 2 seeds: a smoke test",
    )
    args = p.parse_args(argv)
    if args.seeds < 1:
        p.error(f"--seeds must be positive; got {args.seeds}")
    seeds, calls = (2, 2) if args.quick else (args.seeds, 50)
    out = alone(lambda: measure(seeds, args.models, args.quick, calls), peak_n=256)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
