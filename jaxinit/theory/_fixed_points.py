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

from jaxinit.theory._maps import _chi1, _length
from jaxinit.theory._quadrature import (
    _N2,
    _TINY,
    Array,
    _act,
    _check_domain,
    _dphi,
    _expect1,
    _expect2,
    _hermite,
    _run,
    _second,
)

__all__ = [
    "DepthScales",
    "FixedPoint",
    "critical_sigma_w2",
    "depth_scales",
    "phase_diagram",
    "q_star",
]

_DIVERGED = 1e30  # q beyond this counts as diverged


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
    # Marginal: V(q0) = q0 to rounding with V' = 1, as for relu at σ_w² = 2, σ_b² = 0, where
    # every q is a fixed point; q0 itself is then the answer. (Checked at q0 only: far out,
    # a slow linear growth such as q + σ_b² is also "rounding" relative to q.)
    marginal = (jnp.abs(vq - q0) <= 8 * jnp.finfo(q0.dtype).eps * q0) & (jnp.abs(dv - 1) <= 1e-3)
    one = jnp.ones_like(q0)
    start = (q0, vq, dv, one, jnp.where(marginal, jnp.int32(max_iter), jnp.int32(0)))
    q, vq, dv, _, it = jax.lax.while_loop(going, body, start)
    it = jnp.where(marginal, 0, it)
    done = (_done(q, vq, dv, tol) | marginal) & ~_bad(q, vq)
    # With σ_b² = 0 and φ(0) = 0, q = 0 is a fixed point; where it attracts (V'(0+) <= 1, as
    # for tanh at σ_w² <= 1) the iterates approach it only geometrically or, at V'(0+) = 1,
    # algebraically, and stop at rounding (tanh at σ_w² = 1: 6e-8). They are q* = 0.
    v0, d0 = length(jnp.zeros_like(q))
    to_zero = (b == 0) & (v0 <= _TINY) & (d0 <= 1) & (q <= jnp.sqrt(jnp.finfo(q.dtype).eps) * q0)
    zero = done & ((q <= _TINY) | to_zero) & ~marginal
    return FixedPoint(jnp.where(zero, 0.0, q), done, _bad(q, vq), it)


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


def _check_fixed_point_args(fn, sigma_w2, sigma_b2, q0):
    for name, v in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2), ("q0", q0)):
        _check_domain(fn, name, v)


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
    _check_fixed_point_args("q_star", sigma_w2, sigma_b2, q0)
    return _run(_q_star, _act(activation), (tol, max_iter), sigma_w2, sigma_b2, q0)


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
    _check_fixed_point_args("depth_scales", sigma_w2, sigma_b2, q0)
    return _run(_scales, _act(activation), (tol, max_iter), sigma_w2, sigma_b2, q0)


def phase_diagram(activation, *, sigma_w2, sigma_b2, q0=1.0) -> DepthScales:
    """:func:`depth_scales` over the mesh of 1-D ``sigma_w2`` (n,) and ``sigma_b2`` (m,).

    Returns DepthScales of ``(n, m)`` arrays: entry ``[i, j]`` is
    ``(sigma_w2[i], sigma_b2[j])``. One compiled, vmapped program.
    """
    _check_fixed_point_args("phase_diagram", sigma_w2, sigma_b2, q0)
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
    _check_domain("critical_sigma_w2", "sigma_b2", sigma_b2)
    return _run(_critical, _act(activation), (), sigma_b2)
