"""Fault injection: SIGKILLs at random moments, then resume; the result is bitwise the same.

Each trial starts a fresh process on the same output directory, reads a random
number of its progress lines (so jax has started and work is under way), sleeps a
random few ms (from a fixed-seed generator, so a failure reproduces) and SIGKILLs
it: between chunks, mid-chunk, or during a checkpoint's write. A process that
finishes before its kill ends the trials. The last run, in-process, must then
equal an uninterrupted run bitwise and leave no temporary file behind.
"""

import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import jaxinit as ji
from jaxinit.training import TrainGrid, train

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRIALS = 4  # processes started, each killed at a random moment

_SWEEP = """
import sys, jax, jaxinit as ji
grid = ji.Grid(inits=["he_normal", "orthogonal"], activations=["tanh", "relu"], depth=3,
               width=8, seeds=24, batch_size=16, bins=5)
ji.sweep(grid, out=sys.argv[1], chunk_size=1, on_update=lambda u: print(f"chunk {u.done}/{u.total}", flush=True))
print("done", flush=True)
"""
SWEEP_GRID = ji.Grid(inits=["he_normal", "orthogonal"], activations=["tanh", "relu"], depth=3,
                     width=8, seeds=24, batch_size=16, bins=5)  # fmt: skip

_TRAIN = """
import sys, jax, numpy as np
from jaxinit.training import TrainGrid, train
kx, kw = jax.random.split(jax.random.key(42))
x = np.asarray(jax.random.normal(kx, (256, 8)))
y = np.argmax(x @ np.asarray(jax.random.normal(kw, (8, 4))), axis=1).astype(np.int32)
grid = TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=2, hidden=(16, 16), steps=60,
                 batch_size=32, optimizer="adam(learning_rate=0.01)")
train(grid, (x, y), out=sys.argv[1], checkpoint_every=3,
      on_update=lambda u: u.done and print(f"step {u.done}", flush=True))
print("done", flush=True)
"""


def _kill_at_random(script: str, out: pathlib.Path, rng: random.Random) -> int:
    """Runs ``script out`` TRIALS times, each SIGKILLed at a random moment; returns the kills.

    The moment: after a random number (1 to 4) of progress lines, then a random
    delay of up to 20 ms, so it falls between chunks, inside one, or in a write.
    """
    kills = 0
    for _ in range(TRIALS):
        cmd = [sys.executable, "-c", script, str(out)]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) as proc:
            lines = [proc.stdout.readline() for _ in range(rng.randint(1, 4))]
            if any(line.startswith("done") or not line for line in lines):
                proc.wait(timeout=60)
                return kills  # it finished before its kill
            time.sleep(rng.uniform(0.0, 0.02))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += proc.returncode == -signal.SIGKILL
    return kills


def _no_temporaries(out: pathlib.Path) -> None:
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]


@pytest.mark.slow
def test_sweep_survives_random_kills_bitwise(tmp_path):
    out = tmp_path / "sweep"
    kills = _kill_at_random(_SWEEP, out, random.Random(20261201))
    assert kills >= 3  # the trials did kill it mid-run, several times
    resumed = ji.sweep(SWEEP_GRID, out=out)
    _no_temporaries(out)
    assert resumed.equals(ji.sweep(SWEEP_GRID, chunk_size=1))
    assert ji.SweepResult.load(out / "result").equals(resumed)


@pytest.mark.slow
def test_training_survives_random_kills_bitwise(tmp_path):
    out = tmp_path / "train"
    kills = _kill_at_random(_TRAIN, out, random.Random(20261202))
    assert kills >= 3
    kx, kw = jax.random.split(jax.random.key(42))
    x = np.asarray(jax.random.normal(kx, (256, 8)))
    y = np.argmax(x @ np.asarray(jax.random.normal(kw, (8, 4))), axis=1).astype(np.int32)
    grid = TrainGrid(inits=["he_normal", "glorot_uniform"], seeds=2, hidden=(16, 16), steps=60,
                     batch_size=32, optimizer="adam(learning_rate=0.01)")  # fmt: skip
    resumed = train(grid, (x, y), out=out, checkpoint_every=3)
    _no_temporaries(out)
    assert resumed.equals(train(grid, (x, y)))
