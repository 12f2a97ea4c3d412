"""Capture every layer's output of a Flax NNX model without ``sow``: a tap on ``__call__``.

Flax 0.12's ``nnx.capture(..., method_outputs=nnx.Intermediate)`` wraps only the
methods in a class's own ``__dict__`` (a ``class MyLinear(nnx.Linear): pass``
inherits ``__call__`` and is missed unless a plain ``Linear`` is also in the
graph), wraps every public method, and patches classes with no guard between
threads (``../shared/peers/any_model/README.md``). The tap here patches, for each
class in the model's graph, the ``__call__`` it resolves to (its own or an
inherited one), records the output of the *instances of this model* only (by
``id``), and passes every other call through untouched:

- **threads**: classes are patched under one process-wide lock, held while a
  model is traced, and the recording goes to the calling thread's tape; a call
  from another thread (or of a module outside the model) sees no tape and runs
  the original method;
- **re-entrance**: a module whose ``__call__`` calls ``super().__call__()`` (or
  itself) is recorded once, at its outermost call; a module called twice records
  ``path``, then ``path#1``;
- **probes**: a zero tensor added to a recorded output makes the gradient with
  respect to it the gradient with respect to the output (the backward statistics).

Patching happens while a program is *traced*; a compiled program runs no Python.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import jax
from flax import nnx

from jaxinit.models._kernels import KERNEL_TYPES, path_str

__all__ = ["CAPTURED_TYPES", "ROOT", "Captured", "default_capture", "tap"]

# Flax modules whose outputs are layers worth measuring, beside every kernel module and every
# module the user wrote; containers (Sequential, List), Dropout and the like are not.
CAPTURED_TYPES: tuple[type, ...] = (
    *KERNEL_TYPES,
    nnx.LayerNorm,
    nnx.RMSNorm,
    nnx.BatchNorm,
    nnx.GroupNorm,
    nnx.MultiHeadAttention,
)

_LOCK = threading.RLock()  # held while classes are patched (one model traced at a time)
_LOCAL = threading.local()  # the tape of the thread tracing (None elsewhere)
_ORIGINAL = "_jaxinit_original_call"
ROOT = "(model)"  # the label of the model's own output (its path is empty)


def default_capture(path: str, module: nnx.Module) -> bool:
    """Kernel modules, norms, attention, and every module not from Flax (the user's blocks
    and the model itself)."""
    return isinstance(module, CAPTURED_TYPES) or not type(module).__module__.startswith("flax.")


class Captured(NamedTuple):
    """One recorded output: its label (``path``, ``path#k`` for the k-th repeat call,
    ``"(model)"`` for the model itself), the module's type name and the array."""

    name: str
    type: str
    value: jax.Array


class _Tape:
    def __init__(self, modules: Mapping[int, tuple[str, nnx.Module]], select, probes):
        self.modules, self.select, self.probes = modules, select, probes or {}
        self.active: set[int] = set()
        self.outputs: list[Captured] = []
        self.seen: dict[str, int] = {}

    def record(self, path: str, module: nnx.Module, y: Any) -> Any:
        if not self.select(path, module) or not isinstance(y, jax.Array) or y.ndim < 1:
            return y
        path = path or ROOT
        k = self.seen.get(path, 0)
        self.seen[path] = k + 1
        name = path if k == 0 else f"{path}#{k}"
        if name in self.probes:
            y = y + self.probes[name]
        self.outputs.append(Captured(name, type(module).__name__, y))
        return y


def _resolve(cls: type) -> Callable | None:
    """The ``__call__`` instances of ``cls`` run, unwrapped if an outer tap patched it."""
    for klass in cls.__mro__:
        if "__call__" in klass.__dict__:
            f = klass.__dict__["__call__"]
            return getattr(f, _ORIGINAL, f)
    return None


def _patched(original: Callable) -> Callable:
    def __call__(self, *args, **kwargs):
        tape = getattr(_LOCAL, "tape", None)
        key = id(self)
        if tape is None or key not in tape.modules or key in tape.active:
            return original(self, *args, **kwargs)
        tape.active.add(key)
        try:
            y = original(self, *args, **kwargs)
        finally:
            tape.active.discard(key)
        return tape.record(*tape.modules[key], y)

    setattr(__call__, _ORIGINAL, original)
    return __call__


@contextlib.contextmanager
def tap(
    model: nnx.Module,
    *,
    select: Callable[[str, nnx.Module], bool] = default_capture,
    probes: Mapping[str, jax.Array] | None = None,
) -> Iterator[list[Captured]]:
    """``with tap(model) as outputs: y = model(x)``: ``outputs`` lists what ``select``
    chose, in call order (the model itself is ``"(model)"``). ``probes`` maps labels to arrays
    added to those outputs."""
    modules = {id(m): (path_str(p), m) for p, m in nnx.iter_modules(model)}
    tape = _Tape(modules, select, probes)
    with _LOCK:
        classes = {type(m) for _, m in modules.values()}
        saved = {c: c.__dict__.get("__call__") for c in classes}
        originals = {c: _resolve(c) for c in classes}
        outer = getattr(_LOCAL, "tape", None)
        try:
            for c, f in originals.items():
                if f is not None:
                    c.__call__ = _patched(f)
            _LOCAL.tape = tape
            yield tape.outputs
        finally:
            _LOCAL.tape = outer
            for c, f in saved.items():
                if f is None:
                    if "__call__" in c.__dict__:
                        delattr(c, "__call__")
                else:
                    c.__call__ = f
