"""Modules that moved, kept importable for one release with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["moved_module"]


def moved_module(old: str, new: str, public: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old``, whose names now live in ``new``: each access
    warns, naming where to import the name from (``public`` when it exports it)."""

    def __getattr__(name: str) -> Any:
        module = importlib.import_module(new)
        if name.startswith("__") or not hasattr(module, name):
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        exported = name in getattr(importlib.import_module(public), "__all__", ())
        where = f"{public}.{name}" if exported else f"{public} (it has no public {name})"
        warnings.warn(
            f"{old} moved into {public} and will be removed in the next release; use {where}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(module, name)

    return __getattr__
