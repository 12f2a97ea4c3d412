r"""Mean-field theory of deep networks at initialization: maps, fixed points, depth scales, predict.

For a network :math:`z_l = h_{l-1} W_l + b_l`, :math:`h_l = \varphi(z_l)` with
i.i.d. zero-mean weights of variance :math:`\sigma_w^2/n_\mathrm{in}` and biases
of second moment :math:`\sigma_b^2`, the pre-activations of one input are
Gaussian at infinite width with variance :math:`q_l` (Poole et al. 2016):

.. math::
   q_{l} = \mathcal{V}(q_{l-1}) = \sigma_w^2\,\mathbb{E}_{z\sim\mathcal{N}(0,1)}
   [\varphi(\sqrt{q_{l-1}}\,z)^2] + \sigma_b^2, \qquad
   \chi_1 = \sigma_w^2\,\mathbb{E}[\varphi'(\sqrt{q^*} z)^2],

and the correlation of two inputs follows the c-map
:math:`c' = (\sigma_w^2 \mathbb{E}[\varphi(u_1)\varphi(u_2)] + \sigma_b^2)/\mathcal{V}(q)`,
:math:`(u_1, u_2)` bivariate normal with variance :math:`q` and correlation :math:`c`.
Schoenholz et al. (2017) define the depth scales

.. math::
   \xi_q^{-1} = -\log\big(\chi_1 + \sigma_w^2\,\mathbb{E}[\varphi''\varphi]\big)
   = -\log \mathcal{V}'(q^*), \quad
   \xi_c^{-1} = -\log \chi_c,\ \chi_c = \sigma_w^2\,\mathbb{E}[\varphi'(u_1)\varphi'(u_2)]\big|_{c^*},
   \quad \xi_\nabla^{-1} = -\log \chi_1 .

The two forms of :math:`\xi_q` are equal by Gaussian integration by parts; the
second (an autodiff derivative of the map) also holds where :math:`\varphi''`
has delta functions (relu, hard_tanh). :math:`\xi_\nabla` is signed: positive
where gradients vanish, negative where they explode; every scale is ``inf``
where its rate is 1 (criticality, :math:`\chi_1 = 1`).

Quadrature. Every expectation is a fixed-node rule, so every function here is
jit-, vmap- and grad-able. Gauss–Hermite converges only algebraically at a
kink (about 3e-3 on relu's mean with 64 nodes, 8e-3 on hard_tanh with 128), so
the Gaussian is instead cut at ±8 into Gauss–Legendre panels, split at
:math:`z = 0, \pm 2, \pm 4` and wherever :math:`m + \sqrt{q}\,z` meets a kink of
:math:`\varphi` (relu family, elu, selu at 0; hard_tanh at ±1) or, for the smooth
saturating activations, :math:`x = \pm 1, \pm 3` (which keeps large :math:`q`
accurate). In two dimensions the outer panels are also split along the kink
lines of :math:`u_2` and graded around them, so that :math:`c \to 1` stays
accurate. Against a dense float64 reference the error is within 2e-5 relative
(mostly ~1e-7, float32 rounding) for every registered activation, q up to 40. Activations are used through their deterministic
``fn`` (rrelu: the mean slope), as the sweep kernel uses them.

References:
  - Poole et al. 2016, *Exponential expressivity in deep neural networks through
    transient chaos*, https://arxiv.org/abs/1606.05340
  - Schoenholz et al. 2017, *Deep Information Propagation*, https://arxiv.org/abs/1611.01232
  - Klambauer et al. 2017, *Self-Normalizing Neural Networks* (SELU: with
    :math:`\sigma_w^2 = 1`, :math:`\sigma_b^2 = 0`, :math:`q^* = 1`), https://arxiv.org/abs/1706.02515
  - Yang et al. 2019, *A Mean Field Theory of Batch Normalization*, https://arxiv.org/abs/1902.08129

Example:
  >>> import jaxinit as ji
  >>> float(ji.theory.critical_sigma_w2("relu"))  # doctest: +SKIP
  2.0
  >>> ji.theory.depth_scales("tanh", sigma_w2=1.5, sigma_b2=0.05).xi_c  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from jaxinit import activations as _activations
from jaxinit import initializers as _initializers
from jaxinit.grid import Grid
from jaxinit.results import SweepResult

__all__ = [
    "DepthScales",
    "FixedPoint",
    "Moments",
    "c_map",
    "chi1",
    "critical_sigma_w2",
    "depth_scales",
    "phase_diagram",
    "predict",
    "propagate",
    "propagate_variance",
    "q_star",
    "sigma_b2",
    "sigma_w2",
    "variance_map",
]

Array = jax.Array
_Z = 8.0  # the Gaussian is integrated over ±8 standard deviations (mass lost: 1.2e-15)
_BASE = (-4.0, -2.0, 0.0, 2.0, 4.0)  # panel edges in z, with ±_Z: six panels
_N1, _N2 = 12, 6  # Gauss–Legendre nodes per panel, in 1-D and per dimension in 2-D
_GRADES = (1.0, 3.0, 9.0)  # 2-D outer panels around u2's kink lines, in units of their width
_KINKS = {n: (0.0,) for n in ("relu", "leaky_relu", "prelu", "rrelu", "elu", "selu")}
_KINKS["hard_tanh"] = (-1.0, 1.0)
_FEATURES = (-3.0, -1.0, 1.0, 3.0)  # x-space cuts for smooth activations (not for linear)
_DIVERGED = 1e30  # q beyond this counts as diverged
_TINY = 1e-30
_MAX_PAIRS = 256  # sample pairs predict follows for the cosine of an inputs array
_FIELDS = ("pre_mean", "pre_var", "post_mean", "post_var", "saturated", "dead")
_BN_EPS = 1e-5  # as jaxinit.kernel.BN_EPS


class Moments(NamedTuple):
    """Per-layer predictions of :func:`propagate` (layer 0 nearest the input)."""

    pre_var: Array  # (depth,) q_l = E[z_l²]
    post_mean: Array  # (depth,) E[φ(z_l)]
    post_second: Array  # (depth,) E[φ(z_l)²]


class FixedPoint(NamedTuple):
    """Result of :func:`q_star`; fields broadcast like its arguments."""

    q: Array  # (...) the last iterate: q* where converged
    converged: Array  # (...) bool: |V(q) - q| / (1 - V'(q)) <= tol·q
    diverged: Array  # (...) bool: q non-finite or above 1e30 (q → ∞)
    iterations: Array  # (...) int32

    def checked(self) -> Array:
        """``q``, after raising ValueError where it diverged and warning where it did not converge.

        For concrete results only (outside ``jit``).
        """
        if np.any(np.asarray(self.diverged)):
            raise ValueError(
                f"the length map diverges (q → ∞) at {int(np.sum(self.diverged))} of "
                f"{np.size(self.diverged)} points: no finite fixed point q*; the network is "
                "past its critical σ_w² (see critical_sigma_w2)"
            )
        if not np.all(np.asarray(self.converged)):
            warnings.warn(
                f"q* did not converge within {int(np.max(self.iterations))} iterations at "
                f"{int(np.sum(~np.asarray(self.converged)))} points (slow near criticality); "
                "raise max_iter or loosen tol",
                RuntimeWarning,
                stacklevel=2,
            )
        return self.q


class DepthScales(NamedTuple):
    """Depth scales, slopes and fixed points (Schoenholz et al. 2017); NaN where q diverged."""

    xi_q: Array  # (...) -1/log V'(q*)
    xi_c: Array  # (...) -1/log χ_c
    xi_grad: Array  # (...) -1/log χ1, signed: < 0 where gradients explode
    q_star: Array  # (...) fixed point of the length map
    c_star: Array  # (...) stable fixed point of the c-map in [0, 1]; 1 in the ordered phase
    chi1: Array  # (...) σ_w² E[φ'(√q* z)²]
    chi_c: Array  # (...) σ_w² E[φ'(u1) φ'(u2)] at c*
    converged: Array  # (...) bool: q* converged
    diverged: Array  # (...) bool: q → ∞


# -- quadrature -------------------------------------------------------------------------------


def _act(activation: Any) -> _activations.Activation:
    return _activations.get(activation)


def _breaks(act) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(kinks, smooth features) of φ in x-space, where the panels are cut."""
    if act.name in _KINKS:
        return _KINKS[act.name], ()
    return ((), ()) if act.name == "linear" else ((), _FEATURES)


def _cut(num: Array, den: Array) -> Array:
    ok = jnp.abs(den) > _TINY
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


def _expect1(act, m, v, f, n: int = _N1) -> tuple[Array, ...]:
    """E[f(x)] for x ~ N(m, v); ``f`` returns a tuple of arrays shaped like x."""
    x, _, w = _rule1(act, m, v, n)
    return tuple(jnp.sum(w * y) for y in f(x))


def _expect2(act, m, v1, v2, c, f, n: int = _N2) -> tuple[Array, ...]:
    """E[f(x1, x2)], (x1, x2) normal with means m, variances v1, v2 and correlation c."""
    sd1, sd2 = jnp.sqrt(jnp.maximum(v1, 0.0)), jnp.sqrt(jnp.maximum(v2, 0.0))
    c = jnp.clip(c, -1.0, 1.0)
    s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    kinks, features = _breaks(act)
    x = jnp.asarray(kinks + features, sd1.dtype) - m
    lines = _cut(jnp.asarray(kinks, sd1.dtype) - m, sd2 * c)  # where u2's kinks cross z2 = 0
    grades = jnp.asarray(_GRADES + tuple(-g for g in _GRADES), sd1.dtype)
    graded = (lines[:, None] + _cut(s, jnp.abs(c)) * grades[None, :]).reshape(-1)
    z1, w1 = _panels(jnp.concatenate([_cut(x, sd1), _cut(x, sd2 * c), graded]), n)
    z2, w2 = jax.vmap(lambda a: _panels(_cut(x - sd2 * c * a, sd2 * s), n))(z1)
    x1 = m + sd1 * z1[:, None]  # (N1, 1): φ(x1) once per outer node
    x2 = m + sd2 * (c * z1[:, None] + s * z2)
    return tuple(jnp.sum(w1[:, None] * w2 * y) for y in f(x1, x2))


def _dphi(act, x: Array) -> Array:
    return jax.jvp(act.fn, (x,), (jnp.ones_like(x),))[1]


def _elementwise(fn, *args):
    """``fn`` of scalars applied over the broadcast of ``args`` (by vmap)."""
    dtype = jnp.result_type(*args, jnp.float32)
    args = [jnp.asarray(a, dtype) for a in args]
    shape = jnp.broadcast_shapes(*(a.shape for a in args))
    if not shape:
        return fn(*args)
    out = jax.vmap(fn)(*(jnp.broadcast_to(a, shape).reshape(-1) for a in args))
    return jax.tree.map(lambda o: o.reshape(shape), out)


# -- maps -------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _run(fn, act, static, *args):
    """``fn(act, *static, *scalars)`` jitted, over the broadcast of ``args``."""
    return _elementwise(lambda *a: fn(act, *static, *a), *args)


def _second(act, m, v, n=_N1):
    return _expect1(act, m, v, lambda x: (act.fn(x) ** 2,), n)[0]


def _cov(act, m, v, c, n=_N2):
    return _expect2(act, m, v, v, c, lambda a, b: (act.fn(a) * act.fn(b),), n)[0]


def _length(act, q, w, b):
    return w * _second(act, 0.0, q) + b


def _chi1(act, q, w):  # at q = 0, the limit q → 0+ (relu's φ'(0) is a matter of convention)
    return w * _expect1(act, 0.0, jnp.maximum(q, _TINY), lambda x: (_dphi(act, x) ** 2,))[0]


def _correlation(act, c, q, w, b):
    return (w * _cov(act, 0.0, q, c) + b) / (w * _second(act, 0.0, q, _N2) + b)


def variance_map(activation, q, *, sigma_w2, sigma_b2) -> Array:
    r"""The length map :math:`q' = \sigma_w^2\,\mathbb{E}[\varphi(\sqrt{q} z)^2] + \sigma_b^2`.

    Arguments broadcast elementwise; ``activation`` is a spec or an Activation.
    """
    return _run(_length, _act(activation), (), q, sigma_w2, sigma_b2)


def chi1(activation, *, q, sigma_w2) -> Array:
    r""":math:`\chi_1 = \sigma_w^2\,\mathbb{E}[\varphi'(\sqrt{q} z)^2]`, φ' by ``jax.jvp``."""
    return _run(_chi1, _act(activation), (), q, sigma_w2)


def c_map(activation, c, *, q, sigma_w2, sigma_b2) -> Array:
    r"""The correlation map :math:`c' = (\sigma_w^2 \mathbb{E}[\varphi(u_1)\varphi(u_2)] + \sigma_b^2)/\mathcal{V}(q)`.

    :math:`(u_1, u_2)` is bivariate normal with variance ``q`` and correlation
    ``c``. Dividing by :math:`\mathcal{V}(q)`, the next layer's variance, gives
    the next layer's correlation for any ``q``; at :math:`q = q^*` it is the
    usual division by :math:`q^*`. :math:`c'(1) = 1` to rounding.
    """
    return _run(_correlation, _act(activation), (), c, q, sigma_w2, sigma_b2)


def propagate(activation, q0, depth: int, *, sigma_w2, sigma_b2) -> Moments:
    r"""Per-layer pre-activation variance and post-activation moments of a depth-``depth`` net.

    ``q0`` is the inputs' mean square :math:`\|x\|^2/d_\mathrm{in}`, so layer 0 has
    :math:`q_0 = \sigma_{w,0}^2 q0 + \sigma_{b,0}^2` and layer :math:`l`
    :math:`q_l = \sigma_{w,l}^2 \mathbb{E}[\varphi(z_{l-1})^2] + \sigma_{b,l}^2`.
    ``sigma_w2`` and ``sigma_b2`` are scalars or ``(depth,)`` arrays (layer 0 has
    its own fan-in, :math:`d_\mathrm{in}`).
    """
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be an int >= 1; got {depth!r}")
    dtype = jnp.result_type(q0, sigma_w2, sigma_b2, jnp.float32)
    per_layer = []
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        value = jnp.asarray(value, dtype)
        if value.shape not in ((), (depth,)):
            raise ValueError(f"{name} must be a scalar or shaped ({depth},); got {value.shape}")
        per_layer.append(jnp.broadcast_to(value, (depth,)))
    return _propagate(_act(activation), jnp.asarray(q0, dtype), jnp.stack(per_layer, axis=1))


@functools.partial(jax.jit, static_argnums=0)
def _propagate(act, q0, wb):
    def layer(h2, wb):
        q = wb[0] * h2 + wb[1]
        mean, second = _expect1(act, 0.0, q, lambda x: (act.fn(x), act.fn(x) ** 2))
        return second, (q, mean, second)

    return Moments(*jax.lax.scan(layer, q0, wb)[1])


def propagate_variance(activation, q0, depth: int, *, sigma_w2, sigma_b2) -> Array:
    """``propagate(...).pre_var``: the predicted pre-activation variance per layer ``(depth,)``."""
    return propagate(activation, q0, depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2).pre_var


# -- fixed points and depth scales ------------------------------------------------------------


def _q_star(act, tol, max_iter, w, b, q0) -> FixedPoint:
    """Iterates q <- V(q), with two accelerations.

    Where V is contracting (V' < 1) a Newton step on V(q) - q is taken when it
    lowers the residual. Where q grows at least linearly ((V - σ_b²)/q not
    decreasing: relu-like) the step is extrapolated geometrically, K steps at
    once with K doubling, so divergence shows in tens of iterations.
    """

    def length(q):  # V and V'; linear below _TINY, where sqrt has no derivative
        at = jnp.maximum(q, _TINY)
        v, dv = jax.jvp(lambda q: _length(act, q, w, b), (at,), (jnp.ones_like(at),))
        return v - dv * (at - q), dv

    def body(state):
        q, vq, dv, k, it = state
        newton = jnp.maximum(q - (vq - q) / jnp.where(dv < 1, dv - 1, -1.0), 0.0)
        grow = (vq > q) & (dv >= 1) & (dv * q >= (vq - b) * (1 - 1e-4))
        jump = q * jnp.minimum((vq / jnp.maximum(q, _TINY)) ** k, 1e3)
        cand = jnp.where(dv < 1, newton, jnp.where(grow, jump, vq))
        (vc, vp), (dc, dp) = jax.vmap(length)(jnp.stack([cand, vq]))
        take = grow | ((dv < 1) & (jnp.abs(vc - cand) < jnp.abs(vp - vq)))
        k = jnp.where(grow, jnp.minimum(2 * k, 2.0**20), 1.0)
        pick = lambda a, b: jnp.where(take, a, b)  # noqa: E731
        return pick(cand, vq), pick(vc, vp), pick(dc, dp), k, it + 1

    def going(state):
        q, vq, dv, _, it = state
        return (it < max_iter) & ~_done(q, vq, dv, tol) & ~_bad(q, vq)

    vq, dv = length(q0)
    one = jnp.ones_like(q0)
    q, vq, dv, _, it = jax.lax.while_loop(going, body, (q0, vq, dv, one, jnp.int32(0)))
    done = _done(q, vq, dv, tol) & ~_bad(q, vq)
    return FixedPoint(jnp.where(done & (q <= _TINY), 0.0, q), done, _bad(q, vq), it)


def _done(q, vq, dv, tol):
    """Converged: the distance to the fixed point, |V(q) - q|/(1 - V'), is within tol·q
    (at V' >= 1, as where q grows linearly, it is not), or the residual is rounding
    where V contracts; or q = 0 is the fixed point."""
    res = jnp.abs(vq - q)
    rounding = (res <= 8 * jnp.finfo(q.dtype).eps * q) & (dv < 1 - 1e-3)
    gap = res / jnp.maximum(1.0 - dv, 0.0)
    return (gap <= tol * q) | rounding | ((q <= _TINY) & (vq <= _TINY))


def _bad(q, vq):
    return ~jnp.isfinite(q) | ~jnp.isfinite(vq) | ((q > _DIVERGED) & (vq > q))


def q_star(activation, *, sigma_w2, sigma_b2, q0=1.0, tol=1e-6, max_iter=500) -> FixedPoint:
    r"""The fixed point :math:`q^* = \mathcal{V}(q^*)` reached from ``q0``, by iteration.

    Each step is :math:`q \leftarrow \mathcal{V}(q)`, or a Newton step on
    :math:`\mathcal{V}(q) - q` where that is contracting and lowers the residual,
    so the stable fixed point is found in a few steps except at criticality;
    relu-like growth is extrapolated, so divergence shows within tens of steps.
    Converged means :math:`|\mathcal{V}(q) - q|/(1 - \mathcal{V}'(q)) \le` ``tol``·q
    (an estimate of the distance to q*), or q = 0 where that is the fixed point.
    The loop is a ``lax.while_loop``: jit- and vmap-able. Check the flags, or
    call ``.checked()`` on a concrete result to raise on divergence and warn on
    non-convergence.

    Returns:
      FixedPoint(q, converged, diverged, iterations), broadcast over the arguments.
    """
    return _run(_q_star, _act(activation), (tol, max_iter), sigma_w2, sigma_b2, q0)


def _hermite(act, q, n_terms: int = 32) -> Array:
    """a_k² = E[φ(√q z) He_k(z)]²/k!, k < n_terms: E[φ(u1)φ(u2)] = Σ a_k² c^k (Mehler)."""
    x, z, w = _rule1(act, 0.0, q)
    y = w * act.fn(x)

    def step(h, k):  # normalized Hermite recurrence, stable where He_k/√k! is not
        h0, h1 = h
        return (h1, (z * h1 - jnp.sqrt(k) * h0) / jnp.sqrt(k + 1)), jnp.sum(y * h1)

    ks = jnp.arange(1, n_terms, dtype=z.dtype)
    a = jax.lax.scan(step, (jnp.ones_like(z), z), ks)[1]
    return jnp.concatenate([jnp.sum(y)[None], a]) ** 2


def _scales(act, tol, max_iter, w, b, q0) -> DepthScales:
    fp = _q_star(act, tol, max_iter, w, b, q0)
    q = jnp.where(fp.diverged, 1.0, jnp.maximum(fp.q, _TINY))
    x1 = _chi1(act, q, w)
    slope = jax.jvp(lambda q: _length(act, q, w, b), (q,), (jnp.ones_like(q),))[1]
    # c*: bisection on the Mehler series (its tail lumped into the last term, so
    # f(1) = 1), then one Newton step on the quadrature c-map.
    norm = w * _second(act, 0.0, q, _N2) + b
    a2 = _hermite(act, q)
    a2 = a2.at[-1].add(jnp.maximum(_second(act, 0.0, q) - jnp.sum(a2), 0.0))
    powers = jnp.arange(a2.shape[0], dtype=q.dtype)

    def g(c):  # 1 - (1 - f(c))/(1 - c): decreasing for convex f; its root in [0, 1) is c*
        f = (w * jnp.sum(a2 * c**powers) + b) / (w * jnp.sum(a2) + b)
        return 1.0 - (1.0 - f) / (1.0 - c)

    def step(_, lohi):
        lo, hi = lohi
        mid = (lo + hi) / 2
        up = g(mid) > 0
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    lo, hi = jax.lax.fori_loop(0, 30, step, (jnp.zeros_like(q), jnp.ones_like(q)))
    chaotic = x1 > 1
    c0 = jnp.where(chaotic, (lo + hi) / 2, 0.5)
    cov, pair = _expect2(
        act, 0.0, q, q, c0, lambda u, v: (act.fn(u) * act.fn(v), _dphi(act, u) * _dphi(act, v))
    )
    f, df = (w * cov + b) / norm, w * q * pair / norm
    c1 = jnp.clip(c0 - (f - c0) / jnp.minimum(df - 1, -1e-6), 0.0, 1.0)
    c_star = jnp.where(chaotic, c1, 1.0)
    pair = _expect2(act, 0.0, q, q, c1, lambda u, v: (_dphi(act, u) * _dphi(act, v),))[0]
    chi_c = jnp.where(chaotic, w * pair, x1)
    nan = jnp.where(fp.diverged, jnp.nan, 1.0)
    return DepthScales(
        q_star=fp.q,
        c_star=c_star * nan,
        chi1=x1,
        chi_c=chi_c * nan,
        xi_q=_xi(slope, signed=False) * nan,
        xi_c=_xi(chi_c, signed=False) * nan,
        xi_grad=_xi(x1, signed=True) * nan,
        converged=fp.converged,
        diverged=fp.diverged,
    )


def _xi(rate, *, signed):
    """-1/log(rate); inf within float32 rounding of rate = 1 (beyond 1e6 layers)."""
    log = jnp.log(rate)
    edge = jnp.abs(log) <= 1e-6
    xi = -1.0 / jnp.where(edge, 1.0, log)
    return jnp.where(edge | (~signed & (log > 0)), jnp.inf, xi)


def depth_scales(activation, *, sigma_w2, sigma_b2, q0=1.0, tol=1e-6, max_iter=500) -> DepthScales:
    r"""q*, c*, χ₁, χ_c and the depth scales ξ_q, ξ_c, ξ_∇ (see the module docs).

    In the ordered phase (:math:`\chi_1 \le 1`) :math:`c^* = 1` and
    :math:`\chi_c = \chi_1`; in the chaotic phase :math:`c^* < 1` is the root of
    :math:`c = f(c)` in :math:`[0, 1)`, found by bisection (the c-map is convex
    there). Scales are ``inf`` at criticality and NaN where q diverges
    (``chi1`` is then taken at the last iterate, q > 1e30). Broadcasts.
    """
    return _run(_scales, _act(activation), (tol, max_iter), sigma_w2, sigma_b2, q0)


def phase_diagram(activation, *, sigma_w2, sigma_b2, q0=1.0) -> DepthScales:
    """:func:`depth_scales` over the mesh of 1-D ``sigma_w2`` (n,) and ``sigma_b2`` (m,).

    Returns DepthScales of ``(n, m)`` arrays: entry ``[i, j]`` is
    ``(sigma_w2[i], sigma_b2[j])``. One compiled, vmapped program.
    """
    w, b = jnp.asarray(sigma_w2, jnp.float32), jnp.asarray(sigma_b2, jnp.float32)
    if w.ndim != 1 or b.ndim != 1:
        raise ValueError(f"sigma_w2 and sigma_b2 must be 1-D; got shapes {w.shape}, {b.shape}")
    return _run(_scales, _act(activation), (1e-6, 500), w[:, None], b[None, :], q0)


def _critical(act, b):
    t = jnp.asarray(np.logspace(-12, 6, 109), b.dtype)

    def h_and_w(t):
        second, d2 = _expect1(act, 0.0, t + b, lambda x: (act.fn(x) ** 2, _dphi(act, x) ** 2))
        w = t / second
        return w * d2 - 1.0, w

    def root(lo, hi):  # bisection in log t between opposite signs of h
        sign = jnp.sign(h_and_w(lo)[0])

        def step(_, lh):
            mid = jnp.sqrt(lh[0] * lh[1])
            same = jnp.sign(h_and_w(mid)[0]) == sign
            return jnp.where(same, mid, lh[0]), jnp.where(same, lh[1], mid)

        lo, hi = jax.lax.fori_loop(0, 24, step, (lo, hi))
        return h_and_w(jnp.sqrt(lo * hi))[1]

    h, w = jax.vmap(h_and_w)(t)
    roots = jnp.where(h[:-1] * h[1:] <= 0, jax.vmap(root)(t[:-1], t[1:]), jnp.inf)
    ends = jnp.asarray([0, -1])
    limits = jnp.where(jnp.abs(h[ends]) < 1e-3, w[ends], jnp.inf)
    best = jnp.minimum(jnp.min(roots), jnp.min(limits))
    return jnp.where(jnp.isfinite(best), best, jnp.nan)


def critical_sigma_w2(activation, *, sigma_b2=0.0) -> Array:
    r"""The σ_w² at which :math:`\chi_1(q^*) = 1`: the edge of chaos, approached from order.

    Solved along the fixed points instead of by iterating the map: a fixed
    point :math:`q` needs :math:`\sigma_w^2(q) = (q - \sigma_b^2)/\mathbb{E}[\varphi(\sqrt{q}z)^2]`,
    and it is critical where :math:`h(q) = \sigma_w^2(q)\,\mathbb{E}[\varphi'^2] - 1 = 0`.
    The roots of :math:`h` on a log grid of :math:`q - \sigma_b^2 \in [10^{-12}, 10^{6}]`
    (bisected) and the limits :math:`q \to \sigma_b^2`, :math:`q \to \infty` where
    :math:`h \to 0` there are the candidates; the smallest σ_w² is returned.
    So tanh at σ_b² = 0, whose q* → 0, gives :math:`1/\varphi'(0)^2 = 1`; erf
    (:math:`\varphi'(0) = 2/\sqrt\pi`) gives π/4; relu gives 2 for any σ_b² (a
    limit q* → ∞). NaN where there is none. Broadcasts over ``sigma_b2``.
    """
    return _run(_critical, _act(activation), (), sigma_b2)


# -- initializers -----------------------------------------------------------------------------


def _weight_var(init, shape) -> float:
    mean, var = init.moments(shape)
    if mean != 0.0:
        raise ValueError(
            f"weight initializer {init.spec!r} has mean {mean!r} at shape {tuple(shape)}; "
            "mean-field theory needs zero-mean weights (a nonzero mean adds a rank-one "
            "term that the Gaussian limit does not describe)"
        )
    return var


def sigma_w2(init, shape, *, in_axis: int | None = None) -> float:
    r""":math:`\sigma_w^2 = \mathrm{fan\_in} \cdot \mathrm{Var}(w)` of an initializer at ``shape``.

    The variance is the initializer's exact ``variance(shape)`` (truncation,
    uniform and orthogonal scales included). ``fan_in`` is counted on the
    initializer's own layout (``convention="torch"``: ``(out, in)``) unless
    ``in_axis`` is given. Raises ValueError for initializers whose weights have
    a nonzero mean (``identity``, ``ones``, ``normal(mean=...)``, ...).
    """
    init = _initializers.get(init)
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2:
        raise ValueError(f"sigma_w2 needs a weight shape of rank >= 2; got {shape}")
    hp = dict(init.hparams)
    axes = (1, 0) if hp.get("convention") == "torch" else (-2, -1)
    if in_axis is None:
        in_axis = axes[0] if hp.get("in_axis") is None else hp["in_axis"]
        out_axis = axes[1] if hp.get("out_axis") is None else hp["out_axis"]
    else:
        out_axis = -2 if in_axis % len(shape) == len(shape) - 1 else -1
    fan_in, _ = _initializers.compute_fans(
        shape, in_axis=in_axis, out_axis=out_axis, batch_axis=hp.get("batch_axis", ())
    )
    return fan_in * _weight_var(init, shape)


def sigma_b2(bias_init, width: int) -> float:
    r""":math:`\sigma_b^2 = \mathbb{E}[b^2] = \mu_b^2 + \mathrm{Var}(b)` of a bias initializer.

    The maps above take biases as :math:`\mathcal{N}(0, \sigma_b^2)`; :func:`predict`
    keeps a bias mean :math:`\mu_b` apart (pre-activations :math:`\mathcal{N}(\mu_b, q - \mu_b^2)`).
    """
    mean, var = _initializers.get(bias_init).moments((int(width),))
    return mean**2 + var


# -- predict ----------------------------------------------------------------------------------

_DIMS = ("init", "activation", "depth", "width", "bias_init", "seed")  # as jaxinit.sweep.DIMS


def _thresholds(act) -> np.ndarray:
    """x-space (lo, hi, dead): φ(x) < lo below lo, φ(x) > hi above hi, φ(x) == 0 at or below dead."""
    f = lambda x: float(act.fn(jnp.float32(x)))  # noqa: E731 - float32, as the kernel computes
    grid = np.asarray(act.fn(jnp.linspace(-60.0, 60.0, 24001, dtype=jnp.float32)))
    lo, hi = act.saturation
    rounding = 1e-6 * np.abs(grid).max()  # float32 tanh is monotone only to rounding
    if (lo is not None or hi is not None) and np.any(np.diff(grid) < -rounding):
        raise ValueError(
            f"predict: the saturated fraction needs a non-decreasing activation; {act.spec!r} is not"
        )

    def crossing(y):  # the x where φ, increasing, passes y
        a, b = -1.0, 1.0
        while f(a) >= y and a > -1e30:
            a *= 2
        while f(b) < y and b < 1e30:
            b *= 2
        if f(a) >= y or f(b) < y:
            return -math.inf if f(a) >= y else math.inf
        for _ in range(200):
            mid = (a + b) / 2
            a, b = (mid, b) if f(mid) < y else (a, mid)
        return b

    if f(0.0) == 0.0 and f(-1e-30) == 0.0:
        dead = 0.0  # relu-like: zero on the negative half-line
    elif f(-1e30) != 0.0:
        dead = -math.inf
    else:  # zero far out by float32 underflow (softplus, sigmoid, silu, gelu): log bisection
        a, b = 30.0, -30.0  # exponents: φ(-10^a) == 0, φ(-10^b) != 0
        for _ in range(100):
            mid = (a + b) / 2
            a, b = (mid, b) if f(-(10.0**mid)) == 0.0 else (a, mid)
        dead = -(10.0**a)
    return np.array(
        [-math.inf if lo is None else crossing(lo), math.inf if hi is None else crossing(hi), dead]
    )


def _below(t, m, sd, *, inclusive):
    """P(x < t) (or <=) for x ~ N(m, sd²), sd >= 0."""
    ok = sd > 0
    step = (m <= t) if inclusive else (m < t)
    return jnp.where(ok, ndtr((t - m) / jnp.where(ok, sd, 1.0)), step.astype(sd.dtype))


def _post(act, m, v, thr):
    """E φ, E φ², E φ'², P(saturated), P(φ == 0) for pre-activations N(m, v)."""
    e1, e2, d2 = _expect1(act, m, v, lambda x: (act.fn(x), act.fn(x) ** 2, _dphi(act, x) ** 2))
    sd = jnp.sqrt(jnp.maximum(v, 0.0))
    sat = _below(thr[0], m, sd, inclusive=False) + 1.0 - _below(thr[1], m, sd, inclusive=True)
    return e1, e2, d2, sat, _below(thr[2], m, sd, inclusive=True)


def _fit(lsuv, w, h2, vb):
    """σ_w² after LSUV's loop on a layer whose inputs have mean square ``h2``: rescale
    until |w h2 + Var(b) - target| < tol, at most max_iter times (as the kernel does)."""
    if lsuv is None:
        return w
    target, tol, max_iter = lsuv

    def step(_, w):
        var = w * h2 + vb
        go = (var > 0) & (jnp.abs(var - target) >= tol)
        return jnp.where(go, w * target / jnp.where(go, var, 1.0), w)

    return jax.lax.fori_loop(0, max_iter, step, w)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _plain_forward(act, lsuv, sw, mb, vb, s0, thr):
    """Per layer and sample (D, S): variance, E φ, E φ², E φ'², saturated, dead; σ_w² (D,)."""

    def layer(h2, w):
        w = _fit(lsuv, w, jnp.mean(h2), vb)
        v = w * h2 + vb
        out = jax.vmap(lambda v: _post(act, mb, v, thr))(v)
        return out[1], (v, *out, w)

    return jax.lax.scan(layer, s0, sw)[1]


@functools.partial(jax.jit, static_argnums=(0, 1))
def _bn_forward(act, lsuv, sw, h2, vx, vb, batch, thr):
    """Per layer (D,): normalized variance, E φ, E φ², E φ'², saturated, dead, the raw
    pre-activations' batch variance σ², the batch variance of h, and σ_w²."""

    def layer(carry, w):
        h2, vh = carry
        w = _fit(lsuv, w, h2, vb)  # LSUV sees the raw pre-activations, before the norm
        raw = w * vh  # per unit over the batch; the bias cancels
        v = raw / (raw + _BN_EPS)
        e1, e2, d2, sat, dead = _post(act, 0.0, v, thr)
        vh = (batch - 1) / batch * (e2 - e1**2)
        return (e2, vh), (v, e1, e2, d2, sat, dead, raw, vh, w)

    return jax.lax.scan(layer, (h2, vx), sw)[1]


@functools.partial(jax.jit, static_argnums=0)
def _cosine(act, sw, mb, vb, pairs):
    """Mean over sample pairs of the post-activations' cosine, per layer (D,).

    ``pairs`` (P, 3): per pair the inputs' mean squares and mean product, or for
    batch norm (sw = 0, vb = the layer variances) the normalized ones.
    """

    def layer(h, wb):
        w, b = wb
        va, vb_, k = w * h[:, 0] + b, w * h[:, 1] + b, w * h[:, 2] + b
        c = k / jnp.sqrt(jnp.maximum(va * vb_, _TINY))

        def one(va, vb_, c):
            ab = _expect2(act, mb, va, vb_, c, lambda u, v: (act.fn(u) * act.fn(v),))[0]
            return jnp.stack([_second(act, mb, va, _N2), _second(act, mb, vb_, _N2), ab])

        h = jax.vmap(one)(va, vb_, c)
        return h, jnp.mean(h[:, 2] / jnp.sqrt(jnp.maximum(h[:, 0] * h[:, 1], _TINY)))

    wb = jnp.stack([sw, jnp.broadcast_to(vb, sw.shape)], axis=1)
    return jax.lax.scan(layer, pairs, wb)[1]


def _inputs(grid: Grid):
    """Per-sample mean squares (S,), the mean batch variance of an input, and pairs (P, 3)."""
    batch = grid.n_samples
    x = grid.input_array
    if x is None:
        square, mean = (1.0, 0.0) if grid.inputs == "gaussian" else (1.0 / 3.0, 0.5)
        var = (square - mean**2) * (batch - 1) / batch
        return np.array([square]), var, np.array([[square, square, mean**2]])
    x = x.astype(np.float64)
    d_in = x.shape[1]
    a, b = np.triu_indices(batch, 1)
    keep = np.unique(np.linspace(0, a.size - 1, min(a.size, _MAX_PAIRS)).astype(int))
    a, b = a[keep], b[keep]
    square = (x**2).mean(1)
    pairs = np.stack([square[a], square[b], (x[a] * x[b]).sum(1) / d_in], axis=1)
    return square, float(x.var(0).mean()), pairs


@functools.partial(jax.jit, static_argnums=0)
def _bn_cosine(act, v, batch):
    """Per layer (D,): cosine of φ(ẑ) for pairs of batch-normalized pre-activations.

    Centering over the batch makes the pairs' correlation average -1/(B - 1)
    exactly; every pair is taken at that average.
    """

    def one(v):
        ab = _expect2(act, 0.0, v, v, -1.0 / (batch - 1), lambda u, w: (act.fn(u) * act.fn(w),))
        return ab[0] / _second(act, 0.0, v, _N2)

    return jax.vmap(one)(v)


def _combination(grid, act, thr, init, width, bias, inputs) -> dict[str, np.ndarray]:
    """The fields of one (init, activation, width, bias init): (D,), and (n_depths, D) for
    the gradients."""
    depth, d_in, batch = max(grid.depths), grid.input_dim, grid.n_samples
    var0, var_h = _weight_var(init, (d_in, width)), _weight_var(init, (width, width))
    mb, vb = bias.moments((width,))
    sw = jnp.asarray([d_in * var0] + [width * var_h] * (depth - 1), jnp.float32)
    square, var_x, pairs = inputs
    lsuv = init.base[2:] if init.base[0] == "lsuv" else None  # (target_var, tol, max_iter)
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    out: dict[str, Any] = {}
    if grid.batchnorm:
        h2 = f32(square.mean())
        v, e1, e2, d2, sat, dead, raw, vh, sw = (
            np.asarray(a, np.float64)[:, None]
            for a in _bn_forward(act, lsuv, sw, h2, f32(var_x), f32(vb), batch, f32(thr))
        )
        sw = sw[:, 0]
        out.update(pre_mean=0 * v, pre_var=v, post_mean=e1, post_var=e2 - e1**2)
        # the weight gradient h_{l-1}ᵀ g_l sums over the batch; batch norm's backward
        # pass centers g, so h enters by its batch variance
        h_sum = np.concatenate([[[var_x]], vh[:-1]])
        scale = (1 - 2 / batch) / (raw[:, 0] + _BN_EPS)  # E g_raw² / E g_ẑ²
        if grid.cosine:
            out["cosine"] = np.asarray(_bn_cosine(act, f32(v[:, 0]), batch))
    else:
        v, e1, e2, d2, sat, dead, sw = (
            np.asarray(a, np.float64)
            for a in _plain_forward(act, lsuv, sw, f32(mb), f32(vb), f32(square), f32(thr))
        )
        post_mean = e1.mean(1)
        out.update(pre_mean=np.full(depth, mb), pre_var=v, post_mean=post_mean[:, None])
        out["post_var"] = (e2.mean(1) - post_mean**2)[:, None]
        h_sum = np.concatenate([square[None, :], e2[:-1]])  # E h² of the layer below
        scale = np.ones(depth)
        if grid.cosine:
            out["cosine"] = np.asarray(_cosine(act, f32(sw), f32(mb), f32(vb), f32(pairs)))
    out.update(saturated=sat, dead=dead)
    out = {k: a.mean(1) if a.ndim == 2 else a for k, a in out.items()}
    n_in = [d_in] + [width] * (depth - 1)
    shape = (len(grid.depths), depth)
    out["grad_var"], out["weight_grad_norm"] = np.full(shape, np.nan), np.full(shape, np.nan)
    for i, top in enumerate(grid.depths):
        g = d2[top - 1]  # per sample E δ² at the top (the cotangent has unit variance)
        for l in range(top - 1, -1, -1):
            out["grad_var"][i, l] = g.mean()
            g = scale[l] * g  # through batch norm's backward pass, if any
            norm2 = n_in[l] * width * batch * np.mean(h_sum[l] * g)
            out["weight_grad_norm"][i, l] = math.sqrt(norm2)
            g = d2[l - 1] * sw[l] * g  # width · Var(W_l) = σ_w² of a square layer
    return out


def predict(grid: Grid) -> SweepResult:
    r"""The mean-field prediction of ``jaxinit.sweep(grid)``: same dims, coords and field layout.

    Per layer, over all (sample, unit) entries as the kernel measures them:
    ``pre_mean``, ``pre_var``, ``post_mean``, ``post_var``, ``saturated`` (the
    Gaussian probability of φ beyond the activation's saturation thresholds,
    found by bisection in float32), ``dead`` (P(φ(z) == 0): z <= 0 for relu-like
    activations; float32 underflow far below zero for softplus, sigmoid, silu
    and gelu), ``grad_var``, ``weight_grad_norm`` and, with ``grid.cosine``,
    ``cosine``. ``hist``, ``nonfinite`` and ``diverged_layer`` have no prediction
    and are omitted. Every seed gets the same (expected) values.

    Forward: layer 0 has :math:`\sigma_{w,0}^2 = d_\mathrm{in}\mathrm{Var}(W_0)`
    at the shape ``(d_in, width)`` the kernel draws, hidden layers
    :math:`\mathrm{width}\cdot\mathrm{Var}(W_l)`. Pre-activations are
    :math:`\mathcal{N}(\mu_b, \sigma_w^2 \mathbb{E}[h^2] + \mathrm{Var}(b))`; the bias
    mean :math:`\mu_b` is kept apart, not folded into σ_b². Inputs: "gaussian"
    has :math:`\mathbb{E}[x^2] = 1`, "uniform" (U[0, 1)) 1/3 with mean 1/2 (so two
    samples start with correlation 3/4); an array is followed sample by sample
    (its own norms; for the cosine, up to 256 evenly spaced pairs).

    Backward, with the kernel's cotangent :math:`G \sim \mathcal{N}(0, 1)` at the
    top: :math:`\mathbb{E}\delta_{L-1}^2 = \mathbb{E}\varphi'(z_{L-1})^2` and
    :math:`\mathbb{E}\delta_{l-1}^2 = \mathrm{width}\,\mathrm{Var}(W_l)\,
    \mathbb{E}\varphi'(z_{l-1})^2\,\mathbb{E}\delta_l^2` (gradient independence,
    Schoenholz et al. 2017); ``weight_grad_norm`` is
    :math:`\sqrt{\mathbb{E}\|h_{l-1}^\top\delta_l\|_F^2} = \sqrt{B\,n_\mathrm{in}\,
    \mathbb{E}[h_{l-1}^2]\,\mathrm{width}\,\mathbb{E}\delta_l^2}` with
    :math:`h_{-1} = x`: by Jensen an upper bound on the mean norm, tight when
    :math:`B\,n_\mathrm{in}\,\mathrm{width}` is large.

    Batch norm (``grid.batchnorm``) is predicted, not refused: each unit's
    pre-activations are standardized over the batch, so they are
    :math:`\mathcal{N}(0, \sigma^2/(\sigma^2 + \epsilon))` whatever the init and bias,
    with :math:`\sigma^2 = n_\mathrm{in}\mathrm{Var}(W)` times the batch variance of
    the layer below. Its backward pass divides by :math:`\sqrt{\sigma^2+\epsilon}` and
    removes two of B directions (factor :math:`1 - 2/B`); the weight gradient
    sees :math:`h` by its batch variance; the cosine takes every pair at the
    centered correlation -1/(B - 1) (Yang et al. 2019's symmetric fixed point).
    These are approximations to O(1/B) and, for structured input arrays, to
    the spread of the pairs' correlations.

    LSUV (``lsuv``, data-dependent) is followed as the kernel runs it: each
    layer's σ_w² is rescaled until :math:`|\sigma_w^2 \mathbb{E}[h^2] + \mathrm{Var}(b) - t| <`
    tol (at most max_iter times), so within tol of the target in every layer.

    Raises ValueError for weight initializers with a nonzero mean (see
    :func:`sigma_w2`). Stochastic activations (rrelu) are used through ``fn``,
    the mean slope, exactly as the sweep kernel does.
    """
    if not isinstance(grid, Grid):
        raise TypeError(f"predict takes a jaxinit Grid; got {type(grid).__name__}")
    coords = grid.coords()
    sizes = [len(v) for v in coords.values()]
    depth = max(grid.depths)
    names = (*_FIELDS, "grad_var", "weight_grad_norm", *(("cosine",) if grid.cosine else ()))
    fields = {f: np.full((*sizes, depth), np.nan, np.float32) for f in names}
    inputs = _inputs(grid)
    for ia, act in enumerate(grid.activation_objs):
        thr = _thresholds(act)
        for ii, init in enumerate(grid.init_objs):
            for iw, width in enumerate(grid.widths):
                for ib, bias in enumerate(grid.bias_objs):
                    out = _combination(grid, act, thr, init, width, bias, inputs)
                    for idepth, top in enumerate(grid.depths):
                        at = (ii, ia, idepth, iw, ib)
                        for f in names:
                            value = out[f][idepth] if out[f].ndim == 2 else out[f]
                            fields[f][at][:, :top] = value[:top]
    result = SweepResult(
        dims=_DIMS,
        coords=coords,
        fields=fields,
        field_dims={f: ("layer",) for f in fields},
        aliases={d: a for d, a in grid.aliases.items() if a},
        attrs={
            "grid": grid.describe(),
            "theory": "mean-field (jaxinit.theory.predict); no hist, nonfinite, diverged_layer",
        },
    )
    return result.sel(**{d: coords[d][0] for d in grid.scalar_dims()})
