"""Where the test suite's time goes: XLA compiles per test and per program (a pytest plugin).

The suite's time is mostly compiling (issue 25): this plugin counts, for every test, each
program's XLA compilations and their seconds (``jax_log_compiles``'s records), and the
seconds spent tracing and lowering (``jax.monitoring``). Subprocesses a test starts are not
seen: their time shows as the test's wall time less its compile time.

Run the README's test command with it (pytest-xdist's workers send their rows to the
controller, which writes them all to ``merged.json``)::

    JAXINIT_SUITE_PROFILE=/tmp/profile PYTHONPATH=benchmarks \\
        .venv/bin/python -m pytest -q -n auto -p suite_profile

It prints the programs that cost the most compile seconds, and the tests with the most
compile seconds and the most time outside compiling; ``merged.json`` keeps every test's row.
The figures of 2026-12-07 are in benchmarks/README.md ("The test suite's time").
"""

import collections
import json
import logging
import os
import pathlib
import re
import time

import jax
import pytest
from jax import monitoring

OUT = "JAXINIT_SUITE_PROFILE"
_FINISHED = re.compile(r"Finished XLA compilation of (.*) in ([0-9.e+-]+) sec")
_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"

_programs: dict[str, list] = collections.defaultdict(lambda: [0, 0.0])
_events: collections.Counter = collections.Counter()
_rows: list[dict] = []


class _Compiles(logging.Handler):
    def emit(self, record):
        m = _FINISHED.match(record.getMessage())
        if m:
            p = _programs[m[1]]
            p[0] += 1
            p[1] += float(m[2])


def _on_duration(event, duration, **_):
    if event in (_TRACE, _LOWER):
        _events[event] += duration


def pytest_configure(config):
    if not os.environ.get(OUT):
        raise pytest.UsageError(f"suite_profile: set {OUT} to a directory for its files")
    jax.config.update("jax_log_compiles", True)
    logging.getLogger("jax").addHandler(_Compiles())
    monitoring.register_event_duration_secs_listener(_on_duration)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    _programs.clear()
    _events.clear()
    start = time.perf_counter()
    yield
    _rows.append(
        {
            "test": item.nodeid,
            "wall": time.perf_counter() - start,
            "trace_lower": _events[_TRACE] + _events[_LOWER],
            "programs": {k: list(v) for k, v in _programs.items()},
        }
    )


def _report(rows: list[dict]) -> str:
    programs = collections.defaultdict(lambda: [0, 0.0])
    for r in rows:
        for name, (n, secs) in r["programs"].items():
            programs[name][0] += n
            programs[name][1] += secs
    compile_s = {r["test"]: sum(s for _, s in r["programs"].values()) for r in rows}
    wall = sum(r["wall"] for r in rows)
    lines = [
        f"suite_profile: {len(rows)} tests, {wall:.0f} s in tests, "
        f"{sum(compile_s.values()):.0f} s compiling ({sum(n for n, _ in programs.values())} "
        f"compilations), {sum(r['trace_lower'] for r in rows):.0f} s tracing and lowering",
        "  compile s   count  program",
    ]
    for name, (n, secs) in sorted(programs.items(), key=lambda kv: -kv[1][1])[:15]:
        lines.append(f"  {secs:9.1f} {n:7d}  {name}")
    lines.append("  compile s  wall s  test (most compile seconds)")
    for r in sorted(rows, key=lambda r: -compile_s[r["test"]])[:15]:
        lines.append(f"  {compile_s[r['test']]:9.1f} {r['wall']:7.1f}  {r['test']}")
    lines.append("  rest s     wall s  test (most time outside compiling: runs, subprocesses)")
    rest = {r["test"]: r["wall"] - compile_s[r["test"]] - r["trace_lower"] for r in rows}
    for r in sorted(rows, key=lambda r: -rest[r["test"]])[:10]:
        lines.append(f"  {rest[r['test']]:9.1f} {r['wall']:7.1f}  {r['test']}")
    return "\n".join(lines)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist, on the controller: a worker's rows arrive with its results."""
    _rows.extend(getattr(node, "workeroutput", {}).get("suite_profile", []))


def pytest_sessionfinish(session):
    workeroutput = getattr(session.config, "workeroutput", None)  # set on an xdist worker
    if workeroutput is not None:  # the controller merges the workers' rows
        workeroutput["suite_profile"] = _rows
        return
    out = pathlib.Path(os.environ[OUT])
    out.mkdir(parents=True, exist_ok=True)
    (out / "merged.json").write_text(json.dumps(_rows))
    session.config.pluginmanager.get_plugin("terminalreporter").write_line(_report(_rows))
