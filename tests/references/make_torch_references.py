"""Writes (or checks) torch_init.json: what torch.nn.init computes, for the tests to compare
jaxinit's ``convention="torch"`` against where torch is not installed (CI).

    python tests/references/make_torch_references.py          # rewrite torch_init.json
    python tests/references/make_torch_references.py --check  # compare it with torch now

Needs torch and numpy only (not jaxinit), e.g. ``python3 -m venv /tmp/torchvenv &&
/tmp/torchvenv/bin/pip install torch==2.13.0 numpy``; the stored file was written with torch
2.13.0 (CPU build), which it records. ``--check`` exits 1 when any stored value differs from what this torch computes:
integers, strings and index lists exactly, floats to FLOAT_RTOL (the draws are seeded, so
only another BLAS/CPU path moves their last bits; another torch RNG or formula moves them
far more). Then rewrite the file and read the diff.

What is stored, per section (shapes in torch's layout, ``(out, in, spatial...)``):

- ``gains``: ``calculate_gain`` per nonlinearity.
- ``scales``: for each ``nn.init`` call (and the default weight of ``nn.Linear``/``nn.ConvNd``)
  on several shapes, torch's ``_calculate_fan_in_and_fan_out``, the distribution and the
  exact scale it multiplies by: the std of a normal, the bound of a uniform. The scale is
  read off torch's own draw w, not its formulas: a generator with the same seed draws the
  unit law z (N(0, 1), or 2u - 1 for U(-b, b)) and ``scale = <w, z> / <z, z>`` (a draw
  that is not ``scale · z`` to 1e-5 relative is an error).
- ``kaiming_normal_samples``: moments of one seeded ``kaiming_normal_`` draw of
  ``nn.Linear(784, 256).weight`` (mean, variance, min, max, kurtosis) and its std.
- ``dirac``: the positions of the ones of ``dirac_(w, groups)`` (all its nonzeros are 1).
- ``orthogonal``: singular values of ``orthogonal_(w, gain=1.5)`` flattened to
  ``(shape[0], -1)``, and its mean square.
- ``sparse``: ``sparse_`` on (50, 100): zeros per column and per row, the number of
  distinct zero patterns among the columns, the std of the nonzeros (replayed, as above)
  and their sample variance.
"""

import argparse
import json
import math
import pathlib
import sys

import numpy as np
import torch

PATH = pathlib.Path(__file__).with_name("torch_init.json")
SEED = 0
FLOAT_RTOL = 1e-6
REPLAY_RTOL = 1e-5

init = torch.nn.init

GAINS = [
    ("linear", None),
    ("sigmoid", None),
    ("tanh", None),
    ("relu", None),
    ("selu", None),
    ("leaky_relu", None),  # torch's default slope, 0.01
    ("leaky_relu", 0.2),
]

SCALE_SHAPES = [(256, 784), (100, 100), (8, 4, 5), (32, 16, 3, 3), (4, 4, 3, 3, 3)]

# call id -> (fills a tensor, given a generator), distribution it draws
CALLS = {
    "xavier_normal_()": (lambda t, g: init.xavier_normal_(t, generator=g), "normal"),
    "xavier_normal_(gain=2.0)": (
        lambda t, g: init.xavier_normal_(t, gain=2.0, generator=g),
        "normal",
    ),
    "xavier_uniform_()": (lambda t, g: init.xavier_uniform_(t, generator=g), "uniform"),
    "xavier_uniform_(gain=0.5)": (
        lambda t, g: init.xavier_uniform_(t, gain=0.5, generator=g),
        "uniform",
    ),
    "kaiming_normal_()": (lambda t, g: init.kaiming_normal_(t, generator=g), "normal"),
    "kaiming_normal_(a=0.2)": (lambda t, g: init.kaiming_normal_(t, a=0.2, generator=g), "normal"),
    "kaiming_normal_(mode='fan_out', nonlinearity='relu')": (
        lambda t, g: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu", generator=g),
        "normal",
    ),
    "kaiming_normal_(nonlinearity='tanh')": (
        lambda t, g: init.kaiming_normal_(t, nonlinearity="tanh", generator=g),
        "normal",
    ),
    "kaiming_normal_(nonlinearity='sigmoid')": (
        lambda t, g: init.kaiming_normal_(t, nonlinearity="sigmoid", generator=g),
        "normal",
    ),
    "kaiming_normal_(nonlinearity='linear')": (
        lambda t, g: init.kaiming_normal_(t, nonlinearity="linear", generator=g),
        "normal",
    ),
    "kaiming_uniform_()": (lambda t, g: init.kaiming_uniform_(t, generator=g), "uniform"),
    "kaiming_uniform_(mode='fan_out', nonlinearity='selu')": (
        lambda t, g: init.kaiming_uniform_(t, mode="fan_out", nonlinearity="selu", generator=g),
        "uniform",
    ),
    "kaiming_uniform_(nonlinearity='linear')": (
        lambda t, g: init.kaiming_uniform_(t, nonlinearity="linear", generator=g),
        "uniform",
    ),
    "kaiming_uniform_(a=math.sqrt(5))": (
        lambda t, g: init.kaiming_uniform_(t, a=math.sqrt(5), generator=g),
        "uniform",
    ),
}
MODULE_CALL = "default weight of nn.Linear / nn.ConvNd"

KAIMING_SAMPLE_SHAPE = (256, 784)  # nn.Linear(784, 256).weight
KAIMING_SAMPLE_ARGS = [(0.0, "leaky_relu"), (0.2, "leaky_relu"), (0.0, "tanh")]

DIRAC_CASES = [
    ((8, 4, 3), 1),
    ((8, 4, 3, 3), 1),
    ((4, 8, 3, 3), 1),
    ((6, 3, 2, 4), 1),
    ((4, 4, 3, 3, 3), 1),
    ((8, 2, 3, 3), 2),
    ((12, 2, 5), 3),
    ((6, 4, 3, 3), 3),
]

ORTHOGONAL_SHAPES = [(32, 16, 3, 3), (300, 4, 3, 3), (40, 60), (60, 40)]
ORTHOGONAL_GAIN = 1.5

SPARSE_SHAPE, SPARSE_SPARSITY, SPARSE_STD = (50, 100), 0.3, 0.1


def _gen():
    return torch.Generator().manual_seed(SEED)


def _unit(shape, distribution, generator=None):
    """The unit law's draw that torch scales: N(0, 1), or 2u - 1 for U(-b, b)."""
    t = torch.empty(shape)
    if distribution == "normal":
        return t.normal_(0.0, 1.0, generator=generator).double().numpy()
    return 2.0 * t.uniform_(0.0, 1.0, generator=generator).double().numpy() - 1.0


def _scale(w, z, what):
    """The scale s with w = s·z, checked to REPLAY_RTOL."""
    w = np.asarray(w, np.float64)
    s = float((w * z).sum() / (z * z).sum())
    residual = float(np.abs(w - s * z).max() / abs(s))
    if residual > REPLAY_RTOL:
        raise RuntimeError(f"{what}: torch's draw is not scale·unit draw (residual {residual:.2e})")
    return s


def _module(shape):
    n_out, n_in, *k = shape
    if not k:
        return torch.nn.Linear(n_in, n_out)
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[len(k)]
    return conv(n_in, n_out, tuple(k))


def gains():
    out = []
    for name, param in GAINS:
        out.append({"nonlinearity": name, "param": param, "gain": init.calculate_gain(name, param)})
    return out


def scales():
    out = []
    for shape in SCALE_SHAPES:
        fan_in, fan_out = init._calculate_fan_in_and_fan_out(torch.empty(shape))
        base = {"shape": list(shape), "fan_in": fan_in, "fan_out": fan_out}
        for call, (fill, distribution) in CALLS.items():
            w = fill(torch.empty(shape), _gen())
            s = _scale(w, _unit(shape, distribution, _gen()), f"{call} on {shape}")
            out.append({"call": call, **base, "distribution": distribution, "scale": s})
        torch.manual_seed(SEED)  # modules draw from the global generator
        w = _module(shape).weight.detach()
        assert tuple(w.shape) == shape
        torch.manual_seed(SEED)
        s = _scale(w, _unit(shape, "uniform"), f"{MODULE_CALL} on {shape}")
        out.append({"call": MODULE_CALL, **base, "distribution": "uniform", "scale": s})
    return out


def _kurtosis(x):
    c = x - x.mean()
    return float((c**4).mean() / (c**2).mean() ** 2)


def kaiming_normal_samples():
    out = []
    shape = KAIMING_SAMPLE_SHAPE
    for a, nonlinearity in KAIMING_SAMPLE_ARGS:
        w = init.kaiming_normal_(
            torch.empty(shape), a=a, nonlinearity=nonlinearity, generator=_gen()
        )
        x = w.double().numpy()
        out.append(
            {
                "a": a,
                "nonlinearity": nonlinearity,
                "mode": "fan_in",
                "shape": list(shape),
                "seed": SEED,
                "fan": init._calculate_correct_fan(w, "fan_in"),
                "gain": init.calculate_gain(nonlinearity, a),
                "std": _scale(x, _unit(shape, "normal", _gen()), "kaiming_normal_ sample"),
                "n": x.size,
                "mean": float(x.mean()),
                "var": float(x.var()),
                "min": float(x.min()),
                "max": float(x.max()),
                "kurtosis": _kurtosis(x),
            }
        )
    return out


def dirac():
    out = []
    for shape, groups in DIRAC_CASES:
        w = init.dirac_(torch.empty(shape), groups).numpy()
        ones = np.nonzero(w)
        if not np.all(w[ones] == 1.0):
            raise RuntimeError(f"dirac_ on {shape}: a nonzero entry is not 1")
        out.append({"shape": list(shape), "groups": groups, "ones": [i.tolist() for i in ones]})
    return out


def orthogonal():
    out = []
    for shape in ORTHOGONAL_SHAPES:
        w = init.orthogonal_(torch.empty(shape), gain=ORTHOGONAL_GAIN, generator=_gen())
        m = w.double().numpy().reshape(shape[0], -1)
        out.append(
            {
                "shape": list(shape),
                "gain": ORTHOGONAL_GAIN,
                "seed": SEED,
                "rows": m.shape[0],
                "cols": m.shape[1],
                "singular_values": np.linalg.svd(m, compute_uv=False).tolist(),
                "mean_square": float((m**2).mean()),
            }
        )
    return out


def sparse():
    rows, cols = SPARSE_SHAPE
    torch.manual_seed(SEED)  # sparse_'s randperm draws from the global generator
    w = init.sparse_(torch.empty(rows, cols), sparsity=SPARSE_SPARSITY, std=SPARSE_STD).numpy()
    torch.manual_seed(SEED)
    z = _unit(SPARSE_SHAPE, "normal")
    zero = w == 0
    nonzero = w[~zero].astype(np.float64)
    return {
        "shape": [rows, cols],
        "sparsity": SPARSE_SPARSITY,
        "std_arg": SPARSE_STD,
        "seed": SEED,
        "zeros_per_column": zero.sum(axis=0).tolist(),
        "zeros_per_row": zero.sum(axis=1).tolist(),
        "distinct_zero_patterns": len({tuple(np.flatnonzero(c)) for c in zero.T}),
        "std": _scale(w[~zero], z[~zero], "sparse_'s nonzeros"),
        "nonzero_n": int(nonzero.size),
        "nonzero_var": float(nonzero.var()),
    }


def build():
    torch.set_num_threads(1)  # one code path for QR and reductions
    return {
        "about": "torch.nn.init reference values for jaxinit's tests; see make_torch_references.py",
        "regenerate": "python tests/references/make_torch_references.py",
        "check": "python tests/references/make_torch_references.py --check",
        "torch_version": torch.__version__,
        "seed": SEED,
        "gains": gains(),
        "scales": scales(),
        "kaiming_normal_samples": kaiming_normal_samples(),
        "dirac": dirac(),
        "orthogonal": orthogonal(),
        "sparse": sparse(),
    }


def differences(stored, fresh, where="$"):
    """Where ``fresh`` differs from ``stored``: floats beyond FLOAT_RTOL, anything else at all."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        out = (
            [f"{where}: keys {sorted(stored.keys() ^ fresh.keys())}"]
            if stored.keys() != fresh.keys()
            else []
        )
        for k in stored:
            if k in fresh and k != "torch_version":
                out += differences(stored[k], fresh[k], f"{where}.{k}")
        return out
    if isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            return [f"{where}: {len(stored)} entries stored, {len(fresh)} now"]
        return [
            d
            for i, (s, f) in enumerate(zip(stored, fresh, strict=True))
            for d in differences(s, f, f"{where}[{i}]")
        ]
    numbers = [isinstance(v, int | float) and not isinstance(v, bool) for v in (stored, fresh)]
    if all(numbers) and not (isinstance(stored, int) and isinstance(fresh, int)):  # 1 == 1.0
        ok = math.isclose(stored, fresh, rel_tol=FLOAT_RTOL, abs_tol=1e-12)
        return [] if ok else [f"{where}: stored {stored!r}, now {fresh!r}"]
    if type(stored) is not type(fresh) or stored != fresh:
        return [f"{where}: stored {stored!r}, now {fresh!r}"]
    return []


def dumps(ref):
    """JSON with one line per top-level field and per entry of a section (small diffs)."""
    lines = []
    for k, v in ref.items():
        if isinstance(v, list):
            entries = ",\n".join(f"  {json.dumps(e)}" for e in v)
            lines.append(f" {json.dumps(k)}: [\n{entries}\n ]")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    fresh = build()
    if not args.check:
        PATH.write_text(dumps(fresh))
        print(f"wrote {PATH} ({PATH.stat().st_size} bytes, torch {torch.__version__})")
        return 0
    stored, fresh = json.loads(PATH.read_text()), json.loads(dumps(fresh))
    diffs = differences(stored, fresh)
    versions = f"stored with torch {stored.get('torch_version')}, now {torch.__version__}"
    if diffs:
        print(f"{PATH.name} differs from torch ({versions}):", *diffs[:50], sep="\n  ")
        if len(diffs) > 50:
            print(f"  ... {len(diffs) - 50} more")
        return 1
    print(f"{PATH.name} matches torch ({versions})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
