"""The standardized draws an initializer scales: one small typed record per kind.

An :class:`~jaxinit.initializers.Initializer` is ``w = a · x + b`` with ``x``
a standardized draw described by its ``base``, one of the records below. A
record is a ``NamedTuple``, so it is hashable and compares by value: it is a
static argument of the compiled programs, and the sweep engine groups
initializers into draw families by it (one family per distinct record).

The first field, ``kind``, names the draw, so records of two kinds never
compare equal. It is filled in by the class; the other fields are keyword
arguments, e.g. ``TruncatedNormal(lower=-2.0, upper=2.0)``.

Each record knows the exact mean and variance of one entry of its draw,
``base.moments(shape)``; an initializer's moments follow from them and its
scale and shift (:class:`jaxinit.initializers._core.Affine`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import jax
import numpy as np

__all__ = [
    "CUSTOM_ENTRIES",
    "FROM_BITS",
    "LAYOUT_AXES",
    "QR",
    "Base",
    "Constant",
    "Custom",
    "DeltaOrthogonal",
    "Identity",
    "Lsuv",
    "Normal",
    "Orthogonal",
    "Sparse",
    "TruncatedNormal",
    "Uniform",
    "Uniform01",
    "estimated_moments",
    "sparse_zeros",
    "truncated_normal_moments",
]

Moments = tuple[float, float]  # (mean, variance) of one entry

# layout -> (in_axis, out_axis) of a weight tensor
LAYOUT_AXES = {"flax": (-2, -1), "torch": (1, 0)}

_SQRT2 = math.sqrt(2.0)


class _Kind(tuple):
    """Mixin of the records: ``kind`` from the class, every other field by keyword."""

    __slots__ = ()
    KIND: ClassVar[str]
    _fields: tuple[str, ...]

    def __new__(cls, **fields: Any):
        names = cls._fields[1:]
        if set(fields) != set(names):
            raise TypeError(f"{cls.__name__} takes the keywords {list(names)}; got {list(fields)}")
        return tuple.__new__(cls, (cls.KIND, *(fields[n] for n in names)))

    def __getnewargs_ex__(self) -> tuple[tuple, dict[str, Any]]:  # copy and pickle
        return (), dict(zip(self._fields[1:], self[1:], strict=True))


class _Plain(NamedTuple):
    kind: str


class Normal(_Kind, _Plain):
    """N(0, 1), as ``jax.random.normal`` draws it."""

    KIND = "normal"

    def moments(self, shape: Sequence[int]) -> Moments:
        return 0.0, 1.0


class Uniform(_Kind, _Plain):
    """U[-1, 1), as jax's ``variance_scaling`` draws it."""

    KIND = "uniform"

    def moments(self, shape: Sequence[int]) -> Moments:
        return 0.0, 1.0 / 3.0  # (1 - (-1))² / 12


class Uniform01(_Kind, _Plain):
    """U[0, 1), as jax's ``uniform(scale)`` draws it."""

    KIND = "uniform01"

    def moments(self, shape: Sequence[int]) -> Moments:
        return 0.5, 1.0 / 12.0


class Constant(_Kind, _Plain):
    """Zeros: the whole weight is the shift ``b``."""

    KIND = "constant"

    def moments(self, shape: Sequence[int]) -> Moments:
        return 0.0, 0.0


class _TruncatedNormal(NamedTuple):
    kind: str
    lower: float
    upper: float


class TruncatedNormal(_Kind, _TruncatedNormal):
    """N(0, 1) truncated to ``[lower, upper]``, as ``jax.random.truncated_normal`` draws it."""

    KIND = "truncated_normal"

    def moments(self, shape: Sequence[int]) -> Moments:
        return truncated_normal_moments(self.lower, self.upper)


def truncated_normal_moments(lower: float, upper: float) -> Moments:
    r"""Mean and variance of :math:`\mathcal{N}(0, 1)` truncated to ``[lower, upper]``.

    With :math:`Z = \Phi(b) - \Phi(a)`:
    :math:`\mu = (\varphi(a) - \varphi(b)) / Z` and
    :math:`\sigma^2 = 1 + (a\varphi(a) - b\varphi(b)) / Z - \mu^2`.
    At ±2 the standard deviation is 0.87962566103423978.
    """
    pdf = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0  # noqa: E731
    xpdf = lambda x: x * pdf(x) if math.isfinite(x) else 0.0  # noqa: E731
    z = (math.erf(upper / _SQRT2) - math.erf(lower / _SQRT2)) / 2
    mean = (pdf(lower) - pdf(upper)) / z
    return mean, 1 + (xpdf(lower) - xpdf(upper)) / z - mean**2


class _Orthogonal(NamedTuple):
    kind: str
    column_axis: int


def _orthogonal_moments(shape: Sequence[int], column_axis: int) -> Moments:
    """An orthonormal ``(rows, cols)`` matrix's entries (Saxe et al., 2014): mean 0, variance
    ``1 / max(rows, cols)``; ``cols = shape[column_axis]``, the other axes flattened to rows."""
    n_cols = shape[column_axis]
    n_rows = math.prod(shape) // n_cols if n_cols else 0
    return 0.0, 1.0 / max(n_rows, n_cols, 1)


class Orthogonal(_Kind, _Orthogonal):
    """An orthonormal matrix (jax's QR of a Gaussian), its columns along ``column_axis``."""

    KIND = "orthogonal"

    def moments(self, shape: Sequence[int]) -> Moments:
        return _orthogonal_moments(shape, self.column_axis)


class DeltaOrthogonal(_Kind, _Orthogonal):
    """:class:`Orthogonal`'s ``(in, out)`` matrix at a conv kernel's centre tap, zeros elsewhere."""

    KIND = "delta_orthogonal"

    def moments(self, shape: Sequence[int]) -> Moments:
        """Variance ``1 / (max(in, out) · taps)``: an orthonormal matrix at one of the taps."""
        taps = math.prod(shape[:-2])
        return 0.0, 1.0 / (max(shape[-2], shape[-1], 1) * max(taps, 1))


class _Lsuv(NamedTuple):
    kind: str
    column_axis: int
    target_var: float
    tol: float
    max_iter: int


class Lsuv(_Kind, _Lsuv):
    """LSUV: :class:`Orthogonal`'s draw, rescaled per layer on data (Mishkin & Matas, 2016).

    The rescale to ``target_var`` (within ``tol``, at most ``max_iter``
    steps) needs the layer's inputs: the engine applies it in the forward pass.
    """

    KIND = "lsuv"

    def moments(self, shape: Sequence[int]) -> Moments:
        """The orthonormal start's (the rescale depends on data)."""
        return _orthogonal_moments(shape, self.column_axis)


class _Identity(NamedTuple):
    kind: str
    groups: int
    layout: str  # "flax": (..., in, out); "torch": (out, in, ...)


class Identity(_Kind, _Identity):
    """Ones at the centre tap per group, as torch's ``dirac_`` (the identity matrix when 2-D)."""

    KIND = "identity"

    def moments(self, shape: Sequence[int]) -> Moments:
        """A fraction ``k`` of the entries is 1: mean ``k``, variance ``k - k²``. Each of the
        ``groups`` groups of out channels has ``min(out/groups, in)`` ones."""
        in_axis, out_axis = LAYOUT_AXES[self.layout]
        ones = self.groups * min(shape[out_axis] // self.groups, shape[in_axis])
        size = math.prod(shape)
        k = ones / size if size else 0.0
        return k, k - k**2


class _Sparse(NamedTuple):
    kind: str
    sparsity: float
    axis: int


class Sparse(_Kind, _Sparse):
    """N(0, 1) with ``ceil(sparsity · n)`` zeros per fibre along ``axis`` (Martens, 2010)."""

    KIND = "sparse"

    def moments(self, shape: Sequence[int]) -> Moments:
        """Variance: the fraction of entries kept (N(0, 1) there, zero elsewhere)."""
        rows = shape[self.axis]
        return 0.0, 1 - sparse_zeros(rows, self.sparsity) / rows if rows else 0.0


def sparse_zeros(rows: int, sparsity: float) -> int:
    """How many of a fibre's ``rows`` entries :class:`Sparse` sets to zero."""
    return min(rows, math.ceil(sparsity * rows))


class _Custom(NamedTuple):
    kind: str
    fn: Any  # (key, shape, dtype) -> array: a plain jax initializer
    mean: Any  # None (estimated), a float, or shape -> float
    variance: Any  # as mean


CUSTOM_ENTRIES = 1 << 17  # entries drawn to estimate a custom draw's moments at one shape


class Custom(_Kind, _Custom):
    """A user's jax initializer ``fn(key, shape, dtype)``, drawn as it is (its own family:
    the engine cannot share draws it does not understand). Its moments are the declared
    ``mean`` and ``variance`` (numbers, or functions of the shape), else estimated by
    :func:`estimated_moments`."""

    KIND = "custom"

    def moments(self, shape: Sequence[int]) -> Moments:
        declared = [m(tuple(shape)) if callable(m) else m for m in (self.mean, self.variance)]
        if None in declared:
            estimate = estimated_moments(self.fn, tuple(shape))
            declared = [e if d is None else d for d, e in zip(declared, estimate, strict=True)]
        return float(declared[0]), float(declared[1])


@functools.lru_cache(maxsize=256)
def estimated_moments(fn: Any, shape: tuple[int, ...]) -> Moments:
    """Mean and variance of one entry of ``fn``'s draws at ``shape``, from at least
    :data:`CUSTOM_ENTRIES` (2¹⁷) entries: ``ceil(2¹⁷ / size)`` draws on the keys
    ``split(key(0))``, pooled, in float64. For a Gaussian draw the variance's relative
    standard error is √(2/n) ≈ 0.4%; entries within one draw may be dependent (an orthogonal
    matrix's are), which the pooled estimate does not need but the error bound assumes
    away. A mean within 4 standard errors of zero is reported as 0 (a zero-mean draw's
    estimate is never exactly 0, and theory needs zero-mean weights). Computed eagerly,
    even inside a trace."""
    size = max(1, math.prod(shape))
    n = -(-CUSTOM_ENTRIES // size)
    with jax.ensure_compile_time_eval():
        keys = jax.random.split(jax.random.key(0), n)
        draws = np.concatenate(
            [np.asarray(fn(k, shape, np.float32), np.float64).ravel() for k in keys]
        )
    mean, var = float(draws.mean()), float(draws.var())
    if abs(mean) <= 4 * math.sqrt(var / draws.size):
        mean = 0.0
    return mean, var


Base = (
    Normal
    | TruncatedNormal
    | Uniform
    | Uniform01
    | Constant
    | Orthogonal
    | DeltaOrthogonal
    | Lsuv
    | Identity
    | Sparse
    | Custom
)

# Kinds drawn from the key's 32 random bits per entry, as jax.random draws them: the engine
# makes those bits once for every such family of a layer.
FROM_BITS = (Normal, TruncatedNormal, Uniform, Uniform01)
# Kinds drawn through LAPACK's QR, which the engine draws on one device.
QR = (Orthogonal, DeltaOrthogonal, Lsuv)
