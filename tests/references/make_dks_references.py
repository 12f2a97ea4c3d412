"""Writes (or checks) dks_transforms.json: the activation transforms of DeepMind's dks
(Martens et al. 2021, Deep Kernel Shaping; Zhang et al. 2022, Tailored Activation
Transformations), for the tests to compare ``jaxinit.theory.transform`` against where dks is
not installed (CI).

    python tests/references/make_dks_references.py          # rewrite dks_transforms.json
    python tests/references/make_dks_references.py --check  # compare it with dks now

Needs dks's base package and its dependencies only (not jaxinit, not jax): ``python3 -m venv
/tmp/dksvenv && /tmp/dksvenv/bin/pip install dks absl-py autograd scipy numpy``; the stored
file was written with dks 0.1.2, which it records. (dks's JAX part does not import on current
jax; its NumPy base, used here, does.)

The network is a chain of ``depth`` nonlinear layers without skips (a vanilla MLP), so dks's
network functions are those of a chain: the maximal slope function ``x ↦ x^depth`` (DKS),
the maximal curvature function ``x ↦ depth·x`` (TAT, smooth activations) and the subnetwork
maximizing function ``(x, r) ↦ r^depth(x)``, r composed ``depth`` times (TAT, leaky ReLU).
Each case stores dks's parameters (``input_scale`` α, ``input_shift`` β, ``output_shift`` δ,
``output_scale`` γ, and leaky ReLU's ``negative_slope``), with φ̂(x) = γ (φ(α x + β) + δ), and
the local maps of φ̂ that dks's solver targets, computed by dks's own quadrature (order 10⁵
on [-10, 10]): the Q map's slope at q = 1, the C map's value at 0, its slope and curvature at
c = 1. ``refused`` lists what dks cannot solve (TAT's C_f(0) = 0.9 for a leaky ReLU chain of 10
layers: even ReLU's c-map, iterated 10 times from 0, stays below 0.9).
"""

import argparse
import json
import pathlib
import sys

import dks
import numpy as np
from dks.base import activation_transform as at
from dks.base.activation_getter import get_activation_function

PATH = pathlib.Path(__file__).with_name("dks_transforms.json")
DEPTHS = (20, 50)
UNACHIEVABLE = (("TAT", "leaky_relu", 10),)  # dks refuses: C_f(0) = 0.9 is out of reach
CASES = (  # (method, activation): dks's defaults, ζ = 1.5, τ = 0.3, η = 0.9
    [("DKS", a) for a in ("tanh", "softplus", "selu", "leaky_relu")]
    + [("TAT", a) for a in ("tanh", "softplus", "selu", "leaky_relu")]
)
RTOL = 1e-9  # --check: the same dks on another machine moves only the last bits


def chain_functions(depth: int) -> dict:
    def subnet_max_func(x, r_fn):
        for _ in range(depth):
            x = r_fn(x)
        return x

    return {
        "max_slope_func": lambda x: x**depth,
        "max_curv_func": lambda x: depth * x,
        "subnet_max_func": subnet_max_func,
    }


def local_maps(name: str, params: dict) -> dict:
    params = dict(params)
    phi = at._transform_activation(get_activation_function(name), params)
    return {
        "q_1": float(at._estimate_gaussian_mean(lambda x: phi(x) ** 2)),
        "q_slope_1": float(at._calc_q_slope_1(phi)),
        "c_val_0": float(at._calc_c_map(phi, c=0.0, q_output=None)),
        "c_slope_1": float(at._calc_c_slope(phi, c=1.0, q_output=None)),
        "c_curv_1": float(at._calc_c_curv(phi, c=1.0, q_output=None)),
    }


def compute() -> dict:
    cases = []
    for depth in DEPTHS:
        for method, name in CASES:
            params = at._get_activations_params([name], method=method, **chain_functions(depth))
            params = {k: float(v) for k, v in params[name].items()}
            cases.append(
                {
                    "method": method.lower(),
                    "activation": name,
                    "depth": depth,
                    "params": params,
                    "local_maps": local_maps(name, params),
                }
            )
    refused = []
    for method, name, depth in UNACHIEVABLE:
        try:
            at._get_activations_params([name], method=method, **chain_functions(depth))
        except ValueError:
            refused.append({"method": method.lower(), "activation": name, "depth": depth})
        else:
            raise AssertionError(f"dks now solves {method} {name} at depth {depth}")
    return {
        "refused": refused,
        "dks": getattr(dks, "__version__", "0.1.2"),
        "numpy": np.__version__,
        "targets": {"zeta": 1.5, "tau": 0.3, "eta": 0.9},
        "cases": cases,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare the stored file with dks")
    args = ap.parse_args(argv)
    now = compute()
    if not args.check:
        PATH.write_text(json.dumps(now, indent=1) + "\n")
        print(f"wrote {PATH} ({len(now['cases'])} cases)")
        return 0
    stored = json.loads(PATH.read_text())
    bad = [
        (a["method"], a["activation"], a["depth"], k)
        for a, b in zip(stored["cases"], now["cases"], strict=True)
        for section in ("params", "local_maps")
        for k in a[section]
        if not np.isclose(a[section][k], b[section][k], rtol=RTOL, atol=0)
    ]
    print("differs:", bad) if bad else print("dks_transforms.json matches dks")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
