r"""Which kernels of a Flax NNX model a grid initializes, and the fans each one has.

A kernel's fans come from its module, not from the kernel's shape. Flax's
``LinearGeneral`` keeps its kernel as ``(*in_features, *out_features)`` and
initializes it on the flat matrix ``(prod(in), prod(out))``; an attention query
kernel ``(64, 4, 16)`` has fan-in 64, while ``he_normal`` applied to the shape
itself takes the receptive field 64 times 4 heads (fan-in 256) and draws with
``std`` 0.5 times the right one. So each kernel is drawn on its *view*, the shape on
which :mod:`jax.nn.initializers`' conventions (``fan_in = shape[-2] · receptive
field``) give the module's fans, and reshaped back:

=================  ===============================  ==================================
module             kernel                           view (fan-in · fan-out)
=================  ===============================  ==================================
``Linear``         ``(in, out)``                    the kernel
``Conv``           ``(*window, in / groups, out)``  the kernel (receptive field · in)
``ConvTranspose``  ``(*window, in, out)``           the kernel; with
                                                    ``transpose_kernel`` its last two
                                                    axes swapped
``LinearGeneral``  ``(*batch, *in, *out)``          ``(prod(batch)·prod(in), prod(out))``
                                                    as Flax's own init wrapper
``Einsum``         any                              ``(fan_in, size / fan_in)``: give
                                                    ``fan_in`` (:func:`kernels`)
=================  ===============================  ==================================
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
from flax import nnx

__all__ = ["KERNEL_TYPES", "Kernel", "KernelRule", "kernel_view", "kernels", "path_str"]

KERNEL_TYPES: tuple[type, ...] = (
    nnx.Linear,
    nnx.LinearGeneral,
    nnx.Conv,
    nnx.ConvTranspose,
    nnx.Einsum,
)


def path_str(path: tuple) -> str:
    """A module path as the result labels it: ``("blocks", 0, "attn")`` is ``"blocks/0/attn"``."""
    return "/".join(str(p) for p in path)


class Kernel(NamedTuple):
    """One kernel a grid initializes.

    ``index`` numbers every kernel module of the model in graph order
    (``nnx.iter_modules``), selected or not, so a kernel's key does not depend on
    the rule: kernel ``index`` is drawn with ``layer_keys(seed_key, index)[0]``.
    """

    index: int
    path: str
    type: str
    shape: tuple[int, ...]  # the kernel's
    view: tuple[int, ...]  # the shape it is drawn on (see the module docstring)
    swap: bool  # ConvTranspose(transpose_kernel=True): the view's last two axes are swapped


def kernel_view(module: nnx.Module, *, fan_in: int | None = None) -> tuple[tuple[int, ...], bool]:
    """``(view, swapped)``: the shape ``module``'s kernel is drawn on (module docstring).

    ``fan_in`` is needed for an ``Einsum`` (no generic fan) and refused elsewhere.
    """
    shape = tuple(int(d) for d in module.kernel.shape)
    name = type(module).__name__
    if isinstance(module, nnx.Einsum):
        if fan_in is None:
            raise ValueError(
                f"an Einsum kernel ({module.einsum_str!r}, shape {shape}) has no generic fan-in; "
                "give it in the rule: kernels(fan_in={path_or_regex: fan_in})"
            )
        size = math.prod(shape)
        if fan_in < 1 or size % fan_in:
            raise ValueError(
                f"fan_in={fan_in} does not divide the Einsum kernel's {size} entries (shape {shape})"
            )
        return (fan_in, size // fan_in), False
    if fan_in is not None:
        raise ValueError(f"fan_in is only for Einsum kernels; a {name}'s comes from the module")
    if isinstance(module, nnx.LinearGeneral):
        n_out = len(module.out_features)
        return (math.prod(shape[:-n_out]), math.prod(shape[-n_out:])), False
    if isinstance(module, nnx.ConvTranspose) and module.transpose_kernel:
        return (*shape[:-2], shape[-1], shape[-2]), True
    return shape, False


@dataclasses.dataclass(frozen=True)
class KernelRule:
    """Which kernels a grid's init replaces (:func:`kernels` builds one).

    A kernel is selected when its module is of one of ``types``, its path
    matches ``include`` (``re.search``; None: every path) and does not match
    ``exclude``. ``fan_in`` maps a path regex to an Einsum kernel's fan-in.
    The others keep the model's own initializer.
    """

    include: str | None = None
    exclude: str | None = None
    types: tuple[type, ...] = KERNEL_TYPES
    fan_in: tuple[tuple[str, int], ...] = ()  # (path regex, fan-in) pairs, sorted

    def selects(self, path: str, module: nnx.Module) -> bool:
        if not isinstance(module, self.types):
            return False
        if self.include is not None and not re.search(self.include, path):
            return False
        return self.exclude is None or not re.search(self.exclude, path)

    def fan_in_of(self, path: str) -> int | None:
        hits = [n for pattern, n in self.fan_in if re.search(pattern, path)]
        if len(set(hits)) > 1:
            raise ValueError(f"kernel {path!r}: several fan_in patterns match, giving {hits}")
        return hits[0] if hits else None

    def describe(self) -> str:
        types = ",".join(t.__name__ for t in self.types)
        fans = ",".join(f"{p}={n}" for p, n in self.fan_in)
        return f"kernels(include={self.include!r}, exclude={self.exclude!r}, types=[{types}], fan_in=[{fans}])"


def kernels(
    *,
    include: str | None = None,
    exclude: str | None = None,
    types: type | tuple[type, ...] | None = None,
    fan_in: Mapping[str, int] | None = None,
) -> KernelRule:
    """A rule selecting the kernels a grid initializes, by module path and type.

    Example::

        ji.models.kernels(exclude=r"^head$")        # keep the head's own init
        ji.models.kernels(types=nnx.Conv)           # convolutions only
        ji.models.kernels(fan_in={r"mix$": 64})     # an Einsum's fan-in

    Args:
      include: a regex; only kernels whose path (``"blocks/0/attn/query"``)
        matches it (``re.search``). None: every path.
      exclude: a regex; kernels whose path matches it keep their own init.
      types: module types (subclasses included) among :data:`KERNEL_TYPES`;
        None: all of them.
      fan_in: ``{path regex: fan-in}`` for ``Einsum`` kernels, which have no
        generic fan (see :func:`kernel_view`).
    """
    for name, pattern in (("include", include), ("exclude", exclude)):
        if pattern is not None:
            if not isinstance(pattern, str):
                raise TypeError(f"kernels: {name} must be a regex string; got {pattern!r:.60}")
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"kernels: {name}={pattern!r} is not a regex: {e}") from None
    if types is None:
        types = KERNEL_TYPES
    types = types if isinstance(types, tuple) else (types,)
    for t in types:
        if not (isinstance(t, type) and issubclass(t, KERNEL_TYPES)):
            valid = ", ".join(k.__name__ for k in KERNEL_TYPES)
            raise TypeError(f"kernels: types holds {t!r}, not a kernel module type ({valid})")
    fans = dict(fan_in or {})
    for pattern, n in fans.items():
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"kernels: fan_in[{pattern!r}] must be an int >= 1; got {n!r}")
    return KernelRule(include, exclude, types, tuple(sorted((p, int(n)) for p, n in fans.items())))


def select(model: nnx.Module, rule: KernelRule | Callable[[str, Any], bool]) -> list[Kernel]:
    """The kernels of ``model`` that ``rule`` selects, numbered in graph order among all."""
    found, index = [], 0
    for path, module in nnx.iter_modules(model):
        if not isinstance(module, KERNEL_TYPES):
            continue
        p = path_str(path)
        chosen = rule.selects(p, module) if isinstance(rule, KernelRule) else bool(rule(p, module))
        if chosen:
            fan = rule.fan_in_of(p) if isinstance(rule, KernelRule) else None
            try:
                view, swap = kernel_view(module, fan_in=fan)
            except ValueError as e:
                raise ValueError(f"kernel {p!r}: {e}") from None
            shape = tuple(int(d) for d in module.kernel.shape)
            found.append(Kernel(index, p, type(module).__name__, shape, view, swap))
        index += 1
    return found
