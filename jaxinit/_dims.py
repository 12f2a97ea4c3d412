"""What every grid has: dims (a field given as a list is a dimension of the result) and seeds.

Shared by :class:`jaxinit.Grid` and :class:`jaxinit.TrainGrid`, so that the same setting
has the same type and limits in both.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxinit._checks import check_int
from jaxinit._keys import SEED_LIMIT

__all__ = ["MAX_SEEDS", "check_seeds", "dim_values"]

MAX_SEEDS = 10_000_000  # seeds of one grid (a Grid's or a TrainGrid's), counts and lists alike


def dim_values(field: Any) -> tuple:
    """A canonical field's values: a tuple or range (a dim) as a tuple, one value as a 1-tuple.

    Example:
      >>> dim_values(5), dim_values((5, 10)), dim_values(range(3))
      ((5,), (5, 10), (0, 1, 2))
    """
    return tuple(field) if isinstance(field, (tuple, range)) else (field,)


def check_seeds(owner: str, value: Any) -> range | tuple[int, ...]:
    """The seeds of a grid (``owner``: "Grid", "TrainGrid"): a count ``n`` as ``range(n)``, a
    range as itself, any other sequence as a tuple of distinct ints, all in ``[0, SEED_LIMIT)``
    and at most ``MAX_SEEDS`` of them (a list's length is checked before its entries).

    Example:
      >>> check_seeds("Grid", 3), check_seeds("Grid", [5, 1])
      (range(0, 3), (5, 1))
    """

    def too_many() -> ValueError:  # built only when raised: a long list's repr is costly
        shown = value if isinstance(value, (int, np.integer, range)) else f"<{len(value):,} seeds>"
        return ValueError(
            f"{owner}: seeds={shown} is more than one grid holds ({MAX_SEEDS:,}); sweep or "
            "train shares of them (seeds=range(a, b)) and join the results with .concat"
        )

    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        count = check_int(f"{owner}: seeds", value, low=1)
        if count > MAX_SEEDS:
            raise too_many()
        return range(count)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(
            f"{owner}: seeds must be a count >= 1 or a list of seeds; got {value!r:.60}"
        )
    if len(value) == 0:
        raise ValueError(f"{owner}: seeds is empty; give a count >= 1 or at least one seed")
    if len(value) > MAX_SEEDS:
        raise too_many()
    if isinstance(value, range):  # distinct by construction; checked at its ends only
        seeds = value
        low, high = min(value[0], value[-1]), max(value[0], value[-1])
    else:
        seeds = tuple(check_int(f"{owner}: seeds", v, low=0) for v in value)
        if len(set(seeds)) != len(seeds):
            twice = sorted(s for s, n in collections.Counter(seeds).items() if n > 1)[:5]
            raise ValueError(f"{owner}: seeds must be distinct; {twice} repeat")
        low, high = min(seeds), max(seeds)
    if low < 0 or high >= SEED_LIMIT:
        raise ValueError(
            f"{owner}: seeds must be in [0, 2**31) (a seed is folded into the key as int32); "
            f"got {low if low < 0 else high}"
        )
    return seeds
