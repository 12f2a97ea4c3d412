r"""Initializers whose distribution does not depend on the fans.

Constants, fixed-scale normal / uniform / truncated normal, orthogonal,
identity and sparse, and the convolution kernels dirac and delta orthogonal.
Each builder is a thin description: a standardized draw (``base``) and its
scale and shift (an :class:`~jaxinit.initializers._core.Affine`); the exact
moments follow from the draw's.

Layouts: jax, Flax and Keras kernels are ``(spatial..., in, out)`` (a dense
kernel ``(in, out)``), torch's are ``(out, in, spatial...)``. ``convention``
picks the library's own layout; ``layout="flax"`` or ``layout="torch"``
overrides it, so ``sparse(convention="torch", layout="flax")`` is torch's
``sparse_`` pattern on a Flax kernel.

Convolution kernels (Xiao et al. 2018):

.. math::  W_{\mathrm{dirac}}[c, d, o] = \mathrm{scale}\cdot[c = \lfloor k/2 \rfloor]\,
   [o = g\,\tfrac{\mathrm{out}}{\mathrm{groups}} + d], \qquad
   W_{\delta}[c] = \mathrm{scale}\cdot Q\,[c = \lfloor (k-1)/2 \rfloor],\quad QQ^\top = I

for the spatial tap :math:`c`, in channel :math:`d` and out channel :math:`o`
(torch's ``dirac_`` and jax's ``delta_orthogonal`` choose their centres so;
they differ for even kernel sizes).

References:
  - Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics
    of learning in deep linear neural networks. https://arxiv.org/abs/1312.6120
  - Martens (2010), Deep learning via Hessian-free optimization. ICML 2010.
  - Xiao, Bahri, Sohl-Dickstein, Schoenholz & Pennington (2018), Dynamical
    isometry and a mean field theory of CNNs: how to train 10,000-layer vanilla
    convolutional neural networks. https://arxiv.org/abs/1806.05393
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from jaxinit._checks import check_int, check_real
from jaxinit._spec import custom_label
from jaxinit.initializers._bases import (
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
    truncated_normal_moments,
)
from jaxinit.initializers._core import (
    LAYOUT_AXES,
    Affine,
    Initializer,
    check_variance,
    layout_fans,
    registry,
    resolve_layout,
)

Convention = Literal["jax", "keras", "torch"]
Layout = Literal["flax", "torch"]


def _constant(value: float) -> Initializer:
    affine = Affine(shift=float(value))
    return Initializer(base=Constant(), affine=lambda shape: affine)


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
    check_real("stddev", stddev, low=0.0)
    check_real("mean", mean)
    check_variance("normal", "the variance stddev²", stddev * stddev)
    affine = Affine(scale=stddev, shift=None if mean == 0.0 else mean)
    return Initializer(base=Normal(), affine=lambda shape: affine)


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
    check_variance("uniform", "the variance (high - low)²/12", (high - low) ** 2 / 12)
    if low == 0.0:  # jax's U[0, scale), bit for bit
        base, affine = Uniform01(), Affine(scale=high)
    else:  # U[-1, 1) * half_width + centre
        base = Uniform()
        affine = Affine(scale=(high - low) / 2, shift=None if low == -high else (low + high) / 2)
    return Initializer(base=base, affine=lambda shape: affine)


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
    check_real("stddev", stddev, low=0.0)
    check_real("lower", lower)
    check_real("upper", upper)
    if not lower < upper:
        raise ValueError(f"truncated_normal needs lower < upper; got {lower!r}, {upper!r}")
    _, var = truncated_normal_moments(lower, upper)
    check_variance("truncated_normal", "the variance stddev²·Var(cut N(0, 1))", var * stddev**2)
    affine = Affine(scale=stddev)
    return Initializer(
        base=TruncatedNormal(lower=float(lower), upper=float(upper)), affine=lambda shape: affine
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
    check_real("target_var", target_var, low=0.0, strict=True)
    check_real("tol", tol, low=0.0, strict=True)
    check_int("lsuv: max_iter", max_iter, low=1)
    start = orthogonal()
    return Initializer(
        base=Lsuv(column_axis=-1, target_var=float(target_var), tol=float(tol), max_iter=max_iter),
        affine=start.affine,
        min_rank=2,
    )


def _check_axis_choice(who: str, name: str, value, layout) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{who}: {name} must be an int; got {value!r}")
    if layout is not None:
        raise ValueError(
            f"{who}: give {name}={value!r} or layout={layout!r}, not both (layout sets {name})"
        )


@registry.register(formula="scale·Q, QᵀQ = I; Var = scale²/max(rows, cols)")
def orthogonal(
    *,
    scale: float = 1.0,
    column_axis: int | None = None,
    convention: Convention = "jax",
    layout: Layout | None = None,
) -> Initializer:
    r"""A (semi-)orthogonal matrix times ``scale`` (Saxe et al., 2014).

    The tensor is flattened to ``(n_rows, n_cols)`` with ``n_cols =
    shape[column_axis]``; columns are orthonormal when ``n_rows >= n_cols``,
    rows otherwise. Each entry has mean 0 and variance
    :math:`\mathrm{scale}^2 / \max(n_\mathrm{rows}, n_\mathrm{cols})`, so a
    square layer has :math:`\sigma_w^2 = \mathrm{fan\_in}\,\mathrm{Var}(w) =
    \mathrm{scale}^2`. The same key gives jax's ``orthogonal`` bits.

    Args:
      scale: the factor on the orthonormal matrix (torch's ``gain``).
      column_axis: the axis that is the columns; None takes the layout's:
        -1 for ``"flax"`` (jax's and Keras' flattening, ``(prod(shape[:-1]),
        shape[-1])``), 0 for ``"torch"``.
      convention: ``"jax"`` (default), ``"keras"`` or ``"torch"``. It only
        chooses the layout: under ``"torch"`` column_axis is 0, so the matrix
        is dim 0 against the flattened rest, as ``torch.nn.init.orthogonal_``
        views its ``(out, in, ...)`` weight (``W.reshape(shape[0], -1)`` is
        semi-orthogonal). The distribution of that matrix is the same Haar
        measure in every library; only which axes are flattened changes.
      layout: ``"flax"`` or ``"torch"``, overriding the convention's (and
        excluding ``column_axis``).
    """
    check_real("scale", scale)
    check_variance("orthogonal", "the variance scale²/n at n = 1", scale * scale)
    if column_axis is None:
        resolved = resolve_layout(convention, layout)
        column_axis = -1 if resolved == "flax" else 0
    else:
        resolved = resolve_layout(convention, None)
        _check_axis_choice("orthogonal", "column_axis", column_axis, layout)
    affine = Affine(scale=scale)
    return Initializer(
        base=Orthogonal(column_axis=column_axis),
        affine=lambda shape: affine,
        # column_axis must be one of the shape's axes
        min_rank=max(2, column_axis + 1 if column_axis >= 0 else -column_axis),
        fan_axes=layout_fans(resolved),
    )


@registry.register(formula="scale·Q at the centre tap, QQᵀ = I (in ≤ out), zeros elsewhere")
def delta_orthogonal(*, scale: float = 1.0, column_axis: int = -1) -> Initializer:
    r"""Delta-orthogonal conv kernel (Xiao et al., 2018), as ``jax.nn.initializers.delta_orthogonal``.

    On a ``(spatial..., in, out)`` kernel of rank 3, 4 or 5 (1-, 2- or 3-D
    convolution) the centre tap, index ``(k - 1) // 2`` of every spatial axis,
    is ``scale`` times an orthogonal ``(in, out)`` matrix drawn as
    :func:`orthogonal`; every other tap is zero. With ``in <= out`` that matrix
    has orthonormal rows, so the convolution is an isometry at
    initialization: the condition for dynamical isometry in very deep CNNs.
    The same key gives jax's bits, and jax's argument checks hold: rank 3 to 5
    and ``in <= out``. A rank-2 shape (a dense kernel) has no spatial axes, so
    its centre tap is the whole kernel: it is :func:`orthogonal`'s draw, and
    either side may be larger (so the initializer also fits ``nnx.Linear``,
    ``jaxinit list`` and sweeps, which use dense layers).

    Per entry the mean is 0 and the variance
    :math:`\mathrm{scale}^2 / (\max(\mathrm{in}, \mathrm{out}) \cdot
    \prod_s k_s)`; the in-to-out gain at the centre tap is ``scale``.

    Args:
      scale: the factor on the orthogonal matrix.
      column_axis: of the ``(in, out)`` centre matrix, as jax's: -1 (or 1)
        the out axis, -2 (or 0) the in axis.
    """
    check_real("scale", scale)
    check_variance("delta_orthogonal", "the variance scale²/n at n = 1", scale * scale)
    if not isinstance(column_axis, int) or isinstance(column_axis, bool):
        raise TypeError(f"delta_orthogonal: column_axis must be an int; got {column_axis!r}")
    if column_axis not in (-2, -1, 0, 1):
        raise ValueError(
            "delta_orthogonal: column_axis is an axis of the (in, out) centre matrix: "
            f"-2, -1, 0 or 1; got {column_axis!r}"
        )

    def check(shape):
        if len(shape) > 5:
            raise ValueError(
                f"delta_orthogonal needs a 3-D, 4-D or 5-D conv kernel (spatial..., in, out) "
                f"or a 2-D dense one; got shape {shape} (rank {len(shape)})"
            )
        if len(shape) >= 3 and shape[-1] < shape[-2]:
            raise ValueError(
                f"delta_orthogonal needs in channels <= out channels (the centre tap is an "
                f"isometry only then); got in={shape[-2]} > out={shape[-1]} in shape {shape}"
            )

    affine = Affine(scale=scale)

    def checked(shape):
        check(shape)
        return affine

    return Initializer(base=DeltaOrthogonal(column_axis=column_axis), affine=checked, min_rank=2)


@registry.register("eye", formula="scale·I at the centre tap (spatial..., in, out)")
def identity(*, scale: float = 1.0) -> Initializer:
    """``scale`` times the identity; on a conv kernel, at the centre tap only.

    A 2-D ``(in, out)`` shape is ``scale·I`` (rectangular allowed). A
    ``(spatial..., in, out)`` conv kernel gets ``scale·I`` at the centre tap
    (index ``k // 2`` of every spatial axis) and zeros elsewhere, so the
    convolution passes its input through unchanged: it is exactly
    :func:`dirac` with ``groups=1`` (torch's ``dirac_``, in Flax's layout;
    see there for even kernel sizes). Development versions before 0.1.0 put ``scale·I`` at
    every tap, a box filter.
    Leading axes are spatial, as for every fan-based initializer here (they
    multiply the fans); for a stack of dense layers draw each ``(in, out)``
    slice on its own (``jax.vmap`` or ``nnx.vmap``). Deterministic; the key is
    not used. Torch's ``eye_`` and Keras' ``Identity(gain)`` accept 2-D
    shapes only.

    Args:
      scale: the value on the diagonal.
    """
    check_real("scale", scale)
    check_variance("identity", "the variance (at most scale²)", scale * scale)

    affine = Affine(scale=scale)
    return Initializer(
        base=Identity(groups=1, layout="flax"), affine=lambda shape: affine, min_rank=2
    )


@registry.register(formula="scale at (centre tap, in d, out g·out/groups + d), zeros elsewhere")
def dirac(
    *,
    groups: int = 1,
    scale: float = 1.0,
    convention: Convention = "jax",
    layout: Layout | None = None,
) -> Initializer:
    r"""The Dirac delta conv kernel: torch's ``dirac_``, in jax's layout by default.

    A convolution with this kernel passes its input through: out channel
    :math:`g\cdot\mathrm{out}/\mathrm{groups} + d` reads in channel :math:`d`
    of its group at the centre tap (index ``k // 2`` of every spatial axis,
    torch's choice; :func:`delta_orthogonal` follows jax's ``(k - 1) // 2``),
    for :math:`d < \min(\mathrm{out}/\mathrm{groups}, \mathrm{in})`, and every
    other entry is zero. With ``groups=1`` it equals :func:`identity`.
    Deterministic; the key is not used. For an even kernel size, Flax's
    ``padding="SAME"`` puts the pass-through tap at ``(k - 1) // 2``, so this
    kernel (like torch's with ``padding="same"``) shifts the output by one
    position along that axis; odd sizes pass the input through exactly.

    Args:
      groups: the conv's number of groups (Flax's ``feature_group_count``):
        each group of out channels keeps the identity of its own in channels.
        The kernel's in axis is the in channels per group, as in both Flax
        and torch; ``groups`` must divide the out channels.
      scale: the value of the ones (torch's ``dirac_`` has 1).
      convention: ``"jax"`` (default) and ``"keras"`` lay the kernel out
        ``(spatial..., in, out)`` as Flax's ``nnx.Conv`` does; ``"torch"``
        lays it out ``(out, in, spatial...)``, which is exactly torch's
        ``dirac_(w, groups)``. Only the layout changes.
      layout: ``"flax"`` or ``"torch"``, overriding the convention's.

    Torch accepts 3-, 4- and 5-D kernels only; here any rank >= 2 works (a
    rank-2 kernel has no spatial axes: the identity, per group).
    """
    check_int("dirac: groups", groups, low=1)
    check_real("scale", scale)
    check_variance("dirac", "the variance (at most scale²)", scale * scale)
    resolved = resolve_layout(convention, layout)
    out_axis = LAYOUT_AXES[resolved][1]

    def check(shape):
        if shape[out_axis] % groups:
            raise ValueError(
                f"dirac: groups={groups} must divide the out channels; shape {shape} has "
                f"{shape[out_axis]} on axis {out_axis} (layout {resolved!r})"
            )

    affine = Affine(scale=scale)

    def checked(shape):
        check(shape)
        return affine

    return Initializer(
        # identity()'s draw where they agree: one sweep family
        base=Identity(groups=groups, layout=resolved),
        affine=checked,
        min_rank=2,
        fan_axes=layout_fans(resolved),
    )


@registry.register(
    shown=("sparsity",),
    formula="⌈sparsity·fan_in⌉ zeros per unit (torch: ⌈sparsity·fan_out⌉ per input), rest N(0, stddev²)",
)
def sparse(
    *,
    sparsity: float = 0.9,
    stddev: float = 1e-2,
    convention: Convention = "jax",
    layout: Layout | None = None,
) -> Initializer:
    r"""Sparse Gaussian weights (Martens, 2010; torch's ``sparse_``).

    The nonzero entries are :math:`\mathcal{N}(0, \mathrm{stddev}^2)`; what is
    zeroed depends on the convention:

    - ``"jax"`` and ``"keras"`` (Martens): each unit keeps a fixed number of
      incoming weights. Along the in axis (axis -2 of Flax's ``(in, out)``
      layout, a column) exactly :math:`\lceil \mathrm{sparsity} \cdot
      \mathrm{fan\_in} \rceil` entries are zero, at random positions, for every
      unit (and every index of the other axes).
    - ``"torch"`` (``torch.nn.init.sparse_``): on torch's ``(rows, cols) =
      (out, in)`` weight, each column has :math:`\lceil \mathrm{sparsity} \cdot
      \mathrm{rows} \rceil` zeros: a fraction of each *input's outgoing*
      weights, i.e. zeros along the out axis. Torch accepts 2-D weights
      only; here every index of the other axes is a column.

    ``layout`` says where the in and out axes are: ``"flax"`` (in -2, out -1)
    or ``"torch"`` (out 0, in 1); None takes the convention's own. So
    ``sparse(convention="torch")`` on a ``(out, in)`` array and
    ``sparse(convention="torch", layout="flax")`` on its ``(in, out)``
    transpose zero the same weights.

    Args:
      sparsity: the fraction of each fibre set to zero, in [0, 1].
      stddev: the standard deviation of the nonzero entries.
      convention: ``"jax"`` (default), ``"keras"`` or ``"torch"``; see above.
      layout: ``"flax"`` or ``"torch"``, overriding the convention's.
    """
    check_real("sparsity", sparsity)
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1]; got {sparsity!r}")
    check_real("stddev", stddev, low=0.0)
    check_variance("sparse", "the variance stddev²", stddev * stddev)
    resolved = resolve_layout(convention, layout)
    in_axis, out_axis = LAYOUT_AXES[resolved]
    axis = out_axis if convention == "torch" else in_axis  # the axis each fibre runs along
    affine = Affine(scale=stddev)
    return Initializer(
        base=Sparse(sparsity=float(sparsity), axis=axis),
        affine=lambda shape: affine,
        min_rank=2,
        fan_axes=layout_fans(resolved),
    )


eye = identity


def custom(
    fn: Callable,
    *,
    name: str | None = None,
    mean: float | Callable[[tuple[int, ...]], float] | None = None,
    variance: float | Callable[[tuple[int, ...]], float] | None = None,
) -> Initializer:
    """Your own jax initializer ``fn(key, shape, dtype) -> array`` as a jaxinit Initializer:
    a label, moments, and a place in ``Grid``, ``TrainGrid`` and ``theory``.

    Args:
      fn: any function with jax's initializer protocol (``jax.nn.initializers.he_normal()``,
        or your own); it is called with jax's key, the weight shape and the dtype.
      name: the label in results, tables and plots; default ``fn.__name__`` (a name such as
        ``init`` or ``<lambda>``, which jax's builders return, must be given).
      mean, variance: of one entry, numbers or functions of the shape (fan-based draws);
        None: estimated from 2¹⁷ drawn entries per shape (relative standard error of the
        variance ≈ 0.4% for a Gaussian draw; :func:`~jaxinit.initializers._bases.estimated_moments`).

    The sweep engine shares one draw per layer among initializers it understands (``W = a·Z
    + b``); it cannot see inside ``fn``, so each seed and layer gets ``fn``'s own draw, in the
    same compiled program: one more draw per layer, and one program per custom initializer
    (its function is part of the program). Such an initializer is not a spec string: it does
    not pickle, and a saved result keeps its label only.

    Example:
      >>> import jax, jaxinit as ji
      >>> init = ji.initializers.custom(jax.nn.initializers.he_normal(), name="jax_he",
      ...                               variance=lambda shape: 2 / shape[0])
      >>> init.spec, init.variance((784, 256)) == 2 / 784
      ('jax_he', True)
    """
    if not callable(fn):
        raise TypeError(f"custom: fn must be a function (key, shape, dtype) -> array; got {fn!r}")
    name = custom_label(registry, fn, name)
    for what, value in (("mean", mean), ("variance", variance)):
        if value is not None and not callable(value):
            check_real(f"custom: {what}", value, low=0.0 if what == "variance" else None)
    return Initializer(
        base=Custom(fn=fn, mean=mean, variance=variance),
        affine=lambda shape: Affine(),
        name=name,
        spec=name,
    )
