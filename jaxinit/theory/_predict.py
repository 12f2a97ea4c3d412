r"""``predict(grid)``: the mean-field prediction of a sweep, laid out as its result: a Prediction.

Layer by layer, pre-activations are taken Gaussian,
:math:`z_l \sim \mathcal{N}(\mu_b, \sigma_{w,l}^2\,\mathbb{E}[h_{l-1}^2] + \mathrm{Var}(b))`,
and gradients follow the independence assumption,
:math:`\mathbb{E}\delta_{l-1}^2 = \sigma_{w,l}^2\,\mathbb{E}\varphi'(z_{l-1})^2\,\mathbb{E}\delta_l^2`
(Schoenholz et al. 2017, https://arxiv.org/abs/1611.01232); batch norm is taken
at the centred symmetric fixed point (Yang et al. 2019,
https://arxiv.org/abs/1902.08129). See :func:`predict` for every field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from jaxinit._dims import dim_values
from jaxinit._host import check_memory
from jaxinit._results import Result
from jaxinit.initializers._bases import Lsuv
from jaxinit.sweeping import DIMS, INPUT_MOMENTS, Grid, ModelGrid
from jaxinit.sweeping._kernel import BN_EPS
from jaxinit.sweeping._stats import BACKWARD_FIELDS, COUNT_FIELDS, FORWARD_FIELDS
from jaxinit.theory._maps import weight_variance
from jaxinit.theory._quadrature import N2, TINY, dphi, expect1, expect2, second_moment
from jaxinit.theory._residual import predict_model

__all__ = ["Prediction", "predict"]

_MAX_PAIRS = 256  # sample pairs predict follows for the cosine of an inputs array
# the forward statistics theory predicts: the sweep's (jaxinit.sweeping._stats), less its counts
_FIELDS = tuple(f for f in FORWARD_FIELDS if f not in COUNT_FIELDS)


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
    e1, e2, d2 = expect1(act, m, v, lambda x: (act.fn(x), act.fn(x) ** 2, dphi(act, x) ** 2))
    sd = jnp.sqrt(jnp.maximum(v, 0.0))
    sat = _below(thr[0], m, sd, inclusive=False) + 1.0 - _below(thr[1], m, sd, inclusive=True)
    return e1, e2, d2, sat, _below(thr[2], m, sd, inclusive=True)


def _fit(lsuv, w, h2, vb):
    """σ_w² after LSUV's loop on a layer whose inputs have mean square ``h2``: rescale
    until |w h2 + Var(b) - target| < tol, at most max_iter times (as the kernel does)."""
    if lsuv is None:
        return w
    target, tol = lsuv.target_var, lsuv.tol

    def step(_, w):
        var = w * h2 + vb
        go = (var > 0) & (jnp.abs(var - target) >= tol)
        return jnp.where(go, w * target / jnp.where(go, var, 1.0), w)

    return jax.lax.fori_loop(0, lsuv.max_iter, step, w)


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
        v = raw / (raw + BN_EPS)
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
        c = k / jnp.sqrt(jnp.maximum(va * vb_, TINY))

        def one(va, vb_, c):
            ab = expect2(act, mb, va, vb_, c, lambda u, v: (act.fn(u) * act.fn(v),))[0]
            return jnp.stack([second_moment(act, mb, va, N2), second_moment(act, mb, vb_, N2), ab])

        h = jax.vmap(one)(va, vb_, c)
        return h, jnp.mean(h[:, 2] / jnp.sqrt(jnp.maximum(h[:, 0] * h[:, 1], TINY)))

    wb = jnp.stack([sw, jnp.broadcast_to(vb, sw.shape)], axis=1)
    return jax.lax.scan(layer, pairs, wb)[1]


def _inputs(grid: Grid):
    """Per-sample mean squares (S,), the mean batch variance of an input, and pairs (P, 3)."""
    batch = grid.batch_size
    x = grid.inputs
    if isinstance(x, str):
        mean, square = INPUT_MOMENTS[grid.inputs]
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
        ab = expect2(act, 0.0, v, v, -1.0 / (batch - 1), lambda u, w: (act.fn(u) * act.fn(w),))
        return ab[0] / second_moment(act, 0.0, v, N2)

    return jax.vmap(one)(v)


def _combination(grid, act, thr, init, width, bias, inputs) -> dict[str, np.ndarray]:
    """The fields of one (init, activation, width, bias init): (D,), and (n_depths, D) for
    the gradients."""
    depth, d_in, batch = max(dim_values(grid.depth)), grid.d_in, grid.batch_size
    var0, var_h = weight_variance(init, (d_in, width)), weight_variance(init, (width, width))
    mb, vb = bias.moments((width,))
    sw = jnp.asarray([d_in * var0] + [width * var_h] * (depth - 1), jnp.float32)
    square, var_x, pairs = inputs
    lsuv = init.base if isinstance(init.base, Lsuv) else None
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
        scale = (1 - 2 / batch) / (raw[:, 0] + BN_EPS)  # E g_raw² / E g_ẑ²
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
    shape = (len(dim_values(grid.depth)), depth)
    out["grad_var"], out["weight_grad_norm"] = np.full(shape, np.nan), np.full(shape, np.nan)
    for i, top in enumerate(dim_values(grid.depth)):
        g = d2[top - 1]  # per sample E δ² at the top (the cotangent has unit variance)
        for l in range(top - 1, -1, -1):
            out["grad_var"][i, l] = g.mean()
            g = scale[l] * g  # through batch norm's backward pass, if any
            norm2 = n_in[l] * width * batch * np.mean(h_sum[l] * g)
            out["weight_grad_norm"][i, l] = math.sqrt(norm2)
            g = d2[l - 1] * sw[l] * g  # width · Var(W_l) = σ_w² of a square layer
    return out


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Prediction(Result):
    """A :class:`jaxinit.Result` of theory: what :func:`predict` expects a sweep to measure,
    with the sweep's dims, coords and per-layer fields (every seed the same expectation).

    A kind of its own, not a SweepResult: nothing in it was measured, so a saved prediction
    loads back as a Prediction (``jaxinit.Result.load``) and a report or script tells it
    from a measurement by its type. It adds no method to Result."""


def predict(grid: Grid) -> Prediction:
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

    Stochastic activations (rrelu) are used through ``fn``, the mean slope,
    exactly as the sweep kernel does.

    A ModelGrid of the zoo's residual network (:class:`jaxinit.models.ResNet`) gets the
    residual stream's mean field (:mod:`jaxinit.theory._residual`, Yang & Schoenholz 2017):
    ``pre_var`` of every captured output by path, in the sweep's ``(init, seed, layer)``
    layout; one of the zoo's CNN (:class:`jaxinit.models.CNN`, "SAME" or "CIRCULAR") each
    convolution's (:func:`conv_variance`, averaged over the images and positions; its
    pooled output and head NaN); other models are refused.

    Args:
      grid: the sweep's Grid, or a ModelGrid of ``ji.models.ResNet`` or ``ji.models.CNN``.

    Returns:
      A :class:`Prediction` with the sweep's dims and coords and the fields above.

    Raises:
      TypeError: for anything but a Grid or ModelGrid.
      ValueError: for a ModelGrid of another model than the zoo's ResNet or CNN.
      ValueError: for weight initializers with a nonzero mean (see :func:`sigma_w2`).
    """
    if isinstance(grid, ModelGrid):
        return predict_model(grid)
    if not isinstance(grid, Grid):
        raise TypeError(f"predict takes a jaxinit Grid or ModelGrid; got {type(grid).__name__}")
    coords = grid.coords()
    sizes = [len(v) for v in coords.values()]
    depth = max(dim_values(grid.depth))
    names = (*_FIELDS, *BACKWARD_FIELDS, *(("cosine",) if grid.cosine else ()))
    what = f"{len(grid):,} combinations × {depth} layers × {len(names)} fields"
    need = len(grid) * depth * 4 * len(names)  # float32 fields
    advice = (
        "every seed gets the same prediction: predict dataclasses.replace(grid, seeds=1) "
        "(and fewer depths or widths at a time)"
    )
    check_memory("predict: this grid's prediction", need, what, advice)
    fields = {f: np.full((*sizes, depth), np.nan, np.float32) for f in names}
    inputs = _inputs(grid)
    for ia, act in enumerate(grid.activations):
        thr = _thresholds(act)
        for ii, init in enumerate(grid.inits):
            for iw, width in enumerate(dim_values(grid.width)):
                for ib, bias in enumerate(dim_values(grid.bias_inits)):
                    out = _combination(grid, act, thr, init, width, bias, inputs)
                    for idepth, top in enumerate(dim_values(grid.depth)):
                        at = (ii, ia, idepth, iw, ib)
                        for f in names:
                            value = out[f][idepth] if out[f].ndim == 2 else out[f]
                            fields[f][at][:, :top] = value[:top]
    result = Prediction(
        dims=DIMS,
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
