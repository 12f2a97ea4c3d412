"""``sweep(ModelGrid)``: chunks of seeds through the model pass, checkpointed, assembled."""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from jaxinit import _distributed
from jaxinit._checks import check_int, check_path
from jaxinit._host import device_memory
from jaxinit._progress import Reporter, Update
from jaxinit._results import SweepResult
from jaxinit._store import Store
from jaxinit.sweeping import _model_pass
from jaxinit.sweeping._model_grid import MODEL_DIMS, ModelGrid
from jaxinit.sweeping._plan import DEFAULT_MEMORY_BUDGET, default_lanes
from jaxinit.sweeping._run import _check_distributed
from jaxinit.sweeping._stats import LAYER_FIELDS

__all__ = ["CHECKPOINT_SCHEMA", "DEFAULT_MODEL_CHUNK", "sweep_model"]

CHECKPOINT_SCHEMA = 1
DEFAULT_MODEL_CHUNK = 32  # seeds per call when not told: results come back this often


def _fields(spec: _model_pass.ModelPass) -> tuple[str, ...]:
    skip = {"cosine"} if not spec.cosine else set()
    if not spec.gradients:
        skip |= {"grad_var", "weight_grad_norm"}
    return tuple(f for f in LAYER_FIELDS if f not in skip)


def _layout(spec: _model_pass.ModelPass, fields, n_layers: int) -> dict:
    out = {"seeds": ((spec.chunk,), np.dtype(np.int32))}
    for f in fields:
        trailing = (n_layers, spec.bins) if f == "hist" else (n_layers,)
        dtype = np.int32 if f in ("nonfinite", "hist_below", "hist_above", "hist") else np.float32
        out[f] = ((spec.n_inits, spec.chunk, *trailing), np.dtype(dtype))
    return out


def sweep_model(
    grid: ModelGrid,
    *,
    out: str | os.PathLike | None = None,
    chunk_size: int | None = None,
    lanes: int | None = None,
    devices=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool | None = None,
    on_update: Callable[[Update], None] | None = None,
    process_timeout: float = _distributed.DEFAULT_PROCESS_TIMEOUT,
) -> SweepResult:
    """Every (init, seed) model of ``grid`` at initialization; see :func:`jaxinit.sweep`.

    With several processes (``jax.distributed``), chunk ``i`` is computed by process
    ``i mod count`` on its own devices and saved into ``out`` (required), and every process
    reads the others' as they appear, as the MLP path does (:mod:`jaxinit._distributed`)."""
    out = check_path("sweep: out", out, none=True)
    spec, devices = _pass(grid, chunk_size, lanes, devices)
    me, count = _distributed.processes()
    if count > 1:
        _check_distributed(out, devices, me, count)
    timeout = _distributed.check_timeout(process_timeout, "sweep")
    fields = _fields(spec)
    seeds = np.asarray(grid.seeds, np.int64)
    parts = {str(s): seeds[s : s + spec.chunk] for s in range(0, len(seeds), spec.chunk)}
    owners = {name: _distributed.owner(i, count) for i, name in enumerate(parts)}
    layout = _layout(spec, fields, len(spec.structure.layers))
    chunks: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        report = stack.enter_context(Reporter("sweep", len(parts), progress, on_update))

        # the program is compiled (and its memory checked) ahead of the first chunk and,
        # for a new run, before the store is opened, so a refused program leaves nothing in
        # out; a checkpoint already in out is checked first, so that one written by another
        # factory or grid is refused before the compile, not after
        def open_store() -> Store:
            return stack.enter_context(_open_store(out, grid, spec, devices, me, count))

        existing = out is not None and os.path.lexists(Store.manifest_path(out, "sweep"))
        store = open_store() if existing else None
        report.show(0, "compiling")
        compute = _computer(grid, spec, fields, devices, memory_budget)
        report.show(0)
        if out is not None and store is None:
            store = open_store()

        def take(name: str, arrays: dict) -> None:
            chunks[name] = arrays
            part = parts[name]
            report(
                len(chunks),
                functools.partial(_records, grid, spec.structure, fields, arrays, part),
            )

        alive = (
            contextlib.nullcontext()
            if count == 1
            else _distributed.heartbeat(store.root, me, timeout)
        )
        seen = None if count == 1 else _distributed.snapshot(store.root, count)
        with alive:
            for name in (n for n in parts if owners[n] == me):
                arrays = _load(store, name, parts[name], layout)
                if arrays is None:
                    arrays = compute(parts[name])
                    if store is not None:
                        store.save_chunk(name, arrays)
                take(name, arrays)
            others = {n: o for n, o in owners.items() if o != me}
            for name in () if not others else _arrivals(store, others, me, count, timeout, seen):
                take(name, _load(store, name, parts[name], layout))
        result = _assemble(
            grid,
            spec.structure,
            {
                f: np.concatenate([chunks[n][f][:, : len(parts[n])] for n in parts], axis=1)
                for f in fields
            },
            count,
        )
        if store is not None and me == 0:
            if count > 1:  # every chunk is written: nothing else writes into the store now
                store.clean_temporaries()
            store.save_result(result, "the sweep's result")
    return result


def _load(store: Store | None, name: str, part: np.ndarray, layout) -> dict | None:
    """Chunk ``name``'s arrays from the checkpoint, or None where it has none."""
    arrays = store.load_chunk(name, layout) if store is not None else None
    if arrays is not None and not np.array_equal(arrays["seeds"][: len(part)], part):
        store.refuse_chunk(name, "holds other seeds than this chunk")
    return arrays


def _arrivals(store: Store, others: dict[str, int], me: int, count: int, timeout, seen):
    """The names of the other processes' chunks (name -> owner) as their files appear."""
    return _distributed.arrivals(
        store.root,
        others,
        lambda name: store.chunk_path(name).exists(),
        process=me,
        count=count,
        timeout=timeout,
        what="sweep chunks",
        seen=seen,
    )


def _pass(grid: ModelGrid, chunk_size, lanes, devices) -> tuple[_model_pass.ModelPass, list]:
    """The model pass of ``grid``'s chunks (the structure traced once), and the devices."""
    lanes = default_lanes() if lanes is None else check_int("sweep: lanes", lanes, low=1)
    chunk = (
        DEFAULT_MODEL_CHUNK
        if chunk_size is None
        else check_int("sweep: chunk_size", chunk_size, low=1)
    )
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(
            f"sweep: devices must be a non-empty list of jax devices; got {devices!r:.80}"
        )
    step = lanes * len(devices)  # every device runs whole groups of lanes
    chunk = -(-min(chunk, len(grid.seeds)) // step) * step
    structure = _model_pass.structure(grid)
    spec = _model_pass.ModelPass(
        structure,
        _model_pass.families(grid.inits),
        len(grid.inits),
        chunk,
        lanes,
        grid.bins,
        grid.cosine,
        grid.gradients,
        grid.inputs if isinstance(grid.inputs, str) else None,
        _model_pass.loop_free(structure, grid.gradients, devices[0].platform),
    )
    return spec, devices


def _computer(grid: ModelGrid, spec, fields, devices, memory_budget) -> Callable:
    """``compute(seeds)``: the arrays of one chunk of seeds (padded to the chunk), as saved.
    Its program is compiled here, and refused before anything runs if it needs more memory
    than the budget (:func:`_check_memory`)."""
    mix, shift = _model_pass.coefficient_tables(grid.inits, spec.bases, spec.structure.kernels)
    x = np.zeros(grid.input_shape, np.float32) if isinstance(grid.inputs, str) else grid.inputs
    lo, hi = (np.float32(v) for v in grid.hist_range)
    root = np.uint32(grid.root_seed)
    per_call = len(devices) if spec.loop_free else spec.chunk  # seeds per call
    first = np.asarray(grid.seeds[:per_call], np.int64)
    args = (root, _model_pass.padded(first, per_call), mix, shift, lo, hi, x)
    run = _model_pass.program(spec, grid.model, grid.capture, devices, args)
    _check_memory(run, devices, memory_budget, spec.chunk)

    def compute(part: np.ndarray) -> dict[str, np.ndarray]:
        padded = _model_pass.padded(part, spec.chunk)
        calls = [
            run(root, padded[i : i + per_call], mix, shift, lo, hi, x)
            for i in range(0, spec.chunk, per_call)
        ]  # one call, or loop-free one per device's seed (dispatched before any is read)
        arrays = {f: np.concatenate([np.asarray(getattr(c, f)) for c in calls], 1) for f in fields}
        return {**arrays, "seeds": padded}

    return compute


def _check_memory(run, devices, budget: int, chunk: int) -> None:
    """Refuses, before anything runs, a program whose intermediates (XLA's own count of the
    compiled program, per device) exceed ``budget`` or 80% of a device's memory."""
    stats = run.memory_analysis()
    if stats is None:  # a backend that does not say
        return
    need = int(stats.temp_size_in_bytes + stats.output_size_in_bytes)
    limit = min(int(budget), int(0.8 * device_memory(devices[0])))
    if need > limit:
        raise ValueError(
            f"sweep: a chunk of {chunk} seeds of this ModelGrid needs {need / 2**20:,.0f} MiB per "
            f"device (XLA's count of the compiled program), more than {limit / 2**20:,.0f} MiB "
            "(memory_budget, capped at 80% of the device's memory): lower lanes, chunk_size or "
            "the batch, or raise memory_budget"
        )


def _open_store(out: pathlib.Path, grid: ModelGrid, spec, devices, me: int, count: int) -> Store:
    description = {
        **grid.describe(),
        "structure": spec.structure.fingerprint,
        "layers": [layer.name for layer in spec.structure.layers],
        "kernels": [k.path for k in spec.structure.kernels],
        "chunk": spec.chunk,
        "lanes": spec.lanes,
        "devices": len(devices),
        "backend": jax.default_backend(),
    }
    return Store(
        out,
        kind="sweep",
        schema=CHECKPOINT_SCHEMA,
        spec=description,
        process=me,
        processes=count,
        chunks=True,
    )


def _records(grid, structure, fields, arrays, part) -> list[dict[str, Any]]:
    rows = []
    for i, init in enumerate(grid.inits):
        for j, seed in enumerate(part):
            for l, layer in enumerate(structure.layers):
                row = {
                    "init": init.spec,
                    "seed": int(seed),
                    "layer": layer.name,
                    "type": layer.type,
                }
                for f in fields:
                    if f != "hist":
                        row[f] = arrays[f][i, j, l].item()
                rows.append(row)
    return rows


def _assemble(
    grid: ModelGrid, structure, fields: dict[str, np.ndarray], processes: int
) -> SweepResult:
    return SweepResult(
        dims=MODEL_DIMS,
        coords=grid.coords(),
        fields=fields,
        field_dims={f: ("layer", "bin") if f == "hist" else ("layer",) for f in fields},
        aliases={d: a for d, a in grid.aliases.items() if a},
        attrs={
            "grid": grid.describe(),
            "layers": [layer.name for layer in structure.layers],
            "layer_types": [layer.type for layer in structure.layers],
            "kernels": [k.path for k in structure.kernels],
            "structure": structure.fingerprint,
            "hist_edges": np.linspace(*grid.hist_range, grid.bins + 1).tolist(),
            "processes": processes,
        },
    )
