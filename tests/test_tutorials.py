"""The tutorials run in a real Jupyter kernel and show what a notebook user sees.

docs/tutorials/run.py executes each notebook with nbclient in a fresh ipykernel, as a user's
Jupyter would (no ``%matplotlib inline``, no pyplot): every figure must arrive as an embedded
PNG, every result as HTML, and every progress bar must end as a line saying it finished.
"""

import importlib.util
import pathlib

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "docs" / "tutorials"
_spec = importlib.util.spec_from_file_location("tutorials_run", TUTORIALS / "run.py")
run = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run)


def _outputs(nb, mime):
    return [
        (i, out)
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if mime in out.get("data", {})
    ]


def test_there_are_tutorials():
    assert len(run.NOTEBOOKS) >= 4
    assert run.NOTEBOOKS[0] == "01_seed_experiments.ipynb"


@pytest.mark.slow
@pytest.mark.parametrize("name", run.NOTEBOOKS)
def test_tutorial_runs_in_a_kernel_and_embeds_its_figures(name, tmp_path):
    nb = run.execute(TUTORIALS / name, cwd=tmp_path)  # raises on any cell's error
    assert run.unembedded_figures(nb) == []
    # every cell whose last line returns a figure shows it as an image
    figure_cells = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and cell.source.strip().splitlines()[-1].startswith("ji.report.")
    ]
    assert figure_cells, "a tutorial without a figure"
    shown = {i for i, _ in _outputs(nb, "image/png")}
    assert set(figure_cells) <= shown, sorted(set(figure_cells) - shown)
    # a result as the last expression shows as HTML (Result._repr_html_)
    html = [out["data"]["text/html"] for _, out in _outputs(nb, "text/html")]
    kinds = ("<b>SweepResult</b>", "<b>TrainResult</b>", "<b>Prediction</b>")
    assert any(k in h for h in html for k in kinds), "no result displayed as HTML"
    # progress: a finished run leaves one line, never a bar stuck at its last frame
    assert not any("<progress" in h for h in html)
    assert any(("sweep: " in h or "train: " in h) and " in " in h for h in html)
    assert not list(tmp_path.rglob("*.ipynb"))  # the kernel ran in tmp_path, wrote no copy


def test_committed_tutorials_carry_their_outputs():
    """The rendered copies read on GitHub without running: run.py wrote them with outputs."""
    for name in run.NOTEBOOKS:
        nb = nbformat.read(TUTORIALS / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{name} was not executed"
        assert _outputs(nb, "image/png"), f"{name} carries no figure"
        assert run.unembedded_figures(nb) == [], name
