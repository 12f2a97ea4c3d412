"""What ``import jaxinit`` loads: what a sweep needs, and the rest on first use."""

import json
import os
import subprocess
import sys

# modules a sweep never uses: jaxinit's own, the optional dependencies and the heavy ones
# that only a report, training, theory or data load (jax itself loads neither of the others)
NOT_AT_IMPORT = (
    "jaxinit.data",
    "jaxinit.isometry",
    "jaxinit.report",
    "jaxinit.theory",
    "jaxinit.training",
    "flax",
    "matplotlib",
    "optax",
    "pandas",
    "scipy",
    "urllib.request",
    "xarray",
)

_PROBE = """
import json, sys
import jaxinit as ji
loaded = sorted(m for m in {names} if m in sys.modules)
lazy = {{name: type(getattr(ji, name)).__name__ for name in ("theory", "isometry", "data")}}
after = sorted(m for m in ("jaxinit.theory", "jaxinit.isometry", "jaxinit.data") if m in sys.modules)
print(json.dumps({{"loaded": loaded, "lazy": lazy, "after": after, "dir": dir(ji)}}))
"""


def test_import_loads_what_a_sweep_needs_and_the_rest_on_first_use():
    code = _PROBE.format(names=repr(NOT_AT_IMPORT))
    env = {**os.environ, "JAXINIT_COMPILATION_CACHE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    probe = json.loads(out.stdout.splitlines()[-1])
    assert probe["loaded"] == []
    assert probe["lazy"] == {"theory": "module", "isometry": "module", "data": "module"}
    assert probe["after"] == ["jaxinit.data", "jaxinit.isometry", "jaxinit.theory"]
    import jaxinit as ji

    assert set(ji.__all__) <= set(probe["dir"])  # tab completion lists the lazy names too


def test_moved_modules_warn_and_point_to_the_new_home():
    """jaxinit.grid, .kernel, .stats and .results moved into jaxinit.sweeping (and the result
    into jaxinit): for one release they still give the same objects, with a warning."""
    import importlib

    import pytest

    import jaxinit as ji
    from jaxinit.sweeping import _kernel

    cases = [
        ("jaxinit.grid", "Grid", ji.Grid, "use jaxinit.sweeping.Grid"),
        ("jaxinit.grid", "dim_values", None, "jaxinit.sweeping \\(it has no public dim_values"),
        ("jaxinit.kernel", "forward", _kernel.forward, "jaxinit.sweeping \\(it has no public"),
        ("jaxinit.stats", "LAYER_FIELDS", ji.sweeping.LAYER_FIELDS, "jaxinit.sweeping.LAYER_F"),
        ("jaxinit.results", "SweepResult", ji.SweepResult, "use jaxinit.SweepResult"),
    ]
    for module, name, expected, where in cases:
        with pytest.warns(DeprecationWarning, match=f"{module} moved .*{where}"):
            got = getattr(importlib.import_module(module), name)
        if expected is not None:
            assert got is expected
    with pytest.raises(AttributeError, match=r"module 'jaxinit\.grid' has no attribute 'nope'"):
        importlib.import_module("jaxinit.grid").nope
