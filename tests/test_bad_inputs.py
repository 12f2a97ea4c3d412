"""Bad input is refused up front: the exception type, and a message naming the value and the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji

BASE = dict(inits=["he_normal"], activations=["relu"], depth=2, width=8, seeds=1, batch_size=4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(root_seed=2.5), TypeError, r"root_seed must be an int >= 0; got 2.5"),
        (dict(root_seed="0"), TypeError, r"root_seed must be an int >= 0; got '0'"),
        (dict(root_seed=None), TypeError, r"root_seed must be an int >= 0; got None"),
        (dict(root_seed=True), TypeError, r"root_seed must be an int >= 0; got True"),
        (
            dict(root_seed=2**70),
            ValueError,
            r"root_seed must be in \[0, 2\*\*32\); got 1180591620717411303424",
        ),
        (dict(seeds=[0, 2**31]), ValueError, r"seeds must be in \[0, 2\*\*31\).*got 2147483648"),
        (dict(bins=10**9), ValueError, r"bins must be at most 10000; got 1000000000"),
        (dict(hist_range=(0,)), TypeError, r"hist_range must be a pair of numbers.*\(0,\)"),
        (dict(hist_range="abc"), TypeError, r"hist_range must be a pair.*'abc'"),
        (dict(hist_range=5), TypeError, r"hist_range must be a pair.*5"),
        (dict(hist_range=("a", "b")), TypeError, r"hist_range must be a pair.*\('a', 'b'\)"),
        (dict(inputs=np.ones((4, 3), complex)), ValueError, r"real numbers; got dtype complex128"),
        (dict(inputs=np.array([[1, "a"]], object)), ValueError, r"got dtype object"),
        (dict(inputs=[[1, "a"]]), ValueError, r"got dtype <U"),
        (
            dict(inputs=np.ones((4, 3)), d_in=5),
            ValueError,
            r"d_in=5 contradicts the inputs array of shape \(4, 3\)",
        ),
        (dict(inputs=np.ones((4, 3)), batch_size=7), ValueError, r"batch_size=7 contradicts"),
        (dict(gradients="yes"), TypeError, r"gradients must be True or False; got 'yes'"),
    ],
)
def test_bad_grid(kwargs, error, match):
    with pytest.raises(error, match=match):
        ji.Grid(**{**BASE, **kwargs})


@pytest.mark.parametrize(
    ("grid", "kwargs", "error", "match"),
    [
        ("x", {}, TypeError, r"sweep takes a jaxinit Grid or ModelGrid; got str"),
        (
            None,
            dict(devices=[]),
            ValueError,
            r"devices must be a non-empty list of jax devices.*got \[\]",
        ),
        (None, dict(devices=["cpu"]), ValueError, r"got \['cpu'\]"),
        (None, dict(on_update=5), TypeError, r"on_update must be a function \(update\).*got 5"),
        (None, dict(on_chunk=5), TypeError, r"on_chunk must be a function.*got 5"),
        (None, dict(progress="yes"), TypeError, r"progress must be True, False or None; got 'yes'"),
        (
            None,
            dict(memory_budget=0),
            ValueError,
            r"memory_budget must be a positive number of bytes; got 0",
        ),
        (
            None,
            dict(chunk_size=0),
            ValueError,
            r"chunk_size \(seeds per chunk\) must be an int >= 1 or None; got 0",
        ),
        (None, dict(lanes=0), ValueError, r"lanes must be an int >= 1; got 0"),
    ],
)
def test_bad_sweep_arguments(grid, kwargs, error, match):
    with pytest.raises(error, match=match):
        ji.sweep(ji.Grid(**BASE) if grid is None else grid, **kwargs)


def test_a_grid_too_large_for_memory_is_refused_before_it_runs():
    # 10,000 networks × 100 layers × 10,000 bins of int64 counts: about 75 GiB, over half of
    # the memory of any machine this runs on
    grid = ji.Grid(inits=["he_normal"], activations=["relu"], depth=100, width=8, seeds=10_000,
                   batch_size=4, bins=10_000)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"needs about \d+\.\d GiB of host memory.*50% of this host"
    ):
        ji.sweep(grid)
    with pytest.raises(ValueError, match=r"seeds=3000000000 is more than one grid holds"):
        ji.Grid(**{**BASE, "seeds": 3_000_000_000})


def test_devices_must_be_jax_devices_even_when_given_one():
    assert ji.sweep(ji.Grid(**BASE), devices=jax.devices()[:1]).post_var.shape == (1, 1, 1, 2)


# -- specs, initializers, optimizers and theory -------------------------------------------


def _init(spec):
    return ji.initializers.get(spec)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: _init("normal(stddev=0.1, stddev=0.2)"), ValueError, r"'stddev' is given twice"),
        (
            lambda: _init("he_normal(in_axis='a')"),
            ValueError,
            r"in_axis must be an int or a tuple of ints; got 'a'",
        ),
        (
            lambda: ji.initializers.orthogonal(column_axis="a"),
            TypeError,
            r"column_axis must be an int; got 'a'",
        ),
        (
            lambda: _init("orthogonal(column_axis=7)")(jax.random.key(0), (4, 4)),
            ValueError,
            r"orthogonal\(column_axis=7\) needs a weight shape of rank >= 8.*got shape \(4, 4\)",
        ),
        (
            lambda: _init("he_normal")(jax.random.key(0), (2.5, 4)),
            TypeError,
            r"shape must be a sequence of ints; got \(2\.5, 4\)",
        ),
        (
            lambda: ji.Grid(**{**BASE, "inits": ["orthogonal(column_axis=7)"]}),
            ValueError,
            r"init 'orthogonal\(column_axis=7\)' cannot draw this grid's layer of shape",
        ),
        (
            lambda: ji.Grid(**{**BASE, "inits": ["he_normal(in_axis=9)"]}),
            ValueError,
            r"axis 9 is out of range for shape",
        ),
    ],
)
def test_bad_specs_and_initializers(call, error, match):
    with pytest.raises(error, match=match):
        call()


TRAIN = dict(inits=["he_normal"], hidden=(4,), steps=2)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(bias_inits=["zeros", "ones"]),
            ValueError,
            r"bias_inits takes one spec \(every model's biases\); got \['zeros', 'ones'\]",
        ),
        (
            dict(optimizer="sgd(learning_rate='abc')"),
            TypeError,
            r"learning_rate must be a number; got 'abc'",
        ),
        (
            dict(optimizer="sgd(learning_rate=(1, 2))"),
            TypeError,
            r"learning_rate must be a number; got \(1, 2\)",
        ),
        (
            dict(optimizer="sgd(learning_rate=1e400)"),
            ValueError,
            r"learning_rate=inf is not a finite number",
        ),
        (
            dict(optimizer="sgd(learning_rate=-0.1)"),
            ValueError,
            r"learning_rate must be in \(0, inf\); got -0\.1",
        ),
        (
            dict(optimizer="adam(learning_rate=1e-3, b2=1.0)"),
            ValueError,
            r"b2 must be in \[0, 1\); got 1\.0",
        ),
        (dict(optimizer="apply_every(k=0)"), ValueError, r"k must be in \[1, inf\); got 0"),
        (
            dict(optimizer="chain()"),
            ValueError,
            r"optax\.chain combines transformations; give a list of specs",
        ),
    ],
)
def test_bad_train_grid_and_optimizer(kwargs, error, match):
    with pytest.raises(error, match=match):
        ji.TrainGrid(**{**TRAIN, **kwargs})


def test_good_optimizer_hyperparameters_are_accepted():
    for spec in ["sgd(learning_rate=0.1, momentum=0.9)", "sgd(learning_rate=0.1, momentum=None)",
                 "adamw(learning_rate=1e-3, weight_decay=1e-4)", "apply_every(k=2)"]:  # fmt: skip
        assert ji.TrainGrid(**{**TRAIN, "optimizer": spec}).optimizer == spec


T = ji.theory


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: T.critical_sigma_w2("tanh", sigma_b2=-1),
            r"critical_sigma_w2: sigma_b2 must be finite and >= 0; got -1\.0",
        ),
        (lambda: T.critical_sigma_w2("tanh", sigma_b2=np.nan), r"sigma_b2 must be finite.*got nan"),
        (
            lambda: T.q_star("tanh", sigma_w2=-1, sigma_b2=0.0),
            r"q_star: sigma_w2 must be finite and >= 0; got -1\.0",
        ),
        (lambda: T.depth_scales("tanh", sigma_w2=-1, sigma_b2=0.0), r"depth_scales: sigma_w2"),
        (
            lambda: T.depth_scales("tanh", sigma_w2=1.0, sigma_b2=-0.5),
            r"sigma_b2 must be finite and >= 0; got -0\.5",
        ),
        (
            lambda: T.variance_map("tanh", -1.0, sigma_w2=1.0, sigma_b2=0.0),
            r"variance_map: q must be finite and >= 0; got -1\.0",
        ),
        (
            lambda: T.c_map("tanh", 1.5, q=1.0, sigma_w2=1.0, sigma_b2=0.0),
            r"c_map: c must be finite and in \[-1, 1\]; got 1\.5",
        ),
        (
            lambda: T.phase_diagram("tanh", sigma_w2=[1.0, -2.0], sigma_b2=[0.0]),
            r"phase_diagram: sigma_w2.*got -2\.0",
        ),
        (
            lambda: T.propagate("relu", -1.0, 3, sigma_w2=2.0, sigma_b2=0.0),
            r"propagate: q0 must be finite and >= 0",
        ),
    ],
)
def test_theory_refuses_values_outside_its_domain(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_theory_checks_do_not_stop_jit_or_vmap():
    f = jax.jit(jax.vmap(lambda w: T.q_star("tanh", sigma_w2=w, sigma_b2=0.05).q))
    assert np.all(np.isfinite(f(jnp.asarray([0.5, 1.0, 2.0]))))


def test_propagate_flags_the_layer_where_float32_overflows():
    # relu with σ_w² = 1000: q_0 = 1000 and q_l = 1000·500^l (E[relu(z)²] = q/2). Layer 13's
    # q = 1000·500^13 = 1.2e38 still fits in float32 (3.4e38), but its E[φ²] does not: the
    # quadrature squares φ(√q z) at |z| up to 8, 64·1.2e38 = inf. So 13 is the first flagged.
    m = T.propagate("relu", 1.0, 20, sigma_w2=1e3, sigma_b2=0.0)
    first_bad = int(np.argmax(~np.isfinite(np.asarray(m.pre_var)) | ~np.isfinite(np.asarray(m.post_second))))  # fmt: skip
    assert int(m.diverged_layer) == first_bad == 13
    assert np.isfinite(float(m.pre_var[13]))
    assert not np.isfinite(float(m.post_second[13]))
    assert np.all(np.isfinite(np.asarray(m.pre_var)[:first_bad]))
    assert int(T.propagate("relu", 1.0, 20, sigma_w2=2.0, sigma_b2=0.0).diverged_layer) == -1
