"""Checkpoint integrity: fingerprints, checksums, the lock, damaged files, resume across devices."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

import jaxinit as ji
from jaxinit._store import Store, StoreBusy


def _grid(stddev=1.0, **kw):
    return ji.Grid(inits=[f"normal(stddev={stddev})"], activations=["relu"], depth=3, width=8,
                   seeds=4, batch_size=16, **kw)  # fmt: skip


def test_a_chunk_of_another_sweep_is_refused_not_reused(tmp_path):
    out = tmp_path / "d"
    ji.sweep(_grid(1.0), out=out, chunk_size=2)
    (out / "sweep.json").unlink()  # the manifest is gone: only the chunks' fingerprints remain
    with pytest.raises(ValueError, match=r"written by a different sweep.*delete it to recompute"):
        ji.sweep(_grid(0.5), out=out, chunk_size=2)
    (out / "sweep.json").unlink()
    with pytest.raises(ValueError, match="written by a different sweep"):
        ji.sweep(_grid(1.0, root_seed=7), out=out, chunk_size=2)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        ("edit", "fails its checksum"),
        ("truncate", "is damaged"),
        ("garbage", "is damaged"),
        ("bitflip", "damaged|checksum"),
        ("directory", "is not a regular file"),
        ("foreign", "no fingerprint or checksum"),
    ],
)
def test_every_damaged_chunk_is_detected_and_named(tmp_path, damage, match):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=2)
    path = sorted((out / "chunks").glob("*.npz"))[0]
    if damage == "edit":
        z = dict(np.load(path))
        z["pre_var"] = z["pre_var"] * 2
        np.savez(path, **z)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint")
    elif damage == "bitflip":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0x10
        path.write_bytes(bytes(raw))
    elif damage == "directory":
        path.unlink()
        path.mkdir()
    else:
        np.savez(path, pre_var=np.zeros(3))
    with pytest.raises(ValueError, match=match) as err:
        ji.sweep(_grid(), out=out, chunk_size=2)
    assert str(path) in str(err.value)
    if damage != "directory":  # deleting the file, as the message says, recomputes it
        path.unlink()
        assert ji.sweep(_grid(), out=out, chunk_size=2).equals(ji.sweep(_grid(), chunk_size=2))


@pytest.mark.parametrize("content", [b"{not json", b'{"schema_version": 3}', b"\xff\xfe"])
def test_a_damaged_manifest_says_what_to_do(tmp_path, content):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out)
    (out / "sweep.json").write_bytes(content)
    with pytest.raises(ValueError, match=r"sweep.json is damaged.*another directory"):
        ji.sweep(_grid(), out=out)


def test_a_checkpoint_of_another_format_is_refused_saying_how_to_rerun(tmp_path):
    from jaxinit.sweeping import CHECKPOINT_SCHEMA

    out = tmp_path / "d"
    first = ji.sweep(_grid(), out=out)
    manifest = json.loads((out / "sweep.json").read_text())
    manifest["schema_version"] = CHECKPOINT_SCHEMA - 1
    (out / "sweep.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="written by another jaxinit version") as e:
        ji.sweep(_grid(), out=out)
    message = str(e.value)
    assert f"{out} holds a sweep checkpoint in format {CHECKPOINT_SCHEMA - 1}" in message
    assert f"reads format {CHECKPOINT_SCHEMA} only" in message
    assert "Delete the directory to rerun from the start, or use another out=" in message
    assert ji.SweepResult.load(out / "result").equals(first)  # nothing was touched
    shutil.rmtree(out)  # as the message says
    assert ji.sweep(_grid(), out=out).equals(first)


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        ji.sweep(_grid(), out=f)


def test_left_over_temporaries_are_removed(tmp_path):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=2)
    stale = out / "chunks" / ".w00-s000000002.npz.abc_1234.tmp"  # as tempfile names it
    stale.write_bytes(b"half a chunk")
    ji.sweep(_grid(), out=out, chunk_size=2)
    assert not stale.exists()


_HOLD = """
import sys, time, jaxinit as ji
grid = ji.Grid(inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=6, batch_size=8)
def tick(update):
    print("chunk", update.done, flush=True)
    time.sleep(60)  # hold the directory while the test tries it
ji.sweep(grid, out=sys.argv[1], chunk_size=1, on_update=tick)
"""


def test_a_second_process_is_refused_while_the_first_runs_and_a_killed_one_blocks_nothing(tmp_path):
    out = tmp_path / "d"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1"}
    grid = ji.Grid(
        inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=6, batch_size=8
    )
    with subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE,
                          text=True, env=env) as proc:  # fmt: skip
        assert proc.stdout.readline().startswith("chunk 1")
        refused = 0
        for _ in range(10):
            with pytest.raises(StoreBusy, match=rf"in use by another sweep \(process {proc.pid}\)"):
                ji.sweep(grid, out=out, chunk_size=1)
            refused += 1
        proc.kill()
        proc.wait(timeout=30)
    assert refused == 10
    resumed = ji.sweep(grid, out=out, chunk_size=1)  # the dead holder's lock is gone
    assert resumed.equals(ji.sweep(grid, chunk_size=1))


def test_two_stores_in_one_process_exclude_each_other(tmp_path):
    with Store(tmp_path, kind="sweep", schema=1, spec={"a": 1}), pytest.raises(StoreBusy):
        Store(tmp_path, kind="sweep", schema=1, spec={"a": 1})
    Store(tmp_path, kind="sweep", schema=1, spec={"a": 1}).close()  # released on close


@pytest.mark.multidevice
def test_resume_with_another_device_count(tmp_path):
    """Chunks do not depend on the device count, so a run started on 1 device resumes on 2."""
    out = tmp_path / "d"
    grid = ji.Grid(inits=["he_normal", "glorot_uniform"], activations=["tanh"], depth=2, width=8,
                   seeds=6, batch_size=16)  # fmt: skip
    ji.sweep(grid, out=out, chunk_size=2, devices=jax.devices()[:1])
    chunks = sorted((out / "chunks").glob("*.npz"))
    chunks[-1].unlink()
    mtime = chunks[0].stat().st_mtime_ns
    both = ji.sweep(grid, out=out, devices=jax.devices()[:2])
    assert chunks[0].stat().st_mtime_ns == mtime  # read back, not recomputed
    # bitwise by construction: each device (process) runs the same compiled body for each group of lanes; their number only changes how many groups each one loops over
    assert both.equals(ji.sweep(grid, chunk_size=2, devices=jax.devices()[:1]))


def test_training_checkpoint_edits_are_detected(tmp_path, key):
    x = np.asarray(jax.random.normal(key, (64, 4)))
    y = (x[:, 0] > 0).astype(np.int32)
    tg = ji.TrainGrid(inits=["he_normal"], activations="relu", hidden=(8,), seeds=2, steps=4,
                      batch_size=16, output="sigmoid")  # fmt: skip
    ji.train(tg, (x, y), out=tmp_path / "t")
    path = tmp_path / "t" / "checkpoint.npz"
    for field, change in (("loss", lambda v: v + 1), ("step", lambda v: v - 2)):
        z = dict(np.load(path))
        original = path.read_bytes()
        z[field] = change(z[field])
        np.savez(path, **z)
        with pytest.raises(ValueError, match="fails its checksum"):
            ji.train(tg, (x, y), out=tmp_path / "t")
        path.write_bytes(original)
    # the file restored, training resumes as before
    assert ji.train(tg, (x, y), out=tmp_path / "t").equals(ji.train(tg, (x, y)))


def test_an_error_after_the_store_opens_releases_its_lock(tmp_path, monkeypatch):
    """sweep and train close their store (and release its lock) whatever fails after it
    opened: the same call right after runs, even while the first error's frames live on."""
    from jaxinit.sweeping import _run as sweep_run
    from jaxinit.training import TrainGrid
    from jaxinit.training import _run as train_run
    from tests._teacher import teacher_data

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    grid = ji.Grid(
        inits=["he_normal"], activations=["tanh"], depth=2, width=4, seeds=1, batch_size=8
    )
    with monkeypatch.context() as m:
        m.setattr(sweep_run, "_members", boom)
        with pytest.raises(RuntimeError, match="boom") as first:
            ji.sweep(grid, out=tmp_path / "sweep")
    assert ji.sweep(grid, out=tmp_path / "sweep").equals(ji.sweep(grid))
    del first
    tgrid = TrainGrid(inits=["he_normal"], seeds=1, hidden=(4,), steps=2, batch_size=8)
    data = teacher_data(0, 16, 3)
    with monkeypatch.context() as m:
        m.setattr(train_run, "_record", boom)  # step 0's statistics: inside the store's block
        with pytest.raises(RuntimeError, match="boom") as first:
            ji.train(tgrid, data, out=tmp_path / "train")
    assert ji.train(tgrid, data, out=tmp_path / "train").loss.shape == (1, 1, 2)
    del first


def test_the_store_owns_the_layout_of_its_directory(tmp_path):
    """Chunks, the manifest and the result are placed by the store's methods alone, and
    ``jaxinit.sweeping.checkpointed_chunks`` lists a sweep's chunks without opening it."""
    out = tmp_path / "d"
    assert ji.sweeping.checkpointed_chunks(out) == []  # no directory yet
    ji.sweep(_grid(), out=out, chunk_size=2)
    names = ji.sweeping.checkpointed_chunks(out)
    assert names == sorted(p.stem for p in (out / "chunks").glob("*.npz"))
    assert len(names) == 2  # 4 seeds, 2 per chunk
    spec = Store.read_spec(out, "sweep")
    assert spec["chunk_seeds"] == 2
    assert Store.read_spec(out, "train") is None  # no training run's manifest there
    with Store(
        out, kind="sweep", schema=ji.sweeping.CHECKPOINT_SCHEMA, spec=spec, chunks=True
    ) as store:
        assert store.chunk_names() == names
        assert store.chunk_path(names[0]) == out / "chunks" / f"{names[0]}.npz"
        assert store.result_path == out / "result"
        saved = store.load_chunk(names[0], layout=None)
        assert saved is not None
        assert saved["_seeds"].tolist() == [0, 1]
        store.save_chunk("extra", {"a": np.arange(3)})
        assert store.load_chunk("extra", {"a": ((3,), np.arange(3).dtype)})["a"].tolist() == [
            0,
            1,
            2,
        ]
        assert store.load_chunk("absent", {"a": ((3,), np.dtype(np.int64))}) is None
        with pytest.raises(ValueError, match=r"chunks/extra\.npz holds nothing here; delete it"):
            store.refuse_chunk("extra", "holds nothing here")
        for bad in ("../sweep", "a/b", ""):
            with pytest.raises(ValueError, match=r"a chunk's name is letters, digits, _ and -"):
                store.chunk_path(bad)
    # a chunk file this sweep would not write is refused, naming it
    with pytest.raises(
        ValueError, match=r"chunk files this sweep would not write: \['extra\.npz'\]"
    ):
        ji.sweep(_grid(), out=out, chunk_size=2)
    with Store(tmp_path / "t", kind="train", schema=1, spec={}) as store:
        with pytest.raises(ValueError, match=r"saves no chunks"):
            store.save_chunk("w0", {"a": np.zeros(1)})
        store.save_checkpoint({"step": np.int64(3)})
        assert store.checkpoint_path == tmp_path / "t" / "checkpoint.npz"
        assert int(store.load_checkpoint()["step"]) == 3
