r"""The seed experiments' variance-by-depth, for the zoo's ResNet and CNN (ModelGrid sweeps).

**(a) ResNet.** A pre-LayerNorm residual MLP (``ji.models.ResNet``: an input layer,
then blocks ``x + α·fc_out(relu(fc_in(LN(x))))``) under He, three ways: α = 1,
α = 1/√L (Hayou et al. 2021, *Stable ResNet*) and a zero-initialized last layer of
each branch (SkipInit, De & Smith 2020; Fixup, Zhang et al. 2019; kept by
``rule=ji.models.kernels(exclude=ji.models.RESIDUAL_KEEP_ZERO)``). The branch sees
a unit-variance LN output, so under He it adds ``2α²`` to the residual stream's
variance whatever the stream holds: ``Var(x_ℓ) = 2(1 + α²ℓ)`` in expectation on a
unit Gaussian input (the input layer gives 2). With α = 1 it grows linearly in
depth; α = 1/√L ends at 4 at every depth; a zero branch stays at the input
layer's 2. α = 1 and the zero branch do not depend on L, so block ℓ of the
deepest network *is* a depth-ℓ network: one sweep at the largest depth gives
their output at every depth. α = 1/√L is one sweep per depth.

**(b) CNN.** ``ji.models.CNN`` (3×3 convolutions, ReLU, circular padding as in
Xiao et al. 2018, global average pooling, no head) at depth 200 under He and
delta-orthogonal with gain √2 (ReLU's critical scale; at gain 1 the variance
halves every layer), few channels, a small image. Both keep the *expected*
variance of each layer's output at 2 (the weights' sign symmetry makes every layer
map preserve it); at 32 channels each seed's variance does a random walk in log
around a falling median, so the seeds spread over decades with depth and the seed
mean is carried by a few seeds. Measured: the spread grows alike under both, the
median falls faster under He. The pooled output is the spatially uniform mode.
(With zero, "SAME", padding He also loses variance at the image border, a factor
≈ (1 + 2 cos(π/(n+1)))²/9 a layer on an n×n image: 0.92 at 8×8.)

**(c) CNN: the image's spatial modes** (Xiao et al. 2018, §2.4). The same CNN on
32×32 images whose variance is 1.1 on a central square and 0.1 around it
(3 channels in). Each convolution spreads a position's variance over the filter's
offsets: under He evenly, so spatial Fourier mode k of the per-position variance is
multiplied by λ_k = |Σ_d e^{2πi k·d/32}|/9 a layer (``ji.theory.filter_spectrum``;
exact for ReLU, whose variance map is linear) and a deep network sees only the
image's mean; under delta-orthogonal all at the centre, λ_k = 1: every position is an
MLP of its own and the image's structure survives any depth.
``ji.theory.conv_variance`` predicts every position's variance layer by layer; the
networks are the sweep's (``ModelGrid.build``), each seed's per-position variance (the
mean square over channels, averaged over the images) normalized by its spatial mean,
the modes (``ji.theory.spatial_modes``) of its mean over seeds. Finite width leaves a
floor: each seed's per-position speckle, which grows with depth, averaged over the seeds.

    python -m sweeps.model_depth --out out/model_depth [--seeds 64] [--quick]

Writes ``resnet_depth.png`` (left: the residual stream's variance block by block at
the largest depth, ``ji.report.layer_profile``; right: the output's variance against
depth with ``2(1 + α²L)`` dashed), ``cnn_depth.png`` (left: each convolution's output
variance by layer, seed mean, median dashed and 10–90% band; right: the seeds' spread,
the standard deviation of log10 of that variance), ``cnn_modes.png`` (left: modes
k = 1, 3, 5 down the image by layer, measured and predicted; right: the per-position
variance at three depths), ``summary.json`` (the tables' numbers),
``report.html``, and one checkpointed sweep per model under ``sweeps/`` (a rerun
resumes). It prints both tables.
"""

from __future__ import annotations

import functools
import math
import time

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

import jaxinit as ji
from jaxinit.report import tables
from jaxinit.report.figures import line_style, styled
from sweeps import _common

HE = "he_normal"
DELTA = "delta_orthogonal(scale=1.4142135623730951)"  # gain √2: ReLU's critical scale
NAMES = {DELTA: "delta-orthogonal (gain √2)", HE: "He"}
VARIANTS = {  # label -> (ResNet keywords, keeps its zero fc_out)
    "α = 1": ({"alpha": 1.0}, False),
    "α = 1/√L": ({"alpha": "1/sqrt(depth)"}, False),
    "zero branch": ({"zero_branch": True}, True),
}
BAND = (0.1, 0.9)  # the seed quantiles shaded and tabulated
MODES = (1, 3, 5)  # (c): the spatial modes followed, k periods down the image (the square's)
MODE_SEEDS = 16  # (c): at most this many seeds (each network is built and run on its own)
INPUT_LAYER_VAR = 2.0  # He on unit Gaussian inputs: Var of the input layer's output


def shapes(quick: bool) -> dict:
    """Every size of the run: the ResNet's depths and width, the CNN's depth and image."""
    if quick:
        return {
            "resnet_depths": (1, 2),
            "width": 16,
            "batch": 16,
            "cnn_depth": 2,
            "channels": 8,
            "image": 4,
            "cnn_batch": 2,
            "cnn_layers": (1, 2),
            "modes_depth": 3,
            "modes_image": 8,
            "modes_channels": 8,
            "modes_batch": 2,
        }
    return {
        "resnet_depths": (4, 8, 16, 32),
        "width": 64,
        "batch": 64,
        "cnn_depth": 200,
        "channels": 32,
        "image": 8,
        "cnn_batch": 4,
        "cnn_layers": (50, 100, 200),
        "modes_depth": 200,
        "modes_image": 32,
        "modes_channels": 32,
        "modes_batch": 4,
    }


def residual_stream(path: str, module) -> bool:
    """The layers a ResNet sweep records: the input layer and each block's output."""
    return path == "inp" or type(module).__name__ == "ResidualBlock"


def resnet_grid(variant: str, depth: int, s: dict, seeds: int) -> ji.ModelGrid:
    kw, keep_zero = VARIANTS[variant]
    make = functools.partial(ji.models.ResNet, d_in=s["width"], width=s["width"], depth=depth, **kw)
    return ji.ModelGrid(
        model=make,
        inits=[HE],
        rule=ji.models.kernels(exclude=ji.models.RESIDUAL_KEEP_ZERO) if keep_zero else None,
        capture=residual_stream,
        seeds=seeds,
        inputs="gaussian",
        input_shape=(s["batch"], s["width"]),
        gradients=False,
    )


def cnn_grid(s: dict, seeds: int) -> ji.ModelGrid:
    make = functools.partial(
        ji.models.CNN,
        in_channels=s["channels"],
        channels=s["channels"],
        depth=s["cnn_depth"],
        classes=None,
        padding="CIRCULAR",
    )
    shape = (s["cnn_batch"], s["image"], s["image"], s["channels"])
    return ji.ModelGrid(
        model=make,
        inits=[HE, DELTA],
        seeds=seeds,
        inputs="gaussian",
        input_shape=shape,
        gradients=False,
    )


def theory(variant: str, depth: float) -> float:
    """``E Var(x_L) = 2(1 + α²L)`` of the pre-LN ResNet under He on unit Gaussian inputs."""
    alpha2 = {"α = 1": 1.0, "α = 1/√L": 1.0 / depth, "zero branch": 0.0}[variant]
    return INPUT_LAYER_VAR * (1.0 + alpha2 * depth)


def seed_stats(v: np.ndarray) -> dict:
    """Mean, median, the BAND quantiles and the std of log10 of per-seed values."""
    v = np.asarray(v, np.float64)
    lo, hi = np.quantile(v, BAND)
    with np.errstate(divide="ignore"):
        spread = float(np.std(np.log10(v))) if (v > 0).all() else math.nan
    return {
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        f"q{round(100 * BAND[0])}": float(lo),
        f"q{round(100 * BAND[1])}": float(hi),
        "sd_log10": spread,
    }


def run_resnets(out, s: dict, seeds: int) -> tuple[dict, dict, float]:
    """Every ResNet sweep: {(variant, depth): result}, the output variance by depth, seconds."""
    deepest = max(s["resnet_depths"])
    runs, start = {}, time.perf_counter()
    for variant in VARIANTS:
        depths = s["resnet_depths"] if variant == "α = 1/√L" else (deepest,)
        for depth in depths:
            name = f"resnet-{list(VARIANTS).index(variant)}-L{depth}"
            runs[variant, depth], _ = _common.run(resnet_grid(variant, depth, s, seeds), out, name)
    by_depth = {}
    for variant in VARIANTS:
        by_depth[variant] = {}
        for depth in s["resnet_depths"]:
            if variant == "α = 1/√L":
                net, block = depth, depth - 1
            else:  # block ℓ of the deepest network is a depth-(ℓ+1) network
                net, block = deepest, depth - 1
            res = runs[variant, net]
            col = res.attrs["layers"].index(f"blocks/{block}")
            row = seed_stats(res.sel(init=HE).pre_var[:, col])
            # theory.predict's residual mean field, in the sweep's layout (its closed form
            # here is theory(), drawn as the curve)
            predicted = ji.theory.predict(resnet_grid(variant, net, s, 1))
            row["theory"] = float(predicted.sel(init=HE).pre_var[0, col])
            by_depth[variant][depth] = row
    return runs, by_depth, time.perf_counter() - start


@styled
def plot_resnet(runs: dict, by_depth: dict, s: dict) -> Figure:
    deepest = max(s["resnet_depths"])
    fig = Figure(figsize=(7.0, 3.3), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.7, 1))
    ji.report.layer_profile(
        {v: runs[v, deepest] for v in VARIANTS},
        field="pre_var",
        band=BAND,
        yscale="linear",  # linear growth reads as a straight line
        ax=left,
        legend=False,
        title=f"residual stream by block, depth L = {deepest}",
    )
    left.set_ylabel(r"$\mathrm{Var}(x_\ell)$ (block output)")
    depths = np.array(s["resnet_depths"], float)
    fine = np.geomspace(depths[0], depths[-1], 50)
    for k, variant in enumerate(VARIANTS):
        rows = [by_depth[variant][int(d)] for d in depths]
        mean = np.array([r["mean"] for r in rows])
        lo, hi = (np.array([r[q] for r in rows]) for q in ("q10", "q90"))
        style = line_style(k)
        right.errorbar(
            depths,
            mean,
            yerr=[mean - lo, hi - mean],
            color=style["color"],
            marker=style["marker"],
            linestyle="none",
            capsize=2,
            markersize=4,
        )
        right.plot(
            fine,
            [theory(variant, d) for d in fine],
            color=style["color"],
            linestyle="--",
            linewidth=1.0,
        )
    right.set_xscale("log", base=2)
    right.set_yscale("log")
    right.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    right.yaxis.set_minor_formatter(NullFormatter())
    right.set_xticks(depths, labels=[str(int(d)) for d in depths])
    right.set_xlabel("depth L (blocks)")
    right.set_ylabel(r"$\mathrm{Var}(x_L)$ (network output)")
    right.set_title("output by depth")
    right.grid(True, which="major", linewidth=0.3, alpha=0.5)
    handles = [Line2D([], [], **line_style(k), label=v) for k, v in enumerate(VARIANTS)]
    handles += [
        Patch(facecolor="0.5", alpha=0.3, linewidth=0, label="seed mean; 10–90% of seeds"),
        Line2D([], [], color="0.3", linestyle="--", label=r"$2(1 + \alpha^2 L)$"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7, frameon=False)
    return fig


def cnn_rows(res: ji.SweepResult, s: dict) -> dict:
    """Per init: the seed statistics of the conv outputs at ``cnn_layers``, and of the pooled
    output (the spatially uniform mode)."""
    layers = res.attrs["layers"]
    out = {}
    for init in res.coords["init"]:
        v = res.sel(init=init).pre_var
        row = {
            f"conv {l}": seed_stats(v[:, layers.index(f"convs/{l - 1}")]) for l in s["cnn_layers"]
        }
        row["pooled output"] = seed_stats(v[:, -1])
        out[NAMES[init]] = row
    return out


@styled
def plot_cnn(res: ji.SweepResult, s: dict) -> Figure:
    fig = Figure(figsize=(7.0, 3.3), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=(1.7, 1))
    ji.report.layer_profile(
        res,
        layers="Conv",
        band=BAND,
        ax=left,
        legend=False,
        names=NAMES,
        title=f"each convolution's output: {s['channels']} channels, {s['image']}×{s['image']}, circular",
    )
    left.axhline(2.0, color="0.3", linewidth=0.8, linestyle=":")
    left.set_ylabel(r"$\mathrm{Var}(z_\ell)$ (conv output)")
    convs = [i for i, t in enumerate(res.attrs["layer_types"]) if t == "Conv"]
    x = np.arange(len(convs))
    for k, init in enumerate(res.coords["init"]):
        v = np.asarray(res.sel(init=init).pre_var, np.float64)[:, convs]
        color = line_style(k)["color"]
        left.plot(x, np.median(v, axis=0), color=color, linewidth=0.9, linestyle="--")
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.nanstd(np.log10(np.where(v > 0, v, np.nan)), axis=0)
        right.plot(x, spread, **line_style(k) | {"markevery": 0.1})
    right.set_xlabel(f"convs/ℓ (of {len(convs)})")
    right.xaxis.set_major_locator(MaxNLocator(5, integer=True))
    right.set_ylabel(r"seed std of $\log_{10}\mathrm{Var}(z_\ell)$")
    right.set_title("spread over seeds")
    right.grid(True, linewidth=0.3, alpha=0.5)
    handles = [
        Line2D([], [], **line_style(k), label=NAMES[i]) for k, i in enumerate(res.coords["init"])
    ]
    handles += [
        Patch(facecolor="0.5", alpha=0.3, linewidth=0, label="seed mean; 10–90% of seeds"),
        Line2D([], [], color="0.3", linewidth=0.9, linestyle="--", label="seed median"),
        Line2D([], [], color="0.3", linewidth=0.8, linestyle=":", label="expected value: 2"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize=7, frameon=False)
    return fig


def square_images(s: dict, seed: int = 0) -> np.ndarray:
    """(c)'s inputs: Gaussian images with variance 1.1 on the central square, 0.1 around."""
    n = s["modes_image"]
    profile = np.full((n, n), 0.1)
    profile[n // 4 : 3 * n // 4, n // 4 : 3 * n // 4] += 1.0
    z = np.random.default_rng(seed).standard_normal((s["modes_batch"], n, n, 3))
    return (z * np.sqrt(profile)[None, :, :, None]).astype(np.float32)


def modes_grid(s: dict, seeds: int, x: np.ndarray) -> ji.ModelGrid:
    """(c)'s networks: the zoo CNN from 3 channels, circular, He and delta-orthogonal."""
    make = functools.partial(
        ji.models.CNN,
        in_channels=3,
        channels=s["modes_channels"],
        depth=s["modes_depth"],
        classes=None,
        padding="CIRCULAR",
    )
    return ji.ModelGrid(model=make, inits=[HE, DELTA], seeds=seeds, inputs=x, gradients=False)


@functools.cache
def _profiles_program():
    import jax
    import jax.numpy as jnp

    def conv(h, k, b):  # nnx.Conv(padding="CIRCULAR"): wrap, then a VALID convolution
        ph, pw = (k.shape[0] - 1) // 2, (k.shape[1] - 1) // 2
        h = jnp.pad(
            h, ((0, 0), (ph, k.shape[0] - 1 - ph), (pw, k.shape[1] - 1 - pw), (0, 0)), "wrap"
        )
        dims = ("NHWC", "HWIO", "NHWC")
        z = jax.lax.conv_general_dilated(h, k, (1, 1), "VALID", dimension_numbers=dims)
        return z + b.reshape(1, 1, 1, -1)

    def run(k0, b0, ks, bs, x):
        def layer(h, kb):
            z = conv(h, *kb)
            return jax.nn.relu(z), jnp.mean(jnp.square(z), (0, 3))

        z0 = conv(x, k0, b0)
        h, rest = jax.lax.scan(layer, jax.nn.relu(z0), (ks, bs))
        return jnp.concatenate([jnp.mean(jnp.square(z0), (0, 3))[None], rest]), h.mean((1, 2))

    return jax.jit(run)


def conv_profiles(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A zoo CNN's per-position variance at every convolution, ``(depth, H, W)``: the mean
    square over channels and images; and its pooled output (the model's own, to check)."""
    ks = [np.asarray(c.kernel.get_value()) for c in model.convs]
    bs = [np.asarray(c.bias.get_value()) for c in model.convs]
    c = ks[0].shape[-1]
    empty = (np.zeros((0, *ks[0].shape[:2], c, c), ks[0].dtype), np.zeros((0, c), bs[0].dtype))
    stack = (np.stack(ks[1:]), np.stack(bs[1:])) if len(ks) > 1 else empty
    q, pooled = _profiles_program()(ks[0], bs[0], *stack, x)
    return np.asarray(q, np.float64), np.asarray(pooled)


def mode_amplitudes(profiles: np.ndarray) -> np.ndarray:
    """``(..., depth, H, W)`` per-position variances -> the relative amplitude of each of
    MODES, ``(..., depth, len(MODES))``: k periods down the image (axis H)."""
    return np.asarray(ji.theory.spatial_modes(profiles), np.float64)[..., list(MODES), 0]


def run_modes(s: dict, seeds: int) -> dict:
    """(c): measured (seed mean of each network's modes) and predicted modes per init, by
    layer, and each init's seed-mean normalized profile at every layer."""
    x = square_images(s)
    grid = modes_grid(s, min(seeds, MODE_SEEDS), x)
    start = time.perf_counter()
    out = {"seeds": len(grid.seeds)}
    c = s["modes_channels"]
    for init, (sigma_w2, spread) in {
        HE: (2.0, "uniform"),
        # an orthogonal 3 × C centre keeps each position's norm times the gain: 2·3/C, then 2
        DELTA: ([2.0 * 3 / c] + [2.0] * (s["modes_depth"] - 1), "delta"),
    }.items():
        profiles = []
        for seed in grid.seeds:
            q, _ = conv_profiles(grid.build(seed, init=init), x)
            profiles.append(q / q.mean((1, 2), keepdims=True))
        profiles = np.stack(profiles)  # (seed, depth, H, W), each layer's spatial mean 1
        theory = ji.theory.conv_variance(
            "relu", x, depth=s["modes_depth"], sigma_w2=sigma_w2, sigma_b2=0.0,
            padding="CIRCULAR", filter_variance=spread,
        )  # fmt: skip
        q_th = np.asarray(theory.q, np.float64).mean(0)  # the images' mean, (depth, H, W)
        out[NAMES[init]] = {
            # the modes of the seed-mean profile: each seed's own finite-width speckle
            # averages out (a mean of amplitudes would keep it as a floor)
            "measured": mode_amplitudes(profiles.mean(0)),  # (depth, mode)
            "theory": mode_amplitudes(q_th),
            "profile": profiles.mean(0),
            "theory_profile": q_th / q_th.mean((1, 2), keepdims=True),
        }
    out["seconds"] = time.perf_counter() - start
    return out


def modes_rows(modes: dict, s: dict) -> dict:
    """The table: per init and mode, measured and predicted amplitude at a few layers."""
    depth = s["modes_depth"]
    layers = sorted({1, max(1, depth // 4), max(1, depth // 2), depth})
    return {
        init: {
            f"k={k}": {
                f"conv {l}": {
                    "measured": float(modes[init]["measured"][l - 1, j]),
                    "theory": float(modes[init]["theory"][l - 1, j]),
                }
                for l in layers
            }
            for j, k in enumerate(MODES)
        }
        for init in NAMES.values()
    }


@styled
def plot_modes(modes: dict, s: dict) -> Figure:
    fig = Figure(figsize=(7.2, 3.4), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=(1.35, 1))
    ax = left.subplots()
    layer = np.arange(1, s["modes_depth"] + 1)
    for k, init in enumerate(NAMES.values()):
        style = line_style(k)
        for j, mode in enumerate(MODES):
            alpha = 1.0 - 0.28 * j
            ax.plot(layer, modes[init]["measured"][:, j], color=style["color"], alpha=alpha,
                    linewidth=1.2, marker=style["marker"], markevery=0.2, markersize=3.5)  # fmt: skip
            ax.plot(layer, modes[init]["theory"][:, j], color=style["color"], alpha=alpha,
                    linewidth=0.9, linestyle="--")  # fmt: skip
            ax.annotate(f"k={mode}", (layer[-1], modes[init]["measured"][-1, j]), fontsize=6,
                        color=style["color"], xytext=(2, 0), textcoords="offset points")  # fmt: skip
    ax.set_yscale("log")
    ax.set_ylim(1e-5, 1.5)
    ax.set_xlabel("convolution ℓ")
    ax.set_ylabel(r"$|\hat q_k| / \hat q_0$ (mode $k$ down the image)")
    ax.set_title(f"spatial modes of Var(z_ℓ): {s['modes_channels']} channels, circular")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    handles = [Line2D([], [], **line_style(k), label=n) for k, n in enumerate(NAMES.values())]
    handles += [
        Line2D([], [], color="0.3", linewidth=1.2, label="measured (seed mean)"),
        Line2D([], [], color="0.3", linewidth=0.9, linestyle="--", label="conv_variance"),
    ]
    ax.legend(handles=handles, fontsize=6.5, frameon=False, loc="lower left")
    depth = s["modes_depth"]
    shown = sorted({1, max(1, depth // 4), depth})
    axes = right.subplots(2, len(shown), squeeze=False)
    for r, init in enumerate(NAMES.values()):
        for c, l in enumerate(shown):
            a = axes[r, c]
            a.imshow(modes[init]["profile"][l - 1], cmap="magma", vmin=0, vmax=2.5)
            a.set_xticks([])
            a.set_yticks([])
            a.set_title(f"conv {l}", fontsize=7)
        axes[r, 0].set_ylabel(init.split(" (")[0], fontsize=7)
    right.suptitle("Var(z_ℓ) by position / its mean", fontsize=8)
    return fig


def modes_table(rows: dict, fmt: str) -> str:
    out = [
        [init, k, where, r["measured"], r["theory"]]
        for init, per in rows.items()
        for k, at in per.items()
        for where, r in at.items()
    ]
    return tables.render(["CNN init", "mode", "layer", "measured", "theory"], out, fmt)


def resnet_table(by_depth: dict, fmt: str) -> str:
    rows = [
        [variant, depth, r["mean"], r["q10"], r["q90"], r["theory"]]
        for variant, per in by_depth.items()
        for depth, r in per.items()
    ]
    cols = ["ResNet (pre-LN, He)", "depth L", "Var(x_L) mean", "q10", "q90", "2(1+α²L)"]
    return tables.render(cols, rows, fmt)


def cnn_table(rows: dict, fmt: str) -> str:
    out = [
        [init, where, r["mean"], r["median"], r["q10"], r["q90"], r["sd_log10"]]
        for init, per in rows.items()
        for where, r in per.items()
    ]
    cols = ["CNN init", "layer", "Var mean", "median", "q10", "q90", "sd log10"]
    return tables.render(cols, out, fmt)


def main(argv: list[str] | None = None) -> dict:
    args = _common.parse(_common.parser(__doc__, seeds=64), argv)
    s = shapes(args.quick)
    sweeps_dir = args.out / "sweeps"
    runs, by_depth, resnet_s = run_resnets(sweeps_dir, s, args.seeds)
    cnn, cnn_s = _common.run(cnn_grid(s, args.seeds), sweeps_dir, f"cnn-L{s['cnn_depth']}")
    rows = cnn_rows(cnn, s)
    modes = run_modes(s, args.seeds)
    mrows = modes_rows(modes, s)
    (resnet_png,) = ji.report.save(plot_resnet(runs, by_depth, s), args.out / "resnet_depth")
    (cnn_png,) = ji.report.save(plot_cnn(cnn, s), args.out / "cnn_depth")
    (modes_png,) = ji.report.save(plot_modes(modes, s), args.out / "cnn_modes")
    summary = _common.write_summary(
        args.out,
        {
            "resnet": {v: {str(d): r for d, r in per.items()} for v, per in by_depth.items()},
            "cnn": rows,
            "cnn_modes": mrows,
            "shapes": s,
            "seeds": args.seeds,
            "modes_seeds": modes["seeds"],
            "seconds": {"resnet": resnet_s, "cnn": cnn_s, "cnn_modes": modes["seconds"]},
        },
    )
    ji.report.write_report(
        args.out,
        title="ResNet and CNN at depth",
        sections=[
            ji.report.Section(
                "ResNet: the residual stream under He",
                text=__doc__.split("**(a) ResNet.**")[1].split("**(b) CNN.**")[0].strip(),
                tables=[("Output variance by depth", resnet_table(by_depth, "html"))],
                figures=[("Block outputs at the largest depth; output by depth.", resnet_png)],
            ),
            ji.report.Section(
                "CNN: He against delta-orthogonal",
                text=__doc__.split("**(b) CNN.**")[1].split("**(c)")[0].strip(),
                tables=[("Per-layer variance over seeds", cnn_table(rows, "html"))],
                figures=[("Conv outputs by layer; the seeds' spread.", cnn_png)],
            ),
            ji.report.Section(
                "CNN: the image's spatial modes",
                text=__doc__.split("**(c) CNN: the image's spatial modes**")[1]
                .split("python -m")[0]
                .strip(),
                tables=[("Mode amplitudes, measured and predicted", modes_table(mrows, "html"))],
                figures=[("Spatial modes by layer; the variance by position.", modes_png)],
            ),
        ],
        runs={"cnn": cnn.attrs} | {f"{v} L={d}": r.attrs for (v, d), r in runs.items()},
    )
    print(resnet_table(by_depth, "text"))
    print()
    print(cnn_table(rows, "text"))
    print()
    print(modes_table(mrows, "text"))
    n = sum(len(r.coords["seed"]) for r in runs.values()) + 2 * len(cnn.coords["seed"])
    print(
        f"\n{n} networks: ResNets {resnet_s:.1f} s, CNN {cnn_s:.1f} s; {2 * modes['seeds']} "
        f"CNNs for the modes {modes['seconds']:.1f} s; wrote {resnet_png.name}, "
        f"{cnn_png.name}, {modes_png.name}, summary.json and report.html in {args.out}"
    )
    return summary


if __name__ == "__main__":
    main()
