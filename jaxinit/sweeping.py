"""Planning and running a sweep: chunks of seeds, shared draws, devices, checkpoints, assembly.

``sweep(grid)`` works through the grid one *chunk* at a time: a width and a
contiguous block of seeds. For a chunk it

1. draws, once, every seed's inputs and every weight family's standardized
   draws (:func:`jaxinit.kernel.draw`), the common random numbers that every
   initializer and activation of the grid shares;
2. runs, for each activation, one compiled :func:`jaxinit.kernel.forward` over
   every (seed, init, bias init) of the chunk at once;
3. checkpoints the chunk (with ``out=``) and files its numbers into the result.

Programs. One draw program per width (and set of families) and one forward
program per width, chunk shape and member block, holding every activation of
the grid (a call picks one by ``lax.switch``); initializers' scales, shifts
and families, bias scales and seeds are data. So the number of
compiled programs depends on the shapes alone, never on the number of seeds
or on the values of the scales: ``tests/test_sweep.py`` counts them.

Reproducibility. Seeds run ``lanes`` at a time in a program of fixed shape,
split over devices by seed, and every seed's randomness comes from its own
key. A combination's numbers are therefore bitwise the same for any chunk
size, any device count and after a resume. They may differ in the last bits
(float32 rounding of the shared matmuls) between grids with other inits beside
it; ``tests/_tolerances.py`` states and tests the bound.

Several processes. After ``jax.distributed.initialize(...)`` the same call in
every process splits the chunks over the processes (chunk ``i`` to process
``i mod count``; see :mod:`jaxinit._distributed`), each computing its share on
its own devices and checkpointing it into ``out=``, a directory every process
sees. Each then reads the others' chunks from there as they appear, and every
process returns the whole result, bitwise the one-process one (keys come from
seeds, never from the split).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _distributed, _io, kernel
from jaxinit import stats as _stats
from jaxinit._checks import check_bool, check_int, check_path
from jaxinit._host import (
    MEMORY_HEADROOM,
    check_memory,
    devices_memory,
    prng_impl,
)
from jaxinit._io import naming_the_path
from jaxinit._progress import ProgressBar
from jaxinit._store import Store
from jaxinit.grid import DIMS, INPUT_MOMENTS, Grid, dim_values, float32_edges
from jaxinit.initializers._bases import Lsuv
from jaxinit.results import SweepResult

__all__ = ["Chunk", "Plan", "default_lanes", "hist_edges", "on_accelerator", "plan", "sweep"]

# Seeds per group of lanes: a CPU runs one seed (its members batched) at a time
# fastest; accelerators want wide batches.
CPU_LANES, ACCELERATOR_LANES = 1, 16
# Members per step of the kernel's loop over members: on a CPU a tile's activations stay in
# a core's cache (see jaxinit.kernel._run_group); accelerators take the whole block at once.
CPU_TILE = 1
# the format of sweep.json and the chunk files; a directory of another format is refused
CHECKPOINT_SCHEMA = 5
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of intermediates one group of lanes may use
CHUNK_COMBINATIONS = 4096  # combinations per chunk when not told (about a second on a CPU)
HIST_DEFAULT_HALF_RANGE = 3.0  # histogram range on an unbounded side


def on_accelerator() -> bool:
    """Whether sweeps plan for an accelerator (GPU, TPU): jax's default backend is not the CPU."""
    return jax.default_backend() != "cpu"


def default_lanes() -> int:
    """Seeds per group of lanes when not told: 1 on CPU, 16 on GPU and TPU."""
    return ACCELERATOR_LANES if on_accelerator() else CPU_LANES


def hist_edges(grid: Grid, activation) -> np.ndarray:
    """The histogram edges (float32) of an activation's post-activations in this grid."""
    return float32_edges(*_hist_range(grid, activation), grid.bins)


def _hist_range(grid: Grid, activation) -> tuple[float, float]:
    if grid.hist_range is not None:
        lo, hi = grid.hist_range
    else:
        lo, hi = activation.bounds
        lo = lo if math.isfinite(lo) else -HIST_DEFAULT_HALF_RANGE
        hi = hi if math.isfinite(hi) else HIST_DEFAULT_HALF_RANGE
    return float(np.float32(lo)), float(np.float32(hi))


class Chunk(NamedTuple):
    """A checkpointed unit of work: one width and a contiguous block of seeds."""

    index: int  # position in the plan
    width: int  # index into dim_values(grid.width)
    seeds: range  # indices into grid.seeds

    @property
    def name(self) -> str:
        return f"w{self.width:02d}-s{self.seeds.start:09d}"


class Plan(NamedTuple):
    """Everything a sweep of a grid compiles and runs, decided before anything runs."""

    chunks: tuple[Chunk, ...]
    draw_specs: tuple[kernel.DrawSpec, ...]  # per width
    forward_specs: tuple[kernel.ForwardSpec, ...]  # per width
    member_blocks: tuple[range, ...]  # member (init × bias init) ranges, one forward call each
    lanes: int
    chunk_seeds: int


def _family_index(objs) -> tuple[tuple, list[int]]:
    bases = tuple(dict.fromkeys(o.base for o in objs))
    return bases, [bases.index(o.base) for o in objs]


def _bytes_per_group(grid: Grid, width: int, lanes: int, members: int) -> int:
    """Peak intermediates of one group of lanes: activations (stored for the backward pass)."""
    depth = max(dim_values(grid.depth))
    slab = 4 * lanes * members * grid.batch * width
    stored = 2 * depth + 6 if grid.gradients else 6
    weights = 4 * lanes * members * (width * (width + grid.d_in)) * (depth if grid.gradients else 2)
    return slab * stored + weights


def _draw_bytes_per_seed(spec: kernel.DrawSpec) -> int:
    """Device memory of one seed's draws (:class:`jaxinit.kernel.Draws`)."""
    f, fb, w = len(spec.w_bases), len(spec.b_bases), spec.width
    floats = spec.d_in * f * w + (spec.depth - 1) * f * w * w + spec.depth * fb * w
    floats += spec.batch * spec.d_in if spec.inputs != "array" else 0
    floats += spec.batch * w if spec.cotangent else 0
    return 4 * floats


def _stats_bytes_per_seed(grid: Grid, members: int) -> int:
    """Device memory of one seed's statistics, every activation's call held until fetched."""
    depth = max(dim_values(grid.depth))
    n_depths = len(dim_values(grid.depth)) if grid.gradients else 0
    per_layer = 4 * (len(_stats.LAYER_FIELDS) + 2 * n_depths + grid.bins + 3)
    return len(grid.activations) * members * depth * per_layer


def plan(
    grid: Grid,
    *,
    chunk_size: int | None = None,
    lanes: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    tile: int | None = None,
    device_memory: int | None = None,
    devices: int = 1,
) -> Plan:
    """The programs and chunks a sweep of ``grid`` runs.

    Args:
      chunk_size: seeds per chunk (rounded up to whole groups of lanes);
        None takes enough for about ``CHUNK_COMBINATIONS`` combinations.
      lanes: seeds per group of lanes; None takes :func:`default_lanes`.
      memory_budget: bytes of intermediates one group of lanes may use; the
        members (init × bias init) are split into blocks that fit, and a grid
        in which one member does not fit raises before anything runs.
      tile: members per step of the kernel's loop over a block's members
        (rounded down to a divisor of the block); None: ``CPU_TILE`` on a CPU,
        the whole block on an accelerator. It can change a combination's last
        bits (the matmuls' batching), never more.
      device_memory: bytes of each device (None: :func:`jaxinit._host.device_memory` of
        jax's first device: an accelerator's own, a CPU device's share of half the host's
        memory; the same in every run on the same hardware). ``MEMORY_HEADROOM`` of it may be
        used: ``memory_budget`` is capped there, and a chunk holds no more seeds than
        their draws and statistics fit beside one group's intermediates.
      devices: how many devices share a chunk's seeds.
    """
    check_int("sweep: chunk_size (seeds per chunk)", chunk_size, low=1, none=True)
    lanes = check_int("sweep: lanes", default_lanes() if lanes is None else lanes, low=1)
    if not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}")
    if device_memory is None:
        device_memory = devices_memory(jax.devices()[:1])
    check_int("sweep: device_memory (bytes)", device_memory, low=1)
    devices = check_int("sweep: devices", devices, low=1)
    usable = int(MEMORY_HEADROOM * device_memory)
    memory_budget = min(memory_budget, usable)
    n_members = len(grid.inits) * len(dim_values(grid.bias_inits))
    widest = max(dim_values(grid.width))
    block = n_members
    while block > 1 and _bytes_per_group(grid, widest, lanes, block) > memory_budget:
        block = math.ceil(block / 2)
    need = _bytes_per_group(grid, widest, lanes, block)
    if need > memory_budget:
        raise ValueError(
            f"one group of {lanes} lane(s) of one network at width {widest} needs about "
            f"{need / 2**20:.1f} MiB, over the memory_budget of {memory_budget / 2**20:.1f} MiB "
            f"(at most {MEMORY_HEADROOM:.0%} of the device's {device_memory / 2**30:.2f} GiB); "
            "lower lanes, batch or depth, or raise memory_budget"
        )
    n_blocks = math.ceil(n_members / block)
    block = math.ceil(n_members / n_blocks)  # even blocks: less padding
    check_int("sweep: tile (members per step)", tile, low=1, none=True)
    if tile is None:
        tile = block if on_accelerator() else CPU_TILE
    tile = math.gcd(block, tile)
    blocks = tuple(range(b * block, min((b + 1) * block, n_members)) for b in range(n_blocks))
    w_bases, _ = _family_index(grid.inits)
    b_bases, _ = _family_index(dim_values(grid.bias_inits))
    depth = max(dim_values(grid.depth))
    shifted = any(
        _coeffs(i, shape)[1] != 0
        for i in grid.inits
        for w in dim_values(grid.width)
        for shape in ((grid.d_in, w), (w, w))
    )
    lsuv = any(isinstance(i.base, Lsuv) for i in grid.inits)
    draw_specs, forward_specs = [], []
    for width in dim_values(grid.width):
        draw_specs.append(
            kernel.DrawSpec(
                w_bases=w_bases,
                b_bases=b_bases,
                d_in=grid.d_in,
                width=width,
                depth=depth,
                batch=grid.batch,
                inputs=grid.inputs if isinstance(grid.inputs, str) else "array",
                cotangent=grid.gradients,
            )
        )
        forward_specs.append(
            kernel.ForwardSpec(
                activations=grid.activations,
                hist_ranges=tuple(_hist_range(grid, a) for a in grid.activations),
                bins=grid.bins,
                d_in=grid.d_in,
                width=width,
                depth=depth,
                batch=grid.batch,
                families=len(w_bases),
                members=block,
                lanes=lanes,
                tile=tile,
                grad_depths=dim_values(grid.depth) if grid.gradients else (),
                batchnorm=grid.batchnorm,
                cosine=grid.cosine,
                shifted=shifted,
                lsuv=lsuv,
            )
        )
    n_seeds = len(grid.seeds)
    per_seed = len(grid.activations) * n_members
    seeds = chunk_size or max(1, CHUNK_COMBINATIONS // per_seed)
    seeds = lanes * math.ceil(min(seeds, n_seeds) / lanes)
    # a chunk's draws and statistics stay on its devices beside one group's intermediates
    seed_bytes = max(_draw_bytes_per_seed(d) for d in draw_specs)
    seed_bytes += _stats_bytes_per_seed(grid, n_blocks * block)
    fit = lanes * devices * ((usable - need) // (seed_bytes * lanes) if usable > need else 0)
    if fit < lanes * devices:
        raise ValueError(
            f"one group of {lanes} lane(s) at width {widest} needs about {need / 2**20:.1f} MiB "
            f"of intermediates and {lanes * seed_bytes / 2**20:.1f} MiB of draws and statistics, "
            f"over {usable / 2**30:.2f} GiB ({MEMORY_HEADROOM:.0%} of the "
            f"{device_memory / 2**30:.2f} GiB of the device); lower lanes, width, batch, "
            "depth or the number of inits"
        )
    if seeds > fit:
        if chunk_size is not None:
            raise ValueError(
                f"sweep: chunk_size={chunk_size} seeds' draws need about "
                f"{seeds * seed_bytes / devices / 2**30:.2f} GiB per device, over the "
                f"{usable / 2**30:.2f} GiB the device has for them; at most {fit} seeds fit"
            )
        seeds = fit
    blocks_of_seeds = [range(s, min(s + seeds, n_seeds)) for s in range(0, n_seeds, seeds)]
    pairs = [(iw, b) for iw in range(len(dim_values(grid.width))) for b in blocks_of_seeds]
    chunks = tuple(Chunk(i, iw, b) for i, (iw, b) in enumerate(pairs))
    return Plan(chunks, tuple(draw_specs), tuple(forward_specs), blocks, lanes, seeds)


def _coeffs(init, shape) -> tuple[float, float]:
    """``(a, b)`` of ``init`` at ``shape`` as float32 numbers, with a=1, b=0 for None."""
    a, b = init.coeffs(tuple(shape), jnp.dtype(jnp.float32))
    return (1.0 if a is None else float(a)), (0.0 if b is None else float(b))


def _members(grid: Grid, width: int, block: range, size: int) -> kernel.Members:
    """The coefficient rows of members ``block`` (padded to ``size`` by repeating the last)."""
    w_bases, w_fam = _family_index(grid.inits)
    b_bases, b_fam = _family_index(dim_values(grid.bias_inits))
    kb = len(dim_values(grid.bias_inits))
    ids = list(block) + [block[-1]] * (size - len(block))
    rows = {k: [] for k in kernel.Members._fields}
    for m in ids:
        ii, ib = divmod(m, kb)
        init, bias = grid.inits[ii], dim_values(grid.bias_inits)[ib]
        for name, shape, fam, n_fam, obj in (
            ("first", (grid.d_in, width), w_fam[ii], len(w_bases), init),
            ("hidden", (width, width), w_fam[ii], len(w_bases), init),
            ("bias", (width,), b_fam[ib], len(b_bases), bias),
        ):
            a, b = _coeffs(obj, shape)
            mix = np.zeros(n_fam, np.float32)
            mix[fam] = a
            rows[f"{name}_mix"].append(mix)
            rows[f"{name}_shift"].append(np.float32(b))
        rows["lsuv"].append(kernel.lsuv_row(init.base))
    return kernel.Members(*(np.stack(rows[k]).astype(np.float32) for k in kernel.Members._fields))


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
    callback: Callable[[int, list[dict]], None] | None = None,
    process_timeout: float = _distributed.DEFAULT_PROCESS_TIMEOUT,
) -> SweepResult:
    """Evaluates every combination of ``grid`` and returns a labeled SweepResult.

    Args:
      grid: the configurations.
      out: a directory to checkpoint into. Each chunk is written atomically
        as it finishes; run the same call again after a crash or a kill and
        the finished chunks are read back instead of recomputed. The final
        result is saved to ``out/result`` and is bitwise the same as an
        uninterrupted run's.
      chunk_size: seeds per chunk (every activation and init of those seeds
        runs together, and is checkpointed together), rounded up to whole
        groups of ``lanes``; None takes enough seeds for about 4096
        combinations (or, when resuming, the size the checkpoint was written
        with). It sets how often results come back, never the numbers.
      lanes: seeds per group of lanes; None takes :func:`default_lanes`
        (1 on CPU, 16 on accelerators). Results are bitwise reproducible for a
        given ``lanes``; another value may change them in the last bit.
      devices: devices to split each chunk's seeds over; None takes all local
        devices. Results do not depend on the number of devices. On a CPU,
        ``JAX_NUM_CPU_DEVICES=<cores>`` set before jax starts gives one device
        per core (the ``jaxinit`` command and ``sweeps/`` do this).
      memory_budget: bytes of intermediates one group of lanes may use; the
        inits are split into blocks that fit, and a grid in which one network
        does not fit raises before anything runs. It is capped at 80% of the
        devices' memory (an accelerator's own, a CPU device's share of half the
        host's: ``jaxinit._host.device_memory``), and a
        chunk holds no more seeds than fit there beside it.
      progress: show a progress bar; None shows one only on a terminal.
      on_chunk: called with ``(chunks_done, chunks_total)`` after each chunk
        computed or read back.
      callback: called with ``(chunks_done, records)`` after each chunk:
        ``records`` are the chunk's combinations as :meth:`SweepResult.to_records`
        gives them (one dict per combination and layer, layers from 1, every
        per-layer field), for live logging. A callback that raises stops the
        sweep after the chunk's checkpoint; the same call resumes.
      process_timeout: with several processes, the seconds a process waiting
        for another's chunks allows it to show no sign of life (its heartbeat
        file in ``out``, rewritten every second) before raising a RuntimeError
        that names it and the chunks waited for. A process that stops with an
        error says so in that file, and the others raise at once.

    Reproducibility: a combination's numbers are bitwise the same for any
    ``chunk_size``, number of devices or processes, and after a resume, since
    every group of lanes runs one compiled body and those only change how often
    it runs. They are *not* promised bitwise against another grid holding the
    same combination (other inits, activations or seeds beside it; another
    ``lanes`` or ``memory_budget``): that is another program, in which the first
    layer's matmul over every weight family's draws, or a block of members, has
    another shape, and XLA may sum its dot products in another order. Such
    results agree to float32 rounding: about ``sqrt(K)·2⁻²⁴`` relative per dot of
    ``K`` terms, ~1e-6 through a few layers (``tests/_tolerances.py``,
    ``ENGINE_RTOL``), and a value within a few ulps of a histogram edge may
    change bins.

    Several processes (``jax.distributed``): after ``jax.distributed.initialize``
    run the same call in every process, with ``out=`` a directory that every
    process sees (it is required: the processes exchange their chunks through
    it, never by a collective). Chunk ``i`` is computed by process
    ``i mod jax.process_count()`` on its local devices (``devices=`` must be
    local) and checkpointed by it; every process then reads the other chunks
    as they appear and returns the whole result, bitwise the one-process
    result; process 0 alone writes ``out/result``. Killing the job and
    restarting every process resumes it, with any number of processes.

    Returns:
      A SweepResult with dims (init, activation, depth, width, bias_init, seed),
      less those the grid fixed to a scalar. Fields, each ``(..., layer)``:
      the forward statistics of :mod:`jaxinit.stats` (pre_mean, pre_var,
      post_mean, post_var, saturated, dead, nonfinite, hist_below, hist_above);
      grad_var and weight_grad_norm unless the grid has ``gradients=False``;
      cosine if asked; hist ``(..., layer, bin)``; and diverged_layer ``(...)``,
      the first layer with a non-finite value or a statistic that overflowed
      float32 (-1 when none). Layers beyond a combination's depth are NaN
      (hist 0, counts -1). Provenance: ``attrs["processes"]``, the number of
      processes of this run, and ``attrs["computed_by"]``, a dict from each
      *chunk*'s name (``w<width index>-s<first seed index>``, as the files in
      ``out/chunks``) to the index of the process that computed it (0 in a
      one-process run; a chunk read back from a checkpoint keeps the process
      that wrote it).
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"sweep takes a jaxinit Grid; got {type(grid).__name__} {grid!r:.80}")
    out = check_path("sweep: out", out, none=True)
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(
            f"sweep: devices must be a non-empty list of jax devices (jax.devices()); got {devices!r}"
        )
    me, count = _distributed.processes()
    if count > 1:
        _check_distributed(out, devices, me, count)
    timeout = _distributed.check_timeout(process_timeout, "sweep")
    if on_chunk is not None and not callable(on_chunk):
        raise TypeError(
            f"sweep: on_chunk must be a function (done, total) or None; got {on_chunk!r}"
        )
    if callback is not None and not callable(callback):
        raise TypeError(
            f"sweep: callback must be a function (done, records) or None; got {callback!r}"
        )
    check_bool("sweep: progress", progress, none=True)
    lanes = default_lanes() if lanes is None else lanes
    mesh = jax.sharding.Mesh(np.array(devices), (kernel.SEEDS,))
    if chunk_size is None and out is not None:
        chunk_size = _previous_chunk_seeds(out)
    the_plan = plan(
        grid,
        chunk_size=chunk_size,
        lanes=lanes,
        memory_budget=memory_budget,
        device_memory=devices_memory(devices),
        devices=len(devices),
    )
    _check_result_size(grid)
    if out is not None:
        with naming_the_path(out, "the sweep's checkpoint"):
            store = _open_store(out, grid, the_plan, me, count)
    else:
        store = None
    fields = _empty_fields(grid)
    x_shared = None if isinstance(grid.inputs, str) else jnp.asarray(grid.inputs)
    members = {
        (iw, ib): _members(grid, w, blk, the_plan.forward_specs[0].members)
        for iw, w in enumerate(dim_values(grid.width))
        for ib, blk in enumerate(the_plan.member_blocks)
    }
    chunks = {c.name: c for c in the_plan.chunks}
    owners = {c.name: _distributed.owner(c.index, count) for c in the_plan.chunks}
    computed_by: dict[str, int] = {}
    alive = (
        contextlib.nullcontext() if count == 1 else _distributed.heartbeat(store.root, me, timeout)
    )
    seen = None if count == 1 else _distributed.snapshot(store.root, count)
    try:
        with ProgressBar("sweep", len(chunks), progress) as bar, alive:

            def take(chunk: Chunk, arrays: dict[str, np.ndarray]) -> None:
                _file(grid, fields, chunk, arrays)
                bar.update(len(computed_by))
                if on_chunk:
                    on_chunk(len(computed_by), len(chunks))
                if callback:
                    callback(len(computed_by), _chunk_records(grid, fields, chunk))

            for chunk in (c for c in the_plan.chunks if owners[c.name] == me):
                loaded = _load_chunk(store, grid, chunk) if store else None
                if loaded is None:
                    arrays = _compute(grid, the_plan, chunk, members, devices, mesh, x_shared)
                    computed_by[chunk.name] = me
                    if store:
                        with naming_the_path(store.root, "the sweep's checkpoint"):
                            store.save(
                                f"chunks/{chunk.name}.npz",
                                {
                                    **arrays,
                                    "_seeds": np.array(chunk.seeds),
                                    "_process": np.int64(me),
                                },
                            )
                else:
                    arrays, computed_by[chunk.name] = loaded
                take(chunk, arrays)
            others = {name: p for name, p in owners.items() if p != me}
            for name in (
                ()
                if not others
                else _distributed.arrivals(
                    store.root,
                    others,
                    lambda n: (store.root / "chunks" / f"{n}.npz").exists(),
                    process=me,
                    count=count,
                    timeout=timeout,
                    what="sweep chunks",
                    seen=seen,
                )
            ):
                arrays, computed_by[name] = _load_chunk(store, grid, chunks[name])
                take(chunks[name], arrays)
        result = _assemble(
            grid,
            fields,
            provenance={
                "processes": count,
                "computed_by": {c.name: computed_by[c.name] for c in the_plan.chunks},
            },
        )
        if store is not None and me == 0:
            if count > 1:  # every chunk is written: nothing else writes into the store now
                store.clean_temporaries()
            with naming_the_path(store.root / "result", "the sweep's result"):
                result.save(store.root / "result")
    finally:
        if store is not None:
            store.close()
    return result


def _check_distributed(out, devices: list[jax.Device], me: int, count: int) -> None:
    """Refuses, before anything runs, what a multi-process sweep cannot do."""
    if out is None:
        raise ValueError(
            f"sweep: with {count} processes (jax.distributed), out= is required: a directory "
            "that every process sees, through which they exchange their chunks"
        )
    foreign = [d for d in devices if d.process_index != me]
    if foreign:
        raise ValueError(
            f"sweep: process {me} of {count} can run only on its own devices "
            f"(jax.local_devices(): {jax.local_devices()}); got {foreign}"
        )


def _compute(grid, the_plan: Plan, chunk: Chunk, members, devices, mesh, x_shared):
    """One chunk's statistics: fields ``(activation, member, seed, ...)``, trimmed to the chunk."""
    n = len(chunk.seeds)
    step = the_plan.lanes * len(devices)
    padded = list(chunk.seeds) + [chunk.seeds[-1]] * (step * math.ceil(n / step) - n)
    root = np.uint32(grid.root_seed)
    seeds = np.array([grid.seeds[i] for i in padded], np.int32)
    dspec = the_plan.draw_specs[chunk.width]
    fspec = the_plan.forward_specs[chunk.width]
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(kernel.SEEDS))
    if len(devices) > 1 and kernel.needs_single_device_draws(dspec):
        with jax.default_device(devices[0]):
            draws = kernel.draw(dspec, None, root, seeds)
        # split on the host: a device-to-devices reshard would compile a program per field
        draws = jax.tree.map(lambda a: jax.device_put(np.asarray(a), sharded), draws)
    else:
        draws = kernel.draw(dspec, mesh, root, seeds)
    outs = [  # dispatched together, fetched below
        [
            kernel.forward(fspec, mesh, np.int32(ia), members[chunk.width, ib], draws, x_shared)
            for ib in range(len(the_plan.member_blocks))
        ]
        for ia in range(len(grid.activations))
    ]
    n_members = len(grid.inits) * len(dim_values(grid.bias_inits))
    arrays = {}
    for name in outs[0][0]._fields:
        if getattr(outs[0][0], name) is None:
            continue
        per_act = []
        for row in outs:
            parts = [
                np.asarray(getattr(o, name))[:n, : len(blk)]
                for o, blk in zip(row, the_plan.member_blocks, strict=True)
            ]
            per_act.append(np.concatenate(parts, axis=1))  # (seed, member, ...)
        arr = np.stack(per_act)  # (activation, seed, member, ...)
        arrays[name] = np.moveaxis(arr, 2, 1)[:, :n_members]  # (activation, member, seed, ...)
    return arrays


def _result_bytes(grid: Grid) -> int:
    combos = len(grid)
    depth = max(dim_values(grid.depth))
    n_fields = len(_stats.LAYER_FIELDS) - 1
    return combos * depth * (4 * n_fields + 8 * (grid.bins + 3))


def _check_result_size(grid: Grid) -> None:
    """Refuses, before anything is allocated, a grid whose result would not fit in memory."""
    what = f"{len(grid):,} combinations × {max(dim_values(grid.depth))} layers × {grid.bins} bins"
    advice = (
        "sweep fewer seeds at a time (Grid(seeds=[...])) and combine the parts with "
        "SweepResult.concat"
    )
    check_memory("this grid's result", _result_bytes(grid), what, advice)


def _empty_fields(grid: Grid) -> dict[str, np.ndarray]:
    sizes = [len(v) for v in grid.coords().values()]
    depth = max(dim_values(grid.depth))
    names = [f for f in _stats.LAYER_FIELDS if f != "hist"]
    if not grid.gradients:
        names = [f for f in names if f not in _stats.BACKWARD_FIELDS]
    if not grid.cosine:
        names.remove("cosine")
    fields = {f: np.full((*sizes, depth), np.nan, np.float32) for f in names}
    for f in _stats.COUNT_FIELDS:
        if f != "hist":
            fields[f] = np.full((*sizes, depth), -1, np.int64)
    fields["hist"] = np.zeros((*sizes, depth, grid.bins), np.int64)
    fields["diverged_layer"] = np.full(sizes, -1, np.int64)
    return fields


def _first_bad_layer(bad: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, -1 where none."""
    return np.where(bad.any(-1), bad.argmax(-1), -1)


def _file(grid: Grid, fields: dict[str, np.ndarray], chunk: Chunk, arrays) -> None:
    """Writes a chunk's arrays ``(activation, member, seed, ...)`` into the result's fields."""
    ki, kb = len(grid.inits), len(dim_values(grid.bias_inits))
    seeds = slice(chunk.seeds.start, chunk.seeds.stop)

    def to_dims(a):  # (act, init·bias, seed, ...) -> (init, act, bias, seed, ...)
        a = a.reshape(a.shape[0], ki, kb, *a.shape[2:])
        return np.moveaxis(a, 0, 1)

    forward = [f for f in arrays if f not in _stats.BACKWARD_FIELDS]
    overflow = np.zeros(to_dims(arrays["pre_var"]).shape, bool)
    for f in ("pre_mean", "pre_var", "post_mean", "post_var"):
        overflow |= ~np.isfinite(to_dims(arrays[f]))
    bad = overflow | (to_dims(arrays["nonfinite"]) > 0)
    for idepth, depth in enumerate(dim_values(grid.depth)):
        at = (slice(None), slice(None), idepth, chunk.width, slice(None), seeds)
        for f in forward:
            if f == "hist":
                fields[f][at][..., :depth, :] = to_dims(arrays[f])[..., :depth, :]
            else:
                fields[f][at][..., :depth] = to_dims(arrays[f])[..., :depth]
        for f in _stats.BACKWARD_FIELDS:
            if f in arrays:
                fields[f][at] = to_dims(arrays[f])[..., idepth, :]
        fields["diverged_layer"][at] = _first_bad_layer(bad[..., :depth])


def _input_second_moment(grid: Grid) -> float:
    """E[x²] per input feature: what enters layer 0 as Var(z₀) = σ_w² E[x²] + σ_b²."""
    if isinstance(grid.inputs, str):
        return INPUT_MOMENTS[grid.inputs][1]
    return float(np.mean(np.square(grid.inputs, dtype=np.float64)))


def _chunk_records(grid: Grid, fields: dict[str, np.ndarray], chunk: Chunk) -> list[dict]:
    """The records of one chunk's combinations (its width and seeds), from the filed fields."""
    axis = DIMS.index("seed")
    seeds = slice(chunk.seeds.start, chunk.seeds.stop)
    width = DIMS.index("width")
    part = {}
    for k, v in fields.items():
        v = v[(slice(None),) * axis + (seeds,)]
        part[k] = v[(slice(None),) * width + (slice(chunk.width, chunk.width + 1),)]
    coords = grid.coords()
    coords = {
        **coords,
        "seed": coords["seed"][seeds],
        "width": coords["width"][chunk.width : chunk.width + 1],
    }
    res = _assemble(grid, part, coords=coords)
    return res.to_records()


def _assemble(
    grid: Grid, fields: dict[str, np.ndarray], coords=None, provenance: dict | None = None
) -> SweepResult:
    coords = grid.coords() if coords is None else coords
    attrs = {
        "grid": grid.describe(),
        "hist_edges": {a.spec: hist_edges(grid, a).tolist() for a in grid.activations},
        "prng_impl": prng_impl(),
        "input_second_moment": _input_second_moment(grid),
        **(provenance or {}),
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


def _open_store(root: pathlib.Path, grid: Grid, the_plan: Plan, me: int, count: int) -> Store:
    """The checkpoint store of this sweep: its fingerprint covers everything that sets the numbers
    and the chunk boundaries (grid, input array, lanes, member tiles, seeds per chunk), never
    the devices or the processes. Every process of a run writes the same manifest."""
    spec = {
        "grid": grid.describe(),
        "inputs_sha256": None
        if isinstance(grid.inputs, str)
        else hashlib.sha256(np.ascontiguousarray(grid.inputs).tobytes()).hexdigest(),
        "lanes": the_plan.lanes,
        "tiles": [f.tile for f in the_plan.forward_specs],
        "chunk_seeds": the_plan.chunk_seeds,
        "prng_impl": prng_impl(),
    }
    store = Store(
        root,
        kind="sweep",
        schema=CHECKPOINT_SCHEMA,
        spec=spec,
        process=me,
        processes=count,
        folders=("chunks",),
    )
    names = {f"{c.name}.npz" for c in the_plan.chunks}
    stray = [p.name for p in store.files("chunks/*.npz") if p.name not in names]
    if stray:
        store.close()
        raise ValueError(
            f"{root / 'chunks'} has chunk files this sweep would not write: {stray[:3]}; "
            "move them away or use another directory"
        )
    return store


def _previous_chunk_seeds(root: pathlib.Path) -> int | None:
    """The seeds per chunk a checkpoint in ``root`` was written with (None: none readable).

    A manifest that cannot be read is reported by the store itself, with what to do; one
    whose seeds per chunk is not a count >= 1 is damaged, and said so here."""
    path = root / "sweep.json"
    try:
        value = _io.read_json(path)["spec"]["chunk_seeds"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{path} records chunk_seeds={value!r}, not a number of seeds per chunk >= 1: the "
            "manifest is damaged (edited?); delete the directory to start over, or use another"
        )
    return value


def _chunk_layout(grid: Grid, chunk: Chunk) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The arrays a chunk's file holds, as :func:`_compute` makes them and ``sweep`` saves
    them: name -> (shape, dtype)."""
    acts, seeds = len(grid.activations), len(chunk.seeds)
    members = len(grid.inits) * len(dim_values(grid.bias_inits))
    depths = dim_values(grid.depth)
    per_layer = (acts, members, seeds, max(depths))
    layout = {}
    for f in _stats.LAYER_FIELDS:
        if (f == "cosine" and not grid.cosine) or (
            f in _stats.BACKWARD_FIELDS and not grid.gradients
        ):
            continue
        shape = {"hist": (*per_layer, grid.bins)}.get(f, per_layer)
        if f in _stats.BACKWARD_FIELDS:  # one row per depth of the grid
            shape = (acts, members, seeds, len(depths), max(depths))
        layout[f] = (shape, np.dtype(np.int32 if f in _stats.COUNT_FIELDS else np.float32))
    layout["_seeds"] = ((seeds,), np.array(chunk.seeds).dtype)
    layout["_process"] = ((), np.dtype(np.int64))
    return layout


def _load_chunk(store: Store, grid: Grid, chunk: Chunk) -> tuple[dict[str, np.ndarray], int] | None:
    """A checkpointed chunk's arrays and the process that computed it, or None if it is not
    there. A file of another layout, seeds or process than the chunk's is refused, naming it."""
    relpath = f"chunks/{chunk.name}.npz"
    arrays = store.load(relpath, _chunk_layout(grid, chunk))
    if arrays is None:
        return None
    if not np.array_equal(arrays.pop("_seeds"), np.array(chunk.seeds)):
        store.refuse(relpath, f"holds other seeds than chunk {chunk.name}")
    process = int(arrays.pop("_process"))
    if not 0 <= process <= chunk.index:  # chunk i is computed by process i mod the count
        store.refuse(
            relpath,
            f"says process {process} computed it; chunk {chunk.index} of this sweep is computed "
            f"by a process from 0 to {chunk.index} (its index modulo the process count)",
        )
    return arrays, process
