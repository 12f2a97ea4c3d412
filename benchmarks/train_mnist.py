r"""Training 30 MNIST MLPs: jaxinit's one vectorized program against one model at a time.

The classic experiment: 3 initializations (``normal(stddev=0.01)``,
``glorot_normal``, ``he_normal``) × 10 seeds, each a 784-100-100-100-100-10
ReLU MLP trained for 2000 SGD steps (learning rate 0.01, mini-batches of 128,
one shared order) on the 60,000 MNIST training images. The peers:

- **jaxinit**: ``ji.train``: every model stacked, ``jit(vmap(step))`` under
  ``lax.scan``, the model axis split over every local device (``shard_map``),
  warm (its compile is reported apart); and again on one device;
- **PyTorch loop** (when torch is importable): ``nn.Sequential`` of
  ``nn.Linear`` and ``nn.ReLU``, ``torch.nn.init``, ``torch.optim.SGD``, one
  model after another, one step at a time;
- **JAX loop**: the same model in plain JAX, one ``jax.jit`` step function
  (compiled once, shared by all models) called once per model and step.

Every peer runs the same arithmetic per model step: a forward and backward pass
of a 128-example mini-batch. The issue counts
:math:`6 \cdot 128 \cdot (784 \cdot 100 + 3 \cdot 100^2 + 100 \cdot 10) \approx 8.4 \cdot 10^7`
flops; no peer computes :math:`\partial L / \partial x` of the input layer
(:math:`2 \cdot 128 \cdot 784 \cdot 100 \approx 2.0 \cdot 10^7`), so
:math:`6.4 \cdot 10^7` are executed, and the GFLOP/s column and the ceiling
use those. The figure is *model-steps per second*; ratios are measured in the
same run. Peers may be timed on a sample of the models (``--peer-models``), as
their cost per model step does not depend on which model it is. The machine's
matmul peak is measured in the same run as ``benchmarks/standard_grid.py`` does.

Devices: XLA:CPU runs a batched matmul on one thread per device, and a CPU
process has one device unless ``JAX_NUM_CPU_DEVICES`` is set before JAX starts.
Run as a script with it unset, this script sets it to the number of cores
(``os.cpu_count()``) and says so; set it yourself to choose.

    python benchmarks/train_mnist.py [--steps N] [--seeds N] [--examples N]
                                     [--peer-models N] [--data-dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import pathlib
import platform
import sys
import time

# before JAX starts: one CPU device per core, unless the caller chose
DEVICES_SET_HERE = __name__ == "__main__" and "JAX_NUM_CPU_DEVICES" not in os.environ
if DEVICES_SET_HERE:
    os.environ["JAX_NUM_CPU_DEVICES"] = str(os.cpu_count() or 1)

import importlib.util  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxinit as ji  # noqa: E402
from jaxinit.data import load_mnist  # noqa: E402
from jaxinit.training import TrainGrid, train  # noqa: E402

INITS = ("normal(stddev=0.01)", "glorot_normal", "he_normal")
HIDDEN = (100, 100, 100, 100)
LEARNING_RATE = 0.01
BATCH = 128
EVAL_EXAMPLES = 1000  # jaxinit evaluates at the first and last step on this many test images
TARGETS = {"model_steps_per_s": 3000.0, "torch_ratio": 5.0}  # from the issue


def _flops(d_in: int, d_out: int, *, executed: bool = True, hidden=HIDDEN) -> float:
    """Flops of one model step: 3 matmuls per layer (forward, ∂L/∂W, ∂L/∂h), less the
    input layer's ∂L/∂x, which nobody computes, when ``executed``."""
    sizes = (d_in, *hidden, d_out)
    flops = 6.0 * BATCH * sum(a * b for a, b in itertools.pairwise(sizes))
    return flops - 2.0 * BATCH * d_in * hidden[0] if executed else flops


@functools.cache
def _standard_grid():
    """``benchmarks/standard_grid.py`` as a module: its matmul peak and ``CpuWatch``."""
    path = pathlib.Path(__file__).with_name("standard_grid.py")
    spec = importlib.util.spec_from_file_location("_standard_grid", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _matmul_peak() -> dict:
    """The best float32 matmul GFLOP/s at n = 1024 and 2048, by ``standard_grid.matmul_peak``."""
    peaks = [_standard_grid().matmul_peak(n) for n in (1024, 2048)]
    return {k: max(p[k] for p in peaks) for k in ("jax_gflops", "numpy_gflops", "gflops")}


def _devices_note() -> str:
    n, kind = len(jax.local_devices()), jax.default_backend()
    if kind != "cpu":
        return f"{n} {kind} devices"
    value = os.environ.get("JAX_NUM_CPU_DEVICES")
    if DEVICES_SET_HERE:
        how = f"JAX_NUM_CPU_DEVICES={value} set by this script (it was unset; one per core)"
    elif value is not None:
        how = f"JAX_NUM_CPU_DEVICES={value} from the environment"
    else:
        how = "JAX_NUM_CPU_DEVICES unset (set before JAX starts for one device per core)"
    return f"{n} CPU device{'s' * (n > 1)}, {how}"


def _order(n: int, steps: int, seed: int = 0) -> np.ndarray:
    """``(steps, BATCH)`` row indices for the loop peers: a fresh permutation per epoch."""
    rng, per, rows = np.random.default_rng(seed), n // BATCH, []
    for _ in range(-(-steps // per)):
        perm = rng.permutation(n)
        rows += [perm[i * BATCH : (i + 1) * BATCH] for i in range(per)]
    return np.stack(rows[:steps]).astype(np.int32)


# -- peers -------------------------------------------------------------------------------------


def time_jaxinit(data, eval_data, *, seeds: int, steps: int, devices=None) -> dict:
    """``ji.train`` on ``devices`` (None: every local device), warm."""
    grid = TrainGrid(
        inits=list(INITS),
        seeds=seeds,
        hidden=HIDDEN,
        steps=steps,
        batch_size=BATCH,
        optimizer=f"sgd(learning_rate={LEARNING_RATE})",
    )
    run = lambda: train(grid, data, eval_data, progress=False, devices=devices)  # noqa: E731
    t = time.perf_counter()
    run()  # compiles: every later call of this shape is warm
    first = time.perf_counter() - t
    t = time.perf_counter()
    res = run()
    seconds = time.perf_counter() - t
    models = len(INITS) * seeds
    tail = max(1, steps // 10)  # mean loss of the last tenth of the steps, per init
    final = {i: float(res.sel(init=i).loss[:, -tail:].mean()) for i in INITS}
    return {
        "model_steps_per_s": models * steps / seconds,
        "seconds": seconds,
        "models": models,
        "first_call_s": first,
        "final_loss": final,
        "model_losses": res.loss[..., -tail:].mean(-1).ravel().tolist(),
        "devices": len(jax.local_devices() if devices is None else devices),
        "final_accuracy": {i: float(res.sel(init=i).test_accuracy[:, -1].mean()) for i in INITS},
    }


def time_callback(data, eval_data, *, seeds: int, steps: int, every: int = 100, reps: int = 3):
    """The cost of an ``on_update`` hook every ``every`` steps, warm, alternating runs.

    Three runs of the same models: no evaluations (``eval_every=None``: step 0 and the end);
    evaluations every ``every`` steps without a hook; the same with ``on_update=jsonl_writer``,
    which writes every model's metrics as JSON lines. Medians of ``reps`` alternations.
    """
    import tempfile

    from jaxinit.training import jsonl_writer

    def grid(eval_every):
        return TrainGrid(
            inits=list(INITS),
            seeds=seeds,
            hidden=HIDDEN,
            steps=steps,
            batch_size=BATCH,
            eval_every=eval_every,
            optimizer=f"sgd(learning_rate={LEARNING_RATE})",
        )

    plain, logged = grid(None), grid(every)
    with tempfile.TemporaryDirectory() as tmp:
        writer = jsonl_writer(pathlib.Path(tmp) / "metrics.jsonl")
        runs = {
            "no_evaluations": lambda: train(plain, data, eval_data, progress=False),
            "evaluations": lambda: train(logged, data, eval_data, progress=False),
            "evaluations_and_callback": lambda: train(
                logged, data, eval_data, progress=False, on_update=writer
            ),
        }
        for run in runs.values():
            run()  # compile
        times = {k: [] for k in runs}
        for _ in range(reps):
            for k, run in runs.items():
                t = time.perf_counter()
                run()
                times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "seconds": med,
        "every": every,
        "steps": steps,
        "models": len(INITS) * seeds,
        "callback_cost": med["evaluations_and_callback"] / med["evaluations"] - 1,
        "logging_cost": med["evaluations_and_callback"] / med["no_evaluations"] - 1,
    }


def time_jax_loop(data, *, models: int, steps: int) -> dict:
    """Plain JAX, one jitted step per call; parameters from jaxinit's initializers."""
    x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
    sizes = (x.shape[1], *HIDDEN, int(data[1].max()) + 1)

    @jax.jit
    def step(params, rows):
        def loss_fn(params):
            h = x[rows]
            for w, b in params[:-1]:
                h = jax.nn.relu(h @ w + b[None, :])
            logits = h @ params[-1][0] + params[-1][1][None, :]
            logp = jax.nn.log_softmax(logits)
            return -jnp.take_along_axis(logp, y[rows][:, None], axis=1).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads), loss

    order = jnp.asarray(_order(len(data[0]), steps))
    inits = [ji.initializers.get(INITS[m % len(INITS)]) for m in range(models)]

    def params_of(m):
        keys = jax.random.split(jax.random.key(m), len(sizes) - 1)
        return [
            (inits[m](k, (a, b)), jnp.zeros(b))
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
        ]

    step(params_of(0), order[0])[1].block_until_ready()  # compile outside the timing
    t = time.perf_counter()
    for m in range(models):
        params = params_of(m)
        for s in range(steps):
            params, loss = step(params, order[s])
        loss.block_until_ready()
    seconds = time.perf_counter() - t
    return {"model_steps_per_s": models * steps / seconds, "seconds": seconds, "models": models}


def time_vmap_scan(data, *, models: int, steps: int, width: int) -> dict:
    """Plain JAX as one writes it for many models: ``jit(lax.scan(vmap(sgd_step)))`` over every
    model at once on the default device, rows gathered from the device copy of the data, no
    evaluations; warm. jaxinit's program has this design, plus its bookkeeping (evaluations,
    checkpoints, learning rates as data) and the models split over the local devices."""
    x, y = jnp.asarray(data[0]), jnp.asarray(data[1])
    sizes = (x.shape[1], *(width,) * len(HIDDEN), int(data[1].max()) + 1)
    inits = [ji.initializers.get(INITS[m % len(INITS)]) for m in range(models)]

    def loss_fn(params, rows):
        h = x[rows]
        for w, b in params[:-1]:
            h = jax.nn.relu(h @ w + b[None, :])
        logits = h @ params[-1][0] + params[-1][1][None, :]
        logp = jax.nn.log_softmax(logits)
        return -jnp.take_along_axis(logp, y[rows][:, None], axis=1).mean()

    def step(params, rows):
        grads = jax.grad(loss_fn)(params, rows)
        return jax.tree.map(lambda p, g: p - LEARNING_RATE * g, params, grads)

    @jax.jit
    def run(params, order):
        many = jax.vmap(step, in_axes=(0, None))
        return jax.lax.scan(lambda p, rows: (many(p, rows), None), params, order)[0]

    def params_of(m):
        keys = jax.random.split(jax.random.key(m), len(sizes) - 1)
        return [
            (inits[m](k, (a, b)), jnp.zeros(b))
            for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
        ]

    params = jax.tree.map(lambda *p: jnp.stack(p), *[params_of(m) for m in range(models)])
    order = jnp.asarray(_order(len(data[0]), steps))
    jax.block_until_ready(run(params, order))  # compile outside the timing
    t = time.perf_counter()
    jax.block_until_ready(run(params, order))
    seconds = time.perf_counter() - t
    return {"model_steps_per_s": models * steps / seconds, "seconds": seconds, "models": models}


def time_torch(data, *, models: int, steps: int, hidden=HIDDEN) -> dict:
    try:
        import torch
    except ImportError:
        return {"skipped": "torch is not installed"}
    x, y = torch.from_numpy(data[0]), torch.from_numpy(data[1]).long()
    sizes = (x.shape[1], *hidden, int(data[1].max()) + 1)
    init = {
        "normal(stddev=0.01)": lambda w: torch.nn.init.normal_(w, std=0.01),
        "glorot_normal": torch.nn.init.xavier_normal_,
        "he_normal": lambda w: torch.nn.init.kaiming_normal_(w, nonlinearity="relu"),
    }
    order = torch.from_numpy(_order(len(x), steps)).long()
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(m: int, steps: int) -> None:
        torch.manual_seed(m)
        layers = []
        for a, b in itertools.pairwise(sizes):
            layer = torch.nn.Linear(a, b)
            init[INITS[m % len(INITS)]](layer.weight)
            torch.nn.init.zeros_(layer.bias)
            layers += [layer, torch.nn.ReLU()]
        model = torch.nn.Sequential(*layers[:-1])
        opt = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE)
        for s in range(steps):
            rows = order[s]
            opt.zero_grad()
            loss = loss_fn(model(x[rows]), y[rows])
            loss.backward()
            opt.step()

    # torch at its best thread count: on a busy machine its spinning threads can
    # make 2 threads ten times slower than 1
    best = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        run(0, min(steps, 5))  # warm-up
        t = time.perf_counter()
        run(0, min(steps, 30))
        best[threads] = time.perf_counter() - t
    torch.set_num_threads(min(best, key=best.get))
    t = time.perf_counter()
    for m in range(models):
        run(m, steps)
    seconds = time.perf_counter() - t
    return {
        "model_steps_per_s": models * steps / seconds,
        "seconds": seconds,
        "models": models,
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def time_widths(
    data, eval_data, *, widths, seeds: int, steps: int, peer_models: int, peak: float
) -> list[dict]:
    """The width sweep: at each width, ``ji.train`` of every (init, seed) model with
    ``TrainGrid(width=w)`` (one compiled program per width; warm) and the PyTorch loop on
    ``peer_models`` of them, with the CPU other processes used while each was timed."""
    watch, rows = _standard_grid().CpuWatch, []
    d_in, d_out = data[0].shape[1], int(data[1].max()) + 1
    for w in widths:
        grid = TrainGrid(
            inits=list(INITS),
            seeds=seeds,
            hidden=(1,) * len(HIDDEN),
            width=w,
            steps=steps,
            batch_size=BATCH,
            optimizer=f"sgd(learning_rate={LEARNING_RATE})",
        )
        # evaluations (step 0 and the end) on EVAL_EXAMPLES test images, as time_jaxinit:
        # on the 60,000 training images they would cost more than the training itself
        train(grid, data, eval_data, progress=False)  # compiles this width's program
        with watch() as cpu:
            t = time.perf_counter()
            train(grid, data, eval_data, progress=False)
            seconds = time.perf_counter() - t
        models = len(INITS) * seeds
        flops = _flops(d_in, d_out, hidden=(w,) * len(HIDDEN))
        rate = models * steps / seconds
        row = {
            "width": w,
            "models": models,
            "steps": steps,
            "seconds": seconds,
            "model_steps_per_s": rate,
            "gflops": rate * flops / 1e9,
            "of_peak": rate * flops / 1e9 / peak,
            "flops_per_model_step": flops,
            "other_cpu": cpu.result.get("foreign_cpu_frac"),
        }
        with watch() as cpu:
            scan = time_vmap_scan(data, models=models, steps=steps, width=w)
        row["vmap_scan"] = {**scan, "other_cpu": cpu.result.get("foreign_cpu_frac")}
        row["vmap_scan_ratio"] = rate / scan["model_steps_per_s"]
        with watch() as cpu:
            torch_p = time_torch(data, models=peer_models, steps=steps, hidden=(w,) * len(HIDDEN))
        row["torch"] = {**torch_p, "other_cpu": cpu.result.get("foreign_cpu_frac")}
        if "model_steps_per_s" in torch_p:
            row["torch_ratio"] = rate / torch_p["model_steps_per_s"]
            row["ceiling_torch_ratio"] = peak * 1e9 / flops / torch_p["model_steps_per_s"]
        rows.append(row)
    return rows


def report_widths(fig: dict) -> str:
    peak, rows = fig["peak"], fig["widths"]
    m = fig["machine"]
    lines = [
        f"width sweep: {len(INITS)} inits × {fig['seeds']} seeds per width, {rows[0]['steps']} SGD "
        f"steps, batch {BATCH}, 784-{len(HIDDEN)}×width-10 ReLU; PyTorch loop on "
        f"{fig['peer_models']} of the models",
        f"machine: {m['cpus']} CPUs, jax {m['jax']}, {m['devices']}; matmul peak "
        f"{peak['gflops']:.1f} GFLOP/s (best of jax {peak['jax_gflops']:.1f}, numpy "
        f"{peak['numpy_gflops']:.1f}); load average {m['load_average_at_start'][0]:.2f} at "
        f"start, {m['load_average_at_end'][0]:.2f} at end",
        "",
        f"{'width':>6s} {'model-steps/s':>14s} {'GFLOP/s':>8s} {'of peak':>8s} {'of jax dot':>10s} "
        f"{'vmap scan':>10s} {'torch m-s/s':>12s} {'jaxinit ×':>10s} {'ceiling ×':>10s} "
        f"{'other CPU':>10s}",
    ]
    nan = float("nan")
    for r in rows:
        t = r["torch"]
        lines.append(
            f"{r['width']:6d} {r['model_steps_per_s']:14.1f} {r['gflops']:8.1f} "
            f"{r['of_peak']:8.1%} {r['gflops'] / peak['jax_gflops']:10.1%} "
            f"{r['vmap_scan_ratio']:9.2f}× {t.get('model_steps_per_s', nan):12.1f} {r.get('torch_ratio', nan):9.2f}× "
            f"{r.get('ceiling_torch_ratio', nan):9.2f}× {r['other_cpu'] or 0:10.3f}"
        )
    lines.append(
        "targets: ≥ 70% of peak at width ≥ 512; ≥ 3× PyTorch at width 100 (or the "
        "ceiling's ratio if lower). 'of jax dot': of jax's own best float32 matmul; 'vmap "
        "scan': jaxinit's model-steps/s over plain jit(scan(vmap(step))) on the same models"
    )
    return "\n".join(lines)


# -- the report ---------------------------------------------------------------------------------


def report(fig: dict) -> str:
    m, peak, t = fig["machine"], fig["peak"], TARGETS
    flops, nominal = fig["flops_per_model_step"], fig["flops_per_model_step_nominal"]
    lines = [
        f"{fig['models']} models ({len(INITS)} inits × {fig['seeds']} seeds) × {fig['steps']} steps, "
        f"{fig['examples']} MNIST examples, batch {BATCH}, {'-'.join(map(str, HIDDEN))} ReLU, "
        f"SGD {LEARNING_RATE}; {flops:.3g} flops executed per model step ({nominal:.3g} as the issue counts)",
        f"machine: {m['cpus']} CPUs, jax {m['jax']} ({m['backend']}), {m['devices']}; matmul peak "
        f"{peak['gflops']:.1f} GFLOP/s (best float32 matmul at n = 1024, 2048: jax "
        f"{peak['jax_gflops']:.1f}, numpy {peak['numpy_gflops']:.1f}); load average "
        f"{m['load_average_at_start'][0]:.2f} at start, {m['load_average_at_end'][0]:.2f} at end",
        "",
        f"{'peer':30s} {'model-steps/s':>14s} {'jaxinit ×':>10s} {'GFLOP/s':>8s} {'of peak':>8s}  timed over",
    ]
    n_dev = fig["peers"]["jaxinit"].get("devices", 1)
    for key, label in [
        ("jaxinit", f"jaxinit ji.train, {n_dev} device{'s' * (n_dev > 1)}"),
        ("jaxinit_1", "jaxinit ji.train, 1 device"),
        ("torch", "PyTorch loop"),
        ("jax_loop", "JAX loop (jit per step)"),
    ]:
        p = fig["peers"].get(key)
        if p is None:
            continue
        if "skipped" in p:
            lines.append(f"{label:30s} skipped: {p['skipped']}")
            continue
        how = f"{p['models']} models × {fig['steps']} steps, {p['seconds']:.3g} s"
        if key.startswith("jaxinit"):
            how += f"; first call (compile incl.) {p['first_call_s']:.3g} s"
        if key == "torch":
            how += f"; torch {p['version']}, {p['threads']} threads"
        gflops = p["model_steps_per_s"] * flops / 1e9
        lines.append(
            f"{label:30s} {p['model_steps_per_s']:14.1f} {fig['ratios'].get(key, 1.0):9.2f}× "
            f"{gflops:8.1f} {gflops / peak['gflops']:8.1%}  {how}"
        )
    ceiling = peak["gflops"] * 1e9 / flops
    j, torch_p = fig["peers"]["jaxinit"], fig["peers"]["torch"]
    lines += [
        "",
        f"{'':30s} {'measured':>14s} {'target':>10s}",
        f"{'jaxinit model-steps/s':30s} {j['model_steps_per_s']:14.1f} {'≥' + format(t['model_steps_per_s'], '.0f'):>10s}",
        f"{'  ceiling: matmul peak / flops':30s} {ceiling:14.1f}",
    ]
    if "model_steps_per_s" in torch_p:
        lines += [
            f"{'jaxinit × PyTorch loop':30s} {fig['ratios']['torch']:13.2f}× {'≥' + format(t['torch_ratio'], '.0f') + '×':>10s}",
            f"{'  ceiling × PyTorch loop':30s} {ceiling / torch_p['model_steps_per_s']:13.2f}×",
        ]
    if "jaxinit_1" in fig["peers"]:
        lines.append(
            f"{'same models on 1 device: max |Δ loss|':40s} {fig['max_loss_difference_1_device']:.2g}"
        )
    lines += [
        "",
        "jaxinit, mean over seeds: loss over the last tenth of the steps, test accuracy at the end",
    ]
    lines += [f"  {i:24s} {j['final_loss'][i]:8.4f} {j['final_accuracy'][i]:8.1%}" for i in INITS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000, help="SGD steps per model")
    ap.add_argument("--seeds", type=int, default=10, help="seeds per init")
    ap.add_argument("--examples", type=int, default=None, help="use the first N training images")
    ap.add_argument(
        "--peer-models",
        type=int,
        default=None,
        help="time the loop peers on the first N models (default: all)",
    )
    ap.add_argument(
        "--data-dir", default=None, help="MNIST directory (default: $JAXINIT_DATA, ...)"
    )
    ap.add_argument("--json", type=pathlib.Path, default=None, help="write every figure here")
    ap.add_argument(
        "--widths",
        nargs="+",
        type=int,
        default=None,
        metavar="W",
        help="only the width sweep: these hidden widths (e.g. 100 256 512 1024)",
    )
    ap.add_argument(
        "--callback-only",
        action="store_true",
        help="only the cost of a metrics callback every 100 steps",
    )
    args = ap.parse_args(argv)
    start = time.perf_counter()

    def say(msg: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    devices = _devices_note()
    say(f"devices: {devices}")
    say("loading MNIST ...")
    x, y = load_mnist("train", data_dir=args.data_dir)
    xt, yt = load_mnist("test", data_dir=args.data_dir)
    data, eval_data = (
        (x[: args.examples], y[: args.examples]),
        (xt[:EVAL_EXAMPLES], yt[:EVAL_EXAMPLES]),
    )
    models = len(INITS) * args.seeds
    peer_models = min(models, args.peer_models or models)
    fig: dict = {
        "models": models,
        "seeds": args.seeds,
        "steps": args.steps,
        "examples": len(data[0]),
        "flops_per_model_step": _flops(x.shape[1], 10),
        "flops_per_model_step_nominal": _flops(x.shape[1], 10, executed=False),
        "peers": {},
        "ratios": {},
        "targets": TARGETS,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "python": platform.python_version(),
            "devices": devices,
            "load_average_at_start": os.getloadavg(),
        },
    }
    if args.callback_only:
        say(f"callback cost: {models} models × {args.steps} steps, a callback every 100 ...")
        cb = time_callback(data, eval_data, seeds=args.seeds, steps=args.steps)
        sec = cb["seconds"]
        print(
            f"{cb['models']} models × {cb['steps']} steps, warm, median of 3 alternations\n"
            f"  no evaluations (step 0 and the end)      {sec['no_evaluations']:7.2f} s\n"
            f"  evaluations every 100 steps              {sec['evaluations']:7.2f} s\n"
            f"  the same with a JSON-lines callback      {sec['evaluations_and_callback']:7.2f} s\n"
            f"  callback cost                            {cb['callback_cost']:+7.1%}  (target < 5%)\n"
            f"  logging cost (evaluations and callback)  {cb['logging_cost']:+7.1%}"
        )
        fig["callback"] = cb
        if args.json:
            args.json.write_text(json.dumps(fig, indent=2, default=float))
        return fig
    say("matmul peak ...")
    fig["peak"] = _matmul_peak()
    if args.widths:
        say(
            f"width sweep {args.widths}: {models} models × {args.steps} steps per width, torch on {peer_models} ..."
        )
        fig["widths"], fig["peer_models"] = (
            time_widths(
                data,
                eval_data,
                widths=args.widths,
                seeds=args.seeds,
                steps=args.steps,
                peer_models=peer_models,
                peak=fig["peak"]["gflops"],
            ),
            peer_models,
        )
        again = _matmul_peak()  # the peak again after the timed runs: the best of both counts
        fig["peak"] = {k: max(fig["peak"][k], again[k]) for k in fig["peak"]}
        for r in fig["widths"]:
            r["of_peak"] = r["gflops"] / fig["peak"]["gflops"]
            if "model_steps_per_s" in r["torch"]:
                r["ceiling_torch_ratio"] = (
                    fig["peak"]["gflops"]
                    * 1e9
                    / r["flops_per_model_step"]
                    / r["torch"]["model_steps_per_s"]
                )
        return _standard_grid().finish(fig, report_widths, args.json)
    n_dev = len(jax.local_devices())
    say(
        f"jaxinit on {n_dev} device(s): {models} models × {args.steps} steps (a first call to compile, then warm) ..."
    )
    fig["peers"]["jaxinit"] = time_jaxinit(data, eval_data, seeds=args.seeds, steps=args.steps)
    if n_dev > 1:
        say("jaxinit on 1 device ...")
        one = time_jaxinit(
            data, eval_data, seeds=args.seeds, steps=args.steps, devices=jax.local_devices()[:1]
        )
        fig["peers"]["jaxinit_1"] = one
        diff = np.abs(np.subtract(one["model_losses"], fig["peers"]["jaxinit"]["model_losses"]))
        fig["max_loss_difference_1_device"] = float(diff.max())
    say(f"PyTorch loop: {peer_models} models ...")
    fig["peers"]["torch"] = time_torch(data, models=peer_models, steps=args.steps)
    if "skipped" in fig["peers"]["torch"]:
        print(f"torch: skipped ({fig['peers']['torch']['skipped']})")
    say(f"JAX loop: {peer_models} models ...")
    fig["peers"]["jax_loop"] = time_jax_loop(data, models=peer_models, steps=args.steps)
    rate = fig["peers"]["jaxinit"]["model_steps_per_s"]
    for key, p in fig["peers"].items():
        if "model_steps_per_s" in p:
            fig["ratios"][key] = rate / p["model_steps_per_s"]
    return _standard_grid().finish(fig, report, args.json)


if __name__ == "__main__":
    main()
