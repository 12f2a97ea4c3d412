"""What a notebook shows without set-up: figures as PNG, results as HTML, progress as one
updated output that ends saying what finished, and use_cpu_cores as text. (The tutorials,
executed in a real kernel, are tests/test_tutorials.py.)"""

import functools
import re
import types

import jax
import numpy as np
import pytest
from IPython.core.formatters import DisplayFormatter

import jaxinit as ji
from jaxinit import _progress
from jaxinit.report.figures import NOTEBOOK_DPI, NotebookFigure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def res():
    grid = ji.Grid(inits=["he_normal", "glorot_normal"], activations=["relu", "tanh"],
                   depth=3, width=8, seeds=2, batch_size=8)  # fmt: skip
    return ji.sweep(grid, progress=False)


def test_report_figures_display_as_png_without_pyplot(res):
    fig = ji.report.variance_vs_depth(res)
    assert isinstance(fig, NotebookFigure)  # still a plain matplotlib Figure for scripts
    data, _ = DisplayFormatter().format(fig)  # what Jupyter asks of a cell's value
    png = data["image/png"]
    assert png[:8] == PNG_MAGIC
    width_px = int.from_bytes(png[16:20], "big")  # the IHDR chunk's width
    assert width_px == pytest.approx(fig.get_figwidth() * NOTEBOOK_DPI, abs=2)
    assert width_px >= 600  # legible in a notebook (440 px at matplotlib's default 100 dpi)


def test_every_figure_function_returns_a_notebook_figure(res):
    theory = ji.theory.predict(ji.Grid.from_description(res.attrs["grid"]))
    figs = [
        ji.report.variance_vs_depth(res, theory=theory),
        ji.report.grad_variance_vs_depth(res),
        ji.report.heatmap(res),
        ji.report.histogram_grid(res),
    ]
    assert all(isinstance(f, NotebookFigure) for f in figs)


def test_results_display_as_html(res):
    data, _ = DisplayFormatter().format(res)
    page = data["text/html"]
    assert "<b>SweepResult</b>" in page
    assert "init: 2 × activation: 2 × seed: 2" in page
    for field in res.fields:
        assert f">{field}</td>" in page
    assert "&#x27;he_normal&#x27;" in page  # labels, escaped
    assert "layer=3" in page  # a field's own dims and sizes
    trained = ji.train(
        ji.TrainGrid(inits=["he_normal"], seeds=2, hidden=(4,), output="sigmoid",
                     batch_size=None, steps=3, optimizer="sgd(learning_rate=0.1)"),
        ji.data.make_circles(jax.random.key(0), 16, noise=0.1), progress=False,
    )  # fmt: skip
    assert "<b>TrainResult</b>" in trained._repr_html_()
    theory = ji.theory.predict(ji.Grid.from_description(res.attrs["grid"]))
    assert "<b>Prediction</b>" in theory._repr_html_()


def test_html_escapes_labels_and_cuts_long_dims():
    r = ji.Result(dims=("x",), coords={"x": [f"<b>{i}" for i in range(20)]},
                  fields={"v": np.zeros(20)}, field_dims={"v": ()})  # fmt: skip
    page = r._repr_html_()
    assert "<b>0" not in page
    assert "&lt;b&gt;0" in page
    assert "… (12 more)" in page


def test_use_cpu_cores_shows_as_text():
    line = ji.use_cpu_cores()
    assert isinstance(line, str)
    assert line.startswith("jaxinit: ")
    assert repr(line) == str(line)  # no quotes in a notebook
    data, _ = DisplayFormatter().format(line)
    assert data["text/plain"] == str(line)


class _Handle:
    def __init__(self, log):
        self.log = log

    def update(self, obj):
        self.log.append(obj.data)


@pytest.fixture
def notebook(monkeypatch):
    """A fake kernel: ProgressBar draws the notebook bar into ``log``."""
    log = []

    def display(obj, display_id=False):
        log.append(obj.data)
        return _Handle(log)

    monkeypatch.setattr(_progress, "_kernel", lambda: True)
    monkeypatch.setattr("IPython.display.display", display)
    monkeypatch.setattr(_progress._NotebookBar, "INTERVAL", 0.0)
    return log


def test_the_notebook_bar_ends_as_one_line_saying_what_finished(notebook):
    with _progress.ProgressBar("sweep", 4) as bar:
        for done in range(1, 5):
            bar.update(done)
    assert '<progress value="0" max="4"' in notebook[0]
    assert '<progress value="2" max="4"' in notebook[2]
    assert notebook[-1].startswith("<pre>sweep: 4/4 in ")
    assert "<progress" not in notebook[-1]


def test_the_notebook_bar_says_where_a_failed_run_stopped(notebook):
    def stopped():
        with _progress.ProgressBar("train", 10) as bar:
            bar.update(3)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        stopped()
    assert notebook[-1].startswith("<pre>train: stopped at 3/10 after ")


def test_a_sweep_in_a_notebook_moves_the_bar_and_finishes_it(notebook):
    grid = ji.Grid(inits=["he_normal"], activations=["relu"], depth=2, width=4, seeds=4,
                   batch_size=4, gradients=False)  # fmt: skip
    ji.sweep(grid, chunk_size=1)  # progress=None: a kernel is watching
    assert notebook[-1].startswith("<pre>sweep: ")
    assert " in " in notebook[-1]
    assert len(notebook) >= 3  # the bar, moves per chunk, the last line


def test_a_one_chunk_sweep_moves_the_bar_within_its_chunk(notebook):
    grid = ji.Grid(inits=["he_normal", "glorot_normal"], activations=["relu", "tanh"], depth=2,
                   width=4, seeds=4, batch_size=4, gradients=False)  # fmt: skip
    ji.sweep(grid)  # one chunk: two programs, one per activation
    drawn = [re.search(r'<progress value="([0-9.]+)" max="1"', h) for h in notebook[:-1]]
    # the bar, "compiling", one program done, both, then the chunk's update
    assert [float(m.group(1)) for m in drawn] == [0.0, 0.0, 0.5, 1.0, 1.0]
    assert "sweep · compiling 0/1</pre>" in notebook[1]
    assert " 50%</pre>" in notebook[2]
    assert notebook[-1].startswith("<pre>sweep: 1/1 in ")


def test_a_model_grid_s_bar_says_it_is_compiling(notebook):
    grid = ji.ModelGrid(model=functools.partial(ji.models.MLP, d_in=4, width=8, depth=2),
                        inits=["he_normal"], inputs=np.ones((4, 4), np.float32), seeds=2)  # fmt: skip
    ji.sweep(grid)
    assert "sweep · compiling 0/1</pre>" in notebook[1]
    assert "compiling" not in notebook[2]  # compiled: the note goes
    assert notebook[-1].startswith("<pre>sweep: 1/1 in ")


def test_a_terminal_bar_shows_the_note_and_a_fraction():
    with _progress.ProgressBar("sweep", 2, True) as bar:
        bar.update(0.5, "compiling")
        (task,) = bar._bar.tasks
        assert (task.description, task.completed) == ("sweep · compiling", 0.5)
        bar.update(1)
        assert (task.description, task.completed) == ("sweep", 1)


def test_not_a_kernel_without_ipython_kernel(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "ipykernel", types.ModuleType("ipykernel"))
    monkeypatch.setattr("IPython.get_ipython", lambda: None)
    assert not _progress._kernel()
