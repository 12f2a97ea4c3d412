"""Smoke tests of the width-scaling sweeps (coord check, learning-rate transfer) and their figures."""

import json

import numpy as np
import pytest

import jaxinit as ji
from jaxinit.training import TrainGrid, train
from tests._teacher import teacher_data


def _quick(script, out, mnist_dir, *flags) -> dict:
    """Runs ``script.main`` at --quick scale; its return is what summary.json holds."""
    summary = script.main(["--out", str(out), "--quick", "--data-dir", str(mnist_dir), *flags])
    assert summary == json.loads((out / "summary.json").read_text())
    assert summary["widths"] == list(script.QUICK_WIDTHS)
    return summary


@pytest.mark.slow
def test_coord_check_quick(tmp_path, mnist_dir):
    from sweeps import coord_check

    summary = _quick(coord_check, tmp_path, mnist_dir, "--seeds", "2", "--steps", "4")
    assert summary["steps"] == 4
    layers = ["layer_1", "layer_2", "layer_3", "layer_4", "output"]
    assert set(summary["slopes"]) == set(coord_check.PARAMETRIZATIONS)
    assert all(list(s) == layers for s in summary["slopes"].values())
    assert np.shape(summary["sizes"]["mup"]["output"]) == (2, 5)  # (width, step 0..4)
    assert summary["sizes"]["mup"]["output"][0][0] == 0  # μP's zero output init: logits 0 at step 0
    assert (tmp_path / "coord_check.png").stat().st_size > 0
    page = (tmp_path / "report.html").read_text()
    for name in ("layer 1", "output", "Slopes at the last step"):  # the summary's layer names
        assert name in page
    assert "Grid: standard" in page  # both runs' grids are recorded
    assert "Grid: mup" in page


@pytest.mark.slow
def test_lr_transfer_quick(tmp_path, mnist_dir):
    from sweeps import lr_transfer

    summary = _quick(lr_transfer, tmp_path, mnist_dir, "--seeds", "1", "--steps", "20")
    assert summary["learning_rates"] == list(lr_transfer.QUICK_LEARNING_RATES)
    for par in lr_transfer.PARAMETRIZATIONS:
        best = summary["best_learning_rate"][par]
        assert list(best) == [str(w) for w in lr_transfer.QUICK_WIDTHS]
        assert set(best.values()) <= set(lr_transfer.QUICK_LEARNING_RATES)
        losses = np.array(summary["final_loss"][par], dtype=float)  # (width, rate); None: diverged
        assert losses.shape == (3, 5)
        for w, row in zip(summary["widths"], losses, strict=True):
            assert best[str(w)] == summary["learning_rates"][int(np.nanargmin(row))]
    assert "Best learning rate per width" in (tmp_path / "report.html").read_text()


def test_the_mup_sweeps_transformer_grids():
    """--model transformer: the zoo's Transformer at each width, 1/d attention and a zero
    readout under μP (the coord check trains it: tests/test_train_models.py)."""
    from sweeps import _common, lr_transfer

    kw = dict(widths=(16, 32), learning_rates=(1e-3, 1e-2), seeds=1, steps=1)
    mup = lr_transfer.make_grid("mup", model="transformer", **kw)
    std = lr_transfer.make_grid("standard", model="transformer", **kw)
    assert mup.dims == ("init", "width", "learning_rate", "seed")
    assert mup.output_init.spec == "zeros"
    assert std.output_init is None
    net = mup.build(0, 0, init="he_normal", seed=0, width=32)
    assert net.embed.kernel.shape == (28, 32)
    assert net.head.kernel.shape == (32, 10)
    assert not np.any(np.asarray(net.head.kernel))
    assert len(net.blocks) == _common.TRANSFORMER_DEPTH
    assert net.blocks[0].attn.attention_fn is ji.models.mup_attention
    assert std.build(0, 0, init="he_normal", seed=0, width=32).blocks[0].attn.attention_fn is not (
        ji.models.mup_attention
    )
    roles = {r.param: r.role for r in mup.layer_rules(width=32)}
    assert roles["head/kernel"] == "output"
    assert roles["blocks/1/fc_in/kernel"] == "hidden"


def test_final_losses_and_best_rates_by_hand():
    x, y = teacher_data(3, 128, 8)
    grid = TrainGrid(inits=["he_normal", "lecun_normal"], seeds=2, hidden=(1,), width=[8, 16],
                     learning_rate=[0.01, 0.1, 1e30], optimizer="sgd", steps=12, batch_size=32)  # fmt: skip
    res = train(grid, (x, y))
    loss = ji.training.final_losses(res, last=4)
    assert loss.shape == (2, 3)
    by_hand = res.sel(width=16, learning_rate=0.1).loss[..., -4:].mean(-1).mean()  # (init, seed)
    np.testing.assert_allclose(loss[1, 1], by_hand, rtol=1e-6)
    assert np.isinf(loss[:, 2]).all()  # a rate of 1e30 overflows: inf, never the best
    best = ji.training.best_learning_rates(res, last=4)
    assert best == {w: [0.01, 0.1][int(np.argmin(loss[i, :2]))] for i, w in enumerate([8, 16])}
    with pytest.raises(ValueError, match=r"last must be an int in \[1, 12\]"):
        ji.training.final_losses(res, last=13)
    fig = ji.report.loss_vs_learning_rate({"standard": res}, last=4)
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "diverged"
    with pytest.raises(ValueError, match=r"results\['x'\] has no \['width'\] dim"):
        ji.report.size_vs_width({"x": train(TrainGrid(inits=["he_normal"], hidden=(4,), steps=2, batch_size=32), (x, y))})  # fmt: skip
