"""Data: real MNIST facts, every way an IDX file can be wrong, downloads, circles, gaussian.

No test here can reach the network: an autouse fixture refuses every connection
and name lookup except to the local host, and the download tests run against an
``http.server`` on 127.0.0.1 serving small synthetic IDX files.
"""

import ast
import functools
import gzip
import hashlib
import http.server
import io
import math
import os
import pathlib
import socket
import sys
import threading
import types
import urllib.request

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxinit as ji
from jaxinit import _keys, data
from jaxinit.initializers._bases import Constant, Normal
from jaxinit.sweeping import _kernel as kernel
from tests._tolerances import (
    DATA_CIRCLES_N,
    DATA_GAUSSIAN_SHAPE,
    mean_atol,
    variance_rtol,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
LOCAL = ("127.0.0.1", "localhost", "::1")
NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuses any connection or name lookup that is not the local host."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOCAL:
            raise ConnectionRefusedError(f"refused by the test guard: {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOCAL:
            raise socket.gaierror(f"refused by the test guard: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def mnist_train(mnist_dir):
    return data.load_mnist("train", data_dir=mnist_dir, download=False)


def test_mnist_train_facts(mnist_train):
    x, y = mnist_train
    assert x.shape == (60000, 784)
    assert x.dtype == np.float32
    assert y.shape == (60000,)
    assert y.dtype == np.int32
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS
    assert x.min() == 0.0
    assert x.max() == 1.0
    assert round(float(x.mean(dtype=np.float64)), 4) == 0.1307
    assert round(float(x.std(dtype=np.float64)), 4) == 0.3081


def test_mnist_normalize_modes(mnist_dir):
    raw, y = data.load_mnist("test", data_dir=mnist_dir, normalize="none", download=False)
    unit, y_unit = data.load_mnist("test", data_dir=mnist_dir, download=False)
    std, _ = data.load_mnist("test", data_dir=mnist_dir, normalize="standardize", download=False)
    assert raw.shape == unit.shape == std.shape == (10000, 784)
    assert raw.dtype == unit.dtype == std.dtype == np.float32
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS
    np.testing.assert_array_equal(y, y_unit)
    assert raw.max() == 255.0
    assert np.array_equal(raw, np.round(raw))
    np.testing.assert_allclose(unit, raw / 255.0, rtol=1e-6)
    np.testing.assert_allclose(std, (raw / 255.0 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)
    assert std.min() == pytest.approx(-0.1307 / 0.3081, rel=1e-6)


# ---------------------------------------------------------- synthetic IDX files

COUNTS = {"train": 5, "test": 3}


def _idx(values: np.ndarray, *, magic: int, count: int | None = None) -> bytes:
    """IDX bytes: magic, dims (the first possibly overridden), then the uint8 payload."""
    dims = list(values.shape)
    if count is not None:
        dims[0] = count
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + values.astype(np.uint8).tobytes()


class Synthetic(types.SimpleNamespace):
    """Small MNIST look-alikes: contents by file name, arrays by split, checksums."""


@pytest.fixture
def synth():
    rng = np.random.default_rng(0)
    content, arrays = {}, {}
    for split, (images, labels) in NAMES.items():
        x = rng.integers(0, 256, (COUNTS[split], 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, COUNTS[split], dtype=np.uint8)
        content[images], content[labels] = _idx(x, magic=0x803), _idx(y, magic=0x801)
        arrays[split] = (x, y)
    checksums = {name: hashlib.sha256(b).hexdigest() for name, b in content.items()}
    return Synthetic(content=content, arrays=arrays, checksums=checksums)


def _place(directory: pathlib.Path, content: dict, *, gz: bool) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, payload in content.items():
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)


def _load(synth, split, directory, **kwargs):
    options = {"normalize": "unit", "download": False, "mirrors": (), "timeout": 5.0}
    options.update(kwargs)
    return data._load_mnist(
        split, data_dir=directory, checksums=synth.checksums, counts=COUNTS, **options
    )


def _check_arrays(synth, split, x, y):
    images, labels = synth.arrays[split]
    assert x.shape == (COUNTS[split], 784)
    assert x.dtype == np.float32
    assert y.shape == (COUNTS[split],)
    assert y.dtype == np.int32
    np.testing.assert_array_equal(x, images.reshape(-1, 784).astype(np.float32) / 255)
    np.testing.assert_array_equal(y, labels)


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_synthetic_loads(synth, tmp_path, split, gz):
    _place(tmp_path, synth.content, gz=gz)
    _check_arrays(synth, split, *_load(synth, split, tmp_path))


def test_raw_and_gzip_side_by_side(synth, tmp_path):
    _place(tmp_path, synth.content, gz=True)
    _place(tmp_path, synth.content, gz=False)
    _check_arrays(synth, "test", *_load(synth, "test", tmp_path))


IMG, LAB = NAMES["train"]
RNG_IMAGES = np.arange(5 * 28 * 28).reshape(5, 28, 28) % 256
# fmt: off
# name -> (file to replace, its new content as a function of the good bytes, message)
BAD_FILES = {
    "bad_magic": (IMG, lambda b: _idx(RNG_IMAGES, magic=0x804), r"magic number 0x00000804 \(not an MNIST"),
    "labels_as_images": (IMG, lambda b: _idx(np.zeros(5), magic=0x801), r"that of an MNIST labels file"),
    "truncated_payload": (IMG, lambda b: b[:-10], r"truncated: the header announces 5 images \(3920 bytes\) but 3910"),
    "trailing_bytes": (IMG, lambda b: b + b"\0", r"too long"),
    "short_header": (IMG, lambda b: b[:7], r"7 bytes, fewer than the 16-byte IDX header"),
    "header_count": (IMG, lambda b: _idx(RNG_IMAGES, magic=0x803, count=6), r"announces 6 images"),
    "wrong_count": (IMG, lambda b: _idx(RNG_IMAGES[:4], magic=0x803), r"holds 4 images; expected 5"),
    "wrong_dims": (IMG, lambda b: _idx(np.zeros((5, 27, 27)), magic=0x803), r"27x27 pixels; expected 28x28"),
    "label_range": (LAB, lambda b: _idx(np.array([0, 3, 10, 2, 9]), magic=0x801), r"label 10 out of range"),
    "checksum": (IMG, lambda b: b[:-1] + bytes([b[-1] ^ 1]), r"SHA-256 of the decompressed content is [0-9a-f]{64}, expected"),
}
# fmt: on


@pytest.mark.parametrize("gz", [True, False], ids=["gzip", "raw"])
@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises(synth, tmp_path, case, gz):
    name, corrupt, message = BAD_FILES[case]
    synth.content[name] = corrupt(synth.content[name])
    _place(tmp_path, synth.content, gz=gz)
    with pytest.raises(data.MNISTError, match=message) as info:
        _load(synth, "train", tmp_path)
    assert isinstance(info.value, ValueError)
    assert str(tmp_path / (f"{name}.gz" if gz else name)) in str(info.value)


# file name -> (bytes written given the good payload, message)
MISNAMED = {
    "truncated_gzip": (lambda b: gzip.compress(b)[:-100], True, r"truncated: the gzip stream ends"),
    "raw_named_gz": (lambda b: b, True, r"not gzip-compressed, though named \.gz; .*rename it to"),
    "gzip_named_raw": (gzip.compress, False, r"gzip-compressed, though named without \.gz"),
}


@pytest.mark.parametrize("case", list(MISNAMED))
def test_misnamed_or_broken_gzip(synth, tmp_path, case):
    write, as_gz, message = MISNAMED[case]
    _place(tmp_path, {LAB: synth.content[LAB]}, gz=True)
    (tmp_path / (f"{IMG}.gz" if as_gz else IMG)).write_bytes(write(synth.content[IMG]))
    with pytest.raises(data.MNISTError, match=message):
        _load(synth, "train", tmp_path)


# fmt: off
BAD_ARGS = [
    ({"split": "trian"}, ValueError, r"split='trian' is not valid; choose one of 'train', 'test'\. Did you mean 'train'"),
    ({"split": 0}, TypeError, r"split=0 is not valid; choose one of 'train', 'test'"),
    ({"normalize": "standardise"}, ValueError, r"Did you mean 'standardize'"),
    ({"normalize": None}, TypeError, r"got None \(raw pixels: 'none'\)"),
    ({"mirrors": "http://127.0.0.1/"}, TypeError, r"mirrors is a sequence of base URLs"),
    ({"timeout": 0}, ValueError, r"timeout \(seconds\) must be a finite real number > 0; got 0"),
    ({"timeout": "5"}, TypeError, r"timeout \(seconds\) must be a finite real number > 0"),
]
# fmt: on


@pytest.mark.parametrize(("kwargs", "error", "message"), BAD_ARGS)
def test_bad_arguments(tmp_path, kwargs, error, message):
    kwargs = {"split": "test", "data_dir": tmp_path, **kwargs}
    with pytest.raises(error, match=message):
        data.load_mnist(kwargs.pop("split"), **kwargs)


def test_default_directory(monkeypatch, tmp_path):
    """data_dir, else $JAXINIT_DATA, else $XDG_CACHE_HOME/jaxinit/mnist, else ~/.cache/..."""

    def where(**kwargs):
        with pytest.raises(data.MNISTNotFoundError, match=r"\(download=False\)") as info:
            data.load_mnist("test", download=False, **kwargs)
        return str(info.value)

    monkeypatch.setenv("JAXINIT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert f"missing from {tmp_path / 'arg'}:" in where(data_dir=tmp_path / "arg")
    assert f"missing from {tmp_path / 'env'}:" in where()
    monkeypatch.delenv("JAXINIT_DATA")
    assert f"missing from {tmp_path / 'xdg' / 'jaxinit' / 'mnist'}:" in where()
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert f"missing from {tmp_path / 'home' / '.cache' / 'jaxinit' / 'mnist'}:" in where()
    assert not any(tmp_path.iterdir())  # download=False creates nothing


def test_environment_directory_is_read(synth, tmp_path, monkeypatch):
    _place(tmp_path / "env", synth.content, gz=True)
    monkeypatch.setenv("JAXINIT_DATA", str(tmp_path / "env"))
    _check_arrays(synth, "test", *_load(synth, "test", None))


# ------------------------------------------------------------------- downloads


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        del args


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/www at http://127.0.0.1:<port>/ from a background thread."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield types.SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}/", root=root)
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def dead_url():
    """A local port nobody listens on: connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_guard_refuses_the_network():
    with pytest.raises(OSError, match="refused by the test guard"):
        urllib.request.urlopen("http://example.com/", timeout=1)


def test_download_lands_atomically(synth, server, tmp_path, monkeypatch, capsys):
    _place(server.root, synth.content, gz=True)
    target = tmp_path / "cache" / "mnist"  # does not exist yet
    replaced, real_replace = [], os.replace

    def spy(src, dst):
        src, dst = pathlib.Path(src), pathlib.Path(dst)
        assert src.parent == dst.parent == target
        assert not dst.exists()
        assert src.read_bytes() == (server.root / dst.name).read_bytes()  # complete, verified
        replaced.append(dst.name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    _check_arrays(
        synth, "train", *_load(synth, "train", target, download=True, mirrors=[server.url])
    )
    assert sorted(replaced) == sorted(f"{n}.gz" for n in NAMES["train"])
    assert sorted(p.name for p in target.iterdir()) == sorted(replaced)  # no temporary files
    assert capsys.readouterr().err == ""  # no progress bar when stderr is not a terminal
    replaced.clear()
    _check_arrays(synth, "train", *_load(synth, "train", target, download=True, mirrors=["x:"]))
    assert replaced == []  # present files are not downloaded again


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_download_progress_bar_on_a_terminal(synth, server, tmp_path, monkeypatch):
    _place(server.root, synth.content, gz=True)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    _check_arrays(
        synth, "test", *_load(synth, "test", tmp_path, download=True, mirrors=[server.url])
    )
    assert f"{NAMES['test'][0]}.gz" in sys.stderr.getvalue()


# name -> (served bytes given the good payload, message)
CORRUPT_DOWNLOADS = {
    "wrong_bytes": (lambda b: gzip.compress(b[:-1] + bytes([b[-1] ^ 1])), r"SHA-256"),
    "not_gzip": (lambda b: b"<html>Access denied</html>", r"not gzip-compressed"),
    "truncated": (lambda b: gzip.compress(b)[:-50], r"truncated"),
}


@pytest.mark.parametrize("case", list(CORRUPT_DOWNLOADS))
def test_corrupt_download_is_rejected(synth, server, tmp_path, case):
    serve, message = CORRUPT_DOWNLOADS[case]
    _place(server.root, synth.content, gz=True)
    (server.root / f"{IMG}.gz").write_bytes(serve(synth.content[IMG]))
    target = tmp_path / "cache"
    with pytest.raises(data.MNISTNotFoundError, match=message) as info:
        _load(synth, "train", target, download=True, mirrors=[server.url])
    assert f"{server.url}{IMG}.gz: MNISTError" in str(info.value)
    assert [p.name for p in target.iterdir()] == [f"{LAB}.gz"]  # the good file stays, alone


@pytest.fixture
def hanging_url():
    """A local port that accepts connections and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        yield f"http://127.0.0.1:{s.getsockname()[1]}/"


def test_dead_mirrors_fall_back(synth, server, tmp_path, dead_url, hanging_url):
    _place(server.root / "good", synth.content, gz=True)
    mirrors = [dead_url, hanging_url, f"{server.url}missing/", f"{server.url}good/"]
    x, y = _load(synth, "test", tmp_path, download=True, mirrors=mirrors, timeout=0.3)
    _check_arrays(synth, "test", x, y)


def test_all_mirrors_dead_says_how_to_place_files(synth, server, tmp_path, dead_url, hanging_url):
    mirrors = [dead_url, hanging_url, f"{server.url}missing/"]
    target = tmp_path / "cache"
    with pytest.raises(data.MNISTNotFoundError) as info:
        _load(synth, "test", target, download=True, mirrors=mirrors, timeout=0.3)
    text = str(info.value)
    for name in NAMES["test"]:
        for url, reason in zip(mirrors, ["refused", "timed out", "404"], strict=True):
            assert f"{url}{name}.gz: " in text
            line = text.split(f"{url}{name}.gz: ")[1].split("\n")[0]
            assert reason in line.lower()
        assert f"copy {NAMES['test'][0]}.gz, {NAMES['test'][1]}.gz" in text
    assert f"into {target}," in text
    assert "JAXINIT_DATA=" in text
    assert "data_dir=" in text
    assert list(target.iterdir()) == []
    assert isinstance(info.value, FileNotFoundError)


def test_default_mirrors_are_tried_without_network(tmp_path):
    with pytest.raises(data.MNISTNotFoundError) as info:
        data.load_mnist("test", data_dir=tmp_path, timeout=1.0)
    text = str(info.value)
    for mirror in data.MNIST_MIRRORS:
        assert f"{mirror}t10k-images-idx3-ubyte.gz: URLError" in text
    assert text.count("refused by the test guard") == 2 * len(data.MNIST_MIRRORS)


# ------------------------------------------------------------------ synthetic


@pytest.mark.parametrize("n", [2, 7])
def test_circles_radii_labels_and_angles(key, n):
    factor = 0.3
    x, y = data.make_circles(key, n, factor=factor)
    assert x.shape == (n, 2)
    assert x.dtype == jnp.float32
    assert y.shape == (n,)
    assert y.dtype == jnp.int32
    x, y = np.asarray(x, np.float64), np.asarray(y)
    assert (y == 0).sum() == n // 2
    assert (y == 1).sum() == n - n // 2
    radius = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(radius, np.where(y == 0, 1.0, factor), rtol=1e-6)
    for label in (0, 1):  # sklearn: evenly spaced angles 2πk/m, k = 0..m-1
        angle = np.sort(np.mod(np.arctan2(x[y == label, 1], x[y == label, 0]), 2 * np.pi))
        m = angle.size
        np.testing.assert_allclose(angle, 2 * np.pi * np.arange(m) / m, atol=1e-5)


def test_circles_keyed(key):
    a = data.make_circles(key, 7, noise=0.1)
    b = data.make_circles(key, 7, noise=0.1)
    c = data.make_circles(jax.random.fold_in(key, 1), 7, noise=0.1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_circles_noise_std(key):
    noise, n = 0.07, DATA_CIRCLES_N
    clean, y0 = data.make_circles(key, n, factor=0.5)
    noisy, y1 = data.make_circles(key, n, noise=noise, factor=0.5)
    np.testing.assert_array_equal(y0, y1)  # same key, same order: the noise only adds
    assert 0.4 < np.asarray(y0[: n // 2]).mean() < 0.6  # shuffled: both labels in each half
    diff = np.asarray(noisy, np.float64) - np.asarray(clean, np.float64)
    assert abs(diff.mean()) <= mean_atol(diff.size, noise)
    np.testing.assert_allclose(diff.var(), noise**2, rtol=variance_rtol(diff.size, "normal"))


# fmt: off
CIRCLE_ERRORS = [
    ({"n": 1}, ValueError, r"n must be an int >= 2; got 1"),
    ({"n": 2.5}, TypeError, r"n must be an int"),
    ({"n": True}, TypeError, r"n must be an int"),
    ({"factor": 0.0}, ValueError, r"factor is the inner radius, in \(0, 1\); got 0.0"),
    ({"factor": 1.0}, ValueError, r"in \(0, 1\); got 1.0"),
    ({"factor": 1.5}, ValueError, r"in \(0, 1\); got 1.5"),
    ({"noise": -0.1}, ValueError, r"noise is a standard deviation, >= 0; got -0.1"),
    ({"noise": math.nan}, ValueError, r"got nan"),
]
# fmt: on


@pytest.mark.parametrize(("kwargs", "error", "message"), CIRCLE_ERRORS)
def test_circles_bad_arguments(key, kwargs, error, message):
    kwargs = {"n": 10, **kwargs}
    with pytest.raises(error, match=message):
        data.make_circles(key, kwargs.pop("n"), **kwargs)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
def test_gaussian_shape_dtype(key, dtype):
    assert data.gaussian(key, 3, 4, dtype=dtype).dtype == dtype
    assert data.gaussian(key, 0, 4, dtype=dtype).shape == (0, 4)
    assert data.gaussian(key, 3, 0, dtype=dtype).shape == (3, 0)


def test_gaussian_moments(key):
    n, d = DATA_GAUSSIAN_SHAPE
    x = np.asarray(data.gaussian(key, n, d), np.float64)
    assert x.shape == (n, d)
    assert abs(x.mean()) <= mean_atol(x.size, 1.0)
    np.testing.assert_allclose(x.var(), 1.0, rtol=variance_rtol(x.size, "normal"))
    np.testing.assert_array_equal(data.gaussian(key, n, d), data.gaussian(key, n, d))


def test_gaussian_is_the_kernel_input_draw():
    """The sweep kernel's batch for each seed, vmapped as the sweep does, is ``gaussian``."""
    g = ji.Grid(inits=["he_normal"], activations=["relu"], depth=1, width=4, seeds=3)
    spec = kernel.DrawSpec(
        w_bases=(Normal(),),
        b_bases=(Constant(),),
        d_in=5,
        width=4,
        depth=1,
        batch=8,
        inputs="gaussian",
        cotangent=False,
    )
    drawn = kernel.draw(spec, None, np.uint32(g.root_seed), np.arange(3, dtype=np.int32)).x
    for s in range(3):
        ours = data.gaussian(jax.random.fold_in(g.seed_key(s), _keys.STREAM_INPUTS), 8, 5)
        np.testing.assert_array_equal(drawn[s], ours)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        ((-1, 3), {}, ValueError),
        ((3, 2.0), {}, TypeError),
        ((3, 3), {"dtype": jnp.int32}, TypeError),
    ],
)
def test_gaussian_bad_arguments(key, args, kwargs, error):
    with pytest.raises(error, match=r"must be|dtype"):
        data.gaussian(key, *args, **kwargs)


def _our_imports(name: str) -> set[str]:
    tree = ast.parse((ROOT / "jaxinit" / name).read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules
    return {m for m in modules if m.split(".")[0] == "jaxinit"}


def test_module_imports_nothing_of_ours_but_the_shared_checks():
    # data is a leaf: its only jaxinit import is the argument checks, a leaf of the stdlib
    assert _our_imports("data.py") <= {"jaxinit._checks"}
    assert _our_imports("_checks.py") == set()
    assert set(data.__all__) <= set(vars(data))
