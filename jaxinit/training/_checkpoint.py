r"""Training checkpoints: their file format, named by the models' Flax and Optax tree paths,
and :func:`restore_model`, which gives back one trained model as an ``nnx.Module``.

``train(grid, data, out=DIR)`` writes, through :class:`jaxinit._store.Store` (atomic writes,
a lock, no link followed, a file of another run or format refused):

- ``DIR/train.json``: ``{"schema_version": 4, "fingerprint": ..., "spec": {"grid":
  grid.describe(), "data": ..., "eval_data": ...}}``;
- ``DIR/checkpoint.npz``, an archive that ``np.load`` reads, of the arrays

  =================================  =========================================================
  ``step``                           int64: the optimizer steps done
  ``loss``, ``test_loss``, ...       the curves so far, ``(groups, models, ...)``: the fields
                                     of the result (NaN where not yet recorded)
  ``group/<a>/params/<path>``        ``(models, *shape)``: the parameters of group ``a``'s
                                     models; ``<path>`` is the parameter's path in the
                                     ``nnx.Module`` joined by ``/``, as ``nnx.to_flat_state``
                                     gives it: ``layers/0/kernel``, ``layers/0/bias``, ...,
                                     ``out/kernel``, ``out/bias``
  ``group/<a>/opt_state/<path>``     ``(models, *shape)``: their optax state; ``<path>`` is
                                     the leaf's key path (``jax.tree_util.keystr(path,
                                     simple=True, separator="/")``), an ``nnx.Variable``
                                     named by its own path: ``0/mu/layers/0/kernel`` for
                                     Adam, ``hyperparams/learning_rate`` and
                                     ``inner_state/0/...`` with a ``learning_rate`` dim
  ``_fingerprint``, ``_sha256``      the run's fingerprint, and the checksum of the arrays
  =================================  =========================================================

- ``DIR/result/``: the :class:`TrainResult`, once the run has finished.

A group is one compiled program's models: ``a`` is the index of the models' (activation,
width) in ``itertools.product(spec["grid"]["activation"], spec["grid"]["width"])``, and a
model's row ``m`` the index of its (init, learning_rate, seed) in
``itertools.product(spec["grid"]["init"], spec["grid"]["learning_rate"],
spec["grid"]["seed"])`` (a grid without a width or learning_rate dim lists ``[None]``).
A run of several processes writes one such directory per block of seeds,
``DIR/seeds-<first>-<last>/``. By hand, model ``m`` of group ``a`` into a Flax module of the
same shapes::

    with np.load("DIR/checkpoint.npz") as z:
        p = f"group/{a}/params/"
        flat = {tuple(int(s) if s.isdigit() else s for s in k[len(p):].split("/")): z[k][m]
                for k in z.files if k.startswith(p)}
    model = MLP(d_in, hidden, d_out, activation=act, rngs=nnx.Rngs(0))  # any parameters
    nnx.update(model, nnx.from_flat_state(flat))

:func:`restore_model` does this, checking the files as a resumed run does.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxinit import activations as _activations
from jaxinit import initializers as _initializers
from jaxinit._checks import check_path, closest_hint
from jaxinit._io import refuse_link
from jaxinit._store import Store, blocks_in
from jaxinit.sweeping._model_grid import check_factory, qualname
from jaxinit.training._grid import MLP

__all__ = ["restore_model"]

# the format of train.json and checkpoint.npz; a directory of another format is refused
CHECKPOINT_SCHEMA = 4
# the state of a group's models that a checkpoint holds, by the _Group field that holds it
PARTS = ("params", "opt_state")
# what picks a trained model, in the order of its group (activation, width) and row
# (init, learning_rate, seed)
SETTINGS = ("init", "activation", "width", "learning_rate", "seed")


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def leaf_names(tree: Any) -> list[str]:
    """Each leaf's key path joined by ``/``, in ``jax.tree.leaves`` order; an ``nnx.Variable``
    is named by its own path (``layers/0/kernel``, not ``layers/0/kernel/value``)."""
    paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_variable)[0]]
    names = [jax.tree_util.keystr(p, simple=True, separator="/") for p in paths]
    if len(names) != len(jax.tree.leaves(tree)):  # a Variable of several arrays
        raise ValueError(
            f"a checkpoint names one array per leaf; this state has {len(jax.tree.leaves(tree))} "
            f"arrays under {len(names)} paths"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # a key holding "/": two paths would read as one
        raise ValueError(
            f"the leaves {twice} of this state have the same path once joined by '/'; a "
            "checkpoint names each leaf by its path (give the optimizer's state keys without '/')"
        )
    return names


def named(prefix: str, tree: Any) -> dict[str, Any]:
    """``tree``'s leaves by ``<prefix>/<leaf path>`` (:func:`leaf_names`)."""
    return dict(
        zip((f"{prefix}/{n}" for n in leaf_names(tree)), jax.tree.leaves(tree), strict=True)
    )


def unnamed(prefix: str, like: Any, saved: Mapping[str, Any]) -> Any:
    """The tree of ``like``'s structure with the arrays ``saved`` holds under its names."""
    leaves = [saved[f"{prefix}/{n}"] for n in leaf_names(like)]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def group_prefix(a: int, part: str) -> str:
    """The names of group ``a``'s ``part`` (one of :data:`PARTS`) in a checkpoint."""
    return f"group/{a}/{part}"


def canonical(setting: str, value: Any) -> Any:
    """An init or activation as the grid's description names it (``"xavier_normal"`` is
    ``"glorot_normal"``); anything else as given."""
    get = {"init": _initializers.get, "activation": _activations.get}.get(setting)
    if get is None or not isinstance(value, str):
        return value
    try:
        return get(value).spec
    except (ValueError, TypeError):
        return value  # not a spec: reported as an unknown label


def pick(grid: Mapping[str, Any], given: Mapping[str, Any], what: str) -> dict[str, int]:
    """The index of each of :data:`SETTINGS` that ``given`` picks among the labels of the
    grid described as ``grid`` (``TrainGrid.describe()``); a setting given as None must
    have one label."""
    out = {}
    for setting in SETTINGS:
        valid, value = list(grid[setting]), given.get(setting)
        if value is None:
            if len(valid) != 1:
                raise ValueError(f"{what}: give {setting}=, one of {valid}")
            out[setting] = 0
            continue
        label = canonical(setting, value)
        found = [i for i, v in enumerate(valid) if type(v) is not bool and v == label]
        if isinstance(label, bool) or not found:
            raise ValueError(
                f"{what}: unknown {setting} {value!r}; valid labels: {valid}."
                + closest_hint(value, [v for v in valid if isinstance(v, str)])
            )
        out[setting] = found[0]
    return out


def position(grid: Mapping[str, Any], index: Mapping[str, int]) -> tuple[int, int]:
    """``(group, row)`` of the model at ``index`` (:func:`pick`) in a checkpoint."""
    size = {s: len(grid[s]) for s in SETTINGS}
    group = index["activation"] * size["width"] + index["width"]
    row = (index["init"] * size["learning_rate"] + index["learning_rate"]) * size["seed"]
    return group, row + index["seed"]


def module(activation: str, params: Mapping[str, np.ndarray], where: Any) -> MLP:
    """The :class:`MLP` of ``activation`` holding ``params`` (``layers/<l>/kernel``, ...,
    ``out/bias``: the paths of :func:`leaf_names`); its shapes are the arrays'."""
    n_hidden = sum(1 for k in params if k.startswith("layers/") and k.endswith("/kernel"))
    try:
        kernels = [params[f"layers/{l}/kernel"] for l in range(n_hidden)] + [params["out/kernel"]]
    except KeyError as e:
        raise ValueError(f"{where} holds no parameter {e.args[0]!r} of an MLP") from None
    sizes = (kernels[0].shape[0], *(k.shape[-1] for k in kernels))
    abstract = nnx.eval_shape(
        lambda: MLP(sizes[0], sizes[1:-1], sizes[-1], activation=activation, rngs=nnx.Rngs(0))
    )
    return filled(abstract, params, where, "the MLP")


def filled(abstract: nnx.Module, params: Mapping[str, np.ndarray], where: Any, kind: str):
    """The module ``abstract`` (from ``nnx.eval_shape``) holding ``params`` by their paths
    (:func:`leaf_names`), each of the shape and dtype it has there."""
    graphdef, state = nnx.split(abstract)
    names, shapes = leaf_names(state), jax.tree.leaves(state)
    if set(names) != set(params):
        raise ValueError(
            f"{where} holds the parameters {sorted(params)}; {kind} has {sorted(names)}"
        )
    for n, s in zip(names, shapes, strict=True):
        if params[n].shape != s.shape or params[n].dtype != s.dtype:
            raise ValueError(
                f"{where}: parameter {n!r} has shape {params[n].shape} and dtype "
                f"{params[n].dtype}; {kind} has {s.shape} and {s.dtype}"
            )
    leaves = [jnp.asarray(params[n]) for n in names]
    return nnx.merge(graphdef, jax.tree.unflatten(jax.tree.structure(state), leaves))


def _spec(run: pathlib.Path) -> dict:
    """The description in the manifest of the training run ``run`` ({} where it is
    unreadable: the store that opens it then says what is wrong)."""
    return Store.read_spec(run, "train") or {}


def _run_of(root: pathlib.Path, seed: Any) -> pathlib.Path:
    """The training run in ``root`` that holds ``seed``: ``root`` itself, or the block of a
    run of several processes (``root/seeds-<first>-<last>``)."""
    if not root.is_dir():
        raise FileNotFoundError(f"restore_model: no directory at out={str(root)!r}")
    if os.path.lexists(Store.manifest_path(root, "train")):
        return root
    blocks = blocks_in(root)
    if not blocks:
        raise FileNotFoundError(
            f"restore_model: {root} holds no training run (no train.json); give the out= "
            "directory of jaxinit.train or `jaxinit train --out`"
        )
    seeds = []
    for block in blocks:
        refuse_link(block)
        held = _spec(block).get("grid", {}).get("seed", [])
        if seed in held and not isinstance(seed, bool):
            return block
        seeds.extend(held)
    raise ValueError(f"restore_model: unknown seed {seed!r}; valid labels: {sorted(seeds)}")


def restore_model(
    out: str | os.PathLike,
    *,
    init: str,
    seed: int,
    activation: str | None = None,
    width: int | None = None,
    learning_rate: float | None = None,
    model: Any = None,
) -> nnx.Module:
    """One trained model of the run in ``out``, as an ``nnx.Module`` (a :class:`MLP`, or
    with ``model`` the factory's module).

    Reads the last checkpoint of ``train(grid, data, out=out)``: the parameters after
    ``grid.steps`` steps once the run has finished (``out/result`` exists), those of its
    last checkpoint while it has not. The model's forward pass is the one ``train``
    trained: ``restore_model(out, ...)(x)`` are its logits. The files are checked as a
    resumed run checks them (the run's fingerprint, each array's checksum; no link
    followed), and the directory is locked while it is read: a run still training in it
    is refused as busy.

    The files (in full, with a recipe by hand, in :mod:`jaxinit.training._checkpoint`):
    ``out/checkpoint.npz`` holds ``step``, the curves (the result's fields so far) and,
    for each group ``a`` of models sharing an (activation, width), their parameters
    ``group/<a>/params/<nnx path>`` (``layers/0/kernel``, ..., ``out/bias``) and optax
    state ``group/<a>/opt_state/<key path>``, each stacked ``(models, ...)`` in (init,
    learning_rate, seed) order; ``out/train.json`` describes the grid.

    Args:
      out: the run's directory (of one process, or of several: the block holding ``seed``).
      init: the model's initializer, as the grid named it or an alias (``"xavier_normal"``).
      seed: its seed.
      activation, width, learning_rate: its activation, width and learning rate; needed
        where the grid has several (a dim), else the grid's one.
      model: the factory ``make(rngs)`` of a run of ``TrainGrid(model=make)`` (a function
        is not stored with the run); its module, built abstractly, receives the parameters.

    Raises:
      FileNotFoundError: no training run, or no checkpoint yet, in ``out``.
      ValueError: a label the run does not hold (naming the valid ones), a checkpoint of
        another format (saying how to rerun), or a damaged or foreign file.
      jaxinit._store.StoreBusy: a RuntimeError, while a run holds the directory.
    """
    root = check_path("restore_model: out", out)
    run = _run_of(root, seed)
    spec = _spec(run)
    given = dict(init=init, seed=seed, activation=activation, width=width)
    if model is not None:
        check_factory("restore_model", model)
    with Store(run, kind="train", schema=CHECKPOINT_SCHEMA, spec=spec) as store:
        grid = spec["grid"]  # the store has checked it is this run's, of this format
        index = pick(grid, {**given, "learning_rate": learning_rate}, "restore_model")
        saved, path = store.load_checkpoint(), store.checkpoint_path
    if saved is None:
        raise FileNotFoundError(
            f"restore_model: {path} does not exist: the run has written no "
            "checkpoint yet (train writes one every checkpoint_every steps, and at the end)"
        )
    group, row = position(grid, index)
    prefix = group_prefix(group, "params") + "/"
    params = {k[len(prefix) :]: v[row] for k, v in saved.items() if k.startswith(prefix)}
    if "model" in grid:  # a run of TrainGrid(model=make)
        if model is None:
            raise ValueError(
                f"restore_model: the run in {str(root)!r} trained {grid['model']}; give its "
                "factory, restore_model(out, ..., model=make)"
            )
        abstract = nnx.eval_shape(lambda: model(nnx.Rngs(0)))
        return filled(abstract, params, path, f"the model of {qualname(model)}")
    if model is not None:
        raise ValueError(
            f"restore_model: the run in {str(root)!r} trained the built-in MLP; leave model= out"
        )
    return module(grid["activation"][index["activation"]], params, path)


def kept_params(fields: Mapping[str, np.ndarray], n_hidden: int) -> dict[str, np.ndarray]:
    """The parameters of one model of ``keep_params`` fields (``kernel_<l>``, ``bias_<l>``;
    ``l = n_hidden`` the output layer) by their paths in the :class:`MLP`."""
    out = {}
    for l in range(n_hidden + 1):
        layer = "out" if l == n_hidden else f"layers/{l}"
        out.update({f"{layer}/{k}": np.asarray(fields[f"{k}_{l}"]) for k in ("kernel", "bias")})
    return out


def labels_of(grid: Mapping[str, Any], index: Mapping[str, int]) -> dict[str, Any]:
    """The label of each of :data:`SETTINGS` at ``index`` (:func:`pick`)."""
    return {s: grid[s][i] for s, i in index.items()}
