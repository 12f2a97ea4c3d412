r"""Mean field of residual networks: the zoo's ResNet, in a ModelGrid sweep's layout.

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

import numpy as np
from flax import nnx

from jaxinit import initializers as _initializers
from jaxinit.theory._maps import variance_map

__all__ = ["predict_model"]


def _sigma2(init, view: tuple[int, ...], path: str) -> float:
    """σ² = fan_in · Var(W) of ``init`` on a Linear kernel drawn at ``view`` (in, out)."""
    mean, var = init.moments(view)
    if mean != 0:
        raise ValueError(
            f"theory.predict: mean-field theory needs zero-mean weights; {init.spec!r} has "
            f"mean {mean:g} on {path!r}"
        )
    return float(var) * view[0]


def _input_second_moment(grid) -> float:
    if isinstance(grid.inputs, str):
        return 1.0 if grid.inputs == "gaussian" else 1.0 / 3.0  # U[0, 1): E[x²] = 1/3
    x = np.asarray(grid.inputs, np.float64)
    return float(np.mean(x * x))


def _model_sigma2(model, init, kernels: dict) -> dict[str, float]:
    """Each Linear's σ² by path: the grid's init on the kernels the rule selected, the
    zoo's own on the others (nnx.Linear's lecun_normal, σ² = 1; a zero branch's fc_out, 0)."""
    own = {"inp": 1.0}
    for i, block in enumerate(model.blocks):
        own[f"blocks/{i}/fc_in"] = 1.0
        own[f"blocks/{i}/fc_out"] = 0.0 if block.zero_branch else 1.0
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
    q["(model)"] = h
    return q


def predict_model(grid):
    """``predict(model_grid)``: the zoo's ResNet, every captured output's ``pre_var``."""
    from jaxinit.models import ResNet
    from jaxinit.sweeping import _model_pass
    from jaxinit.theory._predict import Prediction

    model = nnx.eval_shape(lambda: grid.model(nnx.Rngs(0)))
    if not isinstance(model, ResNet):
        raise ValueError(
            "theory.predict: of ModelGrids, mean-field theory knows the zoo's residual network "
            f"(ji.models.ResNet); got {type(model).__name__}"
        )
    structure = _model_pass.structure(grid)
    kernels = {k.path: k for k in structure.kernels}
    q_x = _input_second_moment(grid)
    layers = [layer.name for layer in structure.layers]
    pre_var = np.full((len(grid.inits), len(grid.seeds), len(layers)), np.nan, np.float32)
    for i, init in enumerate(grid.inits):
        init = _initializers.get(init)
        q = resnet_variances(model, _model_sigma2(model, init, kernels), q_x)
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
            "theory": "mean field of the residual stream (Yang & Schoenholz 2017)",
        },
    )
