r"""Mean-field theory of deep networks at initialization: maps, fixed points, depth scales, predict.

For a network :math:`z_l = h_{l-1} W_l + b_l`, :math:`h_l = \varphi(z_l)` with
i.i.d. zero-mean weights of variance :math:`\sigma_w^2/n_\mathrm{in}` and biases
of second moment :math:`\sigma_b^2`, the pre-activations of one input are
Gaussian at infinite width with variance :math:`q_l` (Poole et al. 2016):

.. math::
   q_{l} = \mathcal{V}(q_{l-1}) = \sigma_w^2\,\mathbb{E}_{z\sim\mathcal{N}(0,1)}
   [\varphi(\sqrt{q_{l-1}}\,z)^2] + \sigma_b^2, \qquad
   \chi_1 = \sigma_w^2\,\mathbb{E}[\varphi'(\sqrt{q^*} z)^2],

and the correlation of two inputs follows the c-map
:math:`c' = (\sigma_w^2 \mathbb{E}[\varphi(u_1)\varphi(u_2)] + \sigma_b^2)/\mathcal{V}(q)`,
:math:`(u_1, u_2)` bivariate normal with variance :math:`q` and correlation :math:`c`.
Schoenholz et al. (2017) define the depth scales

.. math::
   \xi_q^{-1} = -\log\big(\chi_1 + \sigma_w^2\,\mathbb{E}[\varphi''\varphi]\big)
   = -\log \mathcal{V}'(q^*), \quad
   \xi_c^{-1} = -\log \chi_c,\ \chi_c = \sigma_w^2\,\mathbb{E}[\varphi'(u_1)\varphi'(u_2)]\big|_{c^*},
   \quad \xi_\nabla^{-1} = -\log \chi_1 .

The two forms of :math:`\xi_q` are equal by Gaussian integration by parts; the
second (an autodiff derivative of the map) also holds where :math:`\varphi''`
has delta functions (relu, hard_tanh). :math:`\xi_\nabla` is signed: positive
where gradients vanish, negative where they explode; every scale is ``inf``
where its rate is 1 (criticality, :math:`\chi_1 = 1`).

Quadrature. Every expectation is a fixed-node rule, so every function here is
jit-, vmap- and grad-able. Gauss–Hermite converges only algebraically at a
kink (about 3e-3 on relu's mean with 64 nodes, 8e-3 on hard_tanh with 128), so
the Gaussian is instead cut at ±8 into Gauss–Legendre panels, split at
:math:`z = 0, \pm 2, \pm 4` and wherever :math:`m + \sqrt{q}\,z` meets a kink of
:math:`\varphi` (relu family, elu, selu at 0; hard_tanh at ±1) or, for the smooth
saturating activations, :math:`x = \pm 1, \pm 3` and a geometric grading of the
tails (±6, ±12, ±24). In two dimensions the outer panels are also split along
the lines of :math:`u_2`'s kinks (or a smooth activation's centre) and graded
around them, so that :math:`c \to 1` stays accurate. Guaranteed range: for
:math:`q \le` ``Q_MAX`` = 10⁶ and any correlation the maps agree with float64
adaptive quadrature and erf's closed forms to about 2e-6 relative (tested at
1e-5); beyond it they warn. Near the edge of chaos :math:`c^*` and
:math:`\chi_c` are computed in :math:`\epsilon = 1 - c` from the differences
:math:`\varphi(u_1) - \varphi(u_2)`, which keeps :math:`\chi_c - 1` to float32's
resolution of χ₁ (about 1e-6); for more, pass float64 arguments under
``jax.enable_x64(True)``. Activations are used through their deterministic
``fn`` (rrelu: the mean slope), as the sweep kernel uses them.

References:
  - Poole et al. 2016, *Exponential expressivity in deep neural networks through
    transient chaos*, https://arxiv.org/abs/1606.05340
  - Schoenholz et al. 2017, *Deep Information Propagation*, https://arxiv.org/abs/1611.01232
  - Klambauer et al. 2017, *Self-Normalizing Neural Networks* (SELU: with
    :math:`\sigma_w^2 = 1`, :math:`\sigma_b^2 = 0`, :math:`q^* = 1`), https://arxiv.org/abs/1706.02515
  - Yang et al. 2019, *A Mean Field Theory of Batch Normalization*, https://arxiv.org/abs/1902.08129
  - Martens et al. 2021, *Rapid training of deep neural networks without skip connections or
    normalization layers using Deep Kernel Shaping* (DKS; :func:`transform`),
    https://arxiv.org/abs/2110.01765
  - Zhang et al. 2022, *Deep Learning without Shortcuts: Shaping the Kernel with Tailored
    Rectifiers* (TAT; :func:`transform`), https://openreview.net/forum?id=U0k7XNTiFEq
  - Xiao et al. 2018, *Dynamical Isometry and a Mean Field Theory of CNNs* (a CNN's
    per-position variance and its spatial modes: :func:`conv_variance`,
    :func:`filter_spectrum`; its kernels: :func:`conv_kernels`),
    https://arxiv.org/abs/1806.05393

Example:
  >>> import jaxinit as ji
  >>> round(float(ji.theory.critical_sigma_w2("relu")), 4)  # 2 for any σ_b²
  2.0
  >>> round(float(ji.theory.depth_scales("tanh", sigma_w2=1.5, sigma_b2=0.05).xi_c), 1)
  15.8
"""

from jaxinit.theory._conv_kernels import (
    FILTER_VARIANCES,
    ConvVariance,
    conv_kernels,
    conv_variance,
    filter_spectrum,
    spatial_modes,
)
from jaxinit.theory._empirical import empirical_ntk
from jaxinit.theory._fixed_points import (
    Q_STAR_TOL,
    DepthScales,
    FixedPoint,
    critical_sigma_w2,
    depth_scales,
    divergence_sigma_w2,
    phase_diagram,
    q_star,
)
from jaxinit.theory._kernels import Kernels, kernels
from jaxinit.theory._maps import (
    Moments,
    c_map,
    chi1,
    propagate,
    propagate_variance,
    sigma_b2,
    sigma_w2,
    variance_map,
)
from jaxinit.theory._predict import Prediction, predict
from jaxinit.theory._quadrature import Q_MAX
from jaxinit.theory._residual import residual_kernels
from jaxinit.theory._transforms import transform

__all__ = [
    "FILTER_VARIANCES",
    "Q_MAX",
    "Q_STAR_TOL",
    "ConvVariance",
    "DepthScales",
    "FixedPoint",
    "Kernels",
    "Moments",
    "Prediction",
    "c_map",
    "chi1",
    "conv_kernels",
    "conv_variance",
    "critical_sigma_w2",
    "depth_scales",
    "divergence_sigma_w2",
    "empirical_ntk",
    "filter_spectrum",
    "kernels",
    "phase_diagram",
    "predict",
    "propagate",
    "propagate_variance",
    "q_star",
    "residual_kernels",
    "sigma_b2",
    "sigma_w2",
    "spatial_modes",
    "transform",
    "variance_map",
]
