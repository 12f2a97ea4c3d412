"""The standard grid of ``benchmarks/``: its initializers, activations and shapes
(``Config``), the quick and large variants, and the seeded sample the slow peers time."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterator

import numpy as np

import jaxinit as ji

INITS = (
    "normal(stddev=1.0)",
    "normal(stddev=0.01)",
    "glorot_normal",
    "he_normal",
    "glorot_uniform",
    "he_uniform",
    "lecun_normal",
    "orthogonal",
    "truncated_normal(stddev=0.05)",
    "uniform(low=-0.05, high=0.05)",
)
ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu", "silu")
QUICK_INITS = ("he_normal", "normal(stddev=0.01)")
QUICK_ACTIVATIONS = ("sigmoid", "relu")
SAMPLE = 160  # combinations timed for the torch and naive-JAX peers
LARGE_INITS = ("he_normal", "glorot_uniform")  # the 100k run: 2 × 2 × 25,000 seeds
LARGE_ACTIVATIONS = ("relu", "tanh")
LARGE_CHUNK = 1024  # seeds per chunk in the large runs (4 combinations per seed there)
TARGETS = {  # issue 10: must (aim)
    "fwd_numpy_ratio": (5.0, 10.0),  # gradients=False vs the seed-style NumPy loop
    "fwd_torch_ratio": (2.5, 4.0),  # gradients=False vs the PyTorch loop
    "fwd_probe_ratio": (0.9, 1.0),  # gradients=False vs the prototype probe
    "full_numpy_ratio": (4.0, 8.0),  # default vs the full-statistics NumPy loop
    "full_naive_ratio": (3.0, 3.0),  # default vs naive JAX, warm
    "end_to_end_numpy_ratio": (3.0, 5.0),  # fresh process, 320 combos, vs the NumPy loop
    "compile_s": (5.0, 3.0),
    "wide_fraction_of_peak": (0.35, 0.5),
    "large_rss_gb": (4.0, 4.0),
}
PEERS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "peers"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """One grid of the benchmark."""

    inits: tuple[str, ...]
    activations: tuple[str, ...]
    seeds: int
    batch_size: int
    d_in: int
    width: int
    depth: int = 5
    bins: int = 30
    gradients: bool = True

    def grid(self) -> ji.Grid:
        return ji.Grid(
            inits=list(self.inits),
            activations=list(self.activations),
            depth=self.depth,
            width=self.width,
            seeds=self.seeds,
            batch_size=self.batch_size,
            d_in=self.d_in,
            bins=self.bins,
            inputs="gaussian",
            gradients=self.gradients,
        )

    def __len__(self) -> int:
        return len(self.inits) * len(self.activations) * self.seeds

    def combinations(self) -> Iterator[tuple[str, str, int]]:
        for init in self.inits:
            for act in self.activations:
                for seed in range(self.seeds):
                    yield init, act, seed

    @property
    def flops(self) -> float:
        """Matmul flops of one combination, forward (+ backward; see the module docs)."""
        fwd = 2 * self.batch_size * (self.d_in * self.width + (self.depth - 1) * self.width**2)
        return 3.0 * fwd if self.gradients else fwd

    def describe(self) -> str:
        return (
            f"{len(self.inits)} inits × {len(self.activations)} activations × {self.seeds} "
            f"seeds = {len(self)} combinations; batch {self.batch_size}, d_in {self.d_in}, "
            f"{self.depth} layers of {self.width}, {self.bins} bins"
        )


def configs(*, quick: bool, seeds: int | None) -> dict[str, Config]:
    """The standard grid, the width-256 grid and the two sizes of the large run."""
    if quick:
        base = Config(
            inits=QUICK_INITS,
            activations=QUICK_ACTIVATIONS,
            seeds=seeds or 2,
            batch_size=64,
            d_in=16,
            width=16,
        )
        wide, large = base, (1280, 128)  # wide: same programs, no extra compile
    else:
        base = Config(
            inits=INITS,
            activations=ACTIVATIONS,
            seeds=seeds or 16,
            batch_size=1000,
            d_in=100,
            width=100,
        )
        wide, large = (
            dataclasses.replace(base, width=256, batch_size=1024, seeds=2),
            (25_000, 2_500),
        )
    big = dataclasses.replace(
        base, inits=LARGE_INITS, activations=LARGE_ACTIVATIONS, seeds=large[0], gradients=False
    )
    return {
        "standard": base,
        "wide": wide,
        "large": big,
        "large_tenth": dataclasses.replace(big, seeds=large[1]),
    }


def sample(cfg: Config, n: int = SAMPLE) -> list[tuple[str, str, int]]:
    """A seeded sample of ``n`` combinations, the same number of seeds per (init, activation)."""
    rng = np.random.default_rng(0)
    per_pair = min(cfg.seeds, max(1, n // (len(cfg.inits) * len(cfg.activations))))
    return [
        (i, a, int(s))
        for i in cfg.inits
        for a in cfg.activations
        for s in sorted(rng.choice(cfg.seeds, per_pair, replace=False))
    ]
