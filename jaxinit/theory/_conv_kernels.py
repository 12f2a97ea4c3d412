r"""Infinite-width kernels of a convolutional network with global average pooling.

The network is neural-tangents' ``stax.serial(Conv(W_std=σ_w, b_std=σ_b, filter_shape,
padding), act, ..., Conv(...), act, GlobalAvgPool(), Dense(W_std=σ_w, b_std=σ_b))`` with
``depth`` convolutions (the zoo's :class:`jaxinit.models.CNN`), in the NTK parameterization.
With inputs :math:`x \in \mathbb{R}^{H \times W \times C}` and positions :math:`i, j`, a
filter of :math:`|F|` offsets :math:`d` (Xiao et al. 2018; Novak et al. 2019; Arora et
al. 2019):

.. math::
   K_1(x, x')_{ij} = \Theta_1 = \frac{\sigma_w^2}{|F|} \sum_{d \in F}
   \frac{x_{i+d} \cdot x'_{j+d}}{C} + \sigma_b^2,

   K_{l+1,ij} = \frac{\sigma_w^2}{|F|} \sum_{d} E_{l,\,i+d,\,j+d} + \sigma_b^2, \qquad
   \Theta_{l+1,ij} = K_{l+1,ij} + \frac{\sigma_w^2}{|F|}\sum_d
   \dot E_{l,\,i+d,\,j+d}\,\Theta_{l,\,i+d,\,j+d},

with :math:`E_{l,ij} = \mathbb{E}[\varphi(u)\varphi(u')]` and :math:`\dot E` the same of
:math:`\varphi'`, :math:`(u, u')` Gaussian with variances :math:`K_l(x,x)_{ii}`,
:math:`K_l(x',x')_{jj}` and covariance :math:`K_l(x,x')_{ij}` (the MLP's pair expectation,
:mod:`jaxinit.theory._kernels`, entry by entry). Positions outside the image are zeros
(``"SAME"``) or wrap around (``"CIRCULAR"``); the sum is divided by :math:`|F|` either way,
as neural-tangents does. Pooling and the readout:
:math:`K = \sigma_w^2\,\overline{E_L} + \sigma_b^2`,
:math:`\Theta = K + \sigma_w^2\,\overline{\dot E_L \Theta_L}`, the bar the mean over all
pairs of positions (i, j).

Only the pairs of positions the same shifts connect are needed for the variances
(:math:`K_l(x,x)_{ii}` follows :math:`K_{l-1}(x,x)_{i+d,i+d}`), so the cost is
:math:`n_1 n_2 (HW)^2` per layer: small images only (neural-tangents' own regime).
"""

from __future__ import annotations

import functools
import itertools
import operator
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from jaxinit._checks import check_choice, check_int
from jaxinit.activations import Activation
from jaxinit.theory._kernels import (
    _PAIRS_PER_BATCH,
    Kernels,
    _check_sigma,
    _check_x,
    _pair,
    _quadrature,
    check_first_layer,
    warn_overflow,
)
from jaxinit.theory._quadrature import activation_of

__all__ = ["PADDINGS", "conv_kernels"]

PADDINGS = ("SAME", "CIRCULAR")


def _shift(a: Array, d: tuple[int, int], axes: tuple[int, int], padding: str) -> Array:
    """``a`` at position ``i + d`` along the two spatial ``axes``: wrapped (CIRCULAR) or
    zero beyond the edge (SAME)."""
    if padding == "CIRCULAR":
        return jnp.roll(a, (-d[0], -d[1]), axis=axes)
    out = a
    for axis, s in zip(axes, d, strict=True):
        n = a.shape[axis]
        idx = jnp.arange(n) + s
        valid = (idx >= 0) & (idx < n)
        out = jnp.take(out, jnp.clip(idx, 0, n - 1), axis=axis)
        shape = [1] * out.ndim
        shape[axis] = n
        out = out * valid.reshape(shape)
    return out


def _conv(k: Array, offsets, padding: str, pos1: tuple[int, int], pos2=None) -> Array:
    """The mean over offsets d of ``k`` at (i + d, j + d): ``pos1`` are i's axes, ``pos2``
    j's (None: a position-diagonal array, one set of axes)."""
    total = jnp.zeros_like(k)
    for d in offsets:
        shifted = _shift(k, d, pos1, padding)
        if pos2 is not None:
            shifted = _shift(shifted, d, pos2, padding)
        total = total + shifted
    return total / len(offsets)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4))
def _run(act, depth: int, filter_shape, padding: str, same: bool, x1, x2, w, b) -> Kernels:
    # lax.conv's SAME offsets: centred for odd sizes (3: -1, 0, 1), one more after for even
    # ones (2: 0, 1); CIRCULAR takes the same window
    offsets = list(
        itertools.product(*(range(-((f - 1) // 2), f - (f - 1) // 2) for f in filter_shape))
    )
    c = x1.shape[-1]
    # (n1, n2, H, W, H, W): x1 at (i), x2 at (j); q: each input's per-position variance
    k = w * _conv(jnp.einsum("ahwc,bxyc->ahwbxy", x1, x2) / c, offsets, padding, (1, 2), (4, 5))
    k = jnp.moveaxis(k, 3, 1) + b  # (n1, n2, H, W, H, W)
    q1 = w * _conv(jnp.sum(x1 * x1, -1) / c, offsets, padding, (1, 2)) + b  # (n1, H, W)
    q2 = w * _conv(jnp.sum(x2 * x2, -1) / c, offsets, padding, (1, 2)) + b
    t = k
    pair = functools.partial(_pair, act)

    def elementwise(f, *args):
        """``f`` over the broadcast of scalar ``args``; a quadrature (~10⁴ nodes a pair) in
        batches of _PAIRS_PER_BATCH pairs, as the MLP's kernels, so memory stays bounded."""
        shape = jnp.broadcast_shapes(*(a.shape for a in args))
        flat = [jnp.broadcast_to(a, shape).reshape(-1) for a in args]
        if not _quadrature(act):
            out = f(*flat)
        else:
            out = jax.lax.map(lambda a: f(*a), tuple(flat), batch_size=_PAIRS_PER_BATCH)
        return jax.tree.map(lambda o: o.reshape(shape), out)

    def diag(q):
        return elementwise(lambda q: pair(q, q, q)[0], q)

    def expectations(q1, q2, k):
        return elementwise(pair, q1[:, None, :, :, None, None], q2[None, :, None, None, :, :], k)

    def layer(_, carry):  # one program for every layer: compile time does not grow with depth
        k, t, q1, q2 = carry
        e, ed = expectations(q1, q2, k)
        k_next = w * _conv(e, offsets, padding, (2, 3), (4, 5)) + b
        t_next = k_next + w * _conv(ed * t, offsets, padding, (2, 3), (4, 5))
        q1 = w * _conv(diag(q1), offsets, padding, (1, 2)) + b
        q2 = w * _conv(diag(q2), offsets, padding, (1, 2)) + b
        return k_next, t_next, q1, q2

    k, t, q1, q2 = jax.lax.fori_loop(0, depth - 1, layer, (k, t, q1, q2))
    e, ed = expectations(q1, q2, k)
    nngp = w * e.mean((2, 3, 4, 5)) + b
    ntk = nngp + w * (ed * t).mean((2, 3, 4, 5))
    if same:  # the quadrature's order of u and u' leaves ~1e-7 asymmetry
        nngp, ntk = (nngp + nngp.T) / 2, (ntk + ntk.T) / 2
    return Kernels(nngp, ntk)


def _check_images(name: str, x: Any) -> Array:
    layout = "images (n, height, width, channels)"
    return _check_x(name, x, who="conv_kernels", layout=layout)


def conv_kernels(
    activation: str | Activation,
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    depth: int,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    filter_shape: tuple[int, int] = (3, 3),
    padding: str = "SAME",
) -> Kernels:
    r"""The infinite-width NNGP and NTK of a CNN with global average pooling:
    ``depth`` × (Conv -> act), GlobalAvgPool, Dense (module docstring), as
    neural-tangents' ``stax`` in the NTK parameterization. The NNGP is also the zoo's
    :class:`~jaxinit.models.CNN` (``classes=1``) at infinite channels; its NTK, in
    the standard parameterization, is another kernel.

    ``depth`` counts the convolutions, each with its activation; the readout comes on
    top (so on 1×1 images this is :func:`kernels` with ``depth + 1`` Dense layers, whose
    ``depth`` counts every Dense layer, the readout included).

    Args:
      activation: an activation spec or :class:`~jaxinit.activations.Activation`.
      x1: ``(n1, height, width, channels)`` images.
      x2: ``(n2, height, width, channels)``; ``None`` means ``x1`` (a symmetric result).
      depth: the number of convolutions, an int >= 1.
      sigma_w2: the weight variance σ_w² > 0 (times fan-in: channels × filter size), a
        scalar, for every convolution and the readout.
      sigma_b2: the bias variance σ_b² >= 0, a scalar.
      filter_shape: the convolutions' ``(kh, kw)``.
      padding: ``"SAME"`` (zeros beyond the edge) or ``"CIRCULAR"``.

    Returns:
      ``Kernels(nngp, ntk)``, each ``(n1, n2)``, of the readout's output.

    Example:
      >>> import numpy as np, jaxinit as ji
      >>> x = np.ones((2, 4, 4, 1), np.float32)
      >>> k = ji.theory.conv_kernels("relu", x, depth=2, sigma_w2=2.0, sigma_b2=0.0,
      ...                            padding="CIRCULAR")
      >>> round(float(k.nngp[0, 0]), 4)  # a constant image keeps relu's q = 2·1 per layer
      2.0
    """
    act = activation_of(activation)
    depth = check_int("conv_kernels: depth", depth, low=1)
    padding = check_choice("conv_kernels: padding", padding, PADDINGS)
    filter_shape = _check_filter(filter_shape)
    _check_sigma("sigma_w2", sigma_w2, positive=True, who="conv_kernels")
    _check_sigma("sigma_b2", sigma_b2, positive=False, who="conv_kernels")
    x1 = _check_images("x1", x1)
    same = x2 is None
    x2 = x1 if same else _check_images("x2", x2)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"conv_kernels: x1 and x2 must be images of one shape; got {x1.shape[1:]} and "
            f"{x2.shape[1:]}"
        )
    dtype = jnp.result_type(x1.dtype, x2.dtype, jnp.float32)
    w, b = jnp.asarray(sigma_w2, dtype), jnp.asarray(sigma_b2, dtype)
    check_first_layer("conv_kernels", act, dtype, (x1, x2), sigma_w2, sigma_b2)
    x1, x2 = x1.astype(dtype), x2.astype(dtype)
    out = _run(act, depth, filter_shape, padding, same, x1, x2, w, b)
    warn_overflow("conv_kernels", out, dtype, depth)
    return out


def _check_filter(filter_shape: Any) -> tuple[int, int]:
    """``(kh, kw)``, two integers >= 1 (numpy's too, a list as well as a tuple)."""
    try:
        pair = tuple(operator.index(f) for f in filter_shape)
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1 or any(isinstance(f, bool) for f in filter_shape):
        raise ValueError(
            f"conv_kernels: filter_shape must be a pair of ints >= 1; got {filter_shape!r}"
        )
    return pair
