r"""The Initializer type, its standardized draws, fan computation and the registry.

Every initializer in jaxinit has the same shape::

    w = draw(base)(key, shape, dtype) * a + b

where ``base`` describes a standardized random draw, one typed record per kind
(:mod:`jaxinit.initializers._bases`: ``Normal()``,
``TruncatedNormal(lower=-2.0, upper=2.0)``, ``Uniform()`` for U[-1, 1),
``Orthogonal(column_axis=-1)``, ``Identity(groups=1, layout="flax")``,
``Sparse(sparsity=0.9, axis=-2)``, ...) and ``a``, ``b`` are scalars that
depend on the shape (through the fans) and on the hyperparameters, given
exactly by an :class:`Affine` record. The scalars are computed in ``dtype``
exactly as :mod:`jax.nn.initializers` computes them, so the same key gives the
same bits wherever the two libraries describe the same distribution. The split
also lets the sweep engine group initializers by ``base`` (one compiled
program) and vmap over ``(a, b)``.

The moments of one entry follow from the base's, ``(E z, Var z) =
base.moments(shape)``, and ``(a, b)``:

.. math::  \mathbb{E}\,w = a\,\mathbb{E}\,z + b, \qquad \mathrm{Var}\,w = a^2\,\mathrm{Var}\,z.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxinit import _jax_compat
from jaxinit._checks import FLOAT32_MAX, check_choice
from jaxinit._spec import Registry, rebuildable_spec
from jaxinit.initializers._bases import (
    FROM_BITS,
    LAYOUT_AXES,
    Base,
    Constant,
    Custom,
    DeltaOrthogonal,
    Identity,
    Lsuv,
    Normal,
    Orthogonal,
    Sparse,
    TruncatedNormal,
    Uniform,
    Uniform01,
    sparse_zeros,
)

Array = jax.Array
Shape = tuple[int, ...]
Axes = int | Sequence[int]

# (a, b) in the initializer's dtype; None where the draw is not scaled or not shifted.
Coeffs = tuple[np.ndarray | None, np.ndarray | None]

# Standard deviation of N(0, 1) truncated to (-2, 2), as jax's variance_scaling divides by it.
TRUNCATED_STD = 0.87962566103423978


class Affine(NamedTuple):
    r"""How an initializer's weights follow from its base draw ``z``: ``w = a·z + b``, exact.

    The numbers are real numbers (Python floats), whatever the weights' dtype;
    :meth:`coeffs` makes ``(a, b)`` in a dtype as jax does, and :meth:`moments`
    gives the weights' exact mean and variance from the draw's:
    :math:`\mathbb{E}\,w = a\,\mathbb{E}\,z + b`, :math:`\mathrm{Var}\,w = a^2\,\mathrm{Var}\,z`.

    Attributes:
      scale: ``a``. None: ``a`` is the scale that gives ``a·z`` the variance
        ``variance`` (:math:`a = \sqrt{\mathrm{variance} / \mathrm{Var}\,z}`, as jax's
        ``variance_scaling`` makes it), or 1 when ``variance`` is None too.
      shift: ``b``; None for no shift.
      variance: the variance of ``a·z``, when ``scale`` is None. It is the variance itself
        (``scale/n`` for the fan-based schemes), not ``a²·Var z`` recomputed from a rounded
        ``a``; for the truncated normal jax divides by ``TRUNCATED_STD``, the truncation's
        standard deviation to float64 precision.
      variance_factor: ``w``'s variance times this at the end: ``w = √factor·(a·z + b)``,
        the same draw rescaled (μP's output layer).
    """

    scale: float | None = None
    shift: float | None = None
    variance: float | None = None
    variance_factor: float = 1.0

    def coeffs(self, base: Base, dtype: Any) -> Coeffs:
        """``(a, b)`` in ``dtype``, each rounding as :mod:`jax.nn.initializers` rounds it."""
        if self.scale is not None:
            a = np.asarray(self.scale, dtype)
        elif self.variance is not None:
            a = _standardizing_scale(base, self.variance, dtype)
        else:
            a = None
        b = None if self.shift is None else np.asarray(self.shift, dtype)
        if self.variance_factor != 1.0:
            root = np.asarray(float(self.variance_factor) ** 0.5, dtype)
            a = (np.ones((), dtype) if a is None else a) * root
            b = None if b is None else b * root
        return a, b

    def moments(self, base: Base, shape: Shape) -> tuple[float, float]:
        """The exact mean and variance of one entry of ``w`` from ``base.moments(shape)``."""
        mean_z, var_z = base.moments(shape)
        if self.variance is None:
            a = 1.0 if self.scale is None else self.scale
            mean, var = a * mean_z, a**2 * var_z
        else:  # a² Var z = variance by definition
            mean = math.sqrt(self.variance / var_z) * mean_z if mean_z else 0.0
            var = self.variance
        if self.shift is not None:
            mean += self.shift
        if self.variance_factor != 1.0:
            mean, var = mean * float(self.variance_factor) ** 0.5, var * self.variance_factor
        return mean, var


def _standardizing_scale(base: Base, variance: float, dtype: Any) -> np.ndarray:
    """The ``a`` with ``Var(a·z) = variance``, made in ``dtype`` as jax's ``variance_scaling``
    makes it; NumPy's correctly rounded sqrt and division give its bits without a compile."""
    var = np.asarray(variance, dtype)
    match base:
        case Normal():
            return np.sqrt(var)
        case Uniform():  # Var U[-1, 1) = 1/3
            return np.sqrt(3 * var)
        case TruncatedNormal(lower=-2.0, upper=2.0):
            return np.sqrt(var) / np.asarray(TRUNCATED_STD, dtype)
    raise ValueError(f"no variance-scaling rule for the draw {base!r}")


class FanAxes(NamedTuple):
    """Where an initializer counts a weight tensor's fans (:func:`compute_fans`).

    ``receptive_field=False`` counts the named axes alone, without the other
    axes' product (Keras' rule when it is given explicit axes).
    """

    in_axis: Axes = -2
    out_axis: Axes = -1
    batch_axis: Axes = ()
    receptive_field: bool = True

    def fans(self, shape: Sequence[int]) -> tuple[int, int]:
        """``(fan_in, fan_out)`` of ``shape``; a ValueError for axes out of its range."""
        fans = compute_fans(
            shape, in_axis=self.in_axis, out_axis=self.out_axis, batch_axis=self.batch_axis
        )
        if self.receptive_field:
            return fans
        return _named_size(shape, self.in_axis), _named_size(shape, self.out_axis)


def _named_size(shape: Sequence[int], axes: Axes) -> int:
    """The product of ``shape`` along ``axes`` (an int or a tuple; checked by compute_fans)."""
    return math.prod(shape[a] for a in ((axes,) if isinstance(axes, int) else axes))


def layout_fans(layout: str) -> FanAxes:
    """The fan axes of ``layout``: ``"flax"`` in -2, out -1; ``"torch"`` in 1, out 0."""
    return FanAxes(*LAYOUT_AXES[layout])


@dataclasses.dataclass(frozen=True)
class Initializer:
    """A jax initializer, ``init(key, shape, dtype=None) -> Array``, that knows itself.

    It is a plain callable with the protocol of :mod:`jax.nn.initializers`, so it
    drops into ``flax.nnx.Linear(kernel_init=...)`` and anywhere else jax
    initializers go. Beyond the call it carries its canonical ``spec`` (the
    label sweeps and plots use; ``get(init.spec) == init``) and its exact
    per-entry moments for any shape.

    Attributes:
      base: the standardized draw, a record of :mod:`jaxinit.initializers._bases`.
      affine: ``shape -> Affine``: the exact scale and shift of the draw at that
        shape (it also refuses shapes the initializer does not take).
      min_rank: the smallest rank the initializer accepts (2 for fan-based).
      fan_axes: where it counts fans (:class:`FanAxes`); its layout's for those that
        have one, Flax's ``(..., in, out)`` otherwise.
      name: registered name, aliases resolved.
      hparams: every hyperparameter as ``(name, value)`` pairs, defaults included.
      spec: canonical spec string.
      dtype: the builder's ``dtype=`` (a name such as ``"bfloat16"``), the weights' dtype
        when the call gives none, as jax's builders take it; None: jax's default float.
    """

    base: Base
    affine: Callable[[Shape], Affine] = dataclasses.field(compare=False, repr=False)
    min_rank: int = dataclasses.field(default=0, compare=False, repr=False)
    fan_axes: FanAxes = dataclasses.field(default=FanAxes(), compare=False, repr=False)
    name: str = dataclasses.field(default="", compare=False, repr=False)
    hparams: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), compare=False, repr=False)
    spec: str = ""
    dtype: str | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.base, Base):
            raise TypeError(
                f"Initializer base must be a record of jaxinit.initializers._bases; got {self.base!r}"
            )

    def __copy__(self):  # frozen: a copy is itself (and copy never goes through the spec)
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        """Pickles as its spec (``get(init.spec) == init``): the draw's closures never pickle,
        the spec always rebuilds the same initializer. One that no spec rebuilds (made by
        hand, or scaled by μP) is refused with the reason."""
        return _from_spec, (rebuildable_spec(self, registry),)

    def __call__(
        self,
        key: Array,
        shape: Sequence[int],
        dtype: Any = None,
        out_sharding: NamedSharding | PartitionSpec | None = None,
    ):
        """The weights ``a · draw(key, shape) + b``, of ``dtype`` (jax's default float if None).

        ``out_sharding`` (a NamedSharding, or a PartitionSpec under ``jax.set_mesh``)
        places them as :mod:`jax.nn.initializers` does: the draw is made with that
        sharding (``jax.random.normal(..., out_sharding=...)``,
        ``jnp.zeros(..., out_sharding=...)``), bitwise jax's initializer given the
        same ``out_sharding`` (and, called eagerly, the values drawn without one).
        Initializers whose draw is normal, truncated normal, uniform or constant take
        it (``SHARDED_DRAWS``); the others refuse it, as jax's ``orthogonal`` and
        ``delta_orthogonal`` do.
        """
        _check_out_sharding(self.spec, self.base, out_sharding)
        if key is not None or not isinstance(self.base, (Constant, Identity)):  # these draw
            _check_key(self.spec, key)  # nothing: None is a key there, as for jax's zeros
        shape, dtype = self._check(shape, dtype)
        if math.prod(shape) == 0:
            return jnp.zeros(shape, dtype, out_sharding=out_sharding)
        a, b = self.coeffs(shape, dtype)
        x = draw(self.base, key, shape, dtype, out_sharding=out_sharding)
        if a is not None:
            x = x * a
        if b is not None:
            x = x + b
        return x

    def coeffs(self, shape: Shape, dtype: Any) -> Coeffs:
        """``(a, b)`` at ``shape`` in ``dtype``, None where the draw is not scaled or shifted."""
        return self.affine(shape).coeffs(self.base, dtype)

    def moments(self, shape: Sequence[int]) -> tuple[float, float]:
        """The exact mean and variance of one entry of ``init(key, shape)``: the base draw's,
        through ``(a, b)`` (:meth:`Affine.moments`)."""
        shape, _ = self._check(shape, None)
        return self.affine(shape).moments(self.base, shape)

    @property
    def moments_fn(self) -> Callable[[Sequence[int]], tuple[float, float]]:
        """Deprecated: :meth:`moments`."""
        warnings.warn(
            "Initializer.moments_fn is deprecated and will be removed in the next release; "
            "use Initializer.moments",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.moments

    def variance(self, shape: Sequence[int]) -> float:
        """The exact variance of one entry; ``moments(shape)[1]``."""
        return self.moments(shape)[1]

    def _check(self, shape: Sequence[int], dtype: Any) -> tuple[Shape, Any]:
        try:  # operator.index: 2.5 and "4" are not dimensions
            shape = tuple(operator.index(d) for d in shape)
        except TypeError:
            raise TypeError(
                f"{self.spec}: shape must be a sequence of ints; got {shape!r}"
            ) from None
        if any(d < 0 for d in shape):
            raise ValueError(f"{self.spec}: shape {shape} has a negative dimension")
        if len(shape) < self.min_rank:
            hint = ""
            if len(shape) < 2:
                hint = " For a bias vector use zeros, constant(value=...) or normal(stddev=...)."
            raise ValueError(
                f"{self.spec} needs a weight shape of rank >= {self.min_rank} (its axes, "
                f"fan-in and fan-out); got shape {shape} (rank {len(shape)}).{hint}"
            )
        dtype = self.dtype if dtype is None else dtype
        dtype = jnp.dtype(jax.dtypes.canonicalize_dtype(float if dtype is None else dtype))
        if not jnp.issubdtype(dtype, jnp.floating):
            raise ValueError(
                f"{self.spec}: jaxinit initializers draw real floating-point weights; "
                f"got dtype {dtype}. Use float32, bfloat16, float16 or float64 (x64)."
            )
        return shape, dtype


# The draws jax's own initializers make with an out_sharding (its normal, truncated_normal,
# uniform, variance_scaling, zeros, ones and constant take one; orthogonal and
# delta_orthogonal raise NotImplementedError).
SHARDED_DRAWS = (*FROM_BITS, Constant)


def _check_out_sharding(spec: str, base: Base, out_sharding: Any) -> None:
    """A TypeError unless ``out_sharding`` is None, a NamedSharding or a PartitionSpec (what
    jax's initializers take); NotImplementedError for a draw that is not one of
    ``SHARDED_DRAWS``."""
    if out_sharding is None:
        return
    if not isinstance(out_sharding, (NamedSharding, PartitionSpec)):
        raise TypeError(
            f"{spec}: out_sharding must be a jax.sharding.NamedSharding, a "
            f"jax.sharding.PartitionSpec or None; got {out_sharding!r:.60} "
            f"({type(out_sharding).__name__})"
        )
    if not isinstance(base, SHARDED_DRAWS):
        kinds = ", ".join(k.KIND for k in SHARDED_DRAWS)
        raise NotImplementedError(
            f"{spec}: its {base.kind} draw takes no out_sharding (as jax's orthogonal and "
            f"delta_orthogonal take none); draws that take one: {kinds}. Place the result "
            "with jax.sharding.reshard(init(key, shape), out_sharding)"
        )


def _check_key(spec: str, key: Any) -> None:
    """A TypeError unless ``key`` is a jax PRNG key: a typed key (``jax.random.key``) or
    legacy raw key data (``jax.random.PRNGKey``: uint32), concrete or traced."""
    dtype = getattr(key, "dtype", None)
    if dtype is not None and (
        jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key) or dtype == np.uint32
    ):
        return
    what = type(key).__name__ if dtype is None else f"{type(key).__name__} of dtype {dtype}"
    raise TypeError(
        f"{spec}: key must be a jax PRNG key such as jax.random.key(0); got {key!r:.60} ({what})"
    )


def check_variance(who: str, what: str, variance: float) -> float:
    """``variance`` if float32 holds it; else a ValueError: weights drawn with it would be
    ±inf (every hyperparameter is already a float32 number, its square may not be).

    Example:
      >>> check_variance("normal", "the variance stddev²", 1e-4)
      0.0001
    """
    if not abs(variance) <= FLOAT32_MAX:
        raise ValueError(
            f"{who}: {what} = {variance:.4g} is beyond float32's range ({FLOAT32_MAX:.4g}); "
            "weights drawn with it would be ±inf or their statistics overflow. Choose a "
            "smaller scale"
        )
    return variance


def _from_spec(spec: str) -> Initializer:
    """What a pickled Initializer unpickles with: ``registry.get(spec)``."""
    return registry.get(spec)


def _custom_of(fn: Callable) -> Initializer:
    """A plain jax initializer given where a spec goes: ``custom(fn)``, labelled by its name."""
    from jaxinit.initializers._basic import custom  # _basic builds on this module

    return custom(fn)


def initializer_or_function(init: Any) -> Any:
    """A spec's Initializer, or a plain function ``(key, shape, dtype)`` as it is: for what
    only draws (a Flax layer, a Jacobian's weights) and needs no label, so jax's unnamed
    ``init`` functions are taken; a grid needs a label and goes through ``registry.get``."""
    if callable(init) and not isinstance(init, (str, Initializer)):
        return init
    return registry.get(init)


registry: Registry[Initializer] = Registry(
    "initializer", Initializer, wrap_callable=_custom_of, takes_dtype=True
)


def draw(
    base: Base,
    key: Array,
    shape: Shape,
    dtype: Any,
    *,
    out_sharding: NamedSharding | PartitionSpec | None = None,
) -> Array:
    """A standardized draw of kind ``base``, before the ``a * x + b`` step; ``out_sharding``
    (for ``SHARDED_DRAWS`` only) as jax's samplers take it."""
    if isinstance(base, FROM_BITS):
        return _flat_draw(base, key, tuple(shape), dtype, out_sharding=out_sharding)
    match base:
        case Constant():
            return jnp.zeros(shape, dtype, out_sharding=out_sharding)
        case DeltaOrthogonal(column_axis=axis):
            return _delta_orthogonal(key, shape, dtype, column_axis=axis)
        case Orthogonal(column_axis=axis) | Lsuv(column_axis=axis):  # LSUV's rescale needs data
            return _orthogonal(key, shape, dtype, column_axis=axis)
        case Identity(groups=groups, layout=layout):
            return _dirac(shape, dtype, groups=groups, layout=layout)
        case Sparse(sparsity=sparsity, axis=axis):
            return _sparse(key, shape, dtype, sparsity=sparsity, axis=axis)
        case Custom(fn=fn):
            return _custom(fn, key, tuple(shape), dtype)
    raise ValueError(f"unknown draw {base!r}")


def _custom(fn: Callable, key: Array, shape: Shape, dtype: Any) -> Array:
    """``fn(key, shape, dtype)``, checked: an array of that shape, cast to ``dtype``."""
    w = jnp.asarray(fn(key, shape, dtype))
    if w.shape != shape:
        name = getattr(fn, "__name__", repr(fn))
        raise ValueError(f"custom initializer {name!r} drew shape {w.shape} for shape {shape}")
    return w.astype(dtype)


def _flat_draw(
    base: Base, key: Array, shape: Shape, dtype: Any, *, out_sharding: Any = None
) -> Array:
    """``jax.random`` draw of ``base`` (one of ``FROM_BITS``) made flat and reshaped: the same
    bits, compiled faster.

    jax's threefry numbers the entries of a draw by their flat (row-major)
    index, so a ``(n,)`` draw reshaped is bitwise the draw of the shape. XLA:CPU
    compiles the flat one several times faster: the multi-dimensional
    counter's index arithmetic grows with the rank (``benchmarks/README.md``).
    A draw with an ``out_sharding`` is made in its shape, as jax's initializers
    make it: the sharding names the shape's axes.
    """
    size = (math.prod(shape),) if out_sharding is None else shape
    match base:
        case Normal():
            out = jax.random.normal(key, size, dtype, out_sharding=out_sharding)
        case TruncatedNormal(lower=lower, upper=upper):
            out = jax.random.truncated_normal(
                key, lower, upper, size, dtype, out_sharding=out_sharding
            )
        case Uniform():  # U[-1, 1), as jax's variance_scaling draws it
            out = jax.random.uniform(key, size, dtype, -1, out_sharding=out_sharding)
        case Uniform01():  # U[0, 1), as jax's uniform(scale) draws it
            out = jax.random.uniform(key, size, dtype, out_sharding=out_sharding)
        case _:
            raise ValueError(f"{base!r} is not drawn from random bits")
    return out.reshape(shape)


def _from_bits(base: Base, bits: Array) -> Array:
    """A float32 draw of kind ``base`` (one of ``FROM_BITS``) from the key's raw bits, bitwise
    ``draw(base, key, shape, float32)`` (jax's samplers, :mod:`jaxinit._jax_compat`)."""
    match base:
        case Uniform():
            return _jax_compat.uniform_from_bits(bits, -1.0, 1.0)
        case Uniform01():
            return _jax_compat.uniform_from_bits(bits, 0.0, 1.0)
        case Normal():
            return _jax_compat.normal_from_bits(bits)
        case TruncatedNormal(lower=lower, upper=upper):
            return _jax_compat.truncated_normal_from_bits(bits, lower, upper)
    raise ValueError(f"{base!r} is not drawn from random bits")


def bits_many(requests: Sequence[tuple[Array, int]]) -> list[Array]:
    """Several flat ``random.bits`` draws in one threefry pass.

    Each request is ``(keys, n)``: a ``(k,)`` key array and a size; its result
    is ``(k, n)`` uint32, row ``i`` bitwise ``jax.random.bits(keys[i], (n,))``.
    jax's partitionable threefry (its default) makes entry ``j`` of a draw from
    the key and the counter ``j`` alone; hashing every request's counters in one
    call (:func:`jaxinit._jax_compat.threefry_bits`) keeps those bits and
    compiles one hash instead of one per request (each is kernels of its own for
    XLA to compile). With another PRNG, the older counter layout or a jax without
    the threefry primitive, each request is drawn on its own (the same bits,
    slower to compile).
    """
    fused = _jax_compat.threefry_hash_available() and all(
        _jax_compat.partitionable_threefry(keys) for keys, _ in requests
    )
    if not fused:  # one key at a time: rbg keys draw other bits under vmap
        return [
            jnp.stack([jax.random.bits(keys[i], (n,), jnp.uint32) for i in range(keys.shape[0])])
            for keys, n in requests
        ]
    k1, k2, counts = [], [], []
    for keys, n in requests:
        data = jax.random.key_data(keys)  # (k, 2)
        k1.append(jnp.repeat(data[:, 0], n))
        k2.append(jnp.repeat(data[:, 1], n))
        counts.append(jnp.tile(jnp.arange(n, dtype=jnp.uint32), keys.shape[0]))
    bits = _jax_compat.threefry_bits(
        jnp.concatenate(k1), jnp.concatenate(k2), jnp.concatenate(counts)
    )
    out, start = [], 0
    for keys, n in requests:
        size = keys.shape[0] * n
        out.append(bits[start : start + size].reshape(keys.shape[0], n))
        start += size
    return out


def families_from_bits(
    bases: Sequence[Base], key: Array | None, shape: Shape, bits: Array | None
) -> Array:
    """:func:`draw_families` from the key's flat ``random.bits`` (None when no kind needs them)."""
    out = [
        _from_bits(b, bits)
        if isinstance(b, FROM_BITS)
        else draw(b, key, shape, jnp.float32).ravel()
        for b in bases
    ]
    return jnp.stack(out).reshape(len(bases), *shape)


def families_many(
    bases: Sequence[Base], keys: Sequence[Array], shapes: Sequence[Shape]
) -> list[Array]:
    """:func:`draw_families` for several ``(key, shape)`` at once, each ``(len(bases), *shape)``.

    The bits of all of them come from one threefry (:func:`bits_many`) and each bits-drawn
    kind is computed once over all of them: its sampler is elementwise, so every entry is
    the same function of the same 32 bits as one draw at a time (bitwise), while the
    program holds one sampler per kind instead of one per draw (compile time grows with
    the number of kernels, not their size)."""
    if not keys:
        return []
    sizes = [math.prod(shape) for shape in shapes]
    drawn: dict[int, Array] = {}
    starts = [0] * len(keys)  # where each draw's entries start in the flat draws
    if needs_bits(bases):
        by_size: dict[int, list[int]] = {}  # one bits request per size: (draws, size)
        for i, n in enumerate(sizes):
            by_size.setdefault(n, []).append(i)
        requests = [(jnp.stack([keys[i] for i in group]), n) for n, group in by_size.items()]
        offset = 0
        for n, group in by_size.items():
            for j, i in enumerate(group):
                starts[i] = offset + j * n
            offset += len(group) * n
        flat = jnp.concatenate([rows.ravel() for rows in bits_many(requests)])
        drawn = {f: _from_bits(b, flat) for f, b in enumerate(bases) if isinstance(b, FROM_BITS)}
    out = []
    for key, shape, n, start in zip(keys, shapes, sizes, starts, strict=True):
        kinds = [
            drawn[f][start : start + n] if f in drawn else draw(b, key, shape, jnp.float32).ravel()
            for f, b in enumerate(bases)
        ]
        out.append(jnp.stack(kinds).reshape(len(bases), *shape))
    return out


def needs_bits(bases: Sequence[Base]) -> bool:
    """Whether some kind in ``bases`` is drawn from raw bits (see :func:`families_from_bits`)."""
    return any(isinstance(b, FROM_BITS) for b in bases)


def draw_families(bases: Sequence[Base], key: Array, shape: Shape) -> Array:
    """float32 draws ``(len(bases), *shape)`` of several kinds on one key, each bitwise
    ``draw(base, key, shape, float32)``.

    Normal, truncated normal and uniform draws are all functions of the same
    32 random bits per entry (``jax.random.bits(key, shape)``), so the bits
    are made once for all of them: a sweep's common random numbers cost one
    threefry pass per layer, and its program holds one threefry, not one per
    family (each would be compiled on its own).
    """
    bits = None
    if needs_bits(bases):  # flat: see _flat_draw
        bits = jax.random.bits(key, (math.prod(shape),), jnp.uint32)
    return families_from_bits(bases, key, shape, bits)


def _orthogonal(key: Array, shape: Shape, dtype: Any, *, column_axis: int) -> Array:
    # As jax.nn.initializers.orthogonal, bit for bit. QR has no half-precision
    # kernel, so bfloat16/float16 weights are drawn in float32 and rounded.
    work = dtype if jnp.finfo(dtype).bits >= 32 else jnp.float32
    n_rows, n_cols = math.prod(shape) // shape[column_axis], shape[column_axis]
    q = jax.random.orthogonal(key, n_rows, (), work, n_cols)
    q = jnp.reshape(q, (*np.delete(shape, column_axis), shape[column_axis]))
    return jnp.moveaxis(q, -1, column_axis).astype(dtype)


def _sparse(key: Array, shape: Shape, dtype: Any, *, sparsity: float, axis: int = -2) -> Array:
    # Martens (2010): each unit keeps a fixed number of incoming weights. In
    # jax's (in, out) layout a unit's incoming weights are a column (axis -2).
    # Torch's sparse_ zeroes along its (out, in) weight's axis 0 instead (see
    # sparse's docstring); ``axis`` says along which axis each fibre is zeroed.
    k_values, k_mask = jax.random.split(key)
    values = jax.random.normal(k_values, shape, dtype)
    order = jax.random.uniform(k_mask, shape)
    rank = jnp.argsort(jnp.argsort(order, axis=axis), axis=axis)  # a random permutation per fibre
    keep = rank >= sparse_zeros(shape[axis], sparsity)
    return jnp.where(keep, values, jnp.zeros((), dtype))


def _delta_orthogonal(key: Array, shape: Shape, dtype: Any, *, column_axis: int) -> Array:
    # As jax.nn.initializers.delta_orthogonal, bit for bit: an orthogonal (in, out)
    # matrix at the centre tap ((k - 1) // 2 on every spatial axis), zeros elsewhere.
    # A rank-2 shape has no spatial axes: the whole kernel is the centre tap.
    q = _orthogonal(key, shape[-2:], dtype, column_axis=column_axis)
    if len(shape) == 2:
        return q
    centre = tuple((k - 1) // 2 for k in shape[:-2])
    return jnp.zeros(shape, dtype).at[centre].set(q)


LAYOUTS = tuple(LAYOUT_AXES)
# each convention's own layout: jax and keras kernels are (..., in, out), torch's (out, in, ...)
CONVENTION_LAYOUT = {"jax": "flax", "keras": "flax", "torch": "torch"}


def resolve_layout(convention: str, layout: str | None) -> str:
    """``layout`` if given, else ``convention``'s own; both checked against their choices."""
    check_choice("convention", convention, tuple(CONVENTION_LAYOUT))
    if layout is None:
        return CONVENTION_LAYOUT[convention]
    return check_choice("layout", layout, LAYOUTS)


def dirac_taps(shape: Shape, groups: int, layout: str) -> tuple[np.ndarray, ...]:
    """The indices of the ones of ``dirac(groups, layout)`` on ``shape``, as torch places them.

    Out channel ``g·(out/groups) + d`` reads in channel ``d`` at the centre tap
    (``k // 2`` on every spatial axis), for ``d < min(out/groups, in)``.
    """
    if layout == "flax":  # (spatial..., in, out)
        spatial, n_in, n_out = shape[:-2], shape[-2], shape[-1]
    else:  # torch: (out, in, spatial...)
        spatial, n_in, n_out = shape[2:], shape[1], shape[0]
    per_group = n_out // groups
    d = np.tile(np.arange(min(per_group, n_in)), groups)
    out = np.repeat(np.arange(groups) * per_group, min(per_group, n_in)) + d
    centre = tuple(np.full(d.shape, k // 2) for k in spatial)
    return (*centre, d, out) if layout == "flax" else (out, d, *centre)


def _dirac(shape: Shape, dtype: Any, *, groups: int, layout: str) -> Array:
    if len(shape) == 2 and groups == 1:  # the identity matrix: jnp.eye, no scatter
        return jnp.eye(shape[0], shape[1], dtype=dtype)
    # scattered, not a NumPy constant: a wide layer's zeros stay out of the program
    return jnp.zeros(shape, dtype).at[dirac_taps(shape, groups, layout)].set(1)


def compute_fans(
    shape: Sequence[int], *, in_axis: Axes = -2, out_axis: Axes = -1, batch_axis: Axes = ()
) -> tuple[int, int]:
    """Fan-in and fan-out of a weight tensor, as :mod:`jax.nn.initializers` counts them.

    Axes that are none of ``in_axis``, ``out_axis`` and ``batch_axis`` form the
    receptive field (a convolution's spatial axes), which multiplies both fans::

        fan_in  = prod(shape[in_axis])  * receptive_field
        fan_out = prod(shape[out_axis]) * receptive_field

    The receptive field is a product, never a quotient, so zero-size
    dimensions give zero fans rather than a division by zero.
    """
    shape = tuple(shape)
    ndim = len(shape)

    def axes(a: Axes) -> tuple[int, ...]:
        seq = (a,) if isinstance(a, int) else tuple(a)
        for ax in seq:
            if not -ndim <= ax < ndim:
                raise ValueError(f"axis {ax} is out of range for shape {shape} (rank {ndim})")
        return tuple(ax % ndim for ax in seq)

    ins, outs, batch = axes(in_axis), axes(out_axis), axes(batch_axis)
    if len({*ins, *outs, *batch}) != len(ins) + len(outs) + len(batch):
        raise ValueError(
            f"in_axis={in_axis}, out_axis={out_axis} and batch_axis={batch_axis} "
            f"overlap for shape {shape}"
        )
    field = math.prod(d for i, d in enumerate(shape) if i not in {*ins, *outs, *batch})
    fan_in = math.prod(shape[i] for i in ins) * field
    fan_out = math.prod(shape[i] for i in outs) * field
    return fan_in, fan_out
