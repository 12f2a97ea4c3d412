r"""``train(grid, data)``: the host loop, checkpoints and resume, progress, and the result.

The loop calls the compiled programs of :mod:`jaxinit.training._program` a fixed
number of steps at a time, syncing with the host only at evaluations,
statistics steps, checkpoints and the end; what it records is a :class:`_Curves`.
A checkpoint (:mod:`jaxinit.training._checkpoint`: its arrays named by the models'
Flax and Optax paths) is written atomically with the run's fingerprint (the grid
and a digest of the data), so that ``train`` resumes bitwise where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit import _distributed
from jaxinit._checks import check_bool, check_int, check_path, check_real_array
from jaxinit._dims import dim_values
from jaxinit._host import MEMORY_HEADROOM, devices_memory, prng_impl
from jaxinit._io import naming_the_path
from jaxinit._progress import Reporter, Update, chain, check_hook, deprecated_hook
from jaxinit._results import Result
from jaxinit._store import Store
from jaxinit.initializers._bases import Custom, DeltaOrthogonal, Lsuv, Orthogonal
from jaxinit.training._checkpoint import (
    CHECKPOINT_SCHEMA,
    PARTS,
    canonical,
    group_prefix,
    kept_params,
    module,
    named,
    unnamed,
)
from jaxinit.training._grid import MLP, TrainGrid
from jaxinit.training._processes import train_across
from jaxinit.training._program import (
    MODELS,
    STAT_DIMS,
    STAT_FIELDS,
    Program,
    batch_stats,
    evaluate,
    init_opt,
    model_batch_stats,
    model_layers,
    train_chunk,
    train_one,
)

__all__ = ["TrainResult", "train"]

SCAN_STEPS = 100  # steps per compiled call (the last call of a run masks what it does not need)
EVAL_BATCH = 1000  # evaluation examples per forward pass (a model grid's: see eval_rows)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TrainResult(Result):
    """A :class:`jaxinit.Result` of training runs: dims (init, [activation,] [width,]
    [learning_rate,] seed); fields ``loss`` ``(..., step)``, ``test_loss`` and
    ``test_accuracy`` ``(..., eval)``, with ``record_stats_at`` the per-layer statistics
    ``(..., stat_step, layer)``, and with ``keep_params`` the final parameters. What it adds
    to Result: the steps of its evaluations and statistics, frames along steps, and
    :meth:`model`. (It is not a :class:`jaxinit.SweepResult`.)"""

    @property
    def eval_steps(self) -> np.ndarray:
        """The step of each ``eval`` index."""
        return np.asarray(self.attrs["eval_steps"], np.int64)

    @property
    def stats_steps(self) -> np.ndarray:
        """The step of each ``stat_step`` index."""
        return np.asarray(self.attrs["stats_steps"], np.int64)

    def to_dataframe(self, *, along: str = "step"):
        """A tidy ``pandas.DataFrame`` of one kind of field, one row per model and step:

        - ``along="step"``: ``loss`` at every training step;
        - ``"eval"``: ``test_loss`` and ``test_accuracy`` at each evaluation;
        - ``"stat_step"``: the per-layer statistics (``record_stats_at``), with a
          1-based ``layer`` column.

        The step a row was taken at is the ``step`` column in each. Needs
        ``jaxinit[frames]``; ``to_xarray`` holds every field at once.
        """
        from jaxinit._frames import to_dataframe

        kinds = {"step": ("step",), "eval": ("eval",), "stat_step": ("stat_step", "layer")}
        if along not in kinds:
            raise ValueError(
                f"TrainResult.to_dataframe: along must be one of {list(kinds)}; got {along!r}"
            )
        return to_dataframe(self, along=kinds[along])

    def model(self, **labels: Any) -> MLP:
        """One trained model as an ``nnx.Module`` (a :class:`MLP`) holding its final
        parameters (the ``keep_params`` fields ``kernel_<l>`` and ``bias_<l>``), bitwise.

        ``labels`` pick it as :meth:`sel` does, one label for every dim of this result:
        ``res.model(init="he_normal", seed=0)`` (an init or activation also by any of its
        names, ``"kaiming_normal"``, as :func:`restore_model` takes them). Where this
        result holds one activation, ``activation`` is the grid's, or may be given when a
        selection has dropped that dim. :func:`restore_model` restores a model from a
        run's directory.
        """
        if "kernel_0" not in self.fields:
            raise ValueError(
                "TrainResult.model needs the final parameters: train with "
                "TrainGrid(keep_params=True), or restore a model from the run's directory "
                "with jaxinit.training.restore_model(out, init=..., seed=...)"
            )
        grid = self.attrs["grid"]
        labels = {k: canonical(k, v) for k, v in labels.items()}  # any alias of a spec
        act = labels.pop("activation", None) if "activation" not in self.dims else None
        missing = [d for d in self.dims if d not in labels]
        if missing:
            raise ValueError(
                f"TrainResult.model: give a label for every dim {list(self.dims)}; "
                f"missing {missing}"
            )
        if "activation" in self.dims:
            act = self.coords["activation"][self._index("activation", labels["activation"])]
        elif act is None:
            if len(grid["activation"]) != 1:
                raise ValueError(
                    "TrainResult.model: this result no longer has an activation dim; give "
                    f"activation=, one of {grid['activation']}"
                )
            act = grid["activation"][0]
        elif act not in grid["activation"]:
            raise ValueError(
                f"TrainResult.model: unknown activation {act!r}; valid labels: {grid['activation']}"
            )
        one = self.sel(**labels)
        params = kept_params(one.fields, len(grid["hidden"]))
        return module(act, params, f"this {type(self).__name__}")


def _model_labels(grid: TrainGrid) -> list[list[tuple]]:
    """Each model's labels in ``grid.dims`` order, by (group, model index)."""
    out = []
    for act, width in grid.groups():
        row = []
        for init, lr, seed in grid.group_models():
            named = {
                "init": init.spec,
                "activation": act.spec,
                "width": width,
                "learning_rate": lr,
                "seed": seed,
            }
            row.append(tuple(named[d] for d in grid.dims))
        out.append(row)
    return out


@dataclasses.dataclass(frozen=True)
class _Curves:
    """What a run records, declared here once: each array ``(groups, models, ...)``, NaN
    (``nonfinite``: -1) until recorded, filled in place as the run goes. Their names are
    the result's fields and the checkpoint's arrays."""

    loss: np.ndarray  # (..., step): each step's mini-batch loss, before its update
    test_loss: np.ndarray  # (..., eval): on the evaluation data at grid.eval_steps()
    test_accuracy: np.ndarray  # (..., eval)
    # STAT_FIELDS -> (..., stat_step[, layer]) at grid.record_stats_at; none without it
    stats: Mapping[str, np.ndarray]

    @classmethod
    def empty(cls, grid: TrainGrid, n_groups: int, n_layers: int) -> _Curves:
        """``n_layers``: the MLP's hidden layers, or the outputs a model grid captures."""
        shape = (n_groups, len(grid.group_models()))
        n_eval, n_stats = len(grid.eval_steps()), len(grid.record_stats_at)
        stats = {}
        for k in STAT_FIELDS if n_stats else ():
            per_layer = () if k in STAT_DIMS else (n_layers,)
            like = np.full((*shape, n_stats, *per_layer), np.nan, np.float32)
            stats[k] = np.full_like(like, -1, np.int32) if k == "nonfinite" else like
        return cls(
            loss=np.full((*shape, grid.steps), np.nan, np.float32),
            test_loss=np.full((*shape, n_eval), np.nan, np.float32),
            test_accuracy=np.full((*shape, n_eval), np.nan, np.float32),
            stats=stats,
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by its name."""
        curves = {"loss": self.loss, "test_loss": self.test_loss}
        return {**curves, "test_accuracy": self.test_accuracy, **self.stats}

    def with_arrays(self, arrays: Mapping[str, np.ndarray]) -> _Curves:
        """The curves with the values of ``arrays`` (a checkpoint's), by name, as copies."""
        stats = {k: np.array(arrays[k]) for k in self.stats}
        curves = {k: np.array(arrays[k]) for k in ("loss", "test_loss", "test_accuracy")}
        return _Curves(**curves, stats=stats)

    def field_dims(self) -> dict[str, tuple[str, ...]]:
        """Each array's dims after the models' (the result's field dims)."""
        stats = {k: STAT_DIMS.get(k, ("stat_step", "layer")) for k in self.stats}
        return {"loss": ("step",), "test_loss": ("eval",), "test_accuracy": ("eval",), **stats}


def _records(grid: TrainGrid, curves: _Curves, labels: list, since: int, step: int) -> list:
    """An update's records at ``step`` (:class:`jaxinit.Update`), one per model: its labels by
    dim name, ``step``, its mean loss over steps ``[since, step)``, and what was evaluated or
    recorded at ``step``."""
    evals, stats_at = grid.eval_steps(), grid.record_stats_at
    e = evals.index(step) if step in evals else None
    t = stats_at.index(step) if step in stats_at else None
    out = []
    for a, row in enumerate(labels):
        for m, key in enumerate(row):
            loss = curves.loss[a, m, since:step]
            record = {**dict(zip(grid.dims, key, strict=True)), "step": step}
            record["loss"] = float(np.mean(loss)) if step > since else float("nan")
            if e is not None:
                record["test_loss"] = float(curves.test_loss[a, m, e])
                record["test_accuracy"] = float(curves.test_accuracy[a, m, e])
            if t is not None:
                for k, v in curves.stats.items():
                    record[k] = v[a, m, t].tolist()
            out.append(record)
    return out


def _metrics(dims: tuple[str, ...], records) -> dict[tuple, dict]:
    """The deprecated ``callback(step, metrics)``'s mapping, from an update's records: each
    model's labels, a tuple in ``dims`` order, to its values."""
    return {
        tuple(r[d] for d in dims): {k: v for k, v in r.items() if k not in dims and k != "step"}
        for r in records
    }


LABEL_LIMIT = 2**31  # labels are class indices, held as int32


def _check_data(grid: TrainGrid, data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"train: {name} must be a pair (x, y); got {type(data).__name__}") from None
    x, y = check_real_array(f"train: {name} x", x), np.asarray(y)
    shape = "(n, d)" if grid.model is None else "(n, ...), as the model takes it"
    if x.ndim != 2 and not (grid.model is not None and x.ndim > 2):
        raise ValueError(f"train: {name} needs x {shape} and y (n,); got {x.shape} and {y.shape}")
    if y.shape != x.shape[:1] or len(y) < 1:
        raise ValueError(f"train: {name} needs x {shape} and y (n,); got {x.shape} and {y.shape}")
    if min(x.shape[1:]) < 1:
        want = "(n >= 1, d >= 1)" if grid.model is None else "(n >= 1, ...), no axis of size 0"
        raise ValueError(f"train: {name} x must have shape {want}; got {x.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= LABEL_LIMIT:
        bad = y.min() if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 else y.max()
        raise ValueError(
            f"train: {name} labels must be integers in [0, 2**31) (class indices, held as "
            f"int32); got {y.dtype}, {bad!r}"
        )
    if grid.output == "sigmoid" and y.max() > 1:
        raise ValueError(f"train: output='sigmoid' takes labels 0 and 1; {name} has {y.max()}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"train: {name} inputs have non-finite values (or values beyond float32)")
    return x, y.astype(np.int32)


class _Rows:
    """Mini-batch rows: step ``s`` takes batch ``s mod m`` of epoch ``s // m`` (``m`` whole
    batches per epoch), whose order is ``permutation(fold_in(batch_key, epoch), n)``."""

    def __init__(self, grid: TrainGrid, n: int):
        self.n, self.b, self.per_model = n, grid.batch_size, grid.shuffle == "per_seed"
        self.keys = [grid.batch_key(s) for s in (grid.seeds if self.per_model else (0,))]
        # a group's models are (init, rate, seed) in C order: each seed's rows repeat
        self.repeats = len(grid.group_models()) // len(grid.seeds)
        self.perms = {}  # (key index, epoch) -> permutation

    def __call__(self, start: int, length: int) -> np.ndarray | None:
        """``(length, batch)``, or ``(length, models, batch)`` per seed; None: the full batch."""
        if self.b is None:
            return None
        out = []
        for s in range(start, start + length):
            epoch, pos = divmod(s, self.n // self.b)
            for k, key in enumerate(self.keys):
                if (k, epoch) not in self.perms:
                    self.perms = {e: v for e, v in self.perms.items() if e[1] >= epoch - 1}
                    perm = jax.random.permutation(jax.random.fold_in(key, epoch), self.n)
                    self.perms[k, epoch] = np.asarray(perm, np.int32)
            rows = np.stack(
                [
                    self.perms[k, epoch][pos * self.b : (pos + 1) * self.b]
                    for k in range(len(self.keys))
                ]
            )
            out.append(np.tile(rows, (self.repeats, 1)) if self.per_model else rows[0])
        return np.stack(out)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.shape} {a.dtype.str}".encode())
        h.update(memoryview(np.ascontiguousarray(a)).cast("B"))  # the bytes, not a copy
    return h.hexdigest()


def _padded(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` zero-padded to whole chunks of ``size``, as ``(chunks, size, ...)``."""
    pad = np.zeros((-len(a) % size, *a.shape[1:]), a.dtype)
    return np.concatenate([a, pad]).reshape(-1, size, *a.shape[1:])


def _place(tree: Any, size: int, mesh: Mesh) -> Any:
    """Stacked models padded to ``size`` (copies of the last model) and split over ``mesh``."""

    def one(a):
        a = np.asarray(a)
        return np.concatenate([a, np.repeat(a[-1:], size - len(a), axis=0)])

    return _split(jax.tree.map(one, tree), mesh)


def _split(tree: Any, mesh: Mesh) -> Any:
    """``tree``'s leaves with the sharding ``P(MODELS)`` over ``mesh``: a no-op copy-wise for
    a program's outputs, but on one device they may come back labeled ``P()``, and a label
    that changes between calls would compile the program again."""
    return jax.device_put(tree, NamedSharding(mesh, P(MODELS)))


class _Group(NamedTuple):
    """One compiled program's models, padded to a multiple of the devices and split over
    them: ``params`` and ``opt_state`` are stacked ``(models, ...)`` in (init,
    learning_rate, seed) C order."""

    prog: Program
    params: Any
    opt_state: Any


class _Run(NamedTuple):
    """What every phase of a run reads: the mesh, the model counts, the data on the devices."""

    grid: TrainGrid
    mesh: Mesh
    n_models: int  # models per group
    size: int  # models per group, padded to a multiple of the devices
    x: jax.Array  # (n, d_in), on every device
    y: jax.Array  # (n,)
    evals: tuple  # evaluation inputs, labels and weights, (chunks, eval_rows, ...)
    rows: _Rows

    def pad_rows(self, r: np.ndarray | None, axis: int) -> np.ndarray | None:
        """Per-model mini-batch rows padded like the models (copies of the last)."""
        if r is None or self.grid.shuffle != "per_seed":
            return r
        return np.concatenate(
            [r, np.repeat(r.take([-1], axis), self.size - self.n_models, axis)], axis
        )


def _nbytes(tree) -> int:
    return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(tree))


class TrainingBytes(NamedTuple):
    """Device memory of a training run on one device: per model, and for the data."""

    per_model: int
    data: int
    shared: int = 0  # activations of models trained one at a time (a model grid on CPU)

    def total(self, models: int) -> int:
        return models * self.per_model + self.shared + self.data


def eval_rows(grid: TrainGrid, n_eval: int) -> int:
    """Evaluation examples per forward pass: :data:`EVAL_BATCH`, or all of them when fewer.
    A model grid's are also at most twice a mini-batch, so that evaluating never needs
    more memory than a training step (a mini-batch's values and cotangents): a model's
    every intermediate can be large (a 512-wide Transformer of 2 blocks on MNIST's rows
    counts about 7 GiB of them on 1000 examples; its training step on a mini-batch of 64,
    values and cotangents, 0.9 GiB)."""
    rows = min(EVAL_BATCH, n_eval)
    if grid.model is not None and grid.batch_size:
        rows = min(rows, 2 * grid.batch_size)
    return max(1, rows)


def training_bytes(
    grid: TrainGrid,
    d_in: int,
    d_out: int,
    n_data: int,
    *,
    n_eval: int | None = None,
    example: tuple[int, ...] | None = None,
    one_at_a_time: bool = False,
) -> TrainingBytes:
    """Device memory that :func:`train` needs on one device, per model and for the data.

    Per model, for the largest group: the parameters, their gradients and the new
    parameters (3×), the optimizer's state (its exact size, from
    ``jax.eval_shape`` of ``tx.init``), and a step's activations and their
    cotangents on a mini-batch (or on an evaluation chunk of :func:`eval_rows` of the
    ``n_eval`` evaluation examples, default ``n_data``, whichever is larger); the data
    (``n_data`` examples in all) are copied to each device. Nothing is drawn to find it. With ``grid.model``
    (whose examples have shape ``example``, default ``(d_in,)``) the activations are every
    intermediate value of its forward pass, twice (values and cotangents) on a mini-batch,
    once on an evaluation chunk (no backward pass), whichever is larger; with
    ``one_at_a_time`` (a model grid on CPU: each call trains or evaluates one model) they
    are needed once per device (``shared``), not once per model.
    """
    example = (d_in,) if example is None else tuple(example)
    n_eval = n_data if n_eval is None else n_eval
    if grid.model is not None:
        worst = shared = 0
        for width in dim_values(grid.width):

            def build(width=width):
                return grid.build(d_in, d_out, init=grid.inits[0], seed=grid.seeds[0], width=width)

            params = nnx.state(nnx.eval_shape(build), nnx.Param)
            opt = jax.eval_shape(grid.tx(width).tx.init, params)

            def acts(rows, build=build):  # every intermediate of a forward pass on ``rows``
                x = jax.ShapeDtypeStruct((rows, *example), np.float32)
                jaxpr = jax.make_jaxpr(lambda x: build()(x))(x)
                return sum(
                    math.prod(v.aval.shape) * getattr(v.aval.dtype, "itemsize", 4)
                    for eqn in jaxpr.eqns
                    for v in eqn.outvars
                    if hasattr(v.aval, "shape")
                )

            step = max(2 * acts(grid.batch_size or n_data), acts(eval_rows(grid, n_eval)))
            state = 3 * _nbytes(params) + _nbytes(opt)
            worst = max(worst, state + (0 if one_at_a_time else step))
            shared = max(shared, step if one_at_a_time else 0)
        return TrainingBytes(worst, 8 * n_data * (math.prod(example) + 1), shared)
    worst = 0
    init = grid.inits[0]
    for act, width in grid.groups():
        model = nnx.eval_shape(
            lambda act=act, width=width: grid.build(
                d_in, d_out, init=init, seed=grid.seeds[0], activation=act, width=width
            )
        )
        params = nnx.state(model, nnx.Param)
        opt = jax.eval_shape(grid.tx(width).tx.init, params)
        rows = max(grid.batch_size or n_data, eval_rows(grid, n_eval))
        acts = 4 * rows * (d_in + 4 * sum(grid.hidden_at(width)) + 2 * d_out)
        worst = max(worst, 3 * _nbytes(params) + _nbytes(opt) + acts)
    return TrainingBytes(worst, 8 * n_data * (d_in + 1))


def _check_memory(
    grid: TrainGrid, example: tuple, d_out: int, n_data: int, n_eval: int, devices, size: int
):
    """Refuses, before anything is drawn or compiled, a run that cannot fit on its devices."""
    per_device = size // len(devices)
    one = grid.model is not None and devices[0].platform == "cpu"  # as Program.map_models
    sizes = training_bytes(
        grid, example[0], d_out, n_data, n_eval=n_eval, example=example, one_at_a_time=one
    )
    need, memory = sizes.total(per_device), devices_memory(devices)
    usable = MEMORY_HEADROOM * memory
    if need > usable:
        fit = max(0, int((usable - sizes.data - sizes.shared) // sizes.per_model))
        raise ValueError(
            f"train: {per_device} models per device need about {need / 2**30:.2f} GiB "
            f"(parameters, gradients, optimizer state and activations), over "
            f"{MEMORY_HEADROOM:.0%} of the {memory / 2**30:.2f} GiB of "
            f"{devices[0].platform} device {devices[0].id}; about {fit} fit per device: train "
            "fewer seeds or inits at a time (TrainGrid(seeds=[...])), or on more devices"
        )


VMAP_SEEDS = 256  # from this many seeds, an init's models are built in vmapped blocks
BUILD_BYTES = 2**28  # the parameters one vmapped block of seeds makes at most


_QR = (Orthogonal, DeltaOrthogonal, Lsuv)  # the draws that take a QR


def _per_matrix_qr() -> bool:
    """Whether a batched QR is the single one per matrix: on CPU, LAPACK's geqrf called for
    each; an accelerator's batched solver may take another algorithm (and round otherwise)."""
    return jax.default_backend() == "cpu"


def built_models(
    grid: TrainGrid, d_in: int, d_out: int, activation: Any, width: int | None
) -> tuple[nnx.GraphDef, Any]:
    """The graph and the stacked parameters ``(models, ...)`` (NumPy) of one group's models,
    in ``grid.group_models()`` order, as :meth:`TrainGrid.build` builds each.

    The learning rates of an ``(init, seed)`` share its draw. With ``VMAP_SEEDS`` seeds or
    more, an MLP grid whose initializers are all jaxinit's own builds an init's seeds by
    ``jax.vmap`` over the seed, run eagerly: op for op the draws of a model built alone, on
    the same keys, with a leading seed axis (elementwise ops, a sort per fibre for sparse,
    a QR per matrix for orthogonal), so the same bits. On an accelerator, whose batched QR
    may take another algorithm than its single one, a grid with an orthogonal draw (or
    LSUV's) is built one at a time. A user's initializer (``Custom``)
    or a model grid's factory may reduce over an axis (a column norm), which a leading axis
    rounds differently, so those are built one at a time, as are keys other than threefry
    (jax's ``rbg`` draws other bits under ``vmap``) and fewer seeds: the batched
    programs cost more to compile than building a few models saves
    (``benchmarks/train_build.py``: 1024 MNIST MLPs 6.5 s against 13.1 s on a first call,
    2.4 s against 11.6 s warm; 64 of them 3.4 s against 2.0 s on a first call). The seeds go
    in blocks of a power of two of at most ``BUILD_BYTES`` of parameters, the last one
    padded with its last seed (its extra models dropped at once), so that a block's programs
    serve every number of seeds up to it.
    """

    def build(init, seed):
        return grid.build(d_in, d_out, init=init, seed=seed, activation=activation, width=width)

    vmapped = (
        len(grid.seeds) >= VMAP_SEEDS
        and grid.model is None
        and prng_impl() == "threefry2x32"  # jax's rbg draws other bits under vmap
        and not any(
            isinstance(i.base, Custom) or (isinstance(i.base, _QR) and not _per_matrix_qr())
            for i in (*grid.inits, grid.bias_inits, grid.output_init)
            if i is not None
        )
    )
    if not vmapped:
        per_init = []  # each init's models, one block of one model each
        for init in grid.inits:
            split = [nnx.split(build(init, seed)) for seed in grid.seeds]
            per_init.append([jax.tree.map(lambda a: np.asarray(a)[None], p) for _, p in split])
        graphdef = split[0][0]  # the group's graph: every model's
    else:
        graphdef, first = nnx.split(build(grid.inits[0], grid.seeds[0]))  # the group's graph
        per_init = [_vmapped_blocks(build, init, grid.seeds, first) for init in grid.inits]
    rates = len(dim_values(grid.learning_rate))
    # one copy into the stack: (init, learning_rate, seed) order, each init's blocks per rate
    blocks = [b for init_blocks in per_init for _ in range(rates) for b in init_blocks]
    return graphdef, jax.tree.map(lambda *a: np.concatenate(a), *blocks)


def _vmapped_blocks(build: Callable, init: Any, seeds: Sequence[int], first: Any) -> list:
    """``build(init, seed)``'s parameters for every seed, in stacked blocks (NumPy):
    ``jax.vmap`` over the seeds in blocks of a power of two of at most ``BUILD_BYTES``
    (``first``: one model's state, for its size), the last block padded with its last seed
    and the padding dropped at once."""
    seeds = np.asarray(seeds, np.int32)
    n = len(seeds)
    per_model = sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(first))
    fits = max(1, BUILD_BYTES // max(1, per_model))
    block = min(1 << (n - 1).bit_length(), 1 << (fits.bit_length() - 1))
    padded = np.concatenate([seeds, np.repeat(seeds[-1:], -n % block)])
    states = jax.vmap(lambda seed: nnx.state(build(init, seed)))

    def kept(a, keep: int):  # a padded block's models as a copy: its padding freed at once
        a = np.asarray(a)
        return a if keep >= len(a) else a[:keep].copy()

    return [
        jax.tree.map(lambda a, i=i: kept(a, n - i), states(padded[i : i + block]))
        for i in range(0, len(padded), block)
    ]


def _groups(grid: TrainGrid, d_in: int, d_out: int, mesh: Mesh, size: int) -> list[_Group]:
    """Every group's models as initialized (:func:`built_models`)."""
    groups = []
    for act, width in grid.groups():
        models = grid.group_models()
        graphdef, stacked = built_models(grid, d_in, d_out, act, width)
        params = _place(stacked, size, mesh)
        prog = Program(
            graphdef,
            act,
            grid.output,
            grid.shuffle == "per_seed",
            grid.tx(width),
            min(SCAN_STEPS, grid.steps),
            map_models=grid.model is not None and mesh.devices.flat[0].platform == "cpu",
        )
        lrs = None
        if prog.tx.with_lr is not None:
            lrs = _place(np.array([lr for _, lr, _ in models], np.float32), size, mesh)
        groups.append(_Group(prog, params, _split(init_opt(prog, mesh, params, lrs), mesh)))
    return groups


def _layers(run: _Run, group: _Group) -> list[tuple[str, str]]:
    """``(label, type)`` of each layer the statistics record: the MLP's hidden layers, or
    every output a model grid captures (traced abstractly on one mini-batch)."""
    grid = run.grid
    if grid.model is None:
        return [(f"layer_{l}", "Linear") for l in range(1, len(grid.hidden) + 1)]
    if not grid.record_stats_at:
        return []
    one = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), group.params)
    rows = grid.batch_size or run.x.shape[0]
    return model_layers(
        group.prog.graphdef, one, jax.ShapeDtypeStruct((rows, *run.x.shape[1:]), run.x.dtype)
    )


def _record(run: _Run, groups: list[_Group], curves: _Curves, step: int) -> None:
    """The evaluations and statistics due at ``step``, into ``curves``."""
    evals, stats_at, n = run.grid.eval_steps(), run.grid.record_stats_at, run.n_models
    for a, g in enumerate(groups):
        if step in evals:
            lean = g.prog._replace(per_model=False, tx=None, length=0)
            loss, acc = evaluate(lean, run.mesh, g.params, *run.evals)
            curves.test_loss[a, :, evals.index(step)] = np.asarray(loss)[:n]
            curves.test_accuracy[a, :, evals.index(step)] = np.asarray(acc)[:n]
        if step in stats_at:
            r = run.rows(step, 1)
            r = run.pad_rows(r if r is None else r[0], 0)
            measure = batch_stats if run.grid.model is None else model_batch_stats
            stats = measure(g.prog._replace(tx=None, length=0), run.mesh, g.params, run.x, run.y, r)
            for k, v in stats.items():
                curves.stats[k][a, :, stats_at.index(step)] = np.asarray(v)[:n]


def _advance(
    run: _Run, groups: list[_Group], curves: _Curves, step: int, stop: int
) -> list[_Group]:
    """Trains every group from ``step`` to ``stop`` in calls of a fixed number of steps (the
    last one partly masked); the host copies a call's losses while the next one runs."""
    if groups[0].prog.map_models:
        return _advance_one_by_one(run, groups, curves, step, stop)
    pending, length = [], groups[0].prog.length
    while step < stop:
        k = min(length, stop - step)
        r = run.pad_rows(run.rows(step, length), 1)
        for a, g in enumerate(groups):
            params, opt, losses = train_chunk(
                g.prog, run.mesh, g.params, g.opt_state, run.x, run.y, r, np.int32(k)
            )
            groups[a] = g._replace(
                **dict(zip(("params", "opt_state"), _split((params, opt), run.mesh), strict=True))
            )
            pending.append((a, step, k, losses))
        for a, s, kk, losses in pending[: -len(groups)]:
            curves.loss[a, :, s : s + kk] = np.asarray(losses)[: run.n_models, :kk]
        del pending[: -len(groups)]
        step += k
    for a, s, kk, losses in pending:
        curves.loss[a, :, s : s + kk] = np.asarray(losses)[: run.n_models, :kk]
    return groups


def _advance_one_by_one(
    run: _Run, groups: list[_Group], curves: _Curves, step: int, stop: int
) -> list[_Group]:
    """:func:`_advance` for ``Program.map_models``: every step of every model is a call of
    its own (:func:`train_one`); the models are taken out of the stack once, trained, and
    stacked again (padded as before) for evaluations and checkpoints."""
    n = run.n_models
    for a, g in enumerate(groups):
        stack = jax.tree.map(np.asarray, (g.params, g.opt_state))
        models = [jax.tree.map(lambda v, i=i: jax.numpy.asarray(v[i]), stack) for i in range(n)]
        s0 = step
        while s0 < stop:
            k = min(SCAN_STEPS, stop - s0)
            rows = run.rows(s0, k)
            losses = []
            for s in range(k):
                for i in range(n):
                    r = None if rows is None else rows[s, i] if rows.ndim == 3 else rows[s]
                    p, o, loss = train_one(g.prog, *models[i], run.x, run.y, r)
                    models[i] = (p, o)
                    losses.append(loss)
            curves.loss[a, :, s0 : s0 + k] = np.asarray(losses).reshape(k, n).T
            s0 += k
        params, opt = jax.tree.map(lambda *v: np.stack(v), *models)
        groups[a] = g._replace(
            params=_place(params, run.size, run.mesh), opt_state=_place(opt, run.size, run.mesh)
        )
    return groups


def _named_state(groups: list[_Group]) -> dict[str, Any]:
    """Every group's parameters and optimizer state (stacked, padded), by their names in a
    checkpoint: ``group/<a>/params/<path>`` and ``group/<a>/opt_state/<path>``."""
    return {
        name: leaf
        for a, g in enumerate(groups)
        for part in PARTS
        for name, leaf in named(group_prefix(a, part), getattr(g, part)).items()
    }


def _state(groups: list[_Group], n_models: int) -> dict[str, np.ndarray]:
    """The checkpoint's arrays of every group's state (:func:`_named_state`), without the
    padding."""
    return {k: np.asarray(v)[:n_models] for k, v in _named_state(groups).items()}


def _checkpoint(step: int, curves: _Curves, groups: list[_Group], n_models: int) -> dict:
    """The arrays of a checkpoint at ``step``: ``step``, the curves, :func:`_state`."""
    return {"step": np.int64(step), **curves.arrays(), **_state(groups, n_models)}


def _checkpoint_layout(groups: list[_Group], curves: _Curves, n_models: int) -> dict:
    """The arrays of a checkpoint (:func:`_checkpoint`): name -> (shape, dtype), without the
    padding."""
    layout = {"step": ((), np.dtype(np.int64))}
    layout.update({k: (v.shape, v.dtype) for k, v in curves.arrays().items()})
    for k, leaf in _named_state(groups).items():
        layout[k] = ((n_models, *leaf.shape[1:]), np.dtype(leaf.dtype))
    return layout


def _restored(groups: list[_Group], saved: dict, size: int, mesh: Mesh) -> list[_Group]:
    """The groups with the parameters and optimizer state of a checkpoint (:func:`_state`)."""
    return [
        g._replace(
            **{
                part: _place(unnamed(group_prefix(a, part), getattr(g, part), saved), size, mesh)
                for part in PARTS
            }
        )
        for a, g in enumerate(groups)
    ]


def _kept_params(groups: list[_Group], n_models: int) -> dict[str, np.ndarray]:
    """``kernel_l`` and ``bias_l`` ``(group, models, ...)`` of every layer, output last."""
    fields = {}
    for a, g in enumerate(groups):
        params = jax.tree.map(lambda v: np.asarray(v)[:n_models], g.params)
        model = nnx.merge(g.prog.graphdef, params)  # stacked: every array has a model axis
        for l, layer in enumerate([*model.layers, model.out]):
            for name in ("kernel", "bias"):
                v = np.asarray(getattr(layer, name)[...])
                fields.setdefault(f"{name}_{l}", np.empty((len(groups), *v.shape), v.dtype))[a] = v
    return fields


def train(
    grid: TrainGrid,
    data: tuple[Any, Any],
    eval_data: tuple[Any, Any] | None = None,
    *,
    out: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    progress: bool | None = None,
    on_update: Callable[[Update], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
    process_timeout: float = _distributed.DEFAULT_PROCESS_TIMEOUT,
    callback: Callable[[int, dict], None] | None = None,
    dataset: str | None = None,
) -> TrainResult:
    """Trains every model of ``grid`` on ``data = (x, y)``, all at once.

    Args:
      grid: the models and the training configuration.
      data: inputs ``(n, d)`` (cast to float32) and integer labels ``(n,)``.
      eval_data: ``(x, y)`` evaluated at ``grid.eval_steps()``; None: ``data``.
      out: a directory for checkpoints and the final result (``out/result``).
        Calling ``train`` again with the same grid and data resumes from the
        last checkpoint, and the result is bitwise the same as an
        uninterrupted run's on the same devices; another grid or data raises
        a ValueError.
      checkpoint_every: steps between checkpoints (needs ``out``); None: at the end only.
      progress: show a progress bar; None shows one only when someone watches (a
        terminal or a notebook), as :func:`jaxinit.sweep`'s. A function ``(step,
        steps)`` is deprecated (a DeprecationWarning): use ``on_update``.
      on_update: called with a :class:`jaxinit.Update` at every logging step, as
        :func:`jaxinit.sweep` calls it after each chunk: each evaluation step,
        statistics step and checkpoint, and the end (the steps where the host
        syncs anyway, so the compiled loop is not slowed), and step 0 before
        training. ``kind="train"``, ``done`` steps of ``total`` (``grid.steps``),
        and ``records``, one per model: its labels by dim name (``grid.dims``),
        ``step``, ``loss`` (the mean training loss of the steps since the
        previous update; NaN at step 0), ``test_loss`` and ``test_accuracy``
        where evaluated at ``step``, and the per-layer statistics (lists, layer 1
        first) where recorded at ``step``. It runs after the step's checkpoint:
        if it raises, the run stops with its error, and the same call resumes
        from that checkpoint. :func:`jaxinit.jsonl_writer` makes one that
        appends to a JSON-lines file.
      devices: devices to split the models over (``shard_map`` over a model
        axis; the data are copied to each); None: all local devices. The
        stack is padded to a multiple of their number with copies of the last
        model, whose results are dropped. A model's numbers do not depend on
        the number of devices or on the other models beyond the last bits.
        With several processes (``jax.distributed``) and ``devices=None``, each
        process trains a block of the seeds on its own devices, checkpointed
        in ``out`` (required, a directory every process sees), and every
        process returns the whole result, equal to the one-process result
        within the last bits (``attrs["processes"]``; ``attrs["computed_by"]``
        maps each block, ``seeds-<first>-<last>``, to its process; process 0
        writes ``out/result``; :mod:`jaxinit.training._processes`). Given
        ``devices`` (this process's), the process trains the whole grid alone.
      process_timeout: with several processes, the seconds a process waiting
        for another's block allows it to show no sign of life before raising
        a RuntimeError naming it (as :func:`jaxinit.sweep`'s).
      dataset: what the data are, for the record (name, split, preprocessing: ``"MNIST
        train, pixels / 255"``); ``attrs["dataset"]`` keeps it beside the sizes and
        sha256 digests of ``data`` and ``eval_data`` (recorded either way), and the
        report shows it.
      callback: deprecated (a DeprecationWarning): ``callback(step, metrics)``,
        ``metrics`` mapping each model's labels, a tuple in ``grid.dims`` order,
        to its record's values; use ``on_update`` (``update.records``).

    Multi-core CPUs: XLA:CPU runs the batched matmuls of the vmapped step on
    one thread per device, and a CPU process has a single device unless
    ``JAX_NUM_CPU_DEVICES`` is set before JAX starts (jaxinit never sets it).
    For one device per core::

        JAX_NUM_CPU_DEVICES=$(nproc) python my_script.py
        # or, in Python before the first JAX computation:
        # jax.config.update("jax_num_cpu_devices", os.cpu_count())

    (``benchmarks/README.md`` has the figures). The data are copied to each device: the memory for ``x`` grows
    with the device count.

    Returns:
      A TrainResult with dims (init, [activation,] seed) and fields ``loss``
      ``(..., step)`` (each step's mini-batch loss, before its update),
      ``test_loss`` and ``test_accuracy`` ``(..., eval)`` on ``eval_data`` (on
      ``data`` when it is None; ``attrs["eval_on"]`` says which), and with
      ``grid.record_stats_at`` the per-layer pre_mean, pre_var, post_mean,
      post_var, saturated, dead, nonfinite (as the sweep's kernel computes
      them), grad_var (Var ∂L/∂z_l of the mean loss) and weight_grad_norm
      (‖∂L/∂W_l‖_F), each ``(..., stat_step, layer)``.
    """
    progress, on_update = _hooks(grid, progress, on_update, callback)
    out = check_path("train: out", out, none=True)
    if devices is None and jax.process_count() > 1:  # each process trains a block of the seeds
        return train_across(
            train,
            TrainResult,
            grid,
            data,
            eval_data,
            out=out,
            process_timeout=process_timeout,
            checkpoint_every=checkpoint_every,
            progress=progress,
            on_update=on_update,
            dataset=dataset,
        )
    if dataset is not None and not isinstance(dataset, str):
        raise TypeError(f"train: dataset must be a description (a string); got {dataset!r}")
    if dataset is not None and not dataset.strip():
        raise ValueError(
            f"train: dataset is an empty description ({dataset!r}); say what the "
            "data are, or leave it out"
        )
    x, y, xe, ye = _checked_data(grid, data, eval_data)
    record = _dataset_record(dataset, (x, y), None if eval_data is None else (xe, ye))
    if check_int("train: checkpoint_every", checkpoint_every, low=1, none=True) and out is None:
        raise ValueError("train: checkpoint_every needs a directory, out=...")
    run, d_out = _prepare(grid, x, y, xe, ye, devices)
    groups = _groups(grid, x.shape[1], d_out, run.mesh, run.size)
    layers = _layers(run, groups[0])
    curves = _Curves.empty(grid, len(groups), len(layers))
    store = _open_store(out, grid, record)
    # from here on the store is closed (its lock released) whatever happens
    with store if store is not None else contextlib.nullcontext():
        curves, groups, step = _resume(store, run, groups, curves)
        with Reporter("train", grid.steps, progress, on_update) as report:
            groups = _loop(run, groups, curves, store, step, checkpoint_every, report)
        kept = _kept_params(groups, run.n_models) if grid.keep_params else {}
        result = _assemble(grid, curves, kept, d_out, record, layers)
        if store is not None:
            store.save_result(result, "the training result")
    return result


def _hooks(
    grid: TrainGrid, progress, on_update, callback
) -> tuple[bool | None, Callable[[Update], None] | None]:
    """The bar's setting and one ``on_update`` hook, with the deprecated ``callback`` and a
    function given as ``progress`` folded in (such a function replaces the bar, as it did)."""
    check_hook("train", "on_update", on_update, "(update)")
    ticks = None
    if callable(progress):
        ticks, progress = progress, False
    check_bool("train: progress", progress, none=True)

    def each_step(hook):  # not at step 0, where no step has run (as it was called)
        return lambda u: hook(u.done, u.total) if u.done else None

    old = deprecated_hook(
        "train",
        "callback",
        callback,
        "(step, metrics)",
        lambda hook: lambda u: hook(u.done, _metrics(grid.dims, u.records)),
    )
    ticking = deprecated_hook("train", "progress", ticks, "(step, steps)", each_step)
    return progress, chain(old, ticking, on_update)


def _checked_data(grid: TrainGrid, data, eval_data) -> tuple[np.ndarray, ...]:
    """``x, y, x_eval, y_eval``, checked (the evaluation data are ``data`` when None)."""
    x, y = _check_data(grid, data, "data")
    xe, ye = (x, y) if eval_data is None else _check_data(grid, eval_data, "eval_data")
    if xe.shape[1:] != x.shape[1:]:
        if x.ndim == xe.ndim == 2:
            raise ValueError(f"train: eval_data has {xe.shape[1]} features, data {x.shape[1]}")
        raise ValueError(
            f"train: eval_data has examples of shape {xe.shape[1:]}, data {x.shape[1:]}"
        )
    if grid.batch_size is not None and grid.batch_size > len(x):
        raise ValueError(
            f"train: batch_size={grid.batch_size} exceeds the {len(x)} training examples"
        )
    return x, y, xe, ye


def _prepare(grid: TrainGrid, x, y, xe, ye, devices) -> tuple[_Run, int]:
    """The run on ``devices`` (the data on each) and the output width; refuses, before
    anything is drawn or compiled, a run that does not fit on its devices."""
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(f"train: devices must be a non-empty list of jax devices; got {devices!r}")
    mesh, n_models = Mesh(np.array(devices), (MODELS,)), len(grid.group_models())
    size = -(-n_models // len(devices)) * len(devices)  # models per group, padded
    d_out = 1 if grid.output == "sigmoid" else int(max(y.max(), ye.max())) + 1
    if grid.model is not None:
        d_out = _check_model(grid, x.shape[1:], d_out)
    _check_memory(grid, x.shape[1:], d_out, len(x) + len(xe), len(xe), devices, size)
    everywhere, chunk = NamedSharding(mesh, P()), eval_rows(grid, len(xe))
    evals = (_padded(xe, chunk), _padded(ye, chunk), _padded(np.ones(len(xe), np.float32), chunk))
    run = _Run(
        grid,
        mesh,
        n_models,
        size,
        *jax.device_put((x, y), everywhere),
        jax.device_put(evals, everywhere),
        _Rows(grid, len(x)),
    )
    return run, d_out


def _check_model(grid: TrainGrid, example: tuple[int, ...], classes: int) -> int:
    """The output width of ``grid.model`` (built abstractly, nothing drawn), after refusing
    a model with state besides ``nnx.Param`` or whose logits cannot score the labels."""

    def build():
        return grid.build(0, 0, init=grid.inits[0], seed=grid.seeds[0], width=width)

    width = dim_values(grid.width)[-1]

    state = nnx.state(nnx.eval_shape(build))
    other = sorted(
        {"/".join(map(str, p)) for p, v in nnx.to_flat_state(state) if not isinstance(v, nnx.Param)}
    )
    if other:
        raise ValueError(
            f"train: the model holds state that is not an nnx.Param at {other[:5]} (batch "
            "statistics, dropout keys, ...); train() trains models whose state is all "
            "parameters (a LayerNorm instead of a BatchNorm, no Dropout)"
        )
    x = jax.ShapeDtypeStruct((2, *example), np.float32)
    try:
        y = jax.eval_shape(lambda x: build()(x), x)
    except Exception as e:
        raise ValueError(
            f"train: the model does not run on examples of shape {example} (the data's x "
            f"after its first axis): {type(e).__name__}: {e}"
        ) from e
    if not hasattr(y, "shape") or len(y.shape) != 2 or y.shape[0] != 2:
        raise ValueError(
            f"train: the model must return logits (batch, classes); on a batch of 2 examples "
            f"of shape {example} it returns {jax.tree.map(lambda a: a.shape, y)}"
        )
    need = (
        "1 (sigmoid)"
        if grid.output == "sigmoid"
        else f"at least {classes} (labels 0..{classes - 1})"
    )
    if (grid.output == "sigmoid" and y.shape[1] != 1) or y.shape[1] < classes:
        raise ValueError(f"train: the model returns {y.shape[1]} logits per example; needs {need}")
    return int(y.shape[1])


def _dataset_record(description: str | None, data: tuple, eval_data: tuple | None) -> dict:
    """``attrs["dataset"]``: the user's description, and per set its size and sha256 digest
    (None for ``eval_data`` when the training data are evaluated)."""

    def entry(x, y):
        features = int(x.shape[1]) if x.ndim == 2 else list(x.shape[1:])  # a model's (n, ...)
        return {"examples": int(x.shape[0]), "features": features, "sha256": _digest(x, y)}

    return {
        "description": description,
        "data": entry(*data),
        "eval_data": None if eval_data is None else entry(*eval_data),
    }


def _open_store(out, grid: TrainGrid, record: dict) -> Store | None:
    """The run's checkpoint store in ``out`` (None without one): its fingerprint covers the
    grid and digests of the data (not their description: a renamed dataset resumes)."""
    if out is None:
        return None
    eval_data = record["eval_data"]
    spec = {
        "grid": grid.describe(),
        "data": record["data"]["sha256"],
        "eval_data": None if eval_data is None else eval_data["sha256"],
    }
    with naming_the_path(out, "the training checkpoint"):
        return Store(out, kind="train", schema=CHECKPOINT_SCHEMA, spec=spec)


def _resume(store: Store | None, run: _Run, groups: list[_Group], curves: _Curves):
    """``(curves, groups, step)`` of the store's checkpoint; those given at step 0 without one."""
    saved = None
    if store is not None:
        saved = store.load_checkpoint(_checkpoint_layout(groups, curves, run.n_models))
    if saved is None:
        return curves, groups, 0
    step = int(saved["step"])
    if not 1 <= step <= run.grid.steps:
        store.refuse_checkpoint(
            f"is at step {step}; a checkpoint of this run is at a step from 1 to {run.grid.steps}"
        )
    # the checkpoint holds the models without padding
    return curves.with_arrays(saved), _restored(groups, saved, run.size, run.mesh), step


def _loop(run: _Run, groups, curves: _Curves, store, step: int, every, report) -> list[_Group]:
    """Trains from ``step`` to the end, syncing at each evaluation, statistics step and
    checkpoint (every ``every`` steps, None: at the end only), where it records, saves a
    checkpoint into ``store`` when one is due, and reports; step 0 reports the models as
    initialized (no loss yet: NaN)."""
    grid, steps = run.grid, run.grid.steps
    labels, every = _model_labels(grid), every or steps
    sync = {*grid.eval_steps(), *grid.record_stats_at, steps, *range(every, steps, every)}
    report.show(step)
    if step == 0:
        _record(run, groups, curves, 0)
        report(0, functools.partial(_records, grid, curves, labels, 0, 0))
    last = step  # the previous logging step
    while step < steps:
        stop = min(s for s in sync if s > step)
        groups, step = _advance(run, groups, curves, step, stop), stop
        _record(run, groups, curves, step)
        if store is not None and (step == steps or step % every == 0):
            with naming_the_path(store.root, "the training checkpoint"):
                store.save_checkpoint(_checkpoint(step, curves, groups, run.n_models))
        report(step, functools.partial(_records, grid, curves, labels, last, step))
        last = step
    return groups


def _assemble(
    grid: TrainGrid, curves: _Curves, kept: dict, d_out: int, record: dict, layers: list
) -> TrainResult:
    """The result: the curves and kept parameters ``(group, model, ...)`` laid out ``(init,
    [activation,] [width,] [learning_rate,] seed, ...)``."""
    n_a, n_w = len(dim_values(grid.activations)), len(dim_values(grid.width))
    n_i, n_l, n_s = len(grid.inits), len(dim_values(grid.learning_rate)), len(grid.seeds)
    own = curves.field_dims()
    own.update(
        {k: ("fan_in", "fan_out") if k.startswith("kernel_") else ("fan_out",) for k in kept}
    )
    arrays = {}
    absent = ("activation", "width", "learning_rate")
    drop = tuple(1 + a for a, d in enumerate(absent) if d not in grid.dims)
    for k, v in {**curves.arrays(), **kept}.items():
        v = np.moveaxis(v.reshape(n_a, n_w, n_i, n_l, n_s, *v.shape[2:]), 2, 0)
        arrays[k] = v.reshape(tuple(n for a, n in enumerate(v.shape) if a not in drop))
    attrs = {
        "grid": grid.describe(),
        "eval_steps": list(grid.eval_steps()),
        "d_out": d_out,
        "stats_steps": list(grid.record_stats_at),
        **(
            {"layers": [n for n, _ in layers], "layer_types": [t for _, t in layers]}
            if grid.model is not None and grid.record_stats_at
            else {}
        ),
        "prng_impl": prng_impl(),
        "eval_on": "data" if record["eval_data"] is None else "eval_data",
        "dataset": record,
    }
    return TrainResult(
        dims=grid.dims,
        coords=grid.coords(),
        fields=arrays,
        field_dims=own,
        aliases=grid.aliases,
        attrs=attrs,
    )
