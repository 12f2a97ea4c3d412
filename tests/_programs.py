"""Every compiled program that ``ji.sweep`` and ``ji.train`` run, recorded at its real shapes.

:func:`recorded` patches the module-level jitted programs of the sweep
(:mod:`jaxinit.sweeping._kernel`) and of training (:mod:`jaxinit.training._program`) with
recorders. With ``dry=True`` they run nothing: each returns zeros of the
program's output shapes (``jit(...).eval_shape``, tracing only), so a sweep or
training run at any size walks its whole plan in seconds and leaves the list of
(program, arguments) it would compile. :func:`export` then lowers one of them
for another platform with :func:`jax.export.export`, which needs no such
device: a construct that lowers only on CPU fails there.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from jaxinit.sweeping import _kernel as kernel
from jaxinit.training import _run

# (module, attribute) of each program; the callers look them up by these names
SWEEP_PROGRAMS = (
    (kernel, "_draw_from_table"),
    (kernel, "_draw_traced"),
    (kernel, "forward"),
)
TRAIN_PROGRAMS = tuple(
    (_run, name) for name in ("train_chunk", "init_opt", "evaluate", "batch_stats")
)


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of a compiled program: the jitted function and its arguments."""

    name: str
    fn: Callable  # the jitted program (static arguments first)
    args: tuple[Any, ...]  # as called; the first ``n_static`` are static
    n_static: int = 2

    def abstract_args(self) -> tuple[Any, ...]:
        """The arguments with every array replaced by its ShapeDtypeStruct."""

        def shape_of(a):
            if hasattr(a, "shape") and hasattr(a, "dtype"):
                return jax.ShapeDtypeStruct(np.shape(a), a.dtype)
            return a

        static, rest = self.args[: self.n_static], self.args[self.n_static :]
        return (*static, *jax.tree.map(shape_of, rest))

    def key(self) -> tuple:
        """Calls with equal keys compile the same program."""
        shapes = jax.tree.map(
            lambda a: (a.shape, str(a.dtype)) if hasattr(a, "shape") else a,
            self.abstract_args()[self.n_static :],
        )
        return (self.name, *self.args[: self.n_static], repr(shapes))


@contextlib.contextmanager
def recorded(*, dry: bool = True, programs: Sequence = SWEEP_PROGRAMS + TRAIN_PROGRAMS
             ) -> Iterator[list[Call]]:  # fmt: skip
    """Record the calls of ``programs`` made inside the block (one entry per program)."""
    calls: list[Call] = []
    seen: set = set()
    saved = [(mod, name, getattr(mod, name)) for mod, name in programs]

    def recorder(name: str, fn: Callable) -> Callable:
        def call(*args):
            c = Call(name, fn, args)
            if c.key() not in seen:
                seen.add(c.key())
                calls.append(c)
            if not dry:
                return fn(*args)
            shapes = fn.eval_shape(*args)
            return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)

        return call

    try:
        for mod, name, fn in saved:
            setattr(mod, name, recorder(name, fn))
        yield calls
    finally:
        for mod, name, fn in saved:
            setattr(mod, name, fn)


def export(call: Call, platforms: Sequence[str]) -> jax.export.Exported:
    """Lower ``call``'s program for ``platforms`` (no such device needed)."""
    return jax.export.export(call.fn, platforms=tuple(platforms))(*call.abstract_args())
