"""The ``jaxinit`` command: sweep, report, train, theory and list, from the shell.

    jaxinit list                                   # initializers and activations, with formulas
    jaxinit sweep --inits he_normal "normal(stddev=0.01)" --activations relu tanh \\
                  --depth 5 --width 100 --seeds 8 --out out/sweep
    jaxinit report out/sweep                       # tables, figures and report.html
    jaxinit theory tanh --sigma-b2 0.05            # critical σ_w², q*, χ₁ and depth scales
    jaxinit theory relu --kernel --depth 3         # ... and the infinite-width NNGP and NTK
    jaxinit train --inits he_normal glorot_normal --seeds 3 --steps 500 --out out/train

Several processes (hosts, or processes on one host): ``jaxinit sweep|train ...
--out DIR --distributed`` in every process calls ``jax.distributed.initialize()``,
which finds the job itself under SLURM, Open MPI or on a TPU pod, or is told by
``--coordinator HOST:PORT --num-processes N --process-id I``; ``DIR`` must be a
directory every process sees.

``python -m jaxinit`` is the same command. Specs are given one per argument, so
quote those with parentheses. Bad input (a bad value, an unreadable path, a
damaged or busy output directory) prints one line naming the value and the
valid choices, and exits with status 2; ``JAXINIT_DEBUG=1`` shows the
traceback instead. A sweep or a training run given
``--out`` resumes where a killed run stopped.

This module uses the public API only (and the sweep's own size check, for a
report's theory overlay); :func:`main` takes ``argv`` so that tests call it
in-process.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import itertools
import math
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import jaxinit as ji
from jaxinit._dims import dim_values
from jaxinit._io import refuse_link
from jaxinit.training import PARAMETRIZATIONS

__all__ = ["main"]

EXIT_USAGE = 2


class _UsageError(Exception):
    """Bad input, reported in one line with exit status 2."""


LIST_WIDTH = 100  # columns `jaxinit list` fits in: a formula goes on its own line below its row


def _table(rows: list[tuple[str, ...]], notes: Sequence[str] = ()) -> str:
    """Aligned columns; ``notes[i]`` (a formula) under data row ``i``, indented and wrapped."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if notes:
        wrap = functools.partial(
            textwrap.wrap, width=LIST_WIDTH, initial_indent="    ", subsequent_indent="      "
        )
        lines = lines[:2] + [
            text for row, note in zip(lines[2:], notes, strict=True) for text in (row, *wrap(note))
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- list


def initializer_table(*, fan_in: int, fan_out: int, convention: str = "jax") -> str:
    """Every initializer: canonical spec, aliases, mean, variance, std and σ_w², and its
    formula on the line below.

    ``convention`` is passed to the schemes that take one; the torch convention
    lays weights out ``(fan_out, fan_in)``.
    """
    rows = [("initializer", "aliases", "mean", "variance", "std", "fan_in·Var")]
    formulas = []
    for name in ji.initializers.names():
        try:
            init = ji.initializers.get(f"{name}(convention={convention!r})")
            torch_layout = convention == "torch"
        except ValueError:  # the scheme takes no convention
            init, torch_layout = ji.initializers.get(name), False
        shape = (fan_out, fan_in) if torch_layout else (fan_in, fan_out)
        mean, var = init.moments(shape)
        formulas.append(ji.initializers.formula(name))
        rows.append(
            (
                init.spec,
                ", ".join(ji.initializers.aliases(name)),
                f"{mean:.4g}",
                f"{var:.4g}",
                f"{math.sqrt(var):.4g}",
                f"{fan_in * var:.4g}",
            )
        )
    return _table(rows, formulas)


def activation_table() -> str:
    """Every activation: name, aliases, bounds, torch gain, saturating/relu-like, and its
    formula on the line below."""
    rows = [("activation", "aliases", "range", "gain", "saturates", "dead region")]
    formulas = []
    for name in ji.activations.names():
        act = ji.activations.get(name)
        lo, hi = act.bounds
        formulas.append(ji.activations.formula(name))
        rows.append(
            (
                name,
                ", ".join(ji.activations.aliases(name)),
                f"[{lo:.4g}, {hi:.4g}]",
                "—" if act.gain is None else f"{act.gain:.4g}",
                "yes" if act.saturating else "no",
                "yes" if act.dead_region else "no",
            )
        )
    return _table(rows, formulas)


def _cmd_list(args: argparse.Namespace) -> int:
    if args.fan_in < 1 or args.fan_out < 1:
        raise _UsageError(
            f"--fan-in and --fan-out must be positive integers; got {args.fan_in}, {args.fan_out}"
        )
    if args.what in ("all", "initializers"):
        print(
            f"initializers at fan_in={args.fan_in}, fan_out={args.fan_out} "
            f"({args.convention} convention)\n"
        )
        print(
            initializer_table(fan_in=args.fan_in, fan_out=args.fan_out, convention=args.convention)
        )
    if args.what == "all":
        print()
    if args.what in ("all", "activations"):
        print("activations\n")
        print(activation_table())
    return 0


# ---------------------------------------------------------------------------- sweep


def _usage(fn, *args, **kwargs):
    """Calls a constructor that validates its input; its ValueError/TypeError is a usage error."""
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        raise _UsageError(str(e)) from None


def _inputs(value: str):
    if value in ("gaussian", "uniform"):
        return value
    path = Path(value)
    if path.suffix != ".npy" or not path.is_file():
        raise _UsageError(
            f"--inputs {value!r}: expected 'gaussian', 'uniform' or the path of a .npy "
            "array of shape (batch, d_in)"
        )
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" not in str(e):  # numpy's advice would be to unpickle: never
            raise _UsageError(_unreadable(value, str(e))) from None
        raise _UsageError(
            f"--inputs {value!r} holds Python objects (dtype object), not numbers; jaxinit "
            "does not unpickle files. Save the inputs as numbers: numpy.save(path, "
            "x.astype(numpy.float32)) for x of shape (batch, d_in)"
        ) from None
    except (OSError, EOFError) as e:  # not an .npy file
        raise _UsageError(_unreadable(value, str(e))) from None


def _unreadable(value: str, why: str) -> str:
    return (
        f"--inputs {value!r} is not a readable .npy array of numbers ({why}); save one with "
        "numpy.save(path, x) for x of shape (batch, d_in)"
    )


def grid_from_args(args: argparse.Namespace) -> ji.Grid:
    """The Grid that ``jaxinit sweep``'s flags describe."""
    seeds = args.seeds[0] if len(args.seeds) == 1 else args.seeds
    return _usage(
        ji.Grid,
        inits=args.inits,
        activations=args.activations,
        depth=args.depth,
        width=args.width,
        seeds=seeds,
        batch_size=args.batch_size,
        inputs=_inputs(args.inputs),
        d_in=args.d_in,
        bias_inits=args.bias_inits,
        bins=args.bins,
        batchnorm=args.batchnorm,
        cosine=args.cosine,
        gradients=not args.no_gradients,
        root_seed=args.root_seed,
    )


def _load_result(path: Path) -> tuple[ji.Result, Path]:
    """A saved result (of any kind) and the run directory it belongs to: ``path`` itself,
    ``path/result`` as ``ji.sweep(out=path)`` writes, or, for a folder a script of
    ``sweeps/`` wrote (``out/seed_histograms``), the one run directory in it holding
    ``result/`` (never through a link: nothing outside ``path`` is read)."""
    for candidate in (path, path / "result"):
        refuse_link(candidate)
        if (candidate / "manifest.json").is_file():
            return ji.Result.load(candidate), path
    runs = sorted(
        d
        for d in (path.iterdir() if path.is_dir() and not path.is_symlink() else ())
        if d.is_dir() and not d.is_symlink() and (d / "result" / "manifest.json").is_file()
    )
    if len(runs) == 1:
        refuse_link(runs[0] / "result")
        return ji.Result.load(runs[0] / "result"), runs[0]
    if runs:
        names = ", ".join(str(d) for d in runs)
        raise _UsageError(f"{str(path)!r} holds {len(runs)} runs; report one of them: {names}")
    raise _UsageError(
        f"{str(path)!r} holds no sweep or training result: expected {str(path / 'manifest.json')!r} "
        f"or {str(path / 'result' / 'manifest.json')!r} (from `jaxinit sweep|train --out DIR`), "
        "or one run directory holding result/ (from a script of sweeps/)"
    )


def _theory_for(res: ji.SweepResult) -> ji.SweepResult | None:
    """Theory's prediction for a saved sweep, or None (with a note) where there is none.

    The grid comes from the result's manifest, which a person may have edited: one
    that does not describe the result's layers, or whose prediction would not fit in
    memory (``predict``'s own size check), gets no prediction, before any is computed."""
    if "layers" in res.attrs:  # a ModelGrid's sweep: theory covers the MLP only
        return None
    try:
        grid = ji.Grid.from_description(res.attrs["grid"])
        depth = max(dim_values(grid.depth))
        layers = {
            v.shape[len(res.dims)]
            for k, v in res.fields.items()
            if res.field_dims[k][:1] == ("layer",)
        }
        if layers != {depth}:
            raise ValueError(
                f"the result's attrs['grid'] gives depth {depth}, but its fields have "
                f"{', '.join(map(str, sorted(layers))) or 'no'} layers"
            )
        return ji.theory.predict(grid)
    except (KeyError, ValueError) as e:
        print(f"note: no theory overlay: {e}", file=sys.stderr)
        return None


def _report(res: ji.SweepResult, out: Path, *, theory: bool) -> None:
    prediction = _theory_for(res) if theory else None
    paths = ji.report.report_sweep(res, out, theory=prediction)
    print(ji.report.summary_table(res, fmt="text"))
    print(f"\nreport: {paths['html'] if isinstance(paths, dict) else out / 'report.html'}")


# flags of the built-in MLP, which a --model sweep does not take (its model has them itself)
_MLP_FLAGS = {
    "depth": [5],
    "width": [100],
    "d_in": None,
    "batch_size": None,
    "batchnorm": False,
    "bias_inits": ["zeros"],
}


def _factory(value: str):
    """The factory ``module:name`` (importable from the current directory) or
    ``path/to/file.py:name`` names."""
    import importlib
    import importlib.util

    where, _, name = value.rpartition(":")
    if not where or not name.isidentifier():
        raise _UsageError(
            f"--model {value!r}: expected MODULE:FACTORY or path/to/file.py:FACTORY, the factory "
            "a function make(rngs) -> nnx.Module"
        )
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise _UsageError(f"--model {value!r}: {where} is not a file")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(where)
    except ImportError as e:
        raise _UsageError(f"--model {value!r}: cannot import {where}: {e}") from None
    make = getattr(module, name, None)
    if not callable(make):
        raise _UsageError(f"--model {value!r}: {where} has no callable {name!r}")
    return make


def model_grid_from_args(args: argparse.Namespace):
    """The ModelGrid that ``jaxinit sweep --model``'s flags describe."""
    given = [
        "--" + k.replace("_", "-")
        for k, default in _MLP_FLAGS.items()
        if getattr(args, k) != default
    ]
    if args.activations is not None:
        given.append("--activations")
    if given:
        raise _UsageError(
            f"--model sweeps your model as it is; {', '.join(given)} describe the built-in MLP: "
            "drop them"
        )
    seeds = args.seeds[0] if len(args.seeds) == 1 else args.seeds
    inputs = _inputs(args.inputs)
    return _usage(
        ji.ModelGrid,
        model=_factory(args.model),
        inits=args.inits,
        seeds=seeds,
        inputs=inputs,
        input_shape=tuple(args.input_shape) if args.input_shape else None,
        bins=args.bins,
        cosine=args.cosine,
        gradients=not args.no_gradients,
        root_seed=args.root_seed,
    )


def _cmd_sweep(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _sweep_model(args)
    if args.input_shape is not None:
        raise _UsageError("--input-shape is for --model sweeps; the MLP takes --batch-size, --d-in")
    if args.activations is None:
        raise _UsageError("the following arguments are required: --activations (or --model)")
    grid = grid_from_args(args)
    if args.chunk_size is not None and args.chunk_size < 1:
        raise _UsageError(f"--chunk-size must be a positive integer; got {args.chunk_size}")
    print(args.devices_line, file=sys.stderr)
    print(f"{len(grid)} combinations", file=sys.stderr)
    res = ji.sweep(
        grid, out=args.out, chunk_size=args.chunk_size, process_timeout=args.process_timeout
    )
    if args.out is None:
        print(ji.report.summary_table(res, fmt="text"))
        return 0
    import jax

    if args.distributed and jax.process_index() != 0:  # one report, by process 0
        print(
            f"process {jax.process_index()}: done; process 0 writes the report into {args.out}",
            file=sys.stderr,
        )
        return 0
    _report(res, Path(args.out), theory=not args.no_theory)
    return 0


def _sweep_model(args: argparse.Namespace) -> int:
    grid = model_grid_from_args(args)
    if args.chunk_size is not None and args.chunk_size < 1:
        raise _UsageError(f"--chunk-size must be a positive integer; got {args.chunk_size}")
    print(args.devices_line, file=sys.stderr)
    print(f"{len(grid.inits) * len(grid.seeds)} models of {args.model}", file=sys.stderr)
    res = ji.sweep(grid, out=args.out, chunk_size=args.chunk_size)
    layers = res.attrs["layers"]
    rows = [("init", "layer", "type", "pre_var (median over seeds)")]
    for i, init in enumerate(res.coords["init"]):
        for l, (name, kind) in enumerate(zip(layers, res.attrs["layer_types"], strict=True)):
            rows.append((str(init), name, kind, f"{np.median(res.pre_var[i, :, l]):.4g}"))
    print(_table(rows))
    if args.out is not None:
        paths = ji.report.report_sweep(res, Path(args.out), title=f"jaxinit sweep of {args.model}")
        print(f"\nresult: {Path(args.out) / 'result'}\nreport: {paths.html}")
    return 0


def _is_training(res: ji.SweepResult) -> bool:
    return "loss" in res.fields and "eval_steps" in res.attrs


def _report_train(res: ji.SweepResult, out: Path) -> None:
    paths = ji.report.report_train(res, out)
    print(f"\nreport: {paths.html}")


def _cmd_report(args: argparse.Namespace) -> int:
    res, run_dir = _load_result(Path(args.result))
    out = Path(args.out) if args.out else run_dir
    if _is_training(res):  # a `jaxinit train --out DIR` directory
        _report_train(res, out)
    else:
        _report(res, out, theory=not args.no_theory)
    return 0


# ---------------------------------------------------------------------------- theory


def _cmd_theory(args: argparse.Namespace) -> int:
    from jaxinit.theory._quadrature import check_domain

    act = _usage(ji.activations.get, args.activation)
    for flag, values in (("--sigma-w2", args.sigma_w2 or ()), ("--sigma-b2", args.sigma_b2)):
        # the library's own check: >= 0, finite, and within what float32 quadrature holds
        _usage(check_domain, "", flag, list(values))
    if args.kernel:  # checked before any table is printed
        if args.depth < 1:
            raise _UsageError(f"--depth must be an int >= 1; got {args.depth}")
        if not math.isfinite(args.angle):
            raise _UsageError(f"--angle takes a finite number of degrees; got {args.angle}")
        if 0.0 in (args.sigma_w2 or ()):
            raise _UsageError("--kernel needs --sigma-w2 > 0; got 0.0")
    t = ji.theory
    rows = [("σ_b²", "critical σ_w² (χ₁ = 1)", "q* → ∞ past σ_w²", "beyond the edge")]
    notes = set()
    for b2 in args.sigma_b2:
        crit = float(t.critical_sigma_w2(act, sigma_b2=b2))
        div = float(t.divergence_sigma_w2(act, sigma_b2=b2))
        if math.isnan(crit):
            beyond = "no transition (1)"
            notes.add(1)
        elif math.isfinite(div) and abs(div - crit) <= 1e-5 * crit:
            beyond = "q* → ∞ (2)"
            notes.add(2)
        else:
            beyond = "chaos"
        rows.append(
            (
                f"{b2:.4g}",
                "none" if math.isnan(crit) else f"{crit:.6g}",
                "never" if math.isinf(div) else f"{div:.6g}",
                beyond,
            )
        )
    print(f"{args.activation}: the edge of chaos (χ₁ = 1)\n")
    print(_table(rows))
    for n in sorted(notes):
        print(_THEORY_NOTES[n])
    rows = [("σ_w²", "σ_b²", "q*", "χ₁", "ξ_q", "ξ_c", "ξ_∇", "phase")]
    for b2 in args.sigma_b2:
        for w2 in args.sigma_w2 or _default_sigma_w2(act, b2):
            fp = t.q_star(act, sigma_w2=w2, sigma_b2=b2)
            if bool(fp.diverged) or not bool(fp.converged):
                state = "diverges" if bool(fp.diverged) else "does not converge"
                res = float(fp.resolution)
                if not bool(fp.diverged) and math.isfinite(res) and res > t.Q_STAR_TOL:
                    state = f"unresolved in float32 (±{res:.1g})"
                rows.append((f"{w2:.4g}", f"{b2:.4g}", state, "", "", "", "", ""))
                continue
            chi = float(t.chi1(act, q=fp.q, sigma_w2=w2))
            scales = t.depth_scales(act, sigma_w2=w2, sigma_b2=b2)
            phase = "critical" if abs(chi - 1) < 1e-3 else ("chaotic" if chi > 1 else "ordered")
            rows.append(
                (
                    f"{w2:.4g}",
                    f"{b2:.4g}",
                    f"{float(fp.q):.5g}",
                    f"{chi:.5g}",
                    *(f"{float(s):.4g}" for s in scales[:3]),
                    phase,
                )
            )
    print(f"\n{args.activation}: fixed point, χ₁ and depth scales (Schoenholz et al. 2017)\n")
    print(_table(rows))
    print(_THEORY_NOTES["xi"])
    if not args.sigma_w2 and 1 in notes:  # the rows were chosen around a jump, not an edge
        print(_THEORY_NOTES["rows"])
    if args.kernel:
        _theory_kernels(act, args)
    return 0


_THEORY_NOTES = {
    "rows": "σ_w² rows: with no edge of chaos, 2% below and 2% above the σ_w² past which q* "
    "jumps to ∞ (the first table); --sigma-w2 gives others.",
    1: "(1) no continuous order-to-chaos transition: χ₁ < 1 on every stable fixed point "
    "reached from small q; past the σ_w² shown the stable q* is gone (a saddle-node) and q "
    "jumps to ∞. A larger q0 can diverge earlier.",
    2: "(2) the edge is where q* → ∞ (the relu family, softplus): past it q diverges; there "
    "is no chaotic phase.",
    "xi": "ξ: depth scales in layers; ∞ at criticality (within float32's resolution of χ = 1). "
    "ξ_∇ = -1/log χ₁ is signed: < 0 where χ₁ > 1, gradients growing e-fold every |ξ_∇| layers.",
}


def _default_sigma_w2(act, b2: float) -> list[float]:
    """The σ_w² rows when none are given: the edge, or either side of a discontinuous jump
    (in float64 under ``jax.enable_x64``, where the theory follows its argument's dtype)."""
    b2 = np.float64(b2)
    crit = float(ji.theory.critical_sigma_w2(act, sigma_b2=b2))
    if math.isfinite(crit):
        return [crit]
    div = float(ji.theory.divergence_sigma_w2(act, sigma_b2=b2))
    return [0.98 * div, 1.02 * div] if math.isfinite(div) else [1.0, 2.0]


def _theory_kernels(act, args: argparse.Namespace) -> None:
    """``--kernel``: the NNGP and NTK of x = (1, 0) and x' = (cos α, sin α), d_in = 2, in
    float64 (``jax.enable_x64``), so that six printed digits are all right (float32 printed
    k(x, x) = 1 as 0.999999)."""
    import jax

    depth = args.depth
    a = math.radians(args.angle)
    x = np.array([[1.0, 0.0], [math.cos(a), math.sin(a)]], np.float64)
    t = ji.theory
    rows = [("σ_w²", "σ_b²", "kernel", "k(x,x)", "k(x,x')", "k(x',x)", "k(x',x')")]
    with jax.enable_x64(True):  # the default σ_w² (the edge of chaos) too
        for b2 in args.sigma_b2:
            for w2 in args.sigma_w2 or _default_sigma_w2(act, b2):
                k = _usage(t.kernels, act, x, depth=depth, sigma_w2=w2, sigma_b2=b2)
                for label, m in (("NNGP", np.asarray(k.nngp)), ("NTK", np.asarray(k.ntk))):
                    cells = (f"{v:.6g}" for v in m.ravel())
                    rows.append((f"{w2:.4g}", f"{b2:.4g}", label, *cells))
    print(
        f"\n{args.activation}: infinite-width NNGP and NTK of z_{depth}, depth {depth} "
        "(Lee et al. 2018; Jacot et al. 2018, NTK parameterization)"
    )
    print(
        f"inputs: x = (1, 0), x' = (cos {args.angle:g}°, sin {args.angle:g}°): unit norm, "
        f"d_in = 2, angle {args.angle:g}°\n"
    )
    print(_table(rows))


# ---------------------------------------------------------------------------- train


def _one_or_list(values: list | None):
    """A flag's one value as itself (no dim), several as a list (a dim of the result)."""
    return values[0] if values is not None and len(values) == 1 else values


def _cmd_train(args: argparse.Namespace) -> int:
    import jax

    seeds = _one_or_list(args.seeds)
    output = "sigmoid" if args.data == "circles" else "softmax"
    grid = _usage(
        ji.TrainGrid,
        inits=args.inits,
        seeds=seeds,
        hidden=tuple(args.hidden),
        width=_one_or_list(args.width),
        learning_rate=_one_or_list(args.learning_rate),
        parametrization=args.parametrization,
        base_width=args.base_width,
        activations=_one_or_list(args.activations),
        bias_inits=args.bias_inits,
        optimizer=args.optimizer,
        steps=args.steps,
        batch_size=None if args.batch_size == 0 else args.batch_size,
        eval_every=args.eval_every,
        output=output,
        root_seed=args.root_seed,
    )
    if args.data == "mnist":
        if args.data_dir is not None and not Path(args.data_dir).is_dir() and not args.download:
            raise _UsageError(
                f"--data-dir {args.data_dir} is not a directory; give the folder that holds "
                "MNIST's four .gz files, or add --download to fetch them into it"
            )
        try:
            data = ji.data.load_mnist("train", data_dir=args.data_dir)
            eval_data = ji.data.load_mnist("test", data_dir=args.data_dir)
        except (OSError, ValueError) as e:  # the whole message: mirrors tried, what to set
            raise _UsageError(str(e)) from None
        dataset = "MNIST: train split (test split for evaluation), 28×28 pixels / 255 in [0, 1]"
    else:
        key = jax.random.key(args.data_seed)
        data = ji.data.make_circles(jax.random.fold_in(key, 0), 1000, noise=0.05, factor=0.5)
        eval_data = ji.data.make_circles(jax.random.fold_in(key, 1), 1000, noise=0.05, factor=0.5)
        dataset = (
            f"two circles (make_circles, noise 0.05, factor 0.5), data seed {args.data_seed}: "
            "1000 points to train on, 1000 others to evaluate"
        )
    print(args.devices_line, file=sys.stderr)
    res = ji.train(
        grid,
        data=data,
        eval_data=eval_data,
        out=args.out,
        on_update=ji.jsonl_writer(args.log) if args.log else None,
        process_timeout=args.process_timeout,
        dataset=dataset,
    )
    dims = [d for d in res.dims if d != "seed"]
    rows = [(*dims, f"{ji.training.FINAL_LOSS}, seed mean", "test accuracy (end)")]
    for labels in itertools.product(*(res.coords[d] for d in dims)):
        s = res.sel(**dict(zip(dims, labels, strict=True)))
        acc = getattr(s, "test_accuracy", None)
        rows.append(
            (
                *(str(v) for v in labels),
                f"{float(np.mean(ji.training.final_loss(s.loss))):.4f}",
                "" if acc is None else f"{float(np.mean(acc[..., -1])):.2%}",
            )
        )
    print(_table(rows))
    if args.out and (not args.distributed or jax.process_index() == 0):  # one report, by process 0
        print(f"\nresult: {Path(args.out) / 'result'}")
        _report_train(res, Path(args.out))
    return 0


# ---------------------------------------------------------------------------- processes


def _add_distributed_flags(q: argparse.ArgumentParser, what: str) -> None:
    """``--distributed`` and its company: one process of a multi-process job."""
    g = q.add_argument_group(
        "several processes (jax.distributed)",
        f"run the same command in every process; each computes its share of the {what} into "
        "--out, a directory every process sees",
    )
    g.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize(): auto-detected under SLURM, Open MPI "
        "or on a TPU pod, or from the three flags below",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=None,
        help="process 0's address and a free port (with --distributed)",
    )
    g.add_argument(
        "--num-processes",
        type=int,
        metavar="N",
        default=None,
        help="processes in the job (with --distributed)",
    )
    g.add_argument(
        "--process-id",
        type=int,
        metavar="I",
        default=None,
        help="this process's index, 0 to N-1 (with --distributed)",
    )
    g.add_argument(
        "--process-timeout",
        type=float,
        metavar="SECONDS",
        default=inspect.signature(ji.sweep).parameters["process_timeout"].default,
        help="seconds to wait for a silent process before giving up (with --distributed)",
    )


def _init_distributed(args: argparse.Namespace) -> str:
    """Checks the distributed flags and, with ``--distributed``, joins the job (before jax
    starts its backends); returns a line saying which process this is, or ''."""
    explicit = {
        "--coordinator": args.coordinator,
        "--num-processes": args.num_processes,
        "--process-id": args.process_id,
    }
    given = [k for k, v in explicit.items() if v is not None]
    if not (math.isfinite(args.process_timeout) and args.process_timeout > 0):
        raise _UsageError(
            f"--process-timeout takes a positive number of seconds; got {args.process_timeout}"
        )
    if not args.distributed:
        if given:
            raise _UsageError(f"{', '.join(given)} only go with --distributed")
        return ""
    if given and len(given) < 3:
        missing = ", ".join(k for k in explicit if k not in given)
        raise _UsageError(
            f"--distributed with {', '.join(given)} needs {missing} too: give all three "
            "(--coordinator HOST:PORT --num-processes N --process-id I), or none to let "
            "jax.distributed detect the job (SLURM, Open MPI, TPU)"
        )
    if args.out is None:
        raise _UsageError(
            "--distributed needs --out DIR, a directory every process sees: the processes "
            "exchange their work through it"
        )
    if given:
        host, _, port = args.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _UsageError(
                f"--coordinator takes HOST:PORT, e.g. 10.0.0.1:1234; got {args.coordinator!r}"
            )
        if args.num_processes < 1:
            raise _UsageError(f"--num-processes must be >= 1; got {args.num_processes}")
        if not 0 <= args.process_id < args.num_processes:
            raise _UsageError(
                f"--process-id must be in 0..{args.num_processes - 1} (--num-processes {args.num_processes}); got {args.process_id}"
            )
    import jax

    try:
        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    except (RuntimeError, ValueError) as e:
        how = (
            ""
            if given
            else " (no SLURM, Open MPI or TPU job found? then give --coordinator, --num-processes and --process-id)"
        )
        raise _UsageError(f"jax.distributed.initialize failed{how}: {_one_line(e)}") from None
    args.joined = True
    return f"jaxinit: process {jax.process_index()} of {jax.process_count()} (jax.distributed)"


# ---------------------------------------------------------------------------- main


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (but None and False, which the help says in words), and
    keeps the examples' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or action.required:
            return action.help or ""
        return super()._get_help_string(action)


_EXAMPLES = {
    "list": "example:\n  jaxinit list initializers --fan-in 784 --fan-out 256 --convention torch",
    "sweep": "examples:\n  jaxinit sweep --inits he_normal glorot_normal --activations relu tanh "
    "--out out/sweep\n  jaxinit sweep --inits 'normal(stddev=0.01)' --activations relu --depth 5 "
    "50 --no-gradients\n  jaxinit sweep --model my_models.py:make --inits he_normal "
    "delta_orthogonal --input-shape 64 8 8 3",
    "report": "example:\n  jaxinit report out/sweep        # or a `jaxinit train --out` directory",
    "theory": "examples:\n  jaxinit theory tanh --sigma-b2 0 0.05\n  jaxinit theory relu --kernel "
    "--depth 3 --sigma-w2 2 --sigma-b2 0.1",
    "train": "examples:\n  jaxinit train --data circles --inits zeros he_normal --batch-size 0 "
    "--out out/circles\n  jaxinit train --inits he_normal glorot_normal --steps 500 --log "
    "out/m.jsonl --out out/mnist\n  jaxinit train --inits he_normal --width 64 256 1024 "
    "--learning-rate 1e-3 3e-3 --optimizer adam --parametrization mup --out out/mup",
}


def parser() -> argparse.ArgumentParser:
    """The argument parser of the ``jaxinit`` command."""
    p = argparse.ArgumentParser(
        prog="jaxinit", description="Weight initialization at scale, in JAX."
    )
    p.add_argument("--version", action="version", version=f"jaxinit {ji.__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_command in (
        _list_command,
        _sweep_command,
        _report_command,
        _theory_command,
        _train_command,
    ):
        add_command(sub)
    return p


def _command(sub, name: str, run, *, help: str) -> argparse.ArgumentParser:
    """The subcommand ``name``: its defaults shown, its examples as the epilog."""
    q = sub.add_parser(name, formatter_class=_HelpFormatter, epilog=_EXAMPLES[name], help=help)
    q.set_defaults(run=run)
    return q


class _Renamed(argparse.Action):
    """A flag's old name, kept for one release: it sets the new flag's value and says, on
    stderr, to use the new name."""

    def __init__(self, option_strings, dest, *, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(
            f"{parser.prog}: warning: {option_string} is deprecated and will be removed in the "
            f"next release; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def _add_renamed(q, flag: str, old: str, **kwargs) -> None:
    """``flag``, and its old name ``old`` (hidden, deprecated); giving both is an error."""
    both = q.add_mutually_exclusive_group()
    action = both.add_argument(flag, **kwargs)
    both.add_argument(
        old,
        action=_Renamed,
        new=flag,
        dest=action.dest,
        nargs=action.nargs,
        type=action.type,
        metavar=action.metavar,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def _add_grid_flags(
    q, *, activations: list[str] | None, seeds: int, what: str, renamed: dict[str, str]
) -> None:
    """The settings every grid has, named as the grids name them (``ji.Grid``,
    ``ji.TrainGrid``): --inits, --activations (required when ``activations`` is None),
    --bias-inits, --seeds and --root-seed; ``renamed`` maps a flag to its deprecated name."""

    def add(flag: str, **kwargs) -> None:
        if flag in renamed:
            _add_renamed(q, flag, renamed[flag], **kwargs)
        else:
            q.add_argument(flag, **kwargs)

    add("--inits", nargs="+", required=True, metavar="SPEC", help=f"initializer specs{what}")
    several = (
        " (required unless --model)" if activations is None else "; several add an activation dim"
    )
    add(
        "--activations",
        nargs="+",
        required=False,
        default=activations,
        metavar="SPEC",
        help=f"activation specs, e.g. relu tanh 'leaky_relu(negative_slope=0.2)'{several}",
    )
    add("--bias-inits", nargs="+", default=["zeros"], metavar="SPEC", help="bias initializer specs")
    add("--seeds", nargs="+", type=int, default=[seeds], help="a count, or seed values")
    add("--root-seed", type=int, default=0, help="every seed's key derives from it")


def _list_command(sub) -> None:
    q = _command(sub, "list", _cmd_list, help="initializers and activations, with their formulas")
    q.add_argument("what", nargs="?", choices=("all", "initializers", "activations"), default="all")
    q.add_argument("--fan-in", type=int, default=784, help="fan-in of the layer")
    q.add_argument("--fan-out", type=int, default=256, help="fan-out of the layer")
    q.add_argument(
        "--convention",
        choices=ji.initializers.CONVENTIONS,
        default="jax",
        help="whose fan and layout rules the schemes that take one follow (torch: (out, in))",
    )


def _sweep_command(sub) -> None:
    q = _command(sub, "sweep", _cmd_sweep, help="networks at initialization: per-layer statistics")
    _add_grid_flags(q, activations=None, seeds=4, what="", renamed={})
    q.add_argument(
        "--depth", nargs="+", type=int, default=[5], help="hidden layers, one or more depths"
    )
    q.add_argument(
        "--width",
        nargs="+",
        type=int,
        default=[100],
        help="units per hidden layer, one or more widths",
    )
    _add_renamed(
        q,
        "--batch-size",
        "--batch",
        type=int,
        default=None,
        help="input samples per network (default 1000; with a .npy --inputs, its rows)",
    )
    q.add_argument("--inputs", default="gaussian", help="gaussian, uniform or a .npy array")
    q.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FACTORY",
        help="sweep your own Flax NNX model: a factory make(rngs) -> nnx.Module, as "
        "module:name (importable from here) or path/to/file.py:name",
    )
    q.add_argument(
        "--input-shape",
        nargs="+",
        type=int,
        default=None,
        help="with --model and generated --inputs: (batch, ...) of each seed's inputs",
    )
    q.add_argument(
        "--d-in",
        type=int,
        default=None,
        help="input dimension (default the first width; with a .npy --inputs, its columns)",
    )
    q.add_argument("--bins", type=int, default=30, help="histogram bins")
    q.add_argument("--batchnorm", action="store_true", help="batch-normalize pre-activations")
    q.add_argument("--cosine", action="store_true", help="record the mean cosine between samples")
    q.add_argument(
        "--no-gradients",
        action="store_true",
        help="skip the backward pass (no grad_var, weight_grad_norm): faster",
    )
    q.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help="seeds per checkpointed chunk (None: about 4096 combinations)",
    )
    q.add_argument("--out", default=None, help="directory: checkpoints, result and report")
    q.add_argument("--no-theory", action="store_true", help="no mean-field overlay in the report")
    _add_distributed_flags(q, "chunks")


def _report_command(sub) -> None:
    q = _command(
        sub, "report", _cmd_report, help="tables, figures and report.html of a saved sweep"
    )
    q.add_argument("result", help="a sweep's --out directory, or a saved SweepResult")
    q.add_argument("--out", default=None, help="where to write (None: RESULT itself)")
    q.add_argument("--no-theory", action="store_true", help="no mean-field overlay")


def _theory_command(sub) -> None:
    q = _command(
        sub, "theory", _cmd_theory, help="edge of chaos, q*, χ₁ and depth scales of an activation"
    )
    q.add_argument(
        "activation", help="activation spec, e.g. tanh or 'leaky_relu(negative_slope=0.2)'"
    )
    q.add_argument(
        "--sigma-w2",
        nargs="+",
        type=float,
        default=None,
        help="weight variances σ_w² (None: the critical one)",
    )
    q.add_argument("--sigma-b2", nargs="+", type=float, default=[0.0], help="bias variances σ_b²")
    q.add_argument(
        "--kernel",
        action="store_true",
        help="also the infinite-width NNGP and NTK of two unit inputs",
    )
    q.add_argument("--depth", type=int, default=3, help="--kernel: Dense layers")
    q.add_argument(
        "--angle", type=float, default=60.0, help="--kernel: the inputs' angle in degrees"
    )


def _train_command(sub) -> None:
    q = _command(sub, "train", _cmd_train, help="train many MLPs at once (MNIST or two circles)")
    q.add_argument(
        "--data",
        choices=("mnist", "circles"),
        default="mnist",
        help="the dataset: MNIST (784 inputs, 10 classes) or two circles (2 inputs, 2 classes)",
    )
    q.add_argument("--data-dir", default=None, help="MNIST directory (None: $JAXINIT_DATA)")
    q.add_argument(
        "--download",
        action="store_true",
        help="create --data-dir if missing and download MNIST into it (else a missing one is refused)",
    )
    q.add_argument("--data-seed", type=int, default=0, help="circles: seed of the data")
    _add_grid_flags(
        q,
        activations=["relu"],
        seeds=3,
        what=", one model per init and seed",
        renamed={"--activations": "--activation", "--bias-inits": "--bias-init"},
    )
    q.add_argument(
        "--hidden", nargs="+", type=int, default=[100, 100, 100, 100], help="hidden layer widths"
    )
    q.add_argument(
        "--optimizer",
        default="sgd(learning_rate=0.01)",
        help="an optax spec, e.g. 'adam(learning_rate=1e-3)'",
    )
    q.add_argument(
        "--width",
        nargs="+",
        type=int,
        default=None,
        help="the width of every hidden layer (--hidden then gives the depth); "
        "several add a width dim",
    )
    q.add_argument(
        "--learning-rate",
        nargs="+",
        type=float,
        default=None,
        help="the optimizer's rate (give --optimizer without one, e.g. 'adam'); "
        "several add a learning_rate dim",
    )
    q.add_argument(
        "--parametrization",
        choices=PARAMETRIZATIONS,
        default="standard",
        help="how init variances and rates scale with width (mup: TP5 Table 3; needs --width)",
    )
    q.add_argument(
        "--base-width", type=int, default=None, help="μP's base width (None: the smallest --width)"
    )
    q.add_argument("--steps", type=int, default=2000, help="training steps")
    q.add_argument("--batch-size", type=int, default=128, help="mini-batch size; 0: full batch")
    q.add_argument("--eval-every", type=int, default=100, help="steps between evaluations")
    q.add_argument("--out", default=None, help="directory: checkpoints and result")
    q.add_argument(
        "--log",
        default=None,
        metavar="FILE.jsonl",
        help="append each model's metrics at every evaluation as JSON lines",
    )
    _add_distributed_flags(q, "seeds")


# What a run may raise for input it cannot use: a bad value or type, a path it cannot
# read or write, a damaged or busy output directory (jaxinit._store.StoreBusy). These are
# the user's to fix, so they print as one line; JAXINIT_DEBUG=1 shows the traceback.
_INPUT_ERRORS = (_UsageError, ValueError, TypeError, OSError, RuntimeError)


def _one_line(error: BaseException) -> str:
    """The message on one line: its lines joined, list items after a colon with '; '."""
    out = ""
    for line in (ln.strip() for ln in str(error).splitlines()):
        if line:
            out += ("" if not out else " " if out.endswith(":") else "; ") + line.removeprefix("- ")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = parser()
    if argv and argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
        commands = ", ".join(p._subparsers._group_actions[0].choices)
        print(
            f"jaxinit: error: unrecognized option {argv[0]!r} before the command; valid: "
            f"-h/--help, --version, or a command ({commands})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        args = p.parse_args(argv)
    except SystemExit as e:  # --help, --version, or argparse's own usage error (status 2)
        return int(e.code or 0)
    try:
        if args.command in ("sweep", "train"):  # before jax starts; said once the input is valid
            joined = _init_distributed(args) if hasattr(args, "distributed") else ""
            args.devices_line = "\n".join(filter(None, [joined, ji.use_cpu_cores()]))
        return args.run(args)
    except _INPUT_ERRORS as e:
        if os.environ.get("JAXINIT_DEBUG"):  # every one, the command line's own checks too
            raise
        print(f"jaxinit {args.command}: error: {_one_line(e)}", file=sys.stderr)
        if getattr(args, "joined", False):
            # not through jax.distributed's shutdown barrier: it would wait for a dead process
            # until JAX's heartbeat timeout (100 s), then abort this one
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_USAGE)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
