"""Smoke test: the benchmark's main runs at --quick scale and writes every figure it prints."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from _tolerances import MODEL_RTOL

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "standard_grid", ROOT / "benchmarks" / "standard_grid.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)  # the distributed test may have dropped it already


@pytest.mark.slow
def test_standard_grid_quick(bench, tmp_path, capsys):
    path = tmp_path / "bench.json"
    fig = bench.main(["--quick", "--skip-100k", "--json", str(path)])
    on_disk = json.loads(path.read_text())
    assert on_disk["table"] == fig["table"]
    assert fig["table"] in capsys.readouterr().out
    for name in ("jaxinit_forward", "jaxinit_default", "numpy", "naive_jax"):
        assert on_disk[name]["combos_per_s"] > 0, name
    for name in ("seed_numpy", "seed_torch", "torch"):  # absent peers: {"skipped": ...}
        assert on_disk[name].get("combos_per_s", 1) > 0, name
    assert on_disk["numpy"]["combos"] == 2 * 2 * 2  # the whole quick grid, no sample
    assert on_disk["naive_jax"]["traces"] == 4  # one compile per (init, activation)
    assert on_disk["peak"]["gflops"] > 0
    assert on_disk["first_call"]["first_call_s"] > 0
    assert on_disk["first_call"]["kernel_programs"] == 2  # one draw, one forward program
    assert on_disk["wide"]["fraction"] > 0
    assert on_disk["end_to_end"]["numpy_ratio"] > 0
    assert "large" not in on_disk
    assert "gradients=False" in fig["table"]


def test_numpy_peer_statistics(bench):
    cfg = bench.configs(quick=True, seeds=None)["standard"]
    sig = bench.numpy_combination(cfg, "he_normal", "sigmoid", 0)
    # sigmoid's outputs lie in (0, 1), the histogram's range: every value is counted
    np.testing.assert_array_equal(sig["hist"].sum(1), [cfg.batch_size * cfg.width] * cfg.depth)
    np.testing.assert_array_equal(sig["nonfinite"], 0)
    assert sig["hist"].shape == (cfg.depth, cfg.bins)
    relu = bench.numpy_combination(cfg, "he_normal", "relu", 0)
    assert np.all(relu["post_mean"] >= 0)
    assert np.all(relu["saturated"] == 0)
    assert np.all(relu["grad_var"] > 0)
    assert np.all(relu["weight_grad_norm"] > 0)
    # same seed, same draws: the pre-activations of layer 1 do not depend on the activation
    assert relu["pre_var"][0] == sig["pre_var"][0]


@pytest.mark.slow
def test_lanes_and_devices_quick(capsys):
    spec = importlib.util.spec_from_file_location(
        "lanes_and_devices", ROOT / "benchmarks" / "lanes_and_devices.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--quick", "--configs", "1x1", "2x2"])
    assert [(r["devices"], r["lanes"]) for r in rows] == [(1, 1), (2, 2)]
    assert all(r["combos"] == 4 * 4 * 2 and r["warm_combos_per_s"] > 0 for r in rows)
    out = capsys.readouterr().out
    assert "1.00×" in out  # the first row is the reference


@pytest.mark.distributed
def test_distributed_benchmark_quick(capsys):
    spec = importlib.util.spec_from_file_location(
        "distributed_bench", ROOT / "benchmarks" / "distributed.py"
    )
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)  # imports standard_grid beside it, for the grid
        fig = module.main(["--quick", "--repeats", "1"])
    finally:
        sys.modules.pop("standard_grid", None)
    one, two = fig["rows"]
    assert (one["processes"], one["devices_per_process"]) == (1, 2)
    assert (two["processes"], two["devices_per_process"]) == (2, 1)
    assert one["combos"] == two["combos"] == 2 * 2 * 2  # the quick standard grid
    assert one["computed_by"] == [0]
    assert two["computed_by"] == [0, 1]  # both processes computed chunks
    assert fig["ratio"] == pytest.approx(two["combos_per_s"] / one["combos_per_s"])
    assert "2 processes × 1 device / 1 process × 2 devices:" in capsys.readouterr().out


@pytest.mark.slow
def test_train_mnist_width_sweep_quick(mnist_dir, capsys):
    spec = importlib.util.spec_from_file_location("train_mnist", ROOT / "benchmarks" / "train_mnist.py")  # fmt: skip
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        fig = module.main(["--widths", "8", "--seeds", "1", "--steps", "3", "--peer-models", "1",
                           "--examples", "512", "--data-dir", str(mnist_dir)])  # fmt: skip
    finally:
        sys.modules.pop("_standard_grid", None)
    rows = fig["widths"]
    assert [r["width"] for r in rows] == [8]  # one width: each is a program of its own
    for r in rows:
        assert r["models"] == 3  # 3 inits × 1 seed, one program per width
        # the flops of a model step: 6 · batch · Σ fan_in·fan_out, less the input layer's ∂L/∂x
        w = r["width"]
        want = 6 * 128 * (784 * w + 3 * w * w + w * 10) - 2 * 128 * 784 * w
        assert r["flops_per_model_step"] == want
        assert r["of_peak"] == pytest.approx(r["gflops"] / fig["peak"]["gflops"])
        # the plain vmapped-scan peer trained the same models for the same steps
        assert r["vmap_scan"]["models"] == r["models"]
        scan_rate = r["models"] * r["steps"] / r["vmap_scan"]["seconds"]
        assert r["vmap_scan_ratio"] == pytest.approx(r["model_steps_per_s"] / scan_rate)
    assert "vmap scan" in capsys.readouterr().out


@pytest.mark.slow
def test_step_layouts_compute_the_same_step(mnist_dir, capsys):
    spec = importlib.util.spec_from_file_location(
        "step_layouts", ROOT / "benchmarks" / "step_layouts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--width", "8", "--steps", "3", "--data-dir", str(mnist_dir)])
    # the batch-major step is the vmapped step written otherwise: same parameters after it
    assert out["max_abs_diff"] < 1e-5
    assert out["vmapped_gflops"] > 0
    assert out["batch_major_gflops"] > 0
    assert '"width": 8' in capsys.readouterr().out


@pytest.mark.slow
def test_device_check_quick(tmp_path, capsys):
    """benchmarks/device_check.py, the script for an accelerator, runs every part at toy size
    and reports rates and fractions of the matmul peak measured in the same run."""
    from benchmarks import device_check

    rows = device_check.main(["--quick", "--json", str(tmp_path / "rows.json")])
    assert [r["part"].split(" (")[0] for r in rows] == [
        "standard grid", "big_grid", "width 1024", "mnist"
    ]  # fmt: skip
    for r in rows:
        assert r["seconds"] > 0
        assert 0 < r["fraction_of_peak"] < 1.5  # a fraction, not a misplaced unit
        assert (r.get("combos_per_s") or r["model_steps_per_s"]) > 0
    out = capsys.readouterr().out
    assert "float32 matmul peak" in out
    assert "| width 1024 | 16 |" in out


@pytest.mark.slow
def test_deep_compile_quick(capsys):
    """benchmarks/deep_compile.py at depths 5 and 20: one draw and one forward program per
    depth and gradient setting, timed, and as ratios to depth 5's."""
    spec = importlib.util.spec_from_file_location(
        "deep_compile", ROOT / "benchmarks" / "deep_compile.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = module.main(["--quick"])
    assert [(r["gradients"], r["depth"]) for r in rows] == [(True, 5), (True, 20), (False, 5), (False, 20)]  # fmt: skip
    assert all(r["compile_s"] > 0 and r["compiles"] >= 2 for r in rows)
    assert rows[0]["compile_ratio"] == 1.0
    assert "| True | 20 |" in capsys.readouterr().out


@pytest.mark.slow
def test_profile_parts_runs_and_restores_the_hook(capsys):
    """benchmarks/profile_parts.py at width 8 and batch 8: a row per part in both columns, each
    a number or a dash, and the statistics hook it replaces put back afterwards."""
    from jaxinit.sweeping import _kernel as kernel

    spec = importlib.util.spec_from_file_location(
        "profile_parts", ROOT / "benchmarks" / "profile_parts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hook = kernel._stats_of
    module.main(["--width", "8", "--batch-size", "8"])
    assert kernel._stats_of is hook
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("part (ms per combination, wall, 2 devices)")
    rows = {line[:66].strip(): line[66:].split() for line in lines[1:]}
    assert "histogram + dead + saturated (one flat scatter)" in rows
    assert "ji.sweep, per combination" in rows
    assert all(len(cells) == 2 for cells in rows.values()), rows
    for cells in rows.values():
        for cell in cells:
            assert cell == "—" or np.isfinite(float(cell)), cells
    assert float(rows["ji.sweep, per combination"][0]) > 0


def test_batched_matmul_layouts_runs(capsys):
    """benchmarks/batched_matmul_layouts.py, one timed call per layout: every layout's GFLOP/s
    and the figures that say whether they count, printed as the JSON it returns."""
    spec = importlib.util.spec_from_file_location(
        "batched_matmul_layouts", ROOT / "benchmarks" / "batched_matmul_layouts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--repeats", "1"])
    layouts = [
        "einsum mbi,mio",
        "einsum bmi,mio (batch-major)",
        "unrolled per-model dots",
        "block-diagonal one GEMM",
        "numpy matmul (batched)",
    ]
    assert all(out[k] > 0 for k in layouts), out
    assert {"matmul_peak", "load_average", "other_cpu", "xla_flags"} <= out.keys()
    assert json.loads(capsys.readouterr().out) == out
    with pytest.raises(SystemExit):
        module.main(["--repeats", "0"])


def test_train_build_quick():
    """benchmarks/train_build.py --quick: the build of a group's models by jaxinit, one at a
    time and by Flax's ensemble pattern, first and warm, with ratios to the peer."""
    spec = importlib.util.spec_from_file_location(
        "train_build", ROOT / "benchmarks" / "train_build.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick"])
    (row,) = out["rows"]
    assert row["models"] == 2
    assert set(row) == {"models", "jaxinit", "one_at_a_time", "peer"}
    assert all(row[k]["first_s"] > 0 and row[k]["warm_s"] > 0 for k in ("jaxinit", "peer"))
    ratio = row["jaxinit"]["first_s"] / row["peer"]["first_s"]
    assert row["jaxinit"]["first_x_peer"] == pytest.approx(ratio, abs=0.01)
    assert len(out["load_average"]) == 2
    assert len(out["naive_peer_s"]) == 2  # ../shared/peers' yardstick, before and after
    assert row["jaxinit"]["warm_x_naive"] == pytest.approx(
        row["jaxinit"]["warm_s"] / min(out["naive_peer_s"]), abs=0.01
    )


@pytest.mark.slow
def test_compile_cuts_quick(capsys):
    """benchmarks/compile_cuts.py --quick: a sweep's compile with and without gradients,
    depth_scales' on a grid and at a point, and the peer's beside them, as seconds and
    ratios, in the JSON line it prints."""
    spec = importlib.util.spec_from_file_location(
        "compile_cuts", ROOT / "benchmarks" / "compile_cuts.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick", "--widths", "5"])
    assert out["jaxinit"] == str(ROOT / "jaxinit" / "__init__.py")
    assert [len(v) for v in out["sweep_s"].values()] == [1, 1]
    assert set(out["depth_scales_s"]) == {"tanh"}
    assert set(out["depth_scales_s"]["tanh"]) == {"grid", "point"}
    assert all(s > 0 for s in out["peer_s"])
    assert set(out["ratio_to_peer"]) == {
        "sweep with gradients",
        "sweep without",
        "depth_scales total",
    }
    assert json.loads(capsys.readouterr().out) == out
    with pytest.raises(SystemExit):
        module.main(["--widths", "0"])


@pytest.mark.slow
def test_any_model_quick(tmp_path, capsys):
    """benchmarks/any_model.py at toy size: jaxinit's model sweep, the per-seed jit loop of the
    prototype (when ../shared/peers is there) and the MLP engine, interleaved; a second sweep
    with other seeds and inits compiles nothing."""
    spec = importlib.util.spec_from_file_location("any_model", ROOT / "benchmarks" / "any_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    path = tmp_path / "any_model.json"
    fig = module.main(["--quick", "--json", str(path)])
    on_disk = json.loads(path.read_text())
    assert on_disk["table"] == fig["table"]
    assert fig["table"] in capsys.readouterr().out
    benches = {b["model"]: b for b in fig["benchmarks"]}
    assert sorted(benches) == ["cnn", "mlp", "transformer"]
    for b in benches.values():
        assert b["models"] == 2 * 2  # 2 inits × 2 seeds
        for name, row in b["rows"].items():
            assert row["seconds"] > 0, name
            assert row["warm_compiles"] == 0, name  # warm calls compile nothing
    for name in ("cnn", "transformer"):
        b = benches[name]
        assert b["second_call"]["xla_compiles"] == 0
        assert b["second_call"]["new_programs"] == 0
        assert any(k.startswith("jaxinit") for k in b["rows"])
        if b["peer_layers"] is not None:  # the prototype's loop captured the same outputs
            assert b["peer_layers"] == b["layers"]
            assert b["second_call"]["jit_loop_xla_compiles"] == 0
    assert "jaxinit lanes=4" in benches["cnn"]["rows"]
    assert "jaxinit MLP engine (ji.Grid)" in benches["mlp"]["rows"]
    assert "| transformer | jaxinit (lanes=" in fig["table"]


def test_suite_profile_counts_each_tests_compiles(tmp_path):
    """benchmarks/suite_profile.py, the plugin that measures the suite's compile time, on two
    tests run by two pytest-xdist workers: each compile is counted once, under its test and
    program, and the controller writes every worker's rows, and only that file."""
    (tmp_path / "test_two.py").write_text(
        "import jax, jax.numpy as jnp\n"
        "def test_sin():\n"
        "    jax.jit(jnp.sin)(jnp.ones(3)).block_until_ready()\n"
        "def test_cos_twice():\n"
        "    for n in (3, 4):\n"
        "        jax.jit(jnp.cos)(jnp.ones(n)).block_until_ready()\n"
    )
    out = tmp_path / "profile"
    out.mkdir()
    env = {**os.environ, "JAXINIT_SUITE_PROFILE": str(out)}
    env["PYTHONPATH"] = str(ROOT / "benchmarks")
    args = [sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "suite_profile", "-p",
            "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_two.py")]  # fmt: skip
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["test"].split("::")[1]: r for r in json.loads((out / "merged.json").read_text())}
    assert set(rows) == {"test_sin", "test_cos_twice"}
    assert [p.name for p in out.iterdir()] == ["merged.json"]
    assert rows["test_sin"]["programs"]["jit(sin)"][0] == 1
    assert rows["test_cos_twice"]["programs"]["jit(cos)"][0] == 2
    assert "jit(sin)" not in rows["test_cos_twice"]["programs"]
    assert "2 tests" in run.stdout
    assert "jit(cos)" in run.stdout
    # without the directory it refuses to start, naming the variable
    del env["JAXINIT_SUITE_PROFILE"]
    run = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode != 0
    assert "JAXINIT_SUITE_PROFILE" in run.stdout + run.stderr


def test_empirical_ntk_quick():
    """benchmarks/empirical_ntk.py --quick: the kernel by jaxinit, eagerly and by the jitted
    cookbook form, first and warm, each model's kernels the peer's within float32 rounding
    (MODEL_RTOL: the same sums, ordered otherwise)."""
    spec = importlib.util.spec_from_file_location(
        "empirical_ntk", ROOT / "benchmarks" / "empirical_ntk.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(["--quick", "--models", "cnn", "mlp"])
    assert [row["model"] for row in out["rows"]] == ["cnn", "mlp"]
    for row in out["rows"]:
        for how in ("jaxinit", "eager"):
            assert row[how]["max_rel_diff_to_peer"] < MODEL_RTOL, (row["model"], how)
            ratio = row[how]["warm_s"] / row["peer"]["warm_s"]
            assert row[how]["warm_x_peer"] == pytest.approx(ratio, rel=0.02, abs=0.01)
    assert len(out["naive_peer_s"]) == 2
