"""The one place for argument checks that several modules share.

The policy everywhere: a wrong type is a TypeError, a wrong value a ValueError, and
the message names the bad value, the valid choices, and the closest match where
there is one (``Did you mean 'he_normal'?``).
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Iterable
from typing import Any

__all__ = ["check_choice", "check_int", "closest_hint"]


def closest_hint(word: Any, choices: Iterable[Any]) -> str:
    """`` Did you mean 'x'?`` for the choice whose text is closest to ``word``, or ``""``.

    Example:
      >>> closest_hint("he_nromal", ["he_normal", "glorot_uniform"])
      " Did you mean 'he_normal'?"
    """
    by_text = {str(c): c for c in choices}
    match = difflib.get_close_matches(str(word), list(by_text), n=1, cutoff=0.5)
    return f" Did you mean {by_text[match[0]]!r}?" if match else ""


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


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices``; else a ValueError naming them and the closest.

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
    raise ValueError(f"{name}={value!r} is not valid; choose one of {valid}.{closest_hint(value, choices)}")  # fmt: skip
