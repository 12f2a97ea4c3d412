"""The ``jaxinit`` command, called in-process through ``main(argv)``."""

import argparse
import contextlib
import io
import shutil

import pytest

import jaxinit as ji
from jaxinit.cli import main


def test_list_initializers_prints_the_table(capsys):
    assert main(["list", "initializers", "--fan-in", "100", "--fan-out", "10"]) == 0
    out = capsys.readouterr().out
    he = next(line for line in out.splitlines() if line.startswith("he_normal "))
    assert "kaiming_normal" in he
    assert "0.02 " in he  # Var = 2 / fan_in = 2 / 100
    rows = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("    ")]
    assert len(rows) == len(ji.initializers.names()) + 3  # title, header, rule
    lines = out.splitlines()
    he_formula = lines[lines.index(he) + 1]  # each formula on the line below its row
    assert he_formula.strip() == ji.initializers.formula("he_normal")


@pytest.mark.parametrize("convention", ["jax", "torch"])
def test_list_fits_100_columns(capsys, convention):
    assert main(["list", "--convention", convention]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 100, max(lines, key=len)


def test_every_flag_has_help(capsys):
    """Every flag of every command says what it does in --help (--convention and --data
    once had none)."""
    from jaxinit.cli import parser

    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.option_strings and action.help is not argparse.SUPPRESS:
                assert action.help, f"jaxinit {name} {action.option_strings[0]} has no help"


def test_list_torch_convention_lays_out_out_by_in(capsys):
    assert (
        main(
            ["list", "initializers", "--fan-in", "100", "--fan-out", "10", "--convention", "torch"]
        )
        == 0
    )
    he = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("he_normal("))
    assert "convention='torch'" in he
    assert "0.02 " in he  # still 2 / fan_in: the torch layout puts fan_in on axis 1


def test_list_activations_has_formulas_and_aliases(capsys):
    assert main(["list", "activations"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    for name in ji.activations.names():
        i = next(i for i, ln in enumerate(lines) if ln.startswith(f"{name} "))
        assert ji.activations.formula(name) in " ".join(x.strip() for x in lines[i + 1 : i + 3])
    silu = next(i for i, ln in enumerate(lines) if ln.startswith("silu "))
    assert "swish" in lines[silu]
    assert "x·σ(x)" in lines[silu + 1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["list", "--fan-in", "0"], "--fan-in and --fan-out must be positive integers; got 0"),
        (
            ["sweep", "--inits", "he_nrmal", "--activations", "relu"],
            "unknown initializer 'he_nrmal'. Did you mean 'he_normal'? Valid names: ",
        ),
        (
            ["sweep", "--inits", "he_normal", "--activations", "rleu"],
            "Did you mean 'relu'?",
        ),
        (
            ["sweep", "--inits", "he_normal", "--activations", "relu", "--inputs", "gausian"],
            "--inputs 'gausian': expected 'gaussian', 'uniform' or the path of a .npy",
        ),
        (
            ["sweep", "--inits", "he_normal", "--activations", "relu", "--depth", "0"],
            "depth",
        ),
    ],
)
def test_bad_input_is_one_line_with_status_2(capsys, argv, message):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_argparse_errors_return_2_and_name_the_choices(capsys):
    assert main(["list", "--convention", "tf"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'tf'" in err
    assert "'torch'" in err
    assert main(["frobnicate"]) == 2
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_python_dash_m_jaxinit_is_the_same_command():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "jaxinit", "list", "activations"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "φ(x) = max(x, 0)" in out


def test_sweep_writes_the_result_and_the_report_and_resumes(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sweep", "--inits", "he_normal", "normal(stddev=0.01)", "--activations", "relu",
            "--depth", "3", "--width", "8", "--seeds", "2", "--batch-size", "16", "--out", str(out),
            "--no-theory"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "he_normal" in printed
    assert "vanishes" in printed  # std 0.01 under relu: variance / 200 per layer
    res = ji.SweepResult.load(out / "result")
    assert res.coords["init"] == ("he_normal", "normal(stddev=0.01)")
    assert "pre_var_theory" not in (out / "report.html").read_text()  # --no-theory
    # one width, one bias init: the files are named as the scripts name theirs
    assert (out / "figures" / "pre_var.png").is_file()
    summary_md = (out / "tables" / "summary.md").read_text()  # the outcomes and the rule
    assert "| outcome_layer |" in summary_md
    assert ji.report.tables.OUTCOME_RULE in summary_md
    # a second run reads the finished chunks back and gives the same result
    assert main(argv) == 0
    assert ji.SweepResult.load(out / "result").equals(res)


def test_report_of_a_saved_sweep(tmp_path, capsys):
    res = ji.sweep(
        ji.Grid(inits=["he_normal"], activations=["tanh"], depth=2, width=8, batch_size=8)
    )
    res.save(tmp_path / "saved")
    assert (
        main(["report", str(tmp_path / "saved"), "--out", str(tmp_path / "rep"), "--no-theory"])
        == 0
    )
    assert (tmp_path / "rep" / "report.html").is_file()
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "holds no sweep or training result" in capsys.readouterr().err


def test_report_of_the_folder_a_script_wrote(tmp_path, capsys):
    """`jaxinit report out/seed_histograms`: the main job's folder holds its run in
    `sweep/result`; the report finds it and writes beside it. Two runs: say which there are."""
    grid = ji.Grid(inits=["he_normal"], activations=["tanh"], depth=2, width=8, batch_size=8)
    ji.sweep(grid, out=tmp_path / "job" / "sweep", progress=False)
    (tmp_path / "job" / "figures").mkdir()  # what else a script writes there
    assert main(["report", str(tmp_path / "job"), "--no-theory"]) == 0
    assert (tmp_path / "job" / "sweep" / "report.html").is_file()
    assert not (tmp_path / "job" / "report.html").exists()
    ji.sweep(grid, out=tmp_path / "job" / "sweep-2", progress=False)
    assert main(["report", str(tmp_path / "job")]) == 2
    err = capsys.readouterr().err
    assert "holds 2 runs; report one of them" in err
    assert "sweep-2" in err
    (tmp_path / "linked").mkdir()
    (tmp_path / "linked" / "run").symlink_to(tmp_path / "job" / "sweep")
    assert main(["report", str(tmp_path / "linked")]) == 2  # a link is never followed
    assert "holds no sweep or training result" in capsys.readouterr().err


def test_train_on_circles(tmp_path, capsys):
    argv = ["train", "--data", "circles", "--inits", "zeros", "he_normal", "--seeds", "2",
            "--hidden", "10", "5", "--steps", "200", "--batch-size", "0", "--eval-every", "100",
            "--optimizer", "sgd(learning_rate=0.1)", "--out", str(tmp_path)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    zeros = next(ln for ln in printed.splitlines() if ln.startswith("zeros "))
    assert "0.6931" in zeros  # symmetric: ln 2, whatever the steps
    assert "50.00%" in zeros
    res = ji.TrainResult.load(tmp_path / "result")
    assert res.loss.shape == (2, 2, 200)
    # one final loss, named the same, in what the command prints and in tables/final.md: the
    # mean over the last tenth of the steps (it printed the last mini-batch's before)
    final = ji.training.final_loss(res.sel(init="he_normal").loss).mean()
    assert final != pytest.approx(res.sel(init="he_normal").loss[:, -1].mean(), abs=1e-4)
    he = next(ln for ln in printed.splitlines() if ln.startswith("he_normal "))
    assert f"{final:.4f}" in he
    assert ji.training.FINAL_LOSS in printed
    table = (tmp_path / "tables" / "final.md").read_text()
    assert ji.training.FINAL_LOSS in table
    assert f"{final:.4g}" in next(ln for ln in table.splitlines() if "he_normal" in ln)
    # the report names the data (issue 28, item 10): the saved result keeps the record
    record = res.attrs["dataset"]
    assert record["description"].startswith("two circles (make_circles, noise 0.05")
    assert (record["data"]["examples"], record["eval_data"]["examples"]) == (1000, 1000)
    html = (tmp_path / "report.html").read_text()
    assert "Data: two circles (make_circles" in html
    assert f"sha256 {record['data']['sha256'][:12]}" in html


def test_train_bad_optimizer_is_a_usage_error(capsys):
    assert main(["train", "--data", "circles", "--inits", "he_normal", "--optimizer", "sgdd"]) == 2
    err = capsys.readouterr().err
    assert "sgdd" in err
    assert "sgd" in err


@pytest.mark.slow
def test_theory_prints_the_edge_of_chaos_and_the_phases(capsys):
    assert main(["theory", "relu", "--sigma-w2", "1.5", "3"]) == 0
    out = capsys.readouterr().out
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln[:1].isdigit()}
    assert rows["0"].split()[1] == "2"  # ReLU's critical σ_w² = 2 at σ_b² = 0
    assert "0.75" in rows["1.5"]  # χ₁ = σ_w² / 2
    assert rows["1.5"].rstrip().endswith("ordered")
    assert "diverges" in rows["3"]
    assert main(["theory", "tanh", "--sigma-b2", "0.05"]) == 0
    lines = capsys.readouterr().out.splitlines()
    crit = next(ln for ln in lines if ln.startswith("0.05 "))
    expected = float(ji.theory.critical_sigma_w2("tanh", sigma_b2=0.05))
    assert float(crit.split()[1]) == pytest.approx(expected, rel=1e-5)
    at_edge = next(ln for ln in lines if ln.split()[1:2] == ["0.05"])  # the fixed-point table
    assert at_edge.split()[3] == "1"  # χ₁ = 1 on the edge
    assert at_edge.rstrip().endswith("critical")


@pytest.mark.slow
def test_theory_without_a_continuous_transition_says_so_and_agrees_with_the_library(capsys):
    assert main(["theory", "gelu", "--sigma-b2", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    edge = next(ln for ln in lines if ln.startswith("0.1 "))
    assert edge.split()[1] == "none"  # not "2": its χ₁ = 1 roots lie on the unstable branch
    w_div = float(ji.theory.divergence_sigma_w2("gelu", sigma_b2=0.1))
    assert float(edge.split()[2]) == pytest.approx(w_div, rel=1e-5)
    assert any(ln.startswith("(1) no continuous order-to-chaos transition") for ln in lines)
    rows = [ln for ln in lines if ln.split()[1:2] == ["0.1"]]  # either side of the jump
    assert rows[0].rstrip().endswith("ordered")
    assert "diverges" in rows[1]
    assert float(rows[0].split()[0]) == pytest.approx(0.98 * w_div, rel=1e-3)
    assert float(rows[1].split()[0]) == pytest.approx(1.02 * w_div, rel=1e-3)
    assert any(
        ln.startswith("σ_w² rows: with no edge of chaos, 2% below and 2% above") for ln in lines
    )
    # erf's chaotic rows carry a negative ξ_∇, and the note says what the sign means
    assert main(["theory", "erf", "--sigma-w2", "4", "--sigma-b2", "0.05"]) == 0
    out = capsys.readouterr().out
    row = next(ln for ln in out.splitlines() if ln.split()[:2] == ["4", "0.05"])
    assert row.rstrip().endswith("chaotic")
    assert float(row.split()[6]) < 0
    assert "ξ_∇ = -1/log χ₁ is signed: < 0 where χ₁ > 1" in out


def test_theory_bad_values(capsys):
    assert main(["theory", "tanh", "--sigma-b2", "-1"]) == 2
    assert "--sigma-b2 must be finite and >= 0; got -1.0" in capsys.readouterr().err
    assert main(["theory", "rleu"]) == 2
    assert "Did you mean 'relu'?" in capsys.readouterr().err


def test_sweep_report_has_the_theory_overlay(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["sweep", "--inits", "he_normal", "--activations", "relu", "tanh", "--depth", "3",
            "--width", "8", "--seeds", "1", "--batch-size", "16", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "no theory overlay" not in capsys.readouterr().err
    html = (out / "report.html").read_text()
    assert "pre_var_theory" in html  # the layer tables' theory columns


SWEEP = ["sweep", "--inits", "he_normal", "--activations", "relu", "--depth", "2", "--width",
         "4", "--seeds", "1", "--batch-size", "8", "--no-theory", "--no-gradients"]  # fmt: skip
TRAIN = ["train", "--data", "circles", "--inits", "he_normal", "--seeds", "1", "--hidden", "4",
         "--steps", "2", "--eval-every", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A finished sweep, a damaged one, a plain file and a garbage .npy, shared by the table."""
    d = tmp_path_factory.mktemp("cli")
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*SWEEP, "--out", str(d / "done")]) == 0
    shutil.copytree(d / "done", d / "damaged")
    (d / "damaged" / "sweep.json").write_text("{garbage")
    (d / "afile").write_text("x")
    (d / "garbage.npy").write_bytes(b"\x93NUMPY garbage")
    (d / "invalid" / "result").mkdir(parents=True)
    (d / "invalid" / "result" / "manifest.json").write_text("[1, 2")
    return d


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*SWEEP, "--out", "{d}/done", "--depth", "3"], "holds a checkpoint of a different sweep"),
        ([*SWEEP, "--out", "{d}/damaged"], "sweep.json is damaged"),
        (["report", "{d}/invalid"], "manifest.json is not valid JSON"),
        (["report", "{d}/afile"], "holds no sweep or training result"),
        ([*TRAIN, "--batch-size", "100000"], "batch_size=100000 exceeds the 1000 training examples"),
        ([*TRAIN, "--out", "{d}/afile"], "is a file, not a directory"),
        ([*SWEEP, "--out", "{d}/afile"], "is a file, not a directory"),
        ([*SWEEP, "--out", "/proc/jaxinit/y"], "cannot create the directory out='/proc/jaxinit/y'"),
        ([*SWEEP, "--root-seed", "99999999999999999999999"], "root_seed must be in [0, 2**32)"),
        ([*SWEEP[:-6], "--seeds", "0", "3000000000"], "seeds must be in [0, 2**31)"),
        ([*SWEEP, "--inputs", "{d}/garbage.npy"], "garbage.npy' is not a readable .npy array"),
        ([*SWEEP[:2], "he_normal(in_axis=9)", *SWEEP[3:]], "axis 9 is out of range"),
        ([*SWEEP[:2], "orthogonal(column_axis=7)", *SWEEP[3:]], "needs a weight shape of rank >= 8"),
        ([*SWEEP[:2], "normal(stddev=0.1, stddev=0.2)", *SWEEP[3:]], "'stddev' is given twice"),
        ([*TRAIN, "--optimizer", "sgd(learning_rate='abc')"], "learning_rate must be a number"),
        ([*TRAIN, "--optimizer", "apply_every(k=0)"], "k must be in [1, inf); got 0"),
        (["--bogus"], "unrecognized option '--bogus' before the command"),
        (["train", "--data", "mnist", "--data-dir", "{d}", "--inits", "he_normal", "--steps", "1"],
         "http://127.0.0.1:9/train-images-idx3-ubyte.gz"),  # the mirrors tried, on one line
        (["train", "--data-dir", "{d}/missing", "--inits", "he_normal", "--steps", "1"],
         "missing is not a directory; give the folder that holds MNIST's four .gz files, or add --download"),
    ],
)  # fmt: skip
def test_every_bad_input_is_one_error_line_exit_2_no_traceback(workdir, monkeypatch, capsys, argv,
                                                               message):  # fmt: skip
    # offline: the MNIST case must fail at the mirrors, never reach the real network
    monkeypatch.setenv(ji.data.MIRRORS_ENV, "http://127.0.0.1:9/")
    monkeypatch.delenv("JAXINIT_DEBUG", raising=False)
    argv = [a.replace("{d}", str(workdir)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("jaxinit"), err
    assert ": error: " in last
    assert message in last
    assert not (workdir / "missing").exists()  # a refused --data-dir is not created


def test_debug_shows_the_traceback(workdir, monkeypatch):
    """JAXINIT_DEBUG=1: the error raises (a traceback), the library's and the command
    line's own checks alike (an unknown activation, a missing report directory)."""
    monkeypatch.setenv("JAXINIT_DEBUG", "1")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        main([*SWEEP, "--out", str(workdir / "afile")])
    with pytest.raises(Exception, match="tahn"):
        main(["theory", "tahn"])
    with pytest.raises(Exception, match="nonexistent"):
        main(["report", str(workdir / "nonexistent")])


def test_theory_kernel_prints_the_nngp_and_ntk(capsys):
    import math

    import numpy as np

    argv = ["theory", "relu", "--kernel", "--depth", "4", "--angle", "45", "--sigma-w2", "1.8"]
    assert main([*argv, "--sigma-b2", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "depth 4" in out
    assert "x' = (cos 45°, sin 45°): unit norm, d_in = 2" in out
    a = math.radians(45.0)
    x = np.array([[1.0, 0.0], [math.cos(a), math.sin(a)]])
    k = ji.theory.kernels("relu", x, depth=4, sigma_w2=1.8, sigma_b2=0.1)
    for label, want in (("NNGP", k.nngp), ("NTK", k.ntk)):
        row = next(r for r in map(str.split, out.splitlines()) if r[:3] == ["1.8", "0.1", label])
        np.testing.assert_allclose([float(v) for v in row[3:]], np.ravel(want), rtol=1e-5)
    # ReLU at its edge σ_w² = 2, σ_b² = 0 keeps k(x, x) = |x|² = 1 exactly: printed as 1 (float64),
    # not float32's 0.999999; the NTK's diagonal is depth · 1 = 4
    assert main(["theory", "relu", "--kernel", "--depth", "4"]) == 0  # σ_w² = 2, the edge
    rows = [r.split() for r in capsys.readouterr().out.splitlines()]
    nngp, ntk = (next(r for r in rows if r[:3] == ["2", "0", name]) for name in ("NNGP", "NTK"))
    assert (nngp[3], nngp[6], ntk[3], ntk[6]) == ("1", "1", "4", "4")
    assert main(["theory", "relu", "--kernel", "--depth", "0"]) == 2
    assert "--depth must be an int >= 1; got 0" in capsys.readouterr().err


def test_help_shows_defaults_and_examples(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    # the real training defaults, which used to show only in train.json
    assert "(default: sgd(learning_rate=0.01))" in out
    assert "training steps (default: 2000)" in out
    assert "(default: 128)" in out
    assert "(default: [100, 100, 100, 100])" in out
    assert "(default: 0)" in out  # --data-seed: a 0 default is shown, None is said in words
    assert "examples:\n  jaxinit train --data circles" in out
    assert main(["sweep", "--help"]) == 0
    out = capsys.readouterr().out
    assert "activation specs" in out
    assert "(default: None)" not in out


SWEEP = ["sweep", "--inits", "he_normal", "--activations", "relu", "--seeds", "2"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--coordinator", "127.0.0.1:1234"], "--coordinator only go with --distributed"),
        (["--num-processes", "2", "--process-id", "0"],
         "--num-processes, --process-id only go with --distributed"),
        (["--distributed", "--out", "d", "--coordinator", "127.0.0.1:1234"],
         "--distributed with --coordinator needs --num-processes, --process-id too: give all three"),
        (["--distributed", "--coordinator", "h:1", "--num-processes", "2", "--process-id", "0"],
         "--distributed needs --out DIR, a directory every process sees"),
        (["--distributed", "--out", "d", "--coordinator", "localhost", "--num-processes", "2",
          "--process-id", "0"], "--coordinator takes HOST:PORT, e.g. 10.0.0.1:1234; got 'localhost'"),
        (["--distributed", "--out", "d", "--coordinator", "h:1", "--num-processes", "0",
          "--process-id", "0"], "--num-processes must be >= 1; got 0"),
        (["--distributed", "--out", "d", "--coordinator", "h:1", "--num-processes", "2",
          "--process-id", "2"], "--process-id must be in 0..1 (--num-processes 2); got 2"),
        (["--distributed", "--out", "d", "--process-timeout", "0"],
         "--process-timeout takes a positive number of seconds; got 0.0"),
    ],
)  # fmt: skip
def test_distributed_flags_bad_combinations(tmp_path, capsys, monkeypatch, flags, message):
    monkeypatch.chdir(tmp_path)
    assert main([*SWEEP, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxinit sweep: error: ")
    assert message in err, err
    assert not (tmp_path / "d").exists()  # refused before anything ran


def test_distributed_without_a_job_to_detect_says_what_to_give(tmp_path, capsys, monkeypatch):
    for var in ("SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "PMIX_RANK", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(var, raising=False)
    assert main([*SWEEP, "--distributed", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "jax.distributed.initialize failed (no SLURM, Open MPI or TPU job found?" in err, err
    assert "--coordinator, --num-processes and --process-id" in err


def test_train_takes_the_distributed_flags_too(capsys):
    argv = ["train", "--data", "circles", "--inits", "he_normal", "--num-processes", "2"]
    assert main(argv) == 2
    assert "--num-processes only go with --distributed" in capsys.readouterr().err
    assert main([*argv, "--distributed", "--coordinator", "h:1", "--process-id", "0"]) == 2
    assert "--distributed needs --out DIR" in capsys.readouterr().err


# -- the flags' old names, one more release ---------------------------------------------------


def _deprecated(old, new):
    return f"warning: {old} is deprecated and will be removed in the next release; use {new}"


def test_sweep_batch_is_batch_size_with_a_warning(capsys):
    from jaxinit.cli import grid_from_args, parser

    argv = ["sweep", "--inits", "he_normal", "--activations", "relu", "--width", "4"]
    args = parser().parse_args([*argv, "--batch", "8"])
    assert "jaxinit sweep: " + _deprecated("--batch", "--batch-size") in capsys.readouterr().err
    assert args.batch_size == 8
    assert grid_from_args(args).batch_size == 8
    assert parser().parse_args(argv).batch_size is None  # the new flag's default, untouched
    assert capsys.readouterr().err == ""
    assert main([*argv, "--batch", "8", "--batch-size", "8"]) == 2
    assert "argument --batch-size: not allowed with argument --batch" in capsys.readouterr().err


def test_train_activation_and_bias_init_are_the_plural_flags_with_a_warning(capsys):
    argv = [*TRAIN, "--activation", "tanh", "relu", "--bias-init", "normal(stddev=0.1)"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert _deprecated("--activation", "--activations") in captured.err
    assert _deprecated("--bias-init", "--bias-inits") in captured.err
    rows = [r.split() for r in captured.out.splitlines()]
    assert rows[0][:2] == ["init", "activation"]  # two activations: a dim, as --activations
    assert {r[1] for r in rows[2:]} == {"tanh", "relu"}
    assert main([*TRAIN, "--activation", "tanh", "--activations", "relu"]) == 2
    assert (
        "argument --activations: not allowed with argument --activation" in capsys.readouterr().err
    )


_MODEL_FILE = """
from flax import nnx


class Net(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)
        self.head = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        return self.head(nnx.relu(self.conv(x)).mean((1, 2)))


def make(rngs):
    return Net(rngs)
"""


def test_sweep_of_your_own_model_from_a_file(tmp_path, capsys):
    (tmp_path / "mine.py").write_text(_MODEL_FILE)
    argv = ["sweep", "--model", f"{tmp_path / 'mine.py'}:make", "--inits", "he_normal"]
    argv += ["--input-shape", "8", "5", "5", "3", "--seeds", "2", "--out", str(tmp_path / "o")]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "conv" in table
    assert "Conv" in table
    assert "(model)" in table
    res = ji.SweepResult.load(tmp_path / "o" / "result")
    assert res.attrs["layers"] == ["conv", "head", "(model)"]
    assert res.pre_var.shape == (1, 2, 3)
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Per layer, median over seeds" in html
    assert (tmp_path / "o" / "figures" / "model_pre_var.png").is_file()
    assert main(["report", str(tmp_path / "o"), "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.html").is_file()
    assert "no theory overlay" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--depth", "3"], "--depth describe the built-in MLP"),
        (["--activations", "relu"], "--activations describe the built-in MLP"),
        (["--input-shape", "4", "5", "5", "3", "--model", "nowhere:make"], "cannot import"),
        (["--input-shape", "4", "5", "5", "3", "--model", "mine.py:absent"], "no callable"),
        (["--input-shape", "4", "5", "5", "3", "--model", "make"], "MODULE:FACTORY"),
    ],
)
def test_sweep_model_usage_errors(tmp_path, capsys, monkeypatch, extra, message):
    (tmp_path / "mine.py").write_text(_MODEL_FILE)
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--inits", "he_normal", *extra]
    if "--model" not in extra:
        argv += ["--model", "mine:make", "--input-shape", "4", "5", "5", "3"]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_sweep_without_activations_or_model_is_a_usage_error(capsys):
    assert main(["sweep", "--inits", "he_normal"]) == 2
    assert "--activations (or --model)" in capsys.readouterr().err
