"""Running a sweep: ``sweep(grid)`` computes (or reads back) each chunk of the plan,
checkpoints it, exchanges chunks between processes, and assembles the result."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
import os
import pathlib
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _distributed
from jaxinit._checks import check_bool, check_path
from jaxinit._host import check_memory, devices_memory, prng_impl
from jaxinit._io import FileRefused, naming_the_path
from jaxinit._progress import Reporter, Update, chain, check_hook, deprecated_hook
from jaxinit._results import SweepResult
from jaxinit._store import Store
from jaxinit.sweeping import _kernel as kernel
from jaxinit.sweeping import _stats
from jaxinit.sweeping._grid import DIMS, INPUT_MOMENTS, Grid, dim_values
from jaxinit.sweeping._plan import (
    DEFAULT_MEMORY_BUDGET,
    Chunk,
    Plan,
    _members,
    default_lanes,
    device_list,
    hist_edges,
    plan,
)

__all__ = ["CHECKPOINT_SCHEMA", "checkpointed_chunks", "sweep"]

# the format of sweep.json and the chunk files; a directory of another format is refused
CHECKPOINT_SCHEMA = 5


def sweep(
    grid: Grid,
    *,
    out: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    lanes: int | None = None,
    devices: Sequence[jax.Device] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool | None = None,
    on_update: Callable[[Update], None] | None = None,
    process_timeout: float = _distributed.DEFAULT_PROCESS_TIMEOUT,
    on_chunk: Callable[[int, int], None] | None = None,
    callback: Callable[[int, list[dict]], None] | None = None,
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
      progress: show a progress bar; None shows one only when someone watches (a
        terminal or a notebook), as :func:`jaxinit.train`'s. It counts chunks, and
        moves within one as each of its compiled programs finishes (a Grid: one
        per activation and block of members); it says ``compiling`` while a
        width's first chunk (a ModelGrid's one program) compiles.
      on_update: called with a :class:`jaxinit.Update` after each chunk computed
        or read back (after its checkpoint), as :func:`jaxinit.train` calls it
        after each logging step: ``kind="sweep"``, ``done`` chunks of ``total``,
        and ``records``, the chunk's combinations as :meth:`SweepResult.to_records`
        gives them (one dict per combination and layer, layers from 1, every
        per-layer field; made only when read), for live logging
        (:func:`jaxinit.jsonl_writer`). A hook that raises stops the sweep after
        the chunk's checkpoint; the same call resumes.
      process_timeout: with several processes, the seconds a process waiting
        for another's chunks allows it to show no sign of life (its heartbeat
        file in ``out``, rewritten every second) before raising a RuntimeError
        that names it and the chunks waited for. A process that stops with an
        error says so in that file, and the others raise at once.
      on_chunk: deprecated (a DeprecationWarning): ``on_chunk(done, total)`` after
        each chunk; use ``on_update`` (``update.done``, ``update.total``).
      callback: deprecated (a DeprecationWarning): ``callback(done, records)``
        after each chunk; use ``on_update`` (``update.records``).

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
      the forward statistics of :mod:`jaxinit.sweeping._stats` (pre_mean, pre_var,
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
    on_update = _hooks(on_update, on_chunk, callback)
    check_bool("sweep: progress", progress, none=True)
    if not isinstance(grid, Grid):
        return _sweep_model(
            grid,
            out,
            chunk_size,
            lanes,
            devices,
            memory_budget,
            progress,
            on_update,
            process_timeout,
        )
    run = _prepare(grid, out, chunk_size, lanes, devices, memory_budget, process_timeout)
    store = _open_store(run) if run.out is not None else None
    # from here on the store is closed (its lock released) whatever happens
    with store if store is not None else contextlib.nullcontext():
        with Reporter("sweep", len(run.plan.chunks), progress, on_update) as report:
            fields, computed_by = _run_chunks(run, store, report)
        result = _assemble(
            grid,
            fields,
            provenance={
                "processes": run.count,
                "computed_by": {c.name: computed_by[c.name] for c in run.plan.chunks},
            },
        )
        if store is not None and run.me == 0:
            if run.count > 1:  # every chunk is written: nothing else writes into the store now
                store.clean_temporaries()
            store.save_result(result, "the sweep's result")
    return result


def checkpointed_chunks(out: str | os.PathLike) -> list[str]:
    """The names of the chunks that the sweep checkpoint ``out`` (``sweep(grid, out=...)``)
    holds, sorted: the same call run again reads them back instead of computing them. []
    where it holds none, or there is no such directory. Nothing is opened or locked: a sweep
    may be writing into ``out`` meanwhile.

    Example:
      >>> checkpointed_chunks("runs/nowhere")
      []
    """
    return Store.chunks_in(check_path("checkpointed_chunks: out", out))


class _Run(NamedTuple):
    """What every step of one sweep reads: the grid and its plan, where it runs, and which
    of how many processes this one is."""

    grid: Grid
    plan: Plan
    out: pathlib.Path | None
    devices: list[jax.Device]
    mesh: jax.sharding.Mesh
    me: int  # this process's index
    count: int  # processes of the run
    timeout: float  # process_timeout, in seconds


def _hooks(on_update, on_chunk, callback) -> Callable[[Update], None] | None:
    """``on_update``, with the deprecated ``on_chunk`` and ``callback`` folded in."""
    check_hook("sweep", "on_update", on_update, "(update)")
    return chain(
        deprecated_hook(
            "sweep",
            "on_chunk",
            on_chunk,
            "(done, total)",
            lambda hook: lambda u: hook(u.done, u.total),
        ),
        deprecated_hook(
            "sweep",
            "callback",
            callback,
            "(done, records)",
            lambda hook: lambda u: hook(u.done, list(u.records)),
        ),
        on_update,
    )


def _prepare(grid, out, chunk_size, lanes, devices, memory_budget, process_timeout) -> _Run:
    """Checks the arguments and plans the sweep; refuses, before anything runs, what cannot
    run (another process's devices, a result that does not fit in memory)."""
    out = check_path("sweep: out", out, none=True)
    devices = device_list(jax.local_devices() if devices is None else devices)
    me, count = _distributed.processes()
    if count > 1:
        _check_distributed(out, devices, me, count)
    timeout = _distributed.check_timeout(process_timeout, "sweep")
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
    return _Run(grid, the_plan, out, devices, mesh, me, count, timeout)


def _run_chunks(run: _Run, store: Store | None, report: Reporter) -> tuple[dict, dict[str, int]]:
    """Computes (or reads back) this process's chunks, then reads the other processes' as
    they appear, filing each into the result's fields and reporting it. Returns the fields
    and the process that computed each chunk, by name."""
    grid, the_plan = run.grid, run.plan
    fields = _empty_fields(grid)
    chunks = {c.name: c for c in the_plan.chunks}
    owners = {c.name: _distributed.owner(c.index, run.count) for c in the_plan.chunks}
    computed_by: dict[str, int] = {}

    def take(chunk: Chunk, arrays: dict[str, np.ndarray], process: int) -> None:
        computed_by[chunk.name] = process
        _file(grid, fields, chunk, arrays)
        report(len(computed_by), functools.partial(_chunk_records, grid, fields, chunk))

    alive = (
        contextlib.nullcontext()
        if run.count == 1
        else _distributed.heartbeat(store.root, run.me, run.timeout)
    )
    seen = None if run.count == 1 else _distributed.snapshot(store.root, run.count)
    with alive:
        compute = _computer(run)
        widths = set()  # a width's first chunk compiles its programs (where not cached)
        for chunk in (c for c in the_plan.chunks if owners[c.name] == run.me):
            loaded = _load_chunk(store, grid, chunk) if store else None
            if loaded is None:  # the bar moves as each of the chunk's programs finishes
                done = len(computed_by)
                if chunk.width not in widths:
                    report.show(done, "compiling")
                    widths.add(chunk.width)
                loaded = compute(chunk, store, lambda part, done=done: report.show(done + part))
            take(chunk, *loaded)
        others = {name: p for name, p in owners.items() if p != run.me}
        for name in () if not others else _arrivals(run, store, others, seen):
            take(chunks[name], *_load_chunk(store, grid, chunks[name]))
    return fields, computed_by


def _computer(run: _Run) -> Callable[..., tuple[dict, int]]:
    """``compute(chunk, store, tick)``: a chunk's arrays computed by this process (and saved
    in the store, given one), and this process's index; ``tick(fraction)`` is called as each
    of the chunk's forward programs finishes (fraction of them done, in (0, 1])."""
    grid, the_plan = run.grid, run.plan
    x_shared = None if isinstance(grid.inputs, str) else jnp.asarray(grid.inputs)
    members = {
        (iw, ib): _members(grid, w, blk, the_plan.forward_specs[0].members)
        for iw, w in enumerate(dim_values(grid.width))
        for ib, blk in enumerate(the_plan.member_blocks)
    }

    def compute(chunk: Chunk, store: Store | None, tick=lambda part: None) -> tuple[dict, int]:
        arrays = _compute(grid, the_plan, chunk, members, run.devices, run.mesh, x_shared, tick)
        if store is not None:
            saved = {**arrays, "_seeds": np.array(chunk.seeds), "_process": np.int64(run.me)}
            with naming_the_path(store.root, "the sweep's checkpoint"):
                store.save_chunk(chunk.name, saved)
        return arrays, run.me

    return compute


def _arrivals(run: _Run, store: Store, others: dict[str, int], seen) -> Iterator[str]:
    """The names of the other processes' chunks (name -> owner) as their files appear."""
    return _distributed.arrivals(
        store.root,
        others,
        lambda name: store.chunk_path(name).exists(),
        process=run.me,
        count=run.count,
        timeout=run.timeout,
        what="sweep chunks",
        seen=seen,
    )


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


def _compute(grid, the_plan: Plan, chunk: Chunk, members, devices, mesh, x_shared, tick):
    """One chunk's statistics: fields ``(activation, member, seed, ...)``, trimmed to the
    chunk. ``tick(fraction)`` as each (activation, member block) program finishes."""
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
    flat = [o for row in outs for o in row]
    for i, o in enumerate(flat, 1):  # in the order dispatched, so in the order they finish
        jax.block_until_ready(o)
        tick(i / len(flat))
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


def _sweep_model(
    grid, out, chunk_size, lanes, devices, memory_budget, progress, on_update, process_timeout
):
    """A :class:`~jaxinit.ModelGrid`'s sweep (:mod:`jaxinit.sweeping._model_run`)."""
    from jaxinit.sweeping._model_grid import ModelGrid
    from jaxinit.sweeping._model_run import sweep_model

    if not isinstance(grid, ModelGrid):
        raise TypeError(
            f"sweep takes a jaxinit Grid or ModelGrid; got {type(grid).__name__} {grid!r:.80}"
        )
    return sweep_model(
        grid,
        out=out,
        chunk_size=chunk_size,
        lanes=lanes,
        devices=devices,
        memory_budget=memory_budget,
        progress=progress,
        on_update=on_update,
        process_timeout=process_timeout,
    )


def _open_store(run: _Run) -> Store:
    """The checkpoint store of this sweep: its fingerprint covers everything that sets the numbers
    and the chunk boundaries (grid, input array, lanes, member tiles, seeds per chunk), never
    the devices or the processes. Every process of a run writes the same manifest."""
    grid, the_plan = run.grid, run.plan
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
    with naming_the_path(run.out, "the sweep's checkpoint"):
        store = Store(
            run.out,
            kind="sweep",
            schema=CHECKPOINT_SCHEMA,
            spec=spec,
            process=run.me,
            processes=run.count,
            chunks=True,
        )
    names = {c.name for c in the_plan.chunks}
    stray = [store.chunk_path(n) for n in store.chunk_names() if n not in names]
    if stray:
        store.close()
        raise ValueError(
            f"{stray[0].parent} has chunk files this sweep would not write: "
            f"{[p.name for p in stray[:3]]}; move them away or use another directory"
        )
    return store


def _previous_chunk_seeds(root: pathlib.Path) -> int | None:
    """The seeds per chunk a checkpoint in ``root`` was written with (None: none readable).

    A manifest that cannot be read is reported by the store itself, with what to do; one
    whose seeds per chunk is not a count >= 1 is damaged, and said so here."""
    try:
        spec = Store.read_spec(root, "sweep")
    except FileRefused:  # a link, a special file: the store refuses it, naming it
        return None
    if spec is None or "chunk_seeds" not in spec:
        return None
    value = spec["chunk_seeds"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{Store.manifest_path(root, 'sweep')} records chunk_seeds={value!r}, not a number "
            "of seeds per chunk >= 1: the manifest is damaged (edited?); delete the directory "
            "to start over, or use another"
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
    arrays = store.load_chunk(chunk.name, _chunk_layout(grid, chunk))
    if arrays is None:
        return None
    if not np.array_equal(arrays.pop("_seeds"), np.array(chunk.seeds)):
        store.refuse_chunk(chunk.name, f"holds other seeds than chunk {chunk.name}")
    process = int(arrays.pop("_process"))
    if not 0 <= process <= chunk.index:  # chunk i is computed by process i mod the count
        store.refuse_chunk(
            chunk.name,
            f"says process {process} computed it; chunk {chunk.index} of this sweep is computed "
            f"by a process from 0 to {chunk.index} (its index modulo the process count)",
        )
    return arrays, process
