r"""What to train: the :class:`MLP`, the optimizer from a spec, and :class:`TrainGrid`.

A grid validates everything up front and derives every key (:mod:`jaxinit._keys`):
model ``(init, seed)`` draws layer ``l``'s kernel and bias with
``layer_keys(seed_key(root_seed, seed), l)``, the keys of the sweep's network of
that seed, and its mini-batch order from the batch key of
:meth:`TrainGrid.batch_key` (see :mod:`jaxinit.training`).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import optax
from flax import nnx

from jaxinit import activations as _activations
from jaxinit import initializers as _initializers
from jaxinit._checks import (
    FLOAT32_MAX,
    check_bool,
    check_choice,
    check_int,
    check_real,
    closest_hint,
    is_list,
)
from jaxinit._deprecated import renamed_fields
from jaxinit._dims import GridBase, dim_values
from jaxinit._keys import STREAM_BATCHES, layer_keys, seed_key
from jaxinit._spec import check_bools, parse_spec, resolve_specs
from jaxinit.initializers._core import initializer_or_function
from jaxinit.training import _mup

__all__ = ["MLP", "TrainGrid", "make_optimizer"]

SHARED_SEED = 2**32 - 1  # stands for "every seed" in the shared batch key; seeds are < 2**31
OUTPUTS, SHUFFLES = ("softmax", "sigmoid"), ("shared", "per_seed")
# the fields that describe the built-in MLP, refused (unless at their defaults) with model=
MLP_ONLY = ("hidden", "activations", "bias_inits", "keep_params")
DEFAULT_OPTIMIZER = "sgd(learning_rate=0.01)"


class MLP(nnx.Module):
    """An MLP of ``nnx.Linear`` layers: ``len(hidden)`` hidden layers and a linear output.

    ``kernel_init``, ``bias_init`` and ``activation`` are jaxinit specs or
    objects; the output layer's kernel uses ``output_kernel_init``, or
    ``kernel_init`` when it is None (the classic experiments initialize every
    layer alike). Give one of:

    - ``key``: layer ``l``'s kernel and bias are drawn with
      ``jaxinit.sweeping.layer_keys(key, l)`` (the output layer is ``l = len(hidden)``),
      the keys of the sweep's network: with ``key = grid.seed_key(seed)`` the hidden
      layers are bitwise the weights ``jaxinit.sweep`` measured for that seed
      (:meth:`TrainGrid.build` does this);
    - ``rngs``: parameters are drawn from ``rngs.params()`` in layer order, as any
      Flax module's.
    """

    def __init__(
        self,
        d_in: int,
        hidden: Sequence[int],
        d_out: int,
        *,
        activation: Any = "relu",
        kernel_init: Any = "lecun_normal",
        bias_init: Any = "zeros",
        output_kernel_init: Any = None,
        key: jax.Array | None = None,
        rngs: nnx.Rngs | None = None,
    ):
        if (key is None) == (rngs is None):
            raise TypeError(
                "MLP: give exactly one of key= (a seed's key: the sweep's network) or rngs= "
                f"(nnx.Rngs); got key={key!r:.60} and rngs={rngs!r:.60}"
            )
        self.activation = _activations.get(activation)
        w, b = initializer_or_function(kernel_init), initializer_or_function(bias_init)
        w_out = w if output_kernel_init is None else initializer_or_function(output_kernel_init)
        sizes = (d_in, *hidden, d_out)
        linears, flax_rngs = [], nnx.Rngs(0) if rngs is None else rngs  # unused with key
        for l, (m, n) in enumerate(itertools.pairwise(sizes)):
            kernel_init, bias_init_ = (w_out if l == len(hidden) else w), b
            if key is not None:
                k_w, k_b = layer_keys(key, l)
                kernel_init, bias_init_ = _with_key(kernel_init, k_w), _with_key(b, k_b)
            linears.append(
                nnx.Linear(m, n, kernel_init=kernel_init, bias_init=bias_init_, rngs=flax_rngs)
            )
        self.layers = nnx.List(linears[:-1])
        self.out = linears[-1]

    def trace(self, x: jax.Array, probes: Sequence[jax.Array] | None = None):
        """``(logits, zs, hs)``: the output and every hidden pre- and post-activation.

        ``probes`` (zeros) are added to the pre-activations; the gradient with
        respect to them is the gradient with respect to the pre-activations.
        """
        zs, hs = [], []
        for i, layer in enumerate(self.layers):
            z = layer(x) if probes is None else layer(x) + probes[i]
            x = self.activation.fn(z)
            zs.append(z)
            hs.append(x)
        return self.out(x), zs, hs

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.trace(x)[0]


# The optax optimizers and gradient transformations a spec may name: an explicit list of
# optax's public functions (combinators, which take transformations, are refused below).
# Names a given optax version lacks are dropped; a call must return a GradientTransformation.
_OPTAX_FUNCTIONS = (
    "adabelief",
    "adadelta",
    "adafactor",
    "adagrad",
    "adam",
    "adamax",
    "adamaxw",
    "adamw",
    "adan",
    "adaptive_grad_clip",
    "add_decayed_weights",
    "add_noise",
    "amsgrad",
    "apply_every",
    "centralize",
    "clip",
    "clip_by_block_rms",
    "clip_by_global_norm",
    "ema",
    "fromage",
    "keep_params_nonnegative",
    "lamb",
    "lars",
    "lbfgs",
    "lion",
    "noisy_sgd",
    "novograd",
    "polyak_sgd",
    "radam",
    "rmsprop",
    "rprop",
    "scale",
    "scale_by_adadelta",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_adan",
    "scale_by_amsgrad",
    "scale_by_belief",
    "scale_by_lbfgs",
    "scale_by_lion",
    "scale_by_novograd",
    "scale_by_param_block_norm",
    "scale_by_param_block_rms",
    "scale_by_polyak",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_rss",
    "scale_by_schedule",
    "scale_by_sign",
    "scale_by_sm3",
    "scale_by_stddev",
    "scale_by_trust_ratio",
    "scale_by_yogi",
    "sgd",
    "sign_sgd",
    "signum",
    "sm3",
    "trace",
    "yogi",
    "zero_nans",
)


def _optax_names() -> tuple[str, ...]:
    return tuple(n for n in _OPTAX_FUNCTIONS if callable(getattr(optax, n, None)))


# optax functions that take transformations, not literals: a list of specs is their chain
_COMBINATORS = (
    "chain",
    "named_chain",
    "multi_transform",
    "partition",
    "inject_hyperparams",
    "inject_stateful_hyperparams",
    "MultiSteps",
    "masked",
    "apply_if_finite",
)
# the valid values of optax's common hyperparameters, as interval notation
_HPARAM_RANGES = {
    "learning_rate": "(0, inf)",
    "momentum": "[0, 1]",
    "b1": "[0, 1)",
    "b2": "[0, 1)",
    "decay": "[0, 1)",
    "eps": "[0, inf)",
    "eps_root": "[0, inf)",
    "weight_decay": "[0, inf)",
    "max_norm": "(0, inf)",
    "max_delta": "(0, inf)",
    "k": "[1, inf)",
}


def _in_interval(value: float, interval: str) -> bool:
    lo, hi = (float(v) for v in interval[1:-1].split(","))
    above = value >= lo if interval[0] == "[" else value > lo
    below = value <= hi if interval[-1] == "]" else value < hi
    return above and below


def _check_hparam(spec: str, key: str, value: Any) -> None:
    """A literal hyperparameter of an optax spec: finite if a number, in range if known."""
    if isinstance(value, float) and not abs(value) <= FLOAT32_MAX:
        raise ValueError(
            f"optimizer {spec!r}: {key}={value} is not a finite number (in float32, where "
            f"training computes: |x| <= {FLOAT32_MAX:.4g})"
        )
    if key not in _HPARAM_RANGES or (key == "momentum" and value is None):
        return
    kind, what = (int, "an int") if key == "k" else ((int, float), "a number")
    if isinstance(value, bool) or not isinstance(value, kind):
        raise TypeError(f"optimizer {spec!r}: {key} must be {what}; got {value!r}")
    if not _in_interval(value, _HPARAM_RANGES[key]):
        raise ValueError(
            f"optimizer {spec!r}: {key} must be in {_HPARAM_RANGES[key]}; got {value!r}"
        )


def make_optimizer(spec: Any) -> optax.GradientTransformation:
    """An Optax transformation from a spec: ``"adam(learning_rate=1e-3)"`` is
    ``optax.adam(learning_rate=1e-3)``; a list of specs is their ``optax.chain``;
    a ``GradientTransformation`` is returned as it is."""
    if isinstance(spec, optax.GradientTransformation):
        return spec
    if isinstance(spec, (list, tuple)) and spec:
        return optax.chain(*(make_optimizer(s) for s in spec))
    if not isinstance(spec, str):
        raise TypeError(
            f"optimizer must be an optax spec string such as 'sgd(learning_rate=0.01)', "
            f"a list of them, or an optax.GradientTransformation; got {spec!r}"
        )
    name, kwargs = parse_spec(spec)
    if name in _COMBINATORS:
        raise ValueError(
            f"optimizer {spec!r}: optax.{name} combines transformations; give a "
            "list of specs instead, e.g. ['clip_by_global_norm(max_norm=1.0)', "
            "'sgd(learning_rate=0.01)']"
        )
    names = _optax_names()
    if name not in names:
        raise ValueError(
            f"unknown optax optimizer or transform {name!r}.{closest_hint(name, names)} "
            f"Valid names: {', '.join(names)}"
        )
    fn = getattr(optax, name)
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for key in kwargs:
            if key not in params:
                raise ValueError(
                    f"optimizer {spec!r}: optax.{name} has no hyperparameter {key!r}; valid: "
                    f"{', '.join(params) or 'none'}.{closest_hint(key, params)}"
                )
    for key, value in kwargs.items():
        _check_hparam(spec, key, value)
    check_bools(f"optimizer {spec!r}", fn, kwargs)
    try:
        tx = fn(**kwargs)
    except TypeError as err:
        raise ValueError(f"optimizer {spec!r}: {err}") from None
    if not isinstance(tx, optax.GradientTransformation):
        raise ValueError(f"optimizer {spec!r}: optax.{name} is not a gradient transformation")
    return tx


@dataclasses.dataclass(frozen=True)
class Tx:
    """An optax transformation that compares by its spec, so that grids with the same
    optimizer spec share compiled programs (an object compares by identity). Internal API
    of :mod:`jaxinit.training` (:func:`TrainGrid.tx` makes it; the programs hold it).

    With a ``learning_rate`` dim, ``tx`` is ``optax.inject_hyperparams`` of the optimizer:
    each model's rate lives in its state, set by ``with_lr(rate).init`` (the rate is data,
    so every rate shares one program)."""

    label: Any  # the spec string, a tuple of them, or the transformation itself
    tx: optax.GradientTransformation = dataclasses.field(compare=False)
    with_lr: Any = dataclasses.field(default=None, compare=False)  # rate -> transformation


def _objects(name: str, value: Any, get) -> tuple[tuple, dict]:
    """Resolved objects, distinct and labelled, and {given label: canonical spec}."""
    values = tuple(value) if is_list(value) else (value,)
    if not values:
        raise ValueError(f"TrainGrid: {name} is empty; give at least one")
    return resolve_specs("TrainGrid", name, values, get)


def _int(name: str, value: Any, *, low: int, none: bool = False) -> int | None:
    return check_int(f"TrainGrid: {name}", value, low=low, none=none)


@renamed_fields(activation="activations", bias_init="bias_inits")
@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainGrid(GridBase):
    """Models to train together: every (init, [activation,] [width,] [learning_rate,] seed).

    Every field is validated and stored in canonical form once, at construction: specs
    become jaxinit objects, lists become tuples, a seed count ``n`` becomes ``range(n)``.
    A list (tuple) of ``activations``, ``width`` or ``learning_rate`` adds the dim
    ``activation``, ``width`` or ``learning_rate``; a single value does not. The settings a
    :class:`jaxinit.Grid` has too (``inits``, ``activations``, ``bias_inits``, ``seeds``,
    ``batch_size``, ``root_seed``, ``aliases``) have its names, types and limits.

    Attributes:
      inits: initializer specs or objects for every kernel (a dim of the result); your
        own jax initializer ``fn(key, shape, dtype)`` as it is (labelled by its name) or
        as ``ji.initializers.custom(fn, name=..., variance=...)``, as in a Grid.
      seeds: a count ``n`` (seeds 0..n-1), a range, or a list of distinct seeds in
        [0, 2**31); at most ``jaxinit.sweeping.MAX_SEEDS`` of them, stored as
        :func:`jaxinit._dims.check_seeds` says, as in a :class:`jaxinit.Grid`.
      hidden: hidden widths; the output layer has one unit per class (softmax;
        classes 0..max label) or one unit (sigmoid).
      width: the width of *every* hidden layer (``len(hidden)`` of them, so
        ``hidden`` then gives only the depth); a list adds the dim ``width``.
        Models of one width share a compiled program; each width is a shape of
        its own, so there is one program per (activation, width).
      learning_rate: the optimizer's learning rate; a list adds the dim
        ``learning_rate``. It replaces the default optimizer's 0.01; an
        explicit ``optimizer`` must then leave its rate out (``"adam"``).
        The rate is data (``optax.inject_hyperparams``): every rate shares one program.
      parametrization: ``"standard"`` or ``"mup"``, how init variances and
        learning rates scale with width (Yang et al. 2022, Table 3; the rules
        and their table are in :mod:`jaxinit.training`). μP needs ``width``.
      base_width: μP's base width, where μP equals the standard parametrization
        and the learning rate is the base rate; None: the smallest width.
      activations: an activation spec, or a list of them, which adds the dim
        ``activation``; your own function as it is (jax's own, ``jax.nn.relu``, are
        jaxinit's) or as ``ji.activations.custom(fn, ...)``, as in a Grid. Its old
        name ``activation`` works for one release, with a DeprecationWarning.
      bias_inits: the initializer of every bias: one spec (a list of one is that spec).
        Its old name ``bias_init`` works for one release, with a DeprecationWarning.
      output_init: kernel initializer of the output layer; None: the model's init.
      optimizer: an optax spec (``"adam(learning_rate=1e-3)"``), a list of specs
        (chained), or an ``optax.GradientTransformation``. An object is not
        fingerprinted for resuming: the checkpoint only knows its kind.
      steps: optimizer steps.
      batch_size: examples per step; None: the full batch every step.
      eval_every: steps between evaluations; None: at step 0 and the end only.
      output: "softmax" (cross-entropy over classes) or "sigmoid" (binary).
      shuffle: "shared" (one mini-batch order for all models) or "per_seed".
      record_stats_at: steps at which to record per-layer statistics, taken on
        that step's mini-batch before its update (``steps`` itself: after the last).
      model: your own Flax NNX model to train instead of the MLP: a factory
        ``make(rngs) -> nnx.Module`` returning logits ``(batch, classes)`` (as a
        :class:`jaxinit.ModelGrid` takes it). Model ``(init, seed)`` is the network
        ``ModelGrid(model=make, rule=rule).build(seed, init=init)`` (the one the sweep
        measures at that seed): the factory with the seed's ``nnx.Rngs``, then each kernel
        the rule selects drawn from the grid's init. Its every state must be ``nnx.Param``
        (no batch statistics or dropout keys); the data ``x`` are ``(n, ...)`` in the shape
        it takes (images for a CNN, rows as tokens for a Transformer). With ``width``,
        the factory takes it as a keyword, ``make(rngs, width=w)``, and μP applies:
        which dims grow with width is inferred per parameter, as microsoft/mup's
        ``set_base_shapes`` does (:mod:`jaxinit.training`); ``output_init`` then
        initializes the readout kernels μP finds. ``record_stats_at`` records every
        output the model's sweep captures, by its path (``result.attrs["layers"]``).
        The MLP's own fields (``hidden``, ``activations``, ``bias_inits``,
        ``keep_params``) do not apply; restore a trained model with
        ``restore_model(out, ..., model=make)``.
      rule: with ``model``, which kernels get the grid's init (``ji.models.kernels(...)`` or
        ``(path, module) -> bool``; None: every kernel module), as in a ModelGrid.
      keep_params: also return the final parameters, as fields ``kernel_l``
        ``(..., fan_in, fan_out)`` and ``bias_l`` ``(..., fan_out)`` for the
        hidden layers ``l = 0 .. len(hidden) - 1`` and the output layer
        ``l = len(hidden)``. Not with several widths (their shapes differ).
      root_seed: seed of the root key, in [0, 2**32).
      aliases: {dim: {label as given: canonical spec}}, so that a result selects by
        the names the grid was given (``"xavier_normal"``). Derived from the specs;
        :func:`dataclasses.replace` carries it over. There is no need to pass it.
    """

    inits: tuple[Any, ...]
    seeds: range | tuple[int, ...] = 1
    hidden: tuple[int, ...] = (100, 100, 100, 100)
    width: int | tuple[int, ...] | None = None
    learning_rate: float | tuple[float, ...] | None = None
    parametrization: str = "standard"
    base_width: int | None = None
    activations: Any = "relu"
    bias_inits: Any = "zeros"
    output_init: Any = None
    optimizer: Any = DEFAULT_OPTIMIZER
    steps: int = 2000
    batch_size: int | None = 128
    eval_every: int | None = None
    output: str = "softmax"
    shuffle: str = "shared"
    record_stats_at: tuple[int, ...] = ()
    keep_params: bool = False
    model: Any = None
    rule: Any = None
    root_seed: int = 0
    aliases: dict | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        set_ = functools.partial(object.__setattr__, self)
        self._check_model_fields()
        inits, init_aliases = _objects("inits", self.inits, _initializers.get)
        acts, act_aliases = _objects("activations", self.activations, _activations.get)
        set_("inits", inits)
        set_("activations", acts if is_list(self.activations) else acts[0])
        bias = _objects("bias_inits", self.bias_inits, _initializers.get)[0]
        if len(bias) != 1:
            raise ValueError(
                f"TrainGrid: bias_inits takes one spec (every model's biases); got "
                f"{self.bias_inits!r}"
            )
        if bias[0].min_rank > 1:
            raise ValueError(
                f"TrainGrid: bias init {bias[0].spec!r} needs a rank-2 shape; a bias is a vector"
            )
        set_("bias_inits", bias[0])
        if self.output_init is not None:
            set_("output_init", _objects("output_init", self.output_init, _initializers.get)[0][0])
        self._set_seeds()
        self._check_float32()
        set_("hidden", tuple(_int("hidden", h, low=1) for h in _nonempty("hidden", self.hidden)))
        set_("width", _distinct("width", self.width, lambda v: _int("width", v, low=1)))
        set_("learning_rate", _distinct("learning_rate", self.learning_rate, _learning_rate))
        check_choice("TrainGrid: parametrization", self.parametrization, _mup.PARAMETRIZATIONS)
        base = _int("base_width", self.base_width, low=1, none=True)
        if self.parametrization == "mup" and self.width is None:
            raise ValueError(
                "TrainGrid: parametrization='mup' scales with width; give width=[...] "
                "(and base_width, default the smallest width)"
            )
        if base is not None and self.parametrization != "mup":
            raise ValueError(
                f"TrainGrid: base_width={base} is μP's; it needs parametrization='mup'"
            )
        if self.parametrization == "mup" and base is None:
            set_("base_width", min(dim_values(self.width)))
        _int("steps", self.steps, low=1)
        _int("batch_size", self.batch_size, low=1, none=True)
        _int("eval_every", self.eval_every, low=1, none=True)
        check_choice("TrainGrid: output", self.output, OUTPUTS)
        check_choice("TrainGrid: shuffle", self.shuffle, SHUFFLES)
        at = self.record_stats_at
        at = tuple(
            _int("record_stats_at", s, low=0) for s in (at if isinstance(at, Sequence) else [at])
        )
        if any(s > self.steps for s in at) or len(set(at)) != len(at):
            raise ValueError(
                f"TrainGrid: record_stats_at must be distinct steps in [0, {self.steps}]; got {at}"
            )
        set_("record_stats_at", tuple(sorted(at)))
        opt = self.optimizer
        set_("optimizer", tuple(opt) if isinstance(opt, list) else opt)
        set_("optimizer", self._resolve_optimizer())
        if self.parametrization == "mup":
            _mup.optimizer_kind(self._opt_names())  # a clear error now, not at train time
        self.tx(None)  # builds the optimizer now, so that a bad spec fails here
        check_bool("TrainGrid: keep_params", self.keep_params)
        if self.keep_params and isinstance(self.width, tuple):
            raise ValueError(
                f"TrainGrid: keep_params needs one width (kernels of widths "
                f"{list(self.width)} have different shapes); train each width alone"
            )
        derived = {"init": init_aliases, "activation": act_aliases}
        set_("aliases", self._merged_aliases({d: derived[d] for d in derived if d in self.dims}))

    def _check_model_fields(self) -> None:
        """With ``model``, refuses the MLP's own fields (set to anything but their defaults)
        and stores the rule; without, refuses a rule."""
        from jaxinit.sweeping._model_grid import check_factory, checked_rule, qualname

        if self.model is None:
            if self.rule is not None:
                raise ValueError("TrainGrid: rule selects kernels of a model=...; the MLP has none")
            return
        check_factory("TrainGrid", self.model)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}

        def canonical(value):  # a spec object (canonical after a replace) by its spec
            value = getattr(value, "spec", value)
            return tuple(value) if isinstance(value, (list, tuple)) else value

        mlp_only = [
            name for name in MLP_ONLY if canonical(getattr(self, name)) != canonical(defaults[name])
        ]
        if mlp_only:
            raise ValueError(
                f"TrainGrid: {mlp_only} describe the built-in MLP; with model=... the model "
                "brings its own layers (kept parameters are for the MLP only, for now: "
                "restore a trained model with restore_model(out, ..., model=make))"
            )
        if self.width is not None and not _takes_width(self.model):
            raise TypeError(
                f"TrainGrid: width={self.width!r} with model=...: the factory "
                f"{qualname(self.model)} must take the width as a keyword, "
                "make(rngs, *, width) -> nnx.Module"
            )
        if self.output_init is not None and self.parametrization != "mup":
            raise ValueError(
                "TrainGrid: output_init with model=... initializes the readout kernels that "
                "μP finds; it needs parametrization='mup' (or set the readout's init in the "
                "model, or select it with rule=)"
            )
        object.__setattr__(self, "rule", checked_rule("TrainGrid", self.rule))
        object.__setattr__(self, "_model_rules", {})  # width -> (rules, shapes), on first use

    def _resolve_optimizer(self) -> Any:
        """The optimizer spec, with the default's rate left out when the rate is a field."""
        opt = self.optimizer
        if self.learning_rate is None:
            return opt
        if opt == DEFAULT_OPTIMIZER:
            return "sgd"
        if not isinstance(opt, str):
            raise ValueError(
                f"TrainGrid: learning_rate needs the optimizer as one optax spec string "
                f"such as 'adam' (the rate is injected into it); got {opt!r}"
            )
        name, kwargs = parse_spec(opt)
        if "learning_rate" in kwargs:
            raise ValueError(
                f"TrainGrid: the learning rate is given twice, in optimizer={opt!r} and "
                f"learning_rate={self.learning_rate!r}; drop it from the optimizer spec"
            )
        make_optimizer(
            f"{name}(learning_rate=0.1, {', '.join(f'{k}={v!r}' for k, v in kwargs.items())})"
        )
        return opt

    def _opt_names(self) -> tuple[str, ...]:
        opt = self.optimizer
        if isinstance(opt, optax.GradientTransformation):
            raise ValueError(
                "TrainGrid: parametrization='mup' needs the optimizer as optax spec "
                "strings (it picks TP5's SGD or Adam rules by name); got an object"
            )
        return tuple(parse_spec(s)[0] for s in dim_values(opt))

    def _kind(self) -> str:
        return (
            "sgd" if self.parametrization == "standard" else _mup.optimizer_kind(self._opt_names())
        )

    def tx(self, width: int | None) -> Tx:
        """The optimizer of the models of ``width`` as the programs hold it: its rate
        injected with a learning_rate dim, then μP's per-layer rates (:meth:`layer_rules`)."""
        opt = self.optimizer
        label, with_lr = opt, None
        if self.learning_rate is not None:
            name, kwargs = parse_spec(opt)
            fn = optax.inject_hyperparams(getattr(optax, name))
            with_lr = lambda rate: fn(learning_rate=rate, **kwargs)  # noqa: E731
            tx = with_lr(1.0)  # the update reads each model's rate from its state
        else:
            tx = make_optimizer(list(opt) if isinstance(opt, tuple) else opt)
        if self.parametrization == "mup" and width is not None:
            factors = self._factors(width)
            label = (label, "mup", self.base_width, width)
            tx = optax.chain(tx, _mup.scale_by_rule(factors))
            if with_lr is not None:
                inner = with_lr
                with_lr = lambda rate: optax.chain(inner(rate), _mup.scale_by_rule(factors))  # noqa: E731
        return Tx(label, tx, with_lr)

    @property
    def dims(self) -> tuple[str, ...]:
        """The dims of the result: ``init``, those of ``activation``, ``width`` and
        ``learning_rate`` given as lists, and ``seed``."""
        many = {
            "activation": is_list(self.activations),
            "width": is_list(self.width),
            "learning_rate": is_list(self.learning_rate),
        }
        return ("init", *(d for d, m in many.items() if m), "seed")

    def coords(self) -> dict[str, tuple]:
        """The labels of each dim of the result (:attr:`dims`)."""
        axes = self._axes()
        return {d: axes[d] for d in self.dims}

    def _axes(self) -> dict[str, tuple]:
        return {
            "init": tuple(i.spec for i in self.inits),
            "activation": tuple(a.spec for a in dim_values(self.activations)),
            "width": dim_values(self.width),
            "learning_rate": dim_values(self.learning_rate),
            "seed": self.seeds,
        }

    def groups(self) -> list[tuple[Any, int | None]]:
        """The (activation, width) of each compiled program's models, in order."""
        return list(itertools.product(dim_values(self.activations), dim_values(self.width)))

    def group_models(self) -> list[tuple[Any, float | None, int]]:
        """The (init, learning_rate, seed) of a group's models, in C order."""
        return list(itertools.product(self.inits, dim_values(self.learning_rate), self.seeds))

    def eval_steps(self) -> tuple[int, ...]:
        every = self.eval_every or self.steps
        return tuple(sorted({*range(0, self.steps, every), self.steps}))

    def model_key(self, seed: int) -> jax.Array:
        """Deprecated: :meth:`seed_key`, the key every model of this seed draws its
        parameters from (see :class:`MLP`), as in every grid."""
        warnings.warn(
            "TrainGrid.model_key is deprecated and will be removed in the next release; use "
            "TrainGrid.seed_key",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.seed_key(seed)

    def batch_key(self, seed: int) -> jax.Array:
        """The key of the mini-batch order of this seed's models (one shared key by default)."""
        s = seed if self.shuffle == "per_seed" else SHARED_SEED
        return jax.random.fold_in(seed_key(self.root_seed, s), STREAM_BATCHES)

    def hidden_at(self, width: int | None = None) -> tuple[int, ...]:
        """The hidden widths of the models of ``width`` (None: the grid's only width)."""
        width = self._width(width)
        return self.hidden if width is None else (width,) * len(self.hidden)

    def _width(self, width: int | None) -> int | None:
        if width is None:
            if isinstance(self.width, tuple):
                raise ValueError(f"TrainGrid: give width=, one of {list(self.width)}")
            return self.width
        return check_choice("TrainGrid: width", width, dim_values(self.width))

    def layer_rules(self, d_in: int = 0, d_out: int = 0, *, width: int | None = None) -> list:
        """Each parameter's :class:`LayerRule` at ``width``: its role, shape, shape at the
        base width, and the factors on its initializer's variance and on the learning rate
        (all 1 under the standard parametrization). With ``model``, by parameter path
        (``d_in`` and ``d_out`` unused): the model at ``width`` against it at
        ``base_width``, the dims that grow found against it at twice ``base_width``."""
        if self.model is not None:
            return self._rules_of_model(self._width(width))
        hidden = self.hidden_at(width)
        base = hidden if self.base_width is None else (self.base_width,) * len(self.hidden)
        return _mup.rules(
            self.parametrization,
            self._kind(),
            _param_shapes(d_in, hidden, d_out),
            _param_shapes(d_in, base, d_out),
        )

    def _rules_of_model(self, width: int | None) -> list:
        return self._model_at(width)[0]

    def _model_at(self, width: int | None) -> tuple[list, Any]:
        """The model's rules at ``width`` and its parameters' shapes (``nnx.State``), traced
        abstractly once per width."""
        cache = self._model_rules
        if width not in cache:
            if width is None:  # no width dim: nothing grows
                models = [nnx.eval_shape(lambda: self.model(nnx.Rngs(0)))] * 3
                rules = _mup.model_rules("standard", "sgd", *models)
            else:  # the roles against the base (the smallest width under the standard one)
                base = self.base_width or min(dim_values(self.width))
                models = [
                    nnx.eval_shape(lambda w=w: self.model(nnx.Rngs(0), width=w))
                    for w in (width, base, 2 * base)
                ]
                rules = _mup.model_rules(self.parametrization, self._kind(), *models)
            cache[width] = (rules, nnx.state(models[0], nnx.Param))
        return cache[width]

    def _factory(self, width: int | None) -> Any:
        """The model's factory ``make(rngs)`` at ``width`` (None: the factory as given)."""
        if width is None:
            return self.model
        return functools.partial(self.model, width=width)

    def _factors(self, width: int, d_in: int = 1, d_out: int = 1) -> Any:
        """The learning-rate factors as a pytree shaped like the parameters (fans beyond
        the hidden widths do not change them: the ratios of d_in and d_out are 1)."""
        if self.model is not None:
            rules, shapes = self._model_at(width)
            return _mup.model_factors({r.param: r.lr_factor for r in rules}, shapes)
        rules = self.layer_rules(d_in, d_out, width=width)
        shapes = _param_shapes(d_in, self.hidden_at(width), d_out)
        return jax.tree.unflatten(jax.tree.structure(shapes), [r.lr_factor for r in rules])

    def build(
        self,
        d_in: int,
        d_out: int,
        *,
        init: Any,
        seed: int,
        activation: Any = None,
        width: int | None = None,
    ) -> nnx.Module:
        """The model ``(init, seed, activation, width)`` of this grid, as :func:`train` starts it
        (under μP the output kernel's variance is scaled by its rule); with ``model``, the
        factory's (``d_in``, ``d_out``, ``activation`` and ``width`` unused)."""
        init = _initializers.get(init)
        if self.model is not None:  # the model grid's network of (init, seed)
            from jaxinit.sweeping._model_grid import build_model

            width = self._width(width)
            model = build_model(self._factory(width), self.rule, init, self.root_seed, seed)
            if self.parametrization == "mup" and width is not None:
                rules = [r for r in self._rules_of_model(width) if r.role == "output"]
                _mup.scale_readout(model, rules, self.output_init, self.root_seed, seed)
            return model
        act = dim_values(self.activations)[0] if activation is None else activation
        out = init if self.output_init is None else self.output_init
        rules = self.layer_rules(d_in, d_out, width=width)
        factor = next(r.variance_factor for r in rules if r.param == "kernel_out")
        if factor != 1.0:
            out = _mup.scaled_init(out, factor)
        return MLP(
            d_in,
            self.hidden_at(width),
            d_out,
            activation=act,
            kernel_init=init,
            bias_init=self.bias_inits,
            output_kernel_init=out,
            key=self.seed_key(seed),
        )

    def build_optimizer(self, *, width: int | None = None, learning_rate: Any = None):
        """The optax transformation of the models of ``width`` and ``learning_rate`` (a rate,
        with a learning_rate field; None without), as :func:`train` applies it."""
        tx = self.tx(self._width(width))
        if self.learning_rate is None:
            if learning_rate is not None:
                raise ValueError(
                    "TrainGrid: this grid has no learning_rate field; its rate is in the optimizer"
                )
            return tx.tx
        if learning_rate is None:
            raise ValueError(
                f"TrainGrid: give learning_rate=, e.g. one of {list(dim_values(self.learning_rate))}"
            )
        if isinstance(learning_rate, (int, float)):
            _learning_rate(learning_rate)
        return tx.with_lr(learning_rate)

    def _settings(self) -> dict[str, Any]:
        """The settings :meth:`describe` records besides the dims and ``root_seed``."""
        opt = self.optimizer
        opt = list(opt) if isinstance(opt, tuple) else opt if isinstance(opt, str) else "object"
        if self.model is not None:  # the model's settings, none of the MLP's
            from jaxinit.models._kernels import KernelRule
            from jaxinit.sweeping._model_grid import qualname

            rule = self.rule
            return {
                "model": qualname(self.model),
                "rule": rule.describe() if isinstance(rule, KernelRule) else qualname(rule),
                "parametrization": self.parametrization,
                "base_width": self.base_width,
                "output_init": None if self.output_init is None else self.output_init.spec,
                **self._training_settings(opt),
                "record_stats_at": list(self.record_stats_at),
            }
        return {
            "hidden": list(self.hidden),
            "parametrization": self.parametrization,
            "base_width": self.base_width,
            "bias_init": self.bias_inits.spec,
            "output_init": None if self.output_init is None else self.output_init.spec,
            **self._training_settings(opt),
            "record_stats_at": list(self.record_stats_at),
            "keep_params": self.keep_params,
        }

    def _training_settings(self, opt: Any) -> dict[str, Any]:
        """The settings of how every model trains, MLP or not."""
        return {
            "optimizer": opt,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "output": self.output,
            "shuffle": self.shuffle,
        }


def _takes_width(factory: Any) -> bool:
    """Whether ``factory(rngs, width=...)`` is a valid call (a class's by its ``__init__``:
    an ``nnx.Module`` class's own signature is its metaclass's ``(*args, **kwargs)``)."""
    inner = factory
    while isinstance(inner, functools.partial):
        inner = inner.func
    try:
        params = inspect.signature(inner.__init__ if isinstance(inner, type) else factory)
        params = params.parameters.values()
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True
    return any(
        (p.name == "width" and p.kind != p.POSITIONAL_ONLY) or p.kind == p.VAR_KEYWORD
        for p in params
    )


def _with_key(init: Any, key: jax.Array) -> Any:
    """``init`` drawing with ``key`` whatever key Flax hands it (its layer's key stream)."""

    def keyed(_, shape, dtype=jax.numpy.float32, **kwargs):
        return init(key, shape, dtype, **kwargs)

    return keyed


@functools.cache  # traced once per shape: train builds every model of a group alike
def _param_shapes(d_in: int, hidden: tuple[int, ...], d_out: int) -> Any:
    """An MLP's parameters as shapes only (``nnx.State`` of ``jax.ShapeDtypeStruct``)."""
    return nnx.split(nnx.eval_shape(lambda: MLP(d_in, hidden, d_out, rngs=nnx.Rngs(0))))[1]


def _learning_rate(value: Any) -> float:
    return check_real("TrainGrid: learning_rate", value, low=0.0, strict=True)


def _distinct(name: str, value: Any, check) -> Any:
    """None, one checked value, or a tuple of distinct checked values (a dim)."""
    if value is None:
        return None
    if not is_list(value):
        return check(value)
    values_ = tuple(check(v) for v in _nonempty(name, value))
    if len(set(values_)) != len(values_):
        raise ValueError(f"TrainGrid: {name} repeats values; got {list(values_)}")
    return values_


def _nonempty(name: str, value: Any) -> tuple:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise ValueError(f"TrainGrid: {name} must be a non-empty list; got {value!r}")
    return tuple(value)
