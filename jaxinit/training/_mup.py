r"""Parametrizations: how an MLP's init variances and learning rates scale with width.

The maximal-update parametrization (μP) of Yang et al., *Tensor Programs V*
(2022), Table 3, scales each layer's init variance and learning rate by powers
of its fan-in and fan-out, so that every layer's activations move by
:math:`\Theta(1)` per step at any width and the best learning rate found at one
width transfers to the others. In the table's terms (the standard
parametrization in parentheses where it differs):

=================  ==========================  ==========================  ==================
                   input weights, all biases   output weights              hidden weights
=================  ==========================  ==========================  ==================
init variance      1/fan_in                    1/fan_in² (1/fan_in)        1/fan_in
SGD learning rate  fan_out (1)                 1/fan_in (1)                1
Adam learning rate 1                           1/fan_in (1)                1/fan_in (1)
=================  ==========================  ==========================  ==================

jaxinit applies the table with *base shapes*, as microsoft's ``mup`` package
does: every fan enters as its ratio to the same layer's fan in a model of
``base_width``, so μP and the standard parametrization coincide at the base
width and a learning rate tuned there is the base learning rate of every width.
A layer with fan-in ratio :math:`r_\mathrm{in}` and fan-out ratio
:math:`r_\mathrm{out}` gets

.. math::
   \sigma^2 = \sigma^2_\mathrm{init}\, r_\mathrm{in}^{-v}, \qquad
   \eta = \eta_\mathrm{base}\, r_\mathrm{in}^{a}\, r_\mathrm{out}^{b},

with :math:`\sigma^2_\mathrm{init}` the variance of the grid's own initializer
(which already scales as 1/fan_in, times its gain: He's 2 for ReLU) and the
exponents ``(v, a, b)`` of :data:`EXPONENTS`. The output layer's extra
:math:`1/r_\mathrm{in}` makes its variance :math:`\propto 1/\mathrm{fan\_in}^2`;
``output_init="zeros"`` is TP5's other choice for it. The input layer's fan-in
(the data's dimension) and the output layer's fan-out (the classes) do not grow,
so their ratios are 1. The output bias's fan-out is the classes: its SGD rate is
not scaled.

"Adam" covers the optimizers whose update is normalized entrywise (TP5 §5:
Adam, and likewise Adagrad, RMSProp and sign-based updates): :data:`KINDS` lists
the optax functions of each kind.

References:
  - Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao (2022),
    Tensor Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter
    Transfer. https://arxiv.org/abs/2203.03466 (Table 3).
  - https://github.com/microsoft/mup (base shapes, the coord check).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__: list[str] = []  # private; the public names are TrainGrid's fields and methods

PARAMETRIZATIONS = ("standard", "mup")
ROLES = ("input", "hidden", "output", "bias", "finite")
# the optax functions each kind of μP rule applies to
KINDS = {
    "sgd": ("sgd",),
    "adam": (
        "adam",
        "adamw",
        "amsgrad",
        "adamax",
        "adamaxw",
        "adabelief",
        "radam",
        "nadam",
        "nadamw",
        "rmsprop",
        "adagrad",
        "lion",
        "sign_sgd",
        "signum",
    ),
}
# (parametrization, kind, role) -> (v, a, b): variance × r_in^-v, learning rate × r_in^a r_out^b
EXPONENTS = {
    ("mup", "sgd", "input"): (0, 0, 1),
    ("mup", "sgd", "bias"): (0, 0, 1),
    ("mup", "sgd", "hidden"): (0, 0, 0),
    ("mup", "sgd", "output"): (1, -1, 0),
    ("mup", "adam", "input"): (0, 0, 0),
    ("mup", "adam", "bias"): (0, 0, 0),
    ("mup", "adam", "hidden"): (0, -1, 0),
    ("mup", "adam", "output"): (1, -1, 0),
}
STANDARD = (0, 0, 0)  # every role of the standard parametrization, and μP's "finite" one


class LayerRule(NamedTuple):
    """One parameter's row of the table, resolved at a width."""

    param: str  # the MLP's "kernel_0", "bias_0", …, "kernel_out"; a model's parameter path
    role: str  # one of ROLES
    shape: tuple[int, ...]
    base_shape: tuple[int, ...]  # the same parameter's shape at base_width
    variance_factor: float  # times the initializer's own variance
    lr_factor: float  # times the base learning rate


def optimizer_kind(names: tuple[str, ...]) -> str:
    """``"sgd"`` or ``"adam"``: the kind of the one optimizer among optax function ``names``."""
    kinds = {k for n in names for k, fns in KINDS.items() if n in fns}
    found = [n for n in names if any(n in fns for fns in KINDS.values())]
    if len(found) != 1:
        valid = ", ".join(f"{k}: {', '.join(v)}" for k, v in KINDS.items())
        raise ValueError(
            f"TrainGrid: parametrization='mup' needs exactly one optimizer of a kind TP5's "
            f"Table 3 covers; the optimizer spec names {list(names)}. Valid ({valid})"
        )
    return kinds.pop()


def _role(path: tuple) -> tuple[str, str]:
    """``(param name, role)`` of a parameter from its path in an MLP's ``nnx.State``."""
    keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
    kind = "kernel" if "kernel" in keys else "bias"
    if keys[0] == "out":
        return f"{kind}_out", "output" if kind == "kernel" else "bias"
    index = keys[1]
    if kind == "bias":
        return f"bias_{index}", "bias"
    return f"kernel_{index}", "input" if index == 0 else "hidden"


def rules(parametrization: str, kind: str, params: Any, base_params: Any) -> list[LayerRule]:
    """Every parameter's rule: ``params`` and ``base_params`` are an MLP's ``nnx.State`` (or
    anything with the same paths and shapes) at the grid's width and at the base width."""
    out = []
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    base = jax.tree.leaves(base_params)
    for (path, leaf), b in zip(flat, base, strict=True):
        name, role = _role(path)
        shape, base_shape = tuple(jnp.shape(leaf)), tuple(jnp.shape(b))
        r_in = shape[0] / base_shape[0] if len(shape) == 2 else 1.0
        r_out = shape[-1] / base_shape[-1]
        v, a, e = _exponents(parametrization, kind, role)
        out.append(LayerRule(name, role, shape, base_shape, r_in**-v, r_in**a * r_out**e))
    return out


def _exponents(parametrization: str, kind: str, role: str) -> tuple[int, int, int]:
    if parametrization == "standard" or role == "finite":
        return STANDARD
    return EXPONENTS[parametrization, kind, role]


def _fans(model: Any) -> dict[str, tuple[int, int]]:
    """``{kernel param path: (fan_in, fan_out)}`` of every kernel module of ``model``, from
    its module's view (:func:`jaxinit.models.kernel_view`: fan-in = receptive field × input
    features, fan-out = output features)."""
    from flax import nnx

    from jaxinit.models._kernels import KERNEL_TYPES, kernel_view, path_str

    out = {}
    for path, module in nnx.iter_modules(model):
        if not isinstance(module, KERNEL_TYPES):
            continue
        p = path_str((*path, "kernel"))
        if isinstance(module, nnx.Einsum):
            raise ValueError(
                f"TrainGrid: parametrization='mup' needs each kernel's fans at every width; the "
                f"Einsum at {p!r} has none (use nnx.Linear or nnx.LinearGeneral there)"
            )
        view, _ = kernel_view(module)
        out[p] = (math.prod(view[:-1]), view[-1])
    return out


def model_rules(
    parametrization: str, kind: str, model: Any, base: Any, other: Any
) -> list[LayerRule]:
    """Every parameter's rule in a Flax NNX model, as microsoft/mup's ``set_base_shapes``
    infers them: ``model``, ``base`` and ``other`` are the user's model at the grid's width,
    at the base width and at another width (abstract, ``nnx.eval_shape``). A dim is
    *infinite* where ``base`` and ``other`` differ. A kernel of a Linear, LinearGeneral,
    Conv or ConvTranspose is TP5's hidden weight when its fan-in and fan-out are infinite,
    its output weight when only the fan-in is, its input weight when only the fan-out is;
    any other parameter (biases, norms' scales, embeddings, position tables) with one
    infinite dim is vector-like ("bias": its fan-out ratio is that dim's). A parameter with
    no infinite dim is "finite" and keeps its standard init and rate; a non-kernel parameter
    with several infinite dims is refused (its fans are unknown). ``r_in``, ``r_out``: the
    fans' ratios to the base model's."""
    from flax import nnx

    states = [nnx.state(m, nnx.Param) for m in (model, base, other)]
    flats = [
        {"/".join(map(str, p)): tuple(v.get_value().shape) for p, v in nnx.to_flat_state(s)}
        for s in states
    ]
    fans = [_fans(m) for m in (model, base, other)]
    if not (flats[0].keys() == flats[1].keys() == flats[2].keys()):
        raise ValueError(
            "TrainGrid: the model's parameters differ between widths (paths "
            f"{sorted(flats[0].keys() ^ flats[1].keys() ^ flats[2].keys())[:5]}); μP needs "
            "the same parameters at every width, with only their sizes changing"
        )
    out = []
    for name, shape in flats[0].items():
        base_shape, other_shape = flats[1][name], flats[2][name]
        if name in fans[0]:
            (fi, fo), (bi, bo), (oi, oo) = (f[name] for f in fans)
            inf_in, inf_out = bi != oi, bo != oo
            role = {
                (True, True): "hidden",
                (True, False): "output",
                (False, True): "input",
                (False, False): "finite",
            }[inf_in, inf_out]
            r_in, r_out = fi / bi, fo / bo
        else:
            infinite = [
                d for d, (b, o) in enumerate(zip(base_shape, other_shape, strict=True)) if b != o
            ]
            if len(infinite) > 1:
                raise ValueError(
                    f"TrainGrid: parametrization='mup': parameter {name!r} (shape {shape}) "
                    f"grows with width along {len(infinite)} axes and is not the kernel of a "
                    "Linear, LinearGeneral, Conv or ConvTranspose, so its fans are unknown; "
                    "hold such a matrix in one of those modules"
                )
            role = "bias" if infinite else "finite"
            r_in = 1.0
            r_out = shape[infinite[0]] / base_shape[infinite[0]] if infinite else 1.0
        v, a, e = _exponents(parametrization, kind, role)
        out.append(LayerRule(name, role, shape, base_shape, r_in**-v, r_in**a * r_out**e))
    return out


def scale_by_rule(factors: Any) -> optax.GradientTransformation:
    """Multiplies each parameter's update by its ``lr_factor`` (a pytree of floats shaped
    like the parameters); after an optimizer whose learning rate is its last scale, this is
    the per-layer learning rate ``lr × factor``. Unit factors cost nothing."""

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, f: u if f == 1.0 else u * f, updates, factors), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def scaled_init(init: Any, factor: float) -> Any:
    """``init`` with its variance times ``factor`` (its draws times √factor): the same
    bits, so a μP model and a standard one of the same seed differ only by the scale."""
    affine = init.affine

    def scaled(shape):
        inner = affine(shape)
        return inner._replace(variance_factor=inner.variance_factor * factor)

    return dataclasses.replace(init, affine=scaled, spec=f"{init.spec} × {factor:.6g} (μP output)")


def model_factors(factors: dict[str, float], params: Any) -> Any:
    """``{parameter path: learning-rate factor}`` as a pytree shaped like ``params`` (a
    model's ``nnx.State`` of parameters), for :func:`scale_by_rule`."""
    flat, tree = jax.tree_util.tree_flatten_with_path(params)
    names = [
        "/".join(str(k.key) for k in path if isinstance(k, jax.tree_util.DictKey))
        for path, _ in flat
    ]
    return jax.tree.unflatten(tree, [factors[n] for n in names])


def scale_readout(
    model: Any, rules: list[LayerRule], output_init: Any, root_seed: int, seed: int
) -> None:
    """μP's readout, in place: each output kernel of ``rules`` (role ``"output"``) times
    :math:`\\sqrt{\\text{variance factor}}` (variance :math:`\\propto 1/\\text{fan\\_in}^2`),
    or drawn anew from ``output_init`` (TP5's zero readout: ``"zeros"``) on the key the
    grid's init draws that kernel with, ``layer_keys(seed_key(root_seed, seed), i)[0]``,
    on its view (:func:`jaxinit.models.kernel_view`), then scaled alike."""
    from flax import nnx

    from jaxinit._keys import layer_keys, seed_key
    from jaxinit.models._kernels import KERNEL_TYPES, kernel_view, path_str

    factor = {r.param: r.variance_factor for r in rules}
    index = 0
    for path, module in nnx.iter_modules(model):
        if not isinstance(module, KERNEL_TYPES):
            continue
        name = path_str((*path, "kernel"))
        if name in factor:
            w = module.kernel.get_value()
            if output_init is not None:
                view, swap = kernel_view(module)
                drawn = output_init(layer_keys(seed_key(root_seed, seed), index)[0], view, w.dtype)
                w = (drawn.swapaxes(-1, -2) if swap else drawn).reshape(w.shape)
            module.kernel.set_value(w * jnp.sqrt(jnp.asarray(factor[name], w.dtype)))
        index += 1
