"""Smoke tests: every sweep script's main runs at --quick scale and writes what it promises."""

import itertools
import json

import numpy as np

import jaxinit as ji
from sweeps import seed_histograms


def test_seed_histograms_quick(tmp_path, capsys):
    summary = seed_histograms.main(["--out", str(tmp_path), "--quick", "--seeds", "2"])
    assert (tmp_path / "histograms.png").stat().st_size > 10_000
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    assert len(summary) == len(seed_histograms.INITS) * len(seed_histograms.ACTIVATIONS)
    # std 0.01 under tanh collapses toward 0 layer by layer; He under relu does not
    collapse = summary["normal(stddev=0.01) | tanh"]["post_var"]
    assert all(b < a for a, b in itertools.pairwise(collapse))
    assert summary["he_normal | relu"]["post_var"][-1] > 100 * collapse[-1]
    res = ji.SweepResult.load(tmp_path / "result")
    assert res.hist.shape == (4, 3, 2, 5, 30)
    np.testing.assert_array_equal(res.hist.sum(-1).max(), 64 * 16)  # sigmoid/tanh: all in range
    assert "he_normal | relu" in capsys.readouterr().out
