"""Grid: the cartesian product of configurations a sweep evaluates.

A grid crosses initializers, activations, depths, widths, bias initializers
and seeds::

    grid = ji.Grid(inits=["normal(stddev=1.0)", "glorot_normal", "he_normal"],
                   activations=["tanh", "relu"], depth=5, width=100, seeds=16)

Settings given as a list become dimensions of the result (``depth=[5, 10]``);
settings given as a scalar (``depth=5``) are fixed and do not, so
``res.sel(init=..., activation=...).post_var`` is ``(seed, layer)``. Inits,
activations and seeds are always dimensions.

Randomness. The key of seed ``s`` is ``fold_in(key(root_seed), s)``; inputs,
layers and the backward cotangent each fold in a stream number (and the layer
index). A combination's numbers therefore depend only on its own seed,
never on the rest of the grid, chunking or devices, and every init and
activation sees the same standardized draws for a given seed (common random
numbers, which makes paired comparisons sharper). A depth-L network is the
first L layers of a deeper one.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxinit import activations as _activations
from jaxinit import initializers as _initializers
from jaxinit._checks import check_bool, check_int

__all__ = [
    "DIMS",
    "INPUTS",
    "INPUT_MOMENTS",
    "MAX_BINS",
    "MAX_SEEDS",
    "SEED_LIMIT",
    "STREAM_COTANGENT",
    "STREAM_INPUTS",
    "STREAM_LAYERS",
    "Combination",
    "Grid",
    "layer_keys",
    "seed_key",
]

INPUTS = ("gaussian", "uniform")
# (E[x], E[x²]) of one feature of the generated inputs: N(0, 1) and U[0, 1)
INPUT_MOMENTS = {"gaussian": (0.0, 1.0), "uniform": (0.5, 1.0 / 3.0)}
# the dims of a sweep's result, in order (less those the grid fixed to a scalar)
DIMS = ("init", "activation", "depth", "width", "bias_init", "seed")
SEED_LIMIT = 2**31  # seeds are folded into keys as int32
MAX_BINS = 10_000  # histogram bins per layer
MAX_SEEDS = 10_000_000  # seeds of one grid
# fold_in stream numbers under a seed's key
STREAM_INPUTS, STREAM_LAYERS, STREAM_COTANGENT = 0, 1, 2


def seed_key(root_seed, seed) -> jax.Array:
    """The key of every combination with this ``seed``: ``fold_in(key(root_seed), seed)``.

    Traceable: the sweep's draw program calls it on ``uint32``/``int32`` arrays,
    which give the same key as the Python ints.
    """
    return jax.random.fold_in(jax.random.key(root_seed), seed)


def layer_keys(key: jax.Array, layer) -> tuple[jax.Array, jax.Array]:
    """Layer ``layer``'s weight and bias keys under a seed's ``key``:
    ``fold_in(fold_in(fold_in(key, STREAM_LAYERS), layer), i)`` for ``i`` = 0, 1.

    Traceable (``layer`` may be traced). The sweep kernel draws with these keys;
    :mod:`jaxinit.lsuv` and :mod:`jaxinit.isometry` use them too, so their networks
    are the sweep's for the same seed key.
    """
    k = jax.random.fold_in(jax.random.fold_in(key, STREAM_LAYERS), layer)
    return jax.random.fold_in(k, 0), jax.random.fold_in(k, 1)


class Combination(NamedTuple):
    """One network of a grid, with its stable position ``index`` in the product."""

    index: int
    init: _initializers.Initializer
    activation: _activations.Activation
    depth: int
    width: int
    bias_init: _initializers.Initializer
    seed: int


def _as_tuple(name: str, value: Any) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence):
        value = (value,)
    value = tuple(value)
    if not value:
        raise ValueError(f"Grid: {name} is empty; give at least one value")
    return value


def _positive_ints(name: str, values: tuple, *, minimum: int = 1) -> tuple[int, ...]:
    for v in values:
        check_int(f"Grid: {name}", v, low=minimum)
    if len(set(values)) != len(values):
        raise ValueError(f"Grid: {name} has repeated values {values}")
    return tuple(int(v) for v in values)


def _resolve(name: str, specs: tuple, get) -> tuple[tuple, dict[str, str]]:
    """Resolved objects and {given label: canonical spec} for the aliases."""
    objs, aliases = [], {}
    for spec in specs:
        obj = get(spec)
        if not hasattr(obj, "spec"):
            raise ValueError(
                f"Grid: {name} entry {spec!r} is a plain function; the sweep engine needs a "
                "jaxinit spec or object (for example 'he_normal' or 'normal(stddev=0.01)')"
            )
        if isinstance(spec, str) and spec != obj.spec:
            aliases[spec] = obj.spec
        objs.append(obj)
    labels = [o.spec for o in objs]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ValueError(f"Grid: {name} lists the same configuration twice: {repeated}")
    return tuple(objs), aliases


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Grid:
    """The configurations of a sweep; validated in full before anything runs.

    Attributes:
      inits: initializer specs or jaxinit Initializers for every weight matrix.
      activations: activation specs or Activations.
      depth: number of hidden layers, an int or a list of ints.
      width: units per hidden layer, an int or a list of ints.
      seeds: a count ``n`` (seeds 0..n-1) or an explicit list of seeds.
      batch: samples drawn when ``inputs`` is "gaussian" or "uniform".
      inputs: "gaussian" (N(0, 1)), "uniform" (U[0, 1), as ``np.random.random``)
        or an array ``(batch, d_in)`` such as an MNIST batch, shared by all seeds.
      d_in: input dimension for generated inputs; None means the (first) width.
      bias_inits: bias initializer(s); default zeros.
      bins: histogram bins per layer.
      hist_range: ``(lo, hi)`` of the histogram of post-activations; None takes
        a range suited to each activation (its bounds where finite, else ±3).
      batchnorm: normalize pre-activations over the batch before the activation.
      cosine: also record the mean cosine similarity between pairs of samples.
      gradients: also run the backward pass and record ``grad_var`` and
        ``weight_grad_norm``. The classic histogram and variance experiments
        need only the forward statistics; ``False`` skips the backward pass
        (about a third of the time) and the result has no gradient fields.
      root_seed: seed of the root key.
    """

    inits: Sequence[Any]
    activations: Sequence[Any]
    depth: int | Sequence[int] = 5
    width: int | Sequence[int] = 100
    seeds: int | Sequence[int] = 1
    batch: int = 1000
    inputs: str | Any = "gaussian"
    d_in: int | None = None
    bias_inits: Any = "zeros"
    bins: int = 30
    hist_range: tuple[float, float] | None = None
    batchnorm: bool = False
    cosine: bool = False
    gradients: bool = True
    root_seed: int = 0

    def __post_init__(self):
        init_objs, init_aliases = _resolve(
            "inits", _as_tuple("inits", self.inits), _initializers.get
        )
        act_objs, act_aliases = _resolve(
            "activations", _as_tuple("activations", self.activations), _activations.get
        )
        bias_objs, bias_aliases = _resolve(
            "bias_inits", _as_tuple("bias_inits", self.bias_inits), _initializers.get
        )
        for b in bias_objs:
            if b.min_rank > 1:
                raise ValueError(
                    f"Grid: bias init {b.spec!r} needs a rank-2 shape; a bias is a vector. "
                    "Use zeros, constant(value=...), normal(stddev=...) or uniform(...)."
                )
        depths = _positive_ints("depth", _as_tuple("depth", self.depth))
        widths = _positive_ints("width", _as_tuple("width", self.width))
        if isinstance(self.seeds, (int, np.integer)) and not isinstance(self.seeds, bool):
            count = _positive_ints("seeds", (self.seeds,))[0]
            if count > MAX_SEEDS:  # checked before the seeds are listed
                raise ValueError(
                    f"Grid: seeds={count} is more than one grid holds ({MAX_SEEDS:,}); sweep "
                    "shares of them (seeds=range(a, b)) and join them with SweepResult.concat"
                )
            seeds = tuple(range(count))
        else:
            seeds = _positive_ints("seeds", _as_tuple("seeds", self.seeds), minimum=0)
        if max(seeds) >= SEED_LIMIT:
            raise ValueError(
                "Grid: seeds must be below 2**31 (a seed is folded into the key as int32); "
                f"got {max(seeds)}"
            )
        for name in ("batch", "bins"):
            _positive_ints(name, (getattr(self, name),))
        if self.bins > MAX_BINS:
            raise ValueError(f"Grid: bins must be at most {MAX_BINS}; got {self.bins}")
        if not isinstance(self.root_seed, (int, np.integer)) or isinstance(self.root_seed, bool):
            kind = type(self.root_seed).__name__
            raise TypeError(f"Grid: root_seed must be an int; got {kind} {self.root_seed!r}")
        if not 0 <= self.root_seed < 2**32:
            raise ValueError(f"Grid: root_seed must be in [0, 2**32); got {self.root_seed}")
        x = None
        if isinstance(self.inputs, str):
            if self.inputs not in INPUTS:
                raise ValueError(
                    f"Grid: inputs={self.inputs!r} is not valid; choose 'gaussian', "
                    "'uniform' or an array of shape (batch, d_in)"
                )
            d_in = widths[0] if self.d_in is None else _positive_ints("d_in", (self.d_in,))[0]
            batch = self.batch
        else:
            raw = np.asarray(self.inputs)
            if raw.dtype.kind not in "biuf":
                raise ValueError(
                    f"Grid: an inputs array must hold real numbers; got dtype {raw.dtype} "
                    "(complex, object and string arrays are not inputs)"
                )
            x = raw.astype(np.float32)
            if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
                raise ValueError(
                    f"Grid: an inputs array must have shape (batch >= 1, d_in); got {x.shape}"
                )
            if not np.isfinite(x).all():
                raise ValueError("Grid: the inputs array has non-finite values")
            batch, d_in = x.shape
            for name, given, actual in (("d_in", self.d_in, d_in), ("batch", self.batch, batch)):
                if (
                    given is not None
                    and given != actual
                    and not (name == "batch" and given == 1000)
                ):
                    raise ValueError(
                        f"Grid: {name}={given} contradicts the inputs array of shape {x.shape}; "
                        f"leave {name} out (it comes from the array)"
                    )
        if self.hist_range is not None:
            pair = self.hist_range
            if (
                isinstance(pair, str)
                or not isinstance(pair, Sequence)
                or len(pair) != 2
                or not all(
                    isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in pair
                )
            ):
                raise TypeError(
                    f"Grid: hist_range must be a pair of numbers (lo, hi) or None; got {pair!r}"
                )
            lo, hi = pair
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(
                    f"Grid: hist_range must be finite (lo, hi) with lo < hi; got {self.hist_range}"
                )
        for flag in ("batchnorm", "cosine", "gradients"):
            check_bool(f"Grid: {flag}", getattr(self, flag))
            if flag != "gradients" and getattr(self, flag) and batch < 2:
                raise ValueError(
                    f"Grid: {flag}=True needs a batch of at least 2 samples; got {batch} "
                    "(one sample has no batch statistics and no pairs)"
                )
        # every layer shape each init will draw: refuse now what would fail mid-sweep
        for init in init_objs:
            for shape in {(d_in, w) for w in widths} | {(w, w) for w in widths}:
                try:
                    init.moments(shape)
                except (ValueError, TypeError) as e:
                    raise ValueError(
                        f"Grid: init {init.spec!r} cannot draw this grid's layer of shape "
                        f"{shape}: {e}"
                    ) from None
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 - frozen dataclass
        set_("_inits", init_objs)
        set_("_activations", act_objs)
        set_("_bias_inits", bias_objs)
        set_("_depths", depths)
        set_("_widths", widths)
        set_("_seeds", seeds)
        set_("_x", x)
        set_("_batch", batch)
        set_("_d_in", d_in)
        set_(
            "_aliases", {"init": init_aliases, "activation": act_aliases, "bias_init": bias_aliases}
        )

    # -- resolved views -------------------------------------------------------------
    @property
    def init_objs(self) -> tuple[_initializers.Initializer, ...]:
        return self._inits

    @property
    def activation_objs(self) -> tuple[_activations.Activation, ...]:
        return self._activations

    @property
    def bias_objs(self) -> tuple[_initializers.Initializer, ...]:
        return self._bias_inits

    @property
    def depths(self) -> tuple[int, ...]:
        return self._depths

    @property
    def widths(self) -> tuple[int, ...]:
        return self._widths

    @property
    def seed_values(self) -> tuple[int, ...]:
        return self._seeds

    @property
    def input_array(self) -> np.ndarray | None:
        """The user's inputs ``(batch, d_in)``, or None for generated inputs."""
        return self._x

    @property
    def n_samples(self) -> int:
        return self._batch

    @property
    def input_dim(self) -> int:
        return self._d_in

    @property
    def aliases(self) -> dict[str, dict[str, str]]:
        """Per dim, the labels as given that differ from the canonical spec."""
        return self._aliases

    def coords(self) -> dict[str, tuple]:
        """Labels of every dimension of the full product, in order."""
        return {
            "init": tuple(i.spec for i in self._inits),
            "activation": tuple(a.spec for a in self._activations),
            "depth": self._depths,
            "width": self._widths,
            "bias_init": tuple(b.spec for b in self._bias_inits),
            "seed": self._seeds,
        }

    def scalar_dims(self) -> tuple[str, ...]:
        """The dims given as scalars, which a result does not keep."""
        given = {"depth": self.depth, "width": self.width, "bias_init": self.bias_inits}
        return tuple(
            d for d, v in given.items() if isinstance(v, str) or not isinstance(v, Sequence)
        )

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.coords().values())

    def __iter__(self):
        """Every combination, in the order of the product, with its stable index."""
        product = itertools.product(
            self._inits,
            self._activations,
            self._depths,
            self._widths,
            self._bias_inits,
            self._seeds,
        )
        for index, combo in enumerate(product):
            yield Combination(index, *combo)

    def seed_key(self, seed: int) -> jax.Array:
        """The key of every combination with this seed (:func:`seed_key`)."""
        return seed_key(self.root_seed, seed)

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the grid, for manifests."""
        return {
            **{k: list(v) for k, v in self.coords().items()},
            "batch": self._batch,
            "d_in": self._d_in,
            "inputs": self.inputs if isinstance(self.inputs, str) else "array",
            "bins": self.bins,
            "hist_range": None if self.hist_range is None else list(self.hist_range),
            "batchnorm": self.batchnorm,
            "cosine": self.cosine,
            "gradients": self.gradients,
            "root_seed": self.root_seed,
            "scalar_dims": list(self.scalar_dims()),
        }

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> Grid:
        """The grid that :meth:`describe` described (as saved in a result's manifest).

        Grids over an input array cannot be rebuilt: the manifest does not hold
        the array.
        """
        d = dict(description)
        if d.get("inputs") == "array":
            raise ValueError(
                "this grid ran on an input array, which the manifest does not store; "
                "build the Grid again with inputs=<the array>"
            )
        hist_range = d.get("hist_range")
        # dims given as scalars stay scalars (no dim in the result); older manifests
        # did not record them, and there a single value is taken as a scalar
        scalar = d.get("scalar_dims")
        for dim in ("depth", "width", "bias_init"):
            if (dim in scalar if scalar is not None else len(d[dim]) == 1) and len(d[dim]) == 1:
                d[dim] = d[dim][0]
        return cls(
            inits=d["init"],
            activations=d["activation"],
            depth=d["depth"],
            width=d["width"],
            seeds=d["seed"],
            batch=d["batch"],
            inputs=d["inputs"],
            d_in=d["d_in"],
            bias_inits=d["bias_init"],
            bins=d["bins"],
            hist_range=None if hist_range is None else tuple(hist_range),
            batchnorm=d["batchnorm"],
            cosine=d["cosine"],
            gradients=d.get("gradients", True),  # manifests before gradients= had them all
            root_seed=d["root_seed"],
        )
