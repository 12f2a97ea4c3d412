r"""Fixed-node Gaussian quadrature: every expectation of the mean-field theory.

An expectation over :math:`x \sim \mathcal{N}(m, v)` is a fixed-node rule,

.. math::
   \mathbb{E}[f(x)] \approx \sum_{p} \sum_{i=1}^{n} w_{p,i}\, f(m + \sqrt{v}\, z_{p,i}),
   \quad z_{p,i} = \bar z_p + \tfrac{h_p}{2}\zeta_i, \quad
   w_{p,i} = \tfrac{h_p}{2}\, \omega_i\, \tfrac{e^{-z_{p,i}^2/2}}{\sqrt{2\pi}},

with :math:`(\zeta_i, \omega_i)` the n-point Gauss–Legendre rule and
:math:`\bar z_p`, :math:`h_p` the centre and width of panel :math:`p`; so every
function of :mod:`jaxinit.theory` is jit-, vmap- and grad-able. Gauss–Hermite
converges only algebraically at a kink (about 3e-3 on relu's mean with 64
nodes, 8e-3 on hard_tanh with 128), so the Gaussian is instead cut at ±8 into
panels split at :math:`z = 0, \pm 2, \pm 4` and wherever :math:`m + \sqrt{v}\,z`
meets a kink of :math:`\varphi` (relu family, elu, selu at 0; hard_tanh at ±1)
or, for the smooth saturating activations, :math:`x = \pm 1, \pm 3` and a
geometric grading of the tails, :math:`\pm 6, \pm 12, \pm 24` (as far as
:math:`\varphi` still differs from its asymptote by 1e-9; elu and selu on
their negative side), so that at large q the boundary layer of width
:math:`1/\sqrt q` in z is resolved. In two dimensions the outer panels are
also split along the lines where :math:`u_2`'s kinks (or a smooth
activation's centre, :math:`x = 0`) cross :math:`z_2 = 0`, and graded around
them in units of :math:`\sqrt{1 - c^2}/|c|`, so that :math:`c \to 1` stays
accurate.

**Guaranteed range.** For :math:`0 \le q \le 10^6` (``Q_MAX``) and every
correlation, the maps agree with float64 adaptive quadrature and the erf
closed forms to about 2e-6 relative in float32 (``tests/test_theory.py``
checks 1e-5); beyond ``Q_MAX`` the public maps warn.
:func:`hermite` gives the coefficients of Mehler's series
:math:`\mathbb{E}[\varphi(u_1)\varphi(u_2)] = \sum_k a_k^2 c^k` (Poole et al.
2016, https://arxiv.org/abs/1606.05340).
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import activations as _activations

# the internal API of jaxinit.theory (its other modules import these; users do not)
__all__ = [
    "N2",
    "Q_MAX",
    "TINY",
    "Array",
    "activation_of",
    "check_domain",
    "check_q_max",
    "covariance_of",
    "dphi",
    "expect1",
    "expect2",
    "hermite",
    "q_limit",
    "run_static",
    "second_moment",
    "warn_range",
]

Array = jax.Array
_Z = 8.0  # the Gaussian is integrated over ±8 standard deviations (mass lost: 1.2e-15)
_BASE = (-4.0, -2.0, 0.0, 2.0, 4.0)  # panel edges in z, with ±_Z: six panels
_N1, N2 = 12, 6  # Gauss–Legendre nodes per panel, in 1-D and per dimension in 2-D
_GRADES = (1.0, 3.0, 9.0)  # 2-D outer panels around u2's kink lines, in units of their width
_KINKS = {n: (0.0,) for n in ("relu", "leaky_relu", "prelu", "rrelu", "elu", "selu")}
_KINKS["hard_tanh"] = (-1.0, 1.0)
# x-space cuts for smooth activations (not for linear): the transition at ±1, ±3, then
# a geometric grading of the tails (6, 12, 24), where φ approaches its asymptote
# exponentially; at large q a panel from x = 3 to 8√q would otherwise hold that whole
# boundary layer (1 - tanh² spans 1e-2 to 1e-10 from x = 3 to 12). The grading stops
# where the tail is below 1e-9: by 6 for Gaussian tails (erf, gelu), by 12 for e^{-2x}
# (tanh), by 24 for e^{-x} (sigmoid, softplus, silu; elu's and selu's negative side).
_REACH = {"erf": 6.0, "gelu": 6.0, "tanh": 12.0}
_TAIL = (6.0, 12.0, 24.0)


def _features(name: str, sides=(-1.0, 1.0)) -> tuple[float, ...]:
    reach = _REACH.get(name, _TAIL[-1])
    xs = (1.0, 3.0, *(x for x in _TAIL if x <= reach))
    return tuple(sorted(s * x for x in xs for s in sides))


# kinked activations with an exponential tail on their negative side (e^x - 1)
_TAILS = {n: tuple(x for x in _features(n, (-1.0,)) if x < -3) for n in ("elu", "selu")}
_CENTRES = (0.0,)  # where a smooth activation's transition is centred (a smoothed kink)
TINY = 1e-30
Q_MAX = 1e6  # the variances up to which the quadrature's accuracy is tested and guaranteed


def activation_of(activation: Any) -> _activations.Activation:
    return _activations.get(activation)


def q_limit(dtype: Any) -> float:
    """The largest variance a quadrature in ``dtype`` can hold: its nodes reach 8 standard
    deviations, and φ(8√q)² ~ 64·q must stay finite (2.7e36 in float32, 1.4e306 in float64).
    Accurate to 2e-6 only up to ``Q_MAX``; between the two the maps warn."""
    return float(jnp.finfo(dtype).max) / 128


def _real(fn: str, name: str, value: Any) -> np.ndarray:
    """``value`` as a float64 array if it is a real number or an array of them; else a
    TypeError (None, a string, a bool, a complex number: NumPy would read '1.0' and True
    as numbers, None as NaN, and drop an imaginary part)."""
    what = f"{fn + ': ' if fn else ''}{name} must be a real number or an array of real numbers"
    if value is None or isinstance(value, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{what}; got {value!r}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what}; got {value!r:.80}") from None
    real = jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer)
    if not real or arr.dtype == np.bool_:
        raise TypeError(f"{what}; got {value!r:.60} of dtype {arr.dtype}")
    return arr.astype(np.float64)


def _dtype_of(value: Any) -> np.dtype:
    """The float dtype jax computes ``value`` in: float32 for a Python number (weakly typed)
    and without x64; a float64 array's own under ``jax.enable_x64(True)``."""
    if isinstance(value, (int, float)) and not isinstance(value, np.generic):
        return np.dtype(np.float32)
    raw = np.result_type(np.asarray(value).dtype, np.float32)
    return np.dtype(jax.dtypes.canonicalize_dtype(raw))


def check_domain(
    fn: str,
    name: str,
    value: Any,
    low: float = 0.0,
    high: float = math.inf,
    *,
    variance: bool = True,
):
    """Refuses a concrete argument that is not real, outside ``[low, high]`` or not finite
    (tracers pass), and a ``variance`` beyond :func:`q_limit` of the dtype it computes in.

    Every map here is defined for variances ``q, σ_w², σ_b² >= 0`` and
    correlations ``c ∈ [-1, 1]``; outside that the quadrature returns numbers
    that mean nothing (a NaN, a negative χ₁, a 'converged' q = 0), and a variance
    beyond the limit overflows (NaN, or a fixed point 'diverged' at q = 1).
    ``fn`` heads the message ("" for none).
    """
    if isinstance(value, jax.core.Tracer):
        return
    arr = _real(fn, name, value)
    head = f"{fn}: " if fn else ""
    bad = ~(np.isfinite(arr) & (arr >= low) & (arr <= high))
    if bad.any():
        where = f">= {low:g}" if high == math.inf else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{head}{name} must be finite and {where}; got {float(arr[bad].flat[0])}")
    if variance and arr.size:
        limit, worst = q_limit(_dtype_of(value)), float(np.max(np.abs(arr)))
        if worst > limit:
            raise ValueError(
                f"{head}{name} = {worst:.3g} is beyond {limit:.2g}, the largest variance "
                f"{_dtype_of(value).name} quadrature holds (its nodes reach 8 standard "
                f"deviations: 64·q must stay finite; it is accurate to 2e-6 up to Q_MAX = "
                f"{Q_MAX:.0e}). For larger values compute in float64: jax.enable_x64(True) "
                "and float64 arguments"
            )


def check_q_max(fn: str, name: str, value: Any, why: str) -> None:
    """Refuses a concrete ``value`` beyond ``Q_MAX`` where the answer would be a guess:
    ``why`` says what lies beyond the tested range."""
    if isinstance(value, jax.core.Tracer):
        return
    arr = _real(fn, name, value)
    worst = float(np.max(arr)) if np.size(arr) else -math.inf
    if worst > Q_MAX:
        raise ValueError(
            f"{fn}: {name} = {worst:.3g} is beyond Q_MAX = {Q_MAX:.0e}, the range where the "
            f"quadrature is tested: {why}"
        )


# positively homogeneous, kinked only at 0: their rule scales with √q, exact at any q
_HOMOGENEOUS = {"linear", "relu", "leaky_relu", "prelu", "rrelu"}


def warn_range(fn: str, name: str, value: Any, act, *, stacklevel: int = 3) -> None:
    """Warns where a concrete variance lies beyond ``Q_MAX`` (tracers pass), for an
    activation whose accuracy depends on q (not the relu family's). ``stacklevel`` 3
    points at the caller of the public function that calls this."""
    if isinstance(value, jax.core.Tracer) or act.name in _HOMOGENEOUS:
        return
    arr = np.asarray(value, np.float64)
    if np.any(arr > Q_MAX):
        warnings.warn(
            f"{fn}: {name} = {float(arr.max()):.3g} lies beyond {Q_MAX:.0e}, the range where "
            "the quadrature's accuracy (2e-6 relative) is tested; the result may be less accurate",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def _transformed_base(act) -> tuple[Any, float, float] | None:
    """A transformed activation's (base, α, β): φ̂(x) = γ (φ(α x + β) + δ); None for others."""
    if act.name != "transformed" or act.custom_fn is not None:
        return None
    h = dict(act.hparams)
    return activation_of(h["base"]), h["input_scale"], h["input_shift"]


def _mapped(points: tuple[float, ...], alpha: float, beta: float) -> tuple[float, ...]:
    """Where φ̂'s argument x puts φ's argument at ``points``: x = (p - β)/α."""
    return tuple(sorted((p - beta) / alpha for p in points))


def _breaks(act) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(kinks, smooth features) of φ in x-space, where the panels are cut; a custom
    activation's declared kinks, else treated as smooth; a transformed activation's, its
    base's mapped through the input's scale and shift."""
    base = _transformed_base(act)
    if base is not None:
        phi, alpha, beta = base
        return tuple(_mapped(p, alpha, beta) for p in _breaks(phi))
    if act.custom_fn is not None:
        return act.kinks, () if act.kinks else _features(act.name)
    if act.name in _KINKS:
        return _KINKS[act.name], _TAILS.get(act.name, ())
    return ((), ()) if act.name == "linear" else ((), _features(act.name))


def _lines(act) -> tuple[float, ...]:
    """x-space points whose lines u₂ = x are graded around in 2-D: kinks, or the centre of a
    smooth activation's transition (at large q, E[φ(u₂) | z₁] steps there over a width of
    order √(1 - c²), narrow next to the fixed panels when c → 1)."""
    base = _transformed_base(act)
    if base is not None:
        phi, alpha, beta = base
        return _mapped(_lines(phi), alpha, beta)
    if act.custom_fn is not None:
        return act.kinks or _CENTRES
    if act.name in _KINKS:
        return _KINKS[act.name]
    return () if act.name == "linear" else _CENTRES


def _cut(num: Array, den: Array) -> Array:
    ok = jnp.abs(den) > TINY
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), _Z)


def _panels(cuts: Array, n: int) -> tuple[Array, Array]:
    """Nodes and weights of ∫ f(z) N(z; 0, 1) dz on [-Z, Z], Gauss–Legendre between the cuts."""
    gx, gw = np.polynomial.legendre.leggauss(n)
    # Where the panels are cut does not change the integral, only its error:
    # derivatives flow through the nodes, not through the cuts (which are inf at q = 0).
    cuts = jax.lax.stop_gradient(cuts)
    fixed = jnp.asarray((-_Z, *_BASE, _Z), cuts.dtype)
    edges = jnp.sort(jnp.clip(jnp.concatenate([fixed, cuts]), -_Z, _Z))
    half, mid = (edges[1:] - edges[:-1]) / 2, (edges[1:] + edges[:-1]) / 2
    z = mid[:, None] + half[:, None] * jnp.asarray(gx, cuts.dtype)[None, :]
    w = half[:, None] * jnp.asarray(gw, cuts.dtype)[None, :] * jnp.exp(-z * z / 2)
    return z.reshape(-1), w.reshape(-1) / math.sqrt(2 * math.pi)


def _rule1(act, m, v, n: int = _N1) -> tuple[Array, Array, Array]:
    """Nodes x, their standard scores z and weights w of E[f(x)], x ~ N(m, v)."""
    m, v = jnp.asarray(m), jnp.asarray(v)
    sd = jnp.sqrt(jnp.maximum(v, 0.0))
    kinks, features = _breaks(act)
    z, w = _panels(_cut(jnp.asarray(kinks + features, v.dtype) - m, sd), n)
    return m + sd * z, z, w


def expect1(act, m, v, f, n: int = _N1) -> tuple[Array, ...]:
    """E[f(x)] for x ~ N(m, v); ``f`` returns a tuple of arrays shaped like x."""
    x, _, w = _rule1(act, m, v, n)
    return tuple(jnp.sum(w * y) for y in f(x))


def expect2(act, m, v1, v2, c, f, n: int = N2, *, eps=None) -> tuple[Array, ...]:
    r"""E[f(x1, x2)], (x1, x2) normal with means m, variances v1, v2 and correlation c.

    With ``eps`` given (and ``v1 == v2``), the correlation is ``1 - eps`` and
    :math:`x_2 = x_1 + \sqrt{v}(s z_2 - \epsilon z_1)`, :math:`s = \sqrt{\epsilon(2 - \epsilon)}`:
    the pair's difference, which is all that matters as c -> 1, is then exact to
    rounding for any ``eps`` (``c`` itself rounds to 1 below float32's 6e-8).
    """
    sd1, sd2 = jnp.sqrt(jnp.maximum(v1, 0.0)), jnp.sqrt(jnp.maximum(v2, 0.0))
    if eps is None:
        c = jnp.clip(c, -1.0, 1.0)
        s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    else:
        eps = jnp.clip(eps, 0.0, 1.0)
        c, s = 1.0 - eps, jnp.sqrt(eps * (2.0 - eps))
    kinks, features = _breaks(act)
    x = jnp.asarray(kinks + features, sd1.dtype) - m
    lines = _cut(jnp.asarray(_lines(act), sd1.dtype) - m, sd2 * c)  # u2's kinks, at z2 = 0
    grades = jnp.asarray(_GRADES + tuple(-g for g in _GRADES), sd1.dtype)
    graded = (lines[:, None] + _cut(s, jnp.abs(c)) * grades[None, :]).reshape(-1)
    # where u2's own transition (|x| <= 3; its tail's grading is the inner panels' job)
    # crosses z2 = 0
    core = jnp.asarray(kinks + tuple(f for f in features if abs(f) <= 3.0), sd1.dtype) - m
    z1, w1 = _panels(jnp.concatenate([_cut(x, sd1), _cut(core, sd2 * c), graded]), n)
    z2, w2 = jax.vmap(lambda a: _panels(_cut(x - sd2 * c * a, sd2 * s), n))(z1)
    x1 = m + sd1 * z1[:, None]  # (N1, 1): φ(x1) once per outer node
    if eps is None:
        x2 = m + sd2 * (c * z1[:, None] + s * z2)
    else:
        x2 = x1 + sd2 * (s * z2 - eps * z1[:, None])
    return tuple(jnp.sum(w1[:, None] * w2 * y) for y in f(x1, x2))


def dphi(act, x: Array) -> Array:
    return jax.jvp(act.fn, (x,), (jnp.ones_like(x),))[1]


def _elementwise(fn, *args):
    """``fn`` of scalars applied over the broadcast of ``args`` (arrays of one dtype, as
    :func:`run_static` makes them), by vmap."""
    shape = jnp.broadcast_shapes(*(a.shape for a in args))
    if not shape:
        return fn(*args)
    out = jax.vmap(fn)(*(jnp.broadcast_to(a, shape).reshape(-1) for a in args))
    return jax.tree.map(lambda o: o.reshape(shape), out)


def run_static(fn, act, static, *args):
    """``fn(act, *static, *scalars)`` jitted, over the broadcast of ``args``.

    The arguments go in as arrays of one strong dtype, so that ``0.5``, ``np.float32(0.5)``
    and ``jnp.asarray(0.5)`` share one compiled program (a Python float is weakly typed
    in jax, and a weak type is a distinct program)."""
    dtype = jnp.result_type(*args, jnp.float32)
    return _run_static(fn, act, static, *(jnp.asarray(a, dtype) for a in args))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _run_static(fn, act, static, *args):
    return _elementwise(lambda *a: fn(act, *static, *a), *args)


def second_moment(act, m, v, n=_N1):
    return expect1(act, m, v, lambda x: (act.fn(x) ** 2,), n)[0]


def covariance_of(act, m, v, c, n=N2):
    return expect2(act, m, v, v, c, lambda a, b: (act.fn(a) * act.fn(b),), n)[0]


def hermite(act, q, n_terms: int = 32) -> Array:
    """a_k² = E[φ(√q z) He_k(z)]²/k!, k < n_terms: E[φ(u1)φ(u2)] = Σ a_k² c^k (Mehler)."""
    x, z, w = _rule1(act, 0.0, q)
    y = w * act.fn(x)

    def step(h, k):  # normalized Hermite recurrence, stable where He_k/√k! is not
        h0, h1 = h
        return (h1, (z * h1 - jnp.sqrt(k) * h0) / jnp.sqrt(k + 1)), jnp.sum(y * h1)

    ks = jnp.arange(1, n_terms, dtype=z.dtype)
    a = jax.lax.scan(step, (jnp.ones_like(z), z), ks)[1]
    return jnp.concatenate([jnp.sum(y)[None], a]) ** 2
