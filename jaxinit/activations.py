"""Elementwise activations and the facts a sweep needs about each of them.

An :class:`Activation` is a function together with its output ``bounds``, a
``saturation`` test, whether it has a ``dead_region`` and its torch
``calculate_gain`` value. Activations are built from specs through the shared
registry (:mod:`jaxinit._spec`), so ``get("leaky_relu(negative_slope=0.2)")``
and ``leaky_relu(negative_slope=0.2)`` are equal, and every activation carries
its canonical spec. Builders that are the same function under two names are
the same object: ``swish is silu``, ``identity is linear``.

================  ==============================  ===============  ==============  ====  ===========
name              f(x)                            range            saturated when  dead  gain
================  ==============================  ===============  ==============  ====  ===========
sigmoid           σ(x) = 1 / (1 + e^{-x})         (0, 1)           a ∉ [.01, .99]  no    1
tanh              tanh(x)                         (-1, 1)          |a| > 0.99      no    5/3
relu              max(x, 0)                       [0, ∞)           never           yes   √2
leaky_relu        x if x ≥ 0 else s x, s = 0.01   (-∞, ∞)          never           no    √(2/(1+s²))
prelu             leaky_relu with s = 0.25        (-∞, ∞)          never           no    √(2/(1+s²))
rrelu             leaky_relu, s ~ U(1/8, 1/3)     (-∞, ∞)          never           no    None
elu               x if x > 0 else α (e^x - 1)     (-α, ∞)          a < -0.99 α     no    None
selu              λ elu_α(x), λ≈1.0507, α≈1.6733  (-λα, ∞)         a < -0.99 λα    no    3/4
gelu              x Φ(x), tanh approximation      [-0.1700408, ∞)  never           no    None
silu, swish       x σ(x)                          [-W(1/e), ∞)     never           no    None
softplus          log(1 + e^x)                    (0, ∞)           never           no    None
hard_tanh         clip(x, -1, 1)                  [-1, 1]          |a| > 0.99      no    None
erf               erf(x)                          (-1, 1)          |a| > 0.99      no    None
linear, identity  x                               (-∞, ∞)          never           no    1
transformed       γ (φ(α x + β) + δ), φ a base    γ (φ's + δ)      φ's, mapped     φ's   None
================  ==============================  ===============  ==============  ====  ===========

Your own function ``f(x)`` (elementwise, jax-traceable) goes wherever an activation
goes, labelled by its name, or through :func:`custom` with what jaxinit cannot know
by itself: its range (from which the saturation test follows by the rule below),
whether it has a dead region, its kinks (where the theory's quadrature cuts its
panels) and its torch gain. Given as it is, a function that *is* one of the table's
(``jax.nn.relu``, ``jnp.tanh``, ``jax.nn.gelu`` …) is that activation.

``Activation.bounds`` holds the ends of the range, ``±inf`` where unbounded.
The minima of gelu and silu are solved to double precision and checked
against a fine grid by the tests: silu's is -W(1/e) ≈ -0.2784645 (W the
Lambert function), exact gelu's -0.1699712. With a negative slope,
leaky_relu and prelu map onto [0, ∞).

**Saturation** is "within 1% of an asymptotic (or clipped) bound": with
``margin = 0.01 · max |b|`` over the finite such bounds ``b``, an output is
saturated when ``a < lo + margin`` or ``a > hi - margin`` (strict, so
``hard_tanh`` at exactly ±1 is saturated). A bound of zero alone gives a zero
margin and no test: relu's zero is its dead region, softplus only approaches
zero, and the minima of gelu and silu are attained, not asymptotes.

**Dead region**: exact zeros with zero gradient on a half-line: relu, and the
activations that become relu at their edge (slope 0, or ``elu(alpha=0)``).

**Gain** is ``torch.nn.init.calculate_gain``; prelu gets the leaky_relu formula
with its slope (it is that function at initialization), and the others, for
which torch defines no gain, ``None``.

References:
  - He et al. 2015, *Delving Deep into Rectifiers* (PReLU), https://arxiv.org/abs/1502.01852
  - Xu et al. 2015, *Empirical Evaluation of Rectified Activations* (RReLU),
    https://arxiv.org/abs/1505.00853
  - Clevert et al. 2015, *Fast and Accurate Deep Network Learning by ELUs*,
    https://arxiv.org/abs/1511.07289
  - Hendrycks & Gimpel 2016, *Gaussian Error Linear Units (GELUs)*,
    https://arxiv.org/abs/1606.08415
  - Klambauer et al. 2017, *Self-Normalizing Neural Networks* (SELU),
    https://arxiv.org/abs/1706.02515
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxinit._checks import check_real
from jaxinit._spec import Registry, custom_label, rebuildable_spec

__all__ = [
    "Activation",
    "aliases",
    "custom",
    "elu",
    "erf",
    "formula",
    "gelu",
    "get",
    "hard_tanh",
    "identity",
    "leaky_relu",
    "linear",
    "names",
    "prelu",
    "relu",
    "rrelu",
    "saturation_mask",
    "selu",
    "sigmoid",
    "silu",
    "softplus",
    "swish",
    "tanh",
    "transformed",
]

# jax.nn.selu's constants (Klambauer et al. 2017, eq. 14).
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
# Minima of the non-monotone activations, to double precision.
_SILU_MIN = -0.2784645427610738  # -W(1/e), at x = -1 - W(1/e): where 1 + x(1 - σ(x)) = 0
_GELU_MIN = -0.16997120747990363  # x Φ(x) at x = -0.7517915246935645, Φ(x) + x φ(x) = 0
_GELU_TANH_MIN = -0.17004075057125406  # the tanh approximation's, at x = -0.7524614220710162
_SATURATION_MARGIN = 0.01  # relative to the largest finite asymptotic bound


@dataclasses.dataclass(frozen=True)
class Activation:
    """An elementwise nonlinearity and what the sweep engine needs to know about it.

    Equality and hashing ignore ``fn`` and ``sample_fn``; everything else
    follows from the spec, so activations built by the registry are equal
    exactly when their specs are.
    """

    fn: Callable[[Array], Array] = dataclasses.field(compare=False, repr=False)
    bounds: tuple[float, float]  # output range (lo, hi); ±inf where unbounded
    saturation: tuple[float | None, float | None]  # a < lo or a > hi is saturated; None: no test
    dead_region: bool  # exact zeros with zero gradient on a half-line
    gain: float | None  # torch.nn.init.calculate_gain; None where torch defines none
    sample_fn: Callable[[Array, Array], Array] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )  # (key, x) -> a: the random variant (rrelu in training mode)
    name: str = ""  # the rest is filled in by the registry
    hparams: tuple[tuple[str, Any], ...] = ()
    spec: str = ""
    # custom only: the x where φ has a kink (the theory's panels are cut there; the table's
    # activations have theirs in jaxinit.theory), and the user's function, compared by
    # identity (``fn`` is not compared: two custom activations of one name differ by it)
    kinks: tuple[float, ...] | None = None
    custom_fn: Callable | None = dataclasses.field(default=None, repr=False)

    def __copy__(self):  # frozen: a copy is itself (and copy never goes through the spec)
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        """Pickles as its spec, which rebuilds it (``fn`` may be jax's own function, which
        pickle cannot name); one that no spec rebuilds is refused with the reason."""
        return _from_spec, (rebuildable_spec(self, _registry),)

    def __call__(self, x: ArrayLike, *, key: Array | None = None) -> Array:
        """``fn(x)``; with a ``key``, the random variant where there is one."""
        if key is not None and self.sample_fn is not None:
            return self.sample_fn(key, x)
        return self.fn(x)

    def is_saturated(self, a: ArrayLike) -> Array:
        """A bool array shaped like the outputs ``a``: which are saturated."""
        a = jnp.asarray(a)
        # Compare in at least float32: in bfloat16, 0.99 rounds to 0.98828125.
        a = a.astype(jnp.promote_types(a.dtype, jnp.float32))
        mask = saturation_mask(a, self.saturation)
        return jnp.zeros(a.shape, dtype=bool) if mask is None else mask

    @property
    def saturating(self) -> bool:
        return self.saturation != (None, None)

    @property
    def bounded(self) -> bool:
        return all(math.isfinite(b) for b in self.bounds)

    @property
    def stochastic(self) -> bool:
        return self.sample_fn is not None


def _custom_of(fn: Callable) -> Activation:
    """A plain function given where a spec goes: the table's activation when it is one's
    function (``jax.nn.relu`` is relu), else ``custom(fn)``, labelled by its name."""
    same = _builtin_functions().get(fn)
    return same if same is not None else custom(fn)


@functools.cache
def _builtin_functions() -> dict[Callable, Activation]:
    """jax's functions that are the table's activations at their defaults (which are jax's:
    gelu's tanh approximation, elu's α = 1, leaky_relu's slope 0.01)."""
    table: dict[Callable, Activation] = {}
    for name in names():
        builder = _registry.builder(name)
        if not inspect.signature(builder).parameters:
            table.setdefault(builder().fn, builder())
    table.update({jax.nn.gelu: gelu(), jax.nn.elu: elu(), jax.nn.leaky_relu: leaky_relu()})
    return table


# memoized: gelu() is one object, so its function is one functools.partial, and a model
# that holds it (the zoo's ``self.act``) has one graph for every seed (one compiled program)
_registry: Registry[Activation] = Registry(
    "activation", Activation, wrap_callable=_custom_of, memoize=True
)


def _from_spec(spec: str) -> Activation:
    """What a pickled Activation unpickles with."""
    return _registry.get(spec)


get = _registry.get
names = _registry.names
formula = _registry.formula
aliases = _registry.aliases


def saturation_mask(a: Array, saturation: tuple) -> Array | None:
    """Which entries of ``a`` are saturated: ``a < lo`` or ``a > hi`` for ``(lo, hi) =
    saturation`` (a bound of None has no test); None when neither bound has one.

    The one saturation test: :meth:`Activation.is_saturated` and the statistics of
    :mod:`jaxinit.sweeping._stats` (sweeps and training) use it.
    """
    lo, hi = saturation
    if lo is None and hi is None:
        return None
    if hi is None:
        return a < lo
    if lo is None:
        return a > hi
    return (a < lo) | (a > hi)


def _saturation(lo: float | None = None, hi: float | None = None) -> tuple:
    """Thresholds within _SATURATION_MARGIN of the asymptotic bounds ``lo``, ``hi``."""
    margin = _SATURATION_MARGIN * max(abs(b) for b in (lo, hi) if b is not None)
    if margin == 0:
        return (None, None)
    return (None if lo is None else lo + margin, None if hi is None else hi - margin)


def _leaky(slope: float, gain: float | None) -> Activation:
    return Activation(
        fn=functools.partial(jax.nn.leaky_relu, negative_slope=slope),
        bounds=(-math.inf if slope > 0 else 0.0, math.inf),
        saturation=(None, None),
        dead_region=slope == 0,
        gain=gain,
    )


def _leaky_gain(slope: float) -> float:
    return math.sqrt(2.0 / (1.0 + slope**2))


def _identity(x: ArrayLike) -> Array:
    return jnp.asarray(x)


@_registry.register(formula="φ(x) = 1 / (1 + e^-x)")
def sigmoid() -> Activation:
    """σ(x) = 1 / (1 + e^{-x})."""
    return Activation(jax.nn.sigmoid, (0.0, 1.0), _saturation(0.0, 1.0), False, 1.0)


@_registry.register(formula="φ(x) = tanh(x)")
def tanh() -> Activation:
    """tanh(x)."""
    return Activation(jnp.tanh, (-1.0, 1.0), _saturation(-1.0, 1.0), False, 5.0 / 3.0)


@_registry.register(formula="φ(x) = max(x, 0)")
def relu() -> Activation:
    """max(x, 0)."""
    return Activation(jax.nn.relu, (0.0, math.inf), (None, None), True, math.sqrt(2.0))


@_registry.register(formula="φ(x) = x if x ≥ 0 else negative_slope·x")
def leaky_relu(*, negative_slope: float = 0.01) -> Activation:
    """x if x ≥ 0 else negative_slope · x."""
    slope = check_real("leaky_relu: negative_slope", negative_slope)
    return _leaky(slope, _leaky_gain(slope))


@_registry.register(formula="φ(x) = x if x ≥ 0 else slope·x (slope learnable)")
def prelu(*, slope: float = 0.25) -> Activation:
    """PReLU at initialization: x if x ≥ 0 else slope · x, slope a learnable parameter.

    The gain extends torch's (which has none for prelu) with the leaky_relu
    formula, since it is that function until the slope is trained.
    """
    slope = check_real("prelu: slope", slope)
    return _leaky(slope, _leaky_gain(slope))


@_registry.register(formula="φ(x) = x if x ≥ 0 else s·x, s ~ U[lower, upper]")
def rrelu(*, lower: float = 1 / 8, upper: float = 1 / 3) -> Activation:
    """Randomized leaky ReLU: x if x ≥ 0 else s · x.

    Without a key, s = (lower + upper) / 2 (torch's eval mode); with a key,
    each element draws its own s ~ U(lower, upper) (torch's training mode):

    >>> act = rrelu()
    >>> act(jnp.array([-1.0, 2.0]), key=jax.random.key(0))  # doctest: +SKIP
    Array([-0.2159, 2.], dtype=float32)
    """
    lower = check_real("rrelu: lower", lower, low=0.0)
    upper = check_real("rrelu: upper", upper, low=0.0)
    if lower > upper:
        raise ValueError(f"rrelu: need 0 <= lower <= upper; got lower={lower!r} > upper={upper!r}")

    def sample(key: Array, x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        slope = jax.random.uniform(key, x.shape, jnp.result_type(x, float), lower, upper)
        return jnp.where(x >= 0, x, slope * x)

    return dataclasses.replace(_leaky((lower + upper) / 2, None), sample_fn=sample)


@_registry.register(formula="φ(x) = x if x > 0 else alpha·(e^x - 1)")
def elu(*, alpha: float = 1.0) -> Activation:
    """x if x > 0 else alpha · (e^x - 1); alpha = 0 is relu."""
    alpha = check_real("elu: alpha", alpha, low=0.0)
    return Activation(
        functools.partial(jax.nn.elu, alpha=alpha),
        (-alpha, math.inf),
        _saturation(lo=-alpha),
        alpha == 0,
        None,
    )


@_registry.register(formula="φ(x) = λ·(x if x > 0 else α·(e^x - 1)), α ≈ 1.6733, λ ≈ 1.0507")
def selu() -> Activation:
    """λ · (x if x > 0 else α (e^x - 1)) with α, λ chosen so N(0, 1) stays at mean 0, variance 1."""
    lo = -_SELU_SCALE * _SELU_ALPHA
    return Activation(jax.nn.selu, (lo, math.inf), _saturation(lo=lo), False, 0.75)


@_registry.register(formula="φ(x) = x·Φ(x) (tanh approximation by default)")
def gelu(*, approximate: bool = True) -> Activation:
    """x Φ(x), Φ the standard normal CDF; with ``approximate``, its tanh form.

    The approximation is 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))).

    Warning: jax defaults to the tanh approximation, torch (``nn.GELU()``) to
    the exact erf form; write ``gelu(approximate=False)`` to match torch. The
    two differ by up to about 5e-4 and have different minima.
    """
    return Activation(  # the registry has checked that approximate is a bool
        functools.partial(jax.nn.gelu, approximate=approximate),
        (_GELU_TANH_MIN if approximate else _GELU_MIN, math.inf),
        (None, None),
        False,
        None,
    )


@_registry.register("swish", formula="φ(x) = x·σ(x)")
def silu() -> Activation:
    """x σ(x)."""
    return Activation(jax.nn.silu, (_SILU_MIN, math.inf), (None, None), False, None)


@_registry.register(formula="φ(x) = log(1 + e^x)")
def softplus() -> Activation:
    """log(1 + e^x)."""
    return Activation(jax.nn.softplus, (0.0, math.inf), _saturation(lo=0.0), False, None)


@_registry.register(formula="φ(x) = clip(x, -1, 1)")
def hard_tanh() -> Activation:
    """clip(x, -1, 1)."""
    return Activation(jax.nn.hard_tanh, (-1.0, 1.0), _saturation(-1.0, 1.0), False, None)


@_registry.register(formula="φ(x) = erf(x)")
def erf() -> Activation:
    """erf(x) = 2/√π ∫₀ˣ e^{-t²} dt."""
    return Activation(jax.lax.erf, (-1.0, 1.0), _saturation(-1.0, 1.0), False, None)


@_registry.register("identity", formula="φ(x) = x")
def linear() -> Activation:
    """x."""
    return Activation(_identity, (-math.inf, math.inf), (None, None), False, 1.0)


@_registry.register(
    shown=("base",), formula="φ̂(x) = output_scale·(φ(input_scale·x + input_shift) + output_shift)"
)
def transformed(
    *,
    base: str = "tanh",
    input_scale: float = 1.0,
    input_shift: float = 0.0,
    output_scale: float = 1.0,
    output_shift: float = 0.0,
) -> Activation:
    """γ (φ(α x + β) + δ): the table's activation ``base`` (a spec) with its input scaled
    by α = ``input_scale`` and shifted by β = ``input_shift``, its output shifted by δ =
    ``output_shift`` and scaled by γ = ``output_scale`` > 0.

    The form of Deep Kernel Shaping (Martens et al. 2021) and Tailored Activation
    Transformations (Zhang et al. 2022); :func:`jaxinit.theory.transform` solves its
    parameters for a network and returns one of these, whose spec carries them::

        transformed(base='tanh', input_scale=0.128, input_shift=0.571, ...)

    Its bounds and saturation test are the base's, mapped; its kinks are the base's
    mapped to x = (k - β)/α, where theory cuts its panels. The base must be one of the
    table's (a custom function has no spec to rebuild it by); α ≠ 0.
    """
    if not isinstance(base, str):
        raise TypeError(
            f"transformed: base must be an activation spec (a string), e.g. 'tanh'; got {base!r}"
        )
    phi = get(base)
    if phi.name == "transformed":
        raise ValueError(f"transformed: base must be one of the table's activations; got {base!r}")
    if phi.stochastic:
        raise ValueError(f"transformed: base must be deterministic; {base!r} draws at random")
    alpha = check_real("transformed: input_scale", input_scale)
    beta = check_real("transformed: input_shift", input_shift)
    gamma = check_real("transformed: output_scale", output_scale, low=0.0, strict=True)
    delta = check_real("transformed: output_shift", output_shift)
    if alpha == 0 or gamma == 0:
        raise ValueError(
            f"transformed: input_scale and output_scale must be nonzero; got {alpha}, {gamma}"
        )
    base_fn = phi.fn

    def fn(x: ArrayLike) -> Array:
        x = jnp.asarray(x)
        return gamma * (base_fn(alpha * x + beta) + delta)

    lo, hi = (gamma * (b + delta) for b in phi.bounds)
    sat = tuple(None if t is None else gamma * (t + delta) for t in phi.saturation)
    # exact zeros survive only an unshifted output (γ > 0 keeps them zeros)
    return Activation(fn, (lo, hi), sat, phi.dead_region and delta == 0, None)


swish = silu
identity = linear


def _pair(what: str, value: Any, open_end: float | None) -> tuple:
    """``(lo, hi)`` of custom's ``bounds`` (ends ±inf where open) or ``saturation`` (None
    where there is no test): two reals, ``lo < hi`` where both are given."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"custom: {what} must be (lo, hi); got {value!r}")
    pair = []
    for i, (v, end) in enumerate(zip(value, (-1, 1), strict=True)):
        if open_end is None and v is None:
            pair.append(None)
        elif open_end is not None and v == end * open_end:
            pair.append(float(v))
        else:
            pair.append(check_real(f"custom: {what}[{i}]", v))
    lo, hi = pair
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"custom: {what} must be (lo, hi) with lo < hi; got {value!r}")
    return lo, hi


def custom(
    fn: Callable[[Array], Array],
    *,
    name: str | None = None,
    bounds: tuple[float, float] | None = None,
    saturation: tuple[float | None, float | None] | None = None,
    dead_region: bool = False,
    kinks: tuple[float, ...] = (),
    gain: float | None = None,
) -> Activation:
    """Your own elementwise activation ``fn(x) -> array`` as a jaxinit Activation: a label
    and a place in ``Grid``, ``TrainGrid``, ``theory`` and the reports.

    Args:
      fn: an elementwise, jax-traceable function of one array (differentiable where the
        sweep takes gradients).
      name: the label in results, tables and plots; default ``fn.__name__`` (a lambda
        must be given one).
      bounds: its output range ``(lo, hi)``, ``±inf`` where unbounded; default unbounded.
        The histogram of post-activations spans it where finite (else ±3), as for the
        table's activations.
      saturation: ``(lo, hi)``: an output below ``lo`` or above ``hi`` is saturated (None:
        no test on that side); default the table's rule applied to ``bounds`` (within 1%
        of a finite nonzero bound), so no test without bounds.
      dead_region: whether φ is exactly 0 with zero slope on a half-line (informational:
        the dead fraction, exact zeros, is measured for every activation).
      kinks: the x where φ is not smooth; the theory's Gaussian quadrature cuts its panels
        there and only there, as for relu (without kinks, at a smooth activation's cuts:
        ±1, ±3 and a grading of the tails) (without them a kinked φ's maps lose digits: relu written by hand, without
        ``kinks=(0.0,)``, has a c-map off by up to 6e-4; with them it is relu's to the bit).
      gain: its ``calculate_gain``-style gain, where ``ji.initializers.gain`` should know one.

    Theory takes it by the same quadrature as the table's activations (its derivative by
    ``jax.grad``). It is not a spec string: it does not pickle, and a saved result keeps
    its label only.

    Example:
      >>> import jax.numpy as jnp, jaxinit as ji
      >>> def soft_clip(x):
      ...     return x / (1 + jnp.abs(x))
      >>> act = ji.activations.custom(soft_clip, bounds=(-1.0, 1.0))
      >>> act.spec, act.saturation
      ('soft_clip', (-0.99, 0.99))
    """
    if not callable(fn):
        raise TypeError(f"custom: fn must be a function x -> array; got {fn!r}")
    name = custom_label(_registry, fn, name)
    try:
        hash(fn)  # compiled programs are cached by the activation, so by its function
    except TypeError:
        raise TypeError(f"custom: fn must be hashable (a function is); got {fn!r}") from None
    lo, hi = (-math.inf, math.inf) if bounds is None else _pair("bounds", bounds, math.inf)
    if saturation is None:
        finite = [b if math.isfinite(b) else None for b in (lo, hi)]
        saturation = (None, None) if finite == [None, None] else _saturation(*finite)
    else:
        saturation = _pair("saturation", saturation, None)
    if not isinstance(dead_region, bool):
        raise TypeError(f"custom: dead_region must be True or False; got {dead_region!r}")
    kinks = tuple(sorted(check_real(f"custom: kinks[{i}]", k) for i, k in enumerate(kinks)))
    if gain is not None:
        gain = check_real("custom: gain", gain, low=0.0)
    return Activation(
        fn=fn,
        bounds=(lo, hi),
        saturation=saturation,
        dead_region=dead_region,
        gain=gain,
        name=name,
        spec=name,
        kinks=kinks,
        custom_fn=fn,
    )
