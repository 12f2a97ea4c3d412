"""Results as pandas DataFrames and xarray Datasets: rows match sel, round trips are equal."""

import sys

import jax
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import jaxinit as ji


@pytest.fixture(scope="module")
def res():
    grid = ji.Grid(inits=["he_normal", "normal(stddev=1)"], activations=["relu", "tanh"],
                   depth=3, width=8, seeds=[0, 5], batch_size=16, bins=10)  # fmt: skip
    return ji.sweep(grid, progress=False)


@pytest.fixture(scope="module")
def trained():
    x, y = ji.data.make_circles(jax.random.key(0), 64, noise=0.1)
    grid = ji.TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=2, hidden=(6, 4),
                        output="sigmoid", batch_size=None, steps=12, eval_every=4,
                        record_stats_at=(0, 11), keep_params=True,
                        optimizer="sgd(learning_rate=0.1)")  # fmt: skip
    return ji.train(grid, (x, y))


def test_dataframe_rows_are_the_sel_values_with_1_based_layers(res):
    df = res.to_dataframe()
    assert len(df) == len(res) * 3
    assert list(df.columns[:4]) == ["init", "activation", "seed", "layer"]
    assert sorted(df["layer"].unique()) == [1, 2, 3]
    assert df["seed"].dtype == np.int64
    row = df[(df.init == "normal(stddev=1.0)") & (df.activation == "tanh") & (df.seed == 5)]
    s = res.sel(init="normal(stddev=1.0)", activation="tanh", seed=5)
    for field in ("pre_var", "saturated", "grad_var", "nonfinite"):
        np.testing.assert_array_equal(row.sort_values("layer")[field].to_numpy(), s.fields[field])
    # a per-combination field repeats on its layers' rows
    assert (row["diverged_layer"] == int(s.diverged_layer)).all()


def test_histogram_frame_has_every_bin_with_its_edges(res):
    h = res.to_dataframe(hist=True)
    assert len(h) == len(res) * 3 * 10
    one = h[(h.init == "he_normal") & (h.activation == "tanh") & (h.seed == 0) & (h.layer == 2)]
    s = res.sel(init="he_normal", activation="tanh", seed=0)
    np.testing.assert_array_equal(one["count"].to_numpy(), s.hist[1])
    edges = np.asarray(res.attrs["hist_edges"]["tanh"])
    np.testing.assert_array_equal(one["bin_lo"].to_numpy(), edges[:-1])
    np.testing.assert_array_equal(one["bin_hi"].to_numpy(), edges[1:])
    relu = h[h.activation == "relu"]
    assert relu["bin_lo"].min() == 0.0  # relu's histogram starts at its lower bound


def test_xarray_round_trip_is_equal(res, tmp_path):
    ds = res.to_xarray()
    assert ds["hist"].dims == ("init", "activation", "seed", "layer", "bin")
    assert list(ds["layer"].values) == [1, 2, 3]
    assert float(ds["pre_var"].sel(init="he_normal", activation="relu", seed=5, layer=3)) == (
        float(res.sel(init="he_normal", activation="relu", seed=5).pre_var[2])
    )
    back = ji.SweepResult.from_xarray(ds)
    assert back.equals(res)
    assert back.attrs == res.attrs  # the grid and the histogram edges travel too
    # an alias given to the grid ("normal(stddev=1)") still selects after the trip
    assert back.sel(init="normal(stddev=1)").equals(res.sel(init="normal(stddev=1)"))
    with pytest.raises(ValueError, match=r"not written by Result\.to_xarray"):
        ji.SweepResult.from_xarray(xr.Dataset({"a": ("x", [1, 2])}))


def test_train_result_frames_hold_every_field(trained):
    loss = trained.to_dataframe()
    assert len(loss) == 2 * 2 * 12
    assert list(loss.columns) == ["init", "seed", "step", "loss"]
    one = loss[(loss.init == "glorot_uniform") & (loss.seed == 1)]
    np.testing.assert_array_equal(one["loss"], trained.sel(init="glorot_uniform", seed=1).loss)
    ev = trained.to_dataframe(along="eval")
    assert sorted(ev["step"].unique()) == sorted(trained.eval_steps.tolist())
    assert {"test_loss", "test_accuracy"} <= set(ev.columns)
    st = trained.to_dataframe(along="stat_step")
    assert sorted(st["step"].unique()) == [0, 11]
    assert sorted(st["layer"].unique()) == [1, 2]
    assert "pre_var" in st.columns
    with pytest.raises(ValueError, match="along must be one of"):
        trained.to_dataframe(along="layer")
    ds = trained.to_xarray()
    assert set(ds.data_vars) == set(trained.fields)  # kept kernels included
    assert ds["kernel_0"].dims[-2:] == ("kernel_0_fan_in", "kernel_0_fan_out")
    back = type(trained).from_xarray(ds)
    assert type(back).__name__ == "TrainResult"
    assert back.equals(trained)


def test_missing_optional_dependency_names_the_extra(res, monkeypatch):
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "pandas", None)
        with pytest.raises(ImportError, match=r"pip install 'jaxinit\[frames\]'"):
            res.to_dataframe()
        m.setitem(sys.modules, "xarray", None)
        with pytest.raises(ImportError, match=r"xarray is needed"):
            res.to_xarray()
    assert isinstance(pd.DataFrame(res.to_records()), pd.DataFrame)  # records need no pandas


# -- live metrics: on_update in train and sweep, and the JSON-lines writer ------------------


def _circles_grid(**kw):
    return ji.TrainGrid(**{**dict(inits=["he_normal", "zeros"], seeds=2, hidden=(6, 4),
                                  output="sigmoid", batch_size=None, steps=12, eval_every=4,
                                  record_stats_at=(0, 11),
                                  optimizer="sgd(learning_rate=0.1)"), **kw})  # fmt: skip


@pytest.fixture(scope="module")
def circles():
    return ji.data.make_circles(jax.random.key(0), 64, noise=0.1)


def _by_model(update):
    return {(r["init"], r["seed"]): r for r in update.records}


def test_on_update_gets_the_logging_steps_and_the_result_s_values(circles):
    grid = _circles_grid()
    calls = []
    res = ji.train(grid, circles, on_update=calls.append)
    assert [(u.kind, u.done, u.total) for u in calls] == [
        ("train", s, 12)
        for s in (0, 4, 8, 11, 12)  # start, evaluations, statistics, the end
    ]
    assert set(_by_model(calls[1])) == {(i, s) for i in res.coords["init"] for s in (0, 1)}
    at = {u.done: _by_model(u) for u in calls}
    one = res.sel(init="he_normal", seed=1)
    assert at[8][("he_normal", 1)]["step"] == 8
    assert at[8][("he_normal", 1)]["loss"] == pytest.approx(float(np.mean(one.loss[4:8])))
    e = list(res.eval_steps).index(8)
    assert at[8][("he_normal", 1)]["test_accuracy"] == float(one.test_accuracy[e])
    assert "pre_var" not in at[8][("he_normal", 1)]
    np.testing.assert_array_equal(at[11][("he_normal", 1)]["pre_var"], one.pre_var[1])
    assert np.isnan(at[0][("zeros", 0)]["loss"])  # nothing trained yet


def test_a_raising_on_update_stops_the_run_and_the_same_call_resumes(circles, tmp_path):
    grid = _circles_grid()
    whole = ji.train(grid, circles)

    def stop_at_8(update):
        if update.done == 8:
            raise KeyboardInterrupt("stop here")

    with pytest.raises(KeyboardInterrupt, match="stop here"):
        ji.train(grid, circles, out=tmp_path / "run", checkpoint_every=4, on_update=stop_at_8)
    seen = []
    resumed = ji.train(grid, circles, out=tmp_path / "run", checkpoint_every=4,
                       on_update=lambda u: seen.append(u.done))  # fmt: skip
    assert seen == [11, 12]  # from the checkpoint at 8: nothing before it again
    assert resumed.equals(whole)
    with pytest.raises(TypeError, match=r"on_update must be a function \(update\) or None"):
        ji.train(grid, circles, on_update="print")


def test_jsonl_writer_and_the_cli_log(circles, tmp_path):
    import json

    from jaxinit.cli import main

    grid = _circles_grid()
    ji.train(grid, circles, on_update=ji.jsonl_writer(tmp_path / "m.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 4  # 5 logging steps × 4 models
    first = rows[0]
    assert (first["step"], first["init"], first["seed"]) == (0, "he_normal", 0)
    assert first["loss"] is None  # NaN before any step: null in JSON
    assert isinstance(first["pre_var"], list)  # statistics recorded at step 0, per layer
    assert {r["step"] for r in rows if "test_accuracy" in r} == {0, 4, 8, 12}
    log = tmp_path / "cli.jsonl"
    argv = ["train", "--data", "circles", "--inits", "he_normal", "--seeds", "1", "--hidden",
            "4", "--steps", "4", "--eval-every", "2", "--log", str(log)]  # fmt: skip
    assert main(argv) == 0
    steps = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert steps == [0, 2, 4]


def test_sweep_on_update_passes_each_chunk_s_records(tmp_path):
    grid = ji.Grid(inits=["he_normal", "glorot_normal"], activations=["relu", "tanh"], depth=2,
                   width=[4, 6], seeds=3, batch_size=8, gradients=False)  # fmt: skip
    got = []
    res = ji.sweep(grid, chunk_size=2, progress=False, on_update=got.append)
    # 2 widths × seed blocks [0, 1] and [2]
    assert [(u.kind, u.done, u.total) for u in got] == [("sweep", d, 4) for d in (1, 2, 3, 4)]
    rows = [r for u in got for r in u.records]
    key = lambda r: (r["init"], r["activation"], r["width"], r["seed"], r["layer"])  # noqa: E731
    assert sorted(rows, key=key) == sorted(res.to_records(), key=key)
    assert {r["layer"] for r in rows} == {1, 2}
    assert {(r["width"], r["seed"]) for r in got[1].records} == {(4, 2)}

    def stop(update):
        if update.done == 2:
            raise RuntimeError("stop after chunk 2")

    with pytest.raises(RuntimeError, match="stop after chunk 2"):
        ji.sweep(grid, out=tmp_path / "s", chunk_size=2, progress=False, on_update=stop)
    again = []
    resumed = ji.sweep(grid, out=tmp_path / "s", chunk_size=2, progress=False,
                       on_update=lambda u: again.append(u.done))  # fmt: skip
    assert again == [1, 2, 3, 4]  # read-back chunks are reported too
    assert resumed.equals(res)
    with pytest.raises(TypeError, match=r"on_update must be a function \(update\) or None"):
        ji.sweep(grid, on_update=1)
