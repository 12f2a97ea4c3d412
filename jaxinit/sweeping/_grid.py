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
index), as :mod:`jaxinit._keys` defines for the whole library, so the network of
a seed here is the one :func:`jaxinit.train` starts from. A combination's numbers therefore depend only on its own seed,
never on the rest of the grid, chunking or devices, and every init and
activation sees the same standardized draws for a given seed (common random
numbers, which makes paired comparisons sharper). A depth-L network is the
first L layers of a deeper one.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from jaxinit import activations as _activations
from jaxinit import initializers as _initializers
from jaxinit._checks import (
    FLOAT32_MAX,
    check_bool,
    check_int,
    check_real_array,
    closest_hint,
    is_list,
)
from jaxinit._deprecated import renamed_fields
from jaxinit._dims import MAX_SEEDS, GridBase, check_seeds, dim_values
from jaxinit._keys import (
    SEED_LIMIT,
    STREAM_BATCHES,
    STREAM_COTANGENT,
    STREAM_INPUTS,
    STREAM_LAYERS,
    layer_keys,
    seed_key,
)
from jaxinit._spec import resolve_specs

__all__ = [
    "DIMS",
    "INPUTS",
    "INPUT_MOMENTS",
    "MAX_BINS",
    "MAX_SEEDS",
    "SEED_LIMIT",
    "STREAM_BATCHES",
    "STREAM_COTANGENT",
    "STREAM_INPUTS",
    "STREAM_LAYERS",
    "Combination",
    "Grid",
    "check_seeds",
    "dim_values",
    "float32_edges",
    "layer_keys",
    "seed_key",
]

INPUTS = ("gaussian", "uniform")
# (E[x], E[x²]) of one feature of the generated inputs: N(0, 1) and U[0, 1)
INPUT_MOMENTS = {"gaussian": (0.0, 1.0), "uniform": (0.5, 1.0 / 3.0)}
# the dims of a sweep's result, in order (less those the grid fixed to a scalar)
DIMS = ("init", "activation", "depth", "width", "bias_init", "seed")
MAX_BINS = 10_000  # histogram bins per layer
# the keys of Grid.describe() besides DIMS
DESCRIBED = (
    "dims",
    "batch_size",
    "d_in",
    "inputs",
    "bins",
    "hist_range",
    "batchnorm",
    "cosine",
    "gradients",
    "root_seed",
)


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
    value = tuple(value) if is_list(value) else (value,)
    if not value:
        raise ValueError(f"Grid: {name} is empty; give at least one value")
    return value


def _positive_ints(name: str, values: tuple, *, minimum: int = 1) -> tuple[int, ...]:
    values = tuple(check_int(f"Grid: {name}", v, low=minimum) for v in values)
    if len(set(values)) != len(values):
        raise ValueError(f"Grid: {name} has repeated values {values}")
    return values


def _ints(name: str, value: Any) -> int | tuple[int, ...]:
    """One int >= 1 (a fixed setting) or a tuple of distinct ones (a dim)."""
    ints = _positive_ints(name, _as_tuple(name, value))
    return ints if is_list(value) else ints[0]


def _resolve(name: str, value: Any, get) -> tuple[tuple, dict[str, str]]:
    return resolve_specs("Grid", name, _as_tuple(name, value), get)


def _input_array(value: Any) -> np.ndarray:
    """A read-only float32 copy of an inputs array ``(batch, d_in)``, checked."""
    try:
        raw = check_real_array("Grid: inputs", value)
    except TypeError:
        raise TypeError(
            f"Grid: inputs must be 'gaussian', 'uniform' or an array (batch, d_in); got {value!r:.80}"
        ) from None
    x = raw.astype(np.float32)  # a copy: the grid's inputs cannot change under it
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"Grid: an inputs array must have shape (batch >= 1, d_in); got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("Grid: the inputs array has non-finite values (or values beyond float32)")
    x.flags.writeable = False
    return x


def float32_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """The ``bins + 1`` float32 histogram edges from ``lo`` to ``hi``, as the sweep records them."""
    return np.linspace(lo, hi, bins + 1, dtype=np.float32)


def _hist_range(pair: Any, bins: int) -> tuple[float, float] | None:
    if pair is None:
        return None
    if (
        isinstance(pair, str)
        or not isinstance(pair, Sequence)
        or len(pair) != 2
        or not all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in pair)
    ):
        raise TypeError(
            f"Grid: hist_range must be a pair of numbers (lo, hi) or None; got {pair!r}"
        )
    lo, hi = float(pair[0]), float(pair[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"Grid: hist_range must be finite (lo, hi) with lo < hi; got {pair}")
    # the kernel bins in float32: (h - lo)·bins/(hi - lo), against float32 edges
    fits = max(abs(lo), abs(hi)) <= FLOAT32_MAX and hi - lo <= FLOAT32_MAX
    edges = float32_edges(lo, hi, bins) if fits else None
    if edges is None or not (np.isfinite(edges).all() and (np.diff(edges) > 0).all()):
        raise ValueError(
            f"Grid: hist_range={pair} does not give finite, strictly increasing float32 edges "
            f"for {bins} bins (the histogram is computed in float32: |lo|, |hi| and hi - lo "
            f"at most {FLOAT32_MAX:.4g}, and each bin wider than float32's spacing there); "
            "widen the range or use fewer bins"
        )
    return lo, hi


@renamed_fields(batch="batch_size")
@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Grid(GridBase):
    """The configurations of a sweep; validated in full before anything runs.

    Every field is validated and stored in canonical form once, at construction:
    specs become jaxinit objects, lists become tuples, a seed count ``n`` becomes
    ``range(n)``, ``batch_size`` and ``d_in`` are the sizes the sweep uses. So ``repr``,
    :func:`dataclasses.replace` and :meth:`describe` see what runs, and each
    setting has one name. A list (tuple) of ``depth``, ``width`` or ``bias_inits``
    adds a dim of that name; a single value does not.

    Attributes:
      inits: initializer specs or jaxinit Initializers for every weight matrix; your own
        jax initializer ``fn(key, shape, dtype)`` as it is (labelled by its name) or as
        ``ji.initializers.custom(fn, name=..., variance=...)``.
      activations: activation specs or Activations; your own function as it is (jax's
        own, ``jax.nn.relu``, are jaxinit's) or as ``ji.activations.custom(fn, ...)``.
      depth: number of hidden layers, an int or a list of ints.
      width: units per hidden layer, an int or a list of ints.
      seeds: a count ``n`` (seeds 0..n-1), a range, or an explicit list of distinct
        seeds in [0, 2**31); stored as :func:`jaxinit._dims.check_seeds` says, as in a
        :class:`jaxinit.TrainGrid`.
      batch_size: samples per network. For generated inputs None means 1000; for an
        inputs array it is the array's rows (None, or the same number). Its old name
        ``batch`` works for one release, with a DeprecationWarning.
      inputs: "gaussian" (N(0, 1)), "uniform" (U[0, 1), as ``np.random.random``)
        or an array ``(batch, d_in)`` such as an MNIST batch, shared by all seeds
        (stored as a read-only float32 copy).
      d_in: input dimension. For generated inputs None means the (first) width;
        for an inputs array it is the array's columns (None, or the same number).
        Once resolved it is a field like any other: ``dataclasses.replace(grid,
        width=200)`` keeps the resolved ``d_in``.
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
      root_seed: seed of the root key, in [0, 2**32).
      aliases: {dim: {label as given: canonical spec}}, so that a result selects
        by the names the grid was given (``"xavier_normal"``). Derived from the
        specs; :func:`dataclasses.replace` carries it over. There is no need to
        pass it.

    Example:
      >>> grid = Grid(inits=["xavier_normal", "he_normal"], activations="relu",
      ...             depth=[2, 4], width=8, seeds=3, batch_size=16)
      >>> grid.coords()["init"], grid.seeds, grid.d_in, len(grid)
      (('glorot_normal', 'he_normal'), range(0, 3), 8, 12)
      >>> grid.aliases
      {'init': {'xavier_normal': 'glorot_normal'}}
    """

    inits: tuple[_initializers.Initializer, ...]
    activations: tuple[_activations.Activation, ...]
    depth: int | tuple[int, ...] = 5
    width: int | tuple[int, ...] = 100
    seeds: range | tuple[int, ...] = 1
    batch_size: int | None = None
    inputs: str | np.ndarray = "gaussian"
    d_in: int | None = None
    bias_inits: _initializers.Initializer | tuple[_initializers.Initializer, ...] = "zeros"
    bins: int = 30
    hist_range: tuple[float, float] | None = None
    batchnorm: bool = False
    cosine: bool = False
    gradients: bool = True
    root_seed: int = 0
    aliases: Mapping[str, Mapping[str, str]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        inits, init_aliases = _resolve("inits", self.inits, _initializers.get)
        acts, act_aliases = _resolve("activations", self.activations, _activations.get)
        biases, bias_aliases = _resolve("bias_inits", self.bias_inits, _initializers.get)
        for b in biases:
            if b.min_rank > 1:
                raise ValueError(
                    f"Grid: bias init {b.spec!r} needs a rank-2 shape; a bias is a vector. "
                    "Use zeros, constant(value=...), normal(stddev=...) or uniform(...)."
                )
        set_("inits", inits)
        set_("activations", acts)
        set_("bias_inits", biases if is_list(self.bias_inits) else biases[0])
        set_("depth", _ints("depth", self.depth))
        set_("width", _ints("width", self.width))
        self._set_seeds()
        self._check_float32()
        check_int("Grid: bins", self.bins, low=1)
        if self.bins > MAX_BINS:
            raise ValueError(f"Grid: bins must be at most {MAX_BINS}; got {self.bins}")
        given = {
            name: check_int(f"Grid: {name}", getattr(self, name), low=1, none=True)
            for name in ("batch_size", "d_in")
        }
        if isinstance(self.inputs, str):
            if self.inputs not in INPUTS:
                raise ValueError(
                    f"Grid: inputs={self.inputs!r} is not valid; choose 'gaussian', 'uniform' "
                    "or an array of shape (batch, d_in)." + closest_hint(self.inputs, INPUTS)
                )
            resolved = {"batch_size": 1000, "d_in": dim_values(self.width)[0]}
        else:
            x = _input_array(self.inputs)
            set_("inputs", x)
            resolved = dict(zip(("batch_size", "d_in"), x.shape, strict=True))
            for name, value in given.items():
                if value is not None and value != resolved[name]:
                    raise ValueError(
                        f"Grid: {name}={value} contradicts the inputs array of shape "
                        f"{x.shape}; leave {name} out, or give {name}={resolved[name]} "
                        "(with dataclasses.replace, give the new array's sizes)"
                    )
        for name, value in given.items():
            set_(name, resolved[name] if value is None else value)
        set_("hist_range", _hist_range(self.hist_range, self.bins))
        for flag in ("batchnorm", "cosine", "gradients"):
            check_bool(f"Grid: {flag}", getattr(self, flag))
            if flag != "gradients" and getattr(self, flag) and self.batch_size < 2:
                raise ValueError(
                    f"Grid: {flag}=True needs a batch_size of at least 2 samples; got "
                    f"{self.batch_size} "
                    "(one sample has no batch statistics and no pairs)"
                )
        # every layer shape each init will draw: refuse now what would fail mid-sweep
        widths = dim_values(self.width)
        for init in inits:
            for shape in {(self.d_in, w) for w in widths} | {(w, w) for w in widths}:
                try:
                    init.moments(shape)
                except (ValueError, TypeError) as e:
                    raise ValueError(
                        f"Grid: init {init.spec!r} cannot draw this grid's layer of shape "
                        f"{shape}: {e}"
                    ) from None
        derived = {"init": init_aliases, "activation": act_aliases, "bias_init": bias_aliases}
        set_("aliases", self._merged_aliases(derived))

    def coords(self) -> dict[str, tuple]:
        """Labels of every dimension of the full product, in order, the scalar dims (as
        1-tuples) included; the result keeps :attr:`dims`."""
        return self._axes()

    def _axes(self) -> dict[str, tuple]:
        return {
            "init": tuple(i.spec for i in self.inits),
            "activation": tuple(a.spec for a in self.activations),
            "depth": dim_values(self.depth),
            "width": dim_values(self.width),
            "bias_init": tuple(b.spec for b in dim_values(self.bias_inits)),
            "seed": self.seeds,
        }

    def scalar_dims(self) -> tuple[str, ...]:
        """The dims given as scalars, which a result does not keep."""
        given = {"depth": self.depth, "width": self.width, "bias_init": self.bias_inits}
        return tuple(d for d, v in given.items() if not isinstance(v, tuple))

    @property
    def dims(self) -> tuple[str, ...]:
        """The dims of the sweep's result: :data:`DIMS` less :meth:`scalar_dims`."""
        scalar = self.scalar_dims()
        return tuple(d for d in DIMS if d not in scalar)

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.coords().values())

    def __iter__(self):
        """Every combination, in the order of the product, with its stable index.

        The plain loop a sweep equals: run your own per-network code (a reference
        implementation in another framework, say) over ``for c in grid`` with
        ``grid.seed_key(c.seed)`` and compare with ``sweep(grid)``.
        """
        product = itertools.product(
            self.inits,
            self.activations,
            dim_values(self.depth),
            dim_values(self.width),
            dim_values(self.bias_inits),
            self.seeds,
        )
        for index, combo in enumerate(product):
            yield Combination(index, *combo)

    def _settings(self) -> dict[str, Any]:
        """The settings :meth:`describe` records besides the dims and ``root_seed``."""
        return {
            "batch_size": self.batch_size,
            "d_in": self.d_in,
            "inputs": self.inputs if isinstance(self.inputs, str) else "array",
            "bins": self.bins,
            "hist_range": None if self.hist_range is None else list(self.hist_range),
            "batchnorm": self.batchnorm,
            "cosine": self.cosine,
            "gradients": self.gradients,
        }

    @classmethod
    def from_description(cls, description: Mapping[str, Any]) -> Grid:
        """The grid that :meth:`describe` described (as saved in a result's manifest).

        The description must carry every key :meth:`describe` writes; one that lacks
        any was written by another jaxinit version (or edited), and is refused. Grids
        over an input array cannot be rebuilt: the manifest does not hold the array.
        """
        d = dict(description)
        missing = [k for k in (*DIMS, *DESCRIBED) if k not in d]
        if missing:
            raise ValueError(
                f"Grid.from_description: the description lacks {missing} (valid ones hold "
                f"{list((*DIMS, *DESCRIBED))}); it was written by another jaxinit version or "
                "edited: rerun the sweep that made it"
            )
        if d["inputs"] == "array":
            raise ValueError(
                "this grid ran on an input array, which the manifest does not store; "
                "build the Grid again with inputs=<the array>"
            )
        for dim in ("depth", "width", "bias_init"):  # dims given as scalars stay scalars
            if dim not in d["dims"] and len(d[dim]) == 1:
                d[dim] = d[dim][0]
        return cls(
            inits=d["init"],
            activations=d["activation"],
            depth=d["depth"],
            width=d["width"],
            seeds=d["seed"],
            batch_size=d["batch_size"],
            inputs=d["inputs"],
            d_in=d["d_in"],
            bias_inits=d["bias_init"],
            bins=d["bins"],
            hist_range=d["hist_range"],
            batchnorm=d["batchnorm"],
            cosine=d["cosine"],
            gradients=d["gradients"],
            root_seed=d["root_seed"],
        )
