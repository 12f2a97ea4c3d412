r"""The compiled pass: one MLP at initialization, forward and backward, with per-layer statistics.

For one combination (vmapped over many by :mod:`jaxinit.sweep`) the kernel

1. draws or takes the inputs :math:`x \in \mathbb{R}^{B \times d_\mathrm{in}}`;
2. draws every layer's weights in-program, :math:`W_l = \mathrm{draw}(\mathrm{base},
   k_l) \cdot a + b`, exactly as the initializer itself would for that key;
3. runs :math:`z_l = h_{l-1} W_l + b_l` (optionally batch-normalized),
   :math:`h_l = \varphi(z_l)` with ``lax.scan`` over layers, and records per layer
   the moments of :math:`z` and :math:`h`, the saturated and dead fractions, a
   histogram of :math:`h` with fixed edges, non-finite counts and optionally the
   mean cosine similarity between samples;
4. for each requested depth :math:`L`, back-propagates a standard-normal
   cotangent :math:`G` from :math:`h_L` (the gradient of the random linear readout
   :math:`\langle G, h_L\rangle`, summed over the batch) and records
   :math:`\mathrm{Var}(\partial/\partial z_l)` and :math:`\|\partial/\partial W_l\|_F`.

Layer index 0 is nearest the input. The kernel knows nothing about files.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxinit.activations import Activation
from jaxinit.grid import STREAM_COTANGENT, STREAM_INPUTS, STREAM_LAYERS
from jaxinit.initializers._core import draw
from jaxinit.lsuv import _layer_scale

BN_EPS = 1e-5
COMBOS = "combos"  # name of the mesh axis that combinations are split over


class KernelSpec(NamedTuple):
    """The static structure of a compiled program; one program per distinct spec.

    A program holds every activation and initializer family of a sweep; a
    :class:`Select` picks one per call with ``lax.switch``. The index is the
    same for every combination of a call (never vmapped), so the switch is a
    real branch and costs nothing, and the number of programs depends on the
    shapes alone.
    """

    activations: tuple[Activation, ...]
    w_bases: tuple[tuple, ...]  # standardized draws of the weights (initializer families)
    b_bases: tuple[tuple, ...]  # standardized draws of the biases
    edges: tuple[tuple[float, ...], ...]  # per activation: histogram edges, len = bins + 1
    d_in: int
    width: int
    depth: int  # deepest network; shallower ones are its prefixes
    grad_depths: tuple[int, ...]  # depths whose backward pass is recorded
    batch: int
    inputs: str  # "gaussian", "uniform" or "array"
    batchnorm: bool
    cosine: bool


class Select(NamedTuple):
    """Which activation and families of a :class:`KernelSpec` a call uses (int32 scalars)."""

    activation: jax.Array
    w_base: jax.Array
    b_base: jax.Array


class KernelParams(NamedTuple):
    """Per-combination inputs; under vmap each has a leading combination axis."""

    seed_key: jax.Array  # PRNG key of the combination's seed
    w_first: jax.Array  # (2,) a, b of the first layer's weights (d_in, width)
    w_hidden: jax.Array  # (2,) a, b of the hidden weights (width, width)
    bias: jax.Array  # (2,) a, b of the biases (width,)
    # Standardized weight draws made beforehand by `predraw` (first layer
    # (d_in, width), hidden (depth - 1, width, width)), or None to draw in-program.
    draws: tuple[jax.Array, jax.Array] | None = None


def coeffs_array(init, shape, dtype=jnp.float32) -> np.ndarray:
    """``(a, b)`` of ``init`` at ``shape`` as a float array, with a=1, b=0 for None."""
    a, b = init.coeffs(tuple(shape), jnp.dtype(dtype))
    return np.array([1.0 if a is None else a, 0.0 if b is None else b], dtype=dtype)


def histogram(x: jax.Array, edges: jax.Array) -> jax.Array:
    """Counts of ``x`` in equal-width bins with these edges, exactly as ``np.histogram``.

    Arithmetic bin indices can be one bin off within an ulp of an edge; like
    NumPy, the index is then corrected against the edges themselves. Values
    outside ``[edges[0], edges[-1]]`` and NaNs are not counted; the last bin
    includes its right edge. One exception: XLA:CPU flushes subnormal floats
    (``|x| < 1.2e-38``) to zero, so a subnormal just below an edge at 0 is
    counted in the bin above it.
    """
    x = x.ravel()
    bins = edges.shape[0] - 1
    lo, hi = edges[0], edges[-1]
    keep = (x >= lo) & (x <= hi)
    idx = jnp.floor((x - lo) / (hi - lo) * bins)
    idx = jnp.clip(jnp.nan_to_num(idx), 0, bins - 1).astype(jnp.int32)
    idx = jnp.where(x < edges[idx], idx - 1, idx)
    idx = jnp.where((x >= edges[jnp.minimum(idx + 1, bins)]) & (idx != bins - 1), idx + 1, idx)
    idx = jnp.clip(idx, 0, bins - 1)
    return jnp.zeros(bins, jnp.int32).at[idx].add(keep.astype(jnp.int32))


def _inputs(spec: KernelSpec, key: jax.Array, x: jax.Array | None) -> jax.Array:
    k = jax.random.fold_in(key, STREAM_INPUTS)
    if spec.inputs == "gaussian":
        return jax.random.normal(k, (spec.batch, spec.d_in))
    if spec.inputs == "uniform":
        return jax.random.uniform(k, (spec.batch, spec.d_in))
    return x


def _switch(index, branches, *operands):
    """``lax.switch``, or the one branch itself when there is no choice."""
    if len(branches) == 1:
        return branches[0](*operands)
    return jax.lax.switch(index, branches, *operands)


def _draw(bases, index, key, shape):
    """A standardized draw of family ``bases[index]``."""
    branches = [functools.partial(draw, b, shape=shape, dtype=jnp.float32) for b in bases]
    return _switch(index, [lambda k, f=f: f(key=k) for f in branches], key)


def _activation(spec: KernelSpec, sel: Select):
    fns = [a.fn for a in spec.activations]
    return lambda z: _switch(sel.activation, fns, z)


def needs_predraw(w_base: tuple) -> bool:
    """Whether the weights must be drawn in a separate, unsharded program.

    The orthogonal draw calls LAPACK's QR, whose XLA:CPU kernel spreads a
    batch of matrices over the intra-op thread pool and blocks until they are
    done. With several host devices, every pool thread can be one device's
    executor blocked in its own QR, leaving none to run the queued work: a
    deadlock (4 of 4 runs of a 2-device sweep on 2 cores here; 0 of 10 with
    the fix). Drawing these weights in a
    program of their own, on one device, avoids it.
    """
    return w_base[0] in ("orthogonal", "lsuv")


def _layer_keys(spec: KernelSpec, seed_key: jax.Array) -> jax.Array:
    layer_key = jax.random.fold_in(seed_key, STREAM_LAYERS)
    return jax.vmap(lambda l: jax.random.fold_in(layer_key, l))(jnp.arange(spec.depth))


def _draw_weights(spec: KernelSpec, bases, index, seed_key: jax.Array):
    """Standardized draws (before ``* a + b``) of every layer's weights."""
    keys = _layer_keys(spec, seed_key)
    w0 = _draw(bases, index, jax.random.fold_in(keys[0], 0), (spec.d_in, spec.width))
    ws = jax.vmap(
        lambda k: _draw(bases, index, jax.random.fold_in(k, 0), (spec.width, spec.width))
    )(keys[1:])
    return w0, ws


@functools.partial(jax.jit, static_argnums=(0, 1))
def predraw(spec: KernelSpec, w_base: tuple, seed_keys: jax.Array):
    """Weight draws of family ``w_base`` for a batch of seed keys, as a program of its own."""
    return jax.lax.map(lambda k: _draw_weights(spec, (w_base,), 0, k), seed_keys)


def _weights(spec: KernelSpec, sel: Select, p: KernelParams):
    """Weights and biases of all ``spec.depth`` layers, drawn from the seed key."""
    if p.draws is None:
        d0, ds = _draw_weights(spec, spec.w_bases, sel.w_base, p.seed_key)
    else:
        d0, ds = p.draws
    w0 = d0 * p.w_first[0] + p.w_first[1]
    ws = ds * p.w_hidden[0] + p.w_hidden[1]
    bias = jax.vmap(
        lambda k: (
            _draw(spec.b_bases, sel.b_base, jax.random.fold_in(k, 1), (spec.width,)) * p.bias[0]
            + p.bias[1]
        )
    )(_layer_keys(spec, p.seed_key))
    return w0, ws, bias


def _pre_activation(spec: KernelSpec, h, w, b):
    z = h @ w + b[None, :]
    if spec.batchnorm:
        z = (z - z.mean(0, keepdims=True)) / jnp.sqrt(z.var(0, keepdims=True) + BN_EPS)
    return z


def _lsuv(spec: KernelSpec, base: tuple, act, x, w0, ws, bias):
    r"""LSUV's data-dependent step (Mishkin & Matas 2016, Algorithm 1) on the inputs ``x``.

    Layer by layer from the input, with the earlier layers already rescaled:
    :math:`W_l \leftarrow W_l \sqrt{t / \mathrm{Var}(h_{l-1} W_l + b_l)}` until
    the variance is within ``tol`` of the target ``t`` or ``max_iter`` steps
    (one step is exact when the biases are zero). The variance is that of the
    layer's output before any batch normalization. Returns the rescaled weights.
    """
    _, _, target, tol, max_iter = base

    def rescale(h, w, b):  # the same step as jaxinit.lsuv's
        return w * _layer_scale(h @ w, b, target, tol, max_iter)[0]

    def step(h, wb):
        w = rescale(h, *wb)
        return act(_pre_activation(spec, h, w, wb[1])), w

    w0 = rescale(x, w0, bias[0])
    h0 = act(_pre_activation(spec, x, w0, bias[0]))
    _, ws = jax.lax.scan(step, h0, (ws, bias[1:]))
    return w0, ws


def _rescale(spec: KernelSpec, sel: Select, act, x, w0, ws, bias):
    """Data-dependent initializers' step (LSUV); the weights themselves for all others."""
    if not any(base[0] == "lsuv" for base in spec.w_bases):
        return w0, ws
    branches = [
        functools.partial(_lsuv, spec, base, act)
        if base[0] == "lsuv"
        else lambda x, w0, ws, b: (w0, ws)
        for base in spec.w_bases
    ]
    return _switch(sel.w_base, branches, x, w0, ws, bias)


def _forward(spec: KernelSpec, act, x, w0, ws, bias, probes):
    """Pre- and post-activations ``(L, batch, width)`` of the first ``len(probes)`` layers.

    ``probes`` are zeros added to each pre-activation, so that their gradient
    is the gradient with respect to the pre-activations.
    """

    def layer(h, w, b, probe):
        z = _pre_activation(spec, h, w, b) + probe
        return z, act(z)

    z0, h0 = layer(x, w0, bias[0], probes[0])

    def step(h, inp):
        z, h = layer(h, *inp)
        return h, (z, h)

    n = probes.shape[0]
    _, (zs, hs) = jax.lax.scan(step, h0, (ws[: n - 1], bias[1:n], probes[1:]))
    return jnp.concatenate([z0[None], zs]), jnp.concatenate([h0[None], hs])


def _saturation_table(spec: KernelSpec) -> jax.Array:
    """Per activation, the (lo, hi) saturation thresholds; ±inf where there is no test."""
    rows = [
        (-np.inf if lo is None else lo, np.inf if hi is None else hi)
        for lo, hi in (a.saturation for a in spec.activations)
    ]
    return jnp.asarray(rows, jnp.float32)


def _layer_stats(spec: KernelSpec, z, h, edges, saturation) -> dict[str, jax.Array]:
    n = h.size
    stats = {
        "pre_mean": z.mean(),
        "pre_var": z.var(),
        "post_mean": h.mean(),
        "post_var": h.var(),
        "saturated": ((h < saturation[0]) | (h > saturation[1])).sum() / n,
        "dead": (h == 0).sum() / n,
        "nonfinite": (~jnp.isfinite(z)).sum() + (~jnp.isfinite(h)).sum(),
        "hist": histogram(h, edges),
        "hist_below": (h < edges[0]).sum(),
        "hist_above": (h > edges[-1]).sum(),
    }
    if spec.cosine:
        norms = jnp.linalg.norm(h, axis=1, keepdims=True)
        u = jnp.where(norms > 0, h / jnp.where(norms > 0, norms, 1), 0)
        s = u.sum(0)
        b = h.shape[0]
        stats["cosine"] = (s @ s - (u * u).sum()) / (b * (b - 1))
    return stats


def run_one(
    spec: KernelSpec, sel: Select, p: KernelParams, x: jax.Array | None
) -> dict[str, jax.Array]:
    """All statistics of one combination: fields ``(layer,)``, hist ``(layer, bin)``,
    and ``(grad_depth, layer)`` for the backward ones (NaN beyond each depth)."""
    x = _inputs(spec, p.seed_key, x)
    act = _activation(spec, sel)
    w0, ws, bias = _weights(spec, sel, p)
    w0, ws = _rescale(spec, sel, act, x, w0, ws, bias)
    edges = jnp.asarray(spec.edges, jnp.float32)[sel.activation]
    saturation = _saturation_table(spec)[sel.activation]
    zeros = jnp.zeros((spec.depth, spec.batch, spec.width))
    zs, hs = _forward(spec, act, x, w0, ws, bias, zeros)
    out = jax.vmap(lambda z, h: _layer_stats(spec, z, h, edges, saturation))(zs, hs)

    cot = jax.random.normal(
        jax.random.fold_in(p.seed_key, STREAM_COTANGENT), (spec.batch, spec.width)
    )
    backward = _backward_vjp if spec.batchnorm else _backward_manual
    grad_var, w_norm = [], []
    for depth in spec.grad_depths:
        g_var, g_norm = backward(spec, act, x, w0, ws, bias, zs, hs, cot, depth)
        pad = jnp.full((spec.depth - depth,), jnp.nan)
        grad_var.append(jnp.concatenate([g_var, pad]))
        w_norm.append(jnp.concatenate([g_norm, pad]))
    out["grad_var"] = jnp.stack(grad_var)
    out["weight_grad_norm"] = jnp.stack(w_norm)
    return out


def _backward_manual(spec: KernelSpec, act, x, w0, ws, bias, zs, hs, cot, depth):
    r"""Var(∂/∂z_l) and ‖∂/∂W_l‖_F for the depth-``depth`` network, from the stored pass.

    With :math:`\delta_L = G \odot \varphi'(z_L)` and
    :math:`\delta_{l-1} = (\delta_l W_l^\top) \odot \varphi'(z_{l-1})`, the weight
    gradient is :math:`h_{l-1}^\top \delta_l`. No forward pass is recomputed.
    """
    del w0, bias
    dphi = jax.jvp(act, (zs[:depth],), (jnp.ones_like(zs[:depth]),))[1]

    def step(delta, layer):  # from layer `layer` (>= 1) down to layer - 1
        w = ws[layer - 1]
        h_prev = hs[layer - 1]
        stats = (delta.var(), jnp.linalg.norm(h_prev.T @ delta))
        return (delta @ w.T) * dphi[layer - 1], stats

    delta = cot * dphi[depth - 1]
    if depth == 1:  # a single layer: nothing to scan (and no hidden weights to index)
        g_var = g_norm = jnp.zeros((0,), delta.dtype)
        delta0 = delta
    else:
        delta0, (g_var, g_norm) = jax.lax.scan(step, delta, jnp.arange(depth - 1, 0, -1))
    g_var = jnp.concatenate([delta0.var()[None], g_var[::-1]])
    g_norm = jnp.concatenate([jnp.linalg.norm(x.T @ delta0)[None], g_norm[::-1]])
    return g_var, g_norm


def _backward_vjp(spec: KernelSpec, act, x, w0, ws, bias, zs, hs, cot, depth):
    """As :func:`_backward_manual`, by ``jax.vjp`` through the pass (batch norm couples samples)."""
    del zs, hs

    def last(probes, w0, ws):
        return _forward(spec, act, x, w0, ws, bias, probes)[1][depth - 1]

    probes = jnp.zeros((depth, spec.batch, spec.width))
    _, vjp = jax.vjp(last, probes, w0, ws)
    d_z, d_w0, d_ws = vjp(cot)
    norms = jnp.concatenate(
        [jnp.linalg.norm(d_w0)[None], jnp.sqrt((d_ws[: depth - 1] ** 2).sum((1, 2)))]
    )
    return d_z.reshape(depth, -1).var(1), norms


def _run_batch(
    spec: KernelSpec, lanes: int, sel: Select, params: KernelParams, x: Any
) -> dict[str, jax.Array]:
    """``vmap`` over ``lanes`` combinations at a time, ``lax.map`` over groups of lanes.

    XLA may choose different kernels for different batch sizes, which changes
    results in the last bit. With a fixed lane width every combination runs in
    the same ``lanes``-wide program whatever the chunk size, so its numbers are
    bitwise the same, and a chunk's peak memory is that of one group of lanes.
    """
    n = params.w_first.shape[0]
    if n % lanes:
        raise ValueError(f"{n} combinations do not fill whole groups of {lanes} lanes")
    grouped = jax.tree.map(lambda a: a.reshape(n // lanes, lanes, *a.shape[1:]), params)
    out = jax.lax.map(jax.vmap(lambda p: run_one(spec, sel, p, x)), grouped)
    return jax.tree.map(lambda a: a.reshape(n, *a.shape[2:]), out)


def _run(spec: KernelSpec, lanes: int, mesh: Mesh | None, sel: Select, params: KernelParams, x):
    """``_run_batch``, split over ``mesh``'s combination axis when one is given.

    Each device maps over its own groups of lanes (``shard_map``), so a
    combination runs in the same ``lanes``-wide program on any number of
    devices and its numbers do not change with the device count.
    """
    if mesh is None:
        return _run_batch(spec, lanes, sel, params, x)
    body = functools.partial(_run_batch, spec, lanes)
    # check_vma=False: every value is device-local. With the check on, the probes
    # (created in the body, so "replicated") would have their gradients psum-ed
    # across devices by the transpose of the implicit pvary.
    return jax.shard_map(
        body, mesh=mesh, in_specs=(P(), P(COMBOS), P()), out_specs=P(COMBOS), check_vma=False
    )(sel, params, x)


# One compiled program per static spec, lane width, mesh and chunk shape; jax caches them.
run_batch = jax.jit(_run, static_argnums=(0, 1, 2))
