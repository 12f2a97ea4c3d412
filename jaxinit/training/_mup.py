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
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

__all__: list[str] = []  # private; the public names are TrainGrid's fields and methods

PARAMETRIZATIONS = ("standard", "mup")
ROLES = ("input", "hidden", "output", "bias")
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
STANDARD = (0, 0, 0)  # every role of the standard parametrization


class LayerRule(NamedTuple):
    """One parameter's row of the table, resolved at a width."""

    param: str  # "kernel_0", "bias_0", …; layer len(hidden) is the output layer
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
        v, a, e = (
            STANDARD if parametrization == "standard" else EXPONENTS[parametrization, kind, role]
        )
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
