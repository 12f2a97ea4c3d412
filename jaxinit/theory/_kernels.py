r"""Infinite-width kernels of a deep fully connected network: the NNGP and the NTK.

The network is neural-tangents' ``stax.serial(Dense(W_std=σ_w, b_std=σ_b), act,
Dense(...), ..., act, Dense(...))`` with ``depth`` Dense layers, in the NTK
parameterization (its default): weights and biases :math:`\mathcal{N}(0, 1)`,

.. math::
   z_1 = \frac{\sigma_w}{\sqrt{d_\mathrm{in}}}\, x W_1 + \sigma_b b_1, \qquad
   z_{l+1} = \frac{\sigma_w}{\sqrt{n_l}}\, \varphi(z_l) W_{l+1} + \sigma_b b_{l+1}.

As the widths :math:`n_l \to \infty`, :math:`z_l` is a Gaussian process with
covariance :math:`K_l` (Lee et al. 2018), the same in the standard
parameterization, and the tangent kernel :math:`\Theta_l(x, x') =
\langle \partial_\theta z_l(x), \partial_\theta z_l(x') \rangle` is deterministic
(Jacot et al. 2018):

.. math::
   K_1(x, x') = \Theta_1(x, x') = \sigma_w^2\, \frac{x \cdot x'}{d_\mathrm{in}} + \sigma_b^2,

   K_{l+1} = \sigma_w^2\, \mathbb{E}[\varphi(u)\varphi(u')] + \sigma_b^2, \qquad
   \Theta_{l+1} = K_{l+1} + \sigma_w^2\, \mathbb{E}[\varphi'(u)\varphi'(u')]\, \Theta_l,

   (u, u') \sim \mathcal{N}\Big(0, \begin{bmatrix} K_l(x, x) & K_l(x, x') \\
   K_l(x, x') & K_l(x', x') \end{bmatrix}\Big).

Closed forms: the relu family (relu, leaky_relu, prelu, rrelu at its mean slope
:math:`s`), through the arc-cosine kernel of degree 1 and 0 (Cho & Saul 2009),
with :math:`\theta = \arccos c`, :math:`c = K_l(x,x')/\sqrt{K_l(x,x) K_l(x',x')}`
and :math:`J(\theta) = \sqrt{K_l(x,x) K_l(x',x')}\,(\sin\theta + (\pi - \theta)\cos\theta)/2\pi`:

.. math::
   \mathbb{E}[\varphi(u)\varphi(u')] = (1 + s^2)\, J(\theta) - 2 s\, J(\pi - \theta), \qquad
   \mathbb{E}[\varphi'(u)\varphi'(u')] = (1 + s^2)\,\frac{\pi - \theta}{2\pi} + s\,\frac{\theta}{\pi};

erf (Williams 1997), with :math:`\Sigma` the covariance above,

.. math::
   \mathbb{E}[\mathrm{erf}(u)\,\mathrm{erf}(u')] = \frac{2}{\pi} \arcsin
   \frac{2 K_l(x,x')}{\sqrt{(1 + 2K_l(x,x))(1 + 2K_l(x',x'))}}, \qquad
   \mathbb{E}[\mathrm{erf}'(u)\,\mathrm{erf}'(u')] = \frac{4}{\pi} \det(I + 2\Sigma)^{-1/2};

and linear. Every other registered activation goes through the fixed-node
bivariate Gaussian quadrature of :mod:`jaxinit.theory` (variances
:math:`K_l(x,x)` and :math:`K_l(x',x')` apart), with :math:`\varphi'` by
``jax.jvp``. Activations are used through their deterministic ``fn`` (rrelu:
the mean slope), as elsewhere in :mod:`jaxinit.theory`. A correlation :math:`c`
within 4 ulps of ±1 is taken as ±1: :math:`\mathbb{E}[\varphi'(u)\varphi'(u')]`
has a square-root singularity there (relu's :math:`(\pi - \arccos c)/2\pi`), so
the rounding of two equal inputs' products would otherwise move it by ~1e-4.

References:
  - Cho & Saul 2009, *Kernel Methods for Deep Learning* (the arc-cosine kernel),
    https://papers.nips.cc/paper/3628-kernel-methods-for-deep-learning
  - Lee et al. 2018, *Deep Neural Networks as Gaussian Processes*, https://arxiv.org/abs/1711.00165
  - Jacot et al. 2018, *Neural Tangent Kernel: Convergence and Generalization in Neural
    Networks*, https://arxiv.org/abs/1806.07572
  - Williams 1997, *Computing with Infinite Networks* (the erf kernel)
  - Novak et al. 2020, *Neural Tangents*, https://arxiv.org/abs/1912.02803

Example:
  >>> import jaxinit as ji
  >>> import jax.numpy as jnp
  >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])  # orthogonal: θ = π/2 after layer 1
  >>> k = ji.theory.kernels("relu", x, depth=2, sigma_w2=2.0, sigma_b2=0.0)
  >>> [round(float(v), 4) for v in k.nngp.ravel()]  # off-diagonal: 2 · (sin θ + (π - θ) cos θ)/2π = 1/π
  [1.0, 0.3183, 0.3183, 1.0]
  >>> [round(float(v), 4) for v in k.ntk.ravel()]  # Θ₂ = K₂ + 2 E[φ'φ'] Θ₁: 1 + 2 · ½ · 1; Θ₁ = 0 off it
  [2.0, 0.3183, 0.3183, 2.0]
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jaxinit._checks import check_int
from jaxinit.activations import Activation
from jaxinit.theory._quadrature import (
    TINY,
    Array,
    activation_of,
    check_domain,
    dphi,
    expect2,
    q_limit,
    warn_range,
)

__all__ = ["Kernels", "kernels"]

_SNAP_ULPS = 4  # correlations within 4 ulps of ±1 are ±1
_PAIRS_PER_BATCH = 4096  # quadrature pairs evaluated at once (each ~10⁴ nodes)


class Kernels(NamedTuple):
    """Result of :func:`kernels`: the infinite-width kernels of ``z_depth``."""

    nngp: Array  # (n1, n2) K_depth(x1_i, x2_j): the covariance of the pre-activations
    ntk: Array  # (n1, n2) Θ_depth(x1_i, x2_j): the neural tangent kernel, NTK parameterization


def _leaky_slope(act) -> float | None:
    """The negative slope of a relu-family activation (rrelu: its mean), else None."""
    hp = dict(act.hparams)
    if act.name == "relu":
        return 0.0
    if act.name == "leaky_relu":
        return float(hp["negative_slope"])
    if act.name == "prelu":
        return float(hp["slope"])
    if act.name == "rrelu":
        return (float(hp["lower"]) + float(hp["upper"])) / 2
    return None


def _pair(act, q1, q2, k12) -> tuple[Array, Array]:
    """(E[φ(u)φ(u')], E[φ'(u)φ'(u')]) for (u, u') ~ N(0, [[q1, k12], [k12, q2]])."""
    s12 = jnp.sqrt(jnp.maximum(q1 * q2, 0.0))
    ok = s12 > TINY
    c = jnp.clip(jnp.where(ok, k12 / jnp.where(ok, s12, 1.0), 0.0), -1.0, 1.0)
    # within rounding of ±1 is ±1: θ = arccos c has a square-root singularity there, so
    # one ulp of c (two inputs equal but summed in another order) would move θ by ~3e-4
    snap = _SNAP_ULPS * jnp.finfo(c.dtype).eps
    c = jnp.where(jnp.abs(c) > 1 - snap, jnp.sign(c), c)
    slope = _leaky_slope(act)
    if act.name == "linear":
        return k12, jnp.ones_like(k12)
    if slope is not None:  # arc-cosine kernels of degree 1 and 0 (Cho & Saul 2009)
        theta = jnp.arccos(c)
        sin = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
        j = s12 * (sin + (math.pi - theta) * c) / (2 * math.pi)  # E[relu(u) relu(u')]
        j_flip = s12 * (sin - theta * c) / (2 * math.pi)  # E[relu(u) relu(-u')]
        e = (1 + slope**2) * j - 2 * slope * j_flip
        ed = (1 + slope**2) * (math.pi - theta) / (2 * math.pi) + slope * theta / math.pi
        return e, ed
    if act.name == "erf":  # Williams 1997
        a1, a2 = 1 + 2 * q1, 1 + 2 * q2
        e = 2 / math.pi * jnp.arcsin(jnp.clip(2 * k12 / jnp.sqrt(a1 * a2), -1.0, 1.0))
        ed = 4 / math.pi / jnp.sqrt(jnp.maximum(a1 * a2 - 4 * k12 * k12, TINY))
        return e, ed
    f = lambda a, b: (act.fn(a) * act.fn(b), dphi(act, a) * dphi(act, b))  # noqa: E731
    return expect2(act, 0.0, q1, q2, c, f)


def _quadrature(act) -> bool:
    return act.name != "linear" and act.name != "erf" and _leaky_slope(act) is None


def _pairwise(act, q1, q2, k):
    """``_pair`` over the (n1, n2) grid of pairs; rows batched where it is a quadrature."""
    row = jax.vmap(functools.partial(_pair, act), in_axes=(None, 0, 0))  # (q1_i, q2, k_i)
    if not _quadrature(act):
        return jax.vmap(row, in_axes=(0, None, 0))(q1, q2, k)
    batch = max(1, _PAIRS_PER_BATCH // k.shape[1])
    return jax.lax.map(lambda a: row(a[0], q2, a[1]), (q1, k), batch_size=batch)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _kernels(act, depth: int, same: bool, x1, x2, w, b) -> Kernels:
    d_in = x1.shape[1]
    k = w * (x1 @ x2.T) / d_in + b
    if same:  # the diagonal itself, so that c = 1 exactly there
        q1 = q2 = jnp.diagonal(k)
    else:
        q1 = w * jnp.sum(x1 * x1, axis=1) / d_in + b
        q2 = w * jnp.sum(x2 * x2, axis=1) / d_in + b
    diag = jax.vmap(lambda q: _pair(act, q, q, q)[0])

    def layer(_, carry):
        k, t, q1, q2 = carry
        e, ed = _pairwise(act, q1, q2, k)
        k_next = w * e + b
        t_next = k_next + w * ed * t
        if same:
            q1_next = q2_next = jnp.diagonal(k_next)
        else:
            q1_next, q2_next = w * diag(q1) + b, w * diag(q2) + b
        return k_next, t_next, q1_next, q2_next

    k, t, _, _ = jax.lax.fori_loop(0, depth - 1, layer, (k, k, q1, q2))
    if same:  # the quadrature's order of u and u' leaves ~1e-7 asymmetry
        k, t = (k + k.T) / 2, (t + t.T) / 2
    return Kernels(k, t)


def _check_sigma(name: str, value: Any, *, positive: bool, who: str = "kernels"):
    shape = jnp.shape(value) if isinstance(value, jax.core.Tracer) else np.shape(value)
    if shape:
        raise ValueError(f"{who}: {name} must be a scalar; got shape {shape}")
    if positive and not isinstance(value, jax.core.Tracer) and not isinstance(value, bool | str):
        try:
            v = float(value)
        except (TypeError, ValueError):
            v = None  # check_domain names what is wrong with it
        if v is not None and not v > 0:
            raise ValueError(f"{who}: {name} must be a finite number > 0; got {v!r}")
    check_domain(who, name, value)


def _check_x(name: str, x: Any, *, who: str = "kernels", layout: str = "2-D (n, d_in)") -> Array:
    """``x`` as a real, finite jax array of the ``layout`` (its rank: the axes named), each
    axis >= 1; else a TypeError or ValueError naming ``who``'s argument."""
    try:
        x = jnp.asarray(x)
    except TypeError:
        raise TypeError(f"{who}: {name} must be an array of numbers; got {x!r}") from None
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise TypeError(f"{who}: {name} must be a real array; got dtype {x.dtype}")
    if x.ndim != layout.count(",") + 1 or 0 in x.shape:
        raise ValueError(f"{who}: {name} must be {layout}, each axis >= 1; got shape {x.shape}")
    if not isinstance(x, jax.core.Tracer) and not bool(jnp.isfinite(x).all()):
        raise ValueError(f"{who}: {name} has non-finite entries")
    return x


def kernels(
    activation: str | Activation,
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    depth: int,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
) -> Kernels:
    r"""The infinite-width NNGP and NTK of ``z_depth`` for ``Dense -> (act -> Dense) x (depth-1)``.

    The recursion, conventions and closed forms are in the module docstring:
    :math:`K_1 = \Theta_1 = \sigma_w^2 x \cdot x'/d_\mathrm{in} + \sigma_b^2`,
    :math:`K_{l+1} = \sigma_w^2 \mathbb{E}[\varphi(u)\varphi(u')] + \sigma_b^2`,
    :math:`\Theta_{l+1} = K_{l+1} + \sigma_w^2 \mathbb{E}[\varphi'(u)\varphi'(u')]\Theta_l`,
    as neural-tangents' ``stax.serial(Dense(W_std=√σ_w², b_std=√σ_b²), act, ...)``
    in its (default) NTK parameterization. jit- and vmap-able (``activation``
    and ``depth`` are static; ``x1``, ``x2``, ``sigma_w2``, ``sigma_b2`` may be traced).

    Args:
      activation: an activation spec or :class:`~jaxinit.activations.Activation`.
      x1: ``(n1, d_in)`` inputs.
      x2: ``(n2, d_in)`` inputs; ``None`` means ``x1`` (and a symmetric result).
      depth: the number of Dense layers, an int >= 1 (1: the linear first layer alone).
      sigma_w2: the weight variance :math:`\sigma_w^2 > 0` (times fan-in), a scalar.
      sigma_b2: the bias variance :math:`\sigma_b^2 \ge 0`, a scalar.

    Returns:
      ``Kernels(nngp, ntk)``, each ``(n1, n2)``.

    Raises:
      TypeError, ValueError: for a bad argument, naming it and what is valid; an
      unknown activation raises the registry's own error.
    """
    act = activation_of(activation)
    depth = check_int("depth", depth, low=1)
    _check_sigma("sigma_w2", sigma_w2, positive=True)
    _check_sigma("sigma_b2", sigma_b2, positive=False)
    x1 = _check_x("x1", x1)
    same = x2 is None
    x2 = x1 if same else _check_x("x2", x2)
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(
            "kernels: x1 and x2 must have the same feature dimension d_in; got "
            f"x1 {x1.shape} and x2 {x2.shape}"
        )
    dtype = jnp.result_type(x1.dtype, x2.dtype, jnp.float32)
    check_first_layer("kernels", act, dtype, (x1, x2), sigma_w2, sigma_b2)
    w, b = jnp.asarray(sigma_w2, dtype), jnp.asarray(sigma_b2, dtype)
    out = _kernels(act, depth, same, x1.astype(dtype), x2.astype(dtype), w, b)
    warn_overflow("kernels", out, dtype, depth)
    return out


def warn_overflow(who: str, out: Kernels, dtype: Any, depth: int) -> None:
    """A RuntimeWarning where the kernels overflowed ``dtype`` (non-finite entries)."""
    if not isinstance(out.nngp, jax.core.Tracer) and not bool(
        jnp.isfinite(out.nngp).all() & jnp.isfinite(out.ntk).all()
    ):
        warnings.warn(
            f"{who}: the kernels overflowed {jnp.dtype(dtype).name} within {depth} layers "
            "(σ_w² too large for this depth); the non-finite entries are not kernel values",
            RuntimeWarning,
            stacklevel=3,
        )


def check_first_layer(who: str, act, dtype, xs, sigma_w2, sigma_b2) -> None:
    """Refuses inputs whose first-layer variance σ_w²·|x|²/d_in + σ_b² is beyond what the
    quadrature holds (x·x' in float32 would overflow first), and warns beyond Q_MAX. Each
    ``x`` is ``(..., d_in)``: the mean square is taken over the last axis (a CNN's per
    position, its largest bounding any filter window's)."""
    if any(isinstance(v, jax.core.Tracer) for v in (*xs, sigma_w2, sigma_b2)):
        return
    q = max(
        float(sigma_w2) * float(np.mean(np.square(np.asarray(x, np.float64)), axis=-1).max())
        + float(sigma_b2)
        for x in xs
    )
    if q > q_limit(dtype):
        raise ValueError(
            f"{who}: the first layer's variance σ_w²·|x|²/d_in + σ_b² = {q:.3g} is beyond "
            f"{q_limit(dtype):.2g}, the largest variance {jnp.dtype(dtype).name} holds here; "
            "scale the inputs down (or compute in float64: jax.enable_x64(True))"
        )
    warn_range(who, "the first layer's variance", q, act)
