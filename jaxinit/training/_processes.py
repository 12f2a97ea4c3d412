"""Training across processes (``jax.distributed``): each process trains a block of the seeds.

After ``jax.distributed.initialize(...)``, ``train(grid, data, out=DIR)`` in every
process cuts the grid's seeds into one contiguous block per process (as even as
can be; a process gets none when there are fewer seeds than processes). Each
process trains its block, every init, activation, width and learning rate of
those seeds, on its own devices, as a training run of its own checkpointed in
``DIR/seeds-<first>-<last>``, so a restarted job resumes every block from its
last checkpoint (with the same number of processes: the blocks, and so their
directories, follow from it). Then it waits for the other blocks' results
(heartbeats and ``process_timeout``, as a sweep: :mod:`jaxinit._distributed`),
reads them, and returns the whole result, joined along ``seed``; process 0
writes ``DIR/result``.

A model's numbers depend on its own keys (from its seed) and, only in the last
bits, on the stack of models it is trained with (XLA may pick other matmul
kernels for another stack size), so the result equals the one-process result
within ``tests/_tolerances.py``'s ``TRAIN_RTOL`` and ``TRAIN_ATOL``, not bitwise.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable
from typing import Any

import jax

from jaxinit import _distributed
from jaxinit._io import refuse_link
from jaxinit._results import Result
from jaxinit._store import RESULT, refuse_other_run
from jaxinit.training._grid import TrainGrid

__all__: list[str] = []  # internal: used by jaxinit.training._run


def seed_blocks(seeds: tuple[int, ...], count: int) -> list[tuple[int, ...]]:
    """``seeds`` cut into ``count`` contiguous blocks, the first ones one longer where uneven."""
    size, extra = divmod(len(seeds), count)
    starts = [k * size + min(k, extra) for k in range(count + 1)]
    return [tuple(seeds[starts[k] : starts[k + 1]]) for k in range(count)]


def train_across(
    train: Callable,
    result_type: type[Result],
    grid: TrainGrid,
    data: Any,
    eval_data: Any,
    *,
    out: str | os.PathLike | None,
    process_timeout: float,
    **kwargs: Any,
) -> Result:
    """``train(grid, data, eval_data, out=out, **kwargs)`` as one of several processes: this
    process's block of seeds on its local devices, then the whole result (a ``result_type``)
    from every block's."""
    me, count = _distributed.processes()
    if out is None:
        raise ValueError(
            f"train: with {count} processes (jax.distributed), out= is required: a directory "
            "that every process sees, through which they exchange their models' results"
        )
    timeout = _distributed.check_timeout(process_timeout, "train")
    root = pathlib.Path(out)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out={str(root)!r} is a file, not a directory; give a directory")
    root.mkdir(parents=True, exist_ok=True)
    refuse_other_run(root, "blocks", "a training run of several processes")
    blocks = {
        f"seeds-{b[0]}-{b[-1]}": (k, b) for k, b in enumerate(seed_blocks(grid.seeds, count)) if b
    }
    for name in (*blocks, RESULT):  # each block's run refuses the links inside it
        refuse_link(root / name)
    seen = _distributed.snapshot(root, count)
    with _distributed.heartbeat(root, me, timeout):
        for name, (owner, seeds) in blocks.items():
            if owner == me:
                part = dataclasses.replace(grid, seeds=list(seeds))
                train(part, data, eval_data, out=root / name, devices=jax.local_devices(), **kwargs)
        others = {name: owner for name, (owner, _) in blocks.items() if owner != me}
        for _ in _distributed.arrivals(
            root,
            others,
            lambda name: (root / name / RESULT / "manifest.json").is_file(),
            process=me,
            count=count,
            timeout=timeout,
            what="training blocks",
            seen=seen,
        ):
            pass
    parts = [result_type.load(root / name / RESULT) for name in blocks]
    joined = Result.concat(parts, "seed")
    attrs = {
        **joined.attrs,
        "grid": grid.describe(),
        "processes": count,
        "computed_by": {name: owner for name, (owner, _) in blocks.items()},
    }
    result = dataclasses.replace(joined, attrs=attrs)
    if me == 0:
        result.save(root / RESULT)
    return result
