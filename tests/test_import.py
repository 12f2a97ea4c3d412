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
