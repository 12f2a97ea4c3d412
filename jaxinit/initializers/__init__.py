r"""Weight initializers with the protocol of :mod:`jax.nn.initializers`.

Every builder takes keyword-only hyperparameters and returns an
:class:`Initializer`, ``init(key, shape, dtype=None) -> Array``, which works
unchanged as ``flax.nnx.Linear(kernel_init=...)`` and wherever jax
initializers are accepted. Each one also carries its canonical ``spec``
(``get(init.spec) == init``) and its exact per-entry ``moments(shape)``.

=======================  ==================================================  =====================
name                     distribution of each entry                          reference
=======================  ==================================================  =====================
zeros, ones, constant    the constant 0, 1, ``value``
normal                   :math:`\mathcal{N}(\mu, \mathrm{stddev}^2)`
uniform                  :math:`U[\mathrm{low}, \mathrm{high})`, ±0.05 by default
truncated_normal         :math:`\mathcal{N}(0, \mathrm{stddev}^2)` cut at ±2·stddev
variance_scaling         mean 0, :math:`\mathrm{Var} = \mathrm{scale}/n`       the general core
glorot_normal/_uniform   :math:`\mathrm{Var} = 2/(\mathrm{fan\_in}+\mathrm{fan\_out})`  Glorot & Bengio 2010
he_normal/_uniform       :math:`\mathrm{Var} = 2/\mathrm{fan\_in}`           He et al. 2015
lecun_normal/_uniform    :math:`\mathrm{Var} = 1/\mathrm{fan\_in}`           LeCun et al. 1998
torch_linear_default     :math:`U(\pm 1/\sqrt{\mathrm{fan\_in}})`            torch ``nn.Linear``
orthogonal               :math:`\mathrm{scale}\cdot Q`, :math:`Q^\top Q = I`  Saxe et al. 2014
lsuv                     :math:`Q` rescaled per layer to unit output variance  Mishkin & Matas 2016
identity                 :math:`\mathrm{scale}\cdot I` (at the centre tap of a conv kernel)
dirac                    the identity conv kernel, per group                  torch ``dirac_``
delta_orthogonal         :math:`\mathrm{scale}\cdot Q` at the centre tap, zeros elsewhere  Xiao et al. 2018
sparse                   :math:`\lceil s\,\mathrm{fan\_in}\rceil` zeros per unit, rest :math:`\mathcal{N}(0, \mathrm{stddev}^2)`  Martens 2010
=======================  ==================================================  =====================

"normal" schemes (glorot/he/lecun) are truncated at ±2σ in the jax and keras
conventions, untruncated in torch; see :func:`variance_scaling` for the full
table of what ``convention`` changes. ``convention`` also picks the weight
layout (torch's is ``(out, in, ...)``); ``layout="flax"`` keeps a convention's
distribution on Flax's ``(..., in, out)`` kernels, e.g.
``he_normal(convention="torch", layout="flax")`` in ``nnx.Linear``. Aliases are the same objects:
``xavier_* is glorot_*``, ``kaiming_* is he_*``, ``eye is identity``,
``flax_default is lecun_normal``.

Pair SELU with ``lecun_normal`` for self-normalizing networks (Klambauer et
al. 2017).

References:
  - Glorot & Bengio (2010), Understanding the difficulty of training deep
    feedforward neural networks. http://proceedings.mlr.press/v9/glorot10a.html
  - He et al. (2015), Delving Deep into Rectifiers. https://arxiv.org/abs/1502.01852
  - LeCun, Bottou, Orr & Müller (1998), Efficient BackProp.
  - Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics
    of learning in deep linear neural networks. https://arxiv.org/abs/1312.6120
  - Klambauer et al. (2017), Self-Normalizing Neural Networks.
    https://arxiv.org/abs/1706.02515
  - Martens (2010), Deep learning via Hessian-free optimization.
  - Xiao et al. (2018), Dynamical isometry and a mean field theory of CNNs.
    https://arxiv.org/abs/1806.05393

Example:
  >>> import jax, jaxinit as ji
  >>> init = ji.initializers.get("he_normal")
  >>> init(jax.random.key(0), (784, 256)).shape
  (784, 256)
  >>> init.variance((784, 256))  # 2 / 784
  0.002551020408163265
"""

from jaxinit.initializers._basic import (
    constant,
    custom,
    delta_orthogonal,
    dirac,
    eye,
    identity,
    lsuv,
    normal,
    ones,
    orthogonal,
    sparse,
    truncated_normal,
    uniform,
    zeros,
)
from jaxinit.initializers._core import LAYOUTS, Initializer, compute_fans, registry
from jaxinit.initializers._scaling import (
    CONVENTIONS,
    DISTRIBUTIONS,
    MODES,
    flax_default,
    gain,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    kaiming_normal,
    kaiming_uniform,
    lecun_normal,
    lecun_uniform,
    torch_linear_default,
    variance_scaling,
    xavier_normal,
    xavier_uniform,
)

get = registry.get
names = registry.names
formula = registry.formula
aliases = registry.aliases

__all__ = [
    "CONVENTIONS",
    "DISTRIBUTIONS",
    "LAYOUTS",
    "MODES",
    "Initializer",
    "aliases",
    "compute_fans",
    "constant",
    "custom",
    "delta_orthogonal",
    "dirac",
    "eye",
    "flax_default",
    "formula",
    "gain",
    "get",
    "glorot_normal",
    "glorot_uniform",
    "he_normal",
    "he_uniform",
    "identity",
    "kaiming_normal",
    "kaiming_uniform",
    "lecun_normal",
    "lecun_uniform",
    "lsuv",
    "names",
    "normal",
    "ones",
    "orthogonal",
    "sparse",
    "torch_linear_default",
    "truncated_normal",
    "uniform",
    "variance_scaling",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
