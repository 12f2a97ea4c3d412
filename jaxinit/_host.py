"""The host: one device per CPU core, its memory and disk, the PRNG in use, the installed
versions and revision.

XLA:CPU runs one program per device, so a single CPU device leaves cores idle
while a sweep's seeds could be split over them. ``JAX_NUM_CPU_DEVICES`` (read
when jax starts its backends) sets the count. The library itself never
changes it; the ``jaxinit`` command and ``sweeps/`` call :func:`use_cpu_cores`
first, and a notebook can too, before its first jax computation.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from jaxinit import _jax_compat

__all__ = [
    "MEMORY_FRACTION",
    "MEMORY_HEADROOM",
    "PACKAGES",
    "DeviceLine",
    "check_memory",
    "device_memory",
    "devices_memory",
    "memory_limit",
    "prng_impl",
    "source_revision",
    "use_cpu_cores",
    "versions",
]

# The packages whose versions a result's provenance records.
PACKAGES = ("jaxinit", "jax", "jaxlib", "flax", "optax", "numpy", "matplotlib")
NOT_INSTALLED = "not installed"
# of a device's memory that a plan may fill: XLA's own workspace, fragmentation and the
# estimates' slack take the rest
MEMORY_HEADROOM = 0.8
MEMORY_FRACTION = 0.5  # of the host's physical memory that one result's arrays may take
_UNKNOWN_HOST_MEMORY = 16 << 30  # where the host does not say


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no sysconf
        return _UNKNOWN_HOST_MEMORY


def memory_limit(fraction: float = MEMORY_FRACTION) -> int:
    """Bytes that one result, or the arrays read back from a file, may take: ``fraction`` of
    the host's physical memory (of 16 GiB where the host does not say)."""
    return int(fraction * _physical_memory())


def device_memory(device: jax.Device | None = None) -> int:
    """Bytes of memory that a plan may count on ``device`` (default: jax's first device).

    An accelerator's is what XLA may allocate there (``memory_stats()["bytes_limit"]``);
    a CPU device's is its share of :func:`memory_limit` (the host's memory is shared by its
    CPU devices and the results). It is the same in every run on the same hardware, so the
    processes of one run, and a resumed run, plan the same chunks; memory that other arrays
    of the process already hold is not subtracted (lower ``memory_budget`` then).
    """
    device = jax.devices()[0] if device is None else device
    if device.platform != "cpu":
        try:
            stats = device.memory_stats() or {}
        except Exception:  # some backends do not implement it: plan as for the host
            stats = {}
        if "bytes_limit" in stats:
            return int(stats["bytes_limit"])
    return memory_limit() // max(1, jax.local_device_count(backend=device.platform))


def devices_memory(devices: Sequence[jax.Device]) -> int:
    """:func:`device_memory` of the smallest of ``devices``: what a plan over them counts on."""
    return min(device_memory(d) for d in devices)


def versions() -> dict[str, str]:
    """Python's version and each of :data:`PACKAGES`' (``"not installed"`` where absent)."""
    out = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = NOT_INSTALLED
    return out


def source_revision() -> dict[str, Any] | None:
    """The git commit jaxinit runs from, and whether its tree had changes, when jaxinit is a
    git checkout (an editable install); None otherwise, or when git is not there."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", "-C", str(root), *a], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "HEAD")
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty}


class DeviceLine(str):
    """What :func:`use_cpu_cores` did, in one line: a ``str`` (the CLI and the scripts print
    it) whose repr is the line itself, so a notebook cell shows it as text."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's display
        printer.text(str(self))


def use_cpu_cores() -> DeviceLine:
    """Asks jax for one CPU device per core unless the user chose; returns a line saying what
    (a :class:`DeviceLine`: a ``str`` that a notebook shows as text, not as a quoted repr).

    Does nothing when ``JAX_NUM_CPU_DEVICES`` is set, when jax has already
    started its backends (the count is fixed from then on) or when the default
    backend is not the CPU.
    """
    cores = os.cpu_count() or 1
    if "JAX_NUM_CPU_DEVICES" in os.environ:
        return DeviceLine(
            f"jaxinit: {os.environ['JAX_NUM_CPU_DEVICES']} CPU device(s), as JAX_NUM_CPU_DEVICES says"
        )
    if _jax_compat.backends_started():
        return _already_started()
    platforms = os.environ.get("JAX_PLATFORMS", "")
    if platforms and "cpu" not in platforms.split(","):
        return DeviceLine(f"jaxinit: platforms {platforms}")
    try:
        jax.config.update("jax_num_cpu_devices", cores)
    except RuntimeError:  # started after all: a jax that backends_started cannot ask
        return _already_started()
    backend = jax.default_backend()
    if backend != "cpu":
        return DeviceLine(f"jaxinit: {len(jax.devices())} {backend} device(s)")
    return DeviceLine(
        f"jaxinit: {cores} CPU device(s), one per core (set JAX_NUM_CPU_DEVICES to choose another count)"
    )


def _already_started() -> DeviceLine:
    return DeviceLine(
        f"jaxinit: {len(jax.devices())} {jax.default_backend()} device(s) (jax already started)"
    )


def prng_impl() -> str:
    """The name of jax's default PRNG (``threefry2x32`` unless configured), for provenance.

    Read from the config: making a key to ask it would compile a program.
    """
    return str(jax.config.jax_default_prng_impl)


def check_memory(who: str, need: int, what: str, advice: str) -> None:
    """Refuses, before anything is allocated, ``need`` bytes over :func:`memory_limit`.

    The ValueError reads ``"{who} needs about N GiB of host memory ({what}), over the
    L GiB limit (50% of this host's memory); {advice}"``.
    """
    limit = memory_limit()
    if need > limit:
        raise ValueError(
            f"{who} needs about {need / 2**30:.1f} GiB of host memory ({what}), over the "
            f"{limit / 2**30:.1f} GiB limit ({MEMORY_FRACTION:.0%} of this host's memory); {advice}"
        )
