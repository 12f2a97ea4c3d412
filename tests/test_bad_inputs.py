"""Bad input is refused up front: the exception type, and a message naming the value and the fix."""

import jax
import numpy as np
import pytest

import jaxinit as ji

BASE = dict(inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=1, batch=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(root_seed=2.5), TypeError, r"root_seed must be an int; got float 2.5"),
        (dict(root_seed="0"), TypeError, r"root_seed must be an int; got str '0'"),
        (dict(root_seed=None), TypeError, r"root_seed must be an int; got NoneType"),
        (dict(root_seed=True), TypeError, r"root_seed must be an int; got bool"),
        (
            dict(root_seed=2**70),
            ValueError,
            r"root_seed must be in \[0, 2\*\*32\); got 1180591620717411303424",
        ),
        (dict(seeds=[0, 2**31]), ValueError, r"seeds must be below 2\*\*31.*2147483648"),
        (dict(bins=10**9), ValueError, r"bins must be at most 10000; got 1000000000"),
        (dict(hist_range=(0,)), TypeError, r"hist_range must be a pair of numbers.*\(0,\)"),
        (dict(hist_range="abc"), TypeError, r"hist_range must be a pair.*'abc'"),
        (dict(hist_range=5), TypeError, r"hist_range must be a pair.*5"),
        (dict(hist_range=("a", "b")), TypeError, r"hist_range must be a pair.*\('a', 'b'\)"),
        (dict(inputs=np.ones((4, 3), complex)), ValueError, r"real numbers; got dtype complex128"),
        (dict(inputs=np.array([[1, "a"]], object)), ValueError, r"got dtype object"),
        (dict(inputs=[[1, "a"]]), ValueError, r"got dtype <U"),
        (
            dict(inputs=np.ones((4, 3)), d_in=5),
            ValueError,
            r"d_in=5 contradicts the inputs array of shape \(4, 3\)",
        ),
        (dict(inputs=np.ones((4, 3)), batch=7), ValueError, r"batch=7 contradicts"),
        (dict(gradients="yes"), TypeError, r"gradients must be True or False; got 'yes'"),
    ],
)
def test_bad_grid(kwargs, error, match):
    with pytest.raises(error, match=match):
        ji.Grid(**{**BASE, **kwargs})


@pytest.mark.parametrize(
    ("grid", "kwargs", "error", "match"),
    [
        ("x", {}, TypeError, r"sweep takes a jaxinit Grid; got str"),
        (
            None,
            dict(devices=[]),
            ValueError,
            r"devices must be a non-empty list of jax devices.*got \[\]",
        ),
        (None, dict(devices=["cpu"]), ValueError, r"got \['cpu'\]"),
        (None, dict(on_chunk=5), TypeError, r"on_chunk must be a function.*got 5"),
        (None, dict(progress="yes"), TypeError, r"progress must be True, False or None; got 'yes'"),
        (
            None,
            dict(memory_budget=0),
            ValueError,
            r"memory_budget must be a positive number of bytes; got 0",
        ),
        (None, dict(chunk_size=0), ValueError, r"chunk_size must be a positive int.*got 0"),
        (None, dict(lanes=0), ValueError, r"lanes must be a positive int; got 0"),
    ],
)
def test_bad_sweep_arguments(grid, kwargs, error, match):
    with pytest.raises(error, match=match):
        ji.sweep(ji.Grid(**BASE) if grid is None else grid, **kwargs)


def test_a_grid_too_large_for_memory_is_refused_before_it_runs():
    # 10,000 networks × 100 layers × 10,000 bins of int64 counts: about 75 GiB, over half of
    # the memory of any machine this runs on
    grid = ji.Grid(inits=["he_normal"], activations=["relu"], depth=100, width=8, seeds=10_000,
                   batch=4, bins=10_000)  # fmt: skip
    with pytest.raises(ValueError, match=r"needs about \d+\.\d GiB of host memory.*half this host"):
        ji.sweep(grid)
    with pytest.raises(ValueError, match=r"seeds=3000000000 is more than one grid holds"):
        ji.Grid(**{**BASE, "seeds": 3_000_000_000})


def test_devices_must_be_jax_devices_even_when_given_one():
    assert ji.sweep(ji.Grid(**BASE), devices=jax.devices()[:1]).post_var.shape == (1, 1, 1, 2)
