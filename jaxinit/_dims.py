"""What every grid has: dims (a field given as a list is a dimension of the result), seeds,
the root seed, aliases, the seed's key and ``describe()``.

:class:`GridBase` is the base of :class:`jaxinit.Grid` and :class:`jaxinit.TrainGrid` (and
of any further grid), so that the same setting has the same name, type and limits in each
and is validated by the same code.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit._checks import check_int
from jaxinit._keys import ROOT_SEED_LIMIT, SEED_LIMIT, seed_key

__all__ = ["MAX_SEEDS", "GridBase", "check_root_seed", "check_seeds", "dim_values"]

MAX_SEEDS = 10_000_000  # seeds of one grid (a Grid's or a TrainGrid's), counts and lists alike


def dim_values(field: Any) -> tuple:
    """A canonical field's values: a tuple or range (a dim) as a tuple, one value as a 1-tuple.

    Example:
      >>> dim_values(5), dim_values((5, 10)), dim_values(range(3))
      ((5,), (5, 10), (0, 1, 2))
    """
    return tuple(field) if isinstance(field, (tuple, range)) else (field,)


def check_seeds(owner: str, value: Any) -> range | tuple[int, ...]:
    """The seeds of a grid (``owner``: "Grid", "TrainGrid"), distinct ints in
    ``[0, SEED_LIMIT)``, at most ``MAX_SEEDS`` of them (a list's length is checked before
    its entries), in one canonical form whatever grid holds them: a count ``n`` as
    ``range(n)``, a range as itself, a list of consecutive ascending seeds as their range,
    any other list as a tuple.

    Example:
      >>> check_seeds("Grid", 3), check_seeds("TrainGrid", [5, 6]), check_seeds("Grid", [5, 1])
      (range(0, 3), range(5, 7), (5, 1))
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
    consecutive = range(seeds[0], seeds[0] + len(seeds))
    return consecutive if not isinstance(seeds, range) and seeds == tuple(consecutive) else seeds


def check_root_seed(owner: str, value: Any) -> int:
    """A grid's ``root_seed`` as an int in ``[0, ROOT_SEED_LIMIT)`` (2**32: the sweep makes
    the root key from a uint32), so that every grid draws the same networks from it.

    Example:
      >>> check_root_seed("Grid", 7)
      7
    """
    root = check_int(f"{owner}: root_seed", value, low=0)
    if root >= ROOT_SEED_LIMIT:
        raise ValueError(f"{owner}: root_seed must be in [0, 2**32); got {root}")
    return root


class GridBase:
    """The base of jaxinit's grids: what every grid has, written once.

    A grid is a frozen, keyword-only dataclass that derives from this class and declares
    the fields ``seeds``, ``root_seed`` and ``aliases`` (the last with ``compare=False``)
    beside its own. It defines

    - ``_axes()``: the labels of every axis of its product, in the result's order, a
      setting given as one value included (as a 1-tuple);
    - ``dims``: the axes that are dims of its result;
    - ``_settings()``: its other settings, JSON-able, for :meth:`describe`;

    and, in ``__post_init__``, calls :meth:`_set_seeds` and then, once its specs are
    resolved, sets ``aliases`` to :meth:`_merged_aliases`. It gets :meth:`seed_key` and
    :meth:`describe`. Fields renamed in a release keep their old names for one more with
    :func:`jaxinit._deprecated.renamed_fields`.
    """

    seeds: range | tuple[int, ...]
    root_seed: int
    aliases: Mapping[str, Mapping[str, str]] | None

    def _axes(self) -> dict[str, tuple]:
        raise NotImplementedError

    @property
    def dims(self) -> tuple[str, ...]:
        """The dims of the grid's result, in order."""
        raise NotImplementedError

    def _settings(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_seeds(self) -> None:
        """Stores ``seeds`` (:func:`check_seeds`) and ``root_seed`` (:func:`check_root_seed`)
        in canonical form."""
        owner = type(self).__name__
        object.__setattr__(self, "seeds", check_seeds(owner, self.seeds))
        object.__setattr__(self, "root_seed", check_root_seed(owner, self.root_seed))

    def _check_float32(self) -> None:
        """Refuses an initializer (in ``inits``, ``bias_inits`` or ``output_init``) that asks
        for a dtype other than float32: every grid draws its weights in float32, so a label
        such as ``he_normal(dtype='bfloat16')`` would name numbers it did not produce."""
        owner = type(self).__name__
        for field in ("inits", "bias_inits", "output_init"):
            value = getattr(self, field, None)
            for init in value if isinstance(value, tuple) else (value,):
                dtype = getattr(init, "dtype", None)
                if dtype is not None and np.dtype(dtype) != np.float32:
                    raise ValueError(
                        f"{owner}: {field} holds {init.spec!r}, which draws in "
                        f"{np.dtype(dtype).name}; a grid draws every weight in float32 (its "
                        "statistics, theory and training are of float32 networks): drop dtype= "
                        "or give dtype='float32'"
                    )

    def _merged_aliases(self, derived: Mapping[str, Mapping[str, str]]) -> dict:
        """``{dim: {label as given: canonical spec}}``: ``derived`` (from this grid's specs)
        over the tables ``aliases`` carries (from :func:`dataclasses.replace` or a
        description), of which only the entries naming one of the dim's labels are kept.
        Empty tables are left out."""
        carried = {} if self.aliases is None else self.aliases
        if not isinstance(carried, Mapping):
            raise TypeError(
                f"{type(self).__name__}: aliases must be a mapping {{dim: {{label: spec}}}}; "
                f"got {carried!r}"
            )
        labels = self._axes()
        merged = {
            dim: {**{k: v for k, v in carried.get(dim, {}).items() if v in labels[dim]}, **own}
            for dim, own in derived.items()
        }
        return {dim: table for dim, table in merged.items() if table}

    def seed_key(self, seed: int) -> jax.Array:
        """The key of every network of this seed, whatever its other labels (common random
        numbers): :func:`jaxinit.sweeping.seed_key` ``(root_seed, seed)``, the same in every
        grid."""
        return seed_key(self.root_seed, seed)

    def describe(self) -> dict[str, Any]:
        """JSON-able description of the grid, as manifests record it and a checkpoint's
        fingerprint hashes it: every axis's labels (a list under the dim's name), the
        result's ``dims``, the grid's other settings and ``root_seed``."""
        return {
            **{dim: list(labels) for dim, labels in self._axes().items()},
            "dims": list(self.dims),
            **self._settings(),
            "root_seed": self.root_seed,
        }
