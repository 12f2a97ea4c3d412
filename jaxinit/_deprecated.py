"""Modules that moved and fields that were renamed, kept working for one release with a
DeprecationWarning that names the new place or name."""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["moved_module", "renamed_fields"]


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


def renamed_fields(**renamed: str) -> Callable[[type], type]:
    """A class decorator (outermost, above ``@dataclass``) for fields renamed ``old=new``: for
    one release the old name still works as a constructor keyword and as an attribute, each
    use warning with the new name. Giving both names is a TypeError.

    Example:
      >>> import dataclasses
      >>> @renamed_fields(batch="batch_size")
      ... @dataclasses.dataclass(frozen=True, kw_only=True)
      ... class G:
      ...     batch_size: int = 1
      >>> G(batch_size=8).batch_size, [f.name for f in dataclasses.fields(G)]
      (8, ['batch_size'])
    """

    def decorate(cls: type) -> type:
        owner, init = cls.__name__, cls.__init__

        @functools.wraps(init)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            for old, new in renamed.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(
                        f"{owner}: give {new}= only; {old}= is its deprecated name "
                        f"(dataclasses.replace takes {new}= too)"
                    )
                warnings.warn(
                    f"{owner}({old}=...) is deprecated and will be removed in the next "
                    f"release; use {owner}({new}=...)",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            init(self, *args, **kwargs)

        cls.__init__ = __init__
        for old, new in renamed.items():
            setattr(cls, old, _renamed_attribute(owner, old, new))
        return cls

    return decorate


def _renamed_attribute(owner: str, old: str, new: str) -> property:
    def get(self: Any) -> Any:
        warnings.warn(
            f"{owner}.{old} is deprecated and will be removed in the next release; use "
            f"{owner}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(self, new)

    return property(get, doc=f"Deprecated: {new}.")
