"""Planning and running a sweep: group by static structure, chunk, vmap, assemble.

``sweep(grid)`` groups the grid's combinations by what a compiled program
must know statically: the activation, the weight and bias initializer
*families* (their standardized draw), and the width. Everything else, the
initializers' scales and shifts, the bias scales and the seeds, is data, and
is vmapped. One group is one compiled program, whatever the number of seeds
or initializer scales. Every depth of the grid comes out of the same program:
a depth-L network is the first L layers of the deepest one, and the backward
pass is run once per depth.

Within a group, combinations are vmapped ``lanes`` at a time (a fixed width,
8 by default), and a compiled call maps over several such groups of lanes: a
chunk. The last chunk is padded to the same size, so a group never compiles
twice. Because every combination runs in the same ``lanes``-wide program and
its randomness depends only on its seed, its numbers are bitwise the same for
every chunk size (for a given ``lanes``).
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import kernel
from jaxinit.grid import Grid
from jaxinit.results import SweepResult

DEFAULT_LANES = 8  # combinations vmapped together; results are bitwise stable for a given value
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of intermediate arrays per group of lanes
HIST_DEFAULT_HALF_RANGE = 3.0  # histogram range on an unbounded side

LAYER_FIELDS = (
    "pre_mean",
    "pre_var",
    "post_mean",
    "post_var",
    "saturated",
    "dead",
    "nonfinite",
    "grad_var",
    "weight_grad_norm",
)
DIMS = ("init", "activation", "depth", "width", "bias_init", "seed")


def hist_edges(grid: Grid, activation) -> np.ndarray:
    """The histogram edges (float32) of an activation's post-activations in this grid."""
    if grid.hist_range is not None:
        lo, hi = grid.hist_range
    else:
        lo, hi = activation.bounds
        lo = lo if math.isfinite(lo) else -HIST_DEFAULT_HALF_RANGE
        hi = hi if math.isfinite(hi) else HIST_DEFAULT_HALF_RANGE
    return np.linspace(lo, hi, grid.bins + 1, dtype=np.float32)


def bytes_per_combination(grid: Grid, width: int) -> int:
    """Rough size of one combination's intermediates: activations, probes, weights."""
    depth = max(grid.depths)
    act = 4 * grid.n_samples * width
    return act * (3 * depth + 4 * sum(grid.depths)) + 4 * depth * width * (width + grid.input_dim)


def _progress(total: int, enabled: bool | None):
    """A rich progress bar on a terminal, and nothing otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from rich.progress import Progress  # rich comes with flax

    bar = Progress(transient=True)
    return bar, bar.add_task("sweep", total=total)


def sweep(
    grid: Grid,
    *,
    chunk_size: int | None = None,
    lanes: int = DEFAULT_LANES,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Evaluates every combination of ``grid`` and returns a labeled SweepResult.

    Args:
      grid: the configurations.
      chunk_size: combinations per compiled call, rounded up to whole groups of
        ``lanes``; None takes 16 groups. It sets how often results come back,
        never the numbers.
      lanes: combinations vmapped together. Results are bitwise reproducible
        for a given ``lanes``; another value may change them in the last bit.
      memory_budget: bytes of intermediates one group of lanes may use; a
        larger need raises before anything runs.
      progress: show a progress bar; None shows one only on a terminal.
      on_chunk: called with ``(chunks_done, chunks_total)`` after each chunk.

    Returns:
      A SweepResult with dims (init, activation, depth, width, bias_init, seed),
      less those the grid fixed to a scalar. Fields: pre_mean, pre_var,
      post_mean, post_var, saturated, dead, nonfinite, grad_var,
      weight_grad_norm (and cosine if asked), each ``(..., layer)``; hist
      ``(..., layer, bin)``; diverged_layer ``(...)`` (-1 when finite).
      Layers beyond a combination's depth are NaN (hist 0, nonfinite -1).
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes must be a positive int; got {lanes!r}")
    coords = grid.coords()
    sizes = [len(coords[d]) for d in DIMS]
    depth_max = max(grid.depths)
    bins = grid.bins
    fields = {f: np.full((*sizes, depth_max), np.nan, np.float32) for f in LAYER_FIELDS}
    if grid.cosine:
        fields["cosine"] = np.full((*sizes, depth_max), np.nan, np.float32)
    fields["nonfinite"] = np.full((*sizes, depth_max), -1, np.int64)
    fields["hist"] = np.zeros((*sizes, depth_max, bins), np.int64)
    fields["diverged_layer"] = np.full(sizes, -1, np.int64)

    # group by static structure; a member is (init index, bias index, seed index)
    groups: dict[tuple, list[tuple[int, int, int]]] = defaultdict(list)
    for ia in range(len(grid.activation_objs)):
        for iw in range(len(grid.widths)):
            for ii, init in enumerate(grid.init_objs):
                for ib, bias in enumerate(grid.bias_objs):
                    key = (ia, iw, init.base, bias.base)
                    groups[key] += [(ii, ib, js) for js in range(len(grid.seed_values))]

    plans = []
    for (ia, iw, w_base, b_base), members in groups.items():
        need = lanes * bytes_per_combination(grid, grid.widths[iw])
        if need > memory_budget:
            raise ValueError(
                f"one group of {lanes} lanes needs about {need / 2**20:.0f} MiB, over the "
                f"memory_budget of {memory_budget / 2**20:.0f} MiB; lower lanes or raise the budget"
            )
        size = chunk_size or 16 * lanes
        size = lanes * math.ceil(min(size, len(members)) / lanes)  # whole groups of lanes
        plans.append((ia, iw, w_base, b_base, members, size, math.ceil(len(members) / size)))
    total = sum(p[-1] for p in plans)

    bar = _progress(total, progress)
    done = 0
    x = None if grid.input_array is None else jnp.asarray(grid.input_array)
    try:
        if bar:
            bar[0].start()
        for ia, iw, w_base, b_base, members, size, n_chunks in plans:
            act, width = grid.activation_objs[ia], grid.widths[iw]
            spec = kernel.KernelSpec(
                activation=act,
                w_base=w_base,
                b_base=b_base,
                d_in=grid.input_dim,
                width=width,
                depth=depth_max,
                grad_depths=grid.depths,
                batch=grid.n_samples,
                edges=tuple(hist_edges(grid, act).tolist()),
                inputs="array" if x is not None else grid.inputs,
                batchnorm=grid.batchnorm,
                cosine=grid.cosine,
            )
            for c in range(n_chunks):
                chunk = members[c * size : (c + 1) * size]
                padded = chunk + [chunk[-1]] * (size - len(chunk))  # one shape per group
                out = kernel.run_batch(spec, lanes, _params(grid, padded, width), x)
                out = jax.tree.map(np.asarray, out)
                for j, (ii, ib, js) in enumerate(chunk):
                    _store(fields, out, j, (ii, ia, iw, ib, js), grid.depths)
                done += 1
                if bar:
                    bar[0].advance(bar[1])
                if on_chunk:
                    on_chunk(done, total)
    finally:
        if bar:
            bar[0].stop()

    attrs = {
        "grid": grid.describe(),
        "hist_edges": {a.spec: hist_edges(grid, a).tolist() for a in grid.activation_objs},
        "prng_impl": str(jax.random.key_impl(jax.random.key(0))),
    }
    result = SweepResult(
        dims=DIMS,
        coords=coords,
        fields=fields,
        field_dims={
            **{f: ("layer",) for f in fields if f not in ("hist", "diverged_layer")},
            "hist": ("layer", "bin"),
            "diverged_layer": (),
        },
        aliases={d: a for d, a in grid.aliases.items() if a},
        attrs=attrs,
    )
    return result.sel(**{d: coords[d][0] for d in grid.scalar_dims()})


def _params(grid: Grid, members, width: int) -> kernel.KernelParams:
    inits, biases = grid.init_objs, grid.bias_objs
    seeds = [grid.seed_values[js] for _, _, js in members]
    return kernel.KernelParams(
        seed_key=jax.vmap(grid.seed_key)(jnp.asarray(seeds)),
        w_first=np.stack([kernel.coeffs_array(inits[i], (grid.input_dim, width)) for i, _, _ in members]),
        w_hidden=np.stack([kernel.coeffs_array(inits[i], (width, width)) for i, _, _ in members]),
        bias=np.stack([kernel.coeffs_array(biases[b], (width,)) for _, b, _ in members]),
    )  # fmt: skip


def _store(fields, out, j, where, depths):
    """Writes combination ``j`` of a chunk at ``where`` = (init, act, width, bias, seed)."""
    ii, ia, iw, ib, js = where
    for idepth, depth in enumerate(depths):
        at = (ii, ia, idepth, iw, ib, js)
        for f in ("pre_mean", "pre_var", "post_mean", "post_var", "saturated", "dead", "nonfinite"):
            fields[f][at][:depth] = out[f][j, :depth]
        if "cosine" in fields:
            fields["cosine"][at][:depth] = out["cosine"][j, :depth]
        fields["hist"][at][:depth] = out["hist"][j, :depth]
        fields["grad_var"][at] = out["grad_var"][j, idepth]
        fields["weight_grad_norm"][at] = out["weight_grad_norm"][j, idepth]
        bad = np.flatnonzero(out["nonfinite"][j, :depth] > 0)
        fields["diverged_layer"][at] = bad[0] if bad.size else -1
