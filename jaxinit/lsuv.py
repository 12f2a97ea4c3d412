r"""LSUV, layer-sequential unit-variance initialization (Mishkin & Matas 2016).

An orthogonal draw, then a data-dependent per-layer rescale. On a batch
:math:`x \in \mathbb{R}^{B \times d_\mathrm{in}}` and for an MLP in the row
convention of :mod:`jaxinit.sweeping._kernel`,

.. math::  z_l = h_{l-1} W_l + b_l, \qquad h_l = \varphi(z_l), \qquad h_0 = x,

LSUV (Algorithm 1 of the paper)

1. draws every :math:`W_l` orthonormal (:func:`jaxinit.initializers.orthogonal`:
   orthonormal columns when :math:`W_l` is tall, rows when it is wide) and
   every bias from ``bias_init``;
2. for :math:`l = 1, \dots, L` in turn, with layers :math:`1..l-1` already
   rescaled, repeats

   .. math::  W_l \leftarrow W_l \sqrt{v^\star / \mathrm{Var}(z_l)}

   until :math:`|\mathrm{Var}(z_l) - v^\star| < \mathrm{tol}` or ``max_iter``
   rescalings, where :math:`\mathrm{Var}(z_l)` is the variance of all
   :math:`B \times n_l` entries of :math:`z_l` around their mean and
   :math:`v^\star` is ``target_var`` (1 in the paper).

With zero biases :math:`\mathrm{Var}(c\,z) = c^2 \mathrm{Var}(z)`, so one rescale
is exact; a bias is not rescaled, so with biases the loop iterates. Only the
scale of each :math:`W_l` changes, never its direction (:math:`W_l^\top W_l` stays
a multiple of :math:`I` for a tall or square layer), and the variances concern
the pre-activations :math:`z_l`, so whether the network applies
:math:`\varphi` after its last layer does not matter. A layer whose
:math:`z_l` has variance 0 (dead inputs) is left as drawn.

LSUV is not in the initializer registry: it needs data, so it cannot be an
``init(key, shape)``. :func:`lsuv` is the pure form (jit- and vmap-able; the
layer sizes are static); :func:`lsuv_init` rescales the kernels of a Flax NNX
model in place and is what a trainer calls after building the model.

Randomness. Layer :math:`l` draws its weights and bias from
``fold_in(fold_in(fold_in(key, 1), l), 0)`` and ``(…, 1)``, the layer streams of
:mod:`jaxinit._keys`, so the orthogonal start equals the weights a sweep draws
with ``orthogonal`` for the same seed key.

References:
  - Mishkin & Matas (2016), All you need is a good init. ICLR 2016.
    https://arxiv.org/abs/1511.06422
  - Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics
    of learning in deep linear neural networks. ICLR 2014.
    https://arxiv.org/abs/1312.6120

Example:
  >>> import jax
  >>> x = jax.random.normal(jax.random.key(1), (256, 784))
  >>> res = lsuv(jax.random.key(0), x, widths=(100, 100, 10), activation="relu")
  >>> [round(float(v), 2) for v in res.variances]  # each within tol of 1
  [1.0, 1.0, 1.0]
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxinit import activations
from jaxinit._checks import check_int, check_real
from jaxinit._keys import layer_keys
from jaxinit.initializers._core import initializer_or_function

if TYPE_CHECKING:  # flax is imported by the functions that take a model, not by a sweep
    from flax import nnx

__all__ = ["LSUVResult", "layer_scale", "lsuv", "lsuv_init"]


class LSUVResult(NamedTuple):
    """Rescaled parameters and what the rescaling achieved, one entry per layer."""

    weights: tuple[jax.Array, ...]  # layer l: (fan_in_l, widths[l]), rescaled
    biases: tuple[jax.Array, ...]  # layer l: (widths[l],), as drawn (LSUV leaves them)
    variances: jax.Array  # (n_layers,) Var(z_l) on the batch after rescaling
    iterations: jax.Array  # (n_layers,) int32 number of rescalings of each layer
    scales: jax.Array  # (n_layers,) factor applied to each W_l in total


def _check(x: ArrayLike, target_var: Any, tol: Any, max_iter: Any) -> jax.Array:
    check_real("target_var", target_var, low=0.0, strict=True)
    check_real("tol", tol, low=0.0, strict=True)
    check_int("max_iter", max_iter, low=0)
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(
            f"x must be a non-empty data batch of shape (batch, d_in); got shape {x.shape}"
        )
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must hold floating-point data; got dtype {x.dtype}")
    return x


def layer_scale(hw, b, target, tol, max_iter):
    """One layer's LSUV rescaling of ``z = c (h W) + b``: ``(c, Var(z), steps)``.

    ``hw = h W`` is computed once; each step sets ``c ← c sqrt(target / Var(z))``
    while ``|Var(z) - target| >= tol`` and fewer than ``max_iter`` steps were
    taken. A layer whose output has no finite, positive variance is left as it
    is (c = 1). The sweep kernel uses this too, so both run the same algorithm.
    """
    variance = lambda c: jnp.var(c * hw + b[None, :])  # noqa: E731

    def cond(state):
        _, v, it = state
        far = jnp.abs(v - target) >= tol
        return far & (it < max_iter) & (v > 0) & jnp.isfinite(v)

    def body(state):
        c, v, it = state
        c = c * jnp.sqrt(target / v)
        return c, variance(c), it + 1

    one = jnp.ones((), hw.dtype)
    return jax.lax.while_loop(cond, body, (one, variance(one), jnp.int32(0)))


def _rescale(x, weights, biases, act, target, tol, max_iter):
    """The LSUV loop over layers; ``lax.while_loop`` over the rescalings of each."""
    h = x
    out_w, variances, iterations, scales = [], [], [], []
    for w, b in zip(weights, biases, strict=True):
        hw = h @ w  # z = c (h W) + b: rescaling W by c costs no new matmul
        c, v, it = layer_scale(hw, b, target, tol, max_iter)
        out_w.append(w * c)
        variances.append(v)
        iterations.append(it)
        scales.append(c)
        h = act.fn(c * hw + b[None, :])
    return (
        tuple(out_w),
        tuple(biases),
        jnp.stack(variances),
        jnp.stack(iterations),
        jnp.stack(scales),
    )


@functools.partial(jax.jit, static_argnames=("widths", "act", "init", "bias"))
def _lsuv(key, x, target, tol, max_iter, *, widths, act, init, bias) -> LSUVResult:
    weights, biases = [], []
    for l, (fan_in, n) in enumerate(zip((x.shape[1], *widths[:-1]), widths, strict=True)):
        k_w, k_b = layer_keys(key, l)
        weights.append(init(k_w, (fan_in, n), x.dtype))
        biases.append(bias(k_b, (n,), x.dtype))
    target, tol = jnp.asarray(target, x.dtype), jnp.asarray(tol, x.dtype)
    return LSUVResult(*_rescale(x, weights, biases, act, target, tol, max_iter))


def lsuv(
    key: jax.Array,
    x: ArrayLike,
    *,
    widths: Sequence[int],
    activation: Any,
    init: Any = "orthogonal",
    bias_init: Any = "zeros",
    target_var: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
) -> LSUVResult:
    r"""LSUV weights for an MLP ``x → widths[0] → … → widths[-1]`` on the batch ``x``.

    Args:
      key: PRNG key of the starting draw.
      x: the data batch, ``(batch, d_in)``, floating point; its dtype is the weights'.
      widths: output size of every layer, the last included (static).
      activation: activation spec or object, applied after every layer.
      init: the starting draw; ``"orthogonal"`` is the paper's. Any weight
        initializer works (the paper reports LSUV on others too).
      bias_init: bias initializer, applied to shape ``(widths[l],)``.
      target_var: :math:`v^\star`, the variance each layer's output is brought to.
      tol: stop when :math:`|\mathrm{Var}(z_l) - v^\star| <` ``tol``.
      max_iter: at most this many rescalings per layer (0 returns the start).

    Returns:
      An :class:`LSUVResult`. Compiled once per ``widths``, activation,
      initializers and input shape; ``target_var``, ``tol`` and ``max_iter`` are
      traced. Can be ``jax.vmap``-ed over keys.

    Raises:
      ValueError: for an unknown spec (with the closest name), empty or
        non-positive ``widths``, a bad ``x``, a non-positive ``target_var`` or
        ``tol``, or a negative ``max_iter``.
    """
    x = _check(x, target_var, tol, max_iter)
    what = f"widths must be a non-empty sequence of positive ints; got {widths!r}"
    if isinstance(widths, (int, str)) or not isinstance(widths, Sequence):
        raise TypeError(what)
    if not widths:
        raise ValueError(what)
    for n in widths:
        check_int(f"each of widths {tuple(widths)!r}", n)
    return _lsuv(
        key,
        x,
        target_var,
        tol,
        max_iter,
        widths=tuple(int(n) for n in widths),
        act=activations.get(activation),
        init=initializer_or_function(init),
        bias=initializer_or_function(bias_init),
    )


def _linear_layers(model: nnx.Module) -> list[nnx.Linear]:
    from flax import nnx

    found = [(p, m) for p, m in nnx.iter_modules(model) if isinstance(m, nnx.Linear)]
    if not found:
        raise ValueError(f"{type(model).__name__} holds no nnx.Linear layer; nothing to rescale")
    for (p0, a), (p1, b) in itertools.pairwise(found):
        if a.out_features != b.in_features:
            raise ValueError(
                f"the nnx.Linear layers of {type(model).__name__}, in attribute order, do not "
                f"chain: {p0} has {a.out_features} outputs but {p1} takes {b.in_features} "
                "inputs. Pass layers=[...] in the order the model applies them."
            )
    return [m for _, m in found]


def lsuv_init(
    model: nnx.Module,
    x: ArrayLike,
    *,
    activation: Any,
    layers: Sequence[nnx.Linear] | None = None,
    target_var: float = 1.0,
    tol: float = 0.1,
    max_iter: int = 10,
    check: bool = True,
) -> LSUVResult:
    r"""LSUV on a Flax NNX MLP, in place: rescales each layer's kernel, leaves biases.

    The model is taken to be the plain composition
    :math:`h_l = \varphi(\mathrm{layers}[l](h_{l-1}))`, :math:`h_0 = x`, with the
    activation possibly omitted after the last layer (LSUV looks at the layers'
    outputs only). Its kernels are used as the starting draw, so build the
    model with ``kernel_init=jaxinit.initializers.orthogonal()`` to get the
    paper's method; other draws are rescaled the same way.

    Args:
      model: an ``nnx.Module``; its kernels are updated in place.
      x: a data batch ``(batch, d_in)``.
      activation: the activation the model applies between layers.
      layers: the ``nnx.Linear`` layers in the order the model applies them.
        None takes every ``nnx.Linear`` of ``model`` in attribute-path order
        (``nnx.iter_modules``), which is right for a list of layers followed
        by an output layer whose name sorts after it.
      target_var, tol, max_iter: as in :func:`lsuv`.
      check: compare ``model(x)`` with the composition before rescaling
        (with or without the final activation) and raise if it differs, so a
        model that is not such a chain is never silently mis-initialized.

    Returns:
      An :class:`LSUVResult` with the new kernels, the biases (zeros where a
      layer has none), the achieved variances and the iteration counts.
    """
    from flax import nnx

    x = _check(x, target_var, tol, max_iter)
    act = activations.get(activation)
    layers = _linear_layers(model) if layers is None else list(layers)
    for i, layer in enumerate(layers):
        if not isinstance(layer, nnx.Linear):
            raise TypeError(f"layers[{i}] must be an nnx.Linear; got {type(layer).__name__}")
    if not layers:
        raise ValueError("layers is empty; pass the model's nnx.Linear layers in order")
    if layers[0].in_features != x.shape[1]:
        raise ValueError(
            f"x has {x.shape[1]} features but the first layer takes {layers[0].in_features}"
        )
    weights = [jnp.asarray(layer.kernel[...]) for layer in layers]
    biases = [
        jnp.zeros((layer.out_features,), w.dtype) if layer.bias is None else layer.bias[...]
        for layer, w in zip(layers, weights, strict=True)
    ]
    if check:
        _check_chain(model, x, layers, act)
    dtype = weights[0].dtype
    target, tol_ = jnp.asarray(target_var, dtype), jnp.asarray(tol, dtype)
    result = LSUVResult(*_rescale(x.astype(dtype), weights, biases, act, target, tol_, max_iter))
    for layer, w in zip(layers, result.weights, strict=True):
        layer.kernel[...] = w
    return result


def _check_chain(model, x, layers, act) -> None:
    h = x
    for i, layer in enumerate(layers):
        z = layer(h)
        h = act.fn(z) if i < len(layers) - 1 else z
    out = jnp.asarray(model(x))
    matches = [
        out.shape == y.shape and bool(jnp.allclose(out, y, rtol=1e-4, atol=1e-5))
        for y in (h, act.fn(h))
    ]
    if not any(matches):
        raise ValueError(
            f"model(x) is not the composition of its {len(layers)} nnx.Linear layers with "
            f"{act.spec!r} between them; pass layers=[...] in the order the model applies "
            "them and the activation it uses, or check=False to skip this test"
        )
