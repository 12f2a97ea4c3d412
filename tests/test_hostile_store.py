"""Hostile directories (issue 25): nothing outside ``out``, nothing lost, nothing silently wrong.

A sweep, a training run, ``SweepResult.save/load`` and ``jaxinit report`` given a directory
that someone prepared against them: links, special files, files of another run, crafted
(and re-signed) checkpoints, a save killed halfway. Each is refused with an error naming
the path and what is wrong, or recovered, and nothing outside the directory is read,
written or deleted.
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import tracemalloc
import zipfile

import jax
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import _result_io
from jaxinit._store import Store, StoreBusy, _checksum
from jaxinit.cli import main

REFUSED = r"symbolic link|not a regular file"


def _grid(**kw):
    return ji.Grid(**{**dict(inits=["he_normal"], activations=["relu"], depth=2, width=4, seeds=2,
                             batch_size=8), **kw})  # fmt: skip


def _tgrid():
    return ji.TrainGrid(inits=["he_normal"], activations="relu", hidden=(4,), seeds=2, steps=4,
                        batch_size=8, output="sigmoid")  # fmt: skip


@pytest.fixture(scope="module")
def data():
    x = np.asarray(jax.random.normal(jax.random.key(3), (16, 4)))
    return x, (x[:, 0] > 0).astype(np.int32)


def _result(**kw):
    shape = (2, 3)
    return ji.SweepResult(
        dims=("init", "seed"),
        coords={"init": ("a", "b"), "seed": (0, 1, 2)},
        fields={
            "pre_var": np.arange(24, dtype=np.float32).reshape(*shape, 4),
            "hist": np.arange(120, dtype=np.int64).reshape(*shape, 4, 5),
        },
        field_dims={"pre_var": ("layer",), "hist": ("layer", "bin")},
        attrs={"note": "test"},
        **kw,
    )


class Hung(Exception):  # not an OSError (as TimeoutError is), which code may catch
    """The block ran past its deadline."""


@contextlib.contextmanager
def _deadline(seconds):
    """Hung where the block would hang (a FIFO opened for reading blocks)."""

    def expire(*_):
        raise Hung(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _resign(path, arrays, fingerprint):
    """Writes ``arrays`` to ``path`` signed as the store signs them: a crafted file that
    passes the fingerprint and checksum checks."""
    body = {k: np.asarray(v) for k, v in arrays.items()}
    body["_fingerprint"] = np.frombuffer(fingerprint.encode(), np.uint8)
    body["_sha256"] = np.frombuffer(_checksum(body).encode(), np.uint8)
    np.savez(path, **body)


def _unsigned(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    del arrays["_fingerprint"], arrays["_sha256"]
    return arrays


def _fingerprint(root, kind):
    return json.loads((root / f"{kind}.json").read_text())["fingerprint"]


# -- 1. the lock file ----------------------------------------------------------------------


@pytest.mark.parametrize("special", ["symlink", "fifo"])
def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_and_its_target_kept(tmp_path, special):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    out = tmp_path / "d"
    out.mkdir()
    if special == "symlink":
        (out / ".lock").symlink_to(notes)
    else:
        os.mkfifo(out / ".lock")
    with _deadline(60), pytest.raises(ValueError, match=REFUSED) as e:
        ji.sweep(_grid(), out=out)
    assert str(out / ".lock") in str(e.value)
    assert notes.read_text() == "my notes"
    assert not (out / "result").exists()


# -- 2. temporaries ------------------------------------------------------------------------


def test_only_the_stores_own_temporaries_are_removed(tmp_path, data):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=1)
    mine = [out / "mydata" / ".draft.tmp", out / ".notes.tmp", out / "chunks" / ".mine.tmp",
            out / "chunks" / "sub" / ".w00-s000000000.npz.abcdefgh.tmp",
            out / ".report.html.abcdefgh.tmp"]  # fmt: skip
    for p in mine:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("keep me")
    stale = [out / "chunks" / ".w00-s000000001.npz.k2j_4x9q.tmp", out / ".sweep.json.abcd1234.tmp"]
    for p in stale:
        p.write_bytes(b"half a file")
    ji.sweep(_grid(), out=out, chunk_size=1)
    assert all(p.read_text() == "keep me" for p in mine)
    assert not any(p.exists() for p in stale)
    t = tmp_path / "t"
    ji.train(_tgrid(), data, out=t)
    (t / ".checkpoint.npz.abcd1234.tmp").write_bytes(b"half")
    (t / "other" / ".checkpoint.npz.abcd1234.tmp").parent.mkdir()
    (t / "other" / ".checkpoint.npz.abcd1234.tmp").write_text("keep me")
    ji.train(_tgrid(), data, out=t)
    assert not (t / ".checkpoint.npz.abcd1234.tmp").exists()
    assert (t / "other" / ".checkpoint.npz.abcd1234.tmp").read_text() == "keep me"


# -- 3. out="" -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["sweep", "train", "cli sweep", "cli train"])
def test_an_empty_out_is_refused_not_taken_as_the_current_directory(
    tmp_path, monkeypatch, capsys, data, how
):
    monkeypatch.chdir(tmp_path)
    if how == "sweep":
        with pytest.raises(ValueError, match=r"out='' is an empty path"):
            ji.sweep(_grid(), out="")
    elif how == "train":
        with pytest.raises(ValueError, match=r"out='' is an empty path"):
            ji.train(_tgrid(), data, out="")
    else:
        argv = {
            "cli sweep": ["sweep", "--inits", "he_normal", "--activations", "relu", "--depth",
                          "2", "--width", "4", "--seeds", "2", "--batch-size", "8"],
            "cli train": ["train", "--data", "circles", "--inits", "he_normal", "--seeds", "1",
                          "--hidden", "4", "--steps", "2", "--batch-size", "0"],
        }[how]  # fmt: skip
        assert main([*argv, "--out", ""]) == 2
        assert "out='' is an empty path" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_out_of_a_wrong_type_is_a_type_error():
    with pytest.raises(
        TypeError, match=r"out must be a directory path \(str or os.PathLike\) or None; got 5"
    ):
        ji.sweep(_grid(), out=5)


# -- 4. links inside a store and in a report's folders --------------------------------------


@pytest.mark.parametrize("inside", ["chunks", "result"])
def test_a_symlinked_folder_inside_a_sweep_store_is_refused(tmp_path, inside):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "d"
    out.mkdir()
    (out / inside).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="is a symbolic link") as e:
        ji.sweep(_grid(), out=out, chunk_size=1)
    assert str(out / inside) in str(e.value)
    assert os.listdir(elsewhere) == []


def test_a_symlinked_result_inside_a_training_store_is_refused(tmp_path, data):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "t"
    out.mkdir()
    (out / "result").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="is a symbolic link") as e:
        ji.train(_tgrid(), data, out=out)
    assert str(out / "result") in str(e.value)
    assert os.listdir(elsewhere) == []


def test_a_symlinked_chunk_file_is_not_read(tmp_path):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=1)
    chunk = out / "chunks" / "w00-s000000000.npz"
    outside = tmp_path / "outside.npz"
    chunk.rename(outside)
    chunk.symlink_to(outside)
    with pytest.raises(ValueError, match="is a symbolic link") as e:
        ji.sweep(_grid(), out=out, chunk_size=1)
    assert str(chunk) in str(e.value)


@pytest.mark.parametrize("folder", ["tables", "figures"])
def test_report_refuses_a_symlinked_output_folder(tmp_path, capsys, folder):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / folder).symlink_to(elsewhere, target_is_directory=True)
    assert main(["report", str(out), "--no-theory"]) == 2
    err = capsys.readouterr().err
    assert "is a symbolic link" in err
    assert str(out / folder) in err
    assert os.listdir(elsewhere) == []


def test_report_does_not_follow_a_symlinked_result(tmp_path, capsys):
    out = tmp_path / "d"
    out.mkdir()
    _result().save(tmp_path / "other")
    (out / "result").symlink_to(tmp_path / "other", target_is_directory=True)
    assert main(["report", str(out), "--no-theory"]) == 2
    assert f"{out / 'result'} is a symbolic link" in capsys.readouterr().err


# -- 5. a save killed between its renames, and the temporaries of killed saves ---------------


def _killed_between_renames(monkeypatch, target, new):
    """Leaves what a SIGKILL between the save's two renames leaves: the old result renamed
    away, the new one complete in its temporary directory, nothing at ``target``."""
    real_replace, calls = os.replace, []

    class Killed(BaseException):
        pass

    def replace(a, b):
        calls.append((a, b))
        if len(calls) == 1:
            return real_replace(a, b)  # target -> .target.old-<uuid>
        raise Killed  # killed: neither the second rename nor the restore happens

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        m.setattr(shutil, "rmtree", lambda *a, **k: None)  # nor any cleanup
        with pytest.raises(Killed):
            new.save(target)
    names = sorted(p.name for p in target.parent.iterdir())
    assert len(names) == 2
    assert names[0].startswith(f".{target.name}.old-")
    assert names[1].startswith(f".{target.name}.tmp-")
    assert not target.exists()


def test_load_after_a_kill_between_the_renames_restores_the_old_result(tmp_path, monkeypatch):
    target = tmp_path / "res"
    old, new = _result(), _result().sel(seed=[1])
    old.save(target)
    _killed_between_renames(monkeypatch, target, new)
    assert ji.SweepResult.load(target).equals(old)
    assert sorted(os.listdir(tmp_path)) == ["res"]


def test_save_after_a_kill_between_the_renames_recovers_first(tmp_path, monkeypatch):
    target = tmp_path / "res"
    old, new = _result(), _result().sel(seed=[1])
    old.save(target)
    _killed_between_renames(monkeypatch, target, new)
    new.save(target)
    assert ji.SweepResult.load(target).equals(new)
    assert sorted(os.listdir(tmp_path)) == ["res"]


def test_temporaries_of_killed_saves_are_removed_by_the_next_save_or_load(tmp_path):
    target = tmp_path / "res"
    _result().save(target)
    for suffix in ("abcd1234", "x_9y8z7w"):  # saves killed while writing their files
        half = tmp_path / f".res.tmp-{suffix}"
        half.mkdir()
        (half / "arrays.npz").write_bytes(b"\0" * 1000)
    (tmp_path / ".res.old-0123456789abcdef0123456789abcdef").mkdir()  # killed in the rmtree
    mine = tmp_path / ".res.tmp-mine"  # not a name a save makes: kept
    mine.mkdir()
    ji.SweepResult.load(target)
    assert sorted(os.listdir(tmp_path)) == [".res.tmp-mine", "res"]
    (tmp_path / ".res.tmp-abcd1234").mkdir()
    _result().sel(seed=[0]).save(target)
    assert sorted(os.listdir(tmp_path)) == [".res.tmp-mine", "res"]


def test_save_refuses_a_symlink_at_its_path(tmp_path):
    _result().save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    with pytest.raises(ValueError, match="is a symbolic link"):
        _result().sel(seed=[0]).save(tmp_path / "link")
    assert ji.SweepResult.load(tmp_path / "real").equals(_result())


# -- 6. a sweep and a training run in one directory -----------------------------------------


def test_a_training_run_is_refused_in_a_sweeps_directory_and_back(tmp_path, data):
    out = tmp_path / "d"
    swept = ji.sweep(_grid(), out=out)
    with pytest.raises(ValueError, match=r"holds a sweep \(sweep.json\)") as e:
        ji.train(_tgrid(), data, out=out)
    assert str(out) in str(e.value)
    assert ji.SweepResult.load(out / "result").equals(swept)
    t = tmp_path / "t"
    trained = ji.train(_tgrid(), data, out=t)
    with pytest.raises(ValueError, match=r"holds a training run \(train.json\)"):
        ji.sweep(_grid(), out=t)
    assert ji.Result.load(t / "result").equals(trained)


def test_a_busy_directory_names_the_kind_of_run_that_holds_it(tmp_path, data):
    out = tmp_path / "d"
    with Store(out, kind="sweep", schema=1, spec={"a": 1}):
        (out / "sweep.json").unlink()  # the lock is taken before the manifest is written
        with pytest.raises(StoreBusy, match=rf"in use by a sweep \(process {os.getpid()}\)"):
            ji.train(_tgrid(), data, out=out)
        with pytest.raises(StoreBusy, match=rf"in use by another sweep \(process {os.getpid()}\)"):
            ji.sweep(_grid(), out=out)


# -- 7. special files and links where the store reads ----------------------------------------


def _make_special(path, how):
    path.unlink()
    if how == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)


@pytest.mark.parametrize("how", ["dev-zero", "fifo"])
@pytest.mark.parametrize("name", ["sweep.json", "chunks/w00-s000000000.npz"])
def test_a_special_file_in_a_sweep_store_is_refused_not_read(tmp_path, how, name):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out)
    _make_special(out / name, how)
    with _deadline(60), pytest.raises(ValueError, match=REFUSED) as e:
        ji.sweep(_grid(), out=out)
    assert str(out / name) in str(e.value)


@pytest.mark.parametrize("how", ["dev-zero", "fifo"])
@pytest.mark.parametrize("name", ["train.json", "checkpoint.npz"])
def test_a_special_file_in_a_training_store_is_refused_not_read(tmp_path, data, how, name):
    out = tmp_path / "t"
    ji.train(_tgrid(), data, out=out)
    _make_special(out / name, how)
    with _deadline(60), pytest.raises(ValueError, match=REFUSED) as e:
        ji.train(_tgrid(), data, out=out)
    assert str(out / name) in str(e.value)


@pytest.mark.parametrize("how", ["dev-zero", "fifo"])
@pytest.mark.parametrize("name", ["manifest.json", "arrays.npz"])
def test_a_special_file_in_a_saved_result_is_refused_not_read(tmp_path, how, name):
    _result().save(tmp_path / "r")
    _make_special(tmp_path / "r" / name, how)
    with _deadline(60), pytest.raises(ValueError, match=REFUSED) as e:
        ji.SweepResult.load(tmp_path / "r")
    assert str(tmp_path / "r" / name) in str(e.value)


def test_an_oversized_manifest_is_refused_before_it_is_read(tmp_path, monkeypatch):
    from jaxinit import _io

    _result().save(tmp_path / "r")
    monkeypatch.setattr(_io, "JSON_LIMIT", 100)
    with pytest.raises(ValueError, match=r"manifest.json is \d+ bytes, over the limit of 100"):
        ji.SweepResult.load(tmp_path / "r")


def test_heartbeat_files_are_neither_followed_nor_waited_on(tmp_path):
    """Several processes' heartbeat files (jaxinit._distributed): a FIFO is not read (it
    would block), a link is not written through."""
    from jaxinit import _distributed

    os.mkfifo(tmp_path / ".process-0")
    with _deadline(10):
        assert _distributed._read(tmp_path, 0) == ""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    (tmp_path / ".process-1").symlink_to(notes)
    with _distributed.heartbeat(tmp_path, 1, timeout=5.0):
        pass
    assert notes.read_text() == "my notes"
    assert _distributed._read(tmp_path, 1) == ""


# -- 8. a zip bomb -------------------------------------------------------------------------


def _bomb(path, name, shape, dtype="<f4"):
    """Appends to the zip ``path`` a compressed ``name.npy`` of zeros of ``shape``: tens of
    MiB that compress to tens of KiB."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with (
        zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as z,
        z.open(f"{name}.npy", "w", force_zip64=True) as f,
    ):
        f.write(header.getvalue())
        block = bytes(1 << 20)
        for _ in range(nbytes >> 20):
            f.write(block)
        f.write(bytes(nbytes % (1 << 20)))


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_zip_bomb_in_a_saved_result_is_refused_before_it_is_inflated(tmp_path):
    _result().save(tmp_path / "r")
    arrays = tmp_path / "r" / "arrays.npz"
    with np.load(arrays) as z:
        hist = z["hist"]
    np.savez(arrays, hist=hist)
    _bomb(arrays, "pre_var", (2, 3, 1 << 21))  # 48 MiB of zeros in 47 KiB

    def load():
        with pytest.raises(ValueError, match="field 'pre_var' has shape") as e:
            ji.SweepResult.load(tmp_path / "r")
        assert str(arrays) in str(e.value)

    assert _peak_bytes(load) < 8 << 20


def test_a_zip_bomb_chunk_is_refused_before_it_is_inflated(tmp_path):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=1)
    chunk = out / "chunks" / "w00-s000000000.npz"
    arrays = _unsigned(chunk)
    del arrays["pre_var"]
    _resign(chunk, arrays, _fingerprint(out, "sweep"))
    _bomb(chunk, "pre_var", (1 << 24,))

    def resume():
        with pytest.raises(ValueError, match="pre_var") as e:
            ji.sweep(_grid(), out=out, chunk_size=1)
        assert str(chunk) in str(e.value)

    assert _peak_bytes(resume) < 32 << 20


# -- 9. deep JSON and a crafted grid ---------------------------------------------------------


def test_json_nested_too_deep_is_an_error_naming_the_file(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    _result().save(tmp_path / "r")
    (tmp_path / "r" / "manifest.json").write_text(deep)
    with pytest.raises(ValueError, match="nest") as e:
        ji.SweepResult.load(tmp_path / "r")
    assert str(tmp_path / "r" / "manifest.json") in str(e.value)
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out)
    (out / "sweep.json").write_text(deep)
    with pytest.raises(ValueError, match="nest") as e:
        ji.sweep(_grid(), out=out)
    assert str(out / "sweep.json") in str(e.value)


def test_report_of_a_result_whose_grid_was_crafted_huge_writes_no_overlay(tmp_path, capsys):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out)
    path = out / "result" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["attrs"]["grid"]["depth"] = [10**8]
    path.write_text(json.dumps(manifest))
    with _deadline(120):
        assert main(["report", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no theory overlay" in err
    assert "100000000" in err
    assert (out / "report.html").is_file()


def test_report_overlay_takes_the_sweeps_size_check(tmp_path, capsys, monkeypatch):
    from jaxinit import _host

    out = tmp_path / "d"
    ji.sweep(_grid(), out=out)
    monkeypatch.setattr(_host, "memory_limit", lambda fraction=0.5: 10)
    assert main(["report", str(out)]) == 0
    assert (
        "no theory overlay: predict: this grid's prediction needs about" in capsys.readouterr().err
    )


# -- 10. crafted checkpoints that pass the signature ----------------------------------------


CHUNK = "w00-s000000000.npz"


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda a: a.update(pre_var=a["pre_var"][..., :1]), r"pre_var of shape \(1, 1, 1, 1\)"),
        (lambda a: a.update(pre_var=a["pre_var"].astype(np.float64)), r"pre_var.*float64"),
        (lambda a: a.update(bogus=np.zeros(3)), r"\['bogus'\]"),
        (lambda a: a.pop("pre_var"), r"lacks.*\['pre_var'\]"),
        (lambda a: a.update(_process=np.int64(10**9)), r"process 1000000000.*0 to 0"),
        (lambda a: a.update(_process=np.int64(-1)), r"process -1"),
        (lambda a: a.pop("_process"), r"lacks.*\['_process'\]"),
        (lambda a: a.update(_seeds=np.array([7])), r"other seeds"),
    ],
    ids=[
        "shape",
        "dtype",
        "extra",
        "missing",
        "process-huge",
        "process-negative",
        "process-missing",
        "seeds",
    ],
)
def test_a_resigned_chunk_with_a_wrong_layout_or_value_is_refused(tmp_path, edit, match):
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=1)
    chunk = out / "chunks" / CHUNK
    arrays = _unsigned(chunk)
    edit(arrays)
    _resign(chunk, arrays, _fingerprint(out, "sweep"))
    with pytest.raises(ValueError, match=match) as e:
        ji.sweep(_grid(), out=out, chunk_size=1)
    assert str(chunk) in str(e.value)
    assert "delete it to recompute it" in str(e.value)


def test_a_resigned_chunk_of_a_later_process_is_accepted(tmp_path):
    """Chunk 1 of a two-process run was computed by process 1: a valid value."""
    out = tmp_path / "d"
    ji.sweep(_grid(), out=out, chunk_size=1)
    chunk = out / "chunks" / "w00-s000000001.npz"
    arrays = _unsigned(chunk)
    arrays["_process"] = np.int64(1)
    _resign(chunk, arrays, _fingerprint(out, "sweep"))
    res = ji.sweep(_grid(), out=out, chunk_size=1)
    assert res.attrs["computed_by"] == {"w00-s000000000": 0, "w00-s000000001": 1}


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda a: a.update(step=np.int64(-3)), r"step -3.*from 1 to 4"),
        (lambda a: a.update(step=np.int64(99)), r"step 99.*from 1 to 4"),
        (lambda a: a.update(step=np.float64(2.0)), r"step.*float64"),
        (lambda a: a.update(loss=a["loss"][..., :2]), r"loss of shape"),
        (lambda a: a.pop("group/0/params/out/bias"), r"lacks.*\['group/0/params/out/bias'\]"),
        (lambda a: a.update(bogus=np.zeros(3)), r"\['bogus'\]"),
    ],
    ids=["step-negative", "step-past-the-end", "step-float", "shape", "missing", "extra"],
)
def test_a_resigned_training_checkpoint_with_a_wrong_layout_or_step_is_refused(
    tmp_path, data, edit, match
):
    out = tmp_path / "t"
    ji.train(_tgrid(), data, out=out, checkpoint_every=2)
    path = out / "checkpoint.npz"
    arrays = _unsigned(path)
    edit(arrays)
    _resign(path, arrays, _fingerprint(out, "train"))
    with pytest.raises(ValueError, match=match) as e:
        ji.train(_tgrid(), data, out=out, checkpoint_every=2)
    assert str(path) in str(e.value)


def test_resume_reads_back_checkpoints_of_every_layout(tmp_path):
    """The layout a chunk is checked against is the one the sweep writes, for grids with
    and without gradients and cosines, several depths and widths."""
    for n, kw in enumerate([dict(gradients=False), dict(cosine=True, depth=[2, 3]),
                            dict(width=[4, 6], bias_inits=["zeros", "normal(stddev=0.1)"])]):  # fmt: skip
        grid = _grid(**kw)
        first = ji.sweep(grid, out=tmp_path / str(n), chunk_size=1)
        assert ji.sweep(grid, out=tmp_path / str(n), chunk_size=1).equals(first)


def test_a_result_manifest_without_shapes_or_dtypes_is_refused(tmp_path):
    """Every array's shape and dtype are checked against the manifest's: one that lacks
    them is refused, naming the keys, before any array is read."""
    for key in ("shapes", "dtypes"):
        _result().save(tmp_path / key)
        path = tmp_path / key / _result_io.MANIFEST
        manifest = json.loads(path.read_text())
        del manifest[key]
        path.write_text(json.dumps(manifest))
        with pytest.raises(ValueError, match=re.escape(f"{path} lacks the keys ['{key}']")):
            ji.SweepResult.load(tmp_path / key)
