"""jaxinit: weight initialization at scale, in JAX.

Pure-functional initializers that drop into Flax and ``jax.nn.initializers``,
with the activations they are studied under::

    import jaxinit as ji
    init = ji.initializers.get("he_normal")       # or "normal(stddev=0.01)", ...
    act = ji.activations.get("leaky_relu(negative_slope=0.2)")
    ji.initializers.gain("tanh")                  # 5/3, torch's calculate_gain

and sweeps thousands of networks at initialization in one compiled program::

    grid = ji.Grid(inits=["he_normal", "normal(stddev=0.01)"], activations=["relu"],
                   depth=5, width=100, seeds=16)
    res = ji.sweep(grid)
    res.sel(init="he_normal", activation="relu").pre_var   # (seed, layer)

with what mean-field theory expects, in the same layout (every result, measured,
trained or predicted, is a ``ji.Result``: labelled arrays with ``sel``, frames and
files), and the rest of the toolkit::

    ji.theory.predict(grid).sel(init="he_normal", activation="relu").pre_var
    ji.report.report_sweep(res, "out/report", theory=ji.theory.predict(grid))
    ji.train(ji.TrainGrid(inits=["he_normal", "normal(stddev=0.01)"], seeds=5),
             ji.data.load_mnist("train"), ji.data.load_mnist("test"))
    ji.isometry.jacobian_spectrum(key, init="orthogonal", activation="tanh", depth=32, width=128)
    ji.lsuv.lsuv_init(model, x, activation="relu")         # LSUV on a Flax NNX MLP

Importing jaxinit turns on jax's persistent compilation cache in a user
cache directory (``JAXINIT_COMPILATION_CACHE=0`` opts out; see ``jaxinit._cache``).
What a sweep does not use is imported on first use, so ``import jaxinit`` costs
little more than ``import jax`` (``benchmarks/README.md``): ``jaxinit.report``
(matplotlib), ``jaxinit.training`` (flax, optax), ``jaxinit.lsuv``'s Flax part,
``jaxinit.theory``, ``jaxinit.isometry`` and ``jaxinit.data``.

Users import from here and the public modules listed in ``__all__``
(``initializers``, ``activations``, ``data``, ``theory``, ``isometry``,
``lsuv``, ``report``, ``sweeping``, ``training``); modules whose names start
with an underscore are private. A module and a function never share a name:
``ji.sweep`` is the function of the module ``jaxinit.sweeping``, ``ji.train``
that of ``jaxinit.training``.
"""

from importlib.metadata import PackageNotFoundError, version

from jaxinit import _cache, activations, initializers, lsuv, sweeping
from jaxinit._host import use_cpu_cores
from jaxinit._progress import Update, jsonl_writer
from jaxinit._results import Result, SweepResult
from jaxinit.activations import Activation
from jaxinit.initializers import Initializer
from jaxinit.sweeping import Grid, sweep

_cache.enable_compilation_cache()

# Imported on first use: report loads matplotlib, training flax and optax; a sweep uses none
# of them (nor theory, isometry or data, which load jax.scipy and urllib).
_LAZY_MODULES = ("data", "isometry", "models", "report", "theory", "training")
_LAZY_NAMES = {
    "train": "training",
    "TrainGrid": "training",
    "TrainResult": "training",
    "ModelGrid": "sweeping",
}


def __getattr__(name: str):
    import importlib

    if name in _LAZY_MODULES:
        module = importlib.import_module(f"jaxinit.{name}")
        globals()[name] = module
        return module
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f"jaxinit.{_LAZY_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxinit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


try:
    __version__ = version("jaxinit")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Activation",
    "Grid",
    "Initializer",
    "ModelGrid",
    "Result",
    "SweepResult",
    "TrainGrid",
    "TrainResult",
    "Update",
    "__version__",
    "activations",
    "data",
    "initializers",
    "isometry",
    "jsonl_writer",
    "lsuv",
    "models",
    "report",
    "sweep",
    "sweeping",
    "theory",
    "train",
    "training",
    "use_cpu_cores",
]
