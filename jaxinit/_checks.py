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
import pathlib
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "FLOAT32_MAX",
    "check_bool",
    "check_choice",
    "check_int",
    "check_path",
    "check_real",
    "check_real_array",
    "closest_hint",
    "is_list",
]

# The largest finite float32: jaxinit computes in float32, so a number beyond it is inf there.
FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    """``value`` as a float if it is a finite real number >= ``low`` (> ``low`` when ``strict``)
    that float32 holds (``|value| <= FLOAT32_MAX``: jaxinit computes in float32).

    A bool, a string or another non-number is a TypeError; a NaN, an infinity, a number
    beyond float32's range or out of range a ValueError.

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
    if abs(value) > FLOAT32_MAX:
        raise ValueError(
            f"{name}={value!r} is beyond float32's range (|x| <= {FLOAT32_MAX:.4g}), in which "
            "jaxinit computes: it would be inf"
        )
    return float(value)


def check_path(name: str, value: Any, *, none: bool = False) -> pathlib.Path | None:
    """``value`` as a Path if it is a usable path (str or os.PathLike), or None when ``none``.

    Another type is a TypeError; the empty path (which every file function takes as the
    current directory; ``"."`` says that) or one with a NUL character a ValueError.

    Example:
      >>> check_path("out", "runs/a")
      PosixPath('runs/a')
    """
    if value is None and none:
        return None
    text = os.fspath(value) if isinstance(value, (str, os.PathLike)) else None
    if not isinstance(text, str):
        alone = " or None" if none else ""
        raise TypeError(
            f"{name} must be a directory path (str or os.PathLike){alone}; got {value!r}"
        )
    if not text:
        raise ValueError(
            f"{name}={text!r} is an empty path, which would mean the current directory; give a "
            "directory (or '.' for the current one)"
        )
    if "\x00" in text:
        raise ValueError(f"{name}={text!r} is not a valid path: it contains a NUL character")
    return pathlib.Path(text)


def check_real_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a NumPy array if it holds real numbers (bool, int or float).

    A value that is no array at all (None, a number, a string) is a TypeError; an array
    of complex numbers, strings or objects a ValueError (a cast would drop an imaginary
    part or parse text).

    Example:
      >>> check_real_array("x", [[1, 2]]).dtype.kind
      'i'
    """
    not_array = TypeError(f"{name} must be an array of real numbers; got {value!r:.80}")
    if value is None or isinstance(value, (str, bytes)):
        raise not_array
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:  # ragged nested lists
        raise ValueError(f"{name} must be an array of real numbers: {e}") from None
    if arr.ndim == 0:
        raise not_array
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must hold real numbers; got dtype {arr.dtype} (complex, object and "
            "string arrays are refused: a cast would drop the imaginary part or parse text)"
        )
    return arr


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
