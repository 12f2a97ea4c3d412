"""Everything jaxinit takes from jax beyond its public API, in one module.

jaxinit leans on a few things jax does not promise: the layout of its threefry
keys and counters, the threefry hash primitive, how its samplers turn random bits
into floats, a jitted function's count of compiled programs, whether its
backends have started, and the name and values of XLA:CPU's library-fusion option
(:func:`compile_for`). Each is here and nowhere else, with why the public API
does not serve and what happens on a jax that lacks it (a fallback, or an error
naming the jax version and what to do). ``tests/test_jax_compat.py`` checks each
against jax's public behaviour; when a jax release changes one, a test there fails
and names it.

The threefry-2x32 hash itself (Salmon et al. 2011, "Parallel random numbers: as
easy as 1, 2, 3") is an algorithm, not a jax internal: :mod:`jaxinit._threefry`
computes it in NumPy. How jax lays its keys and counters over that hash is jax's
own, and is written down here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit import _threefry

__all__ = [
    "backends_started",
    "clear_compiled",
    "compile_for",
    "compiled_count",
    "host_fold_in",
    "host_key_data",
    "normal_from_bits",
    "partitionable_threefry",
    "threefry_bits",
    "threefry_hash_available",
    "truncated_normal_from_bits",
    "uniform_from_bits",
]

THREEFRY = "threefry2x32"


def _missing(what: str, advice: str) -> RuntimeError:
    """The error for an internal that this jax no longer has: names it, the jax version
    and what to do."""
    return RuntimeError(
        f"jaxinit needs {what}, which jax {jax.__version__} does not have. {advice} "
        "Install a jax release that has it (the one jaxinit's CI tests), or report it to "
        "jaxinit; tests/test_jax_compat.py shows which jax internal changed"
    )


# -- threefry keys and counters ----------------------------------------------------------
#
# Why not the public API: a sweep derives a few keys per seed (one per stream, layer and
# draw). jax.random.fold_in does that in a compiled program, one threefry hash per
# derivation level, and XLA:CPU compiles each hash into kernels of its own; NumPy does it
# on the host in microseconds with nothing to compile. Doing so needs jax's layout of keys
# and counters over the hash, which jax does not document:
#
# - jax.random.key(seed), seed in [0, 2**32), is the pair (0, seed) (jax's threefry_seed:
#   the high and low 32-bit words of the seed);
# - jax.random.fold_in(key, d) is both words of the hash of the counter pair (0, d);
# - with the partitionable layout (jax_threefry_partitionable, jax's default), entry j of
#   jax.random.bits(key, (n,), uint32) is the xor of the two words of the hash of (0, j)
#   (j < 2**32), whatever n is.
#
# Fallback: under another PRNG or the older counter layout, partitionable_threefry() is
# False and the callers derive keys and bits with jax.random in the program (the same
# bits, slower to compile).


def _config(name: str, default: Any) -> Any:
    """jax's config flag ``name``, or ``default`` where this jax has no such flag."""
    return getattr(jax.config, name, default)


def partitionable_threefry(keys: jax.Array | None = None) -> bool:
    """Whether ``keys`` (by default, the keys jax makes now) are threefry-2x32 keys drawn with
    the partitionable counter layout: the layout :func:`host_fold_in`, :func:`host_key_data`
    and :func:`threefry_bits` assume.

    False under another PRNG (``jax.default_prng_impl("rbg")``), under
    ``jax.threefry_partitionable(False)`` and on a jax without the flag.
    """
    if keys is None:
        impl = str(_config("jax_default_prng_impl", ""))
    else:
        impl = str(jax.random.key_impl(keys))
    return impl == THREEFRY and bool(_config("jax_threefry_partitionable", False))


def host_key_data(seed) -> np.ndarray:
    """The raw data ``(..., 2)`` of ``jax.random.key(seed)`` for non-negative integer seeds
    < 2³², made in NumPy.

    Example:
      >>> host_key_data(7).tolist()
      [0, 7]
    """
    seed = np.asarray(seed)
    if seed.dtype.kind not in "iu" or (seed < 0).any() or (seed >= 2**32).any():
        raise ValueError(f"seeds must be integers in [0, 2**32); got {seed!r}")
    return np.stack([np.zeros(seed.shape, np.uint32), seed.astype(np.uint32)], -1)


def host_fold_in(keys: np.ndarray, data) -> np.ndarray:
    """``jax.random.fold_in`` on raw key data ``(..., 2)`` and integer data (broadcast), in
    NumPy: the threefry hash of the counters ``(0, data)``."""
    keys = np.asarray(keys, np.uint32)
    data = np.asarray(data).astype(np.int64).astype(np.uint32)  # jax wraps to uint32 the same way
    o1, o2 = _threefry.hash2x32(keys[..., 0], keys[..., 1], np.zeros_like(data), data)
    shape = np.broadcast_shapes(keys.shape[:-1], np.shape(data))
    return np.stack([o1, o2], -1).reshape(*shape, 2)


# Why not the public API: jax.random.bits hashes one key's counters per call, so a program
# that draws for many keys compiles one hash per draw. Hashing every key's counters in one
# call of the threefry primitive keeps each draw's bits and compiles one hash. The primitive
# is exported by jax.extend.random, jax's API for extensions, which makes no stability
# promise. Fallback: where it is missing, threefry_hash_available() is False and callers
# draw with jax.random.bits, one key at a time.


@functools.cache
def _threefry_primitive() -> Any:
    """jax's threefry-2x32 primitive, or None where this jax does not export it.

    Imported on first use: ``jax.extend`` stays out of ``import jaxinit``.
    """
    try:
        from jax.extend.random import threefry2x32_p
    except ImportError:
        return None
    return threefry2x32_p


def threefry_hash_available() -> bool:
    """Whether this jax exports the threefry primitive :func:`threefry_bits` binds."""
    return _threefry_primitive() is not None


def threefry_bits(k1: jax.Array, k2: jax.Array, counters: jax.Array) -> jax.Array:
    """Entry ``counters[i]`` of ``jax.random.bits(key_i, (n,), uint32)`` for every ``i``, where
    ``key_i`` has raw data ``(k1[i], k2[i])``: one threefry hash over every counter.

    The keys must be :func:`partitionable_threefry`; ``k1``, ``k2`` and ``counters`` are
    ``uint32`` arrays of one shape.
    """
    primitive = _threefry_primitive()
    if primitive is None:
        raise _missing(
            "jax.extend.random.threefry2x32_p (jax's threefry hash)",
            "Check threefry_hash_available() first: without it, draw with jax.random.bits.",
        )
    b1, b2 = primitive.bind(k1, k2, jnp.zeros_like(counters), counters)
    return b1 ^ b2


# -- floats from random bits ----------------------------------------------------------------
#
# Why not the public API: jax.random.uniform, normal and truncated_normal take a key, and
# each draws its own bits. A sweep draws every family from the same 32 bits per entry (one
# threefry pass for all of them, jaxinit.initializers._core.draw_families), so it needs the
# samplers' step from bits to floats, which jax keeps private (jax._src.random.core:
# _uniform, _normal_real, _truncated_normal). Written once here, float32 only, bit for bit
# jax's. No fallback: these call only public jax.lax operations; if jax changes its
# samplers, the shared draws stop being bitwise jax's and tests/test_jax_compat.py says so.

_F32_MANTISSA = np.finfo(np.float32).nmant  # 23
_ONE_BITS = np.array(1.0, np.float32).view(np.uint32)  # the exponent of 1.0, mantissa 0
_SQRT2 = np.float32(np.sqrt(2))


def _f32(x) -> Any:
    """``x`` as float32: NumPy for a Python number, as given for a (float32) jax array."""
    return x if isinstance(x, jax.Array) else np.float32(x)


def uniform_from_bits(bits: jax.Array, minval=0.0, maxval=1.0) -> jax.Array:
    """``jax.random.uniform(key, shape, float32, minval, maxval)`` from
    ``jax.random.bits(key, shape, uint32)``.

    The high 23 bits become the mantissa of a float with 1.0's exponent, a float
    uniform on [1, 2); minus 1 it is uniform on [0, 1) in steps of 2⁻²³, then
    scaled to [minval, maxval) and kept at or above ``minval``.
    """
    mantissa = (bits >> np.uint32(32 - _F32_MANTISSA)) | _ONE_BITS
    floats = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - np.float32(1.0)
    minval, maxval = _f32(minval), _f32(maxval)
    return jnp.maximum(minval, floats * (maxval - minval) + minval)


def normal_from_bits(bits: jax.Array) -> jax.Array:
    """``jax.random.normal(key, shape, float32)`` from ``jax.random.bits(key, shape, uint32)``:
    inverse-CDF sampling, ``√2 · erf⁻¹(u)`` with ``u`` uniform on (-1, 1)."""
    lo = np.nextafter(np.float32(-1.0), np.float32(0.0))
    return _SQRT2 * jax.lax.erf_inv(uniform_from_bits(bits, lo, 1.0))


def truncated_normal_from_bits(bits: jax.Array, lower: float, upper: float) -> jax.Array:
    """``jax.random.truncated_normal(key, lower, upper, shape, float32)`` from
    ``jax.random.bits(key, shape, uint32)``: ``√2 · erf⁻¹(u)`` with ``u`` uniform between
    ``erf(lower/√2)`` and ``erf(upper/√2)``, clipped into the open interval (lower, upper)."""
    lower, upper = np.float32(lower), np.float32(upper)
    a, b = jax.lax.erf(lower / _SQRT2), jax.lax.erf(upper / _SQRT2)
    out = _SQRT2 * jax.lax.erf_inv(uniform_from_bits(bits, a, b))
    return jnp.clip(
        out, jnp.nextafter(lower, np.float32(np.inf)), jnp.nextafter(upper, np.float32(-np.inf))
    )


# -- compiled programs ----------------------------------------------------------------------
#
# Why not the public API: jax has no public count of the programs a jitted function holds
# compiled; jaxinit.sweeping._kernel.programs() reports it so that tests and benchmarks can check a
# sweep compiles per shape, never per seed or scale. The count is the jitted function's
# private _cache_size(). Fallback: none (a count cannot be had another way); a clear error.
# Clearing one function's programs is its clear_cache(), a method jax sets on jitted
# functions but does not list in its jax.stages.Wrapped protocol; where it is missing,
# jax.clear_caches() (public) clears every function's.


def compiled_count(fn: Callable) -> int:
    """How many programs the jitted function ``fn`` holds compiled (one per distinct
    static arguments and input shapes, dtypes and shardings).

    Example:
      >>> f = jax.jit(lambda x: x + 1)
      >>> _ = f(1.0); _ = f(2.0); _ = f(jnp.ones(3))
      >>> compiled_count(f)
      2
    """
    size = getattr(fn, "_cache_size", None)
    if size is None:
        raise _missing(
            f"the private _cache_size() of jitted functions (to count {fn!r:.60}'s programs)",
            "Nothing else in jaxinit needs it: sweeps run, only the count is unavailable.",
        )
    return size()


def clear_compiled(fn: Callable) -> None:
    """Forgets the programs the jitted function ``fn`` holds compiled (on a jax without a
    per-function ``clear_cache``, every function's)."""
    clear = getattr(fn, "clear_cache", None)
    if clear is None:
        jax.clear_caches()
    else:
        clear()


# -- backends -------------------------------------------------------------------------------
#
# Why not the public API: jax fixes the CPU device count (jax_num_cpu_devices) when its
# backends start, and asking it anything public (jax.devices(), jax.default_backend())
# starts them. jaxinit._host.use_cpu_cores asks before choosing the count, so it reads
# jax._src.xla_bridge.backends_are_initialized(). Fallback: where that is missing,
# backends_started() answers False, and use_cpu_cores learns the truth from the
# RuntimeError jax raises when jax_num_cpu_devices changes after the backends started.


def _backends_probe() -> Callable[[], bool] | None:
    """jax's own check whether its backends have started, or None where this jax lacks it."""
    try:
        from jax._src import xla_bridge
    except ImportError:
        return None
    return getattr(xla_bridge, "backends_are_initialized", None)


def backends_started() -> bool:
    """Whether jax has started its backends (any computation, ``jax.devices()``, ...); asks
    without starting them. False where this jax gives no way to ask (see above)."""
    probe = _backends_probe()
    return False if probe is None else bool(probe())


# XLA:CPU's library fusions (XNNPACK's successor, "YNN"): by default it also takes each
# convolution as its own fusion, which ran the any-model CNN's convolutions about 3× slower
# than XLA's own (Eigen) convolution at (256, 8, 8, 32) 3×3 once the convolution's output
# has a second user (a captured layer's statistics); XLA then keeps its own when this list
# leaves it out. The list is XLA's default (reductions, dots, convolutions) less
# convolutions: tests/test_jax_compat.py checks that it is, on the jax installed.
CPU_LIBRARY_FUSIONS = ("LIBRARY_FUSION_TYPE_REDUCE", "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT")
_CPU_LIBRARY_OPTION = "xla_cpu_experimental_ynn_fusion_type"


def compile_for(lowered: Any, platform: str) -> Any:
    """``lowered.compile()``, on CPU without XLA's library convolutions (see
    :data:`CPU_LIBRARY_FUSIONS`); a jax whose XLA lacks the option compiles with its
    defaults (the same numbers to rounding, perhaps slower)."""
    if platform != "cpu":
        return lowered.compile()
    try:
        return lowered.compile(
            compiler_options={_CPU_LIBRARY_OPTION: ",".join(CPU_LIBRARY_FUSIONS)}
        )
    except jax.errors.JaxRuntimeError as err:
        if _CPU_LIBRARY_OPTION not in str(err):
            raise
        return lowered.compile()
