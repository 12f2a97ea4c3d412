r"""Mean field of residual networks: the zoo's ResNet, in a ModelGrid sweep's layout.

(``theory.predict`` of every ModelGrid comes here: :func:`predict_model` also dispatches the
zoo's CNN to :func:`jaxinit.theory._conv_kernels.cnn_variances`.)

Yang & Schoenholz (2017, *Mean Field Residual Networks: On the Edge of Chaos*,
https://arxiv.org/abs/1712.08969) and Hayou et al. (2021, *Stable ResNet*,
https://arxiv.org/abs/2010.12859) follow the variance of the residual stream
:math:`h_{l+1} = h_l + \alpha\,F(h_l)` at infinite width. For the zoo's block
(:class:`jaxinit.models.ResNet`), :math:`F(h) = \varphi(n(h) W_\mathrm{in} + b_\mathrm{in})
W_\mathrm{out} + b_\mathrm{out}` with :math:`n` a LayerNorm before the branch (``norm="pre"``),
after the sum (``"post"``) or none, zero-mean weights of variance
:math:`\sigma^2/\mathrm{fan\_in}` and the zoo's zero biases:

.. math::
   q_u = \frac{q_l}{q_l + \epsilon}\ (\text{pre}),\ q_l\ (\text{else}); \quad
   q_\mathrm{in} = \sigma_\mathrm{in}^2 q_u; \quad
   q_\mathrm{out} = \sigma_\mathrm{out}^2\,\mathbb{E}[\varphi(\sqrt{q_\mathrm{in}}\,z)^2]; \quad
   q_{l+1} = q_l + \alpha^2 q_\mathrm{out}

(the branch is uncorrelated with the stream: :math:`W_\mathrm{out}` is zero-mean and drawn
apart), and with ``"post"`` the sum is normalized, :math:`q \to q/(q + \epsilon)`. So with a
pre-LN block the stream grows *linearly*, :math:`q_L = q_0 + L\alpha^2 q_\mathrm{out}` (ReLU under
He: :math:`q_\mathrm{out} = 2`), bounded in depth when :math:`\alpha = 1/\sqrt{L}`; without
normalization it grows *exponentially* for a homogeneous φ,
:math:`q_{l+1} = q_l\,(1 + \alpha^2\sigma_\mathrm{in}^2\sigma_\mathrm{out}^2\,\mathbb{E}[\varphi(z)^2])`,
and polynomially for a bounded one (tanh: :math:`\mathbb{E}[\varphi^2] \le 1`, so
:math:`q_{l+1} - q_l \le \alpha^2\sigma_\mathrm{out}^2`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.typing import ArrayLike

from jaxinit import initializers as _initializers
from jaxinit._checks import check_choice, check_int, check_real
from jaxinit.activations import Activation
from jaxinit.sweeping import INPUT_MOMENTS
from jaxinit.theory._conv_kernels import cnn_variances
from jaxinit.theory._kernels import (
    Kernels,
    _check_sigma,
    _check_x,
    _pairwise,
    check_first_layer,
    warn_overflow,
)
from jaxinit.theory._maps import variance_map, weight_variance
from jaxinit.theory._quadrature import TINY, activation_of

__all__ = ["predict_model", "residual_kernels"]


def _sigma2(init, view: tuple[int, ...], path: str) -> float:
    """σ² = fan_in · Var(W) of ``init`` on a Linear kernel drawn at ``view`` (in, out)."""
    try:
        return float(weight_variance(init, view)) * view[0]
    except ValueError as err:
        raise ValueError(f"theory.predict: on {path!r}: {err}") from None


def _input_second_moment(grid) -> float:
    if isinstance(grid.inputs, str):
        return INPUT_MOMENTS[grid.inputs][1]  # (mean, E[x²]): U[0, 1)'s E[x²] is 1/3
    x = np.asarray(grid.inputs, np.float64)
    return float(np.mean(x * x))


def _model_sigma2(model, init, kernels: dict) -> dict[str, float]:
    """Each Linear's σ² by path: the grid's init on the kernels the rule selected, the
    zoo's own on the others (nnx.Linear's lecun_normal, σ² = 1; a zero branch's fc_out, 0)."""
    own = {"inp": 1.0}
    for i, block in enumerate(model.blocks):
        own[f"blocks/{i}/fc_in"] = 1.0
        own[f"blocks/{i}/fc_out"] = 0.0 if block.zero_branch else 1.0
    if model.head is not None:
        own["head"] = 1.0
    return {
        path: _sigma2(init, kernels[path].view, path) if path in kernels else sigma2
        for path, sigma2 in own.items()
    }


def resnet_variances(model, sigma2: dict[str, float], q_x: float) -> dict[str, float]:
    """The expected second moment of every captured output of the zoo's ResNet, by path."""
    q = {"inp": sigma2["inp"] * q_x}
    h = q["inp"]
    for i, block in enumerate(model.blocks):
        eps = float(block.norm.epsilon) if block.norm is not None else 0.0
        u = h / (h + eps) if block.norm_kind == "pre" else h
        if block.norm_kind == "pre":
            q[f"blocks/{i}/norm"] = u
        q_in = sigma2[f"blocks/{i}/fc_in"] * u
        q_out = sigma2[f"blocks/{i}/fc_out"] * float(
            variance_map(block.activation, q_in, sigma_w2=1.0, sigma_b2=0.0)
        )
        q[f"blocks/{i}/fc_in"], q[f"blocks/{i}/fc_out"] = q_in, q_out
        h = h + block.alpha**2 * q_out
        if block.norm_kind == "post":
            h = h / (h + eps)
            q[f"blocks/{i}/norm"] = h
        q[f"blocks/{i}"] = h
    if model.head is not None:  # a linear readout of the stream
        q["head"] = sigma2["head"] * h
    q["(model)"] = q.get("head", h)
    return q


def _images(grid) -> np.ndarray:
    """A CNN grid's inputs as images: the array, or one image of the generator's E[x²]."""
    if isinstance(grid.inputs, str):
        _, height, width, _ = grid.input_shape
        return np.full((1, height, width, 1), math.sqrt(_input_second_moment(grid)), np.float32)
    return np.asarray(grid.inputs, np.float32)


def predict_model(grid):
    """``predict(model_grid)``: the zoo's ResNet or CNN, every captured output's ``pre_var``."""
    from jaxinit.models import CNN, ResNet
    from jaxinit.sweeping import _model_pass
    from jaxinit.theory._predict import Prediction

    model = nnx.eval_shape(lambda: grid.model(nnx.Rngs(0)))
    if not isinstance(model, ResNet | CNN):
        raise ValueError(
            "theory.predict: of ModelGrids, mean-field theory knows the zoo's residual network "
            f"(ji.models.ResNet) and CNN (ji.models.CNN); got {type(model).__name__}"
        )
    structure = _model_pass.structure(grid)
    kernels = {k.path: k for k in structure.kernels}
    layers = [layer.name for layer in structure.layers]
    if isinstance(model, CNN):
        images = _images(grid)
        theory = (
            "per-position mean field of the convolutions (Xiao et al. 2018; theory.conv_variance)"
        )

        def variances(init):
            return cnn_variances(model, init, set(kernels), images)
    else:
        q_x = _input_second_moment(grid)
        theory = "mean field of the residual stream (Yang & Schoenholz 2017)"

        def variances(init):
            return resnet_variances(model, _model_sigma2(model, init, kernels), q_x)

    pre_var = np.full((len(grid.inits), len(grid.seeds), len(layers)), np.nan, np.float32)
    for i, init in enumerate(grid.inits):
        q = variances(_initializers.get(init))
        pre_var[i] = [q.get(name, np.nan) for name in layers]
    return Prediction(
        dims=("init", "seed"),
        coords=grid.coords(),
        fields={"pre_var": pre_var},
        field_dims={"pre_var": ("layer",)},
        aliases={d: a for d, a in grid.aliases.items() if a},
        attrs={
            "grid": grid.describe(),
            "layers": layers,
            "layer_types": [layer.type for layer in structure.layers],
            "theory": theory,
        },
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _residual_run(act, depth: int, norm, x, alpha, w, b):
    k = w * (x @ x.T) / x.shape[1] + b
    t = k

    def normalized(k, t):  # a LayerNorm at infinite width: each input to unit variance
        d = jnp.sqrt(jnp.diagonal(k))
        d = jnp.where(d > TINY, d, 1.0)  # a zero input stays zero, as LayerNorm's ε keeps it
        s = d[:, None] * d[None, :]
        return k / s, t / s

    def block(_, carry):
        k, t = carry
        ku, tu = normalized(k, t) if norm == "pre" else (k, t)
        k_in = w * ku + b
        t_in = k_in + w * tu
        q = jnp.diagonal(k_in)
        e, ed = _pairwise(act, q, q, k_in)
        k_out = alpha**2 * (w * e + b)
        t_out = k_out + alpha**2 * w * ed * t_in
        k, t = k + k_out, t + t_out
        return normalized(k, t) if norm == "post" else (k, t)

    k, t = jax.lax.fori_loop(0, depth, block, (k, t))
    return (k + k.T) / 2, (t + t.T) / 2  # the quadrature's order leaves ~1e-7 asymmetry


def residual_kernels(
    activation: str | Activation,
    x1: ArrayLike,
    x2: ArrayLike | None = None,
    *,
    depth: int,
    alpha: float,
    sigma_w2: ArrayLike,
    sigma_b2: ArrayLike,
    norm: str | None = "pre",
) -> Kernels:
    r"""The infinite-width NNGP and NTK of the residual stream of the zoo's ResNet: an input
    Dense, then ``depth`` blocks :math:`h + \alpha\,F(n(h))`, :math:`F` = Dense -> act ->
    Dense, as neural-tangents' ``stax.serial(Dense(W_std=σ_w, b_std=σ_b), *[FanOut(2),
    parallel(serial(LayerNorm(), Dense(W_std=σ_w, b_std=σ_b), act, Dense(W_std=α σ_w,
    b_std=α σ_b)), Identity()), FanInSum()] * depth)`` in the NTK parameterization (Yang &
    Schoenholz 2017; Hayou et al. 2021):

    .. math::
       K' = K + \alpha^2 (\sigma_w^2\,\mathbb{E}[\varphi(u)\varphi(u')] + \sigma_b^2), \quad
       \Theta' = \Theta + \alpha^2 \big(\ldots + \sigma_w^2\,\mathbb{E}[\varphi'(u)\varphi'(u')]\,
       \Theta_\mathrm{in}\big),

    with :math:`(u, u')` of covariance :math:`K_\mathrm{in} = \sigma_w^2 \bar K + \sigma_b^2`,
    :math:`\bar K` the block's input normalized per input (``norm="pre"``: LayerNorm at
    infinite width, :math:`K_{ab}/\sqrt{K_{aa}K_{bb}}`, which also divides Θ), the input
    itself (None), or the sum normalized after the block (``"post"``).

    Args:
      activation: an activation spec or Activation.
      x1: ``(n1, d_in)`` inputs; x2: ``(n2, d_in)`` or None (``x1``).
      depth: residual blocks, an int >= 1 (the input Dense comes first; no readout: the
        kernels are the final stream's, unlike :func:`kernels` and :func:`conv_kernels`,
        whose last Dense layer is their output).
      alpha: the branch's scale α (or ``"1/sqrt(depth)"``, as the zoo's ResNet takes).
      sigma_w2, sigma_b2: every Dense's σ_w² > 0 and σ_b² >= 0.
      norm: ``"pre"``, ``"post"`` or None, as the zoo's ResNet.

    Returns:
      ``Kernels(nngp, ntk)``, each ``(n1, n2)``, of the final stream.
    """
    who = "residual_kernels"
    act = activation_of(activation)
    depth = check_int(f"{who}: depth", depth, low=1)
    if norm is not None:
        norm = check_choice(f"{who}: norm", norm, ("pre", "post"))
    alpha = depth**-0.5 if alpha == "1/sqrt(depth)" else check_real(f"{who}: alpha", alpha)
    _check_sigma("sigma_w2", sigma_w2, positive=True, who=who)
    _check_sigma("sigma_b2", sigma_b2, positive=False, who=who)
    x1 = _check_x("x1", x1, who=who)
    same = x2 is None
    x2 = x1 if same else _check_x("x2", x2, who=who)
    if x1.shape[1] != x2.shape[1]:
        raise ValueError(f"{who}: x1 and x2 must have the same d_in; got {x1.shape} and {x2.shape}")
    dtype = jnp.result_type(x1.dtype, x2.dtype, jnp.float32)
    check_first_layer(who, act, dtype, (x1, x2), sigma_w2, sigma_b2)
    # one Gram over both sets: the per-input variances come with it
    joint = (x1 if same else jnp.concatenate([x1, x2])).astype(dtype)
    w, b, a = (jnp.asarray(v, dtype) for v in (sigma_w2, sigma_b2, alpha))
    k, t = _residual_run(act, depth, norm, joint, a, w, b)
    n1 = 0 if same else x1.shape[0]
    out = Kernels(k[:n1, n1:] if n1 else k, t[:n1, n1:] if n1 else t)
    warn_overflow(who, out, dtype, depth)
    return out
