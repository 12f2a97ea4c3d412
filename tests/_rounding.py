"""Comparing two sweeps that run different programs: equal to float32 rounding."""

import numpy as np

import jaxinit as ji
from tests._tolerances import ENGINE_ATOL, ENGINE_HIST_L1, ENGINE_RTOL


def assert_within_rounding(a: ji.SweepResult, b: ji.SweepResult, *, subset: bool = False) -> None:
    """Two programs' results of the same combinations: float32 rounding apart (the promise
    of ``sweep`` for another grid beside a combination; ``tests/_tolerances.py``). With
    ``subset``, ``b`` may have more fields than ``a``."""
    assert a.dims == b.dims
    assert set(a.fields) <= set(b.fields) if subset else set(a.fields) == set(b.fields)
    for name in a.fields:
        x, y = np.asarray(a[name]), np.asarray(b[name])
        if name.startswith("hist"):  # counts: near-edge values may change bins
            assert x.dtype == y.dtype
            assert x.shape == y.shape
            if name == "hist":
                np.testing.assert_array_equal(x.sum(-1), y.sum(-1))  # no value lost
                moved = np.abs(x.astype(np.int64) - y).sum()
                assert moved <= 2 * max(1, ENGINE_HIST_L1 * x.sum()), (name, moved)
            else:
                assert np.abs(x.astype(np.int64) - y).sum() <= 2 * max(1, ENGINE_HIST_L1 * x.size)
        elif np.issubdtype(x.dtype, np.integer):
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=ENGINE_RTOL, atol=ENGINE_ATOL, err_msg=name)
