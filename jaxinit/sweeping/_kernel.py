r"""The compiled passes: shared draws once per seed, then every init of a sweep at once.

A sweep's grid has common random numbers: for one seed, every initializer and
activation sees the same inputs and the same standardized weight draws of its
family (:mod:`jaxinit.initializers._core`: ``W = a · draw(base, key) + b``, with ``base``
a record of :mod:`jaxinit.initializers._bases`).
The engine is organized around that, in two programs per width:

1. :func:`draw` (one program per width and set of families): for a block of
   seeds, the inputs :math:`x \in \mathbb{R}^{B \times d_\mathrm{in}}`, every
   family's standardized draws :math:`Z_{l,f}` of every layer, the bias draws
   and the backward cotangent, each from the seed's key exactly as the
   initializer itself would draw it. They are made once and used by every
   activation and every init. The keys come from the host
   (:func:`key_table`, NumPy threefry) and every raw-bits draw of a seed from
   one threefry pass, so the program compiles one hash, not one per draw and
   derivation level.
2. :func:`forward` (one program per width and member count, holding every
   activation of the sweep; a call picks one with ``lax.switch``, so the
   compile time does not grow with the activations' elementwise code): for
   the same seeds, every *member* (an (init, bias init) pair), with explicit
   ``(seed, member, batch, width)`` axes and no ``vmap``:

   - the first layer is shared by the inits of a family:
     :math:`z_1 = a\,(x Z_{1,f}) + b\,(x \mathbf{1}) + b_1`, so one wide matmul
     :math:`x\,[Z_{1,1} \cdots Z_{1,F}]` serves every init;
   - then a ``lax.map`` over *tiles* of members (``ForwardSpec.tile``: 1 on a
     CPU, where a member's activations then stay in a core's cache through its
     matmuls and statistics; the whole block on an accelerator) runs every layer of the tile's networks;
   - each hidden layer forms the tile's weights
     :math:`W_l = a\,Z_{l,f} + b` (W² entries, small next to the B·W
     activations) and runs one batched matmul;
   - the statistics of :mod:`jaxinit.sweeping._stats` are fused reductions and one flat
     scatter per layer;
   - with ``gradients`` on, a hand-written backward pass from the cotangent
     :math:`G` at :math:`h_L` for each recorded depth :math:`L` (the gradient
     of the random readout :math:`\langle G, h_L\rangle`, summed over the
     batch): :math:`\delta_L = G \odot \varphi'(z_L)`,
     :math:`\delta_{l-1} = (\delta_l W_l^\top) \odot \varphi'(z_{l-1})`
     (through batch normalization when on), recording
     :math:`\mathrm{Var}(\delta_l)` and :math:`\|h_{l-1}^\top \delta_l\|_F`.

Seeds are processed ``lanes`` at a time (``lax.map`` over groups of lanes;
1 on CPU, more on accelerators), and split over devices with ``shard_map``.
Every group of lanes runs the same program whatever the chunk or device count,
so a combination's numbers are bitwise the same for any of them. The tile
and the block of members (which inits share the program) can change the last
bits of the matmuls, by float32 rounding only (``tests/_tolerances.py``).

Layer index 0 is nearest the input. The kernel knows nothing about files.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxinit import _jax_compat
from jaxinit._keys import STREAM_COTANGENT, STREAM_INPUTS, STREAM_LAYERS, seed_key
from jaxinit.activations import Activation
from jaxinit.initializers._bases import QR, Base, Lsuv, Normal, Uniform01
from jaxinit.initializers._core import bits_many, families_from_bits, needs_bits
from jaxinit.lsuv import layer_scale
from jaxinit.sweeping import _stats

__all__ = [
    "BN_EPS",
    "SEEDS",
    "DrawSpec",
    "Draws",
    "ForwardSpec",
    "LsuvMembers",
    "Members",
    "clear_programs",
    "draw",
    "forward",
    "key_table",
    "lsuv_members",
    "needs_single_device_draws",
    "programs",
]

BN_EPS = 1e-5
SEEDS = "seeds"  # name of the mesh axis that seeds are split over


class DrawSpec(NamedTuple):
    """What :func:`draw` makes for every seed of a block; static, one program per value."""

    w_bases: tuple[Base, ...]  # the weight families' standardized draws
    b_bases: tuple[Base, ...]  # the bias families'
    d_in: int
    width: int
    depth: int
    batch: int
    inputs: str  # "gaussian", "uniform", or "array" (given; nothing to draw)
    cotangent: bool  # draw the backward pass's cotangent


class Draws(NamedTuple):
    """A block of ``n`` seeds' draws; shapes noted."""

    first: jax.Array  # (n, d_in, F·width): the first layer's draws of every family, side by side
    hidden: jax.Array  # (n, depth - 1, F, width, width)
    bias: jax.Array  # (n, depth, Fb, width)
    x: jax.Array | None = None  # (n, batch, d_in); None for an input array
    cotangent: jax.Array | None = None  # (n, batch, width)


class ForwardSpec(NamedTuple):
    """The static structure of a :func:`forward` program; one program per value."""

    activations: tuple[Activation, ...]  # a call selects one by index
    hist_ranges: tuple[tuple[float, float], ...]  # per activation, (lo, hi) of the histogram
    bins: int
    d_in: int
    width: int
    depth: int  # deepest network; shallower ones are its prefixes
    batch: int
    families: int  # F, weight families in the draws
    members: int  # M, members per call
    lanes: int  # seeds per vmapped group
    tile: int  # members per step of the loop over members (divides members)
    grad_depths: tuple[int, ...]  # depths whose backward pass is recorded; () for none
    batchnorm: bool
    cosine: bool
    shifted: bool  # some weight init has b != 0 (W = aZ + b)
    lsuv: bool  # some member is LSUV (a data-dependent rescale per layer)


class LsuvMembers(NamedTuple):
    """Per-member LSUV settings, each ``(M,)`` (Mishkin & Matas, 2016): a member whose
    weight draw is :class:`~jaxinit.initializers._bases.Lsuv` rescales each layer ``c ← c
    sqrt(target_var / Var(z))`` until ``|Var(z) - target_var| < tol`` or ``max_iter`` steps
    (:func:`jaxinit.lsuv.layer_scale`); the others keep ``c = 1``."""

    enabled: jax.Array  # (M,) bool: the member is LSUV
    target_var: jax.Array  # (M,) float32
    tol: jax.Array  # (M,) float32
    max_iter: jax.Array  # (M,) int32; 0 for members that are not LSUV


def lsuv_members(bases: Sequence[Base]) -> LsuvMembers:
    """The :class:`LsuvMembers` of members whose weight draws are ``bases``: an LSUV draw's
    settings, and ``target_var = tol = 1``, ``max_iter = 0`` (no rescale) for the others."""
    lsuv = [b if isinstance(b, Lsuv) else None for b in bases]
    return LsuvMembers(
        enabled=np.array([b is not None for b in lsuv], np.bool_),
        target_var=np.array([1.0 if b is None else b.target_var for b in lsuv], np.float32),
        tol=np.array([1.0 if b is None else b.tol for b in lsuv], np.float32),
        max_iter=np.array([0 if b is None else b.max_iter for b in lsuv], np.int32),
    )


class Members(NamedTuple):
    """Per-member coefficients, ``(M, ...)``: how each member's weights come from the draws."""

    first_mix: jax.Array  # (M, F): a of the first layer in its family's column, 0 elsewhere
    first_shift: jax.Array  # (M,): b of the first layer
    hidden_mix: jax.Array  # (M, F)
    hidden_shift: jax.Array  # (M,)
    bias_mix: jax.Array  # (M, Fb)
    bias_shift: jax.Array  # (M,)
    lsuv: LsuvMembers  # each (M,)


def needs_single_device_draws(spec: DrawSpec) -> bool:
    """Whether :func:`draw` must run on one device rather than sharded.

    The orthogonal draw calls LAPACK's QR, whose XLA:CPU kernel spreads a
    batch of matrices over the intra-op thread pool and blocks until they are
    done. With several host devices, every pool thread can be one device's
    executor blocked in its own QR, leaving none to run the queued work: a
    deadlock (``benchmarks/README.md`` has the runs), which the draws in a
    program of their own, on one device, avoid.
    """
    return any(isinstance(b, QR) for b in spec.w_bases)


# -- draws ----------------------------------------------------------------------------


def _key_table_traced(spec: DrawSpec, seed_key: jax.Array) -> jax.Array:
    """A seed's draw keys ``(2·depth + 2,)``: each layer's weight keys, its bias keys, the
    inputs' key and the cotangent's, as the initializers and :mod:`jaxinit._keys` define them."""
    streams = jnp.array([STREAM_LAYERS, STREAM_INPUTS, STREAM_COTANGENT], jnp.uint32)
    stream_keys = jax.vmap(lambda s: jax.random.fold_in(seed_key, s))(streams)
    keys = jax.vmap(lambda l: jax.random.fold_in(stream_keys[0], l))(jnp.arange(spec.depth))
    wb = jax.vmap(lambda k: jax.vmap(lambda i: jax.random.fold_in(k, i))(jnp.arange(2)))(keys)
    return jnp.concatenate([wb[:, 0], wb[:, 1], stream_keys[1:]])


def key_table(spec: DrawSpec, root_seed: int, seeds: np.ndarray) -> np.ndarray:
    """Raw key data ``(n, 2·depth + 2, 2)`` of :func:`_key_table_traced` for every seed,
    made on the host (:func:`jaxinit._jax_compat.host_fold_in`): no key derivation is
    compiled."""
    fold_in = _jax_compat.host_fold_in
    seed_keys = fold_in(_jax_compat.host_key_data(root_seed), np.asarray(seeds))  # (n, 2)
    streams = np.array([STREAM_LAYERS, STREAM_INPUTS, STREAM_COTANGENT])
    stream_keys = fold_in(seed_keys[:, None], streams)  # (n, 3, 2)
    layers = fold_in(stream_keys[:, :1], np.arange(spec.depth))  # (n, depth, 2)
    wb = fold_in(layers[:, :, None], np.arange(2))  # (n, depth, 2, 2)
    return np.concatenate([wb[:, :, 0], wb[:, :, 1], stream_keys[:, 1:]], 1)


def _per_key(fn: Callable, keys: jax.Array, bits: jax.Array | None) -> jax.Array:
    """``fn(key, bits)`` for each key (and row of ``bits``, when not None), stacked.

    ``vmap`` for threefry keys, whose bits do not depend on the batching; a
    loop for the others (jax's ``rbg`` draws other bits under ``vmap``).
    """
    if str(jax.random.key_impl(keys)) == "threefry2x32":
        return jax.vmap(fn, in_axes=(0, None if bits is None else 0))(keys, bits)
    rows = range(keys.shape[0])
    return jnp.stack([fn(keys[i], None if bits is None else bits[i]) for i in rows])


def _draw_one(spec: DrawSpec, keys: jax.Array) -> Draws:
    """One seed's draws from its key table (:func:`_key_table_traced`), each with the key the
    initializer itself would get.

    Every raw-bits draw of the seed (each layer's families, the biases, the
    inputs, the cotangent) comes from one threefry pass
    (:func:`jaxinit.initializers._core.bits_many`), so the program holds one
    hash, not one per draw.
    """
    w_keys, b_keys = keys[: spec.depth], keys[spec.depth : 2 * spec.depth]
    k_in, k_cot = keys[-2], keys[-1]
    first_shape, hidden_shape = (spec.d_in, spec.width), (spec.width, spec.width)
    # Layers of one shape are drawn together (one QR, one conversion of bits in the
    # program): the first with the hidden ones when d_in == width.
    groups = [(0, 1, first_shape), (1, spec.depth, hidden_shape)]
    if spec.d_in == spec.width:
        groups = [(0, spec.depth, hidden_shape)]
    if spec.depth == 1:
        groups = groups[:1]
    req = {}  # name: (keys, size)
    if needs_bits(spec.w_bases):
        for start, stop, shape in groups:
            req[start] = (w_keys[start:stop], math.prod(shape))
    if needs_bits(spec.b_bases):
        req["bias"] = (b_keys, spec.width)
    if spec.inputs in ("gaussian", "uniform"):
        req["x"] = (k_in[None], spec.batch * spec.d_in)
    if spec.cotangent:
        req["cot"] = (k_cot[None], spec.batch * spec.width)
    bits = dict(zip(req, bits_many(list(req.values())), strict=True))

    drawn = [  # each (layers, F, *shape)
        _per_key(
            lambda k, b, shape=shape: families_from_bits(spec.w_bases, k, shape, b),
            w_keys[start:stop],
            bits.get(start),
        )
        for start, stop, shape in groups
    ]
    first = jnp.moveaxis(drawn[0][0], 0, 1).reshape(spec.d_in, -1)  # (F, d_in, W) -> (d_in, F·W)
    hidden = drawn[0][1:] if len(drawn) == 1 else drawn[1]  # (depth - 1, F, W, W)
    bias = _per_key(
        lambda k, b: families_from_bits(spec.b_bases, k, (spec.width,), b), b_keys, bits.get("bias")
    )  # (depth, Fb, W)
    x = None
    if spec.inputs in ("gaussian", "uniform"):
        base = Normal() if spec.inputs == "gaussian" else Uniform01()
        x = families_from_bits([base], None, (spec.batch, spec.d_in), bits["x"][0])[0]
    cot = None
    if spec.cotangent:
        cot = families_from_bits([Normal()], None, (spec.batch, spec.width), bits["cot"][0])[0]
    return Draws(first, hidden, bias, x, cot)


def _sharded(body: Callable, mesh: Mesh | None, n_args: int) -> Callable:
    if mesh is None:
        return body
    in_specs = (*(P(),) * (n_args - 1), P(SEEDS))
    return jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=P(SEEDS))


# LLVM's lighter optimization level: the draws are a small part of a sweep's run time, so
# compiling them faster is worth slower code (benchmarks/README.md has the measurement).
_DRAW_OPTIONS = {"xla_backend_optimization_level": 1}


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=_DRAW_OPTIONS)
def _draw_from_table(spec: DrawSpec, mesh: Mesh | None, table: jax.Array) -> Draws:
    def body(table):
        keys = jax.random.wrap_key_data(table)  # (n, K) threefry keys
        return jax.lax.map(functools.partial(_draw_one, spec), keys)

    return _sharded(body, mesh, 1)(table)


@functools.partial(jax.jit, static_argnums=(0, 1), compiler_options=_DRAW_OPTIONS)
def _draw_traced(
    spec: DrawSpec, mesh: Mesh | None, root_seed: jax.Array, seeds: jax.Array
) -> Draws:
    def body(root_seed, seeds):
        keys = jax.vmap(lambda s: _key_table_traced(spec, seed_key(root_seed, s)))(seeds)
        return jax.lax.map(functools.partial(_draw_one, spec), keys)

    return _sharded(body, mesh, 2)(root_seed, seeds)


def draw(spec: DrawSpec, mesh: Mesh | None, root_seed: int, seeds: np.ndarray) -> Draws:
    """Every seed's draws, ``lax.map`` over the seeds (each seed's bits as drawn alone).

    ``root_seed`` is an integer in [0, 2³²) and ``seeds`` the ``(n,)`` seed
    values (``int32``); each seed's key is :func:`jaxinit.sweeping.seed_key`. With
    jax's default threefry keys the key table is made on the host
    (:func:`key_table`); with another PRNG, in the program.
    """
    if _jax_compat.partitionable_threefry():
        return _draw_from_table(spec, mesh, key_table(spec, int(root_seed), seeds))
    return _draw_traced(spec, mesh, np.uint32(root_seed), np.asarray(seeds, np.int32))


# -- the forward pass and its statistics ------------------------------------------------


def _bn(u: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Batch normalization over the batch axis (-2): ``(u - μ) / σ`` and σ."""
    mu = u.mean(-2, keepdims=True)
    sigma = jnp.sqrt(jnp.square(u - mu).mean(-2, keepdims=True) + BN_EPS)
    return (u - mu) / sigma, sigma


def _lsuv_scale(spec: ForwardSpec, m: Members, u: jax.Array, bias: jax.Array) -> jax.Array:
    """Per (seed, member) LSUV factor ``c`` of a layer (1 for non-LSUV members), from ``u = h W``."""
    one = lambda u, b, t, tol, it: layer_scale(u, b, t, tol, it)[0]  # noqa: E731
    per_member = jax.vmap(one, in_axes=(0, 0, 0, 0, 0))  # over members
    per_seed = jax.vmap(per_member, in_axes=(0, 0, None, None, None))  # over lanes
    c = per_seed(u, bias, m.lsuv.target_var, m.lsuv.tol, m.lsuv.max_iter)
    return jnp.where(m.lsuv.enabled, c, 1.0)


def _switch(index: jax.Array, branches: Sequence[Callable], *operands: jax.Array):
    """``lax.switch``, or the one branch itself when there is no choice."""
    if len(branches) == 1:
        return branches[0](*operands)
    return jax.lax.switch(index, branches, *operands)


class _Act(NamedTuple):
    """The selected activation: its function, derivative and statistics' constants (traced)."""

    fn: Callable[[jax.Array], jax.Array]
    dphi: Callable[[jax.Array], jax.Array]
    saturation: tuple | None  # (lo, hi), ±inf where there is no test; None: no activation has one
    hist: tuple  # (lo, hi, bins)


def _select(spec: ForwardSpec, index: jax.Array) -> _Act:
    acts = spec.activations
    fns = [a.fn for a in acts]
    derivs = [lambda z, f=f: jax.jvp(f, (z,), (jnp.ones_like(z),))[1] for f in fns]
    bounds = [a.saturation for a in acts]
    rows = [(-np.inf if lo is None else lo, np.inf if hi is None else hi) for lo, hi in bounds]
    saturation = None
    if any(np.isfinite(rows).any(1)):
        table = jnp.asarray(rows, jnp.float32)[index]
        saturation = (table[0], table[1])
    ranges = jnp.asarray(spec.hist_ranges, jnp.float32)[index]
    return _Act(
        fn=lambda z: _switch(index, fns, z),
        dphi=lambda z: _switch(index, derivs, z),
        saturation=saturation,
        hist=(ranges[0], ranges[1], spec.bins),
    )


class _Layer(NamedTuple):
    """One layer of a tile's forward pass."""

    z: jax.Array  # (S, M, B, W) pre-activations (after batch norm, with it)
    h: jax.Array  # (S, M, B, W) post-activations
    c: jax.Array  # (S, M) LSUV factor (1 for other members)
    sigma: jax.Array | None  # (S, M, 1, W) batch norm's σ; None without it


def _layer(spec: ForwardSpec, act: _Act, m: Members, u: jax.Array, bias: jax.Array) -> _Layer:
    """From ``u = h W`` ``(S, M, B, W)`` to the layer: LSUV factor, bias, norm, activation."""
    c = jnp.ones(u.shape[:2], u.dtype)
    if spec.lsuv:
        c = _lsuv_scale(spec, m, u, bias)
        u = u * c[..., None, None]
    u = u + bias[:, :, None, :]
    sigma = None
    if spec.batchnorm:
        u, sigma = _bn(u)
    return _Layer(u, act.fn(u), c, sigma)


def _stats_of(spec: ForwardSpec, act: _Act, z: jax.Array, h: jax.Array) -> _stats.LayerStats:
    """A layer's statistics in the forward program. The one profiling hook: it is looked up
    at trace time, so ``benchmarks/profile_parts.py`` replaces it (and restores it) to time
    the forward pass without the histogram or the statistics; nothing else patches internals.
    """
    saturation = (None, None) if act.saturation is None else act.saturation
    return _stats.layer_stats(z, h, saturation=saturation, hist=act.hist, cosine=spec.cosine)


class _Layers(NamedTuple):
    """What the backward pass needs of some layers, stacked ``(n, S, M, ...)`` (or of one)."""

    dphi: jax.Array  # (n, S, M, B, W) φ'(z)
    h: jax.Array  # (n, S, M, B, W) post-activations
    z: jax.Array | None  # (n, S, M, B, W) pre-activations after batch norm (with it only)
    sigma: jax.Array | None  # (n, S, M, 1, W) batch norm's σ


class _Pass(NamedTuple):
    """The stored forward pass: the first layer, and the hidden layers with their weights."""

    first: _Layers  # n = 1
    hidden: _Layers  # n = depth - 1
    w: jax.Array  # (depth - 1, S, M, W, W) hidden weights, LSUV factor included

    def at(self, l: int) -> _Layers:
        """Layer ``l`` (0 is the first)."""
        part, i = (self.first, 0) if l == 0 else (self.hidden, l - 1)
        return jax.tree.map(lambda a: a[i], part)


class _First(NamedTuple):
    """The first layer's product, shared by every member of a group of seeds."""

    xz: jax.Array  # (S, B, F, W): x [Z_1 ... Z_F], every family's
    rowsum: jax.Array  # (S, B): x 1, for the shift of W = aZ + b


def _first_product(spec: ForwardSpec, d: Draws, x: jax.Array) -> _First:
    """The first layer's product for every family, and the rows' sums of ``x``."""
    s = d.first.shape[0]
    x = jnp.broadcast_to(x, (s, *x.shape[1:]))
    xz = jnp.einsum("sbd,sdk->sbk", x, d.first).reshape(s, spec.batch, spec.families, spec.width)
    return _First(xz, x.sum(-1))


class _Forward(NamedTuple):
    """A tile's forward pass: its statistics and, with gradients, what the backward pass needs."""

    stats: _stats.LayerStats  # fields (S, M, L, ...)
    stored: _Pass | None  # None without gradients


def _forward_group(spec: ForwardSpec, act: _Act, m: Members, d: Draws, first: _First) -> _Forward:
    """One tile of members of a group of ``lanes`` seeds.

    Without gradients, one ``lax.scan`` runs every layer, the first included
    (its product is made before the scan), so the statistics are compiled
    once, not twice (a copy is tens of XLA:CPU kernels to compile). With
    gradients, the first layer runs before the scan: the pass it stores runs
    faster that way on several host devices (``benchmarks/README.md``).
    """
    depth = spec.depth
    u0 = jnp.einsum("mf,sbfw->smbw", m.first_mix, first.xz)  # each member's a of its family
    if spec.shifted:  # x (aZ + b) = a (x Z) + b (x 1)
        u0 = u0 + m.first_shift[None, :, None, None] * first.rowsum[:, None, :, None]
    bias = jnp.einsum("mf,slfw->slmw", m.bias_mix, d.bias) + m.bias_shift[None, None, :, None]
    bias = jnp.moveaxis(bias, 1, 0)  # (L, S, M, W)
    keep = bool(spec.grad_depths)

    def product(zh, h):  # the next layer's u = h W, and W, from its draws zh (S, F, W, W)
        weights = jnp.einsum("mf,sfij->smij", m.hidden_mix, zh)
        weights = weights + m.hidden_shift[None, :, None, None]
        return jnp.einsum("smbi,smij->smbj", h, weights), weights

    def layer(u, b, weights):  # statistics, and with gradients what the backward pass keeps
        lay = _layer(spec, act, m, u, b)
        out = (_stats_of(spec, act, lay.z, lay.h),)
        if keep:
            z = lay.z if spec.batchnorm else None
            out += (_Layers(act.dphi(lay.z), lay.h, z, lay.sigma),)
            if weights is not None:
                out += (weights * lay.c[..., None, None],)
        return lay.h, out

    def stacked(tree):  # (L, S, M, ...) -> (S, M, L, ...)
        return jax.tree.map(lambda a: jnp.moveaxis(a, 0, 2), tree)

    hidden = jnp.moveaxis(d.hidden, 1, 0)  # (L-1, S, F, W, W)
    if not keep:

        def merged(u, inp):
            l, b = inp
            h, out = layer(u, b, None)
            if depth == 1:
                return u, out
            zh = jax.lax.dynamic_index_in_dim(hidden, jnp.minimum(l, depth - 2), 0, False)
            nxt = jax.lax.cond(l < depth - 1, lambda: product(zh, h)[0], lambda: jnp.zeros_like(u))
            return nxt, out

        _, outs = jax.lax.scan(merged, u0, (jnp.arange(depth), bias))
        return _Forward(stacked(outs[0]), None)

    def step(h, inp):
        zh, b = inp
        u, weights = product(zh, h)
        return layer(u, b, weights)

    h0, out0 = layer(u0, bias[0], None)
    _, outs = jax.lax.scan(step, h0, (hidden, bias[1:]))
    stats = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), out0[0], outs[0])
    first = jax.tree.map(lambda a: a[None], out0[1])
    return _Forward(stacked(stats), _Pass(first, outs[1], outs[2]))


def _backward(pas: _Pass, x: jax.Array, cot: jax.Array, depth: int) -> tuple[jax.Array, jax.Array]:
    r"""Var(∂/∂z_l) and ‖∂/∂W_l‖_F ``(S, M, depth)`` of the depth-``depth`` network.

    The gradient of a layer's (effective, LSUV-rescaled) weights is
    :math:`h_{l-1}^\top \partial u_l`; the first layer's is :math:`x^\top \partial u_1`,
    one matmul for every member. The layers between the top and the first run as one
    reversed ``lax.scan``, so the program (and its compile time) does not grow with the
    depth. Each step reads one stored layer only: it carries :math:`g = \partial u_{l+1}
    W_{l+1}^\top` and :math:`\partial u_{l+1}` down, and finishes layer :math:`l + 1`'s
    weight gradient with :math:`h_l`.
    """

    def through_bn(delta, z, sigma):  # ∂/∂u from ∂/∂z, z = (u - μ)/σ over the batch
        if sigma is None:
            return delta
        # Batch means as a contraction with a ones vector, not a reduction: XLA:CPU splits
        # reductions over threads differently for another device count (bits change with
        # it), a dot's summation order does not change.
        ones = jnp.full((delta.shape[-2],), 1.0 / delta.shape[-2], delta.dtype)
        mean_d = jnp.einsum("smbw,b->smw", delta, ones)[:, :, None]
        mean_dz = jnp.einsum("smbw,b->smw", delta * z, ones)[:, :, None]
        return (delta - mean_d - z * mean_dz) / sigma

    def frob(h, du):  # ‖hᵀ ∂u‖_F per (seed, member)
        grad_w = jnp.einsum("smbi,smbj->smij", h, du)
        return jnp.sqrt(jnp.square(grad_w).sum((-2, -1)))

    def at(lay, g):  # a layer from g = ∂h: Var(∂z) and ∂u
        delta = g * lay.dphi
        return delta.var((-2, -1)), through_bn(delta, lay.z, lay.sigma)

    def step(carry, inp):  # layer l (1 ≤ l < top): g_l = ∂u_{l+1} W_{l+1}ᵀ and ∂u_{l+1} in
        g, du_above = carry
        lay, w = inp  # layer l's stored pass and its weights W_l
        norm_above = frob(lay.h, du_above)  # layer l + 1's weight gradient
        g_var, du = at(lay, g)
        return (jnp.einsum("smbj,smij->smbi", du, w), du), (g_var, norm_above)

    first = pas.at(0)
    g = cot[:, None]  # (S, 1, B, W): the readout's cotangent at h_top
    var_top, norm_mid, var_mid = [], [], []
    if depth > 1:
        top = depth - 1
        var_t, du = at(pas.at(top), g)
        var_top = [var_t]
        g = jnp.einsum("smbj,smij->smbi", du, pas.w[top - 1])
        if depth > 2:  # layers top-1 .. 1, read in place (a slice of the pass is a copy)

            def step_at(carry, i):
                at_i = lambda a: jax.lax.dynamic_index_in_dim(a, i, 0, False)  # noqa: E731
                return step(carry, (jax.tree.map(at_i, pas.hidden), at_i(pas.w)))

            xs = jnp.arange(top - 1)
            (g, du), (gv, gn) = jax.lax.scan(step_at, (g, du), xs, reverse=True)
            var_mid, norm_mid = [jnp.moveaxis(gv, 0, -1)], [jnp.moveaxis(gn, 0, -1)]
        norm_mid = [frob(first.h, du)[..., None], *norm_mid]  # layer 1's, from h_0
    var0, du = at(first, g)
    x = jnp.broadcast_to(x, (du.shape[0], *x.shape[1:]))
    grad_w = jnp.einsum("sbd,smbw->smdw", x, du)
    norm0 = jnp.sqrt(jnp.square(grad_w).sum((-2, -1)))
    g_var = jnp.concatenate([var0[..., None], *var_mid, *(v[..., None] for v in var_top)], -1)
    g_norm = jnp.concatenate([norm0[..., None], *norm_mid], -1)
    return g_var, g_norm


def _run_tile(
    spec: ForwardSpec, act: _Act, m: Members, d: Draws, x: jax.Array, first: _First
) -> _stats.LayerStats:
    stats, pas = _forward_group(spec, act, m, d, first)
    if pas is None:
        return stats
    g_var, g_norm = [], []
    for depth in spec.grad_depths:
        gv, gn = _backward(pas, x, d.cotangent, depth)
        pad = jnp.full((*gv.shape[:2], spec.depth - depth), jnp.nan, gv.dtype)
        g_var.append(jnp.concatenate([gv, pad], -1))
        g_norm.append(jnp.concatenate([gn, pad], -1))
    return stats._replace(grad_var=jnp.stack(g_var, 2), weight_grad_norm=jnp.stack(g_norm, 2))


def _run_group(
    spec: ForwardSpec, index: jax.Array, m: Members, d: Draws, x_shared: jax.Array | None
) -> _stats.LayerStats:
    """One group of seeds: the shared first product, then ``lax.map`` over tiles of members.

    A tile's activations stay in a CPU core's cache through its matmuls and
    statistics (``benchmarks/README.md`` measures the tile sizes).
    """
    act = _select(spec, index)
    x = x_shared[None] if d.x is None else d.x  # (S or 1, B, d_in)
    first = _first_product(spec, d, x)
    n_members = m.first_mix.shape[0]
    if n_members % spec.tile:
        raise ValueError(f"{n_members} members do not fill whole tiles of {spec.tile}")
    tiles = jax.tree.map(lambda a: a.reshape(n_members // spec.tile, spec.tile, *a.shape[1:]), m)
    out = jax.lax.map(lambda mt: _run_tile(spec, act, mt, d, x, first), tiles)

    def untile(a):  # (tiles, S, tile, ...) -> (S, M, ...)
        return jnp.moveaxis(a, 0, 1).reshape(a.shape[1], n_members, *a.shape[3:])

    return jax.tree.map(untile, out)


def _run(
    spec: ForwardSpec, index: jax.Array, m: Members, d: Draws, x_shared: jax.Array | None
) -> _stats.LayerStats:
    """``lax.map`` over groups of ``spec.lanes`` seeds of this device's block."""
    n = d.first.shape[0]
    if n % spec.lanes:
        raise ValueError(f"{n} seeds do not fill whole groups of {spec.lanes} lanes")
    grouped = jax.tree.map(lambda a: a.reshape(n // spec.lanes, spec.lanes, *a.shape[1:]), d)
    out = jax.lax.map(lambda g: _run_group(spec, index, m, g, x_shared), grouped)
    return jax.tree.map(lambda a: a.reshape(n, *a.shape[2:]), out)


@functools.partial(jax.jit, static_argnums=(0, 1))
def forward(
    spec: ForwardSpec,
    mesh: Mesh | None,
    activation: jax.Array,
    members: Members,
    draws: Draws,
    x_shared: jax.Array | None,
) -> _stats.LayerStats:
    """Statistics of every (seed, member) of the block: fields ``(seed, member, layer)``.

    ``activation`` is the index (an int32 scalar) of ``spec.activations`` to run.
    ``hist`` adds a bin axis; with gradients, ``grad_var`` and
    ``weight_grad_norm`` are ``(seed, member, grad_depth, layer)`` (NaN beyond
    each depth). ``x_shared`` is the input array ``(batch, d_in)`` shared by
    every seed, or None when the draws hold each seed's inputs.
    """
    if mesh is None:
        return _run(spec, activation, members, draws, x_shared)
    body = functools.partial(_run, spec)
    specs = (P(), P(), P(SEEDS), P())
    run = jax.shard_map(body, mesh=mesh, in_specs=specs, out_specs=P(SEEDS), check_vma=False)
    return run(activation, members, draws, x_shared)


_PROGRAMS = (_draw_from_table, _draw_traced, forward)


def programs() -> int:
    """How many kernel programs (draw and forward) this process holds compiled.

    The count grows with the shapes a sweep needs (widths, member and seed
    block sizes, device counts), never with its seeds or scale values; tests
    and benchmarks use it to check that.
    """
    return sum(_jax_compat.compiled_count(p) for p in _PROGRAMS)


def clear_programs() -> None:
    """Forget every compiled kernel program (the next sweep compiles again)."""
    for p in _PROGRAMS:
        _jax_compat.clear_compiled(p)
