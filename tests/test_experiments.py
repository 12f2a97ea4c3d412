"""Smoke tests: every sweep script's main runs at --quick scale and writes what it promises."""

import hashlib
import itertools
import json
import pathlib

import jax
import numpy as np
import pytest
from _tolerances import MODEL_ATOL, MODEL_RTOL, THEORY_QUAD_ATOL, THEORY_QUAD_RTOL

import jaxinit as ji
from sweeps import seed_histograms


@pytest.mark.slow
def test_seed_histograms_quick(tmp_path, capsys):
    summary = seed_histograms.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert (tmp_path / "figures" / "histograms.png").stat().st_size > 10_000
    # each thing written once: what the docstring and README list, and no two files alike
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "figures", "report.html", "summary.json", "sweep", "tables"]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "grad_var.png", "heatmap.png", "histograms.png", "post_var.png", "pre_var.png"]  # fmt: skip
    # README's "The two commands" lists exactly these, in its table of what the job writes
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    listed = readme.split("It writes each of these once", 1)[1].split("\n\n", 2)[1]
    paths = {p.strip("` ") for row in listed.splitlines()[2:] for p in row.split("|")[1].split(",")}
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
               if p.is_file() and p.parts[len(tmp_path.parts)] != "sweep"} | {"sweep/"}  # fmt: skip
    assert paths == written
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]
    assert len(set(digests)) == len(files), [p for p in files if digests.count(
        hashlib.sha256(p.read_bytes()).hexdigest()) > 1]  # fmt: skip
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert len(summary) == len(seed_histograms.INITS) * len(seed_histograms.ACTIVATIONS)
    # std 0.01 under tanh collapses toward 0 layer by layer; He under relu does not
    collapse = summary["normal(stddev=0.01) | tanh"]["post_var"]
    assert all(b < a for a, b in itertools.pairwise(collapse))
    assert summary["he_normal | relu"]["post_var"][-1] > 100 * collapse[-1]
    res = ji.SweepResult.load(tmp_path / "sweep" / "result")
    assert res.hist.shape == (4, 3, 2, 5, 30)
    np.testing.assert_array_equal(res.hist.sum(-1).max(), 64 * 16)  # sigmoid/tanh: all in range
    assert "he_normal | relu" in capsys.readouterr().out


def test_keras_dense256_quick(tmp_path):
    from sweeps import keras_dense256

    summary = keras_dense256.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert set(summary) == {"batch1", "batch64"}
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    # the page's title names the width actually run, as its sections do
    assert "<h1>Keras Dense(32) under three initializers</h1>" in html
    assert "Dense(256)" not in html
    assert html.count("<h2>Dense(32) on ") == 2
    assert "<h3>Grid: batch 1</h3>" in html
    assert "<h3>Grid: batch 64</h3>" in html
    for batch in summary.values():
        std1 = batch["normal(stddev=1.0) | sigmoid"]
        glorot = batch["glorot_uniform(convention='keras') | sigmoid"]
        # Var(z) = 784 · Var(w) · E[x²] with E[x²] = 1/3: 261 under std 1; Glorot ≈ 0.64
        # at the quick width of 32 units (Var w = 2 / (784 + 32))
        assert 150 < std1["pre_var"] < 400
        assert 0.3 < glorot["pre_var"] < 1.0
        assert std1["saturated"] > 0.5
        assert glorot["saturated"] < 0.05


def test_selu_self_normalizing_quick(tmp_path):
    from sweeps import selu_self_normalizing

    summary = selu_self_normalizing.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert (tmp_path / "moments.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    selu = summary["selu + lecun_normal | plain"]
    assert abs(selu["post_mean_layer12"]) < 0.2
    assert 0.6 < selu["post_var_layer12"] < 1.6
    # ELU with He drifts off (mean > 0.2) where SELU with LeCun stays centred
    assert summary["elu + he_normal | plain"]["post_mean_layer12"] > 0.2
    # batch norm centres every pre-activation, so SELU's post-activations sit at (0, 1)
    bn = summary["selu + lecun_normal | batchnorm"]
    assert abs(bn["post_mean_layer12"]) < 0.05
    assert abs(bn["post_var_layer12"] - 1) < 0.1
    # the figure's lines are summary.json's numbers, its legend names the band
    results = {bn: ji.SweepResult.load(tmp_path / name / "result")
               for bn, name in ((False, "sweep"), (True, "sweep-batchnorm"))}  # fmt: skip
    fig = selu_self_normalizing.plot(results)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert f"band: {selu_self_normalizing.BAND}; line: seed mean" in labels
    pair_labels = [f"{act} + {init}" for init, act in selu_self_normalizing.PAIRS]
    assert labels[:3] == pair_labels
    assert {k.split(" | ")[0] for k in summary} == set(pair_labels)
    (line,) = [l for l in fig.axes[2].get_lines() if l.get_label() == "selu + lecun_normal"]
    assert line.get_ydata()[-1] == pytest.approx(selu["post_var_layer12"], rel=1e-6)
    mean, lo, hi = selu_self_normalizing.seed_curves(results[False], "lecun_normal", "selu",
                                                     "post_var")  # fmt: skip
    assert np.all(lo <= mean)
    assert np.all(mean <= hi)
    assert np.any(lo < hi)


def test_circles_quick(tmp_path):
    from sweeps import circles

    summary = circles.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    acc = summary["test_accuracy"]
    # the result's labels, as in the figures; the human names only as a display mapping
    res = ji.TrainResult.load(tmp_path / "train" / "result")
    assert list(acc) == list(res.coords["init"]) == list(summary["display"])
    assert summary["display"]["he_normal"] == "He"
    # zeros never breaks the symmetry: one class everywhere, the balanced half
    assert acc["zeros"] == 0.5
    assert summary["final_loss"]["zeros"] == pytest.approx(np.log(2), abs=1e-4)
    assert acc["he_normal"] > 0.55
    html = (tmp_path / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2
    # the boundary titles start with the loss legend's labels, which are summary.json's keys
    titles = circles.boundary_titles(summary)
    legend = [t.get_text() for t in ji.report.loss_curves(res).legends[0].get_texts()]
    assert [t.split("\n")[0] for t in titles] == list(acc) == legend[: len(acc)]
    assert titles[2] == f"he_normal\nHe: test {acc['he_normal']:.0%}"


@pytest.mark.slow
def test_mnist_init_comparison_quick(tmp_path, mnist_dir):
    from sweeps import mnist_init_comparison

    summary = mnist_init_comparison.main(
        ["--out", str(tmp_path), "--quick", "--seeds", "2", "--data-dir", str(mnist_dir)]
    )
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    # std 0.01 never learns: the loss stays at ln 10 (chance over 10 classes)
    assert summary["normal(stddev=0.01)"]["final_loss"] == pytest.approx(np.log(10), abs=0.01)
    he, xavier = summary["he_normal"], summary["glorot_normal"]
    assert he["final_loss"] < xavier["final_loss"] < 2.2
    assert he["test_accuracy"] > 0.5
    assert xavier["display"] == "Xavier"  # keys are the result's labels, names beside them
    assert (tmp_path / "loss.png").stat().st_size > 10_000


def test_relu_std001_quick(tmp_path, capsys):
    from sweeps import relu_std001

    summary = relu_std001.main(["--out", str(tmp_path), "--quick", "--seeds", "4"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    small = summary["normal(stddev=0.01)"]
    # theory: with σ_w² = 32 · 10⁻⁴ the mean activation shrinks √(2/σ_w²) = 25× per layer
    theory = np.asarray(small["post_mean_theory"])
    np.testing.assert_allclose(theory[:-1] / theory[1:], 25.0, rtol=1e-3)
    # measured within 10% at the first two layers (later ones are noisier at width 32)
    assert np.all(np.abs(small["post_mean_rel_error"][:2]) < 0.1)
    assert "mean activation by layer" in capsys.readouterr().out
    assert (tmp_path / "report.html").is_file()


@pytest.mark.slow
def test_edge_of_chaos_quick(tmp_path):
    from sweeps import edge_of_chaos

    # two of the three activations (theory's critical lines have tests of their own)
    argv = ["--out", str(tmp_path), "--quick", "--seeds", "2", "--activations", "tanh", "relu"]
    summary = edge_of_chaos.main(argv)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert list(summary) == ["tanh", "relu"]
    with pytest.raises(SystemExit):  # a misspelt activation: argparse's error, exit 2
        edge_of_chaos.main(["--out", str(tmp_path / "bad"), "--activations", "tahn"])
    assert summary["relu"]["critical_sigma_w2_at_sigma_b2_0"] == pytest.approx(2.0, rel=1e-4)
    assert summary["tanh"]["critical_sigma_w2_at_sigma_b2_0"] == pytest.approx(1.0, rel=1e-4)
    for act in summary:
        assert (tmp_path / f"phase-{act}.png").stat().st_size > 10_000
        s = summary[act]
        # at most 2 measured points resolved on the other side of χ₁ = 1 from theory's
        assert len(s["off_theory_side"]) <= 2, s["off_theory_side"]
    # ordered tanh with a bias: inputs become correlated, as theory says
    assert summary["tanh"]["cosine_at_L"]["0.5|0.5"] > 0.9
    assert summary["tanh"]["cosine_theory_at_L"]["0.5|0.5"] > 0.9
    html = (tmp_path / "report.html").read_text()
    for act in summary:  # every sub-sweep is on the page, with its numbers
        s = summary[act]
        assert f"<h3>Grid: {act}</h3>" in html
        assert f"<h2>{act}: phase diagram</h2>" in html
        assert (
            f"{s['measured_on_theory_side']}/{s['measured_points']} on theory&#x27;s side" in html
        )
        # the counts, the ringed points and the per-point numbers agree; a point whose
        # measured χ₁ is within 2 standard errors of 1 is its own class (ReLU's edge is
        # χ₁ = 1 exactly: a measured 1.009 is not a miss)
        edge, off = s["on_the_edge_within_error"], s["off_theory_side"]
        assert s["measured_on_theory_side"] + len(off) + len(edge) == s["measured_points"]
        for key, chi in s["chi1_at"].items():
            within = abs(np.log(chi)) <= 2 * s["chi1_log_se_at"][key]
            same = (chi >= 1) == (s["chi1_theory_at"][key] > 1)
            assert (key in edge) == within, key
            assert (key in off) == (not within and not same), key
        assert set(s["chi1_at"]) == set(s["cosine_at_L"]) == set(s["cosine_theory_at_L"])
    rows = edge_of_chaos.numbers_rows(summary)
    assert [r[0] for r in rows] == ["tanh", "relu"]
    assert all(len(r) == len(edge_of_chaos.NUMBERS_COLUMNS) for r in rows)
    assert html.count("<h3>Per activation</h3>") == 1
    assert summary["relu"]["beyond_the_edge"].startswith("q* → ∞")
    w2, b2 = edge_of_chaos.theory_mesh(quick=True)  # the quick mesh spans the measured plane
    measured = edge_of_chaos.measured_plane(quick=True)
    assert w2[0] <= min(measured[0])
    assert max(measured[0]) <= w2[-1]
    assert b2[0] <= min(measured[1])
    assert max(measured[1]) <= b2[-1]


@pytest.mark.slow
def test_big_grid_quick(tmp_path, capsys):
    from sweeps import big_grid

    summary = big_grid.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["networks"] == 4 * 3 * 2 * 2
    by_pair = summary["by_pair"]
    assert len(by_pair) == 12
    assert by_pair["normal(stddev=0.01) | relu"]["outcome"] == "vanishes"
    for pair in by_pair.values():  # numbers as numbers, null for none: never "2" or ""
        layer = pair["outcome_layer"]
        assert layer is None or (type(layer) is int and layer >= 1), pair
        assert (layer is None) == (pair["outcome"] == "stable"), pair
    out = capsys.readouterr().out
    assert "combos/s" in out
    n = len(jax.devices())  # the suite's 2 CPU devices: the line names both, not cpu:0 alone
    assert summary["devices"] == [str(d) for d in jax.local_devices()]
    assert f"on {big_grid.on_devices(summary['devices'])}" in out
    assert (f"{n} devices (" in out) == (n > 1)
    assert (tmp_path / "report.html").is_file()
    # the heatmap's cells say what summary.json says
    res = ji.SweepResult.load(tmp_path / "sweep" / "result")
    v = ji.report.tables.view(res)
    cells = ji.report.figures.heatmap_cells(v.fields["pre_var"], nonfinite=v.fields["nonfinite"])
    for (i, a), text in np.ndenumerate(cells.text):
        pair = by_pair[f"{v.inits[i]} | {v.activations[a]}"]
        if pair["ratio_at_L"] is None:
            assert cells.kinds[i, a] != "value"
        else:
            assert text == f"{np.log10(pair['ratio_at_L']):+.2f}".replace("-", "−")


def test_model_depth_s_profiles_are_the_zoo_cnns_own_forward():
    """(c)'s scanned convolutions are the zoo CNN's (circular padding, kernels and biases
    read from the built model): its pooled output and first convolution, within MODEL_RTOL
    (the same sums, ordered by another program)."""
    from sweeps import model_depth

    s = model_depth.shapes(True)
    x = model_depth.square_images(s)
    grid = model_depth.modes_grid(s, 1, x)
    for init in (model_depth.HE, model_depth.DELTA):
        model = grid.build(0, init=init)
        q, pooled = model_depth.conv_profiles(model, x)
        assert q.shape == (s["modes_depth"], s["modes_image"], s["modes_image"])
        np.testing.assert_allclose(pooled, model(x), rtol=MODEL_RTOL, atol=MODEL_ATOL)
        first = np.mean(np.square(np.asarray(model.convs[0](x), np.float64)), (0, 3))
        np.testing.assert_allclose(q[0], first, rtol=MODEL_RTOL)


def test_ntk_width_quick(tmp_path):
    from sweeps import ntk_width

    summary = ntk_width.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert list(summary["models"]) == list(ntk_width.MODELS)
    for model, r in summary["models"].items():
        assert r["widths"] == list(ntk_width.widths(model, True))
        assert all(
            0 < lo <= m <= hi for lo, m, hi in zip(r["q10"], r["mean"], r["q90"], strict=True)
        )
        assert np.isfinite(r["slope"])
    assert (tmp_path / "ntk_width.png").stat().st_size > 10_000
    assert "Relative Frobenius distance" in (tmp_path / "report.html").read_text()


def test_model_depth_quick(tmp_path, capsys):
    from sweeps import model_depth

    summary = model_depth.main(["--out", str(tmp_path), "--quick", "--seeds", "4"])
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    for png in ("resnet_depth.png", "cnn_depth.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    assert (tmp_path / "report.html").is_file()
    # the ResNet: one sweep per α = 1/√L depth, one at the largest depth for the others
    assert sorted(p.name for p in (tmp_path / "sweeps").iterdir()) == [
        "cnn-L2",
        "resnet-0-L2",
        "resnet-1-L1",
        "resnet-1-L2",
        "resnet-2-L2",
    ]
    resnet = summary["resnet"]
    assert list(resnet) == list(model_depth.VARIANTS)
    for variant, per in resnet.items():
        assert list(per) == ["1", "2"]
        for depth, row in per.items():
            # theory.predict (the recurrence) against the closed form 2(1 + α² L)
            assert row["theory"] == pytest.approx(model_depth.theory(variant, int(depth)), rel=1e-5)
            assert row["q10"] <= row["mean"] <= row["q90"]
            assert row["mean"] == pytest.approx(row["theory"], rel=0.3)
    # a zero branch is the identity: every depth's output is the input layer's
    assert resnet["zero branch"]["1"] == resnet["zero branch"]["2"]
    assert (
        resnet["α = 1"]["2"]["mean"]
        > resnet["α = 1/√L"]["2"]["mean"]
        > resnet["zero branch"]["2"]["mean"]
    )
    # (c) the spatial modes: at the first convolution delta-orthogonal's per-position
    # variance is theory's exactly (an orthogonal centre keeps each position's norm)
    modes = summary["cnn_modes"]
    assert list(modes) == ["delta-orthogonal (gain √2)", "He"]
    for k in ("k=1", "k=3", "k=5"):
        first = modes["delta-orthogonal (gain √2)"][k]["conv 1"]
        assert first["measured"] == pytest.approx(first["theory"], rel=1e-4)
    he = modes["He"]["k=1"]
    assert he["conv 3"]["theory"] < he["conv 1"]["theory"]  # He fades the modes
    assert (tmp_path / "cnn_modes.png").stat().st_size > 10_000
    cnn = summary["cnn"]
    assert list(cnn) == ["He", "delta-orthogonal (gain √2)"]
    for rows in cnn.values():
        assert list(rows) == ["conv 1", "conv 2", "pooled output"]
        assert 1.0 < rows["conv 1"]["mean"] < 3.0  # Var = 2 E[x²] under either, at layer 1
    out = capsys.readouterr().out
    assert "zero branch" in out
    assert "delta-orthogonal (gain √2)" in out
    # the figure's left panel is layer_profile's: the block outputs by path
    res = ji.SweepResult.load(tmp_path / "sweeps" / "resnet-0-L2" / "result")
    assert res.attrs["layers"] == ["inp", "blocks/0", "blocks/1"]


def test_trainability_quick(tmp_path, mnist_dir):
    from sweeps import trainability

    argv = ["--out", str(tmp_path), "--quick", "--seeds", "1", "--data-dir", str(mnist_dir)]
    summary = trainability.main(argv)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    acc = np.array(summary["accuracy"])
    assert acc.shape == (len(summary["sigma_w2"]), len(summary["depths"]))
    assert ((acc >= 0) & (acc <= 1)).all()
    # theory's bound: 6 ξ_c, largest next to the critical σ_w² (1.76 for tanh at σ_b² = 0.05)
    assert summary["critical_sigma_w2"] == pytest.approx(1.7610, abs=1e-3)
    bound = summary["bound_6_xi_c"]
    assert bound[1] > max(bound[0], bound[2])  # σ_w² = 1.75 is the grid's nearest
    assert (tmp_path / "trainability.png").stat().st_size > 10_000
    assert "6 ξ_c" in (tmp_path / "report.html").read_text()
    # a rerun resumes every depth from its checkpoint: the same numbers
    assert trainability.main(argv)["accuracy"] == summary["accuracy"]


def test_dks_tat_quick(tmp_path, mnist_dir):
    from sweeps import dks_tat

    argv = ["--out", str(tmp_path), "--quick", "--seeds", "1", "--data-dir", str(mnist_dir)]
    summary = dks_tat.main(argv)
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    acc = np.array(summary["test_accuracy"])
    assert acc.shape == (2, 5, 1)  # init × activation × rate
    assert ((acc >= 0) & (acc <= 1)).all()
    assert summary["activations"] == [
        "tanh",
        "DKS tanh",
        "TAT tanh",
        "leaky_relu",
        "TAT leaky_relu",
    ]
    assert summary["specs"][1].startswith("transformed(base='tanh', input_scale=")
    c0, slope = summary["theory_c_f_0"], summary["theory_c_f_slope_1"]
    # what each transform asks of the whole network, read off theory's composed C map:
    # DKS: C_f(0) = 0 and C'_f(1) = ζ = 1.5; TAT: C'_f(1) = 1 and, for the leaky ReLU,
    # C_f(0) = η (0.5 in --quick); float32 maps composed over the network's 4 layers (a
    # product of 4 slopes, 4 c-maps), each within THEORY_QUAD's tolerance: 10× that bounds it
    tol = dict(rel=THEORY_QUAD_RTOL * 10, abs=THEORY_QUAD_ATOL * 10)
    assert c0[1] == pytest.approx(0.0, **tol)
    assert slope[1] == pytest.approx(1.5, **tol)
    assert slope[2] == pytest.approx(1.0, **tol)
    assert slope[4] == pytest.approx(1.0, **tol)
    assert c0[4] == pytest.approx(0.5, **tol)
    assert c0[3] > 0.6  # the plain leaky ReLU's, higher: the network is more degenerate
    assert (tmp_path / "dks_tat.png").stat().st_size > 10_000
    assert "C_f(0)" in (tmp_path / "report.html").read_text()
    # the baseline: a ResNet of the same depth (4 layers: 2 blocks of two), trained alike
    resnet = summary["resnet"]
    assert resnet["blocks"] == 2
    assert np.shape(resnet["test_accuracy"]) == (2, 1)  # init × rate
    assert 0 <= min(resnet["best_test_accuracy"]) <= max(resnet["best_test_accuracy"]) <= 1
    assert "ResNet, 2 pre-LN blocks" in (tmp_path / "report.html").read_text()
    assert (tmp_path / "train_resnet").is_dir()


def test_trainability_agreement_counts_cells_against_the_bound():
    from sweeps.trainability import agreement

    sigma_w2, depths = np.array([1.0, 2.0]), (10, 40)
    xi_c = np.array([3.0, 20.0])  # bounds 18 and 120: only (1.0, 40) is beyond
    acc = np.array([[0.9, 0.1], [0.9, 0.2]])  # (2.0, 40) fails to train: one disagreement
    out = agreement(sigma_w2, depths, acc, xi_c)
    assert out["threshold"] == pytest.approx(0.5)  # halfway from chance (0.1) to 0.9
    assert out["agree_fraction"] == 0.75
    assert out["disagreements"] == [
        {"sigma_w2": 2.0, "depth": 40, "accuracy": 0.2, "bound": 120.0, "theory_says": "trains"}
    ]
