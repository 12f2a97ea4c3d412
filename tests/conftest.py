"""Makes JAX strict for the whole suite and gives every test a key.

- Rank promotion raises: `x[:, None] + y` with mismatched ranks is a bug here.
- The persistent compilation cache goes to a fresh temporary directory.
- Two fake CPU devices (as many as CI's cores), so sharding code paths run on
  any machine; tests that need more start a subprocess.
"""

import os
import pathlib
import tempfile

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "2")
# hermetic: the suite's compiled programs go to a fresh directory, not ~/.cache
os.environ.setdefault("JAXINIT_CACHE_DIR", tempfile.mkdtemp(prefix="jaxinit-test-cache-"))
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "standard")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def mnist_dir():
    """The MNIST directory: ``$JAXINIT_DATA`` if set (then its files must be valid), else
    ``../shared/data/mnist`` beside the repository; tests that need it skip without either.
    CI sets ``JAXINIT_DATA`` (``.ci/run``), so there these tests always run."""
    if os.environ.get("JAXINIT_DATA"):
        return pathlib.Path(os.environ["JAXINIT_DATA"])
    path = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    if not path.is_dir():
        pytest.skip(f"no MNIST copy: set JAXINIT_DATA or place the files in {path}")
    return path
