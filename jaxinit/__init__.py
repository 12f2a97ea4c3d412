"""jaxinit: weight initialization at scale, in JAX.

Pure-functional initializers that drop into Flax and ``jax.nn.initializers``,
with the activations they are studied under::

    import jaxinit as ji
    init = ji.initializers.get("he_normal")       # or "normal(stddev=0.01)", ...
    act = ji.activations.get("leaky_relu(negative_slope=0.2)")
    ji.initializers.gain("tanh")                  # 5/3, torch's calculate_gain

Users import from here, ``jaxinit.initializers`` and ``jaxinit.activations``;
modules whose names start with an underscore are private.
"""

from importlib.metadata import PackageNotFoundError, version

from jaxinit import activations, initializers
from jaxinit.activations import Activation
from jaxinit.initializers import Initializer

try:
    __version__ = version("jaxinit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Activation",
    "Initializer",
    "__version__",
    "activations",
    "initializers",
]
