"""Result: labeled arrays, with selection, records and files; the container of every kind.

A sweep measures per-layer statistics for every combination of its dims, a
training run records curves for every model, theory predicts a sweep's
statistics. Each holds one numpy array per quantity (a *field*): the
combination dims first, in ``dims`` order, then the field's own trailing dims.
:class:`Result` is that container; :class:`SweepResult`,
:class:`jaxinit.TrainResult` and :class:`jaxinit.theory.Prediction` are its
kinds, each adding only what is its own (a sweep's histogram frames, a
training run's steps and models)::

    res = SweepResult(
        dims=("init", "activation", "depth", "width", "seed"),
        coords={"init": ("normal(stddev=1.0)", "he_normal"), "activation": ("tanh", "relu"),
                "depth": (5,), "width": (100,), "seed": (0, 1, 2)},
        fields={"pre_var": pre_var, "hist": hist},  # (2, 2, 1, 1, 3, 5), (2, 2, 1, 1, 3, 5, 30)
        field_dims={"pre_var": ("layer",), "hist": ("layer", "bin")},
        aliases={"init": {"normal(stddev=1)": "normal(stddev=1.0)"}},
        attrs={"grid": {...}},  # JSON-able metadata, saved in the manifest
    )
    res["pre_var"].shape                                # (2, 2, 1, 1, 3, 5); also res.pre_var
    res.sel(init="he_normal", activation="relu").pre_var.shape         # (1, 1, 3, 5)
    res.sel(init="he_normal", activation="relu").squeeze().pre_var.shape  # (3, 5)
    res.sel(seed=[2, 0])                                # keeps seed, in that order
    for labels, values in res: ...                      # one combination at a time, C order
    res.to_dataframe()                                  # one row per (combination, layer)
    res.to_xarray()                                     # an xarray.Dataset
    res.save("out/sweep"); SweepResult.load("out/sweep").equals(res)  # True
    Result.load("out/sweep")                            # the kind it was saved as: a SweepResult

``sel`` takes labels or their aliases; a single label drops the dim, a list
keeps it. ``save`` writes a directory (``arrays.npz`` and ``manifest.json``)
atomically: a crash leaves the previous result or nothing, never half of one.
This module imports nothing else from jaxinit.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import itertools
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from jaxinit import _result_io
from jaxinit._checks import closest_hint
from jaxinit._display import result_html
from jaxinit._frames import LAYER_BASE
from jaxinit._io import jsonable
from jaxinit._result_io import SCHEMA_VERSION

__all__ = ["KINDS", "LAYER_BASE", "SCHEMA_VERSION", "Result", "SweepResult"]


Label = str | int | float

# Every kind of result, by class name, and the module that defines it: a saved result and a
# Dataset record their kind, and reading one imports its module (training and theory are
# imported on first use, so that ``import jaxinit`` stays light).
KINDS = {
    "Result": "jaxinit._results",
    "SweepResult": "jaxinit._results",
    "TrainResult": "jaxinit.training._run",
    "Prediction": "jaxinit.theory._predict",
}


def _label(dim: str, value: Any) -> Label:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"dim {dim!r}: labels are str, int or float; got {value!r}")
    return value


def _dims(value: Any) -> tuple[str, ...]:
    dims = (value,) if isinstance(value, str) else tuple(value)
    if len(set(dims)) != len(dims) or not all(isinstance(d, str) for d in dims):
        raise ValueError(f"dims must be unique strings; got {dims}")
    return dims


def _coords(dims: tuple[str, ...], value: Mapping[str, Any]) -> dict[str, tuple[Label, ...]]:
    """Every dim's labels as a tuple of unique str, int or float."""
    if set(value) != set(dims):
        raise ValueError(f"coords have dims {sorted(value)}; expected {list(dims)}")
    coords = {}
    for d in dims:
        if isinstance(value[d], str):
            raise ValueError(f"coords[{d!r}] is the string {value[d]!r}; use a tuple")
        labels = coords[d] = tuple(_label(d, v) for v in value[d])
        if len(set(labels)) != len(labels):
            twice = sorted({str(v) for v in labels if labels.count(v) > 1})
            raise ValueError(f"dim {d!r} repeats labels {twice}; labels must be unique")
    return coords


@functools.cache
def _reserved_names(cls: type) -> frozenset[str]:
    """Names a field of a ``cls`` may not take: the class's own attributes, and np.savez's
    ``file`` and ``allow_pickle`` (the arrays are saved as its keyword arguments)."""
    own = {f.name for f in dataclasses.fields(cls)} | set(dir(cls))
    return frozenset(own | {"file", "allow_pickle"})


def _field(
    cls: type,
    name: Any,
    value: Any,
    own: tuple[str, ...],
    dims: tuple[str, ...],
    sizes: tuple[int, ...],
) -> np.ndarray:
    """A read-only view of field ``name`` of a ``cls``: a numeric array ``sizes + (one size per
    own dim)``."""
    reserved = name in _reserved_names(cls) or name in dims
    if not (isinstance(name, str) and name.isidentifier()) or name[0] == "_" or reserved:
        raise ValueError(
            f"field name {name!r} must be an identifier without a leading '_' that is "
            f"neither a dim, a {cls.__name__} attribute, nor np.savez's 'file' or 'allow_pickle'"
        )
    arr = np.asarray(value).view()
    arr.flags.writeable = False
    if arr.dtype.kind not in "biufc":
        raise ValueError(
            f"field {name!r} has dtype {arr.dtype}; fields hold bool, int, uint, float "
            "or complex numpy arrays (cast bfloat16 with .astype(np.float32))"
        )
    if arr.shape[: len(dims)] != sizes or arr.ndim != len(dims) + len(own):
        raise ValueError(
            f"field {name!r} has shape {arr.shape}; expected {sizes} for dims {dims} "
            f"followed by {len(own)} trailing dim(s) {own}"
        )
    if len(set(own)) != len(own) or set(own) & set(dims):
        raise ValueError(f"field {name!r}: field dims {own} repeat or reuse dims {dims}")
    return arr


def _aliases(value: Mapping[str, Mapping[Any, Any]], coords: Mapping[str, tuple]) -> dict:
    """{dim: {alias: label}}, for known dims, never shadowing a label."""
    aliases = {}
    for d, table in value.items():
        if d not in coords:
            raise ValueError(f"aliases for unknown dim {d!r}; dims are {list(coords)}")
        aliases[d] = {_label(d, k): _label(d, v) for k, v in table.items()}
        for k, v in aliases[d].items():
            if k in coords[d] and k != v:
                raise ValueError(f"dim {d!r}: alias {k!r} -> {v!r} shadows the label {k!r}")
    return aliases


def _attrs(value: Mapping[str, Any]) -> dict[str, Any]:
    attrs = dict(value)
    try:
        json.dumps(jsonable(attrs))
    except (TypeError, ValueError) as err:
        raise ValueError(f"attrs must be JSON-able: {err}") from None
    return attrs


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class Result:
    """Labeled arrays: one per field, combination dims first, then the field's own dims.

    The container of every kind of result (:class:`SweepResult`,
    :class:`jaxinit.TrainResult`, :class:`jaxinit.theory.Prediction`), which add only
    what is their own; selection, records, frames, files and comparison are here, and
    keep the kind: ``res.sel(...)``, ``Result.concat``, ``from_xarray`` and
    ``Result.load`` give back the class that was saved or selected from.

    Attributes:
      dims: the combination dims, in array order.
      coords: dim -> tuple of unique labels (str, int or float), one per index.
      fields: name -> array of shape ``[len(coords[d]) for d in dims] + trailing``
        (read-only views; dtype bool, int, uint, float or complex).
      field_dims: name -> names of the trailing dims, such as ``("layer",)``.
      aliases: dim -> {other label: canonical label}, accepted by :meth:`sel`.
      attrs: JSON-able metadata (numpy arrays become lists when saved).
    """

    dims: tuple[str, ...]
    coords: Mapping[str, Sequence[Label]]
    fields: Mapping[str, np.ndarray]
    field_dims: Mapping[str, tuple[str, ...]]
    aliases: Mapping[str, Mapping[Label, Label]] = dataclasses.field(default_factory=dict)
    attrs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        dims = _dims(self.dims)
        coords = _coords(dims, self.coords)
        if set(self.field_dims) != set(self.fields):
            raise ValueError(
                f"field_dims names {sorted(self.field_dims)} differ from fields {sorted(self.fields)}"
            )
        sizes = tuple(len(coords[d]) for d in dims)
        fields = {
            k: _field(type(self), k, v, tuple(self.field_dims[k]), dims, sizes)
            for k, v in self.fields.items()
        }
        for key, value in [
            ("dims", dims),
            ("coords", coords),
            ("fields", fields),
            ("field_dims", {k: tuple(self.field_dims[k]) for k in fields}),
            ("aliases", _aliases(self.aliases, coords)),
            ("attrs", _attrs(self.attrs)),
        ]:
            object.__setattr__(self, key, value)

    # -- access --------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> np.ndarray:
        """The field ``name``: ``res["pre_var"]`` (typed; ``res.pre_var`` is the same array)."""
        try:
            return self.fields[name]
        except (KeyError, TypeError):
            raise KeyError(self._no_field(name)) from None

    def __getattr__(self, name: str) -> np.ndarray:
        """Fields as attributes, for notebooks: ``res.pre_var`` is ``res["pre_var"]``."""
        fields = self.__dict__.get("fields", {})  # absent while unpickling
        if name in fields:
            return fields[name]
        raise AttributeError(self._no_field(name, attribute=True))

    def _no_field(self, name: Any, *, attribute: bool = False) -> str:
        """Why ``name`` is not a field: the kind's own reason (:meth:`_why_absent`), or the
        fields there are and the closest."""
        why = self._why_absent(name)
        if why is not None:
            return why
        fields = list(self.__dict__.get("fields", {}))
        what = (
            f"{type(self).__name__} has no attribute or field {name!r}"
            if attribute
            else f"unknown field {name!r}"
        )
        return f"{what}; fields: {', '.join(fields) or 'none'}." + closest_hint(name, fields)

    def _why_absent(self, name: Any) -> str | None:
        """A kind's own reason that it lacks the field ``name`` (how it was run), or None."""
        return None

    def __dir__(self):
        return [*super().__dir__(), *self.fields]

    @property
    def shape(self) -> tuple[int, ...]:
        """The sizes of the combination dims."""
        return tuple(len(self.coords[d]) for d in self.dims)

    def __len__(self) -> int:
        return math.prod(self.shape)

    def __iter__(self) -> Iterator[tuple[dict[str, Label], dict[str, np.ndarray]]]:
        """Yields ``(labels, values)`` for every combination, in C order."""
        for idx in np.ndindex(*self.shape):
            labels = {d: self.coords[d][i] for d, i in zip(self.dims, idx, strict=True)}
            yield labels, {name: arr[(*idx, ...)] for name, arr in self.fields.items()}

    def __repr__(self) -> str:
        dims = ", ".join(f"{d}={len(self.coords[d])}" for d in self.dims)
        n = len(self.dims)
        fields = ", ".join(
            f"{k}[{', '.join(f'{fd}={a.shape[n + i]}' for i, fd in enumerate(self.field_dims[k]))}]"
            for k, a in self.fields.items()
        )
        return f"{type(self).__name__}({dims}; fields: {fields or 'none'})"

    def _repr_html_(self) -> str:
        """A notebook's view: dims with sizes and labels, fields, attributes
        (:mod:`jaxinit._display`)."""
        return result_html(self)

    def equals(self, other: Result) -> bool:
        """Same kind (class), dims, labels (and their types), field dims and bitwise-equal arrays.

        NaNs compare equal where their bits match; ``-0.0`` differs from ``0.0``.
        ``aliases`` and ``attrs`` are not compared.
        """

        def typed(coords):
            return {d: tuple((type(v), v) for v in labels) for d, labels in coords.items()}

        def bits(arr):
            return np.ascontiguousarray(arr).reshape(-1).view(np.uint8)

        return (
            type(other) is type(self)
            and self.dims == other.dims
            and typed(self.coords) == typed(other.coords)
            and self.field_dims == other.field_dims
            and all(
                a.dtype == b.dtype and a.shape == b.shape and np.array_equal(bits(a), bits(b))
                for a, b in ((a, other.fields[k]) for k, a in self.fields.items())
            )
        )

    # -- selection ------------------------------------------------------------------------------

    def _index(self, dim: str, label: Any) -> int:
        labels, table, given = self.coords[dim], self.aliases.get(dim, {}), label
        try:
            label = _label(dim, label)
        except ValueError:
            label = None  # not a label type (a bool, a dict, ...): unknown below
        if label in labels:
            return labels.index(label)
        if label in table:
            if table[label] in labels:
                return labels.index(table[label])
            raise ValueError(
                f"{dim}={label!r} is an alias of {table[label]!r}, which this result does not "
                f"hold; {dim} labels: {list(labels)}"
            )
        raise ValueError(
            f"unknown {dim} label {given!r}; valid: {list(labels)}."
            + closest_hint(given, [*labels, *table])
        )

    def sel(self, **selection: Any) -> Result:
        """Selects along combination dims by label (or alias).

        A single label selects it and drops the dim; a list or tuple of labels
        keeps the dim, restricted to them in the given order.
        """
        for dim in selection:
            if dim not in self.dims:
                field_dims = sorted({fd for own in self.field_dims.values() for fd in own})
                why = (
                    f"; {dim!r} is a field dim, which sel does not index: slice the arrays"
                    if dim in field_dims
                    else closest_hint(dim, self.dims)
                )
                raise ValueError(
                    f"sel selects combination dims {list(self.dims)}, not {dim!r}{why}"
                )
        dims, coords, fields = list(self.dims), dict(self.coords), dict(self.fields)
        for dim, wanted in selection.items():
            axis = dims.index(dim)
            if isinstance(wanted, (list, tuple, np.ndarray)):
                idx = [self._index(dim, w) for w in list(wanted)]
                if len(set(idx)) != len(idx):
                    raise ValueError(f"sel({dim}={list(wanted)!r}) selects a label twice")
                coords[dim] = tuple(self.coords[dim][i] for i in idx)
                fields = {k: np.take(a, idx, axis=axis) for k, a in fields.items()}
            else:
                i = self._index(dim, wanted)
                fields = {k: a[(slice(None),) * axis + (i,)] for k, a in fields.items()}
                dims.pop(axis)
                del coords[dim]
        return self._replace(dims, coords, fields)

    def squeeze(self) -> Result:
        """Drops the combination dims of length 1."""
        axes = tuple(i for i, n in enumerate(self.shape) if n == 1)
        dims = [d for i, d in enumerate(self.dims) if i not in axes]
        fields = {k: np.squeeze(a, axis=axes) for k, a in self.fields.items()}
        return self._replace(dims, {d: self.coords[d] for d in dims}, fields)

    def _replace(self, dims, coords, fields) -> Result:
        aliases = {d: t for d, t in self.aliases.items() if d in coords}
        return dataclasses.replace(
            self, dims=tuple(dims), coords=coords, fields=fields, aliases=aliases
        )

    @staticmethod
    def concat(results: Sequence[Result], dim: str) -> Result:
        """Joins results of one kind along the existing combination dim ``dim``.

        All other dims, their labels, the field names, field dims and dtypes must
        match, and no ``dim`` label may repeat. Aliases are merged; attrs are the
        first result's, and so is the kind (class).
        """
        results = list(results)
        if not results:
            raise ValueError("concat needs at least one result")
        first = results[0]
        kinds = sorted({type(res).__name__ for res in results})
        if len(kinds) > 1:
            raise ValueError(f"concat joins results of one kind; got {kinds}")
        if dim not in first.dims:
            raise ValueError(f"concat along {dim!r}: not a dim of {list(first.dims)}")
        axis = first.dims.index(dim)
        aliases = {d: dict(t) for d, t in first.aliases.items()}
        for n, res in enumerate(results[1:], start=1):
            same = {d: c for d, c in res.coords.items() if d != dim}
            if res.dims != first.dims or same != {d: first.coords[d] for d in same}:
                raise ValueError(f"concat along {dim!r}: result {n} has other dims or labels")
            if res.field_dims != first.field_dims or any(
                a.dtype != first.fields[k].dtype
                or a.shape[axis + 1 :] != first.fields[k].shape[axis + 1 :]
                for k, a in res.fields.items()
            ):
                raise ValueError(
                    f"concat along {dim!r}: result {n} has other fields, field dims, dtypes "
                    "or trailing shapes"
                )
            for d, table in res.aliases.items():
                for k, v in table.items():
                    if aliases.setdefault(d, {}).setdefault(k, v) != v:
                        raise ValueError(f"concat: alias {d}={k!r} has two meanings")
        labels = tuple(label for res in results for label in res.coords[dim])
        fields = {
            k: np.concatenate([res.fields[k] for res in results], axis=axis) for k in first.fields
        }
        return dataclasses.replace(
            first, coords={**first.coords, dim: labels}, fields=fields, aliases=aliases
        )

    # -- records and files ------------------------------------------------------------------------

    def to_records(self, fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One dict per combination and layer, for ``pandas.DataFrame(records)``.

        Each record holds the dim labels, ``"layer"`` (an int, 1 for the layer nearest
        the input, as in every table and figure), for a model sweep the layer's ``"path"``
        and module ``"type"``, and one Python scalar per field. Only fields with field dims ``("layer",)`` or ``()`` fit
        (a per-combination scalar repeats on each layer's row); by default all of
        those are taken. Without any layer field there is one record per combination.
        """
        fit = [k for k, own in self.field_dims.items() if own in ((), ("layer",))]
        names = fit if fields is None else [fields] if isinstance(fields, str) else list(fields)
        for name in names:
            if name not in self.fields:
                raise ValueError(self._no_field(name))
            if name not in fit:
                raise ValueError(
                    f"field {name!r} has field dims {self.field_dims[name]}; to_records makes one "
                    "row per (combination, layer), so it takes fields with dims ('layer',) or () "
                    f"only: {fit}. Index {name!r} down first, e.g. res.{name}[..., 0]."
                )
        layers = {self.fields[k].shape[-1] for k in names if self.field_dims[k]}
        if len(layers) > 1:
            raise ValueError(f"fields {names} disagree on the number of layers: {sorted(layers)}")
        n_layers = layers.pop() if layers else None
        flat = {
            k: self.fields[k].reshape(len(self), n_layers if self.field_dims[k] else 1).tolist()
            for k in names
        }
        named = {  # a model sweep's layers: their paths and module types
            column: self.attrs[key]
            for column, key in (("path", "layers"), ("type", "layer_types"))
            if isinstance(self.attrs.get(key), list) and len(self.attrs[key]) == n_layers
        }
        records = []
        for c, labels in enumerate(itertools.product(*(self.coords[d] for d in self.dims))):
            base = dict(zip(self.dims, labels, strict=True))
            for layer in range(n_layers) if n_layers is not None else [None]:
                row = dict(base) if layer is None else {**base, "layer": layer + LAYER_BASE}
                if layer is not None:
                    row.update({k: v[layer] for k, v in named.items()})
                for k in names:
                    row[k] = flat[k][c][layer if self.field_dims[k] else 0]
                records.append(row)
        return records

    def to_dataframe(self):
        """A tidy ``pandas.DataFrame``: one row per combination and layer (1-based ``layer``),
        the dims as columns and one column per per-layer field (per-combination fields
        repeat on each row). Needs ``jaxinit[frames]``.
        """
        from jaxinit._frames import to_dataframe

        return to_dataframe(self)

    def to_xarray(self):
        """An ``xarray.Dataset`` of every field over its dims (``layer`` 1-based, ``bin``, ...),
        with the result's description in ``attrs['jaxinit']`` (JSON), so that
        :meth:`from_xarray` gives back an equal result (also from a netCDF4 or zarr
        file that xarray wrote). Needs ``jaxinit[frames]``."""
        from jaxinit._frames import to_xarray

        return to_xarray(self)

    @classmethod
    def from_xarray(cls, ds) -> Result:
        """The result :meth:`to_xarray` made ``ds`` from, of the kind it was (see :meth:`load`)."""
        from jaxinit._frames import from_xarray

        return from_xarray(cls, ds)

    def save(self, path: str | os.PathLike) -> None:
        """Writes ``path/arrays.npz`` and ``path/manifest.json``, atomically.

        The files are written into a temporary sibling directory that then
        replaces ``path``. An existing result at ``path`` is replaced whole; any
        other existing file or non-empty directory is refused.
        """
        _result_io.save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Result:
        """Reads a directory written by :meth:`save`, as the kind it was saved as.

        ``Result.load`` gives back whatever kind the directory holds (a SweepResult, a
        TrainResult, a Prediction); ``SweepResult.load`` and the other kinds' own ``load``
        give back their kind. A kind's ``load`` of another kind's directory (such as
        ``SweepResult.load`` of a training result, which was a SweepResult before) returns
        what the directory holds with a DeprecationWarning; it will raise in the next
        release.
        """
        return _result_io.load(cls, path)

    @classmethod
    def _saved_kind(cls) -> str:
        """The kind a result of this class is saved as: the nearest class in :data:`KINDS`
        (a user's subclass of SweepResult saves as a ``"SweepResult"``)."""
        return next(c.__name__ for c in cls.__mro__ if KINDS.get(c.__name__) == c.__module__)

    @classmethod
    def _read_as(cls, kind: Any, where: Any) -> type[Result]:
        """The class to build a result of ``kind`` read from ``where`` (a file, a Dataset),
        asked for as ``cls``."""
        if not isinstance(kind, str) or kind not in KINDS:
            raise ValueError(
                f"{where} holds a result of kind {kind!r}, which this jaxinit does not know "
                f"(it knows {list(KINDS)}); upgrade jaxinit to read it"
            )
        held = getattr(importlib.import_module(KINDS[kind]), kind)
        if issubclass(cls, held):  # the kind itself, or a more specific class of it
            return cls
        if not issubclass(held, cls):
            warnings.warn(
                f"{where} holds a {kind}, which is not a {cls.__name__}; load it with "
                f"{kind}.load or jaxinit.Result.load ({cls.__name__}.load returning it is "
                "deprecated and will raise in the next release)",
                DeprecationWarning,
                stacklevel=4,
            )
        return held


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)
class SweepResult(Result):
    """A :class:`Result` of a sweep: dims (init, activation, depth, width, bias_init, seed)
    less the scalar ones; per-layer statistics ``(..., layer)`` and the histogram
    ``hist`` ``(..., layer, bin)`` (:func:`jaxinit.sweep`). What it adds to Result: frames
    of the histogram (``to_dataframe(hist=True)``) and saying when a field is absent because
    of how the sweep ran (``gradients=False``)."""

    def _why_absent(self, name: Any) -> str | None:
        grid = self.__dict__.get("attrs", {}).get("grid", {})
        if name in ("grad_var", "weight_grad_norm") and grid.get("gradients") is False:
            return (
                f"this sweep ran with gradients=False, so it has no {name!r}; run it with "
                "ji.Grid(..., gradients=True) (the default) to record the backward pass"
            )
        return None

    def to_dataframe(self, *, hist: bool = False):
        """A tidy ``pandas.DataFrame``: one row per combination and layer (1-based ``layer``),
        the dims as columns and one column per per-layer field (per-combination fields
        repeat on each row). ``hist=True``: one row per combination, layer and bin, with
        ``bin``, ``bin_lo``, ``bin_hi`` and ``count``. Needs ``jaxinit[frames]``.
        """
        from jaxinit._frames import to_dataframe

        return to_dataframe(self, hist=hist)
