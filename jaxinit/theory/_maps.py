r"""The mean-field maps of one input and two: length map, χ₁, c-map, propagation, σ_w², σ_b².

For :math:`z_l = h_{l-1} W_l + b_l`, :math:`h_l = \varphi(z_l)` with zero-mean
weights of variance :math:`\sigma_w^2/n_\mathrm{in}` and biases of second moment
:math:`\sigma_b^2` (Poole et al. 2016, https://arxiv.org/abs/1606.05340):

.. math::
   \mathcal{V}(q) = \sigma_w^2\,\mathbb{E}[\varphi(\sqrt{q}\,z)^2] + \sigma_b^2, \quad
   \chi_1 = \sigma_w^2\,\mathbb{E}[\varphi'(\sqrt{q}\,z)^2], \quad
   c' = \frac{\sigma_w^2\,\mathbb{E}[\varphi(u_1)\varphi(u_2)] + \sigma_b^2}{\mathcal{V}(q)}.

:func:`sigma_w2` and :func:`sigma_b2` read these parameters off initializers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxinit import initializers as _initializers
from jaxinit._checks import check_int
from jaxinit._host import check_memory
from jaxinit.activations import Activation
from jaxinit.initializers import Initializer
from jaxinit.theory._quadrature import (
    N2,
    TINY,
    Array,
    activation_of,
    check_domain,
    covariance_of,
    dphi,
    expect1,
    run_static,
    second_moment,
    warn_range,
)

# chi1_of, length_of and weight_variance: the internal API of jaxinit.theory (its
# _fixed_points and _predict import them); jaxinit.theory does not re-export them
__all__ = [
    "Moments",
    "c_map",
    "chi1",
    "chi1_of",
    "length_of",
    "propagate",
    "propagate_variance",
    "sigma_b2",
    "sigma_w2",
    "variance_map",
    "weight_variance",
]


class Moments(NamedTuple):
    """Per-layer predictions of :func:`propagate` (layer 0 nearest the input)."""

    pre_var: Array  # (depth,) q_l = E[z_l²]
    post_mean: Array  # (depth,) E[φ(z_l)]
    post_second: Array  # (depth,) E[φ(z_l)²]
    # () the first layer whose q_l or E[φ²] overflowed float32 (then inf/NaN after it),
    # -1 when none: the sweep's diverged_layer, predicted
    diverged_layer: Array


def length_of(act, q, w, b):
    return w * second_moment(act, 0.0, q) + b


def chi1_of(act, q, w):  # at q = 0, the limit q → 0+ (relu's φ'(0) is a matter of convention)
    return w * expect1(act, 0.0, jnp.maximum(q, TINY), lambda x: (dphi(act, x) ** 2,))[0]


def _correlation(act, c, q, w, b):
    # At q = 0 with σ_b² = 0 every pre-activation is exactly 0 and the ratio is 0/0 wherever
    # φ(0) = 0; the map is then its limit q → 0+ (c for an activation linear at 0).
    q = jnp.where((q == 0) & (b == 0), TINY, q)
    return (w * covariance_of(act, 0.0, q, c) + b) / (w * second_moment(act, 0.0, q, N2) + b)


def variance_map(
    activation: str | Activation, q: ArrayLike, *, sigma_w2: ArrayLike, sigma_b2: ArrayLike
) -> Array:
    r"""The length map :math:`\mathcal{V}(q) = \sigma_w^2\,\mathbb{E}[\varphi(\sqrt{q} z)^2] + \sigma_b^2`.

    :math:`z \sim \mathcal{N}(0, 1)`: the next layer's pre-activation variance
    from this layer's, ``q``. Accurate to about 2e-6 relative for ``q`` up to
    ``Q_MAX`` = 1e6 (float32); a concrete ``q`` beyond it warns.

    Args:
      activation: a spec string or an Activation.
      q: this layer's pre-activation variance, >= 0.
      sigma_w2: the weight variance times the fan-in, >= 0.
      sigma_b2: the bias second moment, >= 0.

    Returns:
      :math:`\mathcal{V}(q)`; the arguments broadcast elementwise.
    """
    for name, v in (("q", q), ("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        check_domain("variance_map", name, v)
    act = activation_of(activation)
    warn_range("variance_map", "q", q, act)
    return run_static(length_of, act, (), q, sigma_w2, sigma_b2)


def chi1(activation: str | Activation, *, q: ArrayLike, sigma_w2: ArrayLike) -> Array:
    r""":math:`\chi_1 = \sigma_w^2\,\mathbb{E}[\varphi'(\sqrt{q} z)^2]`, :math:`z \sim \mathcal{N}(0, 1)`.

    The mean squared singular value of one layer's Jacobian: gradients grow
    (:math:`\chi_1 > 1`) or vanish (:math:`< 1`) by this factor a layer; at
    ``q = 0`` its limit :math:`q \to 0^+`. φ' is taken by ``jax.jvp``.

    Args:
      activation: a spec string or an Activation.
      q: the pre-activation variance, >= 0 (usually the fixed point :math:`q^*`).
      sigma_w2: the weight variance times the fan-in, >= 0.

    Returns:
      :math:`\chi_1`; the arguments broadcast elementwise.
    """
    for name, v in (("q", q), ("sigma_w2", sigma_w2)):
        check_domain("chi1", name, v)
    act = activation_of(activation)
    warn_range("chi1", "q", q, act)
    return run_static(chi1_of, act, (), q, sigma_w2)


def c_map(
    activation: str | Activation,
    c: ArrayLike,
    *,
    q: ArrayLike,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
) -> Array:
    r"""The correlation map :math:`c' = (\sigma_w^2 \mathbb{E}[\varphi(u_1)\varphi(u_2)] + \sigma_b^2)/\mathcal{V}(q)`.

    :math:`(u_1, u_2)` is bivariate normal with variance ``q`` and correlation
    ``c``. Dividing by :math:`\mathcal{V}(q)`, the next layer's variance, gives
    the next layer's correlation for any ``q``; at :math:`q = q^*` it is the
    usual division by :math:`q^*`. :math:`c'(1) = 1` to rounding. At ``q = 0``
    with ``sigma_b2 = 0`` (every pre-activation exactly 0) the ratio is 0/0 for
    an activation with :math:`\varphi(0) = 0`; the map returns its limit
    :math:`q \to 0^+`. Accurate to about 2e-6 relative for ``q`` up to
    ``Q_MAX`` = 1e6 and any ``c`` (float32); a concrete ``q`` beyond it warns.

    Args:
      activation: a spec string or an Activation.
      c: the correlation of two inputs' pre-activations, in [-1, 1].
      q: their (common) variance, >= 0.
      sigma_w2: the weight variance times the fan-in, >= 0.
      sigma_b2: the bias second moment, >= 0.

    Returns:
      :math:`c'`, the next layer's correlation; the arguments broadcast elementwise.
    """
    check_domain("c_map", "c", c, -1.0, 1.0, variance=False)
    for name, v in (("q", q), ("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        check_domain("c_map", name, v)
    act = activation_of(activation)
    warn_range("c_map", "q", q, act)
    return run_static(_correlation, act, (), c, q, sigma_w2, sigma_b2)


def propagate(
    activation: str | Activation,
    q0: ArrayLike,
    depth: int,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
) -> Moments:
    r"""Per-layer pre-activation variance and post-activation moments of a depth-``depth`` net.

    Layer 0 has :math:`q_0 = \sigma_{w,0}^2 q0 + \sigma_{b,0}^2` and layer :math:`l`
    :math:`q_l = \sigma_{w,l}^2 \mathbb{E}[\varphi(z_{l-1})^2] + \sigma_{b,l}^2`,
    :math:`z_{l-1} \sim \mathcal{N}(0, q_{l-1})`.

    Args:
      activation: a spec string or an Activation.
      q0: the inputs' mean square :math:`\|x\|^2/d_\mathrm{in}`, >= 0.
      depth: the number of layers, >= 1.
      sigma_w2: the weight variance times the fan-in, a scalar or ``(depth,)``
        (layer 0 has its own fan-in, :math:`d_\mathrm{in}`).
      sigma_b2: the bias second moment, a scalar or ``(depth,)``.

    Returns:
      Moments of ``(depth,)`` arrays, and the first layer that overflowed.
    """
    check_int("propagate: depth", depth)
    for name, v in (("q0", q0), ("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        check_domain("propagate", name, v)
    dtype = jnp.result_type(q0, sigma_w2, sigma_b2, jnp.float32)
    # (depth, 2) parameters in and three (depth,) moments out, each in dtype
    check_memory(
        f"propagate: depth={depth}",
        5 * depth * jnp.dtype(dtype).itemsize,
        f"{depth:,} layers × 5 numbers",
        "propagate fewer layers at a time, with the last layer's post_second as the next q0",
    )
    wb = [
        per_layer("propagate", n, v, depth, dtype)
        for n, v in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2))
    ]
    return _propagate(activation_of(activation), jnp.asarray(q0, dtype), jnp.stack(wb, axis=1))


def per_layer(who: str, name: str, value: ArrayLike, depth: int, dtype) -> Array:
    """A σ² given as a scalar or one per layer, as a ``(depth,)`` array of ``dtype``."""
    value = jnp.asarray(value, dtype)
    if value.shape not in ((), (depth,)):
        raise ValueError(f"{who}: {name} must be a scalar or shaped ({depth},); got {value.shape}")
    return jnp.broadcast_to(value, (depth,))


@functools.partial(jax.jit, static_argnums=0)
def _propagate(act, q0, wb):
    def layer(h2, wb):
        q = wb[0] * h2 + wb[1]
        mean, second = expect1(act, 0.0, q, lambda x: (act.fn(x), act.fn(x) ** 2))
        return second, (q, mean, second)

    q, mean, second = jax.lax.scan(layer, q0, wb)[1]
    bad = ~(jnp.isfinite(q) & jnp.isfinite(second))
    return Moments(q, mean, second, jnp.where(bad.any(), jnp.argmax(bad), -1).astype(jnp.int32))


def propagate_variance(
    activation: str | Activation,
    q0: ArrayLike,
    depth: int,
    *,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
) -> Array:
    r"""``propagate(...).pre_var``: :math:`q_l` per layer ``(depth,)``.

    :math:`q_0 = \sigma_{w,0}^2 q0 + \sigma_{b,0}^2`,
    :math:`q_l = \sigma_{w,l}^2 \mathbb{E}[\varphi(z_{l-1})^2] + \sigma_{b,l}^2`.

    Args:
      activation: a spec string or an Activation.
      q0: the inputs' mean square, >= 0.
      depth: the number of layers, >= 1.
      sigma_w2: the weight variance times the fan-in, a scalar or ``(depth,)``.
      sigma_b2: the bias second moment, a scalar or ``(depth,)``.
    """
    return propagate(activation, q0, depth, sigma_w2=sigma_w2, sigma_b2=sigma_b2).pre_var


def weight_variance(init: Initializer, shape: Sequence[int]) -> float:
    mean, var = init.moments(shape)
    if mean != 0.0:
        raise ValueError(
            f"weight initializer {init.spec!r} has mean {mean!r} at shape {tuple(shape)}; "
            "mean-field theory needs zero-mean weights (a nonzero mean adds a rank-one "
            "term that the Gaussian limit does not describe)"
        )
    return var


def sigma_w2(init: str | Initializer, shape: Sequence[int], *, in_axis: int | None = None) -> float:
    r""":math:`\sigma_w^2 = \mathrm{fan\_in} \cdot \mathrm{Var}(w)` of an initializer at ``shape``.

    The variance is the initializer's exact ``variance(shape)`` (truncation,
    uniform and orthogonal scales included).

    Args:
      init: a spec string or an Initializer with zero-mean weights (ValueError
        for ``identity``, ``ones``, ``normal(mean=...)``, ...).
      shape: the weight shape, rank >= 2.
      in_axis: the fan-in axis; None counts the fans where the initializer counts them
        (``init.fan_axes``: its ``in_axis`` or layout, e.g. ``(out, in)`` for
        ``convention="torch"``, ``(in, out)`` with ``layout="flax"``).
    """
    init = _initializers.get(init)
    try:
        shape = tuple(check_int("sigma_w2: shape", d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"sigma_w2: shape must be a sequence of ints >= 1; got {shape!r}"
        ) from None
    if len(shape) < 2:
        raise ValueError(f"sigma_w2 needs a weight shape of rank >= 2; got {shape}")
    axes = init.fan_axes
    if in_axis is not None:
        out_axis = -2 if in_axis % len(shape) == len(shape) - 1 else -1
        axes = axes._replace(in_axis=in_axis, out_axis=out_axis)
    fan_in, _ = axes.fans(shape)
    return fan_in * weight_variance(init, shape)


def sigma_b2(bias_init: str | Initializer, width: int) -> float:
    r""":math:`\sigma_b^2 = \mathbb{E}[b^2] = \mu_b^2 + \mathrm{Var}(b)` of a bias initializer.

    The maps above take biases as :math:`\mathcal{N}(0, \sigma_b^2)`; :func:`predict`
    keeps a bias mean :math:`\mu_b` apart (pre-activations :math:`\mathcal{N}(\mu_b, q - \mu_b^2)`).

    Args:
      bias_init: a spec string or an Initializer.
      width: the bias vector's length.
    """
    width = check_int("sigma_b2: width", width)
    mean, var = _initializers.get(bias_init).moments((width,))
    return mean**2 + var
