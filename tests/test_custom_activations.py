"""Your own activation: a plain function ``x -> array`` in a Grid, a TrainGrid, theory and
the reports, given as it is or through ``ji.activations.custom``."""

import pickle

import jax
import jax.numpy as jnp
import matplotlib.text
import numpy as np
import pytest

import jaxinit as ji
from tests._network import backward, forward_stats, network
from tests._tolerances import ENGINE_ATOL, ENGINE_RTOL, THEORY_QUAD_ATOL, THEORY_QUAD_RTOL


def softsign(x):
    """x / (1 + |x|): in (-1, 1), no jaxinit activation is this."""
    return x / (1 + jnp.abs(x))


def my_tanh(x):
    return jnp.tanh(x)


def my_relu(x):
    return jnp.maximum(x, 0)


def test_jaxs_functions_are_jaxinits_activations_and_others_are_labelled_by_name():
    get = ji.activations.get
    assert get(jax.nn.relu) == get("relu")
    assert get(jnp.tanh) == get("tanh")
    assert get(jax.nn.gelu) == get("gelu")  # jax's default: the tanh approximation
    assert get(jax.nn.leaky_relu) == get("leaky_relu")  # slope 0.01, jax's and jaxinit's
    act = get(softsign)
    assert (act.spec, act.bounds, act.saturation, act.gain) == (
        "softsign",
        (-np.inf, np.inf),  # not declared: unbounded, so no saturation test
        (None, None),
        None,
    )
    declared = ji.activations.custom(softsign, name="ss", bounds=(-1.0, 1.0))
    assert declared.saturation == (-0.99, 0.99)  # the table's rule: within 1% of the bound
    assert declared != act  # another label
    # two different functions under one label are two activations (programs are cached by it)
    assert ji.activations.custom(my_tanh, name="t") != ji.activations.custom(softsign, name="t")
    x = jnp.linspace(-3, 3, 7)
    np.testing.assert_array_equal(act(x), softsign(x))
    # a half-open range: the finite end alone sets the test (a zero end has none, as relu's)
    assert ji.activations.custom(softsign, name="a", bounds=(-1.0, np.inf)).saturation == (
        -0.99,
        None,
    )
    half = ji.activations.custom(my_relu, bounds=(0.0, np.inf))
    assert (half.bounds, half.saturation) == ((0.0, np.inf), (None, None))


def test_bad_custom_activations_say_what_to_give():
    with pytest.raises(ValueError, match=r"has no name.*ji.activations.custom\(fn, name="):
        ji.activations.get(lambda x: x)
    with pytest.raises(ValueError, match=r"name='relu' is jaxinit's own activation"):
        ji.activations.custom(my_relu, name="relu")
    with pytest.raises(TypeError, match="must be a function"):
        ji.activations.custom(1.0, name="one")
    with pytest.raises(ValueError, match="lo < hi"):
        ji.activations.custom(softsign, bounds=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"bounds must be \(lo, hi\); got \(1.0,\)"):
        ji.activations.custom(softsign, bounds=(1.0,))
    with pytest.raises(ValueError, match=r"saturation\[0\] must be a finite real"):
        ji.activations.custom(softsign, saturation=(-np.inf, 0.9))
    with pytest.raises(TypeError, match="expected a activation"):  # another registry's object
        ji.activations.get(ji.initializers.get("he_normal"))
    with pytest.raises(TypeError, match="dead_region must be True or False"):
        ji.activations.custom(softsign, dead_region="yes")
    with pytest.raises(pickle.PicklingError, match="'softsign' cannot be pickled"):
        pickle.dumps(ji.activations.get(softsign))
    with pytest.raises(ValueError, match=r"has no name.*ji.activations.custom"):
        ji.Grid(inits=["he_normal"], activations=[lambda x: x], depth=2, width=4)


def test_a_custom_activation_in_a_grid_equals_a_plain_loop():
    grid = ji.Grid(
        inits=["glorot_normal"],
        activations=[softsign, jax.nn.relu],
        depth=3,
        width=12,
        seeds=[0, 3],
        batch_size=16,
    )
    assert grid.activations[1] == ji.activations.get("relu")
    res = ji.sweep(grid, progress=False)
    assert res.coords["activation"] == ("softsign", "relu")
    init, bias = ji.initializers.get("glorot_normal"), ji.initializers.get("zeros")
    act = grid.activations[0]
    for seed in (0, 3):
        net = network(grid, init, bias, 3, 12, seed)
        ref = forward_stats(net, act)
        dz, _ = backward(net, act)
        got = res.sel(init="glorot_normal", seed=seed, activation="softsign")
        for field in ("pre_mean", "pre_var", "post_mean", "post_var"):
            np.testing.assert_allclose(got[field], ref[field], rtol=2e-4, atol=1e-6)
        np.testing.assert_allclose(got.grad_var, [d.var() for d in dz], rtol=2e-4)


def test_tanh_written_by_hand_is_tanh_in_sweep_theory_and_training():
    """The same function under another label: the sweep's statistics (saturation from the
    declared bounds included), theory (the quadrature's panels differ: tanh's tails are
    graded to 12, a custom activation's to 24) and training agree with tanh's."""
    mine = ji.activations.custom(my_tanh, bounds=(-1.0, 1.0))
    grid = ji.Grid(
        inits=["normal(stddev=0.3)"],
        activations=[mine, "tanh"],
        depth=3,
        width=16,
        seeds=2,
        batch_size=8,
    )
    res = ji.sweep(grid, progress=False)
    a, b = res.sel(activation="my_tanh"), res.sel(activation="tanh")
    for field in ("pre_var", "post_var", "saturated", "grad_var", "hist"):
        np.testing.assert_allclose(a[field], b[field], rtol=ENGINE_RTOL, atol=ENGINE_ATOL)
    assert b.saturated.max() > 0  # the test ran on saturated units
    theory = ji.theory.predict(grid)
    for field in ("pre_var", "post_var", "saturated"):
        np.testing.assert_allclose(
            theory.sel(activation="my_tanh")[field],
            theory.sel(activation="tanh")[field],
            rtol=THEORY_QUAD_RTOL,
            atol=THEORY_QUAD_ATOL,
        )
    x, y = ji.data.make_circles(jax.random.key(0), 64, noise=0.1)
    kw = dict(
        inits=["he_normal"],
        seeds=2,
        hidden=(8,),
        output="sigmoid",
        batch_size=None,
        steps=5,
        optimizer="sgd(learning_rate=0.1)",
    )
    trained = ji.train(ji.TrainGrid(activations=[mine, "tanh"], **kw), (x, y), progress=False)
    np.testing.assert_allclose(
        trained.sel(activation="my_tanh").loss,
        trained.sel(activation="tanh").loss,
        rtol=ENGINE_RTOL,
    )


def test_declared_kinks_make_theory_exact_for_a_kinked_activation():
    """relu written by hand with its kink declared is relu to the quadrature's bit; without
    it the c-map loses digits (the docstring's 6e-4, checked here to be above the table's
    tolerance, so the declaration is what makes it exact)."""
    kinked = ji.activations.custom(my_relu, kinks=(0.0,))
    smooth = ji.activations.custom(my_relu, name="smooth_relu")
    kw = dict(q=1.0, sigma_w2=2.0, sigma_b2=0.1)
    ref = ji.theory.c_map("relu", 0.5, **kw)
    assert ji.theory.c_map(kinked, 0.5, **kw) == ref
    assert abs(ji.theory.c_map(smooth, 0.5, **kw) / ref - 1) > THEORY_QUAD_RTOL
    grid = ji.Grid(
        inits=["he_normal"], activations=[kinked, "relu"], depth=4, width=16, seeds=1, batch_size=8
    )
    theory = ji.theory.predict(grid)
    np.testing.assert_array_equal(
        theory.sel(activation="my_relu").pre_var, theory.sel(activation="relu").pre_var
    )


def test_reports_take_a_custom_activation():
    grid = ji.Grid(
        inits=["he_normal"], activations=[softsign], depth=3, width=8, seeds=2, batch_size=8
    )
    res = ji.sweep(grid, progress=False)
    table = ji.report.layer_table(
        res,
        theory=ji.theory.predict(grid),
        init="he_normal",
        activation="softsign",
        columns=["pre_var", "pre_var_theory"],
    )
    assert "pre_var_theory" in table
    assert len(table.splitlines()) == 2 + 3  # header, rule, 3 layers
    fig = ji.report.variance_vs_depth(res)
    assert "softsign" in " ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))
