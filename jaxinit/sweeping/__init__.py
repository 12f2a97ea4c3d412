"""The sweep engine: ``sweep(grid)`` evaluates every network of a :class:`Grid` at initialization.

The package, in the order of the flow:

- ``_grid``: :class:`Grid`, the configurations (and their validation);
- ``_plan``: :func:`plan`, chunks of seeds, groups of lanes and member blocks;
- ``_kernel``: the compiled draw and forward (and backward) programs;
- ``_stats``: the per-layer statistics those programs record;
- ``_run``: :func:`sweep`, which runs the plan, checkpoints and assembles the result.

Keys come from :mod:`jaxinit._keys`, the store from :mod:`jaxinit._store`, the
labelled result from :mod:`jaxinit._results`, all shared with training.

``sweep(grid)`` works through the grid one *chunk* at a time: a width and a
contiguous block of seeds. For a chunk it

1. draws, once, every seed's inputs and every weight family's standardized
   draws (:func:`jaxinit.sweeping._kernel.draw`), the common random numbers that every
   initializer and activation of the grid shares;
2. runs, for each activation, one compiled :func:`jaxinit.sweeping._kernel.forward` over
   every (seed, init, bias init) of the chunk at once;
3. checkpoints the chunk (with ``out=``) and files its numbers into the result.

Programs. One draw program per width (and set of families) and one forward
program per width, chunk shape and member block, holding every activation of
the grid (a call picks one by ``lax.switch``); initializers' scales, shifts
and families, bias scales and seeds are data. So the number of
compiled programs depends on the shapes alone, never on the number of seeds
or on the values of the scales: ``tests/test_sweeping.py`` counts them.

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

from jaxinit._dims import MAX_SEEDS
from jaxinit._keys import SEED_LIMIT, layer_keys, seed_key
from jaxinit._results import SweepResult
from jaxinit.sweeping._grid import DIMS, INPUT_MOMENTS, INPUTS, MAX_BINS, Combination, Grid
from jaxinit.sweeping._plan import (
    CHUNK_COMBINATIONS,
    DEFAULT_MEMORY_BUDGET,
    HIST_DEFAULT_HALF_RANGE,
    Chunk,
    Plan,
    default_lanes,
    hist_edges,
    on_accelerator,
    plan,
)
from jaxinit.sweeping._programs import clear_programs, programs
from jaxinit.sweeping._run import CHECKPOINT_SCHEMA, checkpointed_chunks, sweep
from jaxinit.sweeping._stats import BACKWARD_FIELDS, COUNT_FIELDS, FORWARD_FIELDS, LAYER_FIELDS

__all__ = [
    "BACKWARD_FIELDS",
    "CHECKPOINT_SCHEMA",
    "CHUNK_COMBINATIONS",
    "COUNT_FIELDS",
    "DEFAULT_MEMORY_BUDGET",
    "DIMS",
    "FORWARD_FIELDS",
    "HIST_DEFAULT_HALF_RANGE",
    "INPUTS",
    "INPUT_MOMENTS",
    "LAYER_FIELDS",
    "MAX_BINS",
    "MAX_SEEDS",
    "MODEL_DIMS",
    "SEED_LIMIT",
    "Chunk",
    "Combination",
    "Grid",
    "ModelGrid",
    "Plan",
    "SweepResult",
    "checkpointed_chunks",
    "clear_programs",
    "default_lanes",
    "hist_edges",
    "layer_keys",
    "on_accelerator",
    "plan",
    "programs",
    "seed_key",
    "sweep",
]


# ModelGrid brings Flax (nnx): imported on first use, so that ``import jaxinit`` stays light.
_MODEL_NAMES = {"ModelGrid": "_model_grid", "MODEL_DIMS": "_model_grid"}


def __getattr__(name: str):
    if name in _MODEL_NAMES:
        import importlib

        value = getattr(importlib.import_module(f"jaxinit.sweeping.{_MODEL_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxinit.sweeping' has no attribute {name!r}")
