"""Several processes on one sweep (jax.distributed), on one machine.

Two local processes, one CPU device each, with the coordinator on 127.0.0.1 and
a free port: the sweep equals the one-process result bitwise; killing both
mid-run and restarting resumes without recomputing a finished chunk; one
process dying makes the other raise within its ``process_timeout``.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import jaxinit as ji

pytestmark = pytest.mark.distributed

# as `jaxinit sweep` builds it from its flags (below): lists keep the dims depth, width, bias_init
GRID = {"inits": ["he_normal", "orthogonal"], "activations": ["tanh", "relu"], "depth": [3],
        "width": [8], "batch_size": 16, "bins": 5, "bias_inits": ["zeros"]}  # fmt: skip
FLAGS = ["--inits", "he_normal", "orthogonal", "--activations", "tanh", "relu", "--depth", "3",
         "--width", "8", "--batch-size", "16", "--bins", "5", "--chunk-size", "1"]  # fmt: skip

# argv: coordinator, process id, out, seeds, seconds to sleep after each chunk, process_timeout,
# the process that raises after its second chunk (-1: none)
_WORKER = """
import json, os, sys, time
import jax
coordinator, pid, out, seeds, pause, timeout, failing = sys.argv[1:8]
jax.distributed.initialize(coordinator, num_processes=2, process_id=int(pid),
                           initialization_timeout=60)
import jaxinit as ji

def on_update(u):
    done = u.done
    print(f"chunk {done}/{u.total}", flush=True)
    if pid == failing and done == 2:
        raise OSError("disk full (a test's failure)")
    time.sleep(float(pause))

grid = ji.Grid(**json.loads(os.environ["GRID"]), seeds=int(seeds))
try:
    res = ji.sweep(grid, out=out, chunk_size=1, on_update=on_update, process_timeout=float(timeout))
except Exception as e:
    print(f"error {type(e).__name__}: {e}", flush=True)
    os._exit(3)  # not through jax.distributed's shutdown barrier, which waits for the dead one
res.save(f"{out}-p{pid}")
print("done", json.dumps(res.attrs["computed_by"]), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(out, *, seeds, pause=0.0, timeout=30.0, failing=-1) -> list[subprocess.Popen]:
    """Both processes of a two-process sweep into ``out``, their stdout piped."""
    coordinator = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu",
           "GRID": json.dumps(GRID)}  # fmt: skip
    procs = []
    for p in range(2):
        argv = [coordinator, p, out, seeds, pause, timeout, failing]
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _WORKER, *map(str, argv)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
        ))  # fmt: skip
    return procs


def _finish(procs, timeout=90) -> list[str]:
    """Waits for both; returns each one's last stdout line."""
    lines = []
    for proc in procs:
        out, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, out
        lines.append(out.strip().splitlines()[-1])
    return lines


def _grid(seeds):
    return ji.Grid(**GRID, seeds=seeds)


def test_two_processes_equal_one_bitwise(tmp_path):
    # bitwise by construction: each device (process) runs the same compiled body for each group of lanes; their number only changes how many groups each one loops over
    out = tmp_path / "sweep"
    lines = _finish(_start(out, seeds=6))
    expected = ji.sweep(_grid(6), chunk_size=1)
    by = {f"w00-s{s:09d}": s % 2 for s in range(6)}  # chunk i: process i mod 2
    for p in range(2):
        assert lines[p] == f"done {json.dumps(by)}"
        mine = ji.SweepResult.load(f"{out}-p{p}")  # every process returns the whole result
        assert mine.equals(expected)
        assert mine.attrs["processes"] == 2
    saved = ji.SweepResult.load(out / "result")  # written by process 0
    assert saved.equals(expected)
    assert saved.attrs["computed_by"] == by
    assert not list(out.rglob("*.tmp"))
    # a one-process run on the same directory reads every chunk back, keeping who computed it
    again = ji.sweep(_grid(6), out=out)
    assert again.attrs["computed_by"] == by
    assert again.attrs["processes"] == 1
    assert again.equals(expected)


def test_killed_processes_resume_without_recomputing_from_the_command(tmp_path):
    out, seeds = tmp_path / "sweep", 16
    procs = _start(out, seeds=seeds, pause=0.3)
    for line in procs[0].stdout:  # both are under way: kill them mid-run
        if line.startswith("chunk 3/"):
            break
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("chunks/*.npz")}
    assert 3 <= len(before) < seeds  # process 0 wrote 3, process 1 some, and some are missing
    # the restart: `jaxinit sweep ... --distributed --coordinator ... --process-id I`
    cmd = [sys.executable, "-m", "jaxinit", "sweep", *FLAGS, "--seeds", str(seeds), "--out",
           str(out), "--no-theory", "--distributed", "--coordinator",
           f"127.0.0.1:{_free_port()}", "--num-processes", "2"]  # fmt: skip
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"}
    procs = [subprocess.Popen([*cmd, "--process-id", str(p)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for p in range(2)]  # fmt: skip
    done = [proc.communicate(timeout=90) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], done
    assert done[0][1].startswith("jaxinit: process 0 of 2 (jax.distributed)")
    assert "process 1: done; process 0 writes the report" in done[1][1]
    assert (out / "report.html").is_file()
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("chunks/*.npz")}
    assert len(after) == seeds
    assert {k: after[k] for k in before} == before  # not one finished chunk written again
    resumed = ji.SweepResult.load(out / "result")
    assert resumed.attrs["computed_by"] == {f"w00-s{s:09d}": s % 2 for s in range(seeds)}
    assert resumed.equals(ji.sweep(_grid(seeds), chunk_size=1))


def test_a_dead_process_is_reported_within_the_timeout(tmp_path):
    out, timeout = tmp_path / "sweep", 3.0
    procs = _start(out, seeds=8, pause=0.2, timeout=timeout)
    for line in procs[1].stdout:
        if line.startswith("chunk 1/"):
            break
    procs[1].send_signal(signal.SIGKILL)  # process 1 dies with 3 of its chunks unwritten
    killed = time.monotonic()
    procs[1].communicate(timeout=30)
    try:
        line = next(ln for ln in procs[0].stdout if not ln.startswith("chunk"))
        waited = time.monotonic() - killed
        procs[0].communicate(timeout=30)
    finally:
        procs[0].kill()
    assert line.startswith("error ProcessLost: process 0 of 2 waited for process 1's sweep chunks")
    assert "w00-s000000003" in line
    assert f"no sign of life for {timeout:g} s" in line
    assert "Restart every process" in line
    # the timeout runs from the last heartbeat process 0 saw, up to a beat (0.6 s) before the kill
    assert timeout - 1 < waited < timeout + 15
    assert procs[0].returncode == 3
    assert (out / ".process-1").read_text().startswith("alive")  # killed: no last word
    of_1 = [p.name for p in out.glob("chunks/*.npz") if int(p.stem[-9:]) % 2]
    assert of_1 == ["w00-s000000001.npz"]  # the one chunk process 1 wrote before it died


def test_a_failing_process_is_reported_at_once(tmp_path):
    out = tmp_path / "sweep"
    procs = _start(out, seeds=8, pause=0.2, timeout=60.0, failing=1)
    start = time.monotonic()
    try:
        lines = [proc.communicate(timeout=45)[0].strip().splitlines()[-1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    assert time.monotonic() - start < 45  # far less than the 60 s timeout
    assert lines[1] == "error OSError: disk full (a test's failure)"
    assert lines[0].startswith(
        "error ProcessLost: process 0 of 2 waited for process 1's sweep chunks"
    )
    assert "stopped without writing them (its heartbeat file says: failed pid=" in lines[0]
    assert "OSError: disk full (a test's failure)" in lines[0]


# argv: coordinator, process id, out, data (.npz of x and y)
_TRAIN_WORKER = """
import sys
import jax, numpy as np
coordinator, pid, out, data = sys.argv[1:5]
jax.distributed.initialize(coordinator, num_processes=2, process_id=int(pid),
                           initialization_timeout=60)
from jaxinit.training import TrainGrid, train

with np.load(data) as z:
    x, y = z["x"], z["y"]
grid = TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=3, hidden=(16, 16), steps=20,
                 batch_size=32, eval_every=10, optimizer="adam(learning_rate=0.01)")
res = train(grid, (x, y), out=out, checkpoint_every=10)
res.save(f"{out}-p{pid}")
print("done", flush=True)
"""


def test_training_on_two_processes_equals_one_within_tolerance(tmp_path):
    from jaxinit.training import TrainGrid, TrainResult, train
    from tests._tolerances import TRAIN_ATOL, TRAIN_RTOL

    rng = np.random.default_rng(42)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = np.argmax(x @ rng.standard_normal((8, 4)), axis=1).astype(np.int32)
    np.savez(tmp_path / "data.npz", x=x, y=y)
    out, coordinator = tmp_path / "train", f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TRAIN_WORKER, coordinator, str(p), str(out), str(tmp_path / "data.npz")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for p in range(2)
    ]  # fmt: skip
    done = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], done
    grid = TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=3, hidden=(16, 16), steps=20,
                     batch_size=32, eval_every=10, optimizer="adam(learning_rate=0.01)")  # fmt: skip
    alone = train(grid, (x, y))
    joined = TrainResult.load(out / "result")  # written by process 0
    assert isinstance(joined, TrainResult)
    assert joined.coords == alone.coords
    assert joined.attrs["processes"] == 2
    assert joined.attrs["computed_by"] == {"seeds-0-1": 0, "seeds-2-2": 1}  # seeds 0, 1 | 2
    assert joined.attrs["grid"] == grid.describe()
    assert ji.Result.load(f"{out}-p1").equals(joined)  # every process returns it
    for k in ("loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose(getattr(joined, k), getattr(alone, k), rtol=TRAIN_RTOL,
                                   atol=TRAIN_ATOL, err_msg=k)  # fmt: skip
    assert sorted(p.name for p in out.glob("seeds-*")) == ["seeds-0-1", "seeds-2-2"]
    assert (out / "seeds-2-2" / "checkpoint.npz").is_file()  # each block checkpoints


def test_the_store_lets_one_run_s_processes_share_it_and_refuses_the_rest(tmp_path):
    from jaxinit._store import Store, StoreBusy

    def store(process, processes):
        return Store(tmp_path, kind="sweep", schema=1, spec={"a": 1}, process=process,
                     processes=processes)  # fmt: skip

    with store(0, 2), store(1, 2):  # one job's two processes
        with pytest.raises(StoreBusy, match=r"\(process 1 of 2\)"):
            store(1, 2)  # a second job's process 1
        with pytest.raises(StoreBusy, match="in use by another sweep"):
            store(0, 1)  # a one-process run
    with store(0, 1), pytest.raises(StoreBusy):
        store(1, 2)
    store(1, 3).close()  # released on close


def test_waiting_raises_on_a_silent_or_failed_owner_and_yields_what_arrives(tmp_path):
    from jaxinit._distributed import ProcessLost, arrivals, heartbeat

    (tmp_path / "a").touch()
    kw = {"process": 0, "count": 3, "timeout": 0.5, "what": "sweep chunks"}
    ready = lambda name: (tmp_path / name).exists()  # noqa: E731
    start = time.monotonic()
    with pytest.raises(ProcessLost, match=r"process 2's sweep chunks \(b\).*no sign of life for 0.5 s"):  # fmt: skip
        list(arrivals(tmp_path, {"a": 1, "b": 2}, ready, **kw))
    assert 0.5 <= time.monotonic() - start < 5
    with heartbeat(tmp_path, 2, timeout=0.5):  # alive, then writes b: no error
        got = []
        for name in arrivals(tmp_path, {"a": 1, "b": 2}, ready, **kw):
            got.append(name)
            time.sleep(1.0)  # twice the timeout, while process 2's heartbeat goes on
            (tmp_path / "b").touch()
    assert got == ["a", "b"]
    assert (tmp_path / ".process-2").read_text().startswith("done pid=")
    with pytest.raises(KeyError), heartbeat(tmp_path, 1, timeout=10):
        raise KeyError("lost")
    assert "failed pid=" in (tmp_path / ".process-1").read_text()
    with pytest.raises(ProcessLost, match=r"stopped without writing them .*failed pid=.*KeyError: 'lost'"):  # fmt: skip
        list(arrivals(tmp_path, {"c": 1}, ready, **kw, seen={1: ("", time.monotonic())}))


def test_multi_process_arguments_are_checked():
    from jaxinit._distributed import check_timeout, owner
    from jaxinit.training._processes import seed_blocks

    assert [owner(i, 3) for i in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert seed_blocks((5, 6, 7, 8, 9), 2) == [(5, 6, 7), (8, 9)]
    assert seed_blocks((5,), 3) == [(5,), (), ()]
    for bad, err in ((0, ValueError), (-1.0, ValueError), (float("nan"), ValueError),
                     (True, TypeError), ("60", TypeError)):  # fmt: skip
        with pytest.raises(
            err, match=r"process_timeout \(seconds\) must be a finite real number > 0"
        ):
            check_timeout(bad, "sweep")
    with pytest.raises(ValueError, match=r"sweep: process_timeout \(seconds\) must be"):
        ji.sweep(_grid(1), process_timeout=0)


def test_several_processes_need_out_and_their_own_devices(monkeypatch):
    import jax

    from jaxinit import _distributed
    from jaxinit.training import TrainGrid, train

    monkeypatch.setattr(_distributed, "processes", lambda: (0, 2))  # as if in a two-process job
    with pytest.raises(ValueError, match=r"with 2 processes \(jax.distributed\), out= is required"):
        ji.sweep(_grid(2))
    monkeypatch.setattr(_distributed, "processes", lambda: (1, 2))  # process 1: devices are 0's
    with pytest.raises(ValueError, match="process 1 of 2 can run only on its own devices"):
        ji.sweep(_grid(2), out="unused")
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    grid = TrainGrid(inits=["he_normal"], seeds=2, hidden=(4,), steps=1)
    x, y = np.zeros((8, 3), np.float32), np.zeros(8, np.int32)
    with pytest.raises(ValueError, match=r"train: with 2 processes \(jax.distributed\), out= is"):
        train(grid, (x, y))


_MODEL_WORKER = """
import functools, sys
import jax
coordinator, pid, out = sys.argv[1:4]
jax.distributed.initialize(coordinator, num_processes=2, process_id=int(pid),
                           initialization_timeout=60)
import numpy as np
import jaxinit as ji

x = np.random.default_rng(0).standard_normal((8, 6, 6, 3)).astype(np.float32)
make = functools.partial(ji.models.CNN, in_channels=3, channels=4, depth=2, classes=2)
grid = ji.ModelGrid(model=make, inits=["he_normal", "orthogonal"], seeds=5, inputs=x)
res = ji.sweep(grid, out=out, chunk_size=1, process_timeout=30.0)
res.save(f"{out}-p{pid}")
print("done", flush=True)
"""


def test_a_model_grid_on_two_processes_equals_one_bitwise(tmp_path):
    # bitwise by construction: every seed runs the same per-seed body on every device, and
    # the chunks only decide which process runs it
    import functools

    out, coordinator = tmp_path / "models", f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "1", "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MODEL_WORKER, coordinator, str(p), str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for p in range(2)
    ]  # fmt: skip
    done = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], done
    x = np.random.default_rng(0).standard_normal((8, 6, 6, 3)).astype(np.float32)
    make = functools.partial(ji.models.CNN, in_channels=3, channels=4, depth=2, classes=2)
    grid = ji.ModelGrid(model=make, inits=["he_normal", "orthogonal"], seeds=5, inputs=x)
    alone = ji.sweep(grid)
    saved = ji.SweepResult.load(out / "result")  # written by process 0
    assert saved.attrs["processes"] == 2
    assert sorted(p.name for p in (out / "chunks").glob("*.npz")) == [f"{s}.npz" for s in range(5)]
    for res in (saved, ji.SweepResult.load(f"{out}-p1")):  # every process returns it all
        for f in alone.fields:
            np.testing.assert_array_equal(res[f], alone[f], err_msg=f)
