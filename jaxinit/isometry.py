r"""Dynamical isometry: the singular values of a deep network's input–output Jacobian.

A square MLP of depth :math:`L` and width :math:`N` at initialization, in the
row-vector convention of :mod:`jaxinit.sweeping._kernel`,

.. math::  z_l = h_{l-1} W_l + b_l, \qquad h_l = \varphi(z_l), \qquad h_0 = x,

has the input–output Jacobian

.. math::  J = \frac{\partial h_L}{\partial x}
   = D_L W_L^\top D_{L-1} W_{L-1}^\top \cdots D_1 W_1^\top,
   \qquad D_l = \mathrm{diag}\,\varphi'(z_l).

:func:`jacobian_spectrum` draws the network, builds :math:`J` explicitly at one
or more inputs :math:`x \sim \mathcal{N}(0, q_\mathrm{in} I)` (a product of
diagonal × matrix factors, :math:`O(L N^3)`, cheap at :math:`N \le 512`) and
returns its singular values. The network is *dynamically isometric* when they
all concentrate near 1 (Saxe et al. 2014; Pennington et al. 2017).

Mean-field theory. With :math:`\sigma_w^2 = N\,\mathrm{Var}(W_{ij})`, every layer's
pre-activations at the fixed point :math:`q^*` of the variance map (``q=q*``: the first
layer's :math:`z_1 = x W_1 + b_1` has variance :math:`q^*` when the inputs have
:math:`q_\mathrm{in} = (q^* - \sigma_b^2)/\sigma_w^2`, not :math:`q^*`), and
:math:`\mu_k = \mathbb{E}_{z \sim \mathcal{N}(0, 1)}[\varphi'(\sqrt{q^*} z)^{2k}]`,
the eigenvalues :math:`\lambda = s^2` of :math:`JJ^\top` have, as :math:`N \to \infty`,

.. math::  \overline{\lambda} = \overline{s^2} = \chi_1^L, \qquad \chi_1 = \sigma_w^2 \mu_1,

and at criticality (:math:`\chi_1 = 1`) the variance (Pennington et al. 2017, Sec. 2.4)

.. math::  \sigma^2_{JJ^\top} = L \Big(\frac{\mu_2}{\mu_1^2} - 1 - s_1\Big),
   \qquad s_1 = -1 \text{ (Gaussian } W\text{)}, \quad s_1 = 0 \text{ (orthogonal } W\text{)}.

So a linear network with orthogonal weights is exactly isometric
(:math:`\mu_2 = \mu_1^2`, all :math:`s = 1`); Gaussian weights spread the
spectrum like :math:`\sqrt{L}` even in a linear network; ReLU
(:math:`\varphi'^2 \in \{0, 1\}`, so :math:`\mu_2/\mu_1^2 = 2`) spreads like
:math:`\sqrt{L}` with orthogonal weights too (:math:`\sigma^2 = L`, and
:math:`2L` with Gaussian ones); and tanh with orthogonal weights near
:math:`\sigma_w^2 = 1`, :math:`\sigma_b^2 \to 0`, where :math:`q^* \to 0` and
:math:`\mu_2/\mu_1^2 - 1 = O(q^{*2})`, keeps the spread :math:`O(1)` far deeper: at :math:`\sigma_w^2 = 1.05`,
:math:`\sigma_b^2 = 10^{-6}`, :math:`q^* \approx 0.0255`, :math:`\chi_1 \approx 1.0007`
and :math:`\sigma^2_{JJ^\top} \approx 0.0042\,L`, so at :math:`L = 32` the singular
values have a standard deviation of about 0.18, where ReLU's is about 1.
:attr:`Spectrum.mean_squared_by_layer` records :math:`\|J_l\|_F^2 / N` after
every layer, the finite-width estimate of :math:`\chi_1^l`.

Randomness. Layer :math:`l`'s weights and bias use ``fold_in(fold_in(k, 1), l)``
then ``fold_in(·, 0)`` and ``fold_in(·, 1)``, and input :math:`i` uses
``fold_in(fold_in(k, 0), i)``: the streams of :mod:`jaxinit._keys`, so a seed key
gives the same weights here as in a sweep of the same initializer, and adding
layers or inputs never changes the others.

References:
  - Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics
    of learning in deep linear neural networks. https://arxiv.org/abs/1312.6120
  - Pennington, Schoenholz & Ganguli (2017), Resurrecting the sigmoid in deep
    learning through dynamical isometry: theory and practice.
    https://arxiv.org/abs/1711.04735
  - Poole et al. (2016), Exponential expressivity in deep neural networks through
    transient chaos (:math:`q^*`, :math:`\chi_1`). https://arxiv.org/abs/1606.05340

Example:
  >>> import jax
  >>> spec = jacobian_spectrum(jax.random.key(0), init="orthogonal(scale=1.0247)",
  ...                          activation="tanh", depth=32, width=128,
  ...                          bias_init="normal(stddev=0.001)", q=0.0255)
  >>> round(float(spec.std), 1)  # singular values concentrated near 1
  0.2
  >>> many = jax.vmap(lambda k: jacobian_spectrum(k, init="he_normal",
  ...     activation="relu", depth=32, width=128))(jax.random.split(jax.random.key(0), 8))
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from jaxinit import activations
from jaxinit._checks import check_int, check_real
from jaxinit._keys import STREAM_INPUTS, layer_keys
from jaxinit.initializers._core import initializer_or_function

__all__ = ["Histogram", "Spectrum", "jacobian_spectrum", "spectrum_histogram"]


class Spectrum(NamedTuple):
    """Singular values of the input–output Jacobian and their summary statistics.

    The scalars pool every input and every singular value. Under ``vmap`` over
    keys each field gains a leading seed axis.
    """

    singular_values: jax.Array  # (n_inputs, width) per input, descending
    mean: jax.Array  # () mean singular value
    std: jax.Array  # () standard deviation of the singular values
    max: jax.Array  # () largest singular value
    min: jax.Array  # () smallest singular value
    mean_squared: jax.Array  # () mean of s² = tr(JJᵀ)/N; mean field: χ₁^L
    mean_squared_by_layer: jax.Array  # (n_inputs, depth) ‖J_l‖_F²/N after layer l; χ₁^l


class Histogram(NamedTuple):
    """Counts of singular values (or their squares) in equal-width bins."""

    counts: jax.Array  # (bins,) int32, or float density when asked
    edges: jax.Array  # (bins + 1,) bin edges


def jacobian_spectrum(
    key: jax.Array,
    *,
    init: Any,
    activation: Any,
    depth: int,
    width: int,
    bias_init: Any = "zeros",
    q: float | None = None,
    q_in: float | None = None,
    n_inputs: int = 1,
    inputs: ArrayLike | None = None,
    dtype: Any = jnp.float32,
) -> Spectrum:
    r"""Singular values of :math:`J = \partial h_L / \partial x` of a random square MLP.

    Args:
      key: PRNG key of the network (and the inputs, if drawn).
      init: weight initializer: a jaxinit spec string such as
        ``"orthogonal(scale=1.0247)"``, an Initializer or a jax initializer.
        Every layer, the first included, is ``(width, width)``.
      activation: an activation spec or :class:`jaxinit.activations.Activation`
        (a random one such as rrelu runs deterministically, as in eval mode).
      depth: number of layers :math:`L` (>= 1).
      width: :math:`N`, also the input dimension.
      bias_init: bias initializer, applied to shape ``(width,)``.
      q: the variance of the first layer's pre-activations :math:`z_1 = x W_1 + b_1`: the
        inputs are drawn with :math:`q_\mathrm{in} = (q - \sigma_b^2)/\sigma_w^2`
        (:math:`\sigma_w^2 = N\,\mathrm{Var}(W)`, :math:`\sigma_b^2 = \mathbb{E}[b^2]`, from
        the initializers' exact moments). At criticality give the fixed point,
        ``q=q_star(...).q``: every layer then starts at :math:`q^*` and the network is the
        critical one of Pennington et al. (2017). Needs :math:`q \ge \sigma_b^2` and a
        jaxinit weight initializer; excludes ``q_in``.
      q_in: the variance of each input coordinate, :math:`x \sim \mathcal{N}(0, q_\mathrm{in})`
        (then :math:`z_1` has variance :math:`\sigma_w^2 q_\mathrm{in} + \sigma_b^2`, not
        :math:`q_\mathrm{in}`); default 1 when neither it nor ``q`` is given.
      n_inputs: how many inputs to draw (ignored shape-wise when ``inputs`` is given).
      inputs: explicit inputs of shape ``(n_inputs, width)`` or ``(width,)``,
        instead of drawing them.
      dtype: floating dtype of weights, inputs and Jacobian.

    Returns:
      A :class:`Spectrum`. The function is jit-compiled once per static
      configuration and can be ``jax.vmap``-ed over keys: one program for many seeds.

    Raises:
      ValueError: for an unknown spec (with the closest name), a non-positive
        depth/width/n_inputs, a negative or non-finite ``q_in``, inputs of the
        wrong shape, or an initializer that cannot draw these shapes.
    """
    init = initializer_or_function(init)
    act = activations.get(activation)
    bias = initializer_or_function(bias_init)
    depth = check_int("depth", depth)
    width = check_int("width", width)
    n_inputs = check_int("n_inputs", n_inputs)
    q_in = _input_variance(init, bias, width, q, q_in)
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise ValueError(f"dtype must be a floating dtype such as float32; got {dtype}")
    x = None
    if inputs is not None:
        x = jnp.asarray(inputs, dtype)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != width or x.shape[0] == 0:
            raise ValueError(
                f"inputs must have shape (n_inputs, width={width}) or (width,); "
                f"got {jnp.shape(inputs)}"
            )
    return _spectrum(
        key,
        x,
        init=init,
        act=act,
        bias=bias,
        depth=depth,
        width=width,
        n_inputs=n_inputs,
        q_in=float(q_in),
        dtype=dtype,
    )


def _input_variance(init, bias, width: int, q: Any, q_in: Any) -> float:
    """The inputs' variance q_in: given, or (q - σ_b²)/σ_w² for a first-layer variance q."""
    if q is not None and q_in is not None:
        raise ValueError(
            "jacobian_spectrum: give q (the first layer's pre-activation variance) or q_in "
            f"(the inputs' variance), not both; got q={q!r}, q_in={q_in!r}"
        )
    if q is None:
        return check_real("q_in", 1.0 if q_in is None else q_in, low=0.0)
    q = check_real("q", q, low=0.0)
    plain = next((i for i in (init, bias) if not hasattr(i, "moments")), None)
    if plain is not None:
        raise ValueError(
            "jacobian_spectrum: q= needs the weight variance and bias second moment of "
            f"jaxinit initializers (their exact moments) to draw the inputs; got {plain!r:.60}. "
            "Give q_in= instead"
        )
    (w_mean, w_var), (b_mean, b_var) = init.moments((width, width)), bias.moments((width,))
    sigma_w2, sigma_b2 = width * (w_mean**2 + w_var), b_mean**2 + b_var
    if q < sigma_b2:
        raise ValueError(
            f"jacobian_spectrum: q={q!r} is below σ_b² = {sigma_b2:.4g}, the variance the "
            "biases alone give z₁; give q >= σ_b²"
        )
    if sigma_w2 <= 0:
        raise ValueError(
            f"jacobian_spectrum: q= needs weights of positive variance; {init.spec!r} has none"
        )
    return (q - sigma_b2) / sigma_w2


@functools.partial(
    jax.jit,
    static_argnames=("init", "act", "bias", "depth", "width", "n_inputs", "q_in", "dtype"),
)
def _spectrum(key, x, *, init, act, bias, depth, width, n_inputs, q_in, dtype) -> Spectrum:
    if x is None:
        k_in = jax.random.fold_in(key, STREAM_INPUTS)
        draw = lambda i: jax.random.normal(jax.random.fold_in(k_in, i), (width,), dtype)  # noqa: E731
        x = jax.vmap(draw)(jnp.arange(n_inputs)) * jnp.sqrt(jnp.asarray(q_in, dtype))

    def layer(carry, l):
        h, jt = carry  # (n, N) activations, (n, N, N) Jᵀ of the layers so far
        k_w, k_b = layer_keys(key, l)
        w = init(k_w, (width, width), dtype)
        b = bias(k_b, (width,), dtype)
        z = h @ w + b[None, :]
        h, dphi = jax.jvp(act.fn, (z,), (jnp.ones_like(z),))
        # Jᵀ ← Jᵀ W_l D_l: the transpose of D_l W_lᵀ J, same singular values
        jt = jnp.einsum("nij,jk->nik", jt, w) * dphi[:, None, :]
        return (h, jt), jnp.sum(jt * jt, axis=(1, 2)) / width

    eye = jnp.broadcast_to(jnp.eye(width, dtype=dtype), (x.shape[0], width, width))
    (_, jt), by_layer = jax.lax.scan(layer, (x, eye), jnp.arange(depth))
    s = jnp.linalg.svd(jt, compute_uv=False)
    return Spectrum(
        singular_values=s,
        mean=s.mean(),
        std=s.std(),
        max=s.max(),
        min=s.min(),
        mean_squared=jnp.mean(s * s),
        mean_squared_by_layer=by_layer.T,
    )


def spectrum_histogram(
    spectrum: Spectrum | ArrayLike,
    *,
    bins: int = 50,
    range: tuple[float, float] | None = None,
    squared: bool = False,
    density: bool = False,
) -> Histogram:
    r"""A histogram of the singular values :math:`s` (or of :math:`\lambda = s^2`).

    Args:
      spectrum: a :class:`Spectrum` (all its singular values pooled, seeds
        included) or an array of singular values.
      bins: number of equal-width bins.
      range: ``(lo, hi)``; None takes ``(0, max)``. Fix it to compare
        histograms of different networks (and under ``jit``/``vmap``).
      squared: histogram :math:`s^2`, the eigenvalues of :math:`JJ^\top`, as
        Pennington et al. (2017) plot their densities.
      density: normalize to a probability density, as ``np.histogram`` does.
    """
    bins = check_int("bins", bins)
    s = spectrum.singular_values if isinstance(spectrum, Spectrum) else jnp.asarray(spectrum)
    values = (s * s if squared else s).ravel()
    if range is None:
        range = (jnp.zeros((), values.dtype), values.max())
    else:
        lo, hi = range
        if not lo < hi:
            raise ValueError(f"range must be (lo, hi) with lo < hi; got {range!r}")
    counts, edges = jnp.histogram(values, bins=bins, range=range, density=density)
    if not density:
        counts = counts.astype(jnp.int32)
    return Histogram(counts=counts, edges=edges)
