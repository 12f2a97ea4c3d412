"""Models for :class:`jaxinit.ModelGrid`: the zoo, and which kernels a grid initializes.

- The zoo (:class:`MLP`, :class:`CNN`, :class:`ResNet`, :class:`Transformer`):
  plain Flax NNX modules, each one line in a grid
  (``functools.partial(ji.models.CNN, depth=50)``).
- :func:`kernels`: a rule choosing the kernels a grid's init replaces, by path
  and type; :func:`kernel_view`: the shape a kernel is drawn on, so that its fans
  are its module's (an attention query kernel ``(64, 4, 16)`` has fan-in 64).
"""

from jaxinit.models._kernels import KERNEL_TYPES, Kernel, KernelRule, kernel_view, kernels, path_str
from jaxinit.models._zoo import CNN, MLP, RESIDUAL_KEEP_ZERO, ResNet, Transformer, mup_attention

__all__ = [
    "CNN",
    "KERNEL_TYPES",
    "MLP",
    "RESIDUAL_KEEP_ZERO",
    "Kernel",
    "KernelRule",
    "ResNet",
    "Transformer",
    "kernel_view",
    "kernels",
    "mup_attention",
    "path_str",
]
