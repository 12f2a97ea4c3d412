"""jax's persistent compilation cache, on by default, in a user cache directory.

A sweep compiles one program per (activation, width, initializer family),
a few seconds each on a CPU. With the cache a repeated run, in a fresh
process, loads them from disk instead. Importing jaxinit turns it on unless:

- the user has already set ``jax_compilation_cache_dir`` (theirs wins);
- ``JAXINIT_COMPILATION_CACHE=0`` is set in the environment.

The directory is ``$JAXINIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxinit/xla``,
else ``~/.cache/jaxinit/xla``.
"""

from __future__ import annotations

import os
import pathlib

import jax


def cache_dir() -> pathlib.Path:
    """Where jaxinit keeps compiled programs."""
    if os.environ.get("JAXINIT_CACHE_DIR"):
        return pathlib.Path(os.environ["JAXINIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jaxinit" / "xla"


def enable_compilation_cache() -> pathlib.Path | None:
    """Turns the persistent cache on; returns its directory, or None if left off."""
    if os.environ.get("JAXINIT_COMPILATION_CACHE", "1").lower() in ("0", "false", "no", "off"):
        return None
    if jax.config.jax_compilation_cache_dir:
        return pathlib.Path(jax.config.jax_compilation_cache_dir)
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # our programs take seconds to compile; cache anything over a tenth of one
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return path
