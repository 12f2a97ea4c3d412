r"""Per-layer statistics: the one schema, and the fused code that computes them.

Every per-layer number jaxinit records, in a sweep, in training and in the
theory's predictions, is a field of :class:`LayerStats`; its field names are
the names of the result fields, the table columns and the figure labels.

For a layer with pre-activations :math:`z` and post-activations
:math:`h = \varphi(z)`, both ``(..., batch, width)``, reduced over the last two
axes (``n = batch · width`` entries):

- ``pre_mean``, ``pre_var``, ``post_mean``, ``post_var``: :math:`\bar z`,
  :math:`\overline{(z - \bar z)^2}`, and the same of :math:`h` (two passes, so
  the variance has no cancellation);
- ``saturated``: the fraction with :math:`h < s_\mathrm{lo}` or
  :math:`h > s_\mathrm{hi}` (the activation's thresholds; 0 where it has none);
- ``dead``: the fraction with :math:`h = 0` exactly;
- ``nonfinite``: how many entries of :math:`z` and :math:`h` are NaN or ±inf;
- ``hist``: counts of :math:`h` in ``bins`` equal bins over ``[lo, hi]``
  (the last bin includes ``hi``), with ``hist_below`` (:math:`h < lo`, ``-inf``
  included) and ``hist_above`` (:math:`h > hi`, ``+inf`` included) beside it, so
  that ``hist.sum() + hist_below + hist_above`` is every non-NaN entry;
- ``grad_var``: :math:`\mathrm{Var}(\partial L/\partial z_l)`, and
  ``weight_grad_norm``: :math:`\|\partial L/\partial W_l\|_F`, from a backward
  pass (absent when a sweep runs with ``gradients=False``);
- ``cosine``: the mean cosine similarity between pairs of samples (when asked).

**Histogram binning.** A value's bin is computed arithmetically,
:math:`\lfloor (h - lo) \cdot \mathrm{bins} / (hi - lo) \rfloor` in float32, and
counted, together with whether it is exactly 0 (dead) and saturated, by one
flat 1-D scatter-add per layer whose index folds in the row, the cheapest
formulation measured on XLA:CPU (2.3 ns per element, against 7.6 for a batched
scatter and 63 for one mask reduction per bin; ``benchmarks/README.md``). The bins
differ from ``np.histogram``'s only for values within float32 rounding (a few
ulps) of an interior edge, which ``np.histogram`` places by comparing with the
float32 edge itself; ``tests/test_sweeping_kernel.py`` bounds that difference.

**Non-finite counts** cost nothing when there are none: the sums taken for the
means are finite exactly when no entry is NaN or ±inf (or the sum overflowed),
and only then are the entries counted one by one, in a branch that runs for the
whole block at once (``lax.cond``; the caller keeps its arrays unbatched). A
model's captured output (``same=True``, one tensor for ``z`` and ``h``) is
counted by its histogram instead, whose classes then tell NaN, ``-inf`` and
``+inf`` apart: no branch, no extra pass.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit.activations import saturation_mask

__all__ = [
    "BACKWARD_FIELDS",
    "COUNT_FIELDS",
    "FORWARD_FIELDS",
    "LAYER_FIELDS",
    "LayerStats",
    "bin_classes",
    "histogram",
    "layer_stats",
]


class LayerStats(NamedTuple):
    """Per-layer statistics of a batch of networks; every field ``(..., layer)`` unless noted.

    ``hist`` is ``(..., layer, bin)``. Counts (``nonfinite``, ``hist_below``,
    ``hist_above``, ``hist``) are integers, the rest float32. The optional
    fields are None where they were not computed.
    """

    pre_mean: jax.Array
    pre_var: jax.Array
    post_mean: jax.Array
    post_var: jax.Array
    saturated: jax.Array
    dead: jax.Array
    nonfinite: jax.Array
    hist_below: jax.Array
    hist_above: jax.Array
    hist: jax.Array | None = None
    grad_var: jax.Array | None = None
    weight_grad_norm: jax.Array | None = None
    cosine: jax.Array | None = None


LAYER_FIELDS: tuple[str, ...] = LayerStats._fields
BACKWARD_FIELDS = ("grad_var", "weight_grad_norm")
FORWARD_FIELDS = tuple(f for f in LAYER_FIELDS if f not in (*BACKWARD_FIELDS, "hist", "cosine"))
COUNT_FIELDS = ("nonfinite", "hist_below", "hist_above", "hist")


def bin_classes(h: jax.Array, lo, hi, bins: int, *, infinities: bool = False) -> jax.Array:
    """Each entry's class: 0 below ``lo``, 1..bins its bin, bins + 1 above ``hi``, bins + 2 NaN;
    with ``infinities``, also bins + 3 for ``-inf`` and bins + 4 for ``+inf`` (otherwise they
    are below and above).

    ``lo`` and ``hi`` may be traced (float32 scalars); ``bins`` is static.
    """
    lo, hi = jnp.asarray(lo, jnp.float32), jnp.asarray(hi, jnp.float32)
    scale = bins / (hi - lo)
    t = jnp.floor((h - lo) * scale)
    inside = jnp.clip(jnp.nan_to_num(t), 0, bins - 1).astype(jnp.int32) + 1
    below, above = (
        (jnp.where(h == -jnp.inf, bins + 3, 0), jnp.where(h == jnp.inf, bins + 4, bins + 1))
        if infinities
        else (0, bins + 1)
    )
    cls = jnp.where(h < lo, below, jnp.where(h > hi, above, inside))
    return jnp.where(jnp.isnan(h), bins + 2, cls)


def histogram(
    h: jax.Array,
    lo,
    hi,
    bins: int,
    *,
    saturation: tuple = (None, None),
    axes: int = 2,
    infinities: bool = False,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Class counts ``(..., bins + 3)`` (``bins + 5`` with ``infinities``; see
    :func:`bin_classes`), dead and saturated counts.

    Reduces over the last ``axes`` axes; rows are every combination of the
    leading ones. Everything comes from one 1-D scatter-add whose index folds
    in the row, the bin class, whether the entry is exactly 0 and whether it
    is saturated (a batched scatter, or one mask reduction per count, costs
    several times more on XLA:CPU).
    """
    lead = h.shape[: h.ndim - axes]
    rows = int(np.prod(lead, dtype=np.int64))
    c = bins + (5 if infinities else 3)
    cls = bin_classes(h, lo, hi, bins, infinities=infinities) + jnp.where(h == 0, c, 0)
    n_flags = 2
    sat = saturation_mask(h, saturation)
    if sat is not None:
        cls = cls + jnp.where(sat, 2 * c, 0)
        n_flags = 4
    per_row = n_flags * c
    index = cls.reshape(rows, -1) + (jnp.arange(rows, dtype=jnp.int32) * per_row)[:, None]
    table = jnp.zeros(rows * per_row, jnp.int32)
    table = table.at[index.reshape(-1)].add(1, mode="promise_in_bounds")
    table = table.reshape(rows, n_flags // 2, 2, c)  # (row, saturated, dead, class)
    classes = table.sum((1, 2)).reshape(*lead, c)
    dead = table[:, :, 1].sum((1, 2)).reshape(lead)
    saturated = (
        table[:, -1].sum((1, 2)).reshape(lead) if n_flags == 4 else jnp.zeros(lead, jnp.int32)
    )
    return classes, dead, saturated


def _count(mask: jax.Array, axes: tuple[int, ...], n: int) -> jax.Array:
    """How many entries are True; float32 sums (fast on XLA:CPU) where they are exact."""
    if n < 2**24:
        return mask.astype(jnp.float32).sum(axes).astype(jnp.int32)
    return mask.astype(jnp.int32).sum(axes)


def layer_stats(
    z: jax.Array,
    h: jax.Array,
    *,
    saturation: tuple,
    hist: tuple | None,
    cosine: bool = False,
    nonfinite: bool = True,
    same: bool = False,
) -> LayerStats:
    """The forward statistics of one layer, reduced over the last two axes (batch, width).

    Args:
      z, h: pre- and post-activations ``(..., batch, width)``.
      saturation: the activation's ``(lo, hi)`` thresholds, None where it has
        none; numbers or traced scalars (``±inf`` tests nothing).
      hist: ``(lo, hi, bins)`` of the histogram (``lo``, ``hi`` may be traced;
        ``bins`` is static), or None for no histogram
        (``hist_below`` and ``hist_above`` are then -1).
      cosine: also the mean cosine similarity between pairs of samples.
      nonfinite: count the non-finite entries (False: 0, for a caller that counts
        many layers at once).
      same: ``z`` and ``h`` are one tensor (a model's captured output): its moments
        are computed once, and with ``hist`` its non-finite entries are counted once,
        exactly, from the histogram's own classes (NaN, ``-inf``, ``+inf``), with no
        branch: a branch that reads every captured output keeps them all alive to the
        end of a model's pass (10% of the any-model benchmark's Transformer).

    Returns:
      A :class:`LayerStats` with fields of shape ``z.shape[:-2]`` (``hist``
      adds a bin axis), without the backward fields.
    """
    axes = (h.ndim - 2, h.ndim - 1)
    n = h.shape[-2] * h.shape[-1]
    sum_h = h.sum(axes)
    post_mean = sum_h / n
    post_var = jnp.square(h - post_mean[..., None, None]).mean(axes)
    if same:
        sum_z, pre_mean, pre_var = sum_h, post_mean, post_var
    else:
        sum_z = z.sum(axes)
        pre_mean = sum_z / n
        pre_var = jnp.square(z - pre_mean[..., None, None]).mean(axes)
    from_hist = same and hist is not None and nonfinite

    def exact(z, h):
        count = _count(~jnp.isfinite(h), axes, n)
        return count if same else _count(~jnp.isfinite(z), axes, n) + count

    counts_nonfinite = nonfinite and not from_hist
    nonfinite = jnp.zeros(sum_h.shape, jnp.int32)
    if counts_nonfinite:  # a non-finite entry makes its sum non-finite: count only then
        clean = jnp.isfinite(sum_z).all() & jnp.isfinite(sum_h).all()
        nonfinite = jax.lax.cond(clean, lambda z, h: nonfinite, exact, z, h)
    if hist is None:
        counts = None
        below = above = jnp.full(sum_h.shape, -1, jnp.int32)
        mask = saturation_mask(h, saturation)
        if mask is None:
            saturated = jnp.zeros(sum_h.shape, jnp.float32)
        else:
            saturated = _count(mask, axes, n) / n
        dead = _count(h == 0, axes, n) / n
    else:
        classes, dead, saturated = histogram(h, *hist, saturation=saturation, infinities=from_hist)
        dead, saturated = dead / n, saturated / n
        bins = hist[2]
        counts, below, above = classes[..., 1 : bins + 1], classes[..., 0], classes[..., bins + 1]
        if from_hist:  # [..., NaN, -inf, +inf]: the infinities are below and above too
            below, above = below + classes[..., bins + 3], above + classes[..., bins + 4]
            nonfinite = classes[..., bins + 2 :].sum(-1)
    cos = _mean_cosine(h) if cosine else None
    moments = (pre_mean, pre_var, post_mean, post_var)
    return LayerStats(*moments, saturated, dead, nonfinite, below, above, counts, cosine=cos)


def _mean_cosine(h: jax.Array) -> jax.Array:
    r"""Mean cosine between distinct samples: :math:`(\|\sum_i u_i\|^2 - \sum_i \|u_i\|^2) / (B(B-1))`
    with :math:`u_i = h_i / \|h_i\|` (0 for a zero row)."""
    norms = jnp.sqrt(jnp.square(h).sum(-1, keepdims=True))
    u = jnp.where(norms > 0, h / jnp.where(norms > 0, norms, 1), 0)
    s = u.sum(-2)
    b = h.shape[-2]
    return (jnp.square(s).sum(-1) - jnp.square(u).sum((-2, -1))) / (b * (b - 1))
