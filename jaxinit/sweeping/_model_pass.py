r"""The compiled pass of a model grid: build, re-initialize and measure a user's NNX model.

For every seed ``s`` of a chunk, inside one compiled program:

1. the model is built from the factory with ``nnx.Rngs(fold_in(k, STREAM_MODEL))``,
   ``k = seed_key(root_seed, s)``: every parameter the grid does not set (biases,
   norms, embeddings, kernels a rule keeps) is the seed's own, never shared;
2. each selected kernel ``i`` (its index among all kernels in graph order) gets the
   standardized draws ``Z_f`` of every weight family ``f`` of the grid on its key
   ``layer_keys(k, i)[0]`` (one threefry hash for all kernels), once per seed;
3. for each init of the grid in turn (``lax.map``), its kernels are
   ``W = a·Z_f + b`` with the init's ``(a, b)`` at the kernel's *view*
   (:mod:`jaxinit.models._kernels`): ``init(layer_keys(k, i)[0], view)`` bitwise,
   reshaped to the kernel; the model runs on the inputs with dropout off
   (``deterministic``) and batch norm on batch statistics, and the tap
   (:mod:`jaxinit.sweeping._capture`) records every captured output;
4. each output ``t`` (any rank, batch first) is reduced over everything but the
   model axes to the :class:`~jaxinit.sweeping._stats.LayerStats` schema, as an
   ``(batch, features)`` matrix: its moments fill both ``pre_*`` and ``post_*``
   (a model applies its own activations between captured modules), its
   histogram, dead (exactly 0) and non-finite counts; with gradients, for the
   random readout ``L = Σ y·g`` (``g ~ N(0, 1)`` on ``fold_in(k, STREAM_COTANGENT)``,
   ``y`` the model's output) ``grad_var`` is :math:`\mathrm{Var}(\partial L/\partial t)`
   and ``weight_grad_norm`` :math:`\|\partial L/\partial W\|_F` of the module's kernel
   (NaN for a module without one).

The chunk's seeds are split evenly over the devices (``shard_map``), and on each
run ``lanes`` at a time (``lax.map(batch_size=lanes)``): on XLA:CPU one at
a time, as a per-seed loop but in one program (``vmap`` over models turns each
convolution into a grouped one, 5.8x slower, and attention 3x;
``../shared/peers/any_model``); on accelerators vmapped blocks. With gradients of a
convolution on XLA:CPU, the program has no loop at all (:func:`loop_free`): the inits
one after another and one seed per device per call, the chunk's calls dispatched in turn. Inits' scales,
shifts and seeds are data, so the program depends on the model's structure,
the input shape, the weight families, the number of inits, the chunk and lanes,
never on the seeds or the scales.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec as P

from jaxinit._jax_compat import compile_for
from jaxinit._keys import STREAM_COTANGENT, STREAM_INPUTS, STREAM_MODEL, layer_keys, seed_key
from jaxinit.initializers._bases import Base
from jaxinit.initializers._core import families_many
from jaxinit.models._kernels import KERNEL_TYPES, Kernel, path_str, select
from jaxinit.sweeping._capture import ROOT, tap
from jaxinit.sweeping._kernel import SEEDS
from jaxinit.sweeping._stats import LayerStats, layer_stats

__all__ = ["Layer", "ModelPass", "Structure", "build", "structure"]

# Built once per process: the traced structure of a model, and its compiled programs.
_STRUCTURES: dict[Any, Structure] = {}
_PROGRAMS: dict[Any, Callable] = {}
_PROGRAMS_LOCK = threading.Lock()
STACK_MAX = 4096  # captured outputs of at most this many entries are measured stacked by shape


class Layer(NamedTuple):
    """A captured output: its label, module type, shape (batch first) and the index of its
    module's kernel among all kernels (-1 for a module without one)."""

    name: str
    type: str
    shape: tuple[int, ...]
    kernel: int


class Structure(NamedTuple):
    """What a model grid's program is built from, found once by tracing shapes only."""

    kernels: tuple[Kernel, ...]  # the selected kernels, in graph order
    layers: tuple[Layer, ...]  # the captured outputs, in call order
    output_shape: tuple[int, ...]
    fingerprint: str  # of the model's traced computation (a changed factory differs)


def _view(model: nnx.Module) -> nnx.Module:
    """Dropout off, batch norm on the batch's statistics (a fresh BatchNorm's running
    mean 0 and variance 1 would normalize nothing)."""
    return nnx.view(model, deterministic=True, use_running_average=False, raise_if_not_found=False)


def _kernel_modules(model: nnx.Module) -> list[tuple[str, nnx.Module]]:
    return [(path_str(p), m) for p, m in nnx.iter_modules(model) if isinstance(m, KERNEL_TYPES)]


def _input(spec, key, shape, dtype):
    if spec == "gaussian":
        return jax.random.normal(jax.random.fold_in(key, STREAM_INPUTS), shape, dtype)
    return jax.random.uniform(jax.random.fold_in(key, STREAM_INPUTS), shape, dtype)


def structure(grid) -> Structure:
    """The kernels, captured layers and output shape of ``grid.model``, traced abstractly
    once per factory, rule, capture and input shape (a sweep with other seeds or inits of
    the same model traces nothing)."""
    key = (
        _factory_key(grid.model),
        grid.rule,
        grid.capture,
        tuple(grid.input_shape),
        str(grid.input_dtype),
    )
    with _PROGRAMS_LOCK:
        found = _STRUCTURES.get(key)
    if found is None:
        found = _trace_structure(grid)
        with _PROGRAMS_LOCK:
            _STRUCTURES[key] = found
    return found


def _trace_structure(grid) -> Structure:
    kernels: list[Kernel] = []
    found: dict[str, Any] = {}

    def probe(x):
        model = _view(grid.model(nnx.Rngs(jax.random.key(0))))
        kernels.extend(select(model, grid.rule))
        index = {id(m): i for i, (_, m) in enumerate(_kernel_modules(model))}
        by_path = {path_str(p) or ROOT: m for p, m in nnx.iter_modules(model)}
        with tap(model, select=grid.capture) as outputs:
            y = model(x)
        found["layers"] = tuple(
            Layer(
                o.name,
                o.type,
                tuple(o.value.shape),
                index.get(id(by_path[o.name.split("#")[0]]), -1),
            )
            for o in outputs
        )
        return y

    x = jax.ShapeDtypeStruct(grid.input_shape, grid.input_dtype)
    jaxpr = jax.make_jaxpr(probe)(x)
    y = jaxpr.out_avals[0] if jaxpr.out_avals else None
    if y is None or not hasattr(y, "shape") or len(jaxpr.out_avals) != 1:
        raise TypeError(
            "ModelGrid: the model must return one array (its output); got "
            f"{len(jaxpr.out_avals)} outputs"
        )
    if not found["layers"]:
        raise ValueError("ModelGrid: the capture rule selected no layer output to measure")
    for layer in found["layers"]:
        if layer.shape[0] != grid.input_shape[0]:
            raise ValueError(
                f"ModelGrid: layer {layer.name!r} has shape {layer.shape}, whose first "
                f"axis is not the batch ({grid.input_shape[0]}); captured outputs must be batch first"
            )
    digest = hashlib.sha256(str(jaxpr).encode()).hexdigest()[:16]
    return Structure(tuple(kernels), found["layers"], tuple(y.shape), digest)


class ModelPass(NamedTuple):
    """The static description of one compiled model pass (hashable)."""

    structure: Structure
    bases: tuple[Base, ...]  # the weight families of the grid's inits
    n_inits: int
    chunk: int  # seeds per call (padded)
    lanes: int
    bins: int
    cosine: bool
    gradients: bool
    inputs: str | None  # "gaussian"/"uniform" drawn per seed, or None: the array given
    # no loop in the program (see loop_free): the inits one after another and one seed per
    # device per call; the chunk then runs call by call
    loop_free: bool = False


def loop_free(structure: Structure, gradients: bool, platform: str) -> bool:
    """Whether a model's pass runs without loops: with gradients of a convolution on XLA:CPU,
    where a convolution's gradient with respect to its kernel inside a loop body (``lax.map``,
    ``scan``) is left in a layout XLA:CPU runs with a naive loop, about 7× slower than the
    same program outside a loop (jax 0.10.2: a 3×3 conv of 8 channels on 64 × 28 × 28, 57 ms
    against 7.6 ms; the forward pass runs at the same speed in both)."""
    return (
        gradients and platform == "cpu" and any("Conv" in layer.type for layer in structure.layers)
    )


def _draws(bases, key, kernels: Sequence[Kernel]) -> list[jax.Array]:
    """``(n_families, *view)`` standardized draws of every kernel: the keys in one batched
    derivation, the bits in one threefry for all kernels."""
    if not kernels:
        return []
    index = jnp.asarray([k.index for k in kernels], jnp.int32)
    stacked = jax.vmap(lambda i: layer_keys(key, i)[0])(index)
    keys = [stacked[j] for j in range(len(kernels))]
    return families_many(bases, keys, [k.view for k in kernels])


def _weights(z: list[jax.Array], mix: jax.Array, shift: jax.Array, kernels) -> list[jax.Array]:
    """Each kernel ``Σ_f mix_f · Z_f + b`` (one nonzero ``mix_f``: exactly ``a · Z_f + b``)."""
    out = []
    for i, (zk, k) in enumerate(zip(z, kernels, strict=True)):
        w = mix[i, 0] * zk[0]
        for f in range(1, zk.shape[0]):
            w = w + mix[i, f] * zk[f]
        w = w + shift[i]
        if k.swap:
            w = jnp.swapaxes(w, -1, -2)
        out.append(w.reshape(k.shape))
    return out


def build(spec: ModelPass, make: Callable, capture, devices: Sequence[jax.Device]) -> Callable:
    """The jitted program ``(root_seed, seeds, mix, shift, lo, hi, x) -> LayerStats`` with
    fields ``(n_inits, chunk, layer, ...)``; the chunk's seeds split evenly over ``devices``
    (``shard_map``), each device mapping over its own."""
    st = spec.structure
    selected = {k.index: j for j, k in enumerate(st.kernels)}

    def one_seed(root, seed, mix, shift, lo, hi, x):
        key = seed_key(root, seed)
        model = _view(make(nnx.Rngs(jax.random.fold_in(key, STREAM_MODEL))))
        graphdef, state = nnx.split(model)
        flat = list(nnx.to_flat_state(state))
        where = {p: i for i, (p, _) in enumerate(flat)}
        kernel_at = [
            where[(*p, "kernel")] for p, m in nnx.iter_modules(model) if isinstance(m, KERNEL_TYPES)
        ]
        if spec.inputs is not None:
            x = _input(spec.inputs, key, x.shape, x.dtype)
        z = _draws(spec.bases, key, st.kernels)
        cot = None
        if spec.gradients:
            cot = jax.random.normal(jax.random.fold_in(key, STREAM_COTANGENT), st.output_shape)
        own = [flat[i][1].get_value() for i in kernel_at]

        def forward(ws, probes):
            values = [v.get_value() for _, v in flat]
            for i, w in zip(kernel_at, ws, strict=True):
                values[i] = w
            fresh = [(p, v.replace(val)) for (p, v), val in zip(flat, values, strict=True)]
            m = nnx.merge(graphdef, nnx.from_flat_state(fresh))
            with tap(m, select=capture, probes=probes) as outputs:
                y = m(x)
            loss = jnp.sum(y.astype(jnp.float32) * cot) if cot is not None else jnp.float32(0)
            return loss, [o.value for o in outputs]

        def one_init(coeffs):
            mix_i, shift_i = coeffs
            drawn = _weights(z, mix_i, shift_i, st.kernels)
            ws = [drawn[selected[i]] if i in selected else w for i, w in enumerate(own)]
            hist = (lo, hi, spec.bins)
            if not spec.gradients:
                _, outs = forward(ws, None)
                return _layer_stats(outs, hist, spec.cosine)
            probes = {layer.name: jnp.zeros(layer.shape, jnp.float32) for layer in st.layers}
            (_, outs), (gw, gp) = jax.value_and_grad(forward, argnums=(0, 1), has_aux=True)(
                ws, probes
            )
            nan = jnp.float32(jnp.nan)
            norms = [
                jnp.sqrt(jnp.sum(jnp.square(_matrix(gw[layer.kernel]))))
                if layer.kernel >= 0
                else nan
                for layer in st.layers
            ]
            grad_var = [_matrix(gp[layer.name]).var() for layer in st.layers]
            return _layer_stats(outs, hist, spec.cosine)._replace(
                grad_var=jnp.stack(grad_var), weight_grad_norm=jnp.stack(norms)
            )

        if spec.loop_free:
            return _stacked([one_init((mix[i], shift[i])) for i in range(spec.n_inits)])
        return jax.lax.map(one_init, (mix, shift))

    def local(root, seeds, mix, shift, lo, hi, x):  # (seed, init, layer, ...) on one device
        def per_seed(seed):
            return one_seed(root, seed, mix, shift, lo, hi, x)

        if spec.loop_free:
            return _stacked([per_seed(seeds[j]) for j in range(seeds.shape[0])])
        return jax.lax.map(per_seed, seeds, batch_size=spec.lanes if spec.lanes > 1 else None)

    if len(devices) > 1:  # each device maps over its own block of the chunk's seeds
        mesh = jax.sharding.Mesh(np.array(devices), (SEEDS,))
        specs = (P(), P(SEEDS), P(), P(), P(), P(), P())
        local = jax.shard_map(local, mesh=mesh, in_specs=specs, out_specs=P(SEEDS), check_vma=False)

    def program(root, seeds, mix, shift, lo, hi, x):
        out = local(root, seeds, mix, shift, lo, hi, x)
        return jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), out)  # (init, seed, layer, ...)

    return jax.jit(program)


def _stacked(trees: list) -> Any:
    return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def _matrix(t: jax.Array) -> jax.Array:
    """A captured output (batch first, any rank) or a kernel as a float32 ``(rows, columns)`` matrix."""
    return t.astype(jnp.float32).reshape(t.shape[0], -1)


def _layer_stats(outs: Sequence[jax.Array], hist, cosine: bool) -> LayerStats:
    """The forward statistics of every captured output, stacked ``(layer, ...)``: each as an
    ``(batch, features)`` matrix whose moments fill both ``pre_*`` and ``post_*``, and
    ``nonfinite`` its count of NaN and ±inf entries.

    Compile time grows with the number of reductions in the program, so the outputs of at
    most ``STACK_MAX`` entries are measured stacked by shape (a deep ResNet's blocks: one set
    of reductions for all of them), larger ones each on its own (XLA:CPU ran the stacked
    reductions of the any-model benchmark's Transformer, 256 × 1024 entries per output,
    at half the speed; there the run, not the compile, is what costs). Non-finite entries
    are counted by each output's histogram (``layer_stats(same=True)``), with no branch:
    a branch that read every output kept them all alive to the end of the pass, which
    cost that Transformer 10% of its time. Without a histogram (training's statistics),
    one check for all layers decides whether to count them (a non-finite entry makes its
    layer's mean non-finite): one branch in the program, not one per layer."""
    mats = [_matrix(t) for t in outs]
    measure = functools.partial(
        layer_stats,
        saturation=(None, None),
        hist=hist,
        cosine=cosine,
        same=True,
        nonfinite=hist is not None,
    )
    stats: list[Any] = [None] * len(mats)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, m in enumerate(mats):
        if m.size <= STACK_MAX:
            groups.setdefault(m.shape, []).append(i)
        else:
            stats[i] = measure(m, m)
    for group in groups.values():
        stack = jnp.stack([mats[i] for i in group])
        result = measure(stack, stack)
        for j, i in enumerate(group):
            stats[i] = jax.tree.map(lambda a, j=j: a[j], result)
    stacked = _stacked(stats)
    if hist is not None:
        return stacked

    def count():
        return jnp.stack([jnp.sum(~jnp.isfinite(m), dtype=jnp.int32) for m in mats])

    nonfinite = jax.lax.cond(
        jnp.isfinite(stacked.pre_mean).all(), lambda: jnp.zeros(len(mats), jnp.int32), count
    )
    return stacked._replace(nonfinite=nonfinite)


def program(
    spec: ModelPass, make: Callable, capture, devices: Sequence[jax.Device], args: Sequence[Any]
):
    """The compiled pass for ``spec``, this factory and these devices (an XLA executable,
    compiled ahead of time for ``args``' shapes, so that its memory is known before it runs),
    built once per process. The rule is not part of the key: it acts through
    ``spec.structure.kernels``; the arguments' shapes follow from ``spec``."""
    key = (spec, _factory_key(make), capture, tuple(devices))
    with _PROGRAMS_LOCK:  # one compile at a time: a second thread waits for the first's
        if key not in _PROGRAMS:
            lowered = build(spec, make, capture, devices).lower(*args)
            _PROGRAMS[key] = compile_for(lowered, devices[0].platform)
        return _PROGRAMS[key]


def _factory_key(make: Callable) -> Any:
    """A factory's identity for the program cache: a ``functools.partial`` by its function and
    arguments (a new but equal partial reuses the program), anything else by itself."""
    if isinstance(make, functools.partial):
        try:
            key = ("partial", make.func, make.args, tuple(sorted(make.keywords.items())))
            hash(key)
            return key
        except TypeError:
            pass
    return make


def clear() -> None:
    """Forgets every traced structure and compiled program (the next sweep traces and compiles)."""
    with _PROGRAMS_LOCK:
        _STRUCTURES.clear()
        _PROGRAMS.clear()


def compiled_count() -> int:
    """How many programs the model passes have compiled (one per :class:`ModelPass`, factory
    and device set)."""
    with _PROGRAMS_LOCK:
        return len(_PROGRAMS)


def coefficient_tables(inits, bases, kernels: Sequence[Kernel]) -> tuple[np.ndarray, np.ndarray]:
    """``(mix, shift)``: ``(n_inits, n_kernels, n_families)`` and ``(n_inits, n_kernels)`` float32,
    each init's ``(a, b)`` at each kernel's view, ``a`` at its family's column."""
    from jaxinit.sweeping._plan import _coeffs

    mix = np.zeros((len(inits), len(kernels), max(len(bases), 1)), np.float32)
    shift = np.zeros((len(inits), len(kernels)), np.float32)
    for i, init in enumerate(inits):
        f = bases.index(init.base)
        for j, k in enumerate(kernels):
            a, b = _coeffs(init, k.view)
            mix[i, j, f], shift[i, j] = a, b
    return mix, shift


def families(inits) -> tuple[Base, ...]:
    """The distinct weight families of ``inits``, in order of first appearance."""
    out: list[Base] = []
    for init in inits:
        if init.base not in out:
            out.append(init.base)
    return tuple(out)


def padded(seeds: np.ndarray, size: int) -> np.ndarray:
    """``seeds`` padded to ``size`` by repeating the last (its results are dropped)."""
    return np.concatenate([seeds, np.repeat(seeds[-1:], size - len(seeds))]).astype(np.int32)
