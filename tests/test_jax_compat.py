"""Every jax internal jaxinit uses (:mod:`jaxinit._jax_compat`) against jax's public behaviour.

When a jax release changes one, the test that fails names it: these are the
tests to read first after upgrading jax.
"""

import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxinit import _host, _jax_compat, _threefry
from jaxinit.initializers._core import bits_many

ROOT = pathlib.Path(__file__).resolve().parents[1]

ROOTS = [0, 1, 42, 2**31 + 5, 3_000_000_000, 2**32 - 1]


def _changed(internal: str, where: str) -> str:
    return (
        f"jax {jax.__version__} changed {internal}: {where} no longer matches it; "
        "mend jaxinit/_jax_compat.py"
    )


# -- the threefry hash and jax's layout of keys and counters ---------------------------------


def test_numpy_threefry_hash_is_the_published_one():
    """Known answers of Threefry-2x32-20 (Salmon et al. 2011; Random123's kat_vectors)."""
    cases = [
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((2**32 - 1,) * 2, (2**32 - 1,) * 2, (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for key, counter, want in cases:
        got = _threefry.hash2x32(*key, *counter)
        assert (int(got[0][0]), int(got[1][0])) == want, (key, counter)


def test_host_key_data_is_jaxs_key_data():
    for root in ROOTS:
        np.testing.assert_array_equal(
            _jax_compat.host_key_data(root),
            np.asarray(jax.random.key_data(jax.random.key(root))),
            err_msg=_changed(
                f"how jax.random.key({root}) lays out a threefry seed", "host_key_data"
            ),
        )
    np.testing.assert_array_equal(
        _jax_compat.host_key_data(np.array([[3], [4]])), [[[0, 3]], [[0, 4]]]
    )
    for bad in (-1, 2**32, 1.5):
        with pytest.raises(ValueError, match=r"seeds must be integers in \[0, 2\*\*32\)"):
            _jax_compat.host_key_data(bad)


def test_host_fold_in_is_jaxs_fold_in_bitwise():
    rng = np.random.default_rng(0)
    data = [*rng.integers(0, 2**32, 20, dtype=np.uint64).tolist(), 0, 1, 2**31]
    for root in ROOTS:
        host = _jax_compat.host_fold_in(_jax_compat.host_key_data(root), np.array(data, np.uint64))
        want = [
            np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.key(root), d)))
            for d in data
        ]
        np.testing.assert_array_equal(
            host,
            np.stack(want),
            err_msg=_changed("jax.random.fold_in's threefry counters", "host_fold_in"),
        )
    # negative int32 data wraps to uint32 as jax wraps it
    key = jax.random.key(5)
    np.testing.assert_array_equal(
        _jax_compat.host_fold_in(_jax_compat.host_key_data(5), -3),
        np.asarray(jax.random.key_data(jax.random.fold_in(key, jnp.int32(-3)))),
    )


@pytest.mark.parametrize("layout", ["threefry", "original_layout", "rbg"])
def test_partitionable_threefry_reads_jaxs_config_and_keys(layout):
    context = {
        "threefry": jax.threefry_partitionable(True),
        "original_layout": jax.threefry_partitionable(False),
        "rbg": jax.default_prng_impl("rbg"),
    }[layout]
    with context:
        want = layout == "threefry"
        assert _jax_compat.partitionable_threefry() == want
        assert _jax_compat.partitionable_threefry(jax.random.split(jax.random.key(0), 3)) == want
    rbg_keys = jax.random.key(0, impl="rbg")
    assert not _jax_compat.partitionable_threefry(rbg_keys)


def test_threefry_primitive_bits_are_jax_random_bits():
    assert _jax_compat.threefry_hash_available(), _changed(
        "jax.extend.random.threefry2x32_p (gone)", "threefry_bits"
    )
    keys = jax.random.split(jax.random.key(7), 3)
    data = np.asarray(jax.random.key_data(keys))
    n = 1000
    counters = np.tile(np.arange(n, dtype=np.uint32), 3)
    got = jax.jit(_jax_compat.threefry_bits)(
        np.repeat(data[:, 0], n), np.repeat(data[:, 1], n), counters
    ).reshape(3, n)
    for i in range(3):
        np.testing.assert_array_equal(
            got[i],
            jax.random.bits(keys[i], (n,), jnp.uint32),
            err_msg=_changed(
                "the partitionable threefry's counters for jax.random.bits", "threefry_bits"
            ),
        )


@pytest.mark.parametrize("primitive", ["bound", "missing"])
def test_one_threefry_pass_gives_each_requests_own_bits(primitive, monkeypatch):
    """bits_many hashes every request in one call; without the primitive, one request at a
    time: both are jax.random.bits."""
    if primitive == "missing":
        monkeypatch.setattr(_jax_compat, "_threefry_primitive", lambda: None)
        with pytest.raises(RuntimeError, match=r"jax \S+ does not have.*threefry_hash_available"):
            _jax_compat.threefry_bits(*[jnp.zeros(2, jnp.uint32)] * 3)
    keys = [jax.random.split(jax.random.key(k), n) for k, n in ((0, 1), (1, 3), (2, 2))]
    sizes = [7, 100, 1]
    got = jax.jit(lambda *ks: bits_many(list(zip(ks, sizes, strict=True))))(*keys)
    for ks, n, g in zip(keys, sizes, got, strict=True):
        assert g.shape == (ks.shape[0], n)
        for i in range(ks.shape[0]):
            np.testing.assert_array_equal(
                g[i],
                jax.random.bits(ks[i], (n,), jnp.uint32),
                err_msg=_changed("jax.random.bits' threefry counters", "bits_many"),
            )


# -- floats from random bits ----------------------------------------------------------------

N_DRAW = 50_000  # about 2¹⁶ draws: every mantissa pattern's neighbourhood, both tails


# (name, jaxinit's step from bits, jax's sampler); bounds as jaxinit's bases use them
SAMPLERS = [
    ("uniform", _jax_compat.uniform_from_bits, jax.random.uniform),
    (
        "uniform(minval=-1)",
        lambda b: _jax_compat.uniform_from_bits(b, -1.0, 1.0),
        lambda k, s: jax.random.uniform(k, s, minval=-1),
    ),
    (
        "uniform(minval=0.25, maxval=3.5)",
        lambda b: _jax_compat.uniform_from_bits(b, 0.25, 3.5),
        lambda k, s: jax.random.uniform(k, s, minval=0.25, maxval=3.5),
    ),
    ("normal", _jax_compat.normal_from_bits, jax.random.normal),
    *[
        (
            f"truncated_normal({lo}, {hi})",
            lambda b, lo=lo, hi=hi: _jax_compat.truncated_normal_from_bits(b, lo, hi),
            lambda k, s, lo=lo, hi=hi: jax.random.truncated_normal(k, lo, hi, s),
        )
        for lo, hi in ((-2.0, 2.0), (-1.0, 3.0), (0.5, 4.0))
    ],
]


@pytest.mark.parametrize("k", [0, 1, 2**31 + 5])
def test_floats_from_bits_are_jaxs_samplers_bitwise(k):
    """Compiled, as jaxinit runs them: XLA folds constants (the erf of a truncated normal's
    bounds) and fuses multiply-adds, so even jax's own samplers can differ in the last bit
    between an eager call and a compiled one (truncated_normal(0.5, 4.0) does)."""
    key = jax.random.key(k)
    bits = jax.random.bits(key, (N_DRAW,), jnp.uint32)
    for name, from_bits, sampler in SAMPLERS:
        got = jax.jit(from_bits)(bits)
        want = jax.jit(lambda key, sampler=sampler: sampler(key, (N_DRAW,)))(key)
        assert got.dtype == want.dtype == jnp.float32
        np.testing.assert_array_equal(
            got,
            want,
            err_msg=_changed(f"jax.random.{name}'s step from bits to floats", "*_from_bits"),
        )


def test_uniform_from_bits_at_the_extreme_bits():
    """All-zero bits give minval, all-one bits the largest float32 below 1 (scaled)."""
    bits = jnp.array([0, 2**32 - 1, 2**9 - 1, 2**9], jnp.uint32)
    got = np.asarray(_jax_compat.uniform_from_bits(bits))
    np.testing.assert_array_equal(got, [0.0, 1 - 2.0**-23, 0.0, 2.0**-23])
    assert np.asarray(_jax_compat.uniform_from_bits(bits, -1.0, 1.0))[0] == -1.0


# -- compiled programs ----------------------------------------------------------------------


def test_compiled_count_counts_each_new_compile():
    f = jax.jit(lambda x: x * 2)
    assert _jax_compat.compiled_count(f) == 0
    f(jnp.ones(3))
    assert _jax_compat.compiled_count(f) == 1, _changed("jit's _cache_size()", "compiled_count")
    f(jnp.zeros(3))  # same shape: no new program
    assert _jax_compat.compiled_count(f) == 1
    f(jnp.ones((2, 2)))
    assert _jax_compat.compiled_count(f) == 2
    _jax_compat.clear_compiled(f)
    assert _jax_compat.compiled_count(f) == 0, _changed("jit's clear_cache()", "clear_compiled")


def test_compiled_count_without_the_internal_names_the_jax_version():
    with pytest.raises(RuntimeError, match=rf"jax {re.escape(jax.__version__)} does not have"):
        _jax_compat.compiled_count(lambda x: x)


def test_clear_compiled_without_the_method_clears_every_cache():
    f = jax.jit(lambda x: x + 3)
    f(jnp.ones(2))
    _jax_compat.clear_compiled(lambda x: x)  # no clear_cache: jax.clear_caches()
    assert _jax_compat.compiled_count(f) == 0


# -- backends -------------------------------------------------------------------------------


def test_backends_started_is_false_before_any_computation_and_true_after():
    code = (
        "from jaxinit import _jax_compat\n"
        "import jax.numpy as jnp\n"
        "print(_jax_compat.backends_started())\n"
        "jnp.ones(2).block_until_ready()\n"
        "print(_jax_compat.backends_started())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"], _changed(
        "jax._src.xla_bridge.backends_are_initialized", "backends_started"
    )


def test_use_cpu_cores_without_the_internal_learns_from_jaxs_error(monkeypatch):
    """Where jax cannot be asked, use_cpu_cores tries the count and reads jax's refusal
    (this process's backends have started)."""
    monkeypatch.setattr(_jax_compat, "_backends_probe", lambda: None)
    monkeypatch.delenv("JAX_NUM_CPU_DEVICES", raising=False)
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setattr(os, "cpu_count", lambda: len(jax.devices()) + 1)  # another count
    assert not _jax_compat.backends_started()
    line = _host.use_cpu_cores()
    assert line == f"jaxinit: {len(jax.devices())} cpu device(s) (jax already started)"


# -- one module -----------------------------------------------------------------------------

INTERNALS = re.compile(r"jax\._src|_cache_size|threefry2x32_p|xla_bridge|jax\.extend")


def test_only_jax_compat_touches_jax_internals():
    offenders = [
        f"{path.relative_to(ROOT)}:{i}: {line.strip()}"
        for path in sorted((ROOT / "jaxinit").rglob("*.py"))
        if path.name != "_jax_compat.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if INTERNALS.search(line)
    ]
    assert not offenders, "jax internals outside jaxinit/_jax_compat.py:\n" + "\n".join(offenders)


# -- the suite's compile flag ---------------------------------------------------------------

FAST_COMPILE = "--xla_llvm_disable_expensive_passes=true"  # as tests/conftest.py sets it


def test_the_suites_fast_compile_flag_changes_no_bits(tmp_path):
    """conftest.py compiles without LLVM's expensive passes: a sweep with gradients and a few
    training steps give the same bits in a process with XLA's default flags."""
    assert FAST_COMPILE in os.environ["XLA_FLAGS"].split()

    code = (
        "import sys, numpy as np, jax, jaxinit as ji\n"
        "g = ji.Grid(inits=['he_normal', 'glorot_uniform'], activations=['tanh'],\n"
        "            depth=3, width=16, seeds=2, batch_size=8)\n"
        "res = ji.sweep(g, progress=False)\n"
        "x, y = ji.data.make_circles(jax.random.key(0), 64, noise=0.05)\n"
        "t = ji.train(ji.TrainGrid(inits=['he_normal'], seeds=2, hidden=(8,), output='sigmoid',\n"
        "                          batch_size=16, steps=5, optimizer='adam(learning_rate=0.01)'),\n"
        "             (x, y), progress=False)\n"
        "np.savez(sys.argv[1], **{f's_{k}': v for k, v in res.fields.items()},\n"
        "         **{f't_{k}': v for k, v in t.fields.items()})\n"
    )
    flags = {}
    for name, xla_flags in (("fast", FAST_COMPILE), ("default", "")):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": xla_flags}
        env["JAXINIT_COMPILATION_CACHE"] = "0"  # each compiles its own programs
        out = subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / f"{name}.npz")],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        flags[name] = dict(np.load(tmp_path / f"{name}.npz"))
    assert flags["fast"].keys() == flags["default"].keys()
    for k, v in flags["fast"].items():
        np.testing.assert_array_equal(v, flags["default"][k], err_msg=k, strict=True)


_LIBRARY_PROBE = """
import hashlib, re, sys
import jax, jax.numpy as jnp
from jaxinit import _jax_compat

def f(x, k, w):  # a convolution whose output has two users, dots, reductions, elementwise
    y = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    h = jnp.tanh(y.reshape(-1, 32) @ w)
    return y.sum(), jnp.square(y).mean(), (h @ w).sum(), jax.nn.softmax(h).max()

args = (jnp.ones((16, 8, 8, 32)), jnp.ones((3, 3, 32, 32)), jnp.ones((32, 32)))  # XLA's
# cost model leaves smaller convolutions to itself
lowered = jax.jit(f).lower(*args)
c = _jax_compat.compile_for(lowered, "cpu") if sys.argv[1] == "ours" else lowered.compile()
text = re.sub(r", metadata=\\{[^}]*\\}", "", c.as_text())
print(text.count("__ynn_fusion"), hashlib.sha256(text.encode()).hexdigest())
"""


def test_cpu_library_fusions_are_xlas_default_less_convolutions():
    """compile_for's list (CPU_LIBRARY_FUSIONS) is XLA's default with convolutions removed:
    the program it compiles is, op for op, the one XLA compiles when its flags remove the
    convolutions from its own default; and it differs from the default's (a convolution
    fusion fewer), so the option is still there and acts."""
    runs = {}
    for name, flags in (
        ("ours", ""),
        ("xla", "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"),
        ("default", ""),
    ):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "XLA_FLAGS": flags}
        out = subprocess.run(
            [sys.executable, "-c", _LIBRARY_PROBE, name],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        runs[name] = out.stdout.split()
    assert runs["ours"] == runs["xla"]
    assert int(runs["default"][0]) == int(runs["ours"][0]) + 1  # the convolution's own


def test_compile_for_falls_back_where_xla_lacks_the_option():
    """An XLA without the option compiles with its defaults; any other error is raised."""

    class Lowered:
        def __init__(self, message):
            self.message, self.calls = message, []

        def compile(self, compiler_options=None):
            self.calls.append(compiler_options)
            if compiler_options is not None:
                raise jax.errors.JaxRuntimeError(self.message)
            return "compiled"

    missing = Lowered(
        "INVALID_ARGUMENT: No such compile option: xla_cpu_experimental_ynn_fusion_type"
    )
    assert _jax_compat.compile_for(missing, "cpu") == "compiled"
    assert missing.calls == [
        {"xla_cpu_experimental_ynn_fusion_type": ",".join(_jax_compat.CPU_LIBRARY_FUSIONS)},
        None,
    ]
    gpu = Lowered("unused")
    assert _jax_compat.compile_for(gpu, "gpu") == "compiled"
    assert gpu.calls == [None]  # the option is XLA:CPU's; other platforms compile as they do
    with pytest.raises(jax.errors.JaxRuntimeError, match="out of memory"):
        _jax_compat.compile_for(Lowered("RESOURCE_EXHAUSTED: out of memory"), "cpu")
