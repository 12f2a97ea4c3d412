"""The progress bar shared by sweep and train: on when asked or watched, silent otherwise."""

import sys
import types

from jaxinit._progress import ProgressBar, interactive


def test_an_enabled_bar_counts_and_a_disabled_one_draws_nothing(capsys):
    with ProgressBar("sweep", 3, True) as bar:
        bar.update(2)
        (task,) = bar._bar.tasks
        assert (task.description, task.completed, task.total) == ("sweep", 2, 3)
    with ProgressBar("sweep", 3, False) as bar:
        bar.update(2)
        assert bar._bar is None
    assert capsys.readouterr().out == ""  # never on stdout


def test_none_follows_whether_anyone_watches(monkeypatch):
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not interactive()  # pytest captures stderr: not a terminal
    with ProgressBar("train", 5) as bar:
        assert bar._bar is None
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert interactive()  # a Jupyter kernel shows it in the notebook
