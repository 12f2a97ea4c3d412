"""Writes (or checks) nt_kernels.json: the infinite-width NNGP and NTK that neural-tangents'
``stax`` computes for small convolutional networks with global average pooling, for the
tests to compare ``jaxinit.theory.conv_kernels`` against where neural-tangents is not
installed (CI).

    python tests/references/make_nt_references.py          # rewrite nt_kernels.json
    python tests/references/make_nt_references.py --check  # compare it with neural-tangents

Needs neural-tangents and the jax it runs on, not jaxinit. neural-tangents 0.6.5 (the last
release) imports on jax 0.5.3 with tf2jax 0.3.6, not on current jax: ``python3 -m venv
/tmp/ntvenv && /tmp/ntvenv/bin/pip install neural-tangents "jax[cpu]==0.5.3"
"jaxlib==0.5.3" "tf2jax==0.3.6"``; the file records the versions that wrote it.

Each case is ``stax.serial(*[Conv(8, filter, padding=, W_std=√σ_w², b_std=√σ_b²), act] *
depth, GlobalAvgPool(), Dense(1, W_std=√σ_w², b_std=√σ_b²))`` (NTK parameterization,
neural-tangents' default) on the stored images: ``x1`` (3, 4, 4, 2) against itself, or
against ``x2`` (2, 4, 4, 2); its ``nngp`` and ``ntk``. ``residual``: the zoo's ResNet as
``stax`` (``residual_kernel_fn``: an input Dense, then 3 blocks ``FanOut(2), parallel(serial(
[LayerNorm()], Dense, act, Dense(W_std=α σ_w, b_std=α σ_b)), Identity()), FanInSum()``,
``[LayerNorm()]`` after the sum for ``norm="post"``) on 8-feature vectors.
"""

import argparse
import json
import pathlib
import sys

import jax
import neural_tangents as nt
import numpy as np
from neural_tangents import stax

PATH = pathlib.Path(__file__).with_name("nt_kernels.json")
RTOL = 1e-6  # --check: the same neural-tangents elsewhere moves only float32's last bits
ACTIVATIONS = {  # jaxinit's spec -> neural-tangents' layer (closed-form kernels)
    "relu": stax.Relu,
    "leaky_relu(negative_slope=0.1)": lambda: stax.LeakyRelu(0.1),
    "erf": stax.Erf,
    "gelu(approximate=False)": lambda: stax.Gelu(approximate=False),  # x Φ(x)
}
CASES = [  # (activation, depth, filter, padding, against x2)
    # gelu goes through jaxinit's quadrature (neural-tangents has its closed form): once
    *[(a, 3, (3, 3), "SAME", False) for a in ACTIVATIONS if not a.startswith("gelu")],
    *[(a, 2, (3, 3), "CIRCULAR", False) for a in ACTIVATIONS],
    ("relu", 1, (3, 3), "SAME", False),
    ("relu", 2, (2, 2), "SAME", True),  # an even filter: lax's SAME offsets (0, 1)
    ("erf", 2, (3, 3), "CIRCULAR", True),
]
SIGMA_W2, SIGMA_B2 = 2.0, 0.1
RESIDUAL = [  # (activation, norm, α, against x2): 3 blocks of width-16 Dense layers
    ("relu", "pre", 0.5, False),
    ("relu", None, 0.5, False),
    ("relu", "post", 1.0, False),
    ("erf", "pre", 1.0, True),
    ("gelu(approximate=False)", None, 0.3, True),
]
RESIDUAL_DEPTH = 3


def residual_kernel_fn(act: str, norm, alpha: float):
    """The zoo's ResNet as stax: Dense, then blocks h + α F(n(h)), F = Dense, act, Dense."""
    w, b = float(np.sqrt(SIGMA_W2)), float(np.sqrt(SIGMA_B2))
    branch = [stax.Dense(16, W_std=w, b_std=b), ACTIVATIONS[act](),
              stax.Dense(16, W_std=alpha * w, b_std=alpha * b)]  # fmt: skip
    if norm == "pre":
        branch = [stax.LayerNorm(), *branch]
    block = [stax.FanOut(2), stax.parallel(stax.serial(*branch), stax.Identity()), stax.FanInSum()]
    if norm == "post":
        block.append(stax.LayerNorm())
    layers = [stax.Dense(16, W_std=w, b_std=b)]
    for _ in range(RESIDUAL_DEPTH):
        layers += block
    return stax.serial(*layers)[2]


def images() -> tuple[np.ndarray, np.ndarray]:
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    x1 = np.asarray(jax.random.normal(key1, (3, 4, 4, 2)), np.float32)
    x2 = np.asarray(jax.random.normal(key2, (2, 4, 4, 2)), np.float32)
    return x1, x2


def compute() -> dict:
    x1, x2 = images()
    w, b = float(np.sqrt(SIGMA_W2)), float(np.sqrt(SIGMA_B2))
    cases = []
    for act, depth, filt, padding, cross in CASES:
        layers = []
        for _ in range(depth):
            layers += [stax.Conv(8, filt, padding=padding, W_std=w, b_std=b), ACTIVATIONS[act]()]
        layers += [stax.GlobalAvgPool(), stax.Dense(1, W_std=w, b_std=b)]
        _, _, kernel_fn = stax.serial(*layers)
        k = kernel_fn(x1, x2 if cross else None, ("nngp", "ntk"))
        cases.append(
            {
                "activation": act,
                "depth": depth,
                "filter_shape": list(filt),
                "padding": padding,
                "cross": cross,
                "nngp": np.asarray(k.nngp, np.float64).tolist(),
                "ntk": np.asarray(k.ntk, np.float64).tolist(),
            }
        )
    v1, v2 = x1.reshape(3, -1)[:, :8], x2.reshape(2, -1)[:, :8]  # (n, 8) vectors
    residual = []
    for act, norm, alpha, cross in RESIDUAL:
        k = residual_kernel_fn(act, norm, alpha)(v1, v2 if cross else None, ("nngp", "ntk"))
        residual.append(
            {
                "activation": act,
                "norm": norm,
                "alpha": alpha,
                "depth": RESIDUAL_DEPTH,
                "cross": cross,
                "nngp": np.asarray(k.nngp, np.float64).tolist(),
                "ntk": np.asarray(k.ntk, np.float64).tolist(),
            }
        )
    return {
        "residual_x1": v1.tolist(),
        "residual_x2": v2.tolist(),
        "residual": residual,
        "neural_tangents": nt.__version__,
        "jax": jax.__version__,
        "sigma_w2": SIGMA_W2,
        "sigma_b2": SIGMA_B2,
        "x1": x1.tolist(),
        "x2": x2.tolist(),
        "cases": cases,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare the stored file")
    args = ap.parse_args(argv)
    now = compute()
    if not args.check:
        PATH.write_text(json.dumps(now) + "\n")
        print(f"wrote {PATH} ({len(now['cases'])} cases)")
        return 0
    stored = json.loads(PATH.read_text())
    bad = [
        (section, a["activation"], a["depth"], key)
        for section in ("cases", "residual")
        for a, b in zip(stored[section], now[section], strict=True)
        for key in ("nngp", "ntk")
        if not np.allclose(a[key], b[key], rtol=RTOL, atol=0)
    ]
    print("differs:", bad) if bad else print("nt_kernels.json matches neural-tangents")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
