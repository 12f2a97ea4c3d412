"""The peers of ``standard_grid.py``, each computing one combination's statistics its own
way: the NumPy loop, the PyTorch loop and naive JAX (one ``jit`` per init × activation)."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from _standard import Config

import jaxinit as ji
from jaxinit.sweeping import HIST_DEFAULT_HALF_RANGE as HIST_HALF_RANGE


def hist_range(activation: str) -> tuple[float, float]:
    """The histogram range of an activation: its bounds where finite, else ±3 (as jaxinit)."""
    lo, hi = ji.activations.get(activation).bounds
    return (
        lo if math.isfinite(lo) else -HIST_HALF_RANGE,
        hi if math.isfinite(hi) else HIST_HALF_RANGE,
    )


def saturation(activation: str) -> tuple[float | None, float | None]:
    """``a < lo`` or ``a > hi`` is saturated; None: no test (jaxinit's thresholds)."""
    return ji.activations.get(activation).saturation


# -- the NumPy peer -----------------------------------------------------------------

_TRUNC_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]
_F32 = np.float32


def _np_truncated(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """N(0, 1) cut at ±2, by redrawing what falls outside."""
    w = rng.standard_normal(shape, dtype=_F32)
    bad = np.abs(w) > 2
    while bad.any():
        w[bad] = rng.standard_normal(int(bad.sum()), dtype=_F32)
        bad = np.abs(w) > 2
    return w


def _np_uniform(rng: np.random.Generator, shape: tuple[int, int], limit: float) -> np.ndarray:
    return (rng.random(shape, dtype=_F32) * 2 - 1) * _F32(limit)


def _np_orthogonal(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    n_in, n_out = shape
    q, r = np.linalg.qr(rng.standard_normal((max(shape), min(shape)), dtype=_F32))
    q *= np.sign(np.diag(r))
    return q if n_in >= n_out else q.T


# (rng, fan_in, fan_out) -> W (fan_in, fan_out), as the jax convention draws each
NUMPY_INITS: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "normal(stddev=1.0)": lambda rng, i, o: rng.standard_normal((i, o), dtype=_F32),
    "normal(stddev=0.01)": lambda rng, i, o: rng.standard_normal((i, o), dtype=_F32) * _F32(0.01),
    "glorot_normal": lambda rng, i, o: (
        _np_truncated(rng, (i, o)) * _F32(math.sqrt(2 / (i + o)) / _TRUNC_STD)
    ),
    "he_normal": lambda rng, i, o: _np_truncated(rng, (i, o)) * _F32(math.sqrt(2 / i) / _TRUNC_STD),
    "glorot_uniform": lambda rng, i, o: _np_uniform(rng, (i, o), math.sqrt(6 / (i + o))),
    "he_uniform": lambda rng, i, o: _np_uniform(rng, (i, o), math.sqrt(6 / i)),
    "lecun_normal": lambda rng, i, o: (
        _np_truncated(rng, (i, o)) * _F32(math.sqrt(1 / i) / _TRUNC_STD)
    ),
    "orthogonal": lambda rng, i, o: _np_orthogonal(rng, (i, o)),
    "truncated_normal(stddev=0.05)": lambda rng, i, o: _np_truncated(rng, (i, o)) * _F32(0.05),
    "uniform(low=-0.05, high=0.05)": lambda rng, i, o: _np_uniform(rng, (i, o), 0.05),
}


def _np_sigmoid(z):
    with np.errstate(over="ignore"):  # e^{-z} = inf for z < -88 gives 0, as it should
        return 1 / (1 + np.exp(-z))


_GELU_C, _GELU_K = math.sqrt(2 / math.pi), 0.044715
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _np_gelu(z):
    t = np.tanh(_GELU_C * (z + _GELU_K * z**3))
    return 0.5 * z * (1 + t), 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _GELU_C * (
        1 + 3 * _GELU_K * z * z
    )


def _np_elu(z, alpha=1.0, scale=1.0):
    a = scale * np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    return a, np.where(z > 0, scale, a + scale * alpha)


def _np_silu(z):
    s = _np_sigmoid(z)
    return z * s, s * (1 + z * (1 - s))


# z -> (a, dφ/dz)
NUMPY_ACTIVATIONS: dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]] = {
    "sigmoid": lambda z: (s := _np_sigmoid(z), s * (1 - s)),
    "tanh": lambda z: (t := np.tanh(z), 1 - t * t),
    "relu": lambda z: (np.maximum(z, 0), (z > 0).astype(_F32)),
    "leaky_relu": lambda z: (np.where(z >= 0, z, 0.01 * z), np.where(z >= 0, _F32(1), _F32(0.01))),
    "elu": _np_elu,
    "selu": lambda z: _np_elu(z, _SELU_ALPHA, _SELU_SCALE),
    "gelu": _np_gelu,
    "silu": _np_silu,
}


def numpy_combination(cfg: Config, init: str, activation: str, seed: int) -> dict[str, np.ndarray]:
    """Every statistic of one network, in NumPy, one layer at a time: fields ``(layer,)``, hist ``(layer, bin)``."""
    rng = np.random.default_rng(seed)
    draw_w, act = NUMPY_INITS[init], NUMPY_ACTIVATIONS[activation]
    sat_lo, sat_hi = saturation(activation)
    h = rng.standard_normal((cfg.batch_size, cfg.d_in), dtype=_F32)
    hs, ws, dphis, rows = [h], [], [], []
    for _ in range(cfg.depth):
        w = draw_w(rng, h.shape[1], cfg.width)
        z = h @ w
        h, dphi = act(z)
        saturated = 0.0
        if sat_lo is not None or sat_hi is not None:
            lo = -np.inf if sat_lo is None else sat_lo
            hi = np.inf if sat_hi is None else sat_hi
            saturated = ((h < lo) | (h > hi)).mean()
        rows.append(
            {
                "pre_mean": z.mean(),
                "pre_var": z.var(),
                "post_mean": h.mean(),
                "post_var": h.var(),
                "saturated": saturated,
                "dead": (h == 0).mean(),
                "nonfinite": (~np.isfinite(z)).sum() + (~np.isfinite(h)).sum(),
                "hist": np.histogram(h, bins=cfg.bins, range=hist_range(activation))[0],
            }
        )
        hs.append(h)
        ws.append(w)
        dphis.append(dphi)
    g = rng.standard_normal((cfg.batch_size, cfg.width), dtype=_F32)  # ∂L/∂h of the last layer
    for l in reversed(range(cfg.depth)):
        dz = g * dphis[l]
        rows[l]["grad_var"] = dz.var()
        rows[l]["weight_grad_norm"] = np.linalg.norm(hs[l].T @ dz)
        if l:
            g = dz @ ws[l].T
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


# -- the PyTorch peer ---------------------------------------------------------------


def torch_peer(torch):
    """``(cfg, init, activation, seed) -> stats`` in torch, and its initializers."""
    nn, F = torch.nn, torch.nn.functional
    inits = {  # torch's own nn.init, its conventions (glorot/he/lecun normals untruncated)
        "normal(stddev=1.0)": lambda w, g: nn.init.normal_(w, std=1.0, generator=g),
        "normal(stddev=0.01)": lambda w, g: nn.init.normal_(w, std=0.01, generator=g),
        "glorot_normal": lambda w, g: nn.init.xavier_normal_(w, generator=g),
        "he_normal": lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="relu", generator=g),
        "glorot_uniform": lambda w, g: nn.init.xavier_uniform_(w, generator=g),
        "he_uniform": lambda w, g: nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=g),
        "lecun_normal": lambda w, g: nn.init.kaiming_normal_(w, nonlinearity="linear", generator=g),
        "orthogonal": lambda w, g: nn.init.orthogonal_(w, generator=g),
        "truncated_normal(stddev=0.05)": lambda w, g: nn.init.trunc_normal_(
            w, std=0.05, a=-0.1, b=0.1, generator=g
        ),
        "uniform(low=-0.05, high=0.05)": lambda w, g: nn.init.uniform_(w, -0.05, 0.05, generator=g),
    }
    acts = {
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "relu": F.relu,
        "leaky_relu": lambda z: F.leaky_relu(z, 0.01),
        "elu": F.elu,
        "selu": F.selu,
        "gelu": lambda z: F.gelu(z, approximate="tanh"),
        "silu": F.silu,
    }

    def run(cfg: Config, init: str, activation: str, seed: int) -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        act = acts[activation]
        sat_lo, sat_hi = saturation(activation)
        lo, hi = hist_range(activation)
        h = torch.randn(cfg.batch_size, cfg.d_in, generator=gen)
        hs, ws, zs, rows = [h], [], [], []
        for _ in range(cfg.depth):
            w = torch.empty(cfg.width, h.shape[1])  # torch layout (out, in)
            with torch.no_grad():
                inits[init](w, gen)
            w.requires_grad_(True)
            z = F.linear(h, w)
            h = act(z)
            with torch.no_grad():
                saturated = torch.zeros(())
                if sat_lo is not None:
                    saturated = saturated + (h < sat_lo).float().mean()
                if sat_hi is not None:
                    saturated = saturated + (h > sat_hi).float().mean()
                rows.append(
                    {
                        "pre_mean": z.mean(),
                        "pre_var": z.var(unbiased=False),
                        "post_mean": h.mean(),
                        "post_var": h.var(unbiased=False),
                        "saturated": saturated,
                        "dead": (h == 0).float().mean(),
                        "nonfinite": (~torch.isfinite(z)).sum() + (~torch.isfinite(h)).sum(),
                        "hist": torch.histc(h, bins=cfg.bins, min=lo, max=hi),
                    }
                )
            hs.append(h)
            ws.append(w)
            zs.append(z)
        cot = torch.randn(cfg.batch_size, cfg.width, generator=gen)
        grads = torch.autograd.grad(h, zs + ws, grad_outputs=cot)
        for l in range(cfg.depth):
            rows[l]["grad_var"] = grads[l].var(unbiased=False)
            rows[l]["weight_grad_norm"] = torch.linalg.norm(grads[cfg.depth + l])
        return {k: np.array([float(r[k]) for r in rows]) for k in rows[0] if k != "hist"} | {
            "hist": np.stack([r["hist"].numpy() for r in rows])
        }

    return run


# -- the naive JAX peer -------------------------------------------------------------


def naive_jax_function(cfg: Config, init: str, activation: str, counter: list[int]):
    """A jitted ``key -> stats`` for one (init, activation), written as a user would."""
    w_init, act = ji.initializers.get(init), ji.activations.get(activation)
    sat_lo, sat_hi = saturation(activation)
    lo, hi = hist_range(activation)

    def run(key):
        counter[0] += 1  # runs once per trace, i.e. per compile
        kx, kw, kc = jax.random.split(key, 3)
        x = jax.random.normal(kx, (cfg.batch_size, cfg.d_in))
        fans = [cfg.d_in] + [cfg.width] * (cfg.depth - 1)
        ws = [
            w_init(k, (n, cfg.width))
            for k, n in zip(jax.random.split(kw, cfg.depth), fans, strict=True)
        ]

        def forward(ws, probes):  # probes: zeros whose gradients are ∂L/∂z
            h, zs, hs = x, [], []
            for w, p in zip(ws, probes, strict=True):
                z = h @ w + p
                h = act(z)
                zs.append(z)
                hs.append(h)
            return h, (zs, hs)

        probes = [jnp.zeros((cfg.batch_size, cfg.width))] * cfg.depth
        _, vjp, (zs, hs) = jax.vjp(forward, ws, probes, has_aux=True)
        d_ws, d_zs = vjp(jax.random.normal(kc, (cfg.batch_size, cfg.width)))
        rows = []
        for z, h, dz, dw in zip(zs, hs, d_zs, d_ws, strict=True):
            sat = jnp.zeros(h.shape, bool)
            sat = sat if sat_lo is None else sat | (h < sat_lo)
            sat = sat if sat_hi is None else sat | (h > sat_hi)
            rows.append(
                {
                    "pre_mean": z.mean(),
                    "pre_var": z.var(),
                    "post_mean": h.mean(),
                    "post_var": h.var(),
                    "saturated": sat.mean(),
                    "dead": (h == 0).mean(),
                    "nonfinite": (~jnp.isfinite(z)).sum() + (~jnp.isfinite(h)).sum(),
                    "hist": jnp.histogram(h, bins=cfg.bins, range=(lo, hi))[0],
                    "grad_var": dz.var(),
                    "weight_grad_norm": jnp.linalg.norm(dw),
                }
            )
        return {k: jnp.stack([r[k] for r in rows]) for k in rows[0]}

    return jax.jit(run)
