"""Initializers whose distribution does not depend on the fans.

Constants, fixed-scale normal / uniform / truncated normal, orthogonal,
identity and sparse. Each builder is a thin description: a standardized draw
(``base``), its scale and shift, and the exact moments.
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from jaxinit.initializers._core import (
    Initializer,
    check_real,
    registry,
    sparse_zeros,
)

_SQRT2 = math.sqrt(2.0)


def _constant(value: float) -> Initializer:
    return Initializer(
        base=("constant",),
        coeffs=lambda shape, dtype: (None, jnp.array(value, dtype)),
        moments_fn=lambda shape: (float(value), 0.0),
    )


@registry.register(formula="w = 0")
def zeros() -> Initializer:
    """All zeros. The usual bias initializer; as weights, symmetry never breaks."""
    return _constant(0.0)


@registry.register(formula="w = 1")
def ones() -> Initializer:
    """All ones."""
    return _constant(1.0)


@registry.register(shown=("value",), formula="w = value")
def constant(*, value: float = 0.0) -> Initializer:
    """Every entry equal to ``value``."""
    check_real("value", value)
    return _constant(value)


@registry.register(shown=("stddev",), formula="N(mean, stddev²)")
def normal(*, stddev: float = 1e-2, mean: float = 0.0) -> Initializer:
    r"""Gaussian weights, :math:`w \sim \mathcal{N}(\mathrm{mean}, \mathrm{stddev}^2)`.

    The default ``stddev=0.01`` is jax's. Keras' ``RandomNormal`` defaults to
    0.05 and torch's ``normal_`` to 1.0; pass it explicitly when comparing.
    With ``mean=0`` the numbers equal ``jax.nn.initializers.normal(stddev)``'s
    for the same key.
    """
    check_real("stddev", stddev, nonneg=True)
    check_real("mean", mean)
    return Initializer(
        base=("normal",),
        coeffs=lambda shape, dtype: (
            jnp.array(stddev, dtype),
            None if mean == 0.0 else jnp.array(mean, dtype),
        ),
        moments_fn=lambda shape: (float(mean), stddev**2),
    )


@registry.register(shown=("low", "high"), formula="U[low, high)")
def uniform(*, low: float = -0.05, high: float = 0.05) -> Initializer:
    r"""Uniform weights, :math:`w \sim U[\mathrm{low}, \mathrm{high})`, symmetric by default.

    Warning:
      ``jax.nn.initializers.uniform(scale)`` is :math:`U[0, \mathrm{scale})`, never
      centred. ``uniform(low=0.0, high=scale)`` reproduces it exactly (the same
      bits for the same key). The default ``±0.05`` is Keras' ``RandomUniform``;
      torch's ``uniform_`` defaults to ``U[0, 1)``.
    """
    check_real("low", low)
    check_real("high", high)
    if not low < high:
        raise ValueError(f"uniform needs low < high; got low={low!r}, high={high!r}")
    moments = lambda shape: ((low + high) / 2, (high - low) ** 2 / 12)  # noqa: E731
    if low == 0.0:  # jax's U[0, scale), bit for bit
        return Initializer(
            base=("uniform01",),
            coeffs=lambda shape, dtype: (jnp.array(high, dtype), None),
            moments_fn=moments,
        )
    return Initializer(
        base=("uniform",),  # U[-1, 1) * half_width + centre
        coeffs=lambda shape, dtype: (
            jnp.array((high - low) / 2, dtype),
            None if low == -high else jnp.array((low + high) / 2, dtype),
        ),
        moments_fn=moments,
    )


def truncated_normal_moments(lower: float, upper: float) -> tuple[float, float]:
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


@registry.register(shown=("stddev",), formula="N(0, stddev²) cut at [lower, upper]·stddev")
def truncated_normal(
    *, stddev: float = 1e-2, lower: float = -2.0, upper: float = 2.0
) -> Initializer:
    r"""A normal truncated to ``[lower·stddev, upper·stddev]``, as jax's.

    ``stddev`` is that of the normal *before* truncation, so the entries'
    standard deviation is smaller (×0.8796 at ±2). The variance-scaling
    initializers correct for that; this one, like jax's and Keras'
    ``TruncatedNormal``, does not. Torch's ``trunc_normal_(std, a, b)`` takes
    absolute bounds ``a``, ``b`` instead of multiples of ``stddev``.
    """
    check_real("stddev", stddev, nonneg=True)
    check_real("lower", lower)
    check_real("upper", upper)
    if not lower < upper:
        raise ValueError(f"truncated_normal needs lower < upper; got {lower!r}, {upper!r}")
    mean, var = truncated_normal_moments(lower, upper)
    return Initializer(
        base=("truncated_normal", float(lower), float(upper)),
        coeffs=lambda shape, dtype: (jnp.array(stddev, dtype), None),
        moments_fn=lambda shape: (mean * stddev, var * stddev**2),
    )


@registry.register(formula="Q / √Var(z) per layer on a batch, QᵀQ = I (data-dependent)")
def lsuv(*, target_var: float = 1.0, tol: float = 0.1, max_iter: int = 10) -> Initializer:
    r"""Layer-sequential unit-variance (LSUV, Mishkin & Matas 2016): data-dependent.

    Start from an orthonormal matrix :math:`Q` (as :func:`orthogonal`); then,
    layer by layer from the input, with the earlier layers already rescaled,
    compute that layer's output :math:`z_l = h_{l-1} W_l + b_l` on a batch and
    set :math:`W_l \leftarrow W_l \sqrt{\mathrm{target\_var} / \mathrm{Var}(z_l)}`
    until :math:`|\mathrm{Var}(z_l) - \mathrm{target\_var}| < \mathrm{tol}` or
    ``max_iter`` steps. With zero biases one step is exact.

    The data-dependent step needs the network and a batch, so it happens where
    those are: in a :class:`jaxinit.Grid` sweep (``inits=["lsuv"]``, on the
    grid's inputs) and in :func:`jaxinit.lsuv.lsuv_init` for a Flax model.
    Called alone, as a plain initializer, ``lsuv`` returns the orthonormal
    start, and its ``moments`` are the start's.

    Reference: D. Mishkin, J. Matas, "All you need is a good init", ICLR 2016,
    https://arxiv.org/abs/1511.06422 (Algorithm 1; their Tol_var = 0.1, T_max = 10).
    """
    check_real("target_var", target_var, positive=True)
    check_real("tol", tol, positive=True)
    if not isinstance(max_iter, int) or isinstance(max_iter, bool) or max_iter < 1:
        raise ValueError(f"lsuv: max_iter must be a positive int; got {max_iter!r}")
    start = orthogonal()
    return Initializer(
        base=("lsuv", -1, float(target_var), float(tol), max_iter),
        coeffs=start.coeffs,
        moments_fn=start.moments_fn,
        min_rank=2,
    )


@registry.register(formula="scale·Q, QᵀQ = I; Var = scale²/max(rows, cols)")
def orthogonal(*, scale: float = 1.0, column_axis: int = -1) -> Initializer:
    r"""A (semi-)orthogonal matrix times ``scale`` (Saxe et al., 2014).

    The tensor is flattened to ``(n_rows, n_cols)`` with ``n_cols =
    shape[column_axis]``; columns are orthonormal when ``n_rows >= n_cols``,
    rows otherwise. Each entry has mean 0 and variance
    :math:`\mathrm{scale}^2 / \max(n_\mathrm{rows}, n_\mathrm{cols})`, so a
    square layer has :math:`\sigma_w^2 = \mathrm{fan\_in}\,\mathrm{Var}(w) =
    \mathrm{scale}^2`. The same key gives jax's ``orthogonal`` bits.
    """
    check_real("scale", scale)
    if not isinstance(column_axis, int) or isinstance(column_axis, bool):
        raise TypeError(f"orthogonal: column_axis must be an int; got {column_axis!r}")

    def moments(shape):
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols if n_cols else 0
        return 0.0, scale**2 / max(n_rows, n_cols, 1)

    return Initializer(
        base=("orthogonal", column_axis),
        coeffs=lambda shape, dtype: (jnp.array(scale, dtype), None),
        moments_fn=moments,
        # column_axis must be one of the shape's axes
        min_rank=max(2, column_axis + 1 if column_axis >= 0 else -column_axis),
    )


@registry.register("eye", formula="scale·I over the last two axes")
def identity(*, scale: float = 1.0) -> Initializer:
    """``scale`` times the identity over the last two axes (rectangular allowed).

    Leading axes, if any, are batch axes: each slice is the same identity.
    Deterministic; the key is not used. Torch's ``eye_`` and Keras'
    ``Identity(gain)`` accept 2-D shapes only.
    """
    check_real("scale", scale)

    def moments(shape):
        n, m = shape[-2], shape[-1]
        k = min(n, m) / (n * m) if n * m else 0.0  # fraction of entries on the diagonal
        return scale * k, scale**2 * k - (scale * k) ** 2

    return Initializer(
        base=("identity",),
        coeffs=lambda shape, dtype: (jnp.array(scale, dtype), None),
        moments_fn=moments,
        min_rank=2,
    )


@registry.register(
    shown=("sparsity",), formula="⌈sparsity·fan_in⌉ zeros per unit, rest N(0, stddev²)"
)
def sparse(*, sparsity: float = 0.9, stddev: float = 1e-2) -> Initializer:
    r"""Sparse Gaussian weights (Martens, 2010; torch's ``sparse_``).

    In every column (one unit's incoming weights, axis -2 in jax's
    ``(in, out)`` layout) exactly :math:`\lceil \mathrm{sparsity} \cdot
    \mathrm{fan\_in} \rceil` entries are zero, at random positions; the rest
    are :math:`\mathcal{N}(0, \mathrm{stddev}^2)`. Torch zeroes that fraction of
    each column of its ``(out, in)`` weight instead, i.e. of a unit's outgoing
    weights.
    """
    check_real("sparsity", sparsity)
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1]; got {sparsity!r}")
    check_real("stddev", stddev, nonneg=True)

    def moments(shape):
        rows = shape[-2]
        kept = 1 - sparse_zeros(rows, sparsity) / rows if rows else 0.0
        return 0.0, stddev**2 * kept

    return Initializer(
        base=("sparse", float(sparsity)),
        coeffs=lambda shape, dtype: (jnp.array(stddev, dtype), None),
        moments_fn=moments,
        min_rank=2,
    )


eye = identity
