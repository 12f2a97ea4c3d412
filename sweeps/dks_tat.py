"""DKS and TAT: deep vanilla networks, their activations transformed, trained on MNIST.

Deep Kernel Shaping (Martens et al. 2021, https://arxiv.org/abs/2110.01765) and Tailored
Activation Transformations (Zhang et al. 2022, https://openreview.net/forum?id=U0k7XNTiFEq)
replace a deep network's activation φ by γ (φ(α x + β) + δ), solved (``ji.theory.transform``)
so that the whole network's C map stays well behaved at depth: DKS caps its slope at 1 at ζ
= 1.5, TAT its curvature at τ = 0.3 (smooth φ) or its C_f(0) at η = 0.9 (leaky ReLU). The
papers' claim: a vanilla network so transformed trains where the plain one does not, close
to a ResNet of the same depth.

Here: MLPs of ``--depth`` hidden layers of ``--width`` units, no skips, no normalization,
zero biases, weights of variance 1/fan_in (``lecun_normal``, Gaussian, and ``orthogonal``,
the papers' choice), five activations: tanh, DKS tanh, TAT tanh, leaky ReLU (slope 0.01) and
TAT leaky ReLU; Adam at three learning rates (the best per network kind is reported),
mini-batches of 128, ``--steps`` steps on MNIST, inputs scaled to mean square 1 per image
(the transforms assume q = 1 inputs, as DKS's data preprocessing gives). Every
(init, rate, seed) of an activation trains at once, one program per activation. Beside the
training curves, theory's C map of each whole network (``ji.theory.c_map`` composed over the
layers at the propagated variances): what the transform changed.

Beside them, the papers' baseline: a ResNet of the same depth (the zoo's
``ji.models.ResNet``: an input layer, ``depth / 2`` pre-LN blocks ``x + fc_out(relu(fc_in(
LN(x))))`` of two layers each, a linear head; trained through ``TrainGrid(model=...)``
at the same inits, rates, seeds and steps). The papers' ResNets use batch norm, this one
LayerNorm (train() trains models whose state is all parameters). Not here: their K-FAC
optimizer.

    python -m sweeps.dks_tat --out out/dks_tat [--quick] [--seeds 2] [--depth 50]
                             [--width 64] [--steps 600] [--data-dir DIR]

Writes ``summary.json`` (final test accuracy and training loss by init, activation and rate,
the best rate per init and activation, each network's C_f(0) and C'_f(1) from theory),
``dks_tat.png`` and ``report.html``; the runs are checkpointed under ``train/`` and
``train_resnet/`` (a rerun resumes).
"""

from __future__ import annotations

import functools
import sys
import time

import numpy as np
from matplotlib.figure import Figure

import jaxinit as ji
from sweeps import _common

INITS = ("lecun_normal", "orthogonal")
SMOOTH = 20  # steps in the moving mean of the plotted training loss (a mini-batch's is noisy)
TEST_IMAGES = 2000
SIZES = {  # (depth, width, steps, rates, η)
    "full": (50, 64, 600, (1e-4, 3e-4, 1e-3), 0.9),
    # TAT's η = 0.9 needs ~12 leaky ReLU layers: the smoke test asks for less
    "quick": (4, 16, 10, (1e-3,), 0.5),
}


def activations(depth: int, eta: float) -> dict[str, object]:
    """The five activations, by the label the figure and tables give them."""
    return {
        "tanh": ji.activations.get("tanh"),
        "DKS tanh": ji.theory.transform("tanh", depth=depth, method="dks"),
        "TAT tanh": ji.theory.transform("tanh", depth=depth, method="tat"),
        "leaky_relu": ji.activations.get("leaky_relu"),
        "TAT leaky_relu": ji.theory.transform("leaky_relu", depth=depth, method="tat", eta=eta),
    }


def network_c_map(act, depth: int, c: np.ndarray) -> np.ndarray:
    """C_f(c): the correlation after ``depth`` layers of inputs of mean square 1 and
    correlation c, σ_w² = 1, σ_b² = 0 (the c-map composed at each layer's variance q_l)."""
    q = np.asarray(ji.theory.propagate(act, 1.0, depth, sigma_w2=1.0, sigma_b2=0.0).pre_var)
    for q_l in q:
        if not q_l > 1e-30:  # the signal has vanished: no correlation left to map
            return np.full_like(c, np.nan)
        c = np.asarray(ji.theory.c_map(act, c, q=float(q_l), sigma_w2=1.0, sigma_b2=0.0))
        c = np.clip(c, -1.0, 1.0)  # float32 rounding may step past ±1
    return c


def network_c_slope(act, depth: int) -> float:
    """C'_f(1) = Π_l χ₁(q_l) q_l / q_{l+1}: each layer's c-map slope at c = 1 (σ_w² = 1, σ_b²
    = 0; q_{l+1} = E[φ(z_l)²]), exact where a difference quotient is not (a leaky ReLU's
    c-map has a √(1 - c) term at 1)."""
    m = ji.theory.propagate(act, 1.0, depth, sigma_w2=1.0, sigma_b2=0.0)
    q, q_next = np.asarray(m.pre_var, np.float64), np.asarray(m.post_second, np.float64)
    chi = np.asarray(ji.theory.chi1(act, q=q, sigma_w2=1.0), np.float64)
    return float(np.prod(chi * q / q_next))


def normalized(x: np.ndarray) -> np.ndarray:
    """Each row scaled to mean square 1."""
    x = np.asarray(x, np.float32)
    return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True))


def resnet(depth: int, width: int) -> functools.partial:
    """The baseline's factory: ``depth // 2`` pre-LN residual blocks of two layers (relu)."""
    return functools.partial(
        ji.models.ResNet, d_in=784, width=width, depth=max(1, depth // 2), classes=10
    )


def best_of(res: ji.TrainResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seed-mean loss ``(init, [activation,] rate, step)``, final test accuracy and final
    loss (the last 10 steps' mean; inf where it diverged) ``(init, [activation,] rate)``."""
    seed = res.dims.index("seed")
    loss = np.asarray(res.loss).mean(axis=seed)
    acc = np.asarray(res.test_accuracy)[..., -1].mean(axis=seed)
    final = loss[..., -10:].mean(-1)
    return loss, acc, np.where(np.isfinite(final), final, np.inf)


def figure(labels, c, c_maps, steps, loss, best, resnet_curves=None) -> Figure:
    """Left: theory's C_f(c) per activation; right: the training loss at each one's best
    rate (seed mean, a moving mean over SMOOTH steps; solid orthogonal, dashed lecun_normal),
    and the ResNet's in black (``resnet_curves``: its loss ``(init, step)`` at its best rate)."""
    window = min(SMOOTH, loss.shape[-1])
    kernel = np.ones(window) / window
    steps = steps[window - 1 :]
    fig = ji.report.NotebookFigure(figsize=(7.5, 3.1), layout="constrained")
    ax_c, ax_l = fig.subplots(1, 2)
    for i, label in enumerate(labels):
        colour = ji.report.PALETTE[i % len(ji.report.PALETTE)]
        ax_c.plot(c, c_maps[i], color=colour, label=label)
        for j, style in ((1, "-"), (0, "--")):
            k = best[j][i]
            curve = np.convolve(loss[j, i, k], kernel, mode="valid")
            ax_l.plot(steps, curve, style, color=colour, label=label if j else None)
    if resnet_curves is not None:
        for j, style in ((1, "-"), (0, "--")):
            curve = np.convolve(resnet_curves[j], kernel, mode="valid")
            ax_l.plot(steps, curve, style, color="0.1", label="ResNet (relu)" if j else None)
    ax_c.plot(c, c, ":", color="0.5", lw=0.8, label="identity")
    ax_c.set(xlabel="input correlation c", ylabel="C_f(c)", title="theory: the network's C map")
    ax_c.set_xlim(-1, 1)
    ax_c.legend(fontsize=7, frameon=False)
    ax_l.set(xlabel="step", ylabel=f"training loss ({window}-step mean)", yscale="log",
             title="Adam, best rate: solid orthogonal, dashed LeCun")  # fmt: skip
    ax_l.title.set_fontsize(9)
    ax_l.legend(fontsize=7, frameon=False)
    return fig


def main(argv: list[str] | None = None) -> dict:
    p = _common.parser(__doc__, seeds=2)
    p.add_argument("--depth", type=int, default=None, help="hidden layers (50; quick 4)")
    p.add_argument("--width", type=int, default=None, help="hidden units (64; quick 16)")
    p.add_argument("--steps", type=int, default=None, help="Adam steps (600; quick 10)")
    p.add_argument("--data-dir", default=None, help="MNIST directory (default $JAXINIT_DATA)")
    args = _common.parse(p, argv)
    depth, width, steps, rates, eta = SIZES["quick" if args.quick else "full"]
    depth = depth if args.depth is None else args.depth
    width = width if args.width is None else args.width
    steps = steps if args.steps is None else args.steps
    for name, value in (("--depth", depth), ("--width", width), ("--steps", steps)):
        if value < 1:
            p.error(f"{name} must be a positive integer; got {value}")
    acts = activations(depth, eta)
    labels = list(acts)
    x, y = ji.data.load_mnist("train", data_dir=args.data_dir)
    x_test, y_test = ji.data.load_mnist("test", data_dir=args.data_dir)
    x_test, y_test = x_test[:TEST_IMAGES], y_test[:TEST_IMAGES]
    if args.quick:
        x, y, x_test, y_test = x[:1024], y[:1024], x_test[:256], y_test[:256]
    grid = ji.TrainGrid(
        inits=list(INITS),
        activations=list(acts.values()),
        learning_rate=list(rates),
        optimizer="adam",
        seeds=args.seeds,
        hidden=(width,) * depth,
        steps=steps,
        batch_size=128,
        eval_every=steps,
        record_stats_at=(),
    )
    if (args.out / "train").exists():
        print(
            f"resuming from {args.out / 'train'}: steps already taken are read back, so the "
            "time below is not the whole run's",
            file=sys.stderr,
        )
    start = time.perf_counter()
    res = ji.train(
        grid,
        (normalized(x), y),
        (normalized(x_test), y_test),
        out=args.out / "train",
        dataset=f"MNIST train (evaluated on the first {len(x_test)} test images), each image "
        "scaled to mean square 1",
    )
    seconds = time.perf_counter() - start
    res_net = ji.train(
        ji.TrainGrid(
            model=resnet(depth, width),
            inits=list(INITS),
            learning_rate=list(rates),
            optimizer="adam",
            seeds=args.seeds,
            steps=steps,
            batch_size=128,
            eval_every=steps,
        ),
        (normalized(x).reshape(len(x), -1), y),
        (normalized(x_test).reshape(len(x_test), -1), y_test),
        out=args.out / "train_resnet",
        dataset="as the vanilla networks'",
    )
    seconds_resnet = time.perf_counter() - start - seconds
    loss, acc, final = best_of(res)  # (init, activation, rate[, step]), seed mean
    best = final.argmin(-1)  # (init, activation): the rate with the lowest final loss
    r_loss, r_acc, r_final = best_of(res_net)  # (init, rate[, step])
    r_best = r_final.argmin(-1)  # (init,)
    c = np.linspace(-1.0, 1.0, 81)
    c_maps = np.stack([network_c_map(a, depth, c) for a in acts.values()])
    c_f0 = [float(m[40]) for m in c_maps]
    slope_1 = [network_c_slope(a, depth) for a in acts.values()]
    summary = _common.write_summary(
        args.out,
        {
            "depth": depth,
            "width": width,
            "steps": steps,
            "seeds": args.seeds,
            "inits": list(INITS),
            "activations": labels,
            "specs": [a.spec for a in acts.values()],
            "learning_rates": list(rates),
            "test_accuracy": acc.tolist(),  # [init][activation][rate], seed mean
            "final_loss": np.where(np.isfinite(final), final, np.nan).tolist(),
            "best_rate": [[rates[k] for k in row] for row in best],
            "best_test_accuracy": [
                [float(acc[j, i, best[j, i]]) for i in range(len(labels))]
                for j in range(len(INITS))
            ],
            "theory_c_f_0": c_f0,  # C_f(0): DKS 0, TAT leaky ReLU η
            "theory_c_f_slope_1": slope_1,  # C'_f(1): DKS ζ = 1.5, TAT 1
            "seconds": seconds,
            "resnet": {  # the baseline: depth // 2 pre-LN blocks of two layers, relu
                "blocks": max(1, depth // 2),
                "test_accuracy": r_acc.tolist(),  # [init][rate], seed mean
                "final_loss": np.where(np.isfinite(r_final), r_final, np.nan).tolist(),
                "best_rate": [rates[k] for k in r_best],
                "best_test_accuracy": [float(r_acc[j, r_best[j]]) for j in range(len(INITS))],
                "seconds": seconds_resnet,
            },
        },
    )
    steps_axis = np.arange(1, loss.shape[-1] + 1)
    r_curves = np.stack([r_loss[j, r_best[j]] for j in range(len(INITS))])
    fig = figure(labels, c, c_maps, steps_axis, loss, best, r_curves)
    (png,) = ji.report.save(fig, args.out / "dks_tat")
    rows = [
        [label, *(f"{acc[j, i, best[j, i]]:.3f} ({rates[best[j, i]]:g})" for j in range(2)),
         f"{c_f0[i]:.3f}", f"{slope_1[i]:.3g}"]
        for i, label in enumerate(labels)
    ]  # fmt: skip
    rows.append(
        [f"ResNet, {max(1, depth // 2)} pre-LN blocks (relu)",
         *(f"{r_acc[j, r_best[j]]:.3f} ({rates[r_best[j]]:g})" for j in range(2)), "", ""]
    )  # fmt: skip
    table = ji.report.render(
        ["activation", *(f"{init}: test accuracy (rate)" for init in INITS), "C_f(0)", "C'_f(1)"],
        rows,
        fmt="html",
    )
    ji.report.write_report(
        args.out,
        title="DKS and TAT: deep vanilla networks on MNIST",
        attrs=res.attrs,
        sections=[
            ji.report.Section(
                title=f"{depth} layers of {width}, {steps} Adam steps, {args.seeds} seeds",
                figures=[
                    (
                        "Left: the network's C map from theory (σ_w² = 1, σ_b² = 0, inputs of "
                        "mean square 1). Right: training loss at each network kind's best rate "
                        "(lowest final loss), seed mean; black: the ResNet of the same depth.",
                        png,
                    )
                ],
                tables=[("Final test accuracy at the best rate, seed mean", table)],
            )
        ],
    )
    for i, label in enumerate(labels):
        print(
            f"{label:15s} " + "  ".join(
                f"{init}: {acc[j, i, best[j, i]]:.3f} (rate {rates[best[j, i]]:g})"
                for j, init in enumerate(INITS)
            ) + f"  C_f(0) = {c_f0[i]:.3f}"
        )  # fmt: skip
    print(
        f"{'ResNet':15s} " + "  ".join(
            f"{init}: {r_acc[j, r_best[j]]:.3f} (rate {rates[r_best[j]]:g})"
            for j, init in enumerate(INITS)
        )
    )  # fmt: skip
    print(
        f"{acc.size * args.seeds} networks in {seconds:.0f} s; the ResNets in {seconds_resnet:.0f} s"
    )
    return summary


if __name__ == "__main__":
    main()
