"""The one place for argument checks that several modules share.

The policy everywhere: a wrong type is a TypeError, a wrong value a ValueError, and
the message names the bad value, the valid choices, and the closest match where
there is one (``Did you mean 'he_normal'?``).
"""

from __future__ import annotations

import difflib
import math
import numbers
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "check_bool",
    "check_choice",
    "check_int",
    "check_path",
    "check_real",
    "closest_hint",
    "is_list",
]


def closest_hint(word: Any, choices: Iterable[Any]) -> str:
    """`` Did you mean 'x'?`` for the choice whose text is closest to ``word``, or ``""``.

    Example:
      >>> closest_hint("he_nromal", ["he_normal", "glorot_uniform"])
      " Did you mean 'he_normal'?"
    """
    by_text = {str(c): c for c in choices}
    match = difflib.get_close_matches(str(word), list(by_text), n=1, cutoff=0.5)
    return f" Did you mean {by_text[match[0]]!r}?" if match else ""


def is_list(value: Any) -> bool:
    """Whether a grid setting is a list of values (a dim) rather than one value: any
    sequence but a string.

    Example:
      >>> is_list([5, 10]), is_list((5,)), is_list(5), is_list("he_normal")
      (True, True, False, False)
    """
    return not isinstance(value, str) and isinstance(value, Sequence)


def check_bool(name: str, value: Any, *, none: bool = False) -> bool | None:
    """``value`` if it is True or False (or None when ``none``); else a TypeError.

    Example:
      >>> check_bool("gradients", True)
      True
    """
    if value is None and none:
        return None
    if not isinstance(value, bool):
        choices = "True, False or None" if none else "True or False"
        raise TypeError(f"{name} must be {choices}; got {value!r}")
    return value


def check_int(name: str, value: Any, *, low: int = 1, none: bool = False) -> int | None:
    """``value`` as an int if it is an integer >= ``low`` (or None when ``none``).

    A bool, a float or a string is a TypeError; an integer below ``low`` a ValueError.

    Example:
      >>> check_int("depth", 3)
      3
    """
    if value is None and none:
        return None
    what = f"{name} must be an int >= {low}{' or None' if none else ''}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(what)
    if value < low:
        raise ValueError(what)
    return int(value)


def check_real(name: str, value: Any, *, low: float | None = None, strict: bool = False) -> float:
    """``value`` as a float if it is a finite real number >= ``low`` (> ``low`` when ``strict``).

    A bool, a string or another non-number is a TypeError; a NaN, an infinity or
    a number out of range a ValueError.

    Example:
      >>> check_real("stddev", 0.5, low=0.0)
      0.5
    """
    bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
    what = f"{name} must be a finite real number{bound}; got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(what)
    ok = math.isfinite(value) and (low is None or (value > low if strict else value >= low))
    if not ok:
        raise ValueError(what)
    return float(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``; else an error naming them and the closest.

    A non-string where the choices are strings is a TypeError; any other value
    not among them a ValueError.

    Example:
      >>> check_choice("mode", "fan_in", ("fan_in", "fan_out"))
      'fan_in'
    """
    choices = tuple(choices)
    try:
        if value in choices:
            return value
    except TypeError:  # an unhashable or uncomparable value is not a choice
        pass
    valid = ", ".join(repr(c) for c in choices)
    what = f"{name}={value!r} is not valid; choose one of {valid}."
    if choices and all(isinstance(c, str) for c in choices) and not isinstance(value, str):
        raise TypeError(what)
    raise ValueError(what + closest_hint(value, choices))


def check_path(name: str, value: Any, *, none: bool = False) -> str | os.PathLike | None:
    """``value`` if it is a non-empty path, a str or an ``os.PathLike`` (or None when ``none``).

    Another type is a TypeError; the empty path, which every file function takes as the
    current directory, a ValueError (``"."`` says that).

    Example:
      >>> check_path("sweep: out", "runs/a")
      'runs/a'
    """
    if value is None and none:
        return None
    if not isinstance(value, str | os.PathLike) or not isinstance(os.fspath(value), str):
        raise TypeError(
            f"{name} must be a path (str or os.PathLike){' or None' if none else ''}; got {value!r}"
        )
    if os.fspath(value) == "":
        raise ValueError(
            f"{name}={value!r} is an empty path, which would mean the current directory; give a "
            "directory (or '.' for the current one)"
        )
    return value
