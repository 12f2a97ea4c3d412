"""Executes the tutorials in a Jupyter kernel and writes each back with its outputs.

The copies in this folder carry their outputs (figures embedded as PNG), so that they read
on GitHub without running; CI executes them again (``tests/test_tutorials.py``)::

    .venv/bin/pip install -e '.[test]'        # nbclient, nbformat and ipykernel
    .venv/bin/python docs/tutorials/run.py    # every notebook, in place
    .venv/bin/python docs/tutorials/run.py 01_seed_experiments.ipynb

Each notebook runs in a fresh kernel of this Python (``python3``, which jupyter_client
starts with ``sys.executable``) with the notebook's folder as its working directory.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).resolve().parent
NOTEBOOKS = sorted(p.name for p in HERE.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = 600  # seconds: a cell that runs longer is an error


def execute(path: str | pathlib.Path, *, cwd: str | pathlib.Path) -> nbformat.NotebookNode:
    """The notebook at ``path``, executed top to bottom in a fresh kernel run in ``cwd``;
    a cell that raises raises here (``nbclient.exceptions.CellExecutionError``)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        record_timing=False,  # no timestamps in the committed copies
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()
    return nb


def unembedded_figures(nb: nbformat.NotebookNode) -> list[int]:
    """The code cells (by index) that show a figure as text (``<Figure size ...>``) instead
    of an embedded image."""
    bad = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "<Figure size" in data.get("text/plain", "") and "image/png" not in data:
                bad.append(i)
    return bad


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", help=f"default: all of {', '.join(NOTEBOOKS)}")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.notebooks) - set(NOTEBOOKS))
    if unknown:
        ap.error(f"no tutorial {', '.join(unknown)}; valid: {', '.join(NOTEBOOKS)}")
    for name in args.notebooks or NOTEBOOKS:
        start = time.perf_counter()
        nb = execute(HERE / name, cwd=HERE)
        if bad := unembedded_figures(nb):
            sys.exit(f"{name}: cells {bad} show a figure as text, not as an image")
        nbformat.write(nb, HERE / name)
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
