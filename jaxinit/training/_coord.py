r"""The coord check: how the size of each layer's activations grows with width.

mup's diagnostic (Yang et al. 2022, §4 and Fig. 5; microsoft/mup's
``get_coord_data``): train models of several widths a few steps and record, at
each step :math:`t`, the size :math:`\overline{|h|} = \tfrac{1}{B n}\sum_{b,i}
|h_{b,i}|` of every layer's activations (``post_abs_mean`` per hidden layer,
``logit_abs_mean`` for the output). Under μP every size stays
:math:`\Theta(1)` as width :math:`n` grows; under the standard
parametrization the updates grow with width and the output blows up. The slope
of :math:`\log \overline{|h|}` against :math:`\log n` summarizes a line: 0 is
width-independent, 1 is :math:`\propto n`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "FINAL_LOSS",
    "best_learning_rates",
    "coord_sizes",
    "coord_slopes",
    "final_loss",
    "final_losses",
]

# the one definition of a run's final loss, and its name in every table (CLI, report.html)
FINAL_LOSS = "final loss (mean of the last tenth of steps)"

OUTPUT = "output"  # the coord check's name of the logits' line; hidden layers are layer_1 …


def _layer_names(n_hidden: int) -> list[str]:
    return [*(f"layer_{l}" for l in range(1, n_hidden + 1)), OUTPUT]


def coord_sizes(result: Any) -> dict[str, np.ndarray]:
    """Each layer's mean |h| ``(width, stat_step)``, averaged over every other dim
    (inits, learning rates, activations, seeds), from a :class:`TrainResult` with a
    ``width`` dim and ``record_stats_at``. Keys: ``layer_1`` … and ``output``."""
    if "width" not in result.dims or "post_abs_mean" not in result.fields:
        raise ValueError(
            "coord_sizes needs a TrainResult with a width dim (TrainGrid(width=[...])) "
            f"and record_stats_at; got dims {list(result.dims)} and fields "
            f"{sorted(result.fields)}"
        )
    w, rest = result.dims.index("width"), tuple(range(1, len(result.dims)))
    post = np.moveaxis(result.fields["post_abs_mean"], w, 0).mean(axis=rest)  # (width, step, layer)
    logits = np.moveaxis(result.fields["logit_abs_mean"], w, 0).mean(axis=rest)
    names = result.attrs.get("layers") or _layer_names(post.shape[-1])[:-1]
    out = {name: post[:, :, l] for l, name in enumerate(names)}
    out[OUTPUT] = logits
    return out


def coord_slopes(result: Any, *, stat_step: int = -1) -> dict[str, float]:
    """The least-squares slope of log(mean |h|) against log(width), per layer, at the
    ``stat_step``-th recorded step (the last by default): ``{"layer_1": s, …, "output": s}``.
    A non-finite or zero size (a diverged model) makes its layer's slope NaN."""
    sizes = coord_sizes(result)
    widths = np.log(np.asarray(result.coords["width"], np.float64))
    if len(widths) < 2:
        raise ValueError(
            f"coord_slopes needs at least two widths; got {list(result.coords['width'])}"
        )
    out = {}
    for name, size in sizes.items():
        s = size[:, stat_step].astype(np.float64)
        ok = np.all(np.isfinite(s) & (s > 0))
        out[name] = float(np.polyfit(widths, np.log(s), 1)[0]) if ok else float("nan")
    return out


def final_loss(loss: np.ndarray) -> np.ndarray:
    """Each model's final loss (:data:`FINAL_LOSS`): its mean over the last tenth of the steps
    (at least the last step), in float64, over the last axis of ``loss`` (steps). One
    mini-batch's loss is noisy; the tenth is what ``jaxinit train`` prints and report.html
    tabulates."""
    loss = np.asarray(loss)
    tail = max(1, loss.shape[-1] // 10)
    return loss[..., -tail:].astype(np.float64).mean(-1)


def final_losses(result: Any, *, last: int = 10) -> np.ndarray:
    """Learning-rate transfer's measure: the training loss after the run, ``(width,
    learning_rate)``: each model's mean over its ``last`` mini-batches, averaged over every
    other dim. A model that diverged (a non-finite loss) makes its cell ``inf``."""
    for dim in ("width", "learning_rate"):
        if dim not in result.dims:
            raise ValueError(
                f"final_losses needs a TrainResult with width and learning_rate dims; "
                f"got dims {list(result.dims)}"
            )
    if (
        not isinstance(last, int)
        or isinstance(last, bool)
        or not 1 <= last <= result.loss.shape[-1]
    ):
        raise ValueError(
            f"final_losses: last must be an int in [1, {result.loss.shape[-1]}] (the steps run); got {last!r}"
        )
    loss = result.loss[..., -last:].astype(np.float64).mean(-1)
    loss = np.where(np.isfinite(loss), loss, np.inf)
    w, l = result.dims.index("width"), result.dims.index("learning_rate")
    loss = np.moveaxis(loss, (w, l), (0, 1))
    return loss.mean(axis=tuple(range(2, loss.ndim)))


def best_learning_rates(result: Any, *, last: int = 10) -> dict[int, float]:
    """The learning rate of the lowest :func:`final_losses` at each width."""
    loss = final_losses(result, last=last)
    lrs = result.coords["learning_rate"]
    return {
        int(w): float(lrs[int(np.argmin(row))])
        for w, row in zip(result.coords["width"], loss, strict=True)
    }
