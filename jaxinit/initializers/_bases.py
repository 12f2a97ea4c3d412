"""The standardized draws an initializer scales: one small typed record per kind.

An :class:`~jaxinit.initializers.Initializer` is ``w = a · x + b`` with ``x``
a standardized draw described by its ``base``, one of the records below. A
record is a ``NamedTuple``, so it is hashable and compares by value: it is a
static argument of the compiled programs, and the sweep engine groups
initializers into draw families by it (one family per distinct record).

The first field, ``kind``, names the draw, so records of two kinds never
compare equal. It is filled in by the class; the other fields are keyword
arguments, e.g. ``TruncatedNormal(lower=-2.0, upper=2.0)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

__all__ = [
    "FROM_BITS",
    "QR",
    "Base",
    "Constant",
    "DeltaOrthogonal",
    "Identity",
    "Lsuv",
    "Normal",
    "Orthogonal",
    "Sparse",
    "TruncatedNormal",
    "Uniform",
    "Uniform01",
]


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


class Uniform(_Kind, _Plain):
    """U[-1, 1), as jax's ``variance_scaling`` draws it."""

    KIND = "uniform"


class Uniform01(_Kind, _Plain):
    """U[0, 1), as jax's ``uniform(scale)`` draws it."""

    KIND = "uniform01"


class Constant(_Kind, _Plain):
    """Zeros: the whole weight is the shift ``b``."""

    KIND = "constant"


class _TruncatedNormal(NamedTuple):
    kind: str
    lower: float
    upper: float


class TruncatedNormal(_Kind, _TruncatedNormal):
    """N(0, 1) truncated to ``[lower, upper]``, as ``jax.random.truncated_normal`` draws it."""

    KIND = "truncated_normal"


class _Orthogonal(NamedTuple):
    kind: str
    column_axis: int


class Orthogonal(_Kind, _Orthogonal):
    """An orthonormal matrix (jax's QR of a Gaussian), its columns along ``column_axis``."""

    KIND = "orthogonal"


class DeltaOrthogonal(_Kind, _Orthogonal):
    """:class:`Orthogonal`'s ``(in, out)`` matrix at a conv kernel's centre tap, zeros elsewhere."""

    KIND = "delta_orthogonal"


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


class _Identity(NamedTuple):
    kind: str
    groups: int
    layout: str  # "flax": (..., in, out); "torch": (out, in, ...)


class Identity(_Kind, _Identity):
    """Ones at the centre tap per group, as torch's ``dirac_`` (the identity matrix when 2-D)."""

    KIND = "identity"


class _Sparse(NamedTuple):
    kind: str
    sparsity: float
    axis: int


class Sparse(_Kind, _Sparse):
    """N(0, 1) with ``ceil(sparsity · n)`` zeros per fibre along ``axis`` (Martens, 2010)."""

    KIND = "sparse"


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
)

# Kinds drawn from the key's 32 random bits per entry, as jax.random draws them: the engine
# makes those bits once for every such family of a layer.
FROM_BITS = (Normal, TruncatedNormal, Uniform, Uniform01)
# Kinds drawn through LAPACK's QR, which the engine draws on one device.
QR = (Orthogonal, DeltaOrthogonal, Lsuv)
