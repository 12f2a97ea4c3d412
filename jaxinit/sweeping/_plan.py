"""Planning a sweep: chunks of seeds, groups of lanes, member blocks within a memory budget,
and the member tables (scales, shifts and families) the compiled pass reads as data."""

from __future__ import annotations

import math
from collections.abc import Sequence
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

__all__ = ["Chunk", "Plan", "default_lanes", "device_list", "hist_edges", "on_accelerator", "plan"]

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
    slab = 4 * lanes * members * grid.batch_size * width
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


class _Budget(NamedTuple):
    """The bytes a sweep may use on each device."""

    group: int  # intermediates of one group of lanes: memory_budget, capped at usable
    usable: int  # MEMORY_HEADROOM of the device
    device: int  # the device's memory


class _MemberBlocks(NamedTuple):
    """The members (init × bias init) split into blocks, one forward call each."""

    ranges: tuple[range, ...]  # member indices of each block; the last may be shorter
    size: int  # members per call (the blocks' common, padded size)
    need: int  # bytes of one group of lanes' intermediates at the widest width


def plan(
    grid: Grid,
    *,
    chunk_size: int | None = None,
    lanes: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    tile: int | None = None,
    device_memory: int | None = None,
    devices: int | Sequence[jax.Device] = 1,
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
      devices: how many devices share a chunk's seeds, or the devices themselves, as
        :func:`sweep` takes them (a list of jax devices): their count, and with
        ``device_memory=None`` the smallest one's memory.
    """
    check_int("sweep: chunk_size (seeds per chunk)", chunk_size, low=1, none=True)
    lanes = check_int("sweep: lanes", default_lanes() if lanes is None else lanes, low=1)
    if isinstance(devices, Sequence) and not isinstance(devices, str):
        listed = device_list(devices)
        if device_memory is None:
            device_memory = devices_memory(listed)
        devices = len(listed)
    budget = _budget(memory_budget, device_memory)
    devices = check_int("sweep: devices", devices, low=1)
    blocks = _member_blocks(grid, lanes, budget)
    tile = _tile(tile, blocks.size)
    draw_specs = tuple(_draw_spec(grid, w) for w in dim_values(grid.width))
    forward_specs = _forward_specs(grid, blocks.size, lanes, tile)
    seeds = _chunk_seeds(grid, chunk_size, lanes, devices, budget, blocks, draw_specs)
    return Plan(_chunks(grid, seeds), draw_specs, forward_specs, blocks.ranges, lanes, seeds)


def device_list(devices: Sequence[jax.Device]) -> list[jax.Device]:
    """``devices`` as a list, checked: a non-empty sequence of jax devices."""
    listed = list(devices)
    if not listed or not all(isinstance(d, jax.Device) for d in listed):
        raise ValueError(
            f"sweep: devices must be a non-empty list of jax devices (jax.devices()); got {devices!r}"
        )
    return listed


def _budget(memory_budget: int, device_memory: int | None) -> _Budget:
    """The memory budget, checked and capped at ``MEMORY_HEADROOM`` of the device's memory."""
    if not isinstance(memory_budget, int) or memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes; got {memory_budget!r}")
    if device_memory is None:
        device_memory = devices_memory(jax.devices()[:1])
    check_int("sweep: device_memory (bytes)", device_memory, low=1)
    usable = int(MEMORY_HEADROOM * device_memory)
    return _Budget(min(memory_budget, usable), usable, device_memory)


def _member_blocks(grid: Grid, lanes: int, budget: _Budget) -> _MemberBlocks:
    """Blocks of members small enough for one group of lanes at the widest width: halved
    until they fit, then evened out (less padding); a ValueError when one member does not."""
    n_members = len(grid.inits) * len(dim_values(grid.bias_inits))
    widest = max(dim_values(grid.width))
    block = n_members
    while block > 1 and _bytes_per_group(grid, widest, lanes, block) > budget.group:
        block = math.ceil(block / 2)
    need = _bytes_per_group(grid, widest, lanes, block)
    if need > budget.group:
        raise ValueError(
            f"one group of {lanes} lane(s) of one network at width {widest} needs about "
            f"{need / 2**20:.1f} MiB, over the memory_budget of {budget.group / 2**20:.1f} MiB "
            f"(at most {MEMORY_HEADROOM:.0%} of the device's {budget.device / 2**30:.2f} GiB); "
            "lower lanes, batch or depth, or raise memory_budget"
        )
    n_blocks = math.ceil(n_members / block)
    block = math.ceil(n_members / n_blocks)
    ranges = tuple(range(b * block, min((b + 1) * block, n_members)) for b in range(n_blocks))
    return _MemberBlocks(ranges, block, need)


def _tile(tile: int | None, block: int) -> int:
    """Members per step of the loop over a block: ``tile`` (None: ``CPU_TILE`` on a CPU, the
    whole block on an accelerator), rounded down to a divisor of ``block``."""
    check_int("sweep: tile (members per step)", tile, low=1, none=True)
    if tile is None:
        tile = block if on_accelerator() else CPU_TILE
    return math.gcd(block, tile)


def _draw_spec(grid: Grid, width: int) -> kernel.DrawSpec:
    """What the draw program of ``width`` makes for each seed."""
    return kernel.DrawSpec(
        w_bases=_family_index(grid.inits)[0],
        b_bases=_family_index(dim_values(grid.bias_inits))[0],
        d_in=grid.d_in,
        width=width,
        depth=max(dim_values(grid.depth)),
        batch=grid.batch_size,
        inputs=grid.inputs if isinstance(grid.inputs, str) else "array",
        cotangent=grid.gradients,
    )


def _forward_specs(
    grid: Grid, members: int, lanes: int, tile: int
) -> tuple[kernel.ForwardSpec, ...]:
    """The forward program of each width, for blocks of ``members``."""
    shifted = any(  # some weight init has b != 0 at some width
        _coeffs(i, shape)[1] != 0
        for i in grid.inits
        for w in dim_values(grid.width)
        for shape in ((grid.d_in, w), (w, w))
    )
    return tuple(
        kernel.ForwardSpec(
            activations=grid.activations,
            hist_ranges=tuple(_hist_range(grid, a) for a in grid.activations),
            bins=grid.bins,
            d_in=grid.d_in,
            width=width,
            depth=max(dim_values(grid.depth)),
            batch=grid.batch_size,
            families=len(_family_index(grid.inits)[0]),
            members=members,
            lanes=lanes,
            tile=tile,
            grad_depths=dim_values(grid.depth) if grid.gradients else (),
            batchnorm=grid.batchnorm,
            cosine=grid.cosine,
            shifted=shifted,
            lsuv=any(isinstance(i.base, Lsuv) for i in grid.inits),
        )
        for width in dim_values(grid.width)
    )


def _chunk_seeds(
    grid: Grid,
    chunk_size: int | None,
    lanes: int,
    devices: int,
    budget: _Budget,
    blocks: _MemberBlocks,
    draw_specs: tuple[kernel.DrawSpec, ...],
) -> int:
    """Seeds per chunk: ``chunk_size`` (or about ``CHUNK_COMBINATIONS`` combinations) in whole
    groups of lanes, no more than the devices hold beside one group's intermediates."""
    n_seeds = len(grid.seeds)
    per_seed = len(grid.activations) * len(grid.inits) * len(dim_values(grid.bias_inits))
    seeds = chunk_size or max(1, CHUNK_COMBINATIONS // per_seed)
    seeds = lanes * math.ceil(min(seeds, n_seeds) / lanes)
    # a chunk's draws and statistics stay on its devices beside one group's intermediates
    seed_bytes = max(_draw_bytes_per_seed(d) for d in draw_specs)
    seed_bytes += _stats_bytes_per_seed(grid, len(blocks.ranges) * blocks.size)
    usable, need = budget.usable, blocks.need
    fit = lanes * devices * ((usable - need) // (seed_bytes * lanes) if usable > need else 0)
    if fit < lanes * devices:
        raise ValueError(
            f"one group of {lanes} lane(s) at width {max(dim_values(grid.width))} needs about "
            f"{need / 2**20:.1f} MiB of intermediates and {lanes * seed_bytes / 2**20:.1f} MiB "
            f"of draws and statistics, over {usable / 2**30:.2f} GiB ({MEMORY_HEADROOM:.0%} of "
            f"the {budget.device / 2**30:.2f} GiB of the device); lower lanes, width, batch, "
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
    return seeds


def _chunks(grid: Grid, seeds: int) -> tuple[Chunk, ...]:
    """Every width's seeds cut into chunks of ``seeds``, in order."""
    n_seeds = len(grid.seeds)
    blocks_of_seeds = [range(s, min(s + seeds, n_seeds)) for s in range(0, n_seeds, seeds)]
    pairs = [(iw, b) for iw in range(len(dim_values(grid.width))) for b in blocks_of_seeds]
    return tuple(Chunk(i, iw, b) for i, (iw, b) in enumerate(pairs))


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
