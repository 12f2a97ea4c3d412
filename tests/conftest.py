"""Makes JAX strict for the whole suite and gives every test a key.

- Rank promotion raises: `x[:, None] + y` with mismatched ranks is a bug here.
- The persistent compilation cache goes to a fresh temporary directory.
- XLA skips LLVM's expensive optimization passes (``--xla_llvm_disable_expensive_passes`` in ``XLA_FLAGS``): compiling is most of the
  suite's time and this cuts it by about a tenth. The passes change speed, never results
  (no fast-math: LLVM may not reorder floating-point operations); test_jax_compat checks
  that a sweep gives the same bits with and without the flag.
- Two fake CPU devices (as many as CI's cores), so sharding code paths run on
  any machine; tests that need more start a subprocess.
"""

import os
import pathlib
import tempfile

os.environ.setdefault("JAX_NUM_CPU_DEVICES", "2")
os.environ["XLA_FLAGS"] = " ".join(  # once, even where a subprocess runs conftest again
    dict.fromkeys(
        [*os.environ.get("XLA_FLAGS", "").split(), "--xla_llvm_disable_expensive_passes=true"]
    )
)
# hermetic: the suite's compiled programs go to a fresh directory, not ~/.cache; one per
# pytest-xdist worker (a worker inherits the controller's environment)
if "JAXINIT_CACHE_DIR" not in os.environ or os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["JAXINIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="jaxinit-test-cache-")
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


def pytest_collection_modifyitems(config, items):
    """The long tests (``slow``, ``distributed``) first, the rest in file order: with
    pytest-xdist (README's command) the long ones then share the workers from the start
    instead of finishing the run alone."""
    items.sort(
        key=lambda item: (
            not any(item.iter_markers("slow")) and not any(item.iter_markers("distributed"))
        )
    )
