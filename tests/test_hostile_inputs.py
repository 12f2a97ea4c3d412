"""Hostile input (issue 25): values that used to give wrong numbers or unclear errors.

Every bad value gets a clear error naming it and what is valid; none returns numbers
silently. One test (or parameter) per reported case.
"""

import dataclasses
import errno
import functools
import json
import math
import os
import re
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import theory as T
from jaxinit._spec import Registry
from jaxinit.cli import main
from jaxinit.isometry import jacobian_spectrum
from jaxinit.sweeping import MAX_SEEDS
from tests._tolerances import (
    ISO_CRITICAL_DEPTH,
    ISO_CRITICAL_INPUTS,
    ISO_CRITICAL_MEAN_ATOL,
    ISO_CRITICAL_Q,
    ISO_CRITICAL_SEEDS,
    ISO_NU_RTOL,
    ISO_WIDTH,
)

BASE = dict(inits=["he_normal"], activations=["relu"], depth=2, width=4, seeds=1, batch_size=4)
TRAIN = dict(inits=["he_normal"], hidden=(4,), steps=2, batch_size=None)


def _grid(**kwargs):
    return ji.Grid(**{**BASE, **kwargs})


def _data(n=16, d=3):
    x = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    return x, np.arange(n) % 2


class _Many(Sequence):
    """A list of ``n`` distinct seeds that is never built: reading past its first entries
    means a limit was checked by iterating, not by length."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice) or not -self.n <= i < self.n:
            raise IndexError(i)
        assert i % self.n < 100, "iterated a list longer than the seed limit"
        return i % self.n


def _cli_error(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


SWEEP = ["sweep", "--activations", "relu", "--depth", "2", "--width", "4", "--seeds", "1",
         "--batch-size", "8", "--no-theory", "--no-gradients"]  # fmt: skip


# -- 9: sizes checked before anything is allocated ------------------------------------------


def test_predict_refuses_a_result_too_large_for_memory():
    # 10⁷ seeds × 1000 layers × 8 float32 fields: 298 GiB
    grid = _grid(seeds=10**7, depth=1000)
    with pytest.raises(ValueError, match=r"predict: .* needs about \d+\.\d GiB of host memory"):
        T.predict(grid)


def test_propagate_refuses_a_depth_too_large_for_memory():
    with pytest.raises(ValueError, match=r"propagate: depth=100000000000 needs about \d+\.\d GiB"):
        T.propagate("relu", 1.0, 10**11, sigma_w2=2.0, sigma_b2=0.0)


# -- 11: booleans in specs are booleans ----------------------------------------------------


@pytest.mark.parametrize("value", ["'no'", "1", "None"])
def test_optimizer_booleans_must_be_booleans(value):
    spec = "sgd(learning_rate=0.1, momentum=0.9, nesterov={})"
    with pytest.raises(TypeError, match=rf"nesterov must be True or False; got {value}"):
        ji.TrainGrid(**{**TRAIN, "optimizer": spec.format(value)})
    assert ji.TrainGrid(**{**TRAIN, "optimizer": spec.format("True")})


def test_registry_booleans_must_be_booleans():
    @dataclasses.dataclass(frozen=True)
    class Thing:
        name: str = ""
        hparams: tuple = ()
        spec: str = ""

    reg = Registry("thing", Thing)

    @reg.register()
    def flagged(*, fast: bool = False, level: float = 1.0) -> Thing:
        return Thing()

    with pytest.raises(ValueError, match=r"in spec \"flagged\(fast='no'\)\": .*fast must be True or False; got 'no'"):  # fmt: skip
        reg.get("flagged(fast='no')")
    with pytest.raises(TypeError, match=r"fast must be True or False; got 1"):
        flagged(fast=1)
    assert reg.get("flagged(fast=True)").spec == "flagged(fast=True)"
    with pytest.raises(ValueError, match=r"approximate must be True or False; got 'no'"):
        ji.activations.get("gelu(approximate='no')")


# -- 12: labels and inputs that train could not use -----------------------------------------


def test_train_refuses_labels_that_int32_cannot_hold():
    x, y = _data()
    y[0] = 2**40
    with pytest.raises(
        ValueError, match=r"labels must be integers in \[0, 2\*\*31\).*1099511627776"
    ):
        ji.train(ji.TrainGrid(**TRAIN), (x, y))


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (_data()[0] + 1j, r"train: data x must hold real numbers; got dtype complex"),
        (_data()[0].astype(str), r"train: data x must hold real numbers; got dtype <U"),
        (_data()[0].astype(object), r"train: data x must hold real numbers; got dtype object"),
        (np.zeros((16, 0)), r"train: data x must have shape \(n >= 1, d >= 1\); got \(16, 0\)"),
    ],
)
def test_train_refuses_complex_string_and_empty_inputs(x, match):
    with pytest.raises(ValueError, match=match):
        ji.train(ji.TrainGrid(**TRAIN), (x, _data()[1]))


def test_grid_and_train_share_the_input_check():
    with pytest.raises(ValueError, match=r"Grid: inputs must hold real numbers; got dtype complex"):
        _grid(inputs=np.ones((4, 3), complex), batch_size=None)


# -- 13: histogram ranges whose float32 edges collapse -------------------------------------


@pytest.mark.parametrize(
    "pair", [(0, 1e-46), (1, 1.00000001), (-1e39, 1e39), (-3e38, 3e38), (1e30, 1e30 + 1e20)]
)
def test_hist_range_must_give_increasing_finite_float32_edges(pair):
    with pytest.raises(ValueError, match=r"hist_range=.* float32 edges .* 30 bins"):
        _grid(hist_range=pair, bins=30)


def test_a_narrow_hist_range_fits_fewer_bins():
    lo, hi = 1.0, 1.0 + 8 * float(np.finfo(np.float32).eps)
    assert _grid(hist_range=(lo, hi), bins=4).hist_range == (lo, hi)
    with pytest.raises(ValueError, match=r"hist_range"):
        _grid(hist_range=(lo, hi), bins=64)


# -- 14: one seed limit, for Grid and TrainGrid, counts and lists ---------------------------


def test_one_seed_limit_for_grids_counts_and_lists():
    over = MAX_SEEDS + 1
    for make in (lambda s: _grid(seeds=s), lambda s: ji.TrainGrid(**{**TRAIN, "seeds": s})):
        for seeds in (over, _Many(over), range(over)):
            with pytest.raises(ValueError, match=r"seeds=.* more than one grid holds \(10,000,000\)"):  # fmt: skip
                make(seeds)
    with pytest.raises(ValueError, match=r"TrainGrid: seeds=3000000000 is more than one grid"):
        ji.TrainGrid(**{**TRAIN, "seeds": 3_000_000_000})
    with pytest.raises(ValueError, match=r"TrainGrid: seeds must be in \[0, 2\*\*31\).*got 2147483648"):  # fmt: skip
        ji.TrainGrid(**{**TRAIN, "seeds": [0, 2**31]})
    assert ji.TrainGrid(**{**TRAIN, "seeds": range(2, 4)}).seeds == range(2, 4)


def test_grids_refuse_initializers_that_ask_for_another_dtype():
    """Every grid draws its weights in float32: a grid of he_normal(dtype='bfloat16') swept
    in float32 and labelled its results bfloat16; now each grid refuses it, naming the field."""
    bf16 = ji.initializers.he_normal(dtype=jnp.bfloat16)
    f16 = ji.initializers.zeros(dtype=jnp.float16)
    mlp = functools.partial(ji.models.MLP, d_in=4, width=4, depth=1)
    cases = [
        (lambda: _grid(inits=[bf16]), r"Grid: inits holds \"he_normal\(dtype='bfloat16'\)\""),
        (lambda: _grid(bias_inits=f16), r"Grid: bias_inits holds .*draws in float16"),
        (lambda: ji.TrainGrid(**{**TRAIN, "inits": [bf16]}), r"TrainGrid: inits holds"),
        (lambda: ji.TrainGrid(**{**TRAIN, "output_init": f16}), r"TrainGrid: output_init holds"),
        (lambda: ji.ModelGrid(model=mlp, inits=[bf16], input_shape=(2, 4)), r"ModelGrid: inits"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match + r".*float32"):
            make()
    float32 = ji.initializers.he_normal(dtype=jnp.float32)  # what the grids draw: accepted
    assert _grid(inits=[float32]).inits[0].spec == "he_normal(dtype='float32')"


def test_cli_train_refuses_three_billion_seeds(capsys):
    argv = ["train", "--data", "circles", "--inits", "he_normal", "--seeds", "3000000000",
            "--hidden", "4", "--steps", "2"]  # fmt: skip
    assert "seeds=3000000000 is more than one grid holds" in _cli_error(capsys, argv)


# -- 15: hyperparameters whose float32 value or variance is not finite ----------------------


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("normal(stddev=1e308)", r"stddev=1e\+308 is beyond float32's range"),
        ("normal(stddev=1e20)", r"normal: the variance stddev² = 1e\+40 is beyond float32's"),
        ("uniform(low=-3e38, high=3e38)", r"uniform: the variance .* is beyond float32's"),
        ("truncated_normal(stddev=1e30)", r"truncated_normal: the variance .* beyond float32"),
        ("glorot_normal(gain=1e200)", r"gain=1e\+200 is beyond float32's range"),
        ("variance_scaling(scale=1e39)", r"scale=1e\+39 is beyond float32's range"),
        ("he_normal(a=1e300)", r"a=1e\+300 is beyond float32's range"),
        ("orthogonal(scale=1e30)", r"orthogonal: the variance .* beyond float32"),
        ("constant(value=1e39)", r"value=1e\+39 is beyond float32's range"),
        ("sparse(stddev=1e20)", r"sparse: the variance .* beyond float32"),
    ],
)
def test_initializer_hyperparameters_must_fit_float32(spec, match):
    with pytest.raises(ValueError, match=match):
        ji.initializers.get(spec)
    with pytest.raises(ValueError, match=match):
        _grid(inits=[spec])


def test_cli_refuses_an_infinite_initializer(capsys):
    argv = [*SWEEP[:1], "--inits", "normal(stddev=1e308)", *SWEEP[1:]]
    assert "stddev=1e+308 is beyond float32's range" in _cli_error(capsys, argv)


# -- 16: theory outside the range where float32 quadrature means anything -------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: T.variance_map("tanh", 1e300, sigma_w2=1.0, sigma_b2=0.0), ValueError,
         r"variance_map: q = 1e\+300 is beyond 2\.7e\+36"),
        (lambda: T.variance_map("relu", 1e39, sigma_w2=1.0, sigma_b2=0.0), ValueError,
         r"variance_map: q = 1e\+39 is beyond"),
        (lambda: T.q_star("tanh", sigma_w2=1e308, sigma_b2=0.0), ValueError,
         r"q_star: sigma_w2 = 1e\+308 is beyond"),
        (lambda: T.critical_sigma_w2("tanh", sigma_b2=1e12), ValueError,
         r"critical_sigma_w2: sigma_b2 = 1e\+12 is beyond Q_MAX = 1e\+06"),
        (lambda: T.divergence_sigma_w2("tanh", sigma_b2=1e12), ValueError,
         r"divergence_sigma_w2: sigma_b2 = 1e\+12 is beyond Q_MAX"),
        (lambda: T.kernels("tanh", np.ones((2, 3)) * 1e30, depth=2, sigma_w2=1.0, sigma_b2=0.0),
         ValueError, r"kernels: the first layer's variance .* 1e\+60 is beyond"),
        (lambda: T.q_star("tanh", sigma_w2=1.0, sigma_b2=0.0, tol=-1), ValueError,
         r"q_star: tol must be a finite real number > 0; got -1"),
        (lambda: T.q_star("tanh", sigma_w2=1.0, sigma_b2=0.0, tol=math.nan), ValueError,
         r"tol must be a finite real number > 0; got nan"),
        (lambda: T.depth_scales("tanh", sigma_w2=1.0, sigma_b2=0.0, tol="1e-5"), TypeError,
         r"depth_scales: tol must be a finite real number"),
        (lambda: T.q_star("tanh", sigma_w2=1.0, sigma_b2=0.0, max_iter=0), ValueError,
         r"q_star: max_iter must be an int >= 1; got 0"),
        (lambda: T.q_star("tanh", sigma_w2=1.0, sigma_b2=0.0, max_iter=-3), ValueError,
         r"max_iter must be an int >= 1; got -3"),
        (lambda: T.q_star("tanh", sigma_w2=1.0, sigma_b2=0.0, max_iter=2.5), TypeError,
         r"max_iter must be an int >= 1; got 2\.5"),
        (lambda: T.q_star("tanh", sigma_w2=True, sigma_b2=0.0), TypeError,
         r"q_star: sigma_w2 must be a real number or an array of real numbers; got True"),
        (lambda: T.sigma_b2("zeros", width=0), ValueError,
         r"sigma_b2: width must be an int >= 1; got 0"),
        (lambda: T.sigma_w2("he_normal", (0, 4)), ValueError,
         r"sigma_w2: shape must be .* >= 1; got \(0, 4\)"),
        (lambda: T.chi1("tanh", q=1e40, sigma_w2=1.0), ValueError, r"chi1: q = 1e\+40 is beyond"),
        (lambda: T.c_map("tanh", 0.5, q=1.0, sigma_w2=1e39, sigma_b2=0.0), ValueError,
         r"c_map: sigma_w2 = 1e\+39 is beyond"),
    ],
)  # fmt: skip
def test_theory_refuses_what_float32_cannot_compute(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fixed_points_beyond_q_max_warn():
    # tanh's q* ≈ σ_w² lies past 1e30, where it would be read as diverged: said, not silent
    with pytest.warns(RuntimeWarning, match=r"q_star: sigma_w2 = 1e\+31 lies beyond 1e\+06"):
        T.q_star("tanh", sigma_w2=1e31, sigma_b2=0.0)
    with pytest.warns(RuntimeWarning, match=r"depth_scales: q\* = .* lies beyond 1e\+06"):
        T.depth_scales("tanh", sigma_w2=9e5, sigma_b2=9e5)  # q* ≈ 1.8e6
    assert bool(T.q_star("relu", sigma_w2=1e31, sigma_b2=0.0).diverged)  # exact at any q


def test_theory_limits_follow_the_dtype():
    # under float64 the same variances are computable
    with jax.enable_x64(True):
        with pytest.warns(RuntimeWarning, match="beyond 1e"):
            v = T.variance_map("tanh", np.float64(1e39), sigma_w2=np.float64(1.0), sigma_b2=0.0)
        assert v.dtype == np.float64
        assert float(v) == pytest.approx(1.0, rel=1e-6)


def test_cli_theory_refuses_an_overflowing_sigma_w2(capsys):
    last = _cli_error(capsys, ["theory", "tanh", "--sigma-w2", "1e308"])
    assert "--sigma-w2 = 1e+308 is beyond" in last


# -- 17: messages that name the bad value and what is valid ---------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ji.initializers.get("he_normal")(0, (3, 4)), TypeError,
         r"he_normal: key must be a jax PRNG key such as jax\.random\.key\(0\); got 0 \(int\)"),
        (lambda: ji.initializers.get("he_normal")(np.zeros(2, np.float32), (3, 4)), TypeError,
         r"key must be a jax PRNG key .* got .*float32"),
        (lambda: ji.initializers.normal(0.1), TypeError,
         r"initializer 'normal' takes its hyperparameters by keyword only \(stddev, mean\); "
         r"write normal\(stddev=0\.1\)"),
        (lambda: ji.activations.leaky_relu(0.2), TypeError,
         r"keyword only \(negative_slope\); write leaky_relu\(negative_slope=0\.2\)"),
        (lambda: ji.sweep(_grid(), out=123), TypeError,
         r"sweep: out must be a directory path \(str or os\.PathLike\) or None; got 123"),
        (lambda: ji.sweep(_grid(), out="a\x00b"), ValueError,
         r"sweep: out='a\\x00b' is not a valid path: it contains a NUL character"),
        (lambda: ji.train(ji.TrainGrid(**TRAIN), _data(), out=b"x"), TypeError,
         r"train: out must be a directory path"),
        (lambda: ji.train(ji.TrainGrid(**TRAIN), _data(), out="a\x00b"), ValueError,
         r"train: out='a\\x00b' is not a valid path"),
        (lambda: ji.report.report_sweep(ji.sweep(_grid()), 123), TypeError,
         r"report_sweep: out_dir must be a directory path \(str or os\.PathLike\); got 123"),
        (lambda: ji.TrainGrid(**{**TRAIN, "optimizer": "sgd(lr=0.1)"}), ValueError,
         r"optimizer 'sgd\(lr=0\.1\)': optax\.sgd has no hyperparameter 'lr'; valid: "
         r"learning_rate, momentum, nesterov"),
        (lambda: _grid(inputs=None), TypeError,
         r"Grid: inputs must be 'gaussian', 'uniform' or an array \(batch, d_in\); got None"),
        (lambda: T.variance_map("tanh", 1.0, sigma_w2="1.0", sigma_b2=0.0), TypeError,
         r"variance_map: sigma_w2 must be a real number or an array of real numbers; got '1\.0'"),
        (lambda: T.variance_map("tanh", np.array([1 + 1j]), sigma_w2=1.0, sigma_b2=0.0),
         TypeError, r"variance_map: q must be a real number .* of dtype complex128"),
        (lambda: T.variance_map("tanh", None, sigma_w2=1.0, sigma_b2=0.0), TypeError,
         r"variance_map: q must be a real number or an array of real numbers; got None"),
        (lambda: T.kernels("tanh", np.ones((2, 3)), depth=2, sigma_w2="1", sigma_b2=0.0),
         TypeError, r"kernels: sigma_w2 must be a real number"),
    ],
)  # fmt: skip
def test_messages_name_the_value_and_what_is_valid(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_theory_checks_still_pass_tracers():
    f = jax.jit(lambda q: T.variance_map("tanh", q, sigma_w2=1.0, sigma_b2=0.0))
    assert np.isfinite(float(f(jnp.float32(2.0))))


def test_report_refuses_a_complex_field():
    res = ji.sweep(_grid())
    fields = dict(res.fields)
    fields["pre_var"] = fields["pre_var"].astype(np.complex64)
    bad = ji.SweepResult(dims=res.dims, coords=res.coords, fields=fields,
                         field_dims=res.field_dims, attrs=res.attrs)  # fmt: skip
    with pytest.raises(ValueError, match=r"field 'pre_var' is complex \(complex64\); reports"):
        ji.report.summary_table(bad)


def test_cli_inputs_of_python_objects_gives_no_pickle_advice(tmp_path, capsys):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1, "a"]], object), allow_pickle=True)
    last = _cli_error(capsys, [*SWEEP[:1], "--inits", "he_normal", *SWEEP[1:], "--inputs", str(path)])  # fmt: skip
    assert "holds Python objects (dtype object), not numbers" in last
    assert "allow_pickle" not in last


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_names_the_directory(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", _no_space)
    out = tmp_path / "sweep"
    with pytest.raises(OSError, match=rf"No space left on device.*{re.escape(str(out))}") as info:
        ji.sweep(_grid(), out=out)
    assert info.value.errno == errno.ENOSPC
    out = tmp_path / "train"
    with pytest.raises(OSError, match=rf"No space left on device.*{re.escape(str(out))}"):
        ji.train(ji.TrainGrid(**TRAIN), _data(), out=out)


def test_a_damaged_chunk_size_in_the_checkpoint_is_named(tmp_path):
    grid = _grid()
    ji.sweep(grid, out=tmp_path)
    manifest = tmp_path / "sweep.json"
    body = json.loads(manifest.read_text())
    body["spec"]["chunk_seeds"] = -5
    manifest.write_text(json.dumps(body))
    with pytest.raises(ValueError, match=r"sweep\.json records chunk_seeds=-5.*damaged"):
        ji.sweep(grid, out=tmp_path)


# -- part 5: small truths ------------------------------------------------------------------


def _tanh_critical(q_star):
    """σ_w², σ_b², μ₂/μ₁² - 1 of the critical tanh network whose fixed point is ``q_star``, by
    Gauss–Hermite (independent of jaxinit.theory): χ₁ = σ_w² μ₁ = 1 and q* = σ_w² E[φ²] + σ_b²."""
    z, w = np.polynomial.hermite_e.hermegauss(101)
    w = w / w.sum()
    u = np.sqrt(q_star) * z
    d2 = np.cosh(u) ** -4  # φ'(u)²
    mu1, mu2 = np.sum(w * d2), np.sum(w * d2**2)
    sw2 = 1 / mu1
    return sw2, q_star - sw2 * np.sum(w * np.tanh(u) ** 2), mu2 / mu1**2 - 1


@pytest.mark.slow
def test_jacobian_spectrum_at_criticality_has_pennington_moments():
    """Pennington, Schoenholz & Ganguli 2017 (orthogonal weights, χ₁ = 1): the eigenvalues
    λ = s² of JJᵀ have mean 1 and variance L (μ₂/μ₁² - 1) as N → ∞. With ``q`` the first
    layer's pre-activation variance, the natural call gives that network."""
    sw2, sb2, excess = _tanh_critical(ISO_CRITICAL_Q)
    keys = jax.random.split(jax.random.key(0), ISO_CRITICAL_SEEDS)
    kw = dict(init=f"orthogonal(scale={math.sqrt(sw2)})", activation="tanh",
              bias_init=f"normal(stddev={math.sqrt(sb2)})", depth=ISO_CRITICAL_DEPTH,
              width=ISO_WIDTH, n_inputs=ISO_CRITICAL_INPUTS)  # fmt: skip
    spec = jax.vmap(lambda k: jacobian_spectrum(k, q=ISO_CRITICAL_Q, **kw))(keys)
    lam = np.asarray(spec.singular_values, np.float64).reshape(
        ISO_CRITICAL_SEEDS, ISO_CRITICAL_INPUTS, -1
    )
    lam = lam**2
    assert lam.mean() == pytest.approx(1.0, abs=ISO_CRITICAL_MEAN_ATOL)
    nu = (lam.var(2) / lam.mean(2) ** 2).mean()
    assert nu == pytest.approx(ISO_CRITICAL_DEPTH * excess, rel=ISO_NU_RTOL)
    # q_in is the inputs' variance: (q - σ_b²)/σ_w² is the same network, bit for bit
    q_in = (ISO_CRITICAL_Q - sb2) / sw2
    same = jacobian_spectrum(keys[0], q_in=q_in, **kw)
    np.testing.assert_allclose(same.singular_values, spec.singular_values[0], rtol=1e-5)


def test_jacobian_spectrum_q_and_q_in_are_one_choice(key):
    kw = dict(init="orthogonal", activation="tanh", depth=2, width=8)
    with pytest.raises(ValueError, match=r"give q \(the first layer's pre-activation variance\) or q_in"):  # fmt: skip
        jacobian_spectrum(key, q=1.0, q_in=1.0, **kw)
    with pytest.raises(ValueError, match=r"q=0\.01 is below σ_b² = 0\.04"):
        jacobian_spectrum(key, q=0.01, bias_init="normal(stddev=0.2)", **kw)
    with pytest.raises(ValueError, match=r"q= needs the weight variance and bias second moment"):
        jacobian_spectrum(key, q=1.0, **{**kw, "init": jax.nn.initializers.orthogonal()})


def test_keras_convention_counts_the_named_axes_only():
    shape = (3, 3, 16, 32)
    keras = ji.initializers.variance_scaling(convention="keras", in_axis=2, out_axis=3)
    assert keras.variance(shape) == 1 / 16  # Keras' input_axes=[2], output_axes=[3]
    glorot = ji.initializers.glorot_normal(convention="keras", in_axis=2, out_axis=3)
    assert glorot.variance(shape) == 2 / (16 + 32)
    # without explicit axes Keras, like jax, multiplies in the receptive field
    assert ji.initializers.variance_scaling(convention="keras").variance(shape) == 1 / 144
    # and jax's rule stays jax's, bit for bit
    jax_rule = ji.initializers.variance_scaling(in_axis=2, out_axis=3)
    assert jax_rule.variance(shape) == 1 / 144
    reference = jax.nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal",
                                                     in_axis=2, out_axis=3)  # fmt: skip
    np.testing.assert_array_equal(
        jax_rule(jax.random.key(1), shape), reference(jax.random.key(1), shape)
    )
