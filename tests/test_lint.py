"""ruff, as configured in pyproject.toml, holds for the whole tree (CI enforces style)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff(*args):
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_check():
    result = _ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = _ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_readme_python_blocks_run():
    """Every ```python block in README.md runs as written (the quickstart cannot rot)."""
    text = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    assert blocks, "README.md has no python block"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def _modules():
    import importlib
    import pkgutil

    import jaxinit

    names = ["jaxinit"] + [m.name for m in pkgutil.walk_packages(jaxinit.__path__, "jaxinit.")]
    return [importlib.import_module(n) for n in names if n != "jaxinit.__main__"]


def test_doctests_run():
    """Every docstring example in jaxinit runs and prints what it shows (``+SKIP`` aside)."""
    import doctest

    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tried = 0
    for module in _modules():
        for test in finder.find(module, module.__name__):
            if test.examples:
                runner.run(test, clear_globs=True)
                tried += len(test.examples)
    summary = runner.summarize(verbose=False)
    assert summary.failed == 0, f"{summary.failed} of {summary.attempted} doctest examples failed"
    assert tried >= 10  # the examples were found
