"""Planning and running a sweep: group, chunk, split over devices, checkpoint, assemble.

``sweep(grid)`` groups the grid's combinations by activation, width and the
weight and bias initializer *families* (their standardized draw). Every group
of one width runs in the same compiled program, which holds all the sweep's
activations and families and picks one per call with ``lax.switch``; the
initializers' scales and shifts, the bias scales and the seeds are data, and
are vmapped. So the number of programs depends on the shapes alone, never on
the number of seeds, scales, inits or activations. Every depth of the grid
comes out of the same program: a depth-L network is the first L layers of the
deepest one, and the backward pass is run once per depth.

Combinations are vmapped ``lanes`` at a time (1 on CPU, 32 on accelerators),
and a compiled call maps over several groups of lanes on each device: a chunk.
Every chunk of a sweep has the same padded size, so nothing compiles twice.
Because every combination runs in the same ``lanes``-wide program and its
randomness depends only on its seed, its numbers are bitwise the same for any
chunk size or number of devices (for a given ``lanes``). With ``out=`` each
chunk is checkpointed atomically and a rerun resumes.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import math
import os
import pathlib
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import kernel
from jaxinit._io import atomic_write
from jaxinit.grid import Grid
from jaxinit.results import SweepResult

# Combinations vmapped together; results are bitwise stable for a given value.
# On a CPU one lane is fastest (XLA:CPU runs a batched matmul no faster than a
# loop of single ones, and compiles it slower); accelerators want wide batches.
CPU_LANES, ACCELERATOR_LANES = 1, 32


def default_lanes() -> int:
    """The lane width ``sweep`` uses when not told: 1 on CPU, 32 on GPU and TPU."""
    return CPU_LANES if jax.default_backend() == "cpu" else ACCELERATOR_LANES


CHECKPOINT_SCHEMA = 2  # of sweep.json and the chunk files; 2 added hist_below/hist_above
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
    "hist_below",
    "hist_above",
    "grad_var",
    "weight_grad_norm",
)
FORWARD_FIELDS = LAYER_FIELDS[: LAYER_FIELDS.index("grad_var")]  # per layer, prefix of depths
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


class Chunk(NamedTuple):
    """One compiled call: ``members`` of one group, padded to ``size``."""

    group: int  # position of the group in the plan (stable for a grid)
    index: int  # position of the chunk in its group
    spec: kernel.KernelSpec  # shared by every chunk of the same width
    select: tuple[int, int, int]  # (activation, weight family, bias family) in spec
    activation: int  # index into grid.activation_objs
    width: int  # index into grid.widths (the width itself is spec.width)
    members: tuple[tuple[int, int, int], ...]  # (init, bias_init, seed) indices
    size: int  # padded size: whole groups of lanes on every device

    @property
    def w_base(self) -> tuple:
        return self.spec.w_bases[self.select[1]]

    @property
    def name(self) -> str:
        return f"g{self.group:04d}-c{self.index:05d}"


def plan(grid: Grid, *, chunk_size: int | None = None, lanes: int | None = None,
         n_devices: int = 1, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> list[Chunk]:  # fmt: skip
    """The chunks a sweep of ``grid`` runs, in order.

    A group is (activation, width, weight-init family, bias-init family); its
    members are every (init, bias init, seed) of those families. Every group
    of one width shares one compiled program and selects its activation and
    families inside it. Chunks hold whole groups of ``lanes`` on each of
    ``n_devices`` devices.
    """
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None; got {chunk_size!r}")
    lanes = default_lanes() if lanes is None else lanes
    if not isinstance(lanes, int) or lanes < 1:
        raise ValueError(f"lanes must be a positive int; got {lanes!r}")
    groups: dict[tuple, list[tuple[int, int, int]]] = defaultdict(list)
    for ia in range(len(grid.activation_objs)):
        for iw in range(len(grid.widths)):
            for ii, init in enumerate(grid.init_objs):
                for ib, bias in enumerate(grid.bias_objs):
                    key = (ia, iw, init.base, bias.base)
                    groups[key] += [(ii, ib, js) for js in range(len(grid.seed_values))]
    w_bases = tuple(dict.fromkeys(i.base for i in grid.init_objs))
    b_bases = tuple(dict.fromkeys(b.base for b in grid.bias_objs))
    specs = {
        width: kernel.KernelSpec(
            activations=grid.activation_objs,
            w_bases=w_bases,
            b_bases=b_bases,
            edges=tuple(tuple(hist_edges(grid, a).tolist()) for a in grid.activation_objs),
            d_in=grid.input_dim,
            width=width,
            depth=max(grid.depths),
            grad_depths=grid.depths,
            batch=grid.n_samples,
            inputs="array" if grid.input_array is not None else grid.inputs,
            batchnorm=grid.batchnorm,
            cosine=grid.cosine,
        )
        for width in grid.widths
    }
    # One chunk shape for the whole sweep (one program per width): as requested,
    # but no larger than the smallest group, so that small groups are not
    # padded out to the size of large ones. Whole groups of lanes per device.
    step = lanes * n_devices
    smallest = min(len(m) for m in groups.values())
    size = step * math.ceil(min(chunk_size or 64 * step, smallest) / step)
    chunks = []
    for g, ((ia, iw, w_base, b_base), members) in enumerate(groups.items()):
        width = grid.widths[iw]
        need = lanes * bytes_per_combination(grid, width)
        if need > memory_budget:
            raise ValueError(
                f"one group of {lanes} lanes needs about {need / 2**20:.0f} MiB, over the "
                f"memory_budget of {memory_budget / 2**20:.0f} MiB; lower lanes or raise the budget"
            )
        select = (ia, w_bases.index(w_base), b_bases.index(b_base))
        for c in range(math.ceil(len(members) / size)):
            part = tuple(members[c * size : (c + 1) * size])
            chunks.append(Chunk(g, c, specs[width], select, ia, iw, part, size))
    return chunks


def sweep(
    grid: Grid,
    *,
    out: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    lanes: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Evaluates every combination of ``grid`` and returns a labeled SweepResult.

    Args:
      grid: the configurations.
      out: a directory to checkpoint into. Each chunk is written atomically
        as it finishes; run the same call again after a crash or a kill and
        the finished chunks are read back instead of recomputed. The final
        result is saved to ``out/result`` and is bitwise the same as an
        uninterrupted run's.
      chunk_size: combinations per compiled call, at most the smallest group's
        size, rounded up to whole groups of ``lanes`` on every device; None
        takes 64 groups per device (or, when resuming, the size the checkpoint
        was written with). It sets how often results come back and are
        checkpointed, never the numbers.
      lanes: combinations vmapped together; None takes :func:`default_lanes`
        (1 on CPU, 32 on accelerators). Results are bitwise reproducible for a
        given ``lanes``; another value may change them in the last bit.
      devices: devices to split combinations over; None takes all local
        devices. Results do not depend on the number of devices. For several
        hosts, call ``jax.distributed.initialize()`` first and run the same
        sweep on every host with ``devices=jax.local_devices()`` and a disjoint
        share of the seeds (``seeds=[...]``); the per-seed keys make the
        shares combine exactly (``SweepResult.concat(..., "seed")``).
      memory_budget: bytes of intermediates one group of lanes may use; a
        larger need raises before anything runs.
      progress: show a progress bar; None shows one only on a terminal.
      on_chunk: called with ``(chunks_done, chunks_total)`` after each chunk
        computed or read back.

    Returns:
      A SweepResult with dims (init, activation, depth, width, bias_init, seed),
      less those the grid fixed to a scalar. Fields: pre_mean, pre_var,
      post_mean, post_var, saturated, dead, nonfinite, hist_below and
      hist_above (post-activations outside the histogram's range, which the
      histogram does not count), grad_var, weight_grad_norm (and cosine if
      asked), each ``(..., layer)``; hist ``(..., layer, bin)``;
      diverged_layer ``(...)`` (-1 when finite). Layers beyond a
      combination's depth are NaN (hist 0, counts -1).
    """
    devices = list(jax.local_devices() if devices is None else devices)
    lanes = default_lanes() if lanes is None else lanes
    mesh = jax.sharding.Mesh(np.array(devices), (kernel.COMBOS,)) if len(devices) > 1 else None
    store = None
    if out is not None:
        store = _ChunkStore(pathlib.Path(out), grid, lanes=lanes, chunk_size=chunk_size)
        chunk_size = store.chunk_size
    chunks = plan(grid, chunk_size=chunk_size, lanes=lanes, n_devices=len(devices),
                  memory_budget=memory_budget)  # fmt: skip
    if store is not None:
        store.check_plan(chunks)
    fields = _empty_fields(grid)
    x = None if grid.input_array is None else jnp.asarray(grid.input_array)
    bar = _progress(len(chunks), progress)
    try:
        if bar:
            bar[0].start()
        for done, chunk in enumerate(chunks, 1):
            arrays = store.load(chunk) if store else None
            if arrays is None:
                padded = chunk.members + (chunk.members[-1],) * (chunk.size - len(chunk.members))
                params = _params(grid, padded, chunk.spec.width)
                if mesh is not None and kernel.needs_predraw(chunk.w_base):
                    with jax.default_device(devices[0]):
                        draws = kernel.predraw(chunk.spec, chunk.w_base, params.seed_key)
                    params = params._replace(draws=draws)
                select = kernel.Select(*(np.int32(i) for i in chunk.select))
                arrays = kernel.run_batch(chunk.spec, lanes, mesh, select, params, x)
                n = len(chunk.members)
                arrays = {k: np.asarray(v)[:n] for k, v in arrays.items()}
                if store:
                    store.save(chunk, arrays)
            for j, (ii, ib, js) in enumerate(chunk.members):
                _store(fields, arrays, j, (ii, chunk.activation, chunk.width, ib, js), grid.depths)
            if bar:
                bar[0].advance(bar[1])
            if on_chunk:
                on_chunk(done, len(chunks))
    finally:
        if bar:
            bar[0].stop()
    result = _assemble(grid, fields)
    if out is not None:
        result.save(pathlib.Path(out) / "result")
    return result


def _input_second_moment(grid: Grid) -> float:
    """E[x²] per input feature: what enters layer 0 as Var(z₀) = σ_w² E[x²] + σ_b²."""
    if grid.input_array is not None:
        return float(np.mean(np.square(grid.input_array, dtype=np.float64)))
    return {"gaussian": 1.0, "uniform": 1.0 / 3.0}[grid.inputs]


def _empty_fields(grid: Grid) -> dict[str, np.ndarray]:
    sizes = [len(v) for v in grid.coords().values()]
    depth = max(grid.depths)
    names = LAYER_FIELDS + (("cosine",) if grid.cosine else ())
    fields = {f: np.full((*sizes, depth), np.nan, np.float32) for f in names}
    for f in ("nonfinite", "hist_below", "hist_above"):
        fields[f] = np.full((*sizes, depth), -1, np.int64)
    fields["hist"] = np.zeros((*sizes, depth, grid.bins), np.int64)
    fields["diverged_layer"] = np.full(sizes, -1, np.int64)
    return fields


def _assemble(grid: Grid, fields: dict[str, np.ndarray]) -> SweepResult:
    coords = grid.coords()
    attrs = {
        "grid": grid.describe(),
        "hist_edges": {a.spec: hist_edges(grid, a).tolist() for a in grid.activation_objs},
        "prng_impl": str(jax.random.key_impl(jax.random.key(0))),
        "input_second_moment": _input_second_moment(grid),
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


class _ChunkStore:
    """Checkpoint directory: ``sweep.json`` (what is being swept) and one file per chunk.

    Every file is written to a temporary name, flushed to disk and renamed
    into place, so a kill at any moment leaves only whole chunks behind.
    """

    def __init__(self, root: pathlib.Path, grid: Grid, *, lanes: int, chunk_size: int | None):
        self.root = root
        self.dir = root / "chunks"
        manifest = root / "sweep.json"
        previous = json.loads(manifest.read_text()) if manifest.exists() else None
        if chunk_size is None and previous is not None:
            chunk_size = previous["chunk_size"]
        self.chunk_size = chunk_size
        spec = {
            "grid": grid.describe(),
            "inputs_sha256": None
            if grid.input_array is None
            else hashlib.sha256(np.ascontiguousarray(grid.input_array).tobytes()).hexdigest(),
            "lanes": lanes,
            "chunk_size": chunk_size,
            "jaxinit": _version(),
        }
        if previous is not None and previous.get("schema_version") != CHECKPOINT_SCHEMA:
            raise ValueError(
                f"{root} holds a checkpoint in format {previous.get('schema_version')!r}, written "
                f"by another jaxinit version; this one reads format {CHECKPOINT_SCHEMA}. "
                "Use another directory, or finish that sweep with the version that started it"
            )
        if previous is not None and previous["spec"] != spec:
            changed = sorted(k for k in spec if previous["spec"].get(k) != spec[k])
            raise ValueError(
                f"{root} holds a checkpoint of a different sweep ({', '.join(changed)} differ); "
                "resume with the same grid, lanes and chunk_size, or use another directory"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if previous is None:
            atomic_write(manifest, json.dumps({"schema_version": CHECKPOINT_SCHEMA, "spec": spec, "chunk_size": chunk_size}, indent=1).encode())  # fmt: skip

    def check_plan(self, chunks: list[Chunk]) -> None:
        names = {c.name for c in chunks}
        stray = sorted(p.stem for p in self.dir.glob("g*-c*.npz") if p.stem not in names)
        if stray:
            raise ValueError(f"{self.dir} has chunk files this sweep would not write: {stray[:3]}")

    def load(self, chunk: Chunk) -> dict[str, np.ndarray] | None:
        path = self.dir / f"{chunk.name}.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        if not np.array_equal(arrays.pop("_members"), np.array(chunk.members).reshape(-1, 3)):
            raise ValueError(f"{path} holds other combinations than this sweep's {chunk.name}")
        return arrays

    def save(self, chunk: Chunk, arrays: dict[str, np.ndarray]) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, _members=np.array(chunk.members).reshape(-1, 3), **arrays)
        atomic_write(self.dir / f"{chunk.name}.npz", buffer.getvalue())


def _version() -> str:
    try:
        return importlib.metadata.version("jaxinit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _params(grid: Grid, members, width: int) -> kernel.KernelParams:
    # coefficients depend on (initializer, shape) alone: one table row per
    # initializer, gathered for the members (not recomputed per combination)
    def table(objs, shape, index):
        rows = np.stack([kernel.coeffs_array(o, shape) for o in objs])
        return rows[[m[index] for m in members]]

    seeds = [grid.seed_values[js] for _, _, js in members]
    return kernel.KernelParams(
        seed_key=jax.vmap(grid.seed_key)(jnp.asarray(seeds)),
        w_first=table(grid.init_objs, (grid.input_dim, width), 0),
        w_hidden=table(grid.init_objs, (width, width), 0),
        bias=table(grid.bias_objs, (width,), 1),
    )


def _store(fields, out, j, where, depths):
    """Writes combination ``j`` of a chunk at ``where`` = (init, act, width, bias, seed)."""
    ii, ia, iw, ib, js = where
    for idepth, depth in enumerate(depths):
        at = (ii, ia, idepth, iw, ib, js)
        for f in FORWARD_FIELDS:
            fields[f][at][:depth] = out[f][j, :depth]
        if "cosine" in fields:
            fields["cosine"][at][:depth] = out["cosine"][j, :depth]
        fields["hist"][at][:depth] = out["hist"][j, :depth]
        fields["grad_var"][at] = out["grad_var"][j, idepth]
        fields["weight_grad_norm"][at] = out["weight_grad_norm"][j, idepth]
        bad = np.flatnonzero(out["nonfinite"][j, :depth] > 0)
        fields["diverged_layer"][at] = bad[0] if bad.size else -1
