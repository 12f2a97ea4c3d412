r"""Fixed points and depth scales: q*, c*, χ₁, χ_c, ξ_q, ξ_c, ξ_∇, the edge of chaos.

Schoenholz et al. (2017, https://arxiv.org/abs/1611.01232) define, at the
fixed point :math:`q^* = \mathcal{V}(q^*)` of the length map and the stable
fixed point :math:`c^*` of the c-map,

.. math::
   \xi_q^{-1} = -\log \mathcal{V}'(q^*), \quad
   \xi_c^{-1} = -\log \chi_c,\ \chi_c = \sigma_w^2\,\mathbb{E}[\varphi'(u_1)\varphi'(u_2)]\big|_{c^*},
   \quad \xi_\nabla^{-1} = -\log \chi_1 ;

the edge of chaos is :math:`\chi_1(q^*) = 1` (Poole et al. 2016,
https://arxiv.org/abs/1606.05340).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxinit._checks import check_int, check_real
from jaxinit.activations import Activation
from jaxinit.theory._maps import chi1_of, length_of
from jaxinit.theory._quadrature import (
    N2,
    TINY,
    Array,
    activation_of,
    check_domain,
    check_q_max,
    dphi,
    expect1,
    expect2,
    hermite,
    run_static,
    second_moment,
    warn_range,
)

__all__ = [
    "Q_STAR_TOL",
    "DepthScales",
    "FixedPoint",
    "critical_sigma_w2",
    "depth_scales",
    "divergence_sigma_w2",
    "phase_diagram",
    "q_star",
]

_DIVERGED = 1e30  # q beyond this counts as diverged
# q*'s default relative tolerance: what float32 resolves wherever V'(q*) <= 0.976
# (resolution 2·eps/(1 - V')); 1e-6 would leave every point with V' > 0.76 unconverged
Q_STAR_TOL = 1e-5
_MAX_ITER = 500
_EPS_MIN = 1e-12  # the smallest 1 - c* that the bisection for c* brackets
# Newton steps on the quadrature after the Mehler bisection: near the edge the series'
# truncation moves its root by up to a factor 2, which three steps correct
_NEWTON = 3
# |rate - 1| within which a depth scale is inf: 4 float32 ulps of 1, the resolution of χ
# (a sum of ~100 weighted quadrature terms); a scale beyond 2·10⁶ layers
_EDGE = 4 * float(np.finfo(np.float32).eps)


class FixedPoint(NamedTuple):
    """Result of :func:`q_star`; fields broadcast like its arguments."""

    q: Array  # (...) the last iterate: q* where converged
    # (...) bool: |V(q) - q| / (1 - V'(q)) <= tol·q, and the dtype resolves q* to tol
    converged: Array
    # (...) bool: q → ∞: non-finite, above 1e30, or growing without bound at least linearly
    # (V' >= 1 to rounding with σ_b² > 0, as relu at σ_w² = 2: q grows by σ_b² a layer)
    diverged: Array
    iterations: Array  # (...) int32
    # (...) the relative precision to which the dtype can place q* here, 2·eps/(1 - V'(q)):
    # V(q) - q is rounded at the scale of q and the fixed point moves by that over 1 - V'.
    # Above tol, q is not converged whatever its residual (relu at σ_w² = 1.99999,
    # σ_b² = 0.05 in float32: 5%); 0 where q* = 0 or every q is fixed, inf where V' >= 1.
    resolution: Array

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
        bad = ~np.asarray(self.converged)
        if np.any(bad):
            res = np.asarray(self.resolution)
            worst = float(np.max(np.where(bad & np.isfinite(res), res, 0.0)))
            warnings.warn(
                f"q* did not converge at {int(np.sum(bad))} of {np.size(bad)} points, within "
                f"{int(np.max(self.iterations))} iterations: slow near criticality, or past what "
                f"{np.asarray(self.q).dtype} resolves where V'(q*) is near 1 (resolution "
                f"{worst:.2g} relative at worst); raise max_iter, loosen tol, or use float64 "
                "(jax.enable_x64(True) and float64 arguments)",
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


def _q_star(act, tol, max_iter, w, b, q0) -> FixedPoint:
    """Iterates q <- V(q), with two accelerations.

    Where V is contracting (V' < 1) a Newton step on V(q) - q is taken when it
    lowers the residual. Where q grows at least linearly ((V - σ_b²)/q not
    decreasing: relu-like) the step is extrapolated geometrically, K steps at
    once with K doubling, so divergence shows in tens of iterations.
    """

    def length(q):  # V and V'; linear below TINY, where sqrt has no derivative
        at = jnp.maximum(q, TINY)
        v, dv = jax.jvp(lambda q: length_of(act, q, w, b), (at,), (jnp.ones_like(at),))
        return v - dv * (at - q), dv

    def body(state):
        q, vq, dv, k, it = state
        newton = jnp.maximum(q - (vq - q) / jnp.where(dv < 1, dv - 1, -1.0), 0.0)
        grow = (vq > q) & (dv >= 1) & (dv * q >= (vq - b) * (1 - 1e-4))
        jump = q * jnp.minimum((vq / jnp.maximum(q, TINY)) ** k, 1e3)
        cand = jnp.where(dv < 1, newton, jnp.where(grow, jump, vq))
        (vc, vp), (dc, dp) = jax.vmap(length)(jnp.stack([cand, vq]))
        take = grow | ((dv < 1) & (jnp.abs(vc - cand) < jnp.abs(vp - vq)))
        k = jnp.where(grow, jnp.minimum(2 * k, 2.0**20), 1.0)
        pick = lambda a, b: jnp.where(take, a, b)  # noqa: E731
        return pick(cand, vq), pick(vc, vp), pick(dc, dp), k, it + 1

    def going(state):  # on to rounding (tol/100): depth scales near the edge need all of q*
        q, vq, dv, _, it = state
        return (it < max_iter) & ~_done(q, vq, dv, tol * 1e-2) & ~_bad(q, vq)

    vq, dv = length(q0)
    # Marginal: V(q0) = q0 to rounding with V' = 1, as for relu at σ_w² = 2, σ_b² = 0, where
    # every q is a fixed point; q0 itself is then the answer. (Checked at q0 only: far out,
    # a slow linear growth such as q + σ_b² is also "rounding" relative to q.)
    marginal = (jnp.abs(vq - q0) <= 8 * jnp.finfo(q0.dtype).eps * q0) & (jnp.abs(dv - 1) <= 1e-3)
    one = jnp.ones_like(q0)
    start = (q0, vq, dv, one, jnp.where(marginal, jnp.int32(max_iter), jnp.int32(0)))
    q, vq, dv, _, it = jax.lax.while_loop(going, body, start)
    it = jnp.where(marginal, 0, it)
    eps = jnp.finfo(q.dtype).eps
    bad = _bad(q, vq)
    # q grows without bound, at least linearly: V' >= 1 to rounding, S(q) = E[φ²] grows at
    # least linearly (V' q >= V - σ_b²), and σ_b² > 0 adds at every layer. Past ~1e6 the
    # float32 iterate stops moving (q + σ_b² rounds to q), so it is named here.
    linear = (b > 0) & (dv >= 1 - 8 * eps) & (dv * q >= (vq - b) * (1 - 1e-4)) & ~marginal
    done = (_done(q, vq, dv, tol) | marginal) & ~bad & ~linear
    # With σ_b² = 0 and φ(0) = 0, q = 0 is a fixed point; where it attracts (V'(0+) <= 1, as
    # for tanh at σ_w² <= 1) the iterates approach it only geometrically or, at V'(0+) = 1,
    # algebraically, and stop at rounding (tanh at σ_w² = 1: 6e-8). They are q* = 0.
    v0, d0 = length(jnp.zeros_like(q))
    to_zero = (b == 0) & (v0 <= TINY) & (d0 <= 1) & (q <= jnp.sqrt(jnp.finfo(q.dtype).eps) * q0)
    zero = done & ((q <= TINY) | to_zero) & ~marginal
    resolution = 2 * eps / jnp.maximum(1.0 - dv, 0.0)
    resolution = jnp.where(zero | marginal, 0.0, resolution)
    converged = done & (resolution <= tol)
    return FixedPoint(jnp.where(zero, 0.0, q), converged, bad | linear, it, resolution)


def _done(q, vq, dv, tol):
    """Converged: the distance to the fixed point, |V(q) - q|/(1 - V'), is within tol·q
    (at V' >= 1, as where q grows linearly, it is not), or the residual is rounding
    where V contracts; or q = 0 is the fixed point."""
    res = jnp.abs(vq - q)
    rounding = (res <= 8 * jnp.finfo(q.dtype).eps * q) & (dv < 1 - 1e-3)
    gap = res / jnp.maximum(1.0 - dv, 0.0)
    return (gap <= tol * q) | rounding | ((q <= TINY) & (vq <= TINY))


def _bad(q, vq):
    return ~jnp.isfinite(q) | ~jnp.isfinite(vq) | ((q > _DIVERGED) & (vq > q))


def _check_fixed_point_args(fn, sigma_w2, sigma_b2, q0, tol=Q_STAR_TOL, max_iter=_MAX_ITER):
    for name, v in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2), ("q0", q0)):
        check_domain(fn, name, v)
    check_real(f"{fn}: tol", tol, low=0.0, strict=True)
    check_int(f"{fn}: max_iter", max_iter, low=1)


def _warn_beyond(fn, act, sigma_w2, sigma_b2, q0, result):
    """Warns (concrete values only) where an argument or a finite fixed point lies beyond
    Q_MAX, the tested range, for an activation whose accuracy depends on q: there a
    bounded φ's q* ≈ σ_w² may also pass 1e30 and be flagged as diverged."""
    for name, v in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2), ("q0", q0)):
        warn_range(fn, name, v, act, stacklevel=4)
    q = result.q_star if isinstance(result, DepthScales) else result.q
    if not isinstance(q, jax.core.Tracer):
        finite = np.where(np.asarray(result.diverged), 0.0, np.asarray(q, np.float64))
        warn_range(fn, "q*", finite, act, stacklevel=4)


def q_star(
    activation: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    q0: ArrayLike = 1.0,
    tol: float = Q_STAR_TOL,
    max_iter: int = _MAX_ITER,
) -> FixedPoint:
    r"""The fixed point :math:`q^* = \mathcal{V}(q^*)` reached from ``q0``, by iteration.

    Each step is :math:`q \leftarrow \mathcal{V}(q)`, or a Newton step on
    :math:`\mathcal{V}(q) - q` where that is contracting and lowers the residual,
    so the stable fixed point is found in a few steps except at criticality;
    relu-like growth is extrapolated, so divergence shows within tens of steps.
    Converged means :math:`|\mathcal{V}(q) - q|/(1 - \mathcal{V}'(q)) \le` ``tol``·q
    (an estimate of the distance to q*), or q = 0 where that is the fixed point,
    and the dtype resolves q* that finely: ``resolution`` = 2·eps/(1 - V'(q)) <= tol
    (float32 places a fixed point with V' = 0.99999 only to ~2%).
    Diverged means q → ∞, including a steady linear growth (relu at σ_w² = 2 with
    σ_b² > 0, where each layer adds σ_b²).
    The loop is a ``lax.while_loop``: jit- and vmap-able. Check the flags, or
    call ``.checked()`` on a concrete result to raise on divergence and warn on
    non-convergence.

    Args:
      activation: a spec string or an Activation.
      sigma_w2: the weight variance times the fan-in, >= 0.
      sigma_b2: the bias second moment, >= 0.
      q0: the starting variance (the inputs' mean square), >= 0.
      tol: the relative tolerance on q*.
      max_iter: the most iterations.

    Returns:
      FixedPoint(q, converged, diverged, iterations, resolution), broadcast over the
      arguments.
    """
    _check_fixed_point_args("q_star", sigma_w2, sigma_b2, q0, tol, max_iter)
    act = activation_of(activation)
    fp = run_static(_q_star, act, (tol, max_iter), sigma_w2, sigma_b2, q0)
    _warn_beyond("q_star", act, sigma_w2, sigma_b2, q0, fp)
    return fp


def _scales(act, tol, max_iter, w, b, q0) -> DepthScales:
    fp = _q_star(act, tol, max_iter, w, b, q0)
    q = jnp.where(fp.diverged, 1.0, jnp.maximum(fp.q, TINY))
    x1 = chi1_of(act, q, w)
    slope_q = jax.jvp(lambda q: length_of(act, q, w, b), (q,), (jnp.ones_like(q),))[1]
    # c* = 1 - ε*, everything in ε = 1 - c, where the phase's physics lives near the edge
    # of chaos (ε* -> 0): 1 - f(1 - ε) = (w/2V) E[(φ(u1) - φ(u2))²] and
    # χ_c = χ1 - (w/2) E[(φ'(u1) - φ'(u2))²] have no cancellation, where f(c) and
    # E[φ'(u1)φ'(u2)] near 1 lose every digit of ε (float32 c = 0.9999 is ε to 6e-4).
    # ε* is bracketed by bisection in log ε on the Mehler series (tail lumped into its
    # last term, so f(1) = 1), then Newton steps on the quadrature.
    a2 = hermite(act, q)
    a2 = a2.at[-1].add(jnp.maximum(second_moment(act, 0.0, q) - jnp.sum(a2), 0.0))
    powers = jnp.arange(a2.shape[0], dtype=q.dtype)

    def secant(e):  # (1 - f(1 - ε))/ε - 1: decreasing (f is convex); its root is ε*
        drop = -jnp.expm1(powers * jnp.log1p(-e))  # 1 - (1 - ε)^k, exact for small ε
        return w * jnp.sum(a2 * drop) / (w * jnp.sum(a2) + b) / e - 1.0

    def step(_, lohi):
        lo, hi = lohi
        mid = jnp.sqrt(lo * hi)
        up = secant(mid) > 0
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    bracket = (jnp.full_like(q, _EPS_MIN), jnp.ones_like(q))
    lo, hi = jax.lax.fori_loop(0, 48, step, bracket)
    chaotic = x1 > 1
    e0 = jnp.where(chaotic, jnp.sqrt(lo * hi), 0.5)
    norm = w * second_moment(act, 0.0, q, N2) + b

    def integrands(u, v):  # squared differences and products of φ and φ'
        fu, fv, du, dv = act.fn(u), act.fn(v), dphi(act, u), dphi(act, v)
        return (fu - fv) ** 2, (du - dv) ** 2, fu * fv, du * dv

    def moments(e):  # at correlation 1 - ε: 1 - f(1 - ε), and χ1 - χ_c(1 - ε) (≥ 0)
        d_phi, d_dphi, pair, dpair = expect2(act, 0.0, q, q, None, integrands, eps=e)
        # near c = 1 the differences keep every digit; far from it (ε > 1/2) the products
        # do, and give f(0) = 0 exactly for an odd φ without bias
        near = e <= 0.5
        drop = jnp.where(near, w * d_phi / (2 * norm), 1.0 - (w * pair + b) / norm)
        return drop, jnp.where(near, w * d_dphi / 2, x1 - w * dpair)

    def newton(i, state):  # on (1 - f(1 - ε)) - ε, whose derivative is f'(c) - 1 < 0 at ε*
        e, _ = state
        drop, deficit = moments(e)
        slope = q / norm * (x1 - deficit) - 1.0
        step = jnp.clip(e - (drop - e) / jnp.minimum(slope, -1e-7), _EPS_MIN, 1.0)
        # the last pass only measures the deficit at ε*: one copy of the 2-D quadrature in
        # the program, not two (each copy is XLA:CPU kernels to compile)
        return jnp.where(i < _NEWTON, step, e), deficit

    e_end, deficit = jax.lax.fori_loop(0, _NEWTON + 1, newton, (e0, jnp.zeros_like(e0)))
    e_star = jnp.where(chaotic, e_end, 0.0)
    # χ_c - 1 = (χ1 - 1) - (χ1 - χ_c): no rounding of χ_c near 1 (χ1 - χ_c = (w/2) E[Δφ'²])
    excess = (x1 - 1.0) - jnp.where(chaotic, deficit, 0.0)
    nan = jnp.where(fp.diverged, jnp.nan, 1.0)
    return DepthScales(
        q_star=fp.q,
        c_star=(1.0 - e_star) * nan,
        chi1=x1,
        chi_c=(1.0 + excess) * nan,
        xi_q=_xi(slope_q - 1.0, signed=False) * nan,
        xi_c=_xi(excess, signed=False) * nan,
        xi_grad=_xi(x1 - 1.0, signed=True) * nan,
        converged=fp.converged,
        diverged=fp.diverged,
    )


def _xi(excess, *, signed):
    """-1/log(1 + excess), from ``excess = rate - 1`` (no rounding of the rate near 1).

    ``inf`` within float32's resolution of rate = 1 (``|excess| <= _EDGE``: a depth
    scale beyond 2·10⁶ layers); an unsigned scale is ``inf`` for a growing rate.
    """
    log = jnp.log1p(jnp.maximum(excess, -1.0))
    edge = jnp.abs(excess) <= _EDGE
    xi = -1.0 / jnp.where(edge, 1.0, log)
    return jnp.where(edge | (~signed & (log > 0)), jnp.inf, xi)


def depth_scales(
    activation: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    q0: ArrayLike = 1.0,
    tol: float = Q_STAR_TOL,
    max_iter: int = _MAX_ITER,
) -> DepthScales:
    r"""q*, c*, χ₁, χ_c and the depth scales ξ_q, ξ_c, ξ_∇.

    .. math::
       \xi_q^{-1} = -\log \mathcal{V}'(q^*), \quad
       \xi_c^{-1} = -\log \chi_c, \quad
       \xi_\nabla^{-1} = -\log \chi_1 .

    In the ordered phase (:math:`\chi_1 \le 1`) :math:`c^* = 1` and
    :math:`\chi_c = \chi_1`; in the chaotic phase :math:`c^* < 1` is the root of
    :math:`c = f(c)` in :math:`[0, 1)`, found by bisection (the c-map is convex
    there). Scales are ``inf`` at criticality and NaN where q diverges
    (``chi1`` is then taken at the last iterate, q > 1e30). Broadcasts.

    Args:
      activation: a spec string or an Activation.
      sigma_w2: the weight variance times the fan-in, >= 0.
      sigma_b2: the bias second moment, >= 0.
      q0: the variance the iteration for q* starts from, >= 0.
      tol: the relative tolerance on q* (:func:`q_star`).
      max_iter: the most iterations for q*.
    """
    _check_fixed_point_args("depth_scales", sigma_w2, sigma_b2, q0, tol, max_iter)
    act = activation_of(activation)
    scales = run_static(_scales, act, (tol, max_iter), sigma_w2, sigma_b2, q0)
    _warn_beyond("depth_scales", act, sigma_w2, sigma_b2, q0, scales)
    return scales


def phase_diagram(
    activation: str | Activation,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    q0: ArrayLike = 1.0,
) -> DepthScales:
    r""":func:`depth_scales` over the mesh of 1-D ``sigma_w2`` (n,) and ``sigma_b2`` (m,).

    The ordered phase is :math:`\chi_1(q^*) < 1`, the chaotic :math:`\chi_1(q^*) > 1`.
    One compiled, vmapped program.

    Args:
      activation: a spec string or an Activation.
      sigma_w2: ``(n,)`` weight variances times the fan-in, >= 0.
      sigma_b2: ``(m,)`` bias second moments, >= 0.
      q0: the variance the iteration for q* starts from, >= 0.

    Returns:
      DepthScales of ``(n, m)`` arrays: entry ``[i, j]`` is ``(sigma_w2[i], sigma_b2[j])``.
    """
    _check_fixed_point_args("phase_diagram", sigma_w2, sigma_b2, q0)
    w, b = jnp.asarray(sigma_w2, jnp.float32), jnp.asarray(sigma_b2, jnp.float32)
    if w.ndim != 1 or b.ndim != 1:
        raise ValueError(f"sigma_w2 and sigma_b2 must be 1-D; got shapes {w.shape}, {b.shape}")
    act = activation_of(activation)
    scales = run_static(_scales, act, (Q_STAR_TOL, _MAX_ITER), w[:, None], b[None, :], q0)
    _warn_beyond("phase_diagram", act, sigma_w2, sigma_b2, q0, scales)
    return scales


_GRID_T = np.logspace(-12, 6, 109)  # q - σ_b² along the fixed-point branch
# why critical_sigma_w2 and divergence_sigma_w2 refuse σ_b² > Q_MAX: a NaN would read as
# "no transition"
_BEYOND = (
    "every fixed point q* >= σ_b² lies beyond it, where the quadrature is untested and the "
    "search along the fixed points does not reach (a NaN there would read as 'no transition')"
)


def _branch(act, b, t):
    """Along the fixed points q = σ_b² + t: σ_w²(q) = t/E[φ(√q z)²], h = σ_w² E[φ'²] - 1, and
    dσ_w²/dt. A fixed point is stable (V'(q*) < 1) exactly where σ_w²(q) increases:
    differentiating q = σ_w² E[φ²] + σ_b² at fixed σ_w² gives V' = 1 - E[φ²] dσ_w²/dq."""

    def h_and_w(t):
        second, d2 = expect1(act, 0.0, t + b, lambda x: (act.fn(x) ** 2, dphi(act, x) ** 2))
        w = t / second
        return w * d2 - 1.0, w

    (h, w), (_, dw) = jax.jvp(h_and_w, (t,), (jnp.ones_like(t),))
    return h, w, dw


def _bisect_log(f, lo, hi, steps=24):
    """The sign change of ``f`` between ``lo`` and ``hi`` (> 0), by bisection in log."""
    sign = jnp.sign(f(lo))

    def step(_, lh):
        mid = jnp.sqrt(lh[0] * lh[1])
        same = jnp.sign(f(mid)) == sign
        return jnp.where(same, mid, lh[0]), jnp.where(same, lh[1], mid)

    lo, hi = jax.lax.fori_loop(0, steps, step, (lo, hi))
    return jnp.sqrt(lo * hi)


_FLAT = 1e-5  # |d log σ_w² / d log t| below this is flat: float32 cannot tell its sign


class _Branch(NamedTuple):
    """The fixed-point branch on the grid ``t`` (``_GRID_T``), and where its stable part
    that starts at small q ends (``end``: the index of its first maximum, or the last)."""

    t: Array
    h: Array
    w: Array
    slope: Array  # d log σ_w² / d log t
    end: Array  # int: the first branch is t[0 .. end]
    peaks: Array  # bool: it ends at a maximum (a saddle-node), not at q -> ∞


def _first_branch(act, b) -> _Branch:
    t = jnp.asarray(_GRID_T, b.dtype)
    h, w, dw = jax.vmap(lambda t: _branch(act, b, t))(t)
    slope = dw * t / jnp.where(w > 0, w, 1.0)
    falling = slope < -_FLAT
    peaks = falling.any()
    end = jnp.where(peaks, jnp.argmax(falling), t.shape[0] - 1)
    return _Branch(t, h, w, slope, end, peaks)


def _critical(act, b):
    br = _first_branch(act, b)
    t, h = br.t, br.h
    at = jax.vmap(lambda lo, hi: _bisect_log(lambda t: _branch(act, b, t)[0], lo, hi))(
        t[:-1], t[1:]
    )
    # a root of χ₁ = 1 is the edge of chaos only on the stable branch reached from small q
    # (σ_w²(q) increasing up to its first maximum); gelu's and silu's lie past it
    idx = jnp.arange(t.shape[0] - 1)
    moving = jnp.abs(br.slope) > _FLAT  # near q = σ_b² the slope is below float32's reach
    # the branch leaves q = σ_b² rising; falling from the start (gelu at σ_b² = 0) there is
    # no stable branch of q* > 0 at all
    leaves_up = ~moving.any() | (br.slope[jnp.argmax(moving)] > 0)
    on_branch = leaves_up & ((idx + 1 <= br.end) | ~br.peaks)
    w_at = jax.vmap(lambda t: _branch(act, b, t)[1])(at)
    roots = jnp.where((h[:-1] * h[1:] <= 0) & on_branch, w_at, jnp.inf)
    # the limits q -> σ_b² (if the branch leaves it increasing) and q -> ∞ (if it gets
    # there without a maximum) where h -> 0
    start = jnp.where((jnp.abs(h[0]) < 1e-3) & leaves_up, br.w[0], jnp.inf)
    end = jnp.where((jnp.abs(h[-1]) < 1e-3) & ~br.peaks, br.w[-1], jnp.inf)
    best = jnp.minimum(jnp.min(roots), jnp.minimum(start, end))
    return jnp.where(jnp.isfinite(best), best, jnp.nan)


def _divergence(act, b):
    br = _first_branch(act, b)
    t, w, end = br.t, br.w, br.end
    lo, hi = t[jnp.maximum(end - 1, 0)], t[end]
    peak = _bisect_log(lambda t: _branch(act, b, t)[2], lo, hi)  # dσ_w²/dt changes sign
    w_peak = jnp.maximum(_branch(act, b, peak)[1], w[jnp.maximum(end - 1, 0)])
    # falling from the start (σ_b² = 0, φ(0) = 0: q* = 0 attracts while σ_w² φ'(0)² < 1)
    w_peak = jnp.where(end == 0, w[0], w_peak)
    # no maximum: the stable branch runs to q -> ∞, bounded (relu: 2) or not (tanh: ∞)
    growing = br.slope[-1] > _FLAT
    return jnp.where(br.peaks, w_peak, jnp.where(growing, jnp.inf, w[-1]))


def critical_sigma_w2(activation: str | Activation, *, sigma_b2: ArrayLike = 0.0) -> Array:
    r"""The σ_w² at which :math:`\chi_1(q^*) = 1`: the edge of chaos, approached from order.

    Solved along the fixed points instead of by iterating the map: a fixed
    point :math:`q` needs :math:`\sigma_w^2(q) = (q - \sigma_b^2)/\mathbb{E}[\varphi(\sqrt{q}z)^2]`,
    and it is critical where :math:`h(q) = \sigma_w^2(q)\,\mathbb{E}[\varphi'^2] - 1 = 0`.
    The roots of :math:`h` on a log grid of :math:`q - \sigma_b^2 \in [10^{-12}, 10^{6}]`
    (bisected) and the limits :math:`q \to \sigma_b^2`, :math:`q \to \infty` where
    :math:`h \to 0` there are the candidates, kept only on the *stable* branch,
    where :math:`\sigma_w^2(q)` increases (:math:`\mathcal{V}'(q^*) = 1 - \mathbb{E}[\varphi^2]\,d\sigma_w^2/dq < 1`);
    the smallest σ_w² is returned.
    So tanh at σ_b² = 0, whose q* → 0, gives :math:`1/\varphi'(0)^2 = 1`; erf
    (:math:`\varphi'(0) = 2/\sqrt\pi`) gives π/4; relu gives 2 for any σ_b² (a
    limit q* → ∞). Broadcasts over ``sigma_b2``.

    NaN where there is no continuous order-to-chaos transition: gelu, silu and
    softplus stay ordered (:math:`\chi_1 < 1`) on every stable fixed point; their
    roots of :math:`\chi_1 = 1` lie on the unstable branch, and past
    :func:`divergence_sigma_w2` the stable fixed point is gone and q jumps to ∞.

    Args:
      activation: a spec string or an Activation.
      sigma_b2: the bias second moment, >= 0.
    """
    check_domain("critical_sigma_w2", "sigma_b2", sigma_b2)
    check_q_max("critical_sigma_w2", "sigma_b2", sigma_b2, _BEYOND)
    return run_static(_critical, activation_of(activation), (), sigma_b2)


def divergence_sigma_w2(activation: str | Activation, *, sigma_b2: ArrayLike = 0.0) -> Array:
    r"""The σ_w² past which the stable fixed point q* is gone and q → ∞ (from small q0).

    Along the branch of fixed points :math:`\sigma_w^2(q) = (q - \sigma_b^2)/\mathbb{E}[\varphi^2]`
    (see :func:`critical_sigma_w2`), the stable fixed points are where it
    increases. Its first maximum is a saddle-node: the stable and an unstable
    fixed point meet, and for larger σ_w² none is left, so q diverges
    discontinuously (gelu at σ_b² = 0.1: about 2.132, silu about 2.560). Without
    a maximum it is the branch's limit as q → ∞: 2 for the relu family (where
    that is also the edge of chaos), ∞ for activations whose q* grows without
    bound (tanh, erf). A q0 above the unstable fixed point diverges earlier.
    Broadcasts over ``sigma_b2``.

    Args:
      activation: a spec string or an Activation.
      sigma_b2: the bias second moment, >= 0.
    """
    check_domain("divergence_sigma_w2", "sigma_b2", sigma_b2)
    check_q_max("divergence_sigma_w2", "sigma_b2", sigma_b2, _BEYOND)
    return run_static(_divergence, activation_of(activation), (), sigma_b2)
