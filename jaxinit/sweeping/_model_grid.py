"""ModelGrid: the user's own Flax NNX model, over initializers and seeds.

A separate grid rather than ``Grid(model=...)``: a :class:`~jaxinit.Grid`'s fields
(``depth``, ``width``, ``activations``, ``bias_inits``, ``d_in``, ``batchnorm``)
describe the built-in MLP, and a model brings all of those itself; one class
holding both would have half its fields invalid in each use. What every grid has
(seeds, root seed, aliases, inits, histogram settings, ``describe``) is the same
in both, with the same names and limits.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxinit import initializers as _initializers
from jaxinit._checks import check_choice, check_int
from jaxinit._dims import GridBase
from jaxinit.initializers._bases import Lsuv
from jaxinit.models._kernels import KernelRule, kernels
from jaxinit.sweeping._capture import default_capture
from jaxinit.sweeping._plan import HIST_DEFAULT_HALF_RANGE

__all__ = ["MODEL_DIMS", "ModelGrid"]

MODEL_DIMS = ("init", "seed")  # the result's dims; every field adds ("layer", ...)
GENERATED_INPUTS = ("gaussian", "uniform")


def qualname(f: Any) -> str:
    f = getattr(f, "func", f)  # functools.partial
    return f"{getattr(f, '__module__', '?')}.{getattr(f, '__qualname__', type(f).__name__)}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ModelGrid(GridBase):
    """Any Flax NNX model, swept over initializers and seeds at initialization.

    Example::

        def make(rngs):
            return MyResNet(depth=20, width=64, rngs=rngs)

        grid = ji.ModelGrid(model=make, inits=["he_normal", "normal(stddev=0.01)"],
                            seeds=64, inputs=x)
        res = ji.sweep(grid)                # dims (init, seed), fields (..., layer)
        res.attrs["layers"]                  # the captured outputs' paths, in call order

    Args:
      model: a factory ``make(rngs) -> nnx.Module`` (not a module: each seed builds
        its own, so parameters the grid does not set are the seed's own). It is
        called inside the compiled program with ``nnx.Rngs`` of the seed's key.
      inits: initializer specs or objects for the selected kernels (a dim).
      seeds: a count ``n`` (seeds 0..n-1), a range or a list of distinct seeds.
      inputs: an array ``(batch, ...)`` every seed's model sees, or
        ``"gaussian"``/``"uniform"`` drawn per seed with ``input_shape``.
      input_shape: ``(batch, ...)`` of generated inputs (only with them).
      rule: which kernels get the grid's init: a :func:`jaxinit.models.kernels`
        rule (by path regex and module type), or ``(path, module) -> bool``;
        None: every ``Linear``, ``LinearGeneral``, ``Conv``, ``ConvTranspose``
        (and ``Einsum``, which needs its fan-in in the rule). The others keep
        the model's own init, as do biases and every other parameter.
      capture: ``(path, module) -> bool``, which modules' outputs are layers of
        the result; None: kernel modules, norms, attention and every module not
        from Flax (the user's blocks and the model itself, path ``""``).
      bins: histogram bins per layer.
      hist_range: ``(lo, hi)`` of the histograms.
      cosine: also record the mean cosine similarity between samples.
      gradients: also the backward statistics for a random readout.
      root_seed: seed of the root key.
      aliases: {dim: {label as given: canonical spec}}.
    """

    model: Callable[..., Any]
    inits: tuple[_initializers.Initializer, ...]
    seeds: range | tuple[int, ...] = 1
    inputs: Any = "gaussian"
    input_shape: tuple[int, ...] | None = None
    rule: KernelRule | Callable[[str, Any], bool] | None = None
    capture: Callable[[str, Any], bool] | None = None
    bins: int = 30
    hist_range: tuple[float, float] = (-HIST_DEFAULT_HALF_RANGE, HIST_DEFAULT_HALF_RANGE)
    cosine: bool = False
    gradients: bool = True
    root_seed: int = 0
    aliases: Mapping[str, Mapping[str, str]] | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def __post_init__(self):
        check_factory("ModelGrid", self.model)
        specs = [self.inits] if isinstance(self.inits, str) else list(self.inits)
        if not specs:
            raise ValueError("ModelGrid: inits is empty; give at least one initializer")
        inits = tuple(_initializers.get(s) for s in specs)
        for given, init in zip(specs, inits, strict=True):
            if isinstance(init.base, Lsuv):
                raise ValueError(
                    f"ModelGrid: inits holds {given!r}; LSUV rescales each layer on data and a "
                    "model grid has no layer order to rescale in; sweep it with ji.Grid"
                )
        labels = [i.spec for i in inits]
        if len(set(labels)) != len(labels):
            raise ValueError(f"ModelGrid: inits repeat: {labels}")
        object.__setattr__(self, "inits", inits)
        self._set_seeds()
        self._check_float32()
        derived = {
            str(g): i.spec
            for g, i in zip(specs, inits, strict=True)
            if isinstance(g, str) and g != i.spec
        }
        object.__setattr__(self, "aliases", self._merged_aliases({"init": derived}))
        object.__setattr__(self, "bins", check_int("ModelGrid: bins", self.bins, low=1))
        self._check_inputs()
        object.__setattr__(self, "rule", checked_rule("ModelGrid", self.rule))
        capture = default_capture if self.capture is None else self.capture
        if not callable(capture):
            raise TypeError(
                f"ModelGrid: capture must be (path, module) -> bool; got {capture!r:.60}"
            )
        object.__setattr__(self, "capture", capture)
        lo, hi = (float(v) for v in self.hist_range)
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(
                f"ModelGrid: hist_range must be finite (lo, hi) with lo < hi; got {self.hist_range}"
            )
        object.__setattr__(self, "hist_range", (lo, hi))
        for name in ("cosine", "gradients"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(
                    f"ModelGrid: {name} must be True or False; got {getattr(self, name)!r}"
                )

    def _check_inputs(self) -> None:
        if isinstance(self.inputs, str):
            check_choice("ModelGrid: inputs", self.inputs, GENERATED_INPUTS)
            if self.input_shape is None:
                raise ValueError(
                    f"ModelGrid: inputs={self.inputs!r} needs input_shape=(batch, ...), the shape "
                    "each seed's inputs are drawn with"
                )
            shape = tuple(check_int("ModelGrid: input_shape", d, low=1) for d in self.input_shape)
            object.__setattr__(self, "input_shape", shape)
            return
        if self.input_shape is not None:
            raise ValueError("ModelGrid: input_shape is for generated inputs; an array has its own")
        x = np.asarray(self.inputs)
        if x.ndim < 1 or x.shape[0] < 1 or not np.issubdtype(x.dtype, np.number):
            raise ValueError(
                f"ModelGrid: inputs must be a numeric array (batch, ...) or one of "
                f"{GENERATED_INPUTS}; got shape {x.shape}, dtype {x.dtype}"
            )
        if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
            raise ValueError("ModelGrid: inputs hold NaN or inf")
        x = x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x
        x.setflags(write=False)
        object.__setattr__(self, "inputs", x)
        object.__setattr__(self, "input_shape", tuple(x.shape))

    @property
    def input_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if isinstance(self.inputs, str) else self.inputs.dtype

    @property
    def dims(self) -> tuple[str, ...]:
        return MODEL_DIMS

    def _axes(self) -> dict[str, tuple]:
        return {"init": tuple(i.spec for i in self.inits), "seed": tuple(self.seeds)}

    def coords(self) -> dict[str, tuple]:
        """The labels of each dim of the result."""
        return self._axes()

    def build(self, seed: int, *, init: Any):
        """The model the sweep measures at ``(init, seed)``, built eagerly: the factory with
        ``nnx.Rngs(fold_in(seed_key(root_seed, seed), STREAM_MODEL))``, then each selected
        kernel ``i`` (its index among all kernels, graph order) set to
        ``init(layer_keys(seed_key, i)[0], view).reshape(kernel.shape)``
        (:func:`jaxinit.models.kernel_view`). Dropout and batch norm are as the model
        built them; the sweep runs it with dropout off and batch statistics."""
        labels = [i.spec for i in self.inits]
        spec = self.aliases.get("init", {}).get(init, init) if isinstance(init, str) else init
        spec = getattr(spec, "spec", spec)
        if spec not in labels:
            raise ValueError(
                f"ModelGrid.build: init={init!r} is not in the grid; its inits: {labels}"
            )
        obj = self.inits[labels.index(spec)]
        seed = check_int("ModelGrid.build: seed", seed, low=0)
        return build_model(self.model, self.rule, obj, self.root_seed, seed)

    def _settings(self) -> dict[str, Any]:
        inputs = self.inputs
        if not isinstance(inputs, str):
            digest = hashlib.sha256(np.ascontiguousarray(inputs).tobytes()).hexdigest()[:16]
            inputs = f"array{list(self.inputs.shape)}:{self.inputs.dtype}:{digest}"
        rule = self.rule.describe() if isinstance(self.rule, KernelRule) else qualname(self.rule)
        return {
            "model": qualname(self.model),
            "inputs": inputs,
            "input_shape": list(self.input_shape),
            "rule": rule,
            "capture": qualname(self.capture),
            "bins": self.bins,
            "hist_range": list(self.hist_range),
            "cosine": self.cosine,
            "gradients": self.gradients,
        }


def check_factory(who: str, model: Any) -> None:
    """Refuses anything but a factory ``make(rngs) -> nnx.Module`` (a module instance included)."""
    if _is_module(model):
        raise TypeError(
            f"{who}: model is an nnx.Module instance; give a factory make(rngs) -> "
            "nnx.Module, so that each seed builds its own parameters"
        )
    if not callable(model):
        raise TypeError(
            f"{who}: model must be a factory make(rngs) -> nnx.Module; got {model!r:.80}"
        )


def checked_rule(who: str, rule: Any) -> Any:
    """The rule of which kernels get a grid's init (None: :func:`jaxinit.models.kernels`'s default)."""
    rule = kernels() if rule is None else rule
    if not (isinstance(rule, KernelRule) or callable(rule)):
        raise TypeError(
            f"{who}: rule must be ji.models.kernels(...) or a callable (path, module) -> "
            f"bool; got {rule!r:.60}"
        )
    return rule


def build_model(make: Callable, rule: Any, init: Any, root_seed: int, seed: int):
    """The model of ``(init, seed)`` as every grid of a factory builds it, eagerly: ``make``
    with ``nnx.Rngs(fold_in(seed_key(root_seed, seed), STREAM_MODEL))``, then each kernel
    that ``rule`` selects (index ``i`` among all kernels, graph order) set to
    ``init(layer_keys(seed_key, i)[0], view).reshape(kernel.shape)``."""
    import jax
    from flax import nnx

    from jaxinit._keys import STREAM_MODEL, layer_keys, seed_key
    from jaxinit.models._kernels import KERNEL_TYPES, select

    key = seed_key(root_seed, seed)
    model = make(nnx.Rngs(jax.random.fold_in(key, STREAM_MODEL)))
    modules = [m for _, m in nnx.iter_modules(model) if isinstance(m, KERNEL_TYPES)]
    for k in select(model, rule):
        w = init(layer_keys(key, k.index)[0], k.view)
        if k.swap:
            w = w.swapaxes(-1, -2)
        modules[k.index].kernel.set_value(w.reshape(k.shape))
    return model


def _is_module(obj: Any) -> bool:
    from flax import nnx

    return isinstance(obj, nnx.Module)
