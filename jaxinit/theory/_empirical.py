r"""The empirical neural tangent kernel of a finite Flax model, in the NTK parameterization.

For a model :math:`f(x; \theta)` with outputs :math:`f_k`, :math:`k = 1..K`, the empirical
NTK (Jacot et al. 2018; Lee et al. 2019) is

.. math::
   \hat\Theta(x, x') = \frac{1}{K} \sum_k \sum_p s_p\,
   \frac{\partial f_k(x)}{\partial \theta_p} \frac{\partial f_k(x')}{\partial \theta_p},

the output units traced and averaged (each unit's kernel converges to the same limit). With
:math:`s_p = 1` it is the kernel of the model as parameterized (the standard
parameterization, ``nnx.Linear``'s, whose NTK grows with width). To compare with the
infinite-width :func:`~jaxinit.theory.kernels`, :func:`~jaxinit.theory.conv_kernels` and
:func:`~jaxinit.theory.residual_kernels` (neural-tangents' NTK parameterization) each
parameter's term is scaled by the variance its entries would have had there:
:math:`s = \sigma_w^2/\mathrm{fan\_in}` for a kernel (a gradient with respect to
:math:`w = W\sqrt{\mathrm{fan\_in}}/\sigma_w` is :math:`\sigma_w/\sqrt{\mathrm{fan\_in}}`
times that with respect to :math:`W`) and :math:`\sigma_b^2` for a bias. As the width grows,
:math:`\hat\Theta` tends to the limit, with fluctuations of order :math:`1/\sqrt{\mathrm{width}}`
(Hanin & Nica 2019).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from jaxinit._checks import check_choice, check_real
from jaxinit.models._kernels import KERNEL_TYPES, kernel_view

__all__ = ["PARAMETERIZATIONS", "empirical_ntk"]

PARAMETERIZATIONS = ("ntk", "standard")


def _scale(
    name: str, shape: tuple[int, ...], sigma_w2: float, sigma_b2: float, fan_in: int | None
) -> float:
    """A parameter's NTK-parameterization factor: σ_w²/fan_in for a kernel (its module's
    fan-in, else every axis but the last), σ_b² for a bias; any other parameter (a norm's
    scale) counts as is."""
    if name == "kernel":
        return sigma_w2 / (math.prod(shape[:-1]) if fan_in is None else fan_in)
    if name == "bias":
        return sigma_b2
    return 1.0


def empirical_ntk(
    model: nnx.Module,
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    parameterization: str = "ntk",
    sigma_w2: float | None = None,
    sigma_b2: float = 0.0,
) -> Array:
    r"""The empirical NTK :math:`\hat\Theta(x_1, x_2)` of ``model`` at its current
    parameters, ``(n1, n2)`` (module docstring): the output units averaged; every
    ``nnx.Param`` counted, scaled for the NTK parameterization unless ``"standard"``.

    One compiled program per model structure and input shapes: other seeds (weights),
    ``sigma_w2`` and ``sigma_b2`` compile nothing new. A model whose graph holds an
    unhashable constant (a dict attribute) cannot key a program, and one that reads values
    in Python (``float(x)``, ``range(n)`` of a variable) cannot be traced: those run op by
    op, as ``jax.jacrev`` runs them.

    Args:
      model: an ``nnx.Module`` whose output on ``(n, ...)`` inputs is ``(n, ...)``; a
        ModelGrid's network is ``grid.build(seed, init=...)``.
      x1: a batch of inputs; x2: another, or None (``x1``, a symmetric kernel).
      parameterization: ``"ntk"`` (each kernel's term × σ_w²/fan_in, its module's fan-in
        as :func:`jaxinit.models.kernel_view` has it, each bias's × σ_b²:
        comparable with :func:`kernels` and its kin) or ``"standard"`` (J Jᵀ as it is).
      sigma_w2: the σ_w² of the NTK parameterization (required for ``"ntk"``): the
        initializer's, e.g. 2 for He.
      sigma_b2: the bias's σ_b² there (0: biases do not count).

    Example:
      >>> import jax, jaxinit as ji
      >>> from flax import nnx
      >>> net = nnx.Linear(3, 1, rngs=nnx.Rngs(0))
      >>> x = jax.numpy.eye(3)
      >>> k = ji.theory.empirical_ntk(net, x, sigma_w2=1.0)  # a linear model: x x' / d_in
      >>> [round(float(v), 4) for v in k.diagonal()]
      [0.3333, 0.3333, 0.3333]
    """
    parameterization = check_choice(
        "empirical_ntk: parameterization", parameterization, PARAMETERIZATIONS
    )
    if not isinstance(model, nnx.Module):
        raise TypeError(f"empirical_ntk: model must be an nnx.Module; got {type(model).__name__}")
    if parameterization == "ntk":
        if sigma_w2 is None:
            raise ValueError(
                "empirical_ntk: the NTK parameterization needs sigma_w2 (the initializer's "
                "σ_w², e.g. 2.0 for He); or pass parameterization='standard'"
            )
        sigma_w2 = check_real("empirical_ntk: sigma_w2", sigma_w2, low=0.0, strict=True)
        sigma_b2 = check_real("empirical_ntk: sigma_b2", sigma_b2, low=0.0)
    x1 = jnp.asarray(x1)
    x2 = None if x2 is None else jnp.asarray(x2)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    if not jax.tree.leaves(params):
        raise ValueError(
            f"empirical_ntk: the model has no nnx.Param to differentiate; got {type(model).__name__}"
        )
    fans = _fans_in(model)
    scales = jax.tree_util.tree_map_with_path(
        lambda path, p: float(  # weakly typed: the params' own precision
            1.0
            if parameterization == "standard"
            else _scale(_name(path), p.shape, sigma_w2, sigma_b2, fans.get(_owner(path)))
        ),
        params,
    )
    try:
        hash(graphdef)
    except TypeError:  # a module holding an unhashable constant: run it op by op
        return _ntk(graphdef, params, rest, scales, x1, x2)
    try:
        return _ntk_jit(graphdef, params, rest, scales, x1, x2)
    except _NOT_TRACEABLE:  # a model that reads values in Python (float(x), range(n))
        return _ntk(graphdef, params, rest, scales, x1, x2)


# what a model that runs op by op but reads its inputs' or variables' values raises under jit
_NOT_TRACEABLE = (
    jax.errors.ConcretizationTypeError,  # bool(x), float(x), ...
    jax.errors.TracerArrayConversionError,  # np.asarray(x)
    jax.errors.TracerIntegerConversionError,  # range(n), x[n]
)


def _keys(path) -> list:
    """A parameter's path as its keys, less the ``value`` of its Variable."""
    keys = [getattr(k, "key", getattr(k, "name", k)) for k in path]
    while keys and isinstance(path[len(keys) - 1], jax.tree_util.GetAttrKey):
        keys.pop()  # the Variable's own attribute
    return keys


def _name(path) -> str:
    """The attribute that holds a parameter (``kernel``, ``bias``, ``scale``, ...)."""
    return str(_keys(path)[-1])


def _owner(path) -> tuple:
    """The path of the module that holds a parameter, as ``nnx.iter_modules`` names it."""
    return tuple(_keys(path)[:-1])


def _fans_in(model: nnx.Module) -> dict[tuple, int]:
    """Each kernel module's fan-in, from its module (:func:`jaxinit.models.kernel_view`): an
    attention query kernel ``(d, heads, head_dim)`` has fan-in d, not d·heads. An ``Einsum``
    has no generic fan-in: its kernel counts every axis but the last."""
    return {
        tuple(path): math.prod(kernel_view(module)[0][:-1])
        for path, module in nnx.iter_modules(model)
        if isinstance(module, KERNEL_TYPES) and not isinstance(module, nnx.Einsum)
    }


def _ntk(graphdef, params, rest, scales, x1: Array, x2: Array | None) -> Array:
    """Θ̂(x1, x2) of the model ``nnx.merge(graphdef, params, rest)``: each parameter's
    Jacobian contracted with its own, times its scale, the output units averaged."""

    def f(p, x):
        y = nnx.merge(graphdef, p, rest)(x)
        return y.reshape(y.shape[0], -1)  # (n, K): the output units

    j1 = jax.jacrev(f)(params, x1)  # leaves (n, K, *param.shape)
    j2 = j1 if x2 is None else jax.jacrev(f)(params, x2)
    leaves1, leaves2 = jax.tree.leaves(j1), jax.tree.leaves(j2)
    theta = jnp.zeros((x1.shape[0], leaves2[0].shape[0]), jnp.float32)
    for a, b, s in zip(leaves1, leaves2, jax.tree.leaves(scales), strict=True):
        a2 = a.reshape(a.shape[0], a.shape[1], -1)
        b2 = b.reshape(b.shape[0], b.shape[1], -1)
        theta = theta + s * jnp.einsum("akp,bkp->ab", a2, b2)
    return theta / leaves1[0].shape[1]


# one program per model structure and input shapes: the scales, σ's and weights are data
_ntk_jit = jax.jit(_ntk, static_argnums=0)
