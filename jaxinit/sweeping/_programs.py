"""The compiled programs a process holds, of both paths: the MLP engine's and the model grids'."""

from __future__ import annotations

import sys

from jaxinit.sweeping import _kernel

__all__ = ["clear_programs", "programs"]

_MODEL_PASS = "jaxinit.sweeping._model_pass"  # imported with a ModelGrid's sweep (and Flax)


def programs() -> int:
    """How many sweep programs this process holds compiled: the MLP engine's draw and forward
    programs and the model grids' passes.

    The count grows with the shapes a sweep needs (widths, member and seed block sizes,
    device counts, a model's structure and input shape), never with its seeds or scale
    values; tests and benchmarks use it to check that.
    """
    model = sys.modules.get(_MODEL_PASS)
    return _kernel.programs() + (model.compiled_count() if model is not None else 0)


def clear_programs() -> None:
    """Forget every compiled sweep program and traced model structure (the next sweep
    compiles again)."""
    _kernel.clear_programs()
    model = sys.modules.get(_MODEL_PASS)
    if model is not None:
        model.clear()
