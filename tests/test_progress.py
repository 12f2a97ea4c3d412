"""The progress bar shared by sweep and train: on when asked or watched, silent otherwise."""

import functools
import json
import sys
import types

import jax
import numpy as np
import pytest

import jaxinit as ji
from jaxinit._progress import ProgressBar, Records, Reporter, Update, interactive


def test_an_enabled_bar_counts_and_a_disabled_one_draws_nothing(capsys):
    with ProgressBar("sweep", 3, True) as bar:
        bar.update(2)
        (task,) = bar._bar.tasks
        assert (task.description, task.completed, task.total) == ("sweep", 2, 3)
    with ProgressBar("sweep", 3, False) as bar:
        bar.update(2)
        assert bar._bar is None
    assert capsys.readouterr().out == ""  # never on stdout


def test_none_follows_whether_anyone_watches(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not interactive()  # pytest captures stderr: not a terminal
    with ProgressBar("train", 5) as bar:
        assert bar._bar is None
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert not interactive()  # ipykernel imported, but IPython has no kernel: not a notebook
    shell = types.SimpleNamespace(kernel=object())  # IPython's shell inside a kernel
    monkeypatch.setattr("IPython.get_ipython", lambda: shell)
    assert interactive()  # a Jupyter kernel shows it in the notebook


# -- one protocol: on_update in sweep (Grid and ModelGrid) and train ---------------------------

GRID = dict(inits=["he_normal", "glorot_normal"], activations=["relu"], depth=2, width=4,
            seeds=3, batch_size=8, gradients=False)  # fmt: skip
TRAIN = dict(inits=["he_normal", "zeros"], seeds=2, hidden=(4,), output="sigmoid",
             batch_size=None, steps=6, eval_every=3, optimizer="sgd(learning_rate=0.1)")  # fmt: skip


@pytest.fixture(scope="module")
def circles():
    return ji.data.make_circles(jax.random.key(0), 32, noise=0.1)


def test_records_are_made_when_first_read_and_equal_a_list():
    made = []

    def make():
        made.append(1)
        return [{"seed": 0, "loss": 0.5}]

    with Reporter("sweep", 2, False, lambda u: seen.append(u.done)) as report:
        seen = []
        report(1, make)
    assert seen == [1]
    assert made == []  # a hook that reads only done makes no records
    records = Records(make)
    assert records == [{"seed": 0, "loss": 0.5}]
    assert len(records) == 1
    assert list(records) == [{"seed": 0, "loss": 0.5}]
    assert made == [1]  # made once
    assert records != [{"seed": 1}]
    update = Update("train", 3, 6, records)
    assert (update.kind, update.done, update.total) == ("train", 3, 6)


def test_sweep_and_train_give_one_shape_of_update(circles):
    sweeps, trains = [], []
    ji.sweep(ji.Grid(**GRID), chunk_size=2, progress=False, on_update=sweeps.append)
    ji.train(ji.TrainGrid(**TRAIN), circles, on_update=trains.append)
    for updates, kind, total in ((sweeps, "sweep", 2), (trains, "train", 6)):
        assert all(isinstance(u, Update) and u.kind == kind and u.total == total for u in updates)
    assert [u.done for u in sweeps] == [1, 2]
    assert [u.done for u in trains] == [0, 3, 6]
    # records are flat dicts: labels by dim name beside the values
    assert {"init", "seed", "layer", "pre_var"} <= set(sweeps[0].records[0])
    assert {"init", "seed", "step", "loss", "test_accuracy"} <= set(trains[1].records[0])
    assert len(sweeps[0].records) == 2 * 2 * 2  # inits × seeds 0, 1 × layers
    assert len(trains[1].records) == 4  # one per model


def test_model_grid_reports_its_chunks_of_the_whole():
    grid = ji.ModelGrid(model=functools.partial(ji.models.MLP, d_in=4, width=8, depth=2),
                        inits=["he_normal"], inputs=np.ones((4, 4), np.float32), seeds=3)  # fmt: skip
    got = []
    res = ji.sweep(grid, chunk_size=2, progress=False, on_update=got.append)
    assert [(u.kind, u.done, u.total) for u in got] == [("sweep", 1, 2), ("sweep", 2, 2)]
    assert {r["seed"] for u in got for r in u.records} == {0, 1, 2}
    first = next(r for r in got[0].records if r["seed"] == 0)
    layer = res.attrs["layers"].index(first["layer"])
    assert first["pre_var"] == pytest.approx(
        float(res.sel(init="he_normal", seed=0).pre_var[layer])
    )
    ticks = []
    with pytest.warns(DeprecationWarning, match=r"sweep\(on_chunk=\.\.\.\).*on_update"):
        ji.sweep(grid, chunk_size=2, progress=False, on_chunk=lambda d, t: ticks.append((d, t)))
    assert ticks == [(1, 2), (2, 2)]  # the whole's chunks, where it once said -1


def test_sweep_s_old_hooks_warn_and_still_work(tmp_path):
    grid = ji.Grid(**GRID)
    new = []
    ji.sweep(grid, chunk_size=2, progress=False, on_update=new.append)
    ticks, calls = [], []
    with pytest.warns(DeprecationWarning, match="on_update") as caught:
        ji.sweep(grid, chunk_size=2, progress=False, on_chunk=lambda d, t: ticks.append((d, t)),
                 callback=lambda d, r: calls.append((d, r)))  # fmt: skip
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert all("on_update" in m and "next release" in m for m in messages)
    assert "sweep(callback=...)" in messages[0]
    assert "sweep(on_chunk=...)" in messages[1]
    assert {w.filename for w in caught} == {__file__}  # it points at the caller's line
    assert ticks == [(u.done, u.total) for u in new]
    assert calls == [(u.done, list(u.records)) for u in new]
    assert all(isinstance(r, list) for _, r in calls)  # as they were: a list
    with pytest.raises(TypeError, match=r"callback must be a function \(done, records\)"):
        ji.sweep(grid, callback=1)  # refused before any warning


def test_train_s_old_hooks_warn_and_still_work(circles, tmp_path):
    grid = ji.TrainGrid(**TRAIN)
    new, metrics, ticks = [], [], []
    ji.train(grid, circles, on_update=new.append)
    with pytest.warns(DeprecationWarning, match=r"train\(callback=\.\.\.\).*on_update") as caught:
        ji.train(grid, circles, callback=lambda s, m: metrics.append((s, m)))
    assert [w.filename for w in caught] == [__file__]  # it points at the caller's line
    with pytest.warns(DeprecationWarning, match=r"train\(progress=\.\.\.\).*on_update"):
        ji.train(grid, circles, progress=lambda s, t: ticks.append((s, t)))
    assert [s for s, _ in metrics] == [u.done for u in new] == [0, 3, 6]
    m = metrics[1][1]
    record = next(r for r in new[1].records if (r["init"], r["seed"]) == ("zeros", 1))
    assert set(m) == {(i, s) for i in ("he_normal", "zeros") for s in (0, 1)}
    assert m[("zeros", 1)] == {k: v for k, v in record.items() if k not in ("init", "seed", "step")}
    assert ticks == [(3, 6), (6, 6)]  # after each sync, never at step 0: as it was
    with pytest.raises(TypeError, match=r"progress must be True, False or None; got 'yes'"):
        ji.train(grid, circles, progress="yes")  # the same bar as sweep's, the same check


def test_jsonl_writer_serves_a_sweep_and_the_old_train_form(circles, tmp_path):
    grid = ji.Grid(**GRID)
    res = ji.sweep(
        grid, chunk_size=2, progress=False, on_update=ji.jsonl_writer(tmp_path / "s.jsonl")
    )
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert len(rows) == len(res.to_records())
    assert rows[0]["init"] in ("he_normal", "glorot_normal")
    assert "pre_var" in rows[0]
    assert ji.training.jsonl_writer is ji.jsonl_writer  # training's name still works
    tgrid = ji.TrainGrid(**TRAIN)
    new_path, old_path = tmp_path / "new.jsonl", tmp_path / "old.jsonl"
    ji.train(tgrid, circles, on_update=ji.jsonl_writer(new_path))
    with pytest.warns(DeprecationWarning, match=r"jsonl_writer\(path, dims\)"):
        old = ji.training.jsonl_writer(old_path, tgrid.dims)
    with pytest.warns(DeprecationWarning, match=r"train\(callback=\.\.\.\)"):
        ji.train(tgrid, circles, callback=old)
    assert old_path.read_text() == new_path.read_text()  # the same lines, either way
    with pytest.raises(TypeError, match=r"takes an Update"):
        ji.jsonl_writer(tmp_path / "x.jsonl")(3, {("he_normal", 0): {"loss": 1.0}})
