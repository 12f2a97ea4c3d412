r"""Variance scaling, the one general fan-based initializer, and its named schemes.

Every fan-based scheme draws entries with mean 0 and variance

.. math::  \mathrm{Var}(w) = \frac{\mathrm{scale}}{n}, \qquad
   n \in \{\mathrm{fan\_in},\ \mathrm{fan\_out},\
   \tfrac{1}{2}(\mathrm{fan\_in} + \mathrm{fan\_out}),\
   \sqrt{\mathrm{fan\_in} \cdot \mathrm{fan\_out}}\}

exactly, whatever the distribution: a normal truncated at ±2σ is divided by
that truncation's standard deviation, 0.87962566103423978, and a uniform is
drawn on :math:`\pm\sqrt{3\,\mathrm{scale}/n}`.

Conventions
-----------
The same name means different distributions in different libraries. The
``convention`` keyword reproduces each library's exact distribution:

==========================  =====================  =====================  ============================
what                        ``"jax"`` (default)    ``"keras"``            ``"torch"``
==========================  =====================  =====================  ============================
weight layout (2-D)         ``(in, out)``          ``(in, out)``          ``(out, in)``
fan axes (default)          in -2, out -1          in -2, out -1          in 1, out 0
fans, default axes          named axis × field     named axis × field     named axis × field
fans, explicit axes         named axes × field     named axes only        named axes × field
glorot/he/lecun ``_normal``  truncated at ±2σ       truncated at ±2σ       untruncated
``distribution="normal"``   untruncated            truncated (an alias)   untruncated
he/kaiming scale            gain² = 2              gain² = 2              gain(nonlinearity, a)²
rank < 2 shapes             error here (1)         error here (1)         error (torch raises too)
==========================  =====================  =====================  ============================

"field" is the receptive field: the product of the axes that are none of the in, out
and batch axes (a convolution's spatial axes). Given explicit ``in_axis``/``out_axis``,
jax (``jax.nn.initializers``) and torch still multiply both fans by it, so on a
``(3, 3, 16, 32)`` kernel ``variance_scaling(in_axis=2, out_axis=3)`` has fan_in =
16·9 = 144; Keras counts only the named axes (``VarianceScaling(input_axes=[2],
output_axes=[3])``: fan_in = 16, for kernels such as ``EinsumDense``'s whose other axes
are not spatial), and so does ``convention="keras"`` when either axis is given
explicitly (the other keeps its default). ``layout`` is not an explicit axis. Under
``"jax"`` the numbers stay bitwise those of ``jax.nn.initializers``.

(1) jaxinit's fan-based initializers need rank >= 2 in every convention. jax itself
raises for rank < 2 only with the default ``in_axis``; with an explicit one it accepts
them (an empty ``out_axis`` has fan 1). Keras counts a rank-1 shape's length as both
fans and a scalar's fans as 1.

The layout trap
---------------
The layout is part of the convention: ``he_normal(convention="torch")`` reads
the fan-in from axis 1, so on Flax's ``(in, out)`` kernel of
``nnx.Linear(784, 256)`` it takes fan_in = 256 and draws variance 2/256, not
torch's 2/784. ``layout="flax"`` keeps a convention's distribution and reads
the fans from Flax's (and jax's, and Keras') layout, in -2 and out -1, conv
kernels ``(spatial..., in, out)`` included; ``layout="torch"`` is torch's
``(out, in, spatial...)``, in 1 and out 0. So
``he_normal(convention="torch", layout="flax")`` in ``nnx.Linear(784, 256)``
is exactly ``kaiming_normal_`` on torch's ``nn.Linear(784, 256).weight``:
untruncated, variance 2/784. ``layout`` is the named form of ``in_axis`` and
``out_axis`` and excludes them.

In every convention ``he_*`` takes torch's ``a``, ``mode`` and
``nonlinearity`` (scale = gain²) and ``glorot_*`` takes torch's ``gain``
(scale = gain²); their defaults give each library's own numbers. Keras and
torch draw from other random number generators than jax, so only the
distributions agree, not the bits.

References:
  Glorot & Bengio (2010), http://proceedings.mlr.press/v9/glorot10a.html
  He et al. (2015), https://arxiv.org/abs/1502.01852
  LeCun et al. (1998), "Efficient BackProp".
  Klambauer et al. (2017), https://arxiv.org/abs/1706.02515
"""

from __future__ import annotations

from typing import Literal

from jaxinit import activations
from jaxinit._checks import check_choice, check_real
from jaxinit._spec import parse_spec
from jaxinit.initializers._bases import Normal, TruncatedNormal, Uniform
from jaxinit.initializers._core import (
    LAYOUT_AXES,
    Affine,
    Axes,
    FanAxes,
    Initializer,
    check_variance,
    registry,
    resolve_layout,
)

Mode = Literal["fan_in", "fan_out", "fan_avg", "fan_geo_avg"]
Distribution = Literal["normal", "truncated_normal", "uniform", "untruncated_normal"]
Convention = Literal["jax", "keras", "torch"]
Layout = Literal["flax", "torch"]

MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("normal", "truncated_normal", "uniform", "untruncated_normal")
CONVENTIONS = ("jax", "keras", "torch")

# convention -> ((in_axis, out_axis), what the "normal" of named schemes means,
#                what variance_scaling(distribution="normal") means)
_CONVENTIONS = {
    "jax": ((-2, -1), "truncated_normal", "normal"),
    "keras": ((-2, -1), "truncated_normal", "truncated_normal"),
    "torch": ((1, 0), "normal", "normal"),
}


def _denominator(mode: str, fan_in: int, fan_out: int) -> float:
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    if mode == "fan_avg":
        return (fan_in + fan_out) / 2
    return (fan_in * fan_out) ** 0.5


@registry.register(formula="mean 0, Var = scale/n, n by mode")
def variance_scaling(
    scale: float = 1.0,
    mode: Mode = "fan_in",
    distribution: Distribution = "truncated_normal",
    *,
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""Mean 0, variance :math:`\mathrm{scale}/n` with :math:`n` chosen by ``mode``.

    Args:
      scale: the variance times :math:`n`; positive.
      mode: ``"fan_in"``, ``"fan_out"``, ``"fan_avg"`` (arithmetic mean) or
        ``"fan_geo_avg"`` (geometric mean).
      distribution: ``"truncated_normal"`` (at ±2σ, variance corrected),
        ``"normal"`` (untruncated, except under ``convention="keras"``, where
        Keras treats it as truncated), ``"untruncated_normal"`` (always
        untruncated, Keras' name) or ``"uniform"``.
      convention: ``"jax"``, ``"keras"`` or ``"torch"``; see the module table.
      layout: ``"flax"`` (fans from in -2, out -1) or ``"torch"`` (in 1, out
        0); None takes the convention's own. See "The layout trap" above.
      in_axis, out_axis: fan axes; None takes the layout's. Not with ``layout``.
      batch_axis: axes ignored by the fans.

    The defaults (1.0, fan_in, truncated_normal) are Keras' and give
    :func:`lecun_normal`. With ``convention="jax"`` the same key gives the
    bits of ``jax.nn.initializers.variance_scaling`` with the same arguments.

    Example:
      >>> init = variance_scaling(2.0, "fan_in", "uniform")
      >>> init.variance((784, 256))  # 2 / 784
      0.002551020408163265
    """
    check_real("scale", scale, low=0.0, strict=True)
    check_choice("mode", mode, MODES)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    check_choice("convention", convention, CONVENTIONS)
    _, _, normal_means = _CONVENTIONS[convention]
    if layout is not None and (in_axis is not None or out_axis is not None):
        raise ValueError(
            f"variance_scaling: give layout={layout!r} or in_axis/out_axis, not both "
            f"(layout sets them); got in_axis={in_axis!r}, out_axis={out_axis!r}"
        )
    default_in, default_out = LAYOUT_AXES[resolve_layout(convention, layout)]
    # Keras counts the named axes alone when they are given (see the module's table)
    named_only = convention == "keras" and (in_axis is not None or out_axis is not None)
    in_axis = default_in if in_axis is None else in_axis
    out_axis = default_out if out_axis is None else out_axis
    for name, axes in (("in_axis", in_axis), ("out_axis", out_axis), ("batch_axis", batch_axis)):
        _check_axes(name, axes)
    drawn = {"normal": normal_means, "untruncated_normal": "normal"}.get(distribution, distribution)
    fan_axes = FanAxes(in_axis, out_axis, batch_axis, receptive_field=not named_only)

    def affine(shape):  # the scale that gives the draw variance scale / n, as jax makes it
        n = _denominator(mode, *fan_axes.fans(shape))
        if n == 0:
            raise ValueError(
                f"{mode} of shape {shape} is 0; the variance scale/{mode} is undefined"
            )
        return Affine(variance=scale / n)

    base = {
        "truncated_normal": TruncatedNormal(lower=-2.0, upper=2.0),
        "normal": Normal(),
        "uniform": Uniform(),
    }[drawn]
    return Initializer(base=base, affine=affine, min_rank=2, fan_axes=fan_axes)


def _check_axes(name: str, axes) -> None:
    """An axis is an int, or a tuple of ints (their range is checked against each shape)."""
    seq = (axes,) if isinstance(axes, int) else axes
    ok = isinstance(seq, tuple) and all(isinstance(a, int) and not isinstance(a, bool) for a in seq)
    if not ok:
        raise TypeError(f"variance_scaling: {name} must be an int or a tuple of ints; got {axes!r}")


def _named(convention: str) -> str:
    check_choice("convention", convention, CONVENTIONS)
    return _CONVENTIONS[convention][1]


def gain(activation) -> float:
    r"""Torch's ``calculate_gain``: the factor that keeps activations' scale.

    ==============================  ==============================
    activation                      gain
    ==============================  ==============================
    linear, identity, sigmoid       1
    tanh                            5/3
    relu                            √2
    leaky_relu(negative_slope=a)    √(2 / (1 + a²))
    prelu(slope=a)                  √(2 / (1 + a²)) (an extension)
    selu                            3/4
    ==============================  ==============================

    ``activation`` is a name, a spec string or an Activation. Others raise a
    ValueError: torch defines no gain for them (the theory module gives the
    critical :math:`\sigma_w^2` of any activation instead).
    """
    act = activations.get(activation)
    if act.gain is None:
        with_gain = [n for n in activations.names() if activations.get(n).gain is not None]
        raise ValueError(
            f"no gain is defined for activation {act.spec!r}; gains exist for "
            f"{', '.join(with_gain)}"
        )
    return act.gain


def _gain_squared(who: str, gain: float) -> float:
    """gain², the scale of a Glorot scheme, with gain and gain² checked for float32."""
    check_real("gain", gain)
    return check_variance(who, "the variance gain²/n at n = 1", gain * gain)


def _kaiming_scale(nonlinearity: str, a: float) -> float:
    # torch: calculate_gain(nonlinearity, a)**2, where `a` is leaky_relu's slope
    check_real("a", a)
    act = activations.get(nonlinearity)
    if act.name == "leaky_relu":
        explicit = isinstance(nonlinearity, str) and "negative_slope" in parse_spec(nonlinearity)[1]
        slope = dict(act.hparams)["negative_slope"] if explicit else a
        if explicit and a not in (0.0, slope):
            raise ValueError(
                f"a={a!r} contradicts nonlinearity={nonlinearity!r}; give the slope once"
            )
        return 2.0 / (1.0 + slope**2)
    if a != 0.0:
        raise ValueError(
            f"a={a!r} is the negative slope of leaky_relu; it means nothing with "
            f"nonlinearity={act.spec!r}"
        )
    return gain(act) ** 2


def _scheme(scale, mode, distribution, convention, layout, in_axis, out_axis, batch_axis):
    return variance_scaling(
        scale,
        mode,
        distribution,
        convention=convention,
        layout=layout,
        in_axis=in_axis,
        out_axis=out_axis,
        batch_axis=batch_axis,
    )


@registry.register("xavier_normal", formula="Var = gain²·2/(fan_in + fan_out), normal")
def glorot_normal(
    *,
    gain: float = 1.0,
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""Glorot & Bengio (2010): :math:`\mathrm{Var}(w) = \mathrm{gain}^2 \cdot 2/(\mathrm{fan\_in} + \mathrm{fan\_out})`.

    Truncated normal in jax and keras, untruncated in torch (``xavier_normal_``).
    """
    return _scheme(
        _gain_squared("glorot_normal", gain),
        "fan_avg",
        _named(convention),
        convention,
        layout,
        in_axis,
        out_axis,
        batch_axis,
    )


@registry.register("xavier_uniform", formula="U(±gain·√(6/(fan_in + fan_out)))")
def glorot_uniform(
    *,
    gain: float = 1.0,
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""Glorot & Bengio (2010): :math:`U(\pm \mathrm{gain}\sqrt{6/(\mathrm{fan\_in} + \mathrm{fan\_out})})`."""
    scale = _gain_squared("glorot_uniform", gain)
    return _scheme(scale, "fan_avg", "uniform", convention, layout, in_axis, out_axis, batch_axis)


@registry.register("kaiming_normal", formula="Var = gain²/fan_in (gain² = 2), normal")
def he_normal(
    *,
    a: float = 0.0,
    mode: Mode = "fan_in",
    nonlinearity: str = "leaky_relu",
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""He et al. (2015): :math:`\mathrm{Var}(w) = \mathrm{gain}^2/n`, gain² = 2 for ReLU.

    ``a``, ``mode`` and ``nonlinearity`` are torch's ``kaiming_normal_``
    arguments: the gain is ``gain(nonlinearity)``, with ``a`` the slope of
    ``leaky_relu`` (the default, whose slope 0 gives gain √2). Truncated
    normal in jax and keras, untruncated in torch.
    """
    scale = _kaiming_scale(nonlinearity, a)
    return _scheme(
        scale, mode, _named(convention), convention, layout, in_axis, out_axis, batch_axis
    )


@registry.register("kaiming_uniform", formula="U(±gain·√(3/fan_in)) (gain² = 2)")
def he_uniform(
    *,
    a: float = 0.0,
    mode: Mode = "fan_in",
    nonlinearity: str = "leaky_relu",
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""He et al. (2015): :math:`U(\pm \mathrm{gain}\sqrt{3/n})`; see :func:`he_normal`."""
    scale = _kaiming_scale(nonlinearity, a)
    return _scheme(scale, mode, "uniform", convention, layout, in_axis, out_axis, batch_axis)


@registry.register("flax_default", formula="Var = 1/fan_in, normal")
def lecun_normal(
    *,
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""LeCun et al. (1998): :math:`\mathrm{Var}(w) = 1/\mathrm{fan\_in}`.

    Flax's default kernel initializer (``flax_default`` is this object), and
    with SELU the self-normalizing choice of Klambauer et al. (2017). Torch
    has no LeCun initializer; the torch convention is
    ``kaiming_normal_(nonlinearity="linear")``, untruncated.
    """
    return _scheme(
        1.0, "fan_in", _named(convention), convention, layout, in_axis, out_axis, batch_axis
    )


@registry.register(formula="U(±√(3/fan_in))")
def lecun_uniform(
    *,
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""LeCun et al. (1998): :math:`U(\pm\sqrt{3/\mathrm{fan\_in}})`."""
    return _scheme(1.0, "fan_in", "uniform", convention, layout, in_axis, out_axis, batch_axis)


@registry.register(formula="U(±1/√fan_in)")
def torch_linear_default(
    *,
    convention: Convention = "jax",
    layout: Layout | None = None,
    in_axis: Axes | None = None,
    out_axis: Axes | None = None,
    batch_axis: Axes = (),
) -> Initializer:
    r"""Torch's ``nn.Linear`` weight default: :math:`U(\pm 1/\sqrt{\mathrm{fan\_in}})`.

    That is ``kaiming_uniform_(a=√5)``: gain² = 2/(1 + 5) = 1/3, so
    :math:`\mathrm{Var}(w) = 1/(3\,\mathrm{fan\_in})`, a third of LeCun's. The
    layout follows ``convention`` (jax's ``(in, out)`` by default, so it drops
    into ``nnx.Linear``, as does ``convention="torch", layout="flax"``). Torch draws the bias from the same interval, which a
    bias shape alone cannot reproduce (it carries no fan-in).
    """
    return _scheme(
        1.0 / 3.0, "fan_in", "uniform", convention, layout, in_axis, out_axis, batch_axis
    )


xavier_normal = glorot_normal
xavier_uniform = glorot_uniform
kaiming_normal = he_normal
kaiming_uniform = he_uniform
flax_default = lecun_normal
