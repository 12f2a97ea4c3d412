"""Results as pandas DataFrames and xarray Datasets: the labeled-array formats researchers use.

pandas and xarray are optional (``pip install 'jaxinit[frames]'``); a missing
one raises an ImportError that names the extra. The conversions are methods
of :class:`jaxinit.Result` (so of every kind of result):

- ``to_dataframe()``: tidy long form, one row per combination × layer, the dims
  as columns and ``layer`` **1-based** (as every table and figure numbers
  layers); ``hist=True`` gives one row per combination × layer × bin with the
  bin's edges.
- ``to_xarray()`` / ``from_xarray(ds)``: every field a data variable over the
  combination dims and its own (``layer`` 1-based, ``bin``, ``step``, ...);
  the result's canonical description (field dims, aliases, attrs) travels as
  one JSON string attribute, which a netCDF4 or zarr file written by xarray
  keeps (netCDF3 cannot store the int64 counts).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np

from jaxinit._io import jsonable

__all__ = ["LAYER_BASE", "from_xarray", "require", "to_dataframe", "to_xarray"]

# layers are numbered from 1 wherever a person reads them (records, frames, tables, figures,
# summary.json); arrays index them from 0
LAYER_BASE = 1
EXTRA = "frames"
META = "jaxinit"  # the Dataset attribute holding the result's description (JSON)
# trailing dims shared by every field that has them; any other (a kept kernel's fan_in)
# is named per field in a Dataset, where one name must mean one size
SHARED_DIMS = ("layer", "bin", "step", "eval", "stat_step")


def require(module: str) -> Any:
    """Imports ``module`` (pandas or xarray), or says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(
            f"{module} is needed for this conversion and is not installed; "
            f"pip install 'jaxinit[{EXTRA}]' (pandas and xarray)"
        ) from None


def _trailing_coords(result, dim: str, size: int) -> np.ndarray:
    """The coordinate of a field's trailing dim: 1-based layers, the steps of evaluations."""
    if dim == "layer":
        return np.arange(LAYER_BASE, LAYER_BASE + size)
    if dim == "eval" and "eval_steps" in result.attrs:
        return np.asarray(result.attrs["eval_steps"], np.int64)
    if dim == "stat_step" and "stats_steps" in result.attrs:
        return np.asarray(result.attrs["stats_steps"], np.int64)
    return np.arange(size)


def _layer_labels(result, dim: str, size: int) -> dict[str, np.ndarray]:
    """A model sweep's layers by name: ``path`` and ``type`` of each (``attrs["layers"]``,
    ``attrs["layer_types"]``), beside the 1-based ``layer``; nothing for other results."""
    if dim != "layer":
        return {}
    out = {}
    for column, key in (("path", "layers"), ("type", "layer_types")):
        names = result.attrs.get(key)
        if isinstance(names, list) and len(names) == size:
            out[column] = np.asarray(names, object)
    return out


def _ds_dim(name: str, dim: str) -> str:
    return dim if dim in SHARED_DIMS else f"{name}_{dim}"


def to_xarray(result):
    """An ``xarray.Dataset``: every field over ``(*dims, *field_dims)``, with coordinates."""
    xr = require("xarray")
    n = len(result.dims)
    coords: dict[str, Any] = {d: list(result.coords[d]) for d in result.dims}
    data_vars = {}
    for name, arr in result.fields.items():
        own = [_ds_dim(name, d) for d in result.field_dims[name]]
        for d, ds_d, size in zip(result.field_dims[name], own, arr.shape[n:], strict=True):
            values = _trailing_coords(result, d, size)
            if ds_d in coords and not np.array_equal(coords[ds_d], values):
                raise ValueError(
                    f"to_xarray: field {name!r} has {size} {d!r} entries where another field "
                    f"has {len(coords[ds_d])}; a Dataset needs one size per dim"
                )
            coords[ds_d] = values
            for column, labels in _layer_labels(result, d, size).items():
                coords[column] = (ds_d, labels.astype(str))
        data_vars[name] = ((*result.dims, *own), np.asarray(arr))
    meta = {
        "kind": type(result)._saved_kind(),
        "dims": list(result.dims),
        "field_dims": {k: list(v) for k, v in result.field_dims.items()},
        "aliases": {d: [[k, v] for k, v in t.items()] for d, t in result.aliases.items()},
        "attrs": result.attrs,
    }
    return xr.Dataset(data_vars, coords=coords, attrs={META: json.dumps(jsonable(meta))})


def from_xarray(cls, ds):
    """The result that :func:`to_xarray` made ``ds`` from (after a netCDF or zarr trip too), of
    the kind it records (``cls._read_as``: ``cls`` itself, or the kind of ``cls`` it was)."""
    if META not in getattr(ds, "attrs", {}):
        raise ValueError(
            f"from_xarray: this Dataset has no {META!r} attribute; it was not written by "
            "Result.to_xarray (its variables and dims alone do not say which are fields)"
        )
    meta = json.loads(ds.attrs[META])
    cls = cls._read_as(meta.get("kind"), "this Dataset")
    dims = tuple(meta["dims"])
    fields = {}
    for name, own in meta["field_dims"].items():
        if name not in ds.data_vars:
            raise ValueError(f"from_xarray: the Dataset lacks the field {name!r}")
        order = (*dims, *(_ds_dim(name, d) for d in own))
        fields[name] = np.asarray(ds[name].transpose(*order).values)
    coords = {d: tuple(v.item() for v in np.asarray(ds[d].values)) for d in dims}
    return cls(
        dims=dims,
        coords=coords,
        fields=fields,
        field_dims={k: tuple(v) for k, v in meta["field_dims"].items()},
        aliases={d: dict(map(tuple, pairs)) for d, pairs in meta["aliases"].items()},
        attrs=meta["attrs"],
    )


def _bin_edges(result, act: str | None, bins: int) -> np.ndarray:
    """The float32 edges of the histogram of an activation (None: the result's only one)."""
    table = result.attrs.get("hist_edges")
    if not table:
        return np.full(bins + 1, np.nan)
    if isinstance(table, list):  # one range for every layer (a model grid's)
        return np.asarray(table, np.float64)
    if act is None:  # the activation was fixed to a scalar: the one table entry
        act = next(iter(table))
    return np.asarray(table[act], np.float64)


def to_dataframe(result, *, along: tuple[str, ...] = ("layer",), hist: bool = False):
    """A tidy DataFrame of the fields whose trailing dims are ``along`` (and scalar fields).

    One row per combination and entry of ``along``; the dims are columns, then
    ``along``'s coordinates (``layer`` 1-based; ``eval`` and ``stat_step`` as the
    step they were taken at), then one column per field. With ``hist=True``
    (a sweep's histogram), one row per combination, layer and bin instead, with
    ``bin``, ``bin_lo``, ``bin_hi`` and ``count``.
    """
    pd = require("pandas")
    along = tuple(along)
    if hist:
        if "hist" not in result.fields:
            raise ValueError(
                f"to_dataframe(hist=True): this result has no 'hist' field; fields: {list(result.fields)}"
            )
        along = tuple(result.field_dims["hist"])
    names = [
        k
        for k, own in result.field_dims.items()
        if (own == along if hist else own in ((), along)) and (not hist or k == "hist")
    ]
    if not names:
        shapes = sorted({tuple(v) for v in result.field_dims.values()})
        raise ValueError(
            f"to_dataframe: no field has trailing dims {along}; the result's fields have {shapes}"
        )
    n = len(result.dims)
    sizes = {result.fields[k].shape[n:] for k in names if result.field_dims[k]}
    if len(sizes) > 1:
        raise ValueError(f"to_dataframe: fields {names} disagree on the sizes of {along}: {sizes}")
    trailing = sizes.pop() if sizes else ()
    grids = np.meshgrid(
        *(np.arange(len(result.coords[d])) for d in result.dims),
        *(np.arange(s) for s in trailing),
        indexing="ij",
    )
    columns: dict[str, Any] = {}
    for d, idx in zip(result.dims, grids[:n], strict=True):
        labels = np.empty(len(result.coords[d]), object)
        labels[:] = list(result.coords[d])
        columns[d] = labels[idx.ravel()]
        if all(isinstance(v, int | np.integer) for v in result.coords[d]):
            columns[d] = columns[d].astype(np.int64)
    for d, size, idx in zip(along, trailing, grids[n:], strict=True):
        name = "step" if d in ("eval", "stat_step") else d
        columns[name] = _trailing_coords(result, d, size)[idx.ravel()]
        for column, labels in _layer_labels(result, d, size).items():
            columns[column] = labels[idx.ravel()]
    shape = grids[0].shape
    for k in names:
        arr = result.fields[k]
        if not result.field_dims[k]:
            arr = np.broadcast_to(arr.reshape(arr.shape + (1,) * len(trailing)), shape)
        columns["count" if hist else k] = np.asarray(arr).reshape(-1)
    frame = pd.DataFrame(columns)
    if hist:
        bins = trailing[-1]
        lo, hi = np.empty(len(frame)), np.empty(len(frame))
        b = frame["bin"].to_numpy()
        keys = frame["activation"] if "activation" in frame else [None] * len(frame)
        for act in set(keys):
            edges = _bin_edges(result, act, bins)
            rows = np.asarray(keys == act) if act is not None else np.ones(len(frame), bool)
            lo[rows], hi[rows] = edges[b[rows]], edges[b[rows] + 1]
        frame.insert(frame.columns.get_loc("bin") + 1, "bin_lo", lo)
        frame.insert(frame.columns.get_loc("bin_lo") + 1, "bin_hi", hi)
    return frame
