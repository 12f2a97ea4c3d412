"""Result and its kinds: selection, records, files and concatenation on small synthetic results.

Every array is filled with ``np.arange`` so that a value names its position.
"""

import json
import os

import numpy as np
import pytest

from jaxinit import Result, SweepResult
from jaxinit._result_io import SCHEMA_VERSION

INITS = ("normal(stddev=1.0)", "he_normal")
ACTS = ("tanh", "relu", "erf")
SEEDS = (0, 1)
LAYERS, BINS = 4, 5


def make(**overrides):
    shape = (len(INITS), len(ACTS), len(SEEDS))
    kwargs = dict(
        dims=("init", "activation", "seed"),
        coords={"init": INITS, "activation": ACTS, "seed": SEEDS},
        fields={
            "pre_var": np.arange(np.prod(shape) * LAYERS, dtype=np.float32).reshape(*shape, LAYERS),
            "hist": np.arange(np.prod(shape) * LAYERS * BINS, dtype=np.int32).reshape(
                *shape, LAYERS, BINS
            ),
        },
        field_dims={"pre_var": ("layer",), "hist": ("layer", "bin")},
        aliases={"init": {"normal(stddev=1)": "normal(stddev=1.0)", "kaiming_normal": "he_normal"}},
        attrs={"bin_edges": np.linspace(-1.0, 1.0, BINS + 1), "grid": {"depth": 4}},
    )
    kwargs.update(overrides)
    return SweepResult(**kwargs)


@pytest.fixture
def res():
    return make()


# -- construction ---------------------------------------------------------------------------------


def test_attribute_access_and_repr(res):
    assert res.pre_var.shape == (2, 3, 2, LAYERS)
    assert res.hist.shape == (2, 3, 2, LAYERS, BINS)
    assert res.pre_var is res.fields["pre_var"]
    assert res.shape == (2, 3, 2)
    assert repr(res) == (
        "SweepResult(init=2, activation=3, seed=2; fields: pre_var[layer=4], hist[layer=4, bin=5])"
    )
    with pytest.raises(AttributeError, match=r"'pre_vr'.*pre_var, hist.*Did you mean 'pre_var'"):
        res.pre_vr


def test_item_access_is_the_typed_spelling(res):
    assert res["hist"] is res.hist is res.fields["hist"]
    with pytest.raises(KeyError, match=r"unknown field 'hst'.*Did you mean 'hist'"):
        res["hst"]
    no_grads = make(attrs={"grid": {"gradients": False}})
    with pytest.raises(KeyError, match=r"ran with gradients=False, so it has no 'grad_var'"):
        no_grads["grad_var"]
    with pytest.raises(AttributeError, match=r"gradients=False"):
        no_grads.weight_grad_norm


def test_fields_are_read_only_views(res):
    source = np.zeros((2, 3, 2, LAYERS))
    r = make(fields={"pre_var": source}, field_dims={"pre_var": ("layer",)})
    with pytest.raises(ValueError, match="read-only"):
        r.pre_var[0, 0, 0, 0] = 1.0
    source[0, 0, 0, 0] = 7.0  # the caller's array stays theirs
    assert r.pre_var[0, 0, 0, 0] == 7.0


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {
                "fields": {"pre_var": np.zeros((2, 3, 3, LAYERS))},
                "field_dims": {"pre_var": ("layer",)},
            },
            r"field 'pre_var' has shape \(2, 3, 3, 4\); expected \(2, 3, 2\)",
        ),
        (
            {"fields": {"pre_var": np.zeros((2, 3, 2))}, "field_dims": {"pre_var": ("layer",)}},
            r"field 'pre_var' has shape \(2, 3, 2\).*1 trailing dim",
        ),
        ({"field_dims": {"pre_var": ("layer",)}}, "field_dims names"),
        ({"coords": {"init": INITS, "activation": ACTS}}, r"coords have dims.*'seed'"),
        (
            {"coords": {"init": INITS, "activation": ("tanh", "tanh", "erf"), "seed": SEEDS}},
            r"dim 'activation' repeats labels \['tanh'\]",
        ),
        (
            {"coords": {"init": INITS, "activation": ACTS, "seed": (0, True)}},
            "labels are str, int or float; got True",
        ),
        (
            {"fields": {"sel": np.zeros((2, 3, 2))}, "field_dims": {"sel": ()}},
            "field name 'sel'",
        ),
        (
            {
                "fields": {"pre_var": np.zeros((2, 3, 2, 4), dtype=object)},
                "field_dims": {"pre_var": ("layer",)},
            },
            "dtype object",
        ),
        ({"aliases": {"width": {"a": "b"}}}, "aliases for unknown dim 'width'"),
        ({"aliases": {"init": {"he_normal": "normal(stddev=1.0)"}}}, "shadows the label"),
        ({"attrs": {"when": object()}}, "attrs must be JSON-able"),
    ],
)
def test_construction_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        make(**overrides)


def test_labels_are_normalized_to_python_scalars():
    r = make(coords={"init": INITS, "activation": ACTS, "seed": np.array([0, 1])})
    assert r.coords["seed"] == (0, 1)
    assert all(type(s) is int for s in r.coords["seed"])


# -- sel, squeeze -----------------------------------------------------------------------------------


def test_sel_single_labels_drop_dims(res):
    out = res.sel(init="he_normal", activation="relu")
    assert out.dims == ("seed",)
    assert out.coords == {"seed": SEEDS}
    np.testing.assert_array_equal(out.pre_var, res.pre_var[1, 1])
    np.testing.assert_array_equal(out.hist, res.hist[1, 1])
    assert out.attrs["grid"] == {"depth": 4}
    assert "init" not in out.aliases


def test_sel_by_alias_and_numpy_label(res):
    by_alias = res.sel(init="normal(stddev=1)", seed=np.int64(1))
    np.testing.assert_array_equal(by_alias.pre_var, res.pre_var[0, :, 1])
    assert by_alias.equals(res.sel(init="normal(stddev=1.0)", seed=1))
    assert by_alias.dims == ("activation",)


def test_sel_list_keeps_dim_in_given_order(res):
    out = res.sel(activation=["erf", "tanh"], init=("kaiming_normal",))
    assert out.dims == ("init", "activation", "seed")
    assert out.coords["activation"] == ("erf", "tanh")
    assert out.coords["init"] == ("he_normal",)  # aliases resolve to the canonical label
    np.testing.assert_array_equal(out.pre_var, res.pre_var[1:2][:, [2, 0]])
    np.testing.assert_array_equal(out.hist, res.hist[1:2][:, [2, 0]])


def test_chained_sel_equals_one_sel(res):
    chained = res.sel(seed=[1]).sel(activation="erf").sel(init="he_normal")
    assert chained.equals(res.sel(init="he_normal", activation="erf", seed=[1]))
    np.testing.assert_array_equal(chained.pre_var, res.pre_var[1, 2, 1:2])


def test_squeeze(res):
    out = res.sel(init="he_normal", seed=[0]).squeeze()
    assert out.dims == ("activation",)
    assert out.pre_var.shape == (3, LAYERS)
    np.testing.assert_array_equal(out.pre_var, res.pre_var[1, :, 0])
    assert res.squeeze().equals(res)  # nothing of length 1


def test_sel_errors(res):
    with pytest.raises(
        ValueError, match=r"combination dims \['init', 'activation', 'seed'\].*'act'"
    ):
        res.sel(act="tanh")
    with pytest.raises(ValueError, match="'layer' is a field dim"):
        res.sel(layer=0)
    with pytest.raises(
        ValueError, match=r"unknown init label 'he_normall'.*Did you mean 'he_normal'\?"
    ):
        res.sel(init="he_normall")
    with pytest.raises(ValueError, match="unknown seed label '1'"):  # labels keep their types
        res.sel(seed="1")
    with pytest.raises(ValueError, match="unknown seed label True"):
        res.sel(seed=True)
    with pytest.raises(ValueError, match="selects a label twice"):
        res.sel(init=["he_normal", "kaiming_normal"])


def test_sel_alias_of_label_no_longer_held(res):
    kept = res.sel(init=["he_normal"])
    with pytest.raises(ValueError, match=r"alias of 'normal\(stddev=1\.0\)', which this result"):
        kept.sel(init="normal(stddev=1)")


# -- iteration, records -----------------------------------------------------------------------------


def test_len_and_iteration_order(res):
    assert len(res) == 12
    items = list(res)
    assert len(items) == 12
    labels, values = items[0]
    assert labels == {"init": INITS[0], "activation": "tanh", "seed": 0}
    labels, values = items[7]  # C order: 7 = (1, 0, 1)
    assert labels == {"init": "he_normal", "activation": "tanh", "seed": 1}
    np.testing.assert_array_equal(values["pre_var"], res.pre_var[1, 0, 1])
    np.testing.assert_array_equal(values["hist"], res.hist[1, 0, 1])
    # pre_var counts up in C order, so the first entries of all rows do too
    firsts = [v["pre_var"][0] for _, v in items]
    assert firsts == [float(LAYERS * i) for i in range(12)]


def test_to_records(res):
    records = res.to_records()
    assert len(records) == 12 * LAYERS
    assert records[0] == {
        "init": INITS[0],
        "activation": "tanh",
        "seed": 0,
        "layer": 1,  # from 1, as in every table and figure
        "pre_var": 0.0,
    }
    row = records[7 * LAYERS + 3]
    assert row == {
        "init": "he_normal",
        "activation": "tanh",
        "seed": 1,
        "layer": 4,
        "pre_var": 31.0,
    }
    assert type(row["pre_var"]) is float
    assert type(row["layer"]) is int


def test_to_records_repeats_scalar_fields_on_layer_rows(res):
    loss = np.arange(12.0).reshape(2, 3, 2)
    r = make(
        fields={**res.fields, "loss": loss},
        field_dims={**res.field_dims, "loss": ()},
    )
    records = r.to_records(fields=["pre_var", "loss"])
    assert [rec["loss"] for rec in records[: 2 * LAYERS]] == [0.0] * LAYERS + [1.0] * LAYERS
    only_scalar = r.to_records(fields="loss")
    assert len(only_scalar) == 12
    assert "layer" not in only_scalar[0]
    assert [rec["loss"] for rec in only_scalar] == list(np.arange(12.0))


def test_to_records_errors(res):
    with pytest.raises(ValueError, match=r"'hist' has field dims \('layer', 'bin'\)"):
        res.to_records(fields=["pre_var", "hist"])
    with pytest.raises(ValueError, match=r"unknown field 'pre'.*Did you mean 'pre_var'"):
        res.to_records(fields=["pre"])


# -- save / load -----------------------------------------------------------------------------------


def test_round_trip(res, tmp_path):
    pre = res.pre_var.copy()
    pre[0, 1, 0, 2] = np.nan
    r = make(fields={"pre_var": pre, "hist": res.hist})
    r.save(tmp_path / "res")
    back = SweepResult.load(tmp_path / "res")
    assert back.equals(r)
    assert back.pre_var.dtype == np.float32
    assert back.hist.dtype == np.int32
    assert np.isnan(back.pre_var[0, 1, 0, 2])
    assert back.coords["seed"] == SEEDS
    assert all(type(s) is int for s in back.coords["seed"])
    assert back.aliases == r.aliases
    assert back.field_dims == {"pre_var": ("layer",), "hist": ("layer", "bin")}
    assert back.attrs["bin_edges"] == pytest.approx(list(np.linspace(-1.0, 1.0, BINS + 1)))
    assert back.sel(init="kaiming_normal").equals(r.sel(init="he_normal"))
    manifest = json.loads((tmp_path / "res" / "manifest.json").read_text())
    assert manifest["schema_version"] == SCHEMA_VERSION == 2
    assert {"python", "numpy"} <= set(manifest["versions"])
    assert manifest["created"].endswith("+00:00")
    assert sorted(os.listdir(tmp_path / "res")) == ["arrays.npz", "manifest.json"]


def test_int_alias_keys_survive_json(tmp_path):
    r = make(aliases={"seed": {10: 0}})
    r.save(tmp_path / "r")
    back = SweepResult.load(tmp_path / "r")
    assert back.aliases == {"seed": {10: 0}}
    assert back.sel(seed=10).equals(r.sel(seed=0))


def test_equals_is_bitwise(res):
    assert res.equals(make())
    changed = res.pre_var.copy()
    changed[1, 2, 1, 3] += 1
    assert not res.equals(make(fields={"pre_var": changed, "hist": res.hist}))
    assert not res.equals(
        make(fields={"pre_var": res.pre_var.astype(np.float64), "hist": res.hist})
    )
    assert not res.equals(res.sel(seed=[1, 0]))
    negzero = np.zeros_like(res.pre_var)
    negzero[0, 0, 0, 0] = -0.0
    zeros = make(fields={"pre_var": np.zeros_like(res.pre_var), "hist": res.hist})
    assert not zeros.equals(make(fields={"pre_var": negzero, "hist": res.hist}))
    assert not res.equals(res.pre_var)


def test_save_replaces_existing_result_whole(res, tmp_path):
    target = tmp_path / "res"
    make(fields={"pre_var": res.pre_var}, field_dims={"pre_var": ("layer",)}).save(target)
    res.sel(seed=[1]).save(target)
    back = SweepResult.load(target)
    assert back.equals(res.sel(seed=[1]))
    assert sorted(os.listdir(tmp_path)) == ["res"]


def test_failed_save_keeps_previous_result(res, tmp_path, monkeypatch):
    target = tmp_path / "res"
    res.save(target)

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        res.sel(seed=[0]).save(target)
    assert SweepResult.load(target).equals(res)
    assert sorted(os.listdir(tmp_path)) == ["res"]  # no temporary directory left behind
    with pytest.raises(OSError, match="disk full"):
        res.save(tmp_path / "fresh")
    assert sorted(os.listdir(tmp_path)) == ["res"]


def test_save_refuses_to_replace_other_things(res, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved jaxinit result"):
        res.save(tmp_path / "notes")
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("version", "fix"),
    [(SCHEMA_VERSION + 1, "upgrade jaxinit"), (SCHEMA_VERSION - 1, "rerun the sweep")],
    ids=["newer", "older"],
)
def test_load_refuses_another_schema_saying_what_to_do(res, tmp_path, version, fix):
    res.save(tmp_path / "res")
    path = tmp_path / "res" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = version
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=f"has schema_version {version}, written by another") as e:
        SweepResult.load(tmp_path / "res")
    assert str(e.value).startswith(f"{path} has schema_version {version}")
    assert f"reads schema_version {SCHEMA_VERSION} only: {fix}" in str(e.value)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "manifest.json").unlink(), "manifest.json is missing"),
        (lambda d: (d / "arrays.npz").unlink(), "arrays.npz is missing"),
        (
            lambda d: (d / "manifest.json").write_text("{not json"),
            "manifest.json is not valid JSON",
        ),
        (
            lambda d: (d / "arrays.npz").write_bytes((d / "arrays.npz").read_bytes()[:100]),
            "arrays.npz is unreadable",
        ),
        (
            lambda d: np.savez(d / "arrays.npz", pre_var=np.zeros(3)),
            r"arrays.npz holds \['pre_var'\]; manifest.json names",
        ),
        (
            lambda d: np.savez(d / "arrays.npz", pre_var=np.zeros(3), hist=np.zeros(3)),
            "manifest.json and arrays.npz disagree: field 'pre_var' has shape",
        ),
    ],
)
def test_load_damaged_result_says_which_file(res, tmp_path, damage, message):
    res.save(tmp_path / "res")
    damage(tmp_path / "res")
    with pytest.raises(ValueError, match=message):
        SweepResult.load(tmp_path / "res")


def test_load_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no SweepResult directory"):
        SweepResult.load(tmp_path / "nothing")


# -- concat -------------------------------------------------------------------------------------------


def test_concat_reassembles_split(res):
    parts = [res.sel(seed=[0]), res.sel(seed=[1])]
    assert SweepResult.concat(parts, "seed").equals(res)
    assert SweepResult.concat(parts[::-1], dim="seed").equals(res.sel(seed=[1, 0]))
    by_act = [res.sel(activation=["tanh", "relu"]), res.sel(activation=["erf"])]
    assert SweepResult.concat(by_act, "activation").equals(res)


def test_concat_errors(res):
    with pytest.raises(ValueError, match="repeats labels"):
        SweepResult.concat([res, res], "seed")
    with pytest.raises(ValueError, match="other dims or labels"):
        SweepResult.concat([res.sel(seed=[0], init=["he_normal"]), res.sel(seed=[1])], "seed")
    only_pre = make(fields={"pre_var": res.pre_var}, field_dims={"pre_var": ("layer",)})
    with pytest.raises(ValueError, match="other fields"):
        SweepResult.concat([res.sel(seed=[0]), only_pre.sel(seed=[1])], "seed")
    with pytest.raises(ValueError, match="not a dim"):
        SweepResult.concat([res], "layer")
    with pytest.raises(ValueError, match="at least one"):
        SweepResult.concat([], "seed")


@pytest.mark.parametrize("round_", range(10))
def test_concurrent_saves_to_one_path_take_turns(tmp_path, round_):
    """Eight threads save different results to one path at once: every save succeeds (no
    'Directory not empty' from two renames, no 'not a saved jaxinit result' from reading a
    result another save is moving aside and deleting), and what is left is one whole result.
    Ten rounds: the race this guards against showed in about one round in twenty."""
    import threading

    base = make().fields
    results = [make(fields={k: v + i for k, v in base.items()}) for i in range(8)]
    errors, barrier = [], threading.Barrier(len(results))

    def save(r):
        barrier.wait()
        try:
            r.save(tmp_path / "result")
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=save, args=(r,)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    loaded = SweepResult.load(tmp_path / "result")
    assert any(loaded.equals(r) for r in results)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_save_refuses_a_file_in_the_way(res, tmp_path):
    (tmp_path / "result").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved jaxinit result"):
        res.save(tmp_path / "result")
    assert (tmp_path / "result").read_text() == "mine"


# -- kinds: one container, a class per kind -------------------------------------------------------


def _kinds():
    """A result of each kind, with the same labelled arrays."""
    from jaxinit.theory import Prediction
    from jaxinit.training import TrainResult

    base = make()
    parts = dict(dims=base.dims, coords=base.coords, fields=base.fields, field_dims=base.field_dims)
    return {cls: cls(**parts) for cls in (Result, SweepResult, TrainResult, Prediction)}


def test_sweep_train_and_theory_results_are_kinds_of_result_not_of_each_other():
    import jaxinit as ji
    from jaxinit.theory import Prediction
    from jaxinit.training import TrainResult

    assert "Result" in ji.__all__
    assert ji.Result is Result
    kinds = _kinds()
    train, sweep = kinds[TrainResult], kinds[SweepResult]
    assert isinstance(train, Result)
    assert isinstance(sweep, Result)
    assert not isinstance(train, SweepResult)
    assert not isinstance(sweep, TrainResult)
    assert not isinstance(kinds[Prediction], SweepResult | TrainResult)
    # the generic methods keep the kind
    assert type(train.sel(init="he_normal")) is TrainResult
    assert type(Result.concat([train.sel(seed=[0]), train.sel(seed=[1])], "seed")) is TrainResult
    # equal arrays of another kind are not an equal result
    assert sweep.equals(make())
    assert not sweep.equals(kinds[Result])
    assert not train.equals(sweep)
    with pytest.raises(ValueError, match=r"concat joins results of one kind; got \['SweepResult', 'TrainResult'\]"):  # fmt: skip
        Result.concat([sweep.sel(seed=[0]), train.sel(seed=[1])], "seed")


def test_a_kinds_own_attributes_are_reserved_for_it_only():
    """A field may not shadow an attribute of its result's class: ``eval_steps`` is a
    TrainResult's property, but a plain field name of a SweepResult."""
    from jaxinit.training import TrainResult

    base = make()
    parts = dict(dims=base.dims, coords=base.coords)
    field = np.zeros((2, 3, 2))
    with pytest.raises(ValueError, match=r"'eval_steps' .* a TrainResult attribute"):
        TrainResult(**parts, fields={"eval_steps": field}, field_dims={"eval_steps": ()})
    assert SweepResult(**parts, fields={"eval_steps": field}, field_dims={"eval_steps": ()})


def test_load_gives_back_the_kind_that_was_saved(tmp_path):
    for cls, result in _kinds().items():
        path = tmp_path / cls.__name__
        result.save(path)
        manifest = json.loads((path / "manifest.json").read_text())
        assert manifest["kind"] == cls.__name__
        back = Result.load(path)
        assert type(back) is cls
        assert back.equals(result)
        assert type(cls.load(path)) is cls


def test_a_kinds_load_of_another_kind_warns_and_returns_what_is_there(tmp_path):
    """``SweepResult.load`` of a training result (a SweepResult before) still returns it, for
    one release, saying how to load it now."""
    from jaxinit.training import TrainResult

    _kinds()[TrainResult].save(tmp_path / "t")
    with pytest.warns(DeprecationWarning, match=r"holds a TrainResult, which is not a SweepResult; load it with TrainResult.load or jaxinit.Result.load") as w:  # fmt: skip
        back = SweepResult.load(tmp_path / "t")
    assert type(back) is TrainResult
    assert w[0].filename == __file__  # the warning points at the caller's line


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        (None, r"lacks the keys \['kind'\]"),
        ("ModelResult", r"holds a result of kind 'ModelResult', which this jaxinit does not know"),
    ],
)
def test_load_refuses_a_manifest_without_a_known_kind(res, tmp_path, kind, message):
    res.save(tmp_path / "r")
    path = tmp_path / "r" / "manifest.json"
    manifest = json.loads(path.read_text())
    if kind is None:
        del manifest["kind"]
    else:
        manifest["kind"] = kind
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        Result.load(tmp_path / "r")


def test_from_xarray_gives_back_the_kind():  # xarray is a test dependency: it always runs
    from jaxinit.training import TrainResult

    train = _kinds()[TrainResult]
    back = Result.from_xarray(train.to_xarray())
    assert type(back) is TrainResult
    assert back.equals(train)
