"""What every grid has (jaxinit/_dims.py's GridBase): one name, type, limit and error per
setting in Grid and TrainGrid, and the old names kept for one release."""

import dataclasses
import re

import jax
import numpy as np
import pytest

import jaxinit as ji

GRID = dict(inits=["he_normal"], activations="relu", depth=2, width=4, batch_size=4)
TRAIN = dict(inits=["he_normal"], hidden=(4,), steps=2)
MAKERS = {
    "Grid": lambda **kw: ji.Grid(**{**GRID, **kw}),
    "TrainGrid": lambda **kw: ji.TrainGrid(**{**TRAIN, **kw}),
}


def _error(make, **kw) -> tuple[type, str]:
    with pytest.raises((TypeError, ValueError)) as info:
        make(**kw)
    return info.type, str(info.value)


@pytest.mark.parametrize(
    "seeds", [0, -2, [], [1, 1], [-1], [2**31], [0, 2**31 - 1, 2**31], "3", 2.0, [1, 2.0], True]
)
def test_both_grids_refuse_bad_seeds_with_the_same_error(seeds):
    kind, grid = _error(MAKERS["Grid"], seeds=seeds)
    kind_t, train = _error(MAKERS["TrainGrid"], seeds=seeds)
    assert grid.startswith("Grid: ")
    assert train.startswith("TrainGrid: ")
    assert (kind, grid.removeprefix("Grid: ")) == (kind_t, train.removeprefix("TrainGrid: "))


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        (3, range(3)),
        (range(2, 5), range(2, 5)),
        ([4, 5, 6], range(4, 7)),  # consecutive: its range, so equal grids compare equal
        ([5, 1], (5, 1)),
        ((0, 2), (0, 2)),
    ],
)
def test_both_grids_store_seeds_in_one_canonical_form(given, stored):
    for make in MAKERS.values():
        seeds = make(seeds=given).seeds
        assert seeds == stored
        assert type(seeds) is type(stored)
    assert ji.TrainGrid(**TRAIN, seeds=[0, 1]) == ji.TrainGrid(**TRAIN, seeds=2)


@pytest.mark.parametrize(
    ("root_seed", "kind"), [(-1, ValueError), (2**32, ValueError), (1.0, TypeError)]
)
def test_both_grids_take_root_seeds_in_0_to_2_32(root_seed, kind):
    for owner, make in MAKERS.items():
        with pytest.raises(kind, match=rf"^{owner}: root_seed must be"):
            make(root_seed=root_seed)
    last = 2**32 - 1
    grid, tgrid = MAKERS["Grid"](root_seed=last), MAKERS["TrainGrid"](root_seed=np.int64(last))
    assert tgrid.root_seed == last
    assert type(tgrid.root_seed) is int
    assert jax.numpy.array_equal(
        jax.random.key_data(grid.seed_key(3)), jax.random.key_data(tgrid.seed_key(3))
    )


def test_describe_has_one_vocabulary():
    grid = MAKERS["Grid"](seeds=[2, 3], bias_inits="zeros")
    tgrid = MAKERS["TrainGrid"](seeds=[2, 3], activations=["relu", "tanh"])
    g, t = grid.describe(), tgrid.describe()
    shared = {"init", "activation", "width", "seed", "dims", "bias_init", "batch_size", "root_seed"}
    assert shared <= set(g)
    assert shared <= set(t)
    assert g["seed"] == t["seed"] == [2, 3]
    assert g["dims"] == ["init", "activation", "seed"] == list(grid.dims)
    assert t["dims"] == ["init", "activation", "seed"] == list(tgrid.dims)
    assert "batch" not in g
    assert "scalar_dims" not in g
    assert ji.Grid.from_description(g).describe() == g


def test_aliases_merge_alike_and_survive_replace():
    grid = MAKERS["Grid"](inits=["xavier_normal"], activations=["swish"])
    tgrid = MAKERS["TrainGrid"](inits=["xavier_normal"], activations=["swish", "relu"])
    want = {"init": {"xavier_normal": "glorot_normal"}, "activation": {"swish": "silu"}}
    assert grid.aliases == want
    assert tgrid.aliases == want
    assert dataclasses.replace(grid, depth=3).aliases == want
    assert dataclasses.replace(tgrid, steps=3).aliases == want
    # an alias whose spec the new grid lacks is dropped; one activation is no dim in training
    assert dataclasses.replace(tgrid, activations="relu").aliases == {"init": want["init"]}
    for make in MAKERS.values():
        with pytest.raises(TypeError, match=r"Grid: aliases must be a mapping"):
            make(aliases=[("init", {})])


# -- the old names, one more release --------------------------------------------------------


def _warns(old: str, new: str):
    return pytest.warns(
        DeprecationWarning, match=rf"{re.escape(old)}.* deprecated.*{re.escape(new)}"
    )


def test_grid_batch_is_batch_size_with_a_warning():
    with _warns("Grid(batch=...)", "Grid(batch_size=...)"):
        grid = ji.Grid(**{k: v for k, v in GRID.items() if k != "batch_size"}, batch=6)
    assert grid.batch_size == 6
    with _warns("Grid.batch", "Grid.batch_size"):
        assert grid.batch == 6
    with pytest.raises(TypeError, match=r"give batch_size= only; batch= is its deprecated name"):
        ji.Grid(**GRID, batch=6)


def test_traingrid_activation_and_bias_init_are_the_plural_names_with_a_warning():
    with _warns("TrainGrid(activation=...)", "TrainGrid(activations=...)"):
        tgrid = ji.TrainGrid(**TRAIN, activation=["tanh", "relu"])
    assert [a.spec for a in tgrid.activations] == ["tanh", "relu"]
    assert "activation" in tgrid.dims
    with _warns("TrainGrid(bias_init=...)", "TrainGrid(bias_inits=...)"):
        tgrid = ji.TrainGrid(**TRAIN, bias_init="normal(stddev=0.1)")
    assert tgrid.bias_inits.spec == "normal(stddev=0.1)"
    with _warns("TrainGrid.bias_init", "TrainGrid.bias_inits"):
        assert tgrid.bias_init is tgrid.bias_inits
    with _warns("TrainGrid.activation", "TrainGrid.activations"):
        assert tgrid.activation is tgrid.activations
    with _warns("TrainGrid.model_key", "TrainGrid.seed_key"):
        key = tgrid.model_key(5)
    assert jax.numpy.array_equal(jax.random.key_data(key), jax.random.key_data(tgrid.seed_key(5)))
    with pytest.raises(TypeError, match=r"give activations= only"):
        ji.TrainGrid(**TRAIN, activation="tanh", activations="relu")


def test_the_grids_signatures_have_the_new_names_only():
    import inspect

    assert "batch_size" in inspect.signature(ji.Grid).parameters
    assert "batch" not in inspect.signature(ji.Grid).parameters
    params = inspect.signature(ji.TrainGrid).parameters
    assert {"activations", "bias_inits"} <= set(params)
    assert not {"activation", "bias_init"} & set(params)
