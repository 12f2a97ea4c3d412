r"""Training many MLPs at once: Flax NNX models stacked and vmapped, Optax state per model.

The classic experiment trains a 5-layer, 100-unit ReLU MLP on MNIST from
``normal(stddev=0.01)``, Glorot and He initializations (the first never learns,
He learns fastest), and a [2, 10, 5, 1] ReLU net with a sigmoid output on two
circles from zeros, ``normal(stddev=10)`` and He (zeros never breaks the
symmetry between hidden units)::

    from jaxinit.data import load_mnist
    from jaxinit.train import TrainGrid, train

    grid = TrainGrid(inits=["normal(stddev=0.01)", "glorot_normal", "he_normal"], seeds=10,
                     steps=2000, eval_every=100)  # 4 × 100 ReLU, SGD 0.01, batches of 128
    res = train(grid, load_mnist("train"), load_mnist("test"), out="runs/mnist")
    res.sel(init="he_normal").loss                  # (seed, step)
    res.sel(init="he_normal").test_accuracy         # (seed, eval); the steps: res.eval_steps

Every model minimizes the mean loss of its mini-batch :math:`B_t` with its own
optimizer state, :math:`\theta_{t+1} = \theta_t + \mathrm{tx}(\nabla_\theta
\tfrac{1}{|B_t|}\sum_{i \in B_t} \ell(f_\theta(x_i), y_i))`, where :math:`\ell`
is the softmax cross-entropy, or the binary cross-entropy of one sigmoid unit.

How it runs. The models of one activation share a Flax graph; their parameters
(drawn eagerly, one model at a time) are stacked along a leading axis, and one
``jax.jit`` program scans a fixed number of steps, each a ``vmap`` over models
of a functional ``nnx.merge`` step, so a transform such as
``optax.clip_by_global_norm`` sees one model's gradients, never the stack's.
The stack is split over the devices (``shard_map`` over a ``models`` mesh
axis, padded to a multiple of their number), each device scanning its own
models with no communication. The program is compiled once per activation,
stack size and device count: initializer families and scales, and seeds, are
data (drawn outside the program). On a CPU, see :func:`train` for one device
per core.

Randomness. Model ``(init, seed)``'s parameters come from
``fold_in(fold_in(key(root_seed), seed), STREAM_PARAMS)``: they do not depend
on the rest of the grid, and every init sees the same keys for a seed (common
random numbers). The mini-batch order of epoch :math:`e` is a permutation drawn
from ``fold_in(k, e)``, with ``k`` the shared batch key or, with
``shuffle="per_seed"``, the seed's own.

Warning: an epoch is ``n // batch_size`` whole mini-batches; the last
``n mod batch_size`` examples of each permutation are left out (torch's
``DataLoader`` keeps a smaller last batch by default).

References:
  - Glorot & Bengio (2010), Understanding the difficulty of training deep
    feedforward neural networks. http://proceedings.mlr.press/v9/glorot10a.html
  - He et al. (2015), Delving Deep into Rectifiers. https://arxiv.org/abs/1502.01852
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import io
import itertools
import json
import os
import pathlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxinit import activations as _activations
from jaxinit import initializers as _initializers
from jaxinit import kernel
from jaxinit._spec import _closest, parse_spec
from jaxinit.results import SweepResult

__all__ = ["MLP", "TrainGrid", "TrainResult", "make_optimizer", "train"]

# fold_in stream numbers under a seed's key (jaxinit.grid uses 0, 1, 2)
STREAM_PARAMS, STREAM_BATCHES = 3, 4
SHARED_SEED = 2**32 - 1  # stands for "every seed" in the shared batch key; seeds are < 2**31
OUTPUTS, SHUFFLES = ("softmax", "sigmoid"), ("shared", "per_seed")
SCAN_STEPS = 100  # steps per compiled call (the last call of a run masks what it does not need)
EVAL_BATCH = 1000  # evaluation examples per forward pass
MODELS = "models"  # name of the mesh axis that the stacked models are split over
STAT_FIELDS = ("pre_mean", "pre_var", "post_mean", "post_var", "saturated", "dead", "nonfinite")
STAT_FIELDS += ("grad_var", "weight_grad_norm")
_OPTAX_MODULES = ("optax._src.alias", "optax._src.transform", "optax.transforms.")


class MLP(nnx.Module):
    """An MLP of ``nnx.Linear`` layers: ``len(hidden)`` hidden layers and a linear output.

    ``kernel_init``, ``bias_init`` and ``activation`` are jaxinit specs or
    objects; the output layer's kernel uses ``output_kernel_init``, or
    ``kernel_init`` when it is None (the classic experiments initialize every
    layer alike). Parameters are drawn from ``rngs.params()`` in layer order.
    """

    def __init__(self, d_in: int, hidden: Sequence[int], d_out: int, *, activation: Any = "relu",
                 kernel_init: Any = "lecun_normal", bias_init: Any = "zeros",
                 output_kernel_init: Any = None, rngs: nnx.Rngs):  # fmt: skip
        self.activation = _activations.get(activation)
        w, b = _initializers.get(kernel_init), _initializers.get(bias_init)
        w_out = w if output_kernel_init is None else _initializers.get(output_kernel_init)
        sizes = (d_in, *hidden)
        self.layers = nnx.List(
            nnx.Linear(m, n, kernel_init=w, bias_init=b, rngs=rngs)
            for m, n in itertools.pairwise(sizes)
        )
        self.out = nnx.Linear(sizes[-1], d_out, kernel_init=w_out, bias_init=b, rngs=rngs)

    def trace(self, x: jax.Array, probes: Sequence[jax.Array] | None = None):
        """``(logits, zs, hs)``: the output and every hidden pre- and post-activation.

        ``probes`` (zeros) are added to the pre-activations; the gradient with
        respect to them is the gradient with respect to the pre-activations.
        """
        zs, hs = [], []
        for i, layer in enumerate(self.layers):
            z = layer(x) if probes is None else layer(x) + probes[i]
            x = self.activation.fn(z)
            zs.append(z)
            hs.append(x)
        return self.out(x), zs, hs

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.trace(x)[0]


def _optax_names() -> tuple[str, ...]:
    with warnings.catch_warnings():  # optax re-exports deprecated names
        warnings.simplefilter("ignore", DeprecationWarning)
        objs = {n: getattr(optax, n, None) for n in optax.__all__ if n.islower()}
    return tuple(sorted(n for n, f in objs.items() if inspect.isfunction(f)
                        and f.__module__.startswith(_OPTAX_MODULES)))  # fmt: skip


def make_optimizer(spec: Any) -> optax.GradientTransformation:
    """An Optax transformation from a spec: ``"adam(learning_rate=1e-3)"`` is
    ``optax.adam(learning_rate=1e-3)``; a list of specs is their ``optax.chain``;
    a ``GradientTransformation`` is returned as it is."""
    if isinstance(spec, optax.GradientTransformation):
        return spec
    if isinstance(spec, (list, tuple)) and spec:
        return optax.chain(*(make_optimizer(s) for s in spec))
    if not isinstance(spec, str):
        raise TypeError(f"optimizer must be an optax spec string such as 'sgd(learning_rate=0.01)', "
                        f"a list of them, or an optax.GradientTransformation; got {spec!r}")  # fmt: skip
    name, kwargs = parse_spec(spec)
    names = _optax_names()
    if name not in names:
        raise ValueError(f"unknown optax optimizer or transform {name!r}.{_closest(name, names)} "
                         f"Valid names: {', '.join(names)}")  # fmt: skip
    try:
        tx = getattr(optax, name)(**kwargs)
    except TypeError as err:
        raise ValueError(f"optimizer {spec!r}: {err}") from None
    if not isinstance(tx, optax.GradientTransformation):
        raise ValueError(f"optimizer {spec!r}: optax.{name} is not a gradient transformation")
    return tx


def _specs(name: str, value: Any, get) -> tuple:
    values = (value,) if isinstance(value, str) or not isinstance(value, Sequence) else tuple(value)
    if not values:
        raise ValueError(f"TrainGrid: {name} is empty; give at least one")
    objs = tuple(get(v) for v in values)
    for v, o in zip(values, objs, strict=True):
        if not getattr(o, "spec", ""):
            raise ValueError(f"TrainGrid: {name} entry {v!r} is a plain function; give a jaxinit "
                             "spec or object such as 'he_normal' (it labels the result)")  # fmt: skip
    labels = [o.spec for o in objs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"TrainGrid: {name} repeats {sorted({s for s in labels if labels.count(s) > 1})}")  # fmt: skip
    return objs


def _int(name: str, value: Any, *, low: int, none: bool = False) -> int | None:
    if value is None and none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
        raise ValueError(f"TrainGrid: {name} must be an int >= {low}{' or None' if none else ''}; "
                         f"got {value!r}")  # fmt: skip
    return int(value)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"TrainGrid: {name}={value!r} is not one of {choices}.{_closest(str(value), choices)}")  # fmt: skip
    return value


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class TrainGrid:
    """Models to train together: every (init, seed[, activation]); validated up front.

    Attributes:
      inits: initializer specs or objects for every kernel (a dim of the result).
      seeds: a count ``n`` (seeds 0..n-1) or a list of distinct seeds in [0, 2**31).
      hidden: hidden widths; the output layer has one unit per class (softmax;
        classes 0..max label) or one unit (sigmoid).
      activation: a spec, or a list of them, which adds the dim ``activation``.
      bias_init: initializer of every bias.
      output_init: kernel initializer of the output layer; None: the model's init.
      optimizer: an optax spec (``"adam(learning_rate=1e-3)"``), a list of specs
        (chained), or an ``optax.GradientTransformation``. An object is not
        fingerprinted for resuming: the checkpoint only knows its kind.
      steps: optimizer steps.
      batch_size: examples per step; None: the full batch every step.
      eval_every: steps between evaluations; None: at step 0 and the end only.
      output: "softmax" (cross-entropy over classes) or "sigmoid" (binary).
      shuffle: "shared" (one mini-batch order for all models) or "per_seed".
      record_stats_at: steps at which to record per-layer statistics, taken on
        that step's mini-batch before its update (``steps`` itself: after the last).
      keep_params: also return the final parameters, as fields ``kernel_l``
        ``(..., fan_in, fan_out)`` and ``bias_l`` ``(..., fan_out)`` for the
        hidden layers ``l = 0 .. len(hidden) - 1`` and the output layer ``l = len(hidden)``.
      root_seed: seed of the root key.
    """

    inits: Sequence[Any]
    seeds: int | Sequence[int] = 1
    hidden: Sequence[int] = (100, 100, 100, 100)
    activation: Any = "relu"
    bias_init: Any = "zeros"
    output_init: Any = None
    optimizer: Any = "sgd(learning_rate=0.01)"
    steps: int = 2000
    batch_size: int | None = 128
    eval_every: int | None = None
    output: str = "softmax"
    shuffle: str = "shared"
    record_stats_at: Sequence[int] = ()
    keep_params: bool = False
    root_seed: int = 0

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        set_("_inits", _specs("inits", self.inits, _initializers.get))
        set_("_activations", _specs("activation", self.activation, _activations.get))
        set_("_bias", _specs("bias_init", self.bias_init, _initializers.get)[0])
        if self._bias.min_rank > 1:
            raise ValueError(f"TrainGrid: bias_init {self._bias.spec!r} needs a rank-2 shape; a bias is a vector")  # fmt: skip
        out = self.output_init
        set_("_out", None if out is None else _specs("output_init", out, _initializers.get)[0])
        if isinstance(self.seeds, (int, np.integer)) and not isinstance(self.seeds, bool):
            set_("_seeds", tuple(range(_int("seeds", self.seeds, low=1))))
        else:
            seeds = tuple(_int("seeds", s, low=0) for s in _specs_list("seeds", self.seeds))
            if len(set(seeds)) != len(seeds) or max(seeds) >= 2**31:
                raise ValueError(f"TrainGrid: seeds must be distinct and < 2**31; got {seeds}")
            set_("_seeds", seeds)
        set_("_hidden", tuple(_int("hidden", h, low=1) for h in _specs_list("hidden", self.hidden)))
        for name in ("steps", "root_seed"):
            _int(name, getattr(self, name), low=1 if name == "steps" else 0)
        _int("batch_size", self.batch_size, low=1, none=True)
        _int("eval_every", self.eval_every, low=1, none=True)
        _choice("output", self.output, OUTPUTS)
        _choice("shuffle", self.shuffle, SHUFFLES)
        at = self.record_stats_at
        at = tuple(_int("record_stats_at", s, low=0) for s in (at if isinstance(at, Sequence) else [at]))  # fmt: skip
        if any(s > self.steps for s in at) or len(set(at)) != len(at):
            raise ValueError(f"TrainGrid: record_stats_at must be distinct steps in [0, {self.steps}]; got {at}")  # fmt: skip
        set_("_stats_at", tuple(sorted(at)))
        opt = self.optimizer
        label = opt if isinstance(opt, str) else tuple(opt) if isinstance(opt, list) else opt
        set_("_tx", _Tx(label, make_optimizer(opt)))
        if not isinstance(self.keep_params, bool):
            raise ValueError(
                f"TrainGrid: keep_params must be True or False; got {self.keep_params!r}"
            )

    @property
    def dims(self) -> tuple[str, ...]:
        many = not isinstance(self.activation, str) and isinstance(self.activation, Sequence)
        return ("init", "activation", "seed") if many else ("init", "seed")

    def coords(self) -> dict[str, tuple]:
        c = {"init": tuple(i.spec for i in self._inits), "seed": self._seeds,
             "activation": tuple(a.spec for a in self._activations)}  # fmt: skip
        return {d: c[d] for d in self.dims}

    def eval_steps(self) -> tuple[int, ...]:
        every = self.eval_every or self.steps
        return tuple(sorted({*range(0, self.steps, every), self.steps}))

    def model_key(self, seed: int) -> jax.Array:
        """The key every model of this seed draws its parameters from, whatever its init."""
        return jax.random.fold_in(jax.random.fold_in(jax.random.key(self.root_seed), seed), STREAM_PARAMS)  # fmt: skip

    def batch_key(self, seed: int) -> jax.Array:
        """The key of the mini-batch order of this seed's models (one shared key by default)."""
        s = seed if self.shuffle == "per_seed" else SHARED_SEED
        return jax.random.fold_in(jax.random.fold_in(jax.random.key(self.root_seed), s), STREAM_BATCHES)  # fmt: skip

    def build(self, d_in: int, d_out: int, *, init: Any, seed: int, activation: Any = None) -> MLP:
        """The model ``(init, seed, activation)`` of this grid, as :func:`train` starts it."""
        act = self._activations[0] if activation is None else activation
        return MLP(d_in, self._hidden, d_out, activation=act, kernel_init=init, bias_init=self._bias,
                   output_kernel_init=self._out, rngs=nnx.Rngs(params=self.model_key(seed)))  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """JSON-able description (the fingerprint of a checkpoint)."""
        opt = self.optimizer
        opt = list(opt) if isinstance(opt, (list, tuple)) else opt if isinstance(opt, str) else "object"  # fmt: skip
        return {"init": [i.spec for i in self._inits], "seed": list(self._seeds),
                "activation": [a.spec for a in self._activations], "dims": list(self.dims),
                "hidden": list(self._hidden), "bias_init": self._bias.spec,
                "output_init": None if self._out is None else self._out.spec, "optimizer": opt,
                "steps": self.steps, "batch_size": self.batch_size, "eval_every": self.eval_every,
                "output": self.output, "shuffle": self.shuffle,
                "record_stats_at": list(self._stats_at), "keep_params": self.keep_params,
                "root_seed": self.root_seed}  # fmt: skip


def _specs_list(name: str, value: Any) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"TrainGrid: {name} must be a non-empty list; got {value!r}")
    return tuple(value)


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class TrainResult(SweepResult):
    """A SweepResult of training runs: dims (init, [activation,] seed); fields
    ``loss`` ``(..., step)``, ``test_loss`` and ``test_accuracy`` ``(..., eval)``
    and, with ``record_stats_at``, the per-layer statistics ``(..., stat_step, layer)``."""

    @property
    def eval_steps(self) -> np.ndarray:
        """The step of each ``eval`` index."""
        return np.asarray(self.attrs["eval_steps"], np.int64)

    @property
    def stats_steps(self) -> np.ndarray:
        """The step of each ``stat_step`` index."""
        return np.asarray(self.attrs["stats_steps"], np.int64)

    def __repr__(self) -> str:
        return "Train" + super().__repr__().removeprefix("Sweep")


# -- compiled programs ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Tx:
    """An optax transformation that compares by its spec, so that grids with the same
    optimizer spec share compiled programs (an object compares by identity)."""

    label: Any  # the spec string, a tuple of them, or the transformation itself
    tx: optax.GradientTransformation = dataclasses.field(compare=False)


class _Program(NamedTuple):
    """What a compiled program is specialized to; one program per distinct value.
    Evaluation and statistics get a copy without the fields they do not use."""

    graphdef: Any  # nnx.GraphDef of the group's MLP (activation and shapes)
    activation: _activations.Activation  # the one in graphdef, for the statistics
    output: str  # "softmax" or "sigmoid"
    per_model: bool = False  # each model has its own mini-batch rows (shuffle="per_seed")
    tx: _Tx | None = None
    length: int = 0  # steps per call of the training program


def _per_example(output: str, logits: jax.Array, y: jax.Array):
    """Per-example loss and correctness."""
    if output == "sigmoid":
        z = logits[:, 0]
        return optax.sigmoid_binary_cross_entropy(z, y.astype(z.dtype)), (z > 0) == (y == 1)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return loss, jnp.argmax(logits, -1) == y


def _batch(prog: _Program, x, y, rows):
    """Mini-batch inputs and labels, and their vmap axis (None: shared by the models)."""
    if rows is None:
        return x, y, None
    return x[rows], y[rows], 0 if prog.per_model else None


def _on(mesh: Mesh, body: Callable, in_specs: tuple, out_specs: Any) -> Callable:
    """``body`` run on every device of ``mesh`` with its own slice of the model axis
    (``P(MODELS)``; ``P()``: the whole array, replicated). A model's program is the same
    on any number of devices; only the number of models a device stacks changes."""
    # check_vma=False: every value is device-local (nothing is summed across devices)
    return jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def _rows_spec(prog: _Program, rows: Any, model_axis: int) -> P:
    return P(*(None,) * model_axis, MODELS) if prog.per_model and rows is not None else P()


@functools.partial(jax.jit, static_argnums=(0, 1))
def _train_chunk(prog: _Program, mesh: Mesh, params, opt_state, x, y, rows, n_active):
    """``prog.length`` steps, of which the first ``n_active`` update (the rest are no-ops).

    ``rows``: ``(steps, batch)`` or ``(steps, models, batch)`` indices, or None
    for the full batch. Returns the new state and the losses ``(models, steps)``.
    The models are split over ``mesh``'s devices; ``x`` and ``y`` are on all of them.
    """

    def update(p, o, xb, yb):
        loss_fn = lambda p: _per_example(prog.output, nnx.merge(prog.graphdef, p)(xb), yb)[0].mean()  # noqa: E731
        loss, grads = jax.value_and_grad(loss_fn)(p)
        updates, o = prog.tx.tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    def body(params, opt_state, x, y, rows, n_active):
        n_models = jax.tree.leaves(params)[0].shape[0]  # on this device

        def step(carry, inp):  # a real branch: i and n_active are the same for every model
            i, r = inp

            def run(c):  # a shared mini-batch is gathered once, outside the vmap
                xb, yb, ax = _batch(prog, x, y, r)
                p, o, loss = jax.vmap(update, in_axes=(0, 0, ax, ax))(*c, xb, yb)
                return (p, o), loss

            skip = lambda c: (c, jnp.full((n_models,), jnp.nan, jnp.float32))  # noqa: E731
            return jax.lax.cond(i < n_active, run, skip, carry)

        xs = (jnp.arange(prog.length), rows)
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), xs)
        return params, opt_state, losses.T

    specs = (P(MODELS), P(MODELS), P(), P(), _rows_spec(prog, rows, 1), P())
    return _on(mesh, body, specs, P(MODELS))(params, opt_state, x, y, rows, n_active)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _init_opt(prog: _Program, mesh: Mesh, params):
    return _on(mesh, jax.vmap(prog.tx.tx.init), (P(MODELS),), P(MODELS))(params)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _evaluate(prog: _Program, mesh: Mesh, params, x, y, weight):
    """Mean loss and accuracy ``(models,)`` over ``x`` ``(chunks, EVAL_BATCH, d)``; padding has weight 0."""

    def one(p):
        model = nnx.merge(prog.graphdef, p)

        def chunk(args):
            xb, yb, wb = args
            loss, correct = _per_example(prog.output, model(xb), yb)
            return (loss * wb).sum(), (correct * wb).sum()

        losses, correct = jax.lax.map(chunk, (x, y, weight))
        return losses.sum() / weight.sum(), correct.sum() / weight.sum()

    specs = (P(MODELS), P(), P(), P())
    return _on(mesh, lambda p, *data: jax.vmap(one)(p), specs, P(MODELS))(params, x, y, weight)


class _NoCosine(NamedTuple):  # the part of kernel.KernelSpec that kernel._layer_stats reads
    cosine: bool = False


@functools.partial(jax.jit, static_argnums=(0, 1))
def _stats(prog: _Program, mesh: Mesh, params, x, y, rows):
    """Per-layer statistics ``(models, layer)`` on one mini-batch, as ``kernel._layer_stats``."""

    lo, hi = prog.activation.saturation
    sat = jnp.array([-jnp.inf if lo is None else lo, jnp.inf if hi is None else hi], jnp.float32)

    def one(p, xb, yb):
        model = nnx.merge(prog.graphdef, p)

        def loss_fn(probes):
            logits, zs, hs = model.trace(xb, probes)
            return _per_example(prog.output, logits, yb)[0].mean(), (zs, hs)

        probes = [jnp.zeros((xb.shape[0], layer.out_features)) for layer in model.layers]
        grads, (zs, hs) = jax.grad(loss_fn, has_aux=True)(probes)
        out = []
        for l, (z, h, g) in enumerate(zip(zs, hs, grads, strict=True)):
            s = kernel._layer_stats(_NoCosine(), z, h, jnp.array([0.0, 1.0]), sat)
            del s["hist"]
            s["grad_var"] = g.var()
            s["weight_grad_norm"] = jnp.linalg.norm((xb if l == 0 else hs[l - 1]).T @ g)
            out.append(s)
        return {k: jnp.stack([s[k] for s in out]) for k in STAT_FIELDS}

    def body(params, x, y, rows):
        xb, yb, ax = _batch(prog, x, y, rows)
        return jax.vmap(one, in_axes=(0, ax, ax))(params, xb, yb)

    specs = (P(MODELS), P(), P(), _rows_spec(prog, rows, 0))
    return _on(mesh, body, specs, P(MODELS))(params, x, y, rows)


# -- the driver -----------------------------------------------------------------------------------


def _check_data(grid: TrainGrid, data: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        x, y = data
    except (TypeError, ValueError):
        raise TypeError(f"train: {name} must be a pair (x, y); got {type(data).__name__}") from None
    x, y = np.asarray(x, np.float32), np.asarray(y)
    if x.ndim != 2 or y.shape != x.shape[:1] or len(y) < 1:
        raise ValueError(f"train: {name} needs x (n, d) and y (n,); got {x.shape} and {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"train: {name} labels must be integers >= 0; got {y.dtype}, min {y.min()}")  # fmt: skip
    if grid.output == "sigmoid" and y.max() > 1:
        raise ValueError(f"train: output='sigmoid' takes labels 0 and 1; {name} has {y.max()}")
    if not np.isfinite(x).all():
        raise ValueError(f"train: {name} inputs have non-finite values")
    return x, y.astype(np.int32)


class _Rows:
    """Mini-batch rows: step ``s`` takes batch ``s mod m`` of epoch ``s // m`` (``m`` whole
    batches per epoch), whose order is ``permutation(fold_in(batch_key, epoch), n)``."""

    def __init__(self, grid: TrainGrid, n: int):
        self.n, self.b, self.per_model = n, grid.batch_size, grid.shuffle == "per_seed"
        self.keys = [grid.batch_key(s) for s in (grid._seeds if self.per_model else (0,))]
        self.n_inits, self.perms = len(grid._inits), {}  # (key index, epoch) -> permutation

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
            rows = np.stack([self.perms[k, epoch][pos * self.b : (pos + 1) * self.b]
                             for k in range(len(self.keys))])  # fmt: skip
            out.append(np.tile(rows, (self.n_inits, 1)) if self.per_model else rows[0])
        return np.stack(out)


def _write(path: pathlib.Path, data: bytes) -> None:
    """Atomically: a temporary file in the same directory, flushed, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _open_checkpoint(root: pathlib.Path, spec: dict[str, Any]) -> tuple[str, dict | None]:
    """The run's fingerprint and its last checkpoint, if any, after checking ``root``'s manifest."""
    fingerprint = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    manifest = root / "train.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())["spec"]
        if old != spec:
            changed = ", ".join(sorted(k for k in {*spec, *old} if old.get(k) != spec.get(k)))
            raise ValueError(f"{root} holds a checkpoint of a different training run ({changed} differ); "
                             "resume with the same grid and data, or use another directory")  # fmt: skip
    else:
        root.mkdir(parents=True, exist_ok=True)
        _write(manifest, json.dumps({"schema_version": 1, "spec": spec}, indent=1).encode())
    if not (root / "checkpoint.npz").exists():
        return fingerprint, None
    with np.load(root / "checkpoint.npz", allow_pickle=False) as z:
        saved = {k: z[k] for k in z.files}
    if str(saved.pop("fingerprint")) != fingerprint:
        raise ValueError(f"{root / 'checkpoint.npz'} belongs to another training run; move it away")
    return fingerprint, saved


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.shape} {a.dtype.str}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _bar(total: int, progress: Any):
    """A rich progress bar on stderr when it is a terminal (or when asked), else None."""
    if callable(progress) or not (sys.stderr.isatty() if progress is None else progress):
        return None
    from rich.console import Console  # rich comes with flax
    from rich.progress import Progress

    bar = Progress(console=Console(stderr=True), transient=True)
    return bar, bar.add_task("train", total=total)


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


def _models(grid: TrainGrid, d_in: int, d_out: int, mesh: Mesh, size: int) -> list[list]:
    """Per activation: ``[program, stacked params, stacked optimizer state]``, models in
    (init, seed) C order, padded to ``size`` and split over ``mesh``. Parameters are drawn
    eagerly, one model at a time."""
    groups = []
    for act in grid._activations:
        split = [nnx.split(grid.build(d_in, d_out, init=i, seed=s, activation=act))
                 for i in grid._inits for s in grid._seeds]  # fmt: skip
        params = _place(jax.tree.map(lambda *a: np.stack(a), *(p for _, p in split)), size, mesh)
        prog = _Program(split[0][0], act, grid.output, grid.shuffle == "per_seed", grid._tx,
                        min(SCAN_STEPS, grid.steps))  # fmt: skip
        groups.append([prog, params, _split(_init_opt(prog, mesh, params), mesh)])
    return groups


def _empty_fields(grid: TrainGrid, n_groups: int) -> dict[str, np.ndarray]:
    shape = (n_groups, len(grid._inits) * len(grid._seeds))
    n_eval, n_stats = len(grid.eval_steps()), len(grid._stats_at)
    fields = {"loss": np.full((*shape, grid.steps), np.nan, np.float32)}
    fields["test_loss"] = np.full((*shape, n_eval), np.nan, np.float32)
    fields["test_accuracy"] = np.full((*shape, n_eval), np.nan, np.float32)
    for k in STAT_FIELDS if n_stats else ():
        like = np.full((*shape, n_stats, len(grid._hidden)), np.nan, np.float32)
        fields[k] = np.full_like(like, -1, np.int32) if k == "nonfinite" else like
    return fields


def train(grid: TrainGrid, data: tuple[Any, Any], eval_data: tuple[Any, Any] | None = None, *,
          out: str | os.PathLike | None = None, checkpoint_every: int | None = None,
          progress: bool | Callable[[int, int], None] | None = None,
          devices: Sequence[jax.Device] | None = None) -> TrainResult:  # fmt: skip
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
      progress: True or False for a progress bar (None: only on a terminal),
        or a callable ``(step, steps)`` called after every host sync.
      devices: devices to split the models over (``shard_map`` over a model
        axis; the data are copied to each); None: all local devices. The
        stack is padded to a multiple of their number with copies of the last
        model, whose results are dropped. A model's numbers do not depend on
        the number of devices or on the other models beyond the last bits.

    Multi-core CPUs: XLA:CPU runs the batched matmuls of the vmapped step on
    one thread per device, and a CPU process has a single device unless
    ``JAX_NUM_CPU_DEVICES`` is set before JAX starts (jaxinit never sets it).
    For one device per core::

        JAX_NUM_CPU_DEVICES=$(nproc) python my_script.py
        # or, in Python before the first JAX computation:
        # jax.config.update("jax_num_cpu_devices", os.cpu_count())

    which made ``benchmarks/train_mnist.py`` 1.4 to 1.9 times faster on 2
    cores. The data are copied to each device: the memory for ``x`` grows
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
    x, y = _check_data(grid, data, "data")
    xe, ye = (x, y) if eval_data is None else _check_data(grid, eval_data, "eval_data")
    (n, d_in), steps, stats_at, eval_steps = x.shape, grid.steps, grid._stats_at, grid.eval_steps()
    if xe.shape[1] != d_in:
        raise ValueError(f"train: eval_data has {xe.shape[1]} features, data {d_in}")
    if grid.batch_size is not None and grid.batch_size > n:
        raise ValueError(f"train: batch_size={grid.batch_size} exceeds the {n} training examples")
    if _int("checkpoint_every", checkpoint_every, low=1, none=True) and out is None:
        raise ValueError("train: checkpoint_every needs a directory, out=...")
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise ValueError(f"train: devices must be a non-empty list of jax devices; got {devices!r}")
    mesh, n_models = Mesh(np.array(devices), (MODELS,)), len(grid._inits) * len(grid._seeds)
    size = -(-n_models // len(devices)) * len(devices)  # models per group, padded
    d_out = 1 if grid.output == "sigmoid" else int(max(y.max(), ye.max())) + 1
    groups = _models(grid, d_in, d_out, mesh, size)
    fields, saved = _empty_fields(grid, len(groups)), None
    if out is not None:
        spec = {"grid": grid.describe(), "data": _digest(x, y),
                "eval_data": None if eval_data is None else _digest(xe, ye)}  # fmt: skip
        fingerprint, saved = _open_checkpoint(pathlib.Path(out), spec)
    if saved is not None:  # the checkpoint holds the models without padding
        fields = {k: saved[k] for k in fields}
        for a, g in enumerate(groups):
            for j in (1, 2):  # params, optimizer state
                tree = jax.tree.structure(g[j])
                g[j] = _place(jax.tree.unflatten(tree, [saved[f"g{a}_{j}_{i}"] for i in range(tree.num_leaves)]), size, mesh)  # fmt: skip
    everywhere = NamedSharding(mesh, P())
    xd, yd = jax.device_put((x, y), everywhere)
    rows, chunk = _Rows(grid, n), min(EVAL_BATCH, len(xe))
    evals = jax.device_put((_padded(xe, chunk), _padded(ye, chunk), _padded(np.ones(len(xe), np.float32), chunk)), everywhere)  # fmt: skip

    def pad_rows(r: np.ndarray | None, axis: int) -> np.ndarray | None:  # per-model rows
        if r is None or grid.shuffle != "per_seed":
            return r
        return np.concatenate([r, np.repeat(r.take([-1], axis), size - n_models, axis)], axis)

    def record(s: int) -> None:  # evaluations and statistics at step s
        for a, (prog, params, _) in enumerate(groups):
            if s in eval_steps:
                lean = prog._replace(per_model=False, tx=None, length=0)
                loss, acc = _evaluate(lean, mesh, params, *evals)
                fields["test_loss"][a, :, eval_steps.index(s)] = np.asarray(loss)[:n_models]
                fields["test_accuracy"][a, :, eval_steps.index(s)] = np.asarray(acc)[:n_models]
            if s in stats_at:
                r = rows(s, 1)
                r = pad_rows(r if r is None else r[0], 0)
                stats = _stats(prog._replace(tx=None, length=0), mesh, params, xd, yd, r)
                for k, v in stats.items():
                    fields[k][a, :, stats_at.index(s)] = np.asarray(v)[:n_models]

    sync = {*eval_steps, *stats_at, steps, *range(checkpoint_every or steps, steps, checkpoint_every or steps)}  # fmt: skip
    step = 0 if saved is None else int(saved["step"])
    bar = _bar(steps, progress)
    try:
        if bar:
            bar[0].start()
            bar[0].update(bar[1], completed=step)
        if step == 0:
            record(0)
        while step < steps:
            stop, pending = min(s for s in sync if s > step), []
            while step < stop:  # calls of a fixed number of steps, the last one partly masked
                k, length = min(groups[0][0].length, stop - step), groups[0][0].length
                r = pad_rows(rows(step, length), 1)
                for a, g in enumerate(groups):
                    g[1], g[2], losses = _train_chunk(
                        g[0], mesh, g[1], g[2], xd, yd, r, np.int32(k)
                    )
                    g[1], g[2] = _split((g[1], g[2]), mesh)
                    pending.append((a, step, k, losses))
                # the host copies the previous call's losses while this one runs
                for a, s, kk, losses in pending[: -len(groups)]:
                    fields["loss"][a, :, s : s + kk] = np.asarray(losses)[:n_models, :kk]
                del pending[: -len(groups)]
                step += k
            for a, s, kk, losses in pending:
                fields["loss"][a, :, s : s + kk] = np.asarray(losses)[:n_models, :kk]
            record(step)
            if out is not None and (step == steps or step % (checkpoint_every or steps) == 0):
                state = {f"g{a}_{j}_{i}": np.asarray(leaf)[:n_models] for a, g in enumerate(groups)
                         for j in (1, 2) for i, leaf in enumerate(jax.tree.leaves(g[j]))}  # fmt: skip
                buffer = io.BytesIO()
                np.savez(buffer, fingerprint=np.str_(fingerprint), step=np.int64(step), **fields, **state)  # fmt: skip
                _write(pathlib.Path(out) / "checkpoint.npz", buffer.getvalue())
            if bar:
                bar[0].update(bar[1], completed=step)
            if callable(progress):
                progress(step, steps)
    finally:
        if bar:
            bar[0].stop()
    if grid.keep_params:
        for a, (prog, params, _) in enumerate(groups):
            params = jax.tree.map(lambda v: np.asarray(v)[:n_models], params)
            model = nnx.merge(prog.graphdef, params)  # stacked: every array has a model axis
            for l, layer in enumerate([*model.layers, model.out]):
                for name in ("kernel", "bias"):
                    v = np.asarray(getattr(layer, name)[...])
                    fields.setdefault(f"{name}_{l}", np.empty((len(groups), *v.shape), v.dtype))[a] = v  # fmt: skip
    result = _assemble(grid, fields, d_out, on_data=eval_data is None)
    if out is not None:
        result.save(pathlib.Path(out) / "result")
    return result


def _assemble(grid: TrainGrid, fields, d_out: int, *, on_data: bool) -> TrainResult:
    n_i, n_s = len(grid._inits), len(grid._seeds)
    arrays, own = {}, {"loss": ("step",), "test_loss": ("eval",), "test_accuracy": ("eval",)}
    for k, v in fields.items():  # (activation, init × seed, ...) -> (init, activation, seed, ...)
        v = np.moveaxis(v.reshape(v.shape[0], n_i, n_s, *v.shape[2:]), 0, 1)
        arrays[k] = v if "activation" in grid.dims else v[:, 0]
        if k.startswith(("kernel_", "bias_")):
            own[k] = ("fan_in", "fan_out") if k.startswith("kernel_") else ("fan_out",)
    attrs = {"grid": grid.describe(), "eval_steps": list(grid.eval_steps()), "d_out": d_out,
             "stats_steps": list(grid._stats_at), "eval_on": "data" if on_data else "eval_data",
             "prng_impl": str(jax.random.key_impl(jax.random.key(0)))}  # fmt: skip
    aliases = {}
    for dim, given, objs in [("init", grid.inits, grid._inits),
                             ("activation", grid.activation, grid._activations)]:  # fmt: skip
        given = (given,) if isinstance(given, str) or not isinstance(given, Sequence) else given
        table = {g: o.spec for g, o in zip(given, objs, strict=True)
                 if isinstance(g, str) and g != o.spec}  # fmt: skip
        if table and dim in grid.dims:
            aliases[dim] = table
    return TrainResult(dims=grid.dims, coords=grid.coords(), fields=arrays,
                       field_dims={k: own.get(k, ("stat_step", "layer")) for k in arrays},
                       aliases=aliases, attrs=attrs)  # fmt: skip
