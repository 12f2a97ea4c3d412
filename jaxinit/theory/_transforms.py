r"""Activation transforms that shape a deep network's kernel: DKS and TAT.

Deep Kernel Shaping (Martens et al. 2021, https://arxiv.org/abs/2110.01765) and Tailored
Activation Transformations (Zhang et al. 2022, https://openreview.net/forum?id=U0k7XNTiFEq)
make a deep network without skip connections trainable by replacing its activation φ by

.. math:: \hat\phi(x) = \gamma\,(\phi(\alpha x + \beta) + \delta),

with (α, β, γ, δ) solved so that the *local* maps of φ̂ (for unit-variance inputs and
σ_w² = 1, σ_b² = 0, z ~ N(0, 1)) make the whole network's C map well behaved:

- Q(1) = E[φ̂(z)²] = 1 (γ normalizes it) and Q'(1) = E[φ̂(z) φ̂'(z) z] = 1;
- **DKS**: C(0) = E[φ̂(z)]² = 0 (δ = -E[φ(α z + β)]) and C'(1) = E[φ̂'(z)²] = ζ^{1/L},
  so that the network's maximal slope C'_f(1) = (C'(1))^L equals ζ (default 1.5);
- **TAT**, smooth φ: C'(1) = 1 and C''(1) = E[φ̂''(z)²] = τ / L, so that the network's
  C''_f(1) = L·C''(1) equals τ (default 0.3); solutions with α γ ≥ 2 are rejected, as in
  dks (they have unstable Q maps);
- **TAT**, leaky ReLU: the negative slope s such that the network's C_f(0), the leaky
  ReLU's C map :math:`C(c) = [(1-s)^2(\sqrt{1-c^2} + (\pi - \arccos c)\,c)/\pi + 2 s c]
  / (1 + s^2)` composed L times from 0, equals η (default 0.9), and γ = √(2 / (1 + s²)).

For DKS with a leaky ReLU the slope takes α's place (α = 1): (s, β) are solved.

The network here is a chain of ``depth`` nonlinear layers (a vanilla MLP): dks's maximal
slope function is x ↦ x^L, its maximal curvature function x ↦ L x, and its subnetwork
maximizing function composes L times. The local maps are Gaussian expectations by the
panel quadrature of :mod:`jaxinit.theory` in float64 (its panels cut at φ's kinks, mapped
to x = (k - β)/α); the equations are solved by Newton's method with jax's Jacobian, from
dks's starting points in dks's order (then dks's random ones, seed 123), taking the first
solution, as dks takes the first that scipy's ``root`` finds. Against dks 0.1.2 (order-10⁵
Gauss–Legendre on [-10, 10], scipy's hybr) the parameters agree to 1.2e-8 on tanh, softplus
and leaky ReLU (``tests/test_transforms.py``, references stored in
``tests/references/dks_transforms.json``); on SELU dks is off by up to 1e-2, its rule not
being split at SELU's kink.

For an activation whose slope jumps (selu, elu, hard_tanh), φ'' has a delta at the kink and
the true C''(1) = E[φ̂''(z)²] is infinite; TAT's curvature is then, as in dks, that of the
almost-everywhere second derivative (the delta dropped), a regularized target. DKS needs
only φ' and is exact for them.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import activations as _activations
from jaxinit._checks import check_int, check_real
from jaxinit.theory._quadrature import _Z, _breaks

__all__ = ["METHODS", "transform"]

METHODS = ("dks", "tat")
_N = 48  # Gauss–Legendre nodes per panel: float64 rounding, not the rule, limits the sums
_TOL = 1e-12  # Newton stops where every residual is below this
_MAX_NEWTON = 60
_NUM_TRIES = 50  # starting points, as dks
_RANDOM_SEED = 123  # dks's seed for its random starting points
# dks's starting values and random ranges, per parameter
_ALWAYS_TRY = {
    "input_shift": (0.0, 1.0, -1.0),
    "input_scale": (1.0, 0.1),
    "output_shift": (0.0, 1.0, -1.0),
    "negative_slope": (0.0, 0.5),
}
_RANGE = {
    "input_shift": (-3.0, 3.0),
    "input_scale": (0.0, 2.0),
    "output_shift": (-3.0, 3.0),
    "negative_slope": (0.0, 1.0),
}


def _leaky_c_map(c, slope):
    """The leaky ReLU's local C map (unit input variance, normalized output)."""
    return (
        (1 - slope) ** 2 * (np.sqrt(1 - c**2) + (np.pi - np.arccos(c)) * c) / np.pi + 2 * slope * c
    ) / (1 + slope**2)


def _chain_c0(slope: float, depth: int) -> float:
    """C_f(0) of a chain of ``depth`` leaky ReLU layers: the C map composed from 0."""
    c = 0.0
    for _ in range(depth):
        c = _leaky_c_map(c, slope)
    return float(c)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _moments(base: _activations.Activation, leaky: bool, p_scale, beta):
    """E over z ~ N(0, 1) of φ, φ², φ'², φ''², φ φ' z and φ' z at x = α z + β; for a leaky
    base, ``p_scale`` is the negative slope and α = 1, else ``p_scale`` is α."""
    if leaky:
        alpha = jnp.ones_like(p_scale)
        phi = functools.partial(jax.nn.leaky_relu, negative_slope=p_scale)
    else:
        alpha, phi = p_scale, base.fn

    def d1(x):
        return jax.jvp(phi, (x,), (jnp.ones_like(x),))[1]

    def d2(x):
        return jax.jvp(d1, (x,), (jnp.ones_like(x),))[1]

    z, w = _rule(base, alpha, beta)
    x = alpha * z + beta
    u, g, h = phi(x), d1(x), d2(x)
    return tuple(jnp.sum(w * y) for y in (u, u * u, g * g, h * h, u * g * z, g * z))


def _rule(base, alpha, beta) -> tuple[jax.Array, jax.Array]:
    """Nodes z and weights of E[f(z)], z ~ N(0, 1) on [-Z, Z]: Gauss–Legendre panels cut
    where x = α z + β meets φ's kinks and features (theory's cuts), mapped to z. The cuts
    move with (α, β) *in the derivative too*: where φ' jumps (selu, leaky ReLU), the
    derivative of E[φ'(x)²] has a term from the jump crossing the density (Leibniz's
    rule), which only moving nodes see; theory's own rule fixes its cuts."""
    kinks, features = _breaks(base)
    points = jnp.asarray(kinks + features, jnp.result_type(alpha))
    cuts = jnp.sort(jnp.clip((points - beta) / alpha, -_Z, _Z))
    edges = jnp.concatenate([jnp.full((1,), -_Z), cuts, jnp.full((1,), _Z)])
    gx, gw = np.polynomial.legendre.leggauss(_N)
    half, mid = (edges[1:] - edges[:-1]) / 2, (edges[1:] + edges[:-1]) / 2
    z = (mid[:, None] + half[:, None] * gx[None, :]).ravel()
    w = (half[:, None] * gw[None, :]).ravel() * jnp.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return z, w


def _local(base, leaky: bool, p_scale, beta, delta):
    """φ̂'s local maps, ``delta`` None for DKS (C(0) = 0: δ = -E[φ]); and (α, γ, δ)."""
    e1, e2, d1sq, d2sq, u_d1_z, d1_z = _moments(base, leaky, p_scale, beta)
    alpha = 1.0 if leaky else p_scale
    if delta is None:
        delta = -e1
    gamma2 = 1.0 / (e2 + 2 * delta * e1 + delta * delta)
    maps = {
        "q_slope_1": gamma2 * alpha * (u_d1_z + delta * d1_z),
        "c_slope_1": gamma2 * alpha**2 * d1sq,
        "c_curv_1": gamma2 * alpha**4 * d2sq,
        "c_val_0": gamma2 * (e1 + delta) ** 2,
    }
    return maps, (alpha, jnp.sqrt(gamma2), delta)


def _residual_fn(base, leaky: bool, method: str, targets: dict):
    """p -> residuals of the method's equations, and p -> (α, β, γ, δ, slope)."""
    dks = method == "dks"

    def unpack(p):
        return p[0], p[1], None if dks else p[2]

    def residual(p):
        maps, _ = _local(base, leaky, *unpack(p))
        keys = ("q_slope_1", "c_slope_1") if dks else ("q_slope_1", "c_slope_1", "c_curv_1")
        return jnp.stack([maps[k] - targets[k] for k in keys])

    def params(p):
        p_scale, beta, delta = unpack(p)
        _, (alpha, gamma, delta) = _local(base, leaky, p_scale, beta, delta)
        slope = p_scale if leaky else None
        return alpha, beta, gamma, delta, slope

    return jax.jit(residual), jax.jit(jax.jacfwd(residual)), jax.jit(params)


def _newton(residual, jacobian, p0: np.ndarray) -> np.ndarray | None:
    """A root of ``residual`` from ``p0`` by damped Newton (halving the step until the
    residual's norm falls), or None where it does not converge."""
    p = np.asarray(p0, np.float64)
    r = np.asarray(residual(p))
    for _ in range(_MAX_NEWTON):
        if not np.all(np.isfinite(r)):
            return None
        if np.max(np.abs(r)) < _TOL:
            return p
        try:
            step = np.linalg.solve(np.asarray(jacobian(p)), -r)
        except np.linalg.LinAlgError:
            return None
        norm, t = np.linalg.norm(r), 1.0
        while t > 1e-6:
            q = p + t * step
            rq = np.asarray(residual(q))
            if np.all(np.isfinite(rq)) and np.linalg.norm(rq) < norm:
                break
            t /= 2
        else:
            return None
        p, r = q, rq
    return p if np.max(np.abs(r)) < _TOL else None


def _odd(base) -> bool:
    """Whether φ(-x) = -φ(x) (tanh, erf): then φ̂'s parameters come in mirror pairs."""
    x = np.linspace(-4.0, 4.0, 17)
    return bool(np.allclose(np.asarray(base.fn(-x)), -np.asarray(base.fn(x)), rtol=0, atol=1e-12))


def _starting_points(names: tuple[str, ...]) -> list[tuple[float, ...]]:
    """dks's: every combination of the always-try values, then random ones (seed 123)."""
    points = list(itertools.product(*(_ALWAYS_TRY[n] for n in names)))
    rng = np.random.RandomState(_RANDOM_SEED)
    while len(points) < _NUM_TRIES:
        points.append(tuple(rng.uniform(*_RANGE[n]) for n in names))
    return points


def _solve(base, leaky: bool, method: str, targets: dict) -> tuple:
    names = ("negative_slope" if leaky else "input_scale", "input_shift")
    if method == "tat":
        names += ("output_shift",)
    residual, jacobian, params = _residual_fn(base, leaky, method, targets)
    for start in _starting_points(names):
        p = _newton(residual, jacobian, np.array(start))
        if p is None:
            continue
        if _odd(base) and p[1] < 0:  # (α, -β, -δ) is the mirror solution: take β >= 0, as dks
            p = np.where(np.arange(len(p)) >= 1, -p, p)
        alpha, beta, gamma, delta, slope = (None if v is None else float(v) for v in params(p))
        if method == "tat" and alpha * gamma >= 2.0:  # dks's rejection: unstable Q maps
            continue
        return alpha, beta, gamma, delta, slope
    raise ValueError(
        f"transform: found no {method.upper()} parameters for {base.spec!r} with targets "
        f"{targets} from {_NUM_TRIES} starting points; try other targets"
    )


def transform(
    activation: Any,
    *,
    depth: int,
    method: str = "dks",
    zeta: float = 1.5,
    tau: float = 0.3,
    eta: float = 0.9,
) -> _activations.Activation:
    r"""The activation transformed by DKS or TAT for a chain of ``depth`` layers: an
    :class:`~jaxinit.activations.Activation` usable wherever an activation is (``Grid``,
    ``TrainGrid``, theory), whose spec carries the solved parameters, so it round-trips
    (``ji.activations.get(act.spec) == act``).

    φ̂(x) = γ (φ(α x + β) + δ) (see :mod:`jaxinit.theory._transforms` for the equations;
    ``ji.activations.transformed`` for the form). The network is assumed to use weights of
    variance 1/fan_in (σ_w² = 1, e.g. ``lecun_normal``, or DKS's orthogonal
    ``orthogonal``) and zero biases, as in both papers.

    Args:
      activation: one of the table's activations (a spec or an Activation): a smooth one
        (tanh, softplus, selu, elu, gelu, silu, sigmoid, erf, ...) or ``leaky_relu``
        (its slope is solved: the given slope is ignored). ReLU is refused (dks advises
        a leaky ReLU; TAT does not support ReLU).
      depth: the number of nonlinear layers L (an int >= 1).
      method: ``"dks"`` (Deep Kernel Shaping) or ``"tat"`` (Tailored Activation
        Transformations).
      zeta: DKS's target maximal slope ζ > 1 of the network's C map, C'_f(1).
      tau: TAT's target curvature τ > 0 of the network's C map, C''_f(1) (smooth φ).
      eta: TAT's target C_f(0) in [0, 1) for a leaky ReLU.

    Raises ValueError where the targets cannot be met (for instance TAT's η = 0.9 with a
    leaky ReLU chain shorter than about 12 layers: even ReLU's C map, composed from 0,
    stays below it), naming the value and what to change.

    Example:
      >>> import jaxinit as ji
      >>> act = ji.theory.transform("tanh", depth=50, method="dks")
      >>> act.spec.startswith("transformed(base='tanh', input_scale=0.1284")
      True
      >>> round(float(ji.theory.chi1(act, q=1.0, sigma_w2=1.0)) ** 50, 4)  # C'_f(1) = ζ
      1.5
    """
    act = _activations.get(activation)
    method = _check_method(method)
    depth = check_int("transform: depth", depth, low=1)
    if act.name == "relu":
        raise ValueError(
            "transform: relu is not supported (dks advises against it with DKS and TAT does "
            "not support it); use 'leaky_relu', whose negative slope is solved"
        )
    if act.custom_fn is not None or act.name == "transformed" or act.stochastic:
        raise ValueError(
            f"transform: activation must be one of the table's deterministic activations "
            f"(ji.activations.names()); got {act.spec!r}"
        )
    leaky = act.name == "leaky_relu"
    if method == "tat" and leaky:
        return _tat_leaky(depth, check_real("transform: eta", eta, low=0.0))
    with jax.enable_x64(True):
        if method == "dks":
            zeta = check_real("transform: zeta", zeta, low=1.0, strict=True)
            targets = {"q_slope_1": 1.0, "c_slope_1": zeta ** (1.0 / depth)}
        else:
            tau = check_real("transform: tau", tau, low=0.0, strict=True)
            targets = {"q_slope_1": 1.0, "c_slope_1": 1.0, "c_curv_1": tau / depth}
        base = _activations.leaky_relu() if leaky else act
        alpha, beta, gamma, delta, slope = _solve(base, leaky, method, targets)
    spec = act.spec if not leaky else f"leaky_relu(negative_slope={slope!r})"
    return _activations.transformed(
        base=spec, input_scale=alpha, input_shift=beta, output_scale=gamma, output_shift=delta
    )


def _tat_leaky(depth: int, eta: float) -> _activations.Activation:
    """TAT for a leaky ReLU: the slope s with C_f(0) = η (bisection; C_f(0) falls with s),
    and γ = √(2 / (1 + s²)) for Q(1) = 1."""
    if not eta < 1.0:
        raise ValueError(f"transform: eta must be in [0, 1); got {eta}")
    most = _chain_c0(0.0, depth)  # ReLU's: the largest C_f(0) a leaky ReLU chain reaches
    if most < eta:
        raise ValueError(
            f"transform: TAT's C_f(0) = eta = {eta} is out of reach for a leaky ReLU chain of "
            f"depth {depth} (at most {most:.4f}, ReLU's); use a smaller eta or a deeper network"
        )
    lo, hi = 0.0, 1.0  # C_f(0) >= eta at lo, < eta at hi
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if _chain_c0(mid, depth) >= eta else (lo, mid)
    slope = lo
    return _activations.transformed(
        base=f"leaky_relu(negative_slope={slope!r})",
        output_scale=math.sqrt(2.0 / (1.0 + slope**2)),
    )


def _check_method(method: Any) -> str:
    if method not in METHODS:
        raise ValueError(f"transform: method must be one of {METHODS}; got {method!r}")
    return method
