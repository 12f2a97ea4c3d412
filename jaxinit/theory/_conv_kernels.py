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
import math
import operator
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from jaxinit import initializers as _initializers
from jaxinit._checks import check_choice, check_int
from jaxinit._host import check_memory
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
from jaxinit.theory._maps import per_layer, weight_variance
from jaxinit.theory._quadrature import activation_of, check_domain, second_moment

__all__ = [
    "FILTER_VARIANCES",
    "PADDINGS",
    "ConvVariance",
    "cnn_variances",
    "conv_kernels",
    "conv_variance",
    "filter_spectrum",
    "spatial_modes",
]

PADDINGS = ("SAME", "CIRCULAR")
# how a convolution's weight variance is spread over its filter's offsets: evenly (He,
# Glorot, LeCun: every tap i.i.d.), or all at the centre (delta-orthogonal, Xiao et al. 2018)
FILTER_VARIANCES = ("uniform", "delta")


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


def _offsets(filter_shape: tuple[int, int]) -> list[tuple[int, int]]:
    """lax.conv's SAME offsets: centred for odd sizes (3: -1, 0, 1), one more after for
    even ones (2: 0, 1); CIRCULAR takes the same window. Offset (0, 0) is always one."""
    return list(
        itertools.product(*(range(-((f - 1) // 2), f - (f - 1) // 2) for f in filter_shape))
    )


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
    offsets = _offsets(filter_shape)
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


def _check_images(name: str, x: Any, who: str = "conv_kernels") -> Array:
    layout = "images (n, height, width, channels)"
    return _check_x(name, x, who=who, layout=layout)


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


def _check_filter(filter_shape: Any, who: str = "conv_kernels") -> tuple[int, int]:
    """``(kh, kw)``, two integers >= 1 (numpy's too, a list as well as a tuple)."""
    try:
        pair = tuple(operator.index(f) for f in filter_shape)
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1 or any(isinstance(f, bool) for f in filter_shape):
        raise ValueError(f"{who}: filter_shape must be a pair of ints >= 1; got {filter_shape!r}")
    return pair


class ConvVariance(NamedTuple):
    """Per-position variances of a CNN's convolution outputs (:func:`conv_variance`)."""

    q: Array  # (n, depth, H, W): E[z_l²] at each position, layer 0 the first convolution's
    modes: Array  # (n, depth, H, W): spatial_modes(q), each Fourier mode's relative amplitude
    spectrum: Array  # (H, W): filter_spectrum, a mode's factor per layer (see conv_variance)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _variance_run(act, filter_shape, padding: str, delta: bool, m, w, b) -> Array:
    offsets = _offsets(filter_shape)

    def spread(f):  # Σ_d v_d f(α + d): the filter's variance over its offsets
        return f if delta else _conv(f, offsets, padding, (1, 2))

    # E[φ(√q z)²] at every position: the MLP's length map (variance_map's) entry by entry
    moment = jax.vmap(lambda q: second_moment(act, 0.0, q))

    def layer(q, wb):  # one program for every layer: compile time does not grow with depth
        nxt = wb[0] * spread(moment(q.reshape(-1)).reshape(q.shape)) + wb[1]
        return nxt, nxt

    q1 = w[0] * spread(m) + b[0]  # (n, H, W)
    _, rest = jax.lax.scan(layer, q1, (w[1:], b[1:]))
    return jnp.concatenate([q1[None], rest]).swapaxes(0, 1)  # (n, depth, H, W)


def spatial_modes(q: ArrayLike) -> Array:
    r"""The relative amplitude of each spatial Fourier mode of ``q`` over its last two axes:
    :math:`|\hat q_k| / |\hat q_0|` with :math:`\hat q_k = \sum_\alpha q_\alpha
    e^{-2\pi i\,k\cdot\alpha / (H, W)}` (``numpy.fft.fft2``'s order: mode ``[0, 0]`` is the
    spatial mean, 1 by construction; ``[1, 0]`` one period down the image). Apply it to
    :func:`conv_variance`'s ``q`` or to a measured per-position variance alike.

    Example:
      >>> import numpy as np, jaxinit as ji
      >>> q = 1 + 0.5 * np.cos(2 * np.pi * np.arange(8) / 8)[:, None] * np.ones((8, 8))
      >>> np.round(ji.theory.spatial_modes(q)[:2, 0], 3)  # half of the mean, split ±k
      Array([1.  , 0.25], dtype=float32)
    """
    q = jnp.asarray(q, jnp.result_type(q, jnp.float32))
    if q.ndim < 2:
        raise ValueError(f"spatial_modes: q needs two spatial axes (..., H, W); got {q.shape}")
    f = jnp.abs(jnp.fft.fft2(q))
    return (f / f[..., :1, :1]).astype(q.dtype)


def filter_spectrum(
    filter_shape: tuple[int, int], image_shape: tuple[int, int], filter_variance: str = "uniform"
) -> Array:
    r""":math:`\lambda_k = |\sum_d v_d\, e^{2\pi i\, k \cdot d / (H, W)}|`, the factor by which
    one convolution multiplies spatial mode ``k`` of a per-position variance (or of any
    function of position) on an ``image_shape`` torus, with :math:`v_d` the share of the weight
    variance at filter offset :math:`d` (Xiao et al. 2018, §2.4): ``"uniform"`` (:math:`1/|F|`
    each, He/Glorot/LeCun) or ``"delta"`` (all at the centre: delta-orthogonal, every
    :math:`\lambda_k = 1`). ``(H, W)`` in :func:`spatial_modes`' order.

    Example:
      >>> import jaxinit as ji
      >>> lam = ji.theory.filter_spectrum((3, 3), (8, 8))
      >>> round(float(lam[0, 0]), 4), round(float(lam[1, 0]), 4)  # (1 + 2 cos(2π/8)) / 3
      (1.0, 0.8047)
    """
    filter_shape = _check_filter(filter_shape, "filter_spectrum")
    image_shape = _check_filter(image_shape, "filter_spectrum")
    filter_variance = check_choice(
        "filter_spectrum: filter_variance", filter_variance, FILTER_VARIANCES
    )
    if filter_variance == "delta":
        return jnp.ones(image_shape, jnp.float32)
    k = [jnp.arange(n) / n for n in image_shape]
    phase = sum(
        jnp.exp(2j * jnp.pi * (k[0][:, None] * d0 + k[1][None, :] * d1))
        for d0, d1 in _offsets(filter_shape)
    )
    return (jnp.abs(phase) / (filter_shape[0] * filter_shape[1])).astype(jnp.float32)


def conv_variance(
    activation: str | Activation,
    x: ArrayLike,
    *,
    depth: int,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    filter_shape: tuple[int, int] = (3, 3),
    padding: str = "SAME",
    filter_variance: str = "uniform",
) -> ConvVariance:
    r"""The infinite-width variance of every convolution's output at every position: the
    diagonal of :func:`conv_kernels`' recursion, layer by layer, for a filter whose weight
    variance is spread evenly over its offsets or all at the centre (Xiao et al. 2018).

    For an image :math:`x \in \mathbb{R}^{H\times W\times C}` and the zoo's
    :class:`~jaxinit.models.CNN` (``depth`` × Conv -> φ), with :math:`m_\alpha = |x_\alpha|^2/C`,

    .. math::
       q_{1,\alpha} = \sigma_w^2 \sum_d v_d\, m_{\alpha+d} + \sigma_b^2, \qquad
       q_{l+1,\alpha} = \sigma_w^2 \sum_d v_d\, \mathbb{E}[\varphi(\sqrt{q_{l,\alpha+d}}\,z)^2]
       + \sigma_b^2,

    :math:`v_d = 1/|F|` (``"uniform"``) or :math:`\delta_{d,0}` (``"delta"``), positions
    beyond the edge zero (``"SAME"``) or wrapped (``"CIRCULAR"``). Under ``"delta"`` every
    position follows the MLP's :func:`variance_map` on its own: the image's spatial structure
    is kept at any depth. Under ``"uniform"`` and ``"CIRCULAR"``, spatial mode :math:`k` of
    the profile is multiplied by :func:`filter_spectrum`'s :math:`\lambda_k \le 1` at each
    layer where the map is linear (the relu family with :math:`\sigma_b^2 = 0`: then
    ``modes[:, l] = spectrum**l * modes[:, 0]`` exactly), and near it in the linearization
    about a uniform profile otherwise: every non-uniform mode fades, the slowest at the
    lowest frequency, and a deep network sees only the image's mean. ``q`` is also the
    expectation over random weights at any width for the relu family at
    :math:`\sigma_b^2 = 0` (the map is linear): a finite CNN's seed mean measures it.

    Args:
      activation: an activation spec or :class:`~jaxinit.activations.Activation`.
      x: ``(n, height, width, channels)`` images.
      depth: the number of convolutions, an int >= 1.
      sigma_w2: the weight variance σ_w² > 0 times the fan-in (channels × filter size for
        ``"uniform"``; the centre's, channels, for ``"delta"``), a scalar or one per layer
        ``(depth,)``. Delta-orthogonal at gain g from C_in to C_out >= C_in channels keeps
        every position's norm times g: σ_w² = g² C_in / C_out (the zoo CNN's first layer
        from 3 channels), g² after.
      sigma_b2: the bias variance σ_b² >= 0, a scalar or ``(depth,)``.
      filter_shape: the convolutions' ``(kh, kw)``.
      padding: ``"SAME"`` or ``"CIRCULAR"``.
      filter_variance: ``"uniform"`` or ``"delta"``.

    Returns:
      ``ConvVariance(q, modes, spectrum)``: ``q`` and ``modes`` ``(n, depth, H, W)``,
      ``spectrum`` ``(H, W)``.

    Example:
      >>> import numpy as np, jaxinit as ji
      >>> x = np.zeros((1, 8, 8, 1), np.float32); x[0, 2:6, 2:6] = 1  # a bright square
      >>> he = ji.theory.conv_variance("relu", x, depth=10, sigma_w2=2.0, sigma_b2=0.0,
      ...                              padding="CIRCULAR")
      >>> delta = ji.theory.conv_variance("relu", x, depth=10, sigma_w2=2.0, sigma_b2=0.0,
      ...                                 padding="CIRCULAR", filter_variance="delta")
      >>> round(float(he.modes[0, -1, 1, 0] / he.modes[0, 0, 1, 0]), 4)  # λ = 0.8047, ^9
      0.1415
      >>> round(float(delta.modes[0, -1, 1, 0] / delta.modes[0, 0, 1, 0]), 4)  # kept
      1.0
    """
    who = "conv_variance"
    act = activation_of(activation)
    depth = check_int(f"{who}: depth", depth, low=1)
    padding = check_choice(f"{who}: padding", padding, PADDINGS)
    filter_variance = check_choice(f"{who}: filter_variance", filter_variance, FILTER_VARIANCES)
    filter_shape = _check_filter(filter_shape, who)
    x = _check_images("x", x, who)
    dtype = jnp.result_type(x.dtype, jnp.float32)
    for name, value in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        check_domain(who, name, value)
    w = per_layer(who, "sigma_w2", sigma_w2, depth, dtype)
    b = per_layer(who, "sigma_b2", sigma_b2, depth, dtype)
    if not isinstance(sigma_w2, jax.core.Tracer) and not bool((w > 0).all()):
        raise ValueError(f"{who}: sigma_w2 must be > 0; got {sigma_w2!r}")
    n, height, width = x.shape[:3]
    check_memory(
        f"{who}: depth={depth}",
        3 * n * depth * height * width * jnp.dtype(dtype).itemsize,
        f"{n} images × {depth:,} layers × {height}×{width} positions, twice",
        "give fewer images or layers",
    )
    check_first_layer(who, act, dtype, (x,), w[0], b[0])
    m = jnp.mean(jnp.square(x.astype(dtype)), -1)
    q = _variance_run(act, filter_shape, padding, filter_variance == "delta", m, w, b)
    if not isinstance(q, jax.core.Tracer) and not bool(jnp.isfinite(q).all()):
        warnings.warn(
            f"{who}: the variance overflowed {jnp.dtype(dtype).name} within {depth} layers "
            "(σ_w² too large for this depth); the non-finite entries are not variances",
            RuntimeWarning,
            stacklevel=2,
        )
    spectrum = filter_spectrum(filter_shape, (height, width), filter_variance)
    return ConvVariance(q, spatial_modes(q), spectrum)


def cnn_variances(model, init, selected: set[str], x) -> dict[str, float]:
    """The expected second moment of each convolution's output of the zoo's CNN, by path:
    :func:`conv_variance`'s per-position variances, averaged over the images and positions
    as the sweep's ``pre_var`` is. Each convolution's σ² is its init's variance times its
    fan-in (the grid's init where the rule selected the kernel, nnx.Conv's lecun_normal, 1,
    elsewhere), spread evenly over the filter or, under delta_orthogonal, at its centre;
    the zoo's biases are zero. ``selected``: the paths of the kernels the grid's rule gave
    ``init``; ``x``: the images. The pooled output and a head need the positions'
    covariances (:func:`conv_kernels`) and are left out."""
    who = "theory.predict"
    convs = list(model.convs)
    padding = str(convs[0].padding).upper()
    if padding not in PADDINGS:
        raise ValueError(f"{who}: the CNN's padding {convs[0].padding!r} is not one of {PADDINGS}")
    sigma2, spread = [], set()
    for i, conv in enumerate(convs):
        path = f"convs/{i}"
        shape = (*conv.kernel_size, conv.in_features, conv.out_features)
        chosen = init if path in selected else _initializers.lecun_normal()
        try:
            variance = float(weight_variance(chosen, shape))
        except ValueError as err:
            raise ValueError(f"{who}: on {path!r}: {err}") from None
        sigma2.append(variance * math.prod(shape[:-1]))
        spread.add("delta" if chosen.name == "delta_orthogonal" else "uniform")
    if len(spread) > 1:
        raise ValueError(
            f"{who}: the CNN's convolutions mix delta-orthogonal and evenly spread filters "
            "(the rule left some kernels their own init); conv_variance follows one kind"
        )
    q = conv_variance(
        model.activation, x, depth=len(convs), sigma_w2=np.asarray(sigma2, np.float32),
        sigma_b2=0.0, filter_shape=tuple(convs[0].kernel_size), padding=padding,
        filter_variance=spread.pop(),
    ).q  # fmt: skip
    means = np.asarray(q, np.float64).mean((0, 2, 3))
    return {f"convs/{i}": float(v) for i, v in enumerate(means)}
