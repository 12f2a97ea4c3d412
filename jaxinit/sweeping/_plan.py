"""Planning a sweep: chunks of seeds, groups of lanes, member blocks within a memory budget,
and the member tables (scales, shifts and families) the compiled pass reads as data."""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_int
from jaxinit._host import MEMORY_HEADROOM, devices_memory
from jaxinit.initializers._bases import Lsuv
from jaxinit.sweeping import _kernel as kernel
from jaxinit.sweeping import _stats
from jaxinit.sweeping._grid import Grid, dim_values, float32_edges

__all__ = ["Chunk", "Plan", "default_lanes", "hist_edges", "on_accelerator", "plan"]

# Seeds per group of lanes: a CPU runs one seed (its members batched) at a time
# fastest; accelerators want wide batches.
CPU_LANES, ACCELERATOR_LANES = 1, 16
# Members per step of the kernel's loop over members: on a CPU a tile's activations stay in
# a core's cache (see jaxinit.kernel._run_group); accelerators take the whole block at once.
CPU_TILE = 1
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of intermediates one group of lanes may use
CHUNK_COMBINATIONS = 4096  # combinations per chunk when not told (about a second on a CPU)
HIST_DEFAULT_HALF_RANGE = 3.0  # histogram range on an unbounded side


def on_accelerator() -> bool:
    """Whether sweeps plan for an accelerator (GPU, TPU): jax's default backend is not the CPU."""
    return jax.default_backend() != "cpu"


def default_lanes() -> int:
    """Seeds per group of lanes when not told: 1 on CPU, 16 on GPU and TPU."""
    return ACCELERATOR_LANES if on_accelerator() else CPU_LANES


def hist_edges(grid: Grid, activation) -> np.ndarray:
    """The histogram edges (float32) of an activation's post-activations in this grid."""
    return float32_edges(*_hist_range(grid, activation), grid.bins)


def _hist_range(grid: Grid, activation) -> tuple[float, float]:
    if grid.hist_range is not None:
        lo, hi = grid.hist_range
    else:
        lo, hi = activation.bounds
        lo = lo if math.isfinite(lo) else -HIST_DEFAULT_HALF_RANGE
        hi = hi if math.isfinite(hi) else HIST_DEFAULT_HALF_RANGE
    return float(np.float32(lo)), float(np.float32(hi))


class Chunk(NamedTuple):
    """A checkpointed unit of work: one width and a contiguous block of seeds."""

    index: int  # position in the plan
    width: int  # index into dim_values(grid.width)
    seeds: range  # indices into grid.seeds

    @property
    def name(self) -> str:
        return f"w{self.width:02d}-s{self.seeds.start:09d}"


class Plan(NamedTuple):
    """Everything a sweep of a grid compiles and runs, decided before anything runs."""

    chunks: tuple[Chunk, ...]
    draw_specs: tuple[kernel.DrawSpec, ...]  # per width
    forward_specs: tuple[kernel.ForwardSpec, ...]  # per width
    member_blocks: tuple[range, ...]  # member (init × bias init) ranges, one forward call each
    lanes: int
    chunk_seeds: int


def _family_index(objs) -> tuple[tuple, list[int]]:
    bases = tuple(dict.fromkeys(o.base for o in objs))
    return bases, [bases.index(o.base) for o in objs]


def _bytes_per_group(grid: Grid, width: int, lanes: int, members: int) -> int:
    """Peak intermediates of one group of lanes: activations (stored for the backward pass)."""
    depth = max(dim_values(grid.depth))
    slab = 4 * lanes * members * grid.batch * width
    stored = 2 * depth + 6 if grid.gradients else 6
    weights = 4 * lanes * members * (width * (width + grid.d_in)) * (depth if grid.gradients else 2)
    return slab * stored + weights


def _draw_bytes_per_seed(spec: kernel.DrawSpec) -> int:
    """Device memory of one seed's draws (:class:`jaxinit.kernel.Draws`)."""
    f, fb, w = len(spec.w_bases), len(spec.b_bases), spec.width
    floats = spec.d_in * f * w + (spec.depth - 1) * f * w * w + spec.depth * fb * w
    floats += spec.batch * spec.d_in if spec.inputs != "array" else 0
    floats += spec.batch * w if spec.cotangent else 0
    return 4 * floats


def _stats_bytes_per_seed(grid: Grid, members: int) -> int:
    """Device memory of one seed's statistics, every activation's call held until fetched."""
    depth = max(dim_values(grid.depth))
    n_depths = len(dim_values(grid.depth)) if grid.gradients else 0
    per_layer = 4 * (len(_stats.LAYER_FIELDS) + 2 * n_depths + grid.bins + 3)
    return len(grid.activations) * members * depth * per_layer


def plan(
    grid: Grid,
    *,
    chunk_size: int | None = None,
    lanes: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    tile: int | None = None,
    device_memory: int | None = None,
    devices: int = 1,
) -> Plan:
    """The programs and chunks a sweep of ``grid`` runs.

    Args:
      chunk_size: seeds per chunk (rounded up to whole groups of lanes);
        None takes enough for about ``CHUNK_COMBINATIONS`` combinations.
      lanes: seeds per group of lanes; None takes :func:`default_lanes`.
      memory_budget: bytes of intermediates one group of lanes may use; the
        members (init × bias init) are split into blocks that fit, and a grid
        in which one member does not fit raises before anything runs.
      tile: members per step of the kernel's loop over a block's members
        (rounded down to a divisor of the block); None: ``CPU_TILE`` on a CPU,
        the whole block on an accelerator. It can change a combination's last
        bits (the matmuls' batching), never more.
      device_memory: bytes of each device (None: :func:`jaxinit._host.device_memory` of
        jax's first device: an accelerator's own, a CPU device's share of half the host's
        memory; the same in every run on the same hardware). ``MEMORY_HEADROOM`` of it may be
        used: ``memory_budget`` is capped there, and a chunk holds no more seeds than
        their draws and statistics fit beside one group's intermediates.
      devices: how many devices share a chunk's seeds.
    """
    check_int("sweep: chunk_size (seeds per chunk)", chunk_size, low=1, none=True)
    lanes = check_int("sweep: lanes", default_lanes() if lanes is None else lanes, low=1)
    if not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}")
    if device_memory is None:
        device_memory = devices_memory(jax.devices()[:1])
    check_int("sweep: device_memory (bytes)", device_memory, low=1)
    devices = check_int("sweep: devices", devices, low=1)
    usable = int(MEMORY_HEADROOM * device_memory)
    memory_budget = min(memory_budget, usable)
    n_members = len(grid.inits) * len(dim_values(grid.bias_inits))
    widest = max(dim_values(grid.width))
    block = n_members
    while block > 1 and _bytes_per_group(grid, widest, lanes, block) > memory_budget:
        block = math.ceil(block / 2)
    need = _bytes_per_group(grid, widest, lanes, block)
    if need > memory_budget:
        raise ValueError(
            f"one group of {lanes} lane(s) of one network at width {widest} needs about "
            f"{need / 2**20:.1f} MiB, over the memory_budget of {memory_budget / 2**20:.1f} MiB "
            f"(at most {MEMORY_HEADROOM:.0%} of the device's {device_memory / 2**30:.2f} GiB); "
            "lower lanes, batch or depth, or raise memory_budget"
        )
    n_blocks = math.ceil(n_members / block)
    block = math.ceil(n_members / n_blocks)  # even blocks: less padding
    check_int("sweep: tile (members per step)", tile, low=1, none=True)
    if tile is None:
        tile = block if on_accelerator() else CPU_TILE
    tile = math.gcd(block, tile)
    blocks = tuple(range(b * block, min((b + 1) * block, n_members)) for b in range(n_blocks))
    w_bases, _ = _family_index(grid.inits)
    b_bases, _ = _family_index(dim_values(grid.bias_inits))
    depth = max(dim_values(grid.depth))
    shifted = any(
        _coeffs(i, shape)[1] != 0
        for i in grid.inits
        for w in dim_values(grid.width)
        for shape in ((grid.d_in, w), (w, w))
    )
    lsuv = any(isinstance(i.base, Lsuv) for i in grid.inits)
    draw_specs, forward_specs = [], []
    for width in dim_values(grid.width):
        draw_specs.append(
            kernel.DrawSpec(
                w_bases=w_bases,
                b_bases=b_bases,
                d_in=grid.d_in,
                width=width,
                depth=depth,
                batch=grid.batch,
                inputs=grid.inputs if isinstance(grid.inputs, str) else "array",
                cotangent=grid.gradients,
            )
        )
        forward_specs.append(
            kernel.ForwardSpec(
                activations=grid.activations,
                hist_ranges=tuple(_hist_range(grid, a) for a in grid.activations),
                bins=grid.bins,
                d_in=grid.d_in,
                width=width,
                depth=depth,
                batch=grid.batch,
                families=len(w_bases),
                members=block,
                lanes=lanes,
                tile=tile,
                grad_depths=dim_values(grid.depth) if grid.gradients else (),
                batchnorm=grid.batchnorm,
                cosine=grid.cosine,
                shifted=shifted,
                lsuv=lsuv,
            )
        )
    n_seeds = len(grid.seeds)
    per_seed = len(grid.activations) * n_members
    seeds = chunk_size or max(1, CHUNK_COMBINATIONS // per_seed)
    seeds = lanes * math.ceil(min(seeds, n_seeds) / lanes)
    # a chunk's draws and statistics stay on its devices beside one group's intermediates
    seed_bytes = max(_draw_bytes_per_seed(d) for d in draw_specs)
    seed_bytes += _stats_bytes_per_seed(grid, n_blocks * block)
    fit = lanes * devices * ((usable - need) // (seed_bytes * lanes) if usable > need else 0)
    if fit < lanes * devices:
        raise ValueError(
            f"one group of {lanes} lane(s) at width {widest} needs about {need / 2**20:.1f} MiB "
            f"of intermediates and {lanes * seed_bytes / 2**20:.1f} MiB of draws and statistics, "
            f"over {usable / 2**30:.2f} GiB ({MEMORY_HEADROOM:.0%} of the "
            f"{device_memory / 2**30:.2f} GiB of the device); lower lanes, width, batch, "
            "depth or the number of inits"
        )
    if seeds > fit:
        if chunk_size is not None:
            raise ValueError(
                f"sweep: chunk_size={chunk_size} seeds' draws need about "
                f"{seeds * seed_bytes / devices / 2**30:.2f} GiB per device, over the "
                f"{usable / 2**30:.2f} GiB the device has for them; at most {fit} seeds fit"
            )
        seeds = fit
    blocks_of_seeds = [range(s, min(s + seeds, n_seeds)) for s in range(0, n_seeds, seeds)]
    pairs = [(iw, b) for iw in range(len(dim_values(grid.width))) for b in blocks_of_seeds]
    chunks = tuple(Chunk(i, iw, b) for i, (iw, b) in enumerate(pairs))
    return Plan(chunks, tuple(draw_specs), tuple(forward_specs), blocks, lanes, seeds)


def _coeffs(init, shape) -> tuple[float, float]:
    """``(a, b)`` of ``init`` at ``shape`` as float32 numbers, with a=1, b=0 for None."""
    a, b = init.coeffs(tuple(shape), jnp.dtype(jnp.float32))
    return (1.0 if a is None else float(a)), (0.0 if b is None else float(b))


def _members(grid: Grid, width: int, block: range, size: int) -> kernel.Members:
    """The coefficient rows of members ``block`` (padded to ``size`` by repeating the last)."""
    w_bases, w_fam = _family_index(grid.inits)
    b_bases, b_fam = _family_index(dim_values(grid.bias_inits))
    kb = len(dim_values(grid.bias_inits))
    ids = list(block) + [block[-1]] * (size - len(block))
    coefficients = [f for f in kernel.Members._fields if f != "lsuv"]
    rows = {k: [] for k in coefficients}
    weight_bases = []
    for m in ids:
        ii, ib = divmod(m, kb)
        init, bias = grid.inits[ii], dim_values(grid.bias_inits)[ib]
        for name, shape, fam, n_fam, obj in (
            ("first", (grid.d_in, width), w_fam[ii], len(w_bases), init),
            ("hidden", (width, width), w_fam[ii], len(w_bases), init),
            ("bias", (width,), b_fam[ib], len(b_bases), bias),
        ):
            a, b = _coeffs(obj, shape)
            mix = np.zeros(n_fam, np.float32)
            mix[fam] = a
            rows[f"{name}_mix"].append(mix)
            rows[f"{name}_shift"].append(np.float32(b))
        weight_bases.append(init.base)
    return kernel.Members(
        **{k: np.stack(rows[k]).astype(np.float32) for k in coefficients},
        lsuv=kernel.lsuv_members(weight_bases),
    )
