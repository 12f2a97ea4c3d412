r"""Datasets for training at initialization: MNIST, two circles, Gaussian inputs.

``load_mnist`` reads the four standard IDX files (LeCun et al. 1998,
http://yann.lecun.com/exdb/mnist/) from a directory, gzip-compressed or not,
and checks every byte before it returns anything: magic numbers, dimensions,
sizes, label range and the SHA-256 of the decompressed content. Missing files
are downloaded from public mirrors, verified, then moved into place
atomically::

    x, y = load_mnist("train")                    # (60000, 784) float32 in [0, 1], (60000,) int32
    x, y = load_mnist("test", normalize="standardize", data_dir="~/data/mnist")

The directory is ``data_dir``, else ``$JAXINIT_DATA``, else
``$XDG_CACHE_HOME/jaxinit/mnist``, else ``~/.cache/jaxinit/mnist``. Nothing is
cached in memory: each call reads the files again (about a second for the
training set).

``make_circles`` and ``gaussian`` are keyed JAX samplers for synthetic inputs.
This module imports nothing else from jaxinit.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import math
import os
import pathlib
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxinit._checks import check_choice, check_int, check_real

__all__ = [
    "MIRRORS_ENV",
    "MNIST_MIRRORS",
    "MNISTError",
    "MNISTNotFoundError",
    "gaussian",
    "load_mnist",
    "make_circles",
]

# Base URLs tried in order; each serves the four files as ``<name>.gz``.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
MIRRORS_ENV = "JAXINIT_MNIST_MIRRORS"  # comma-separated base URLs that replace MNIST_MIRRORS


def _default_mirrors() -> tuple[str, ...]:
    env = os.environ.get(MIRRORS_ENV, "")
    return tuple(u.strip() for u in env.split(",") if u.strip()) or MNIST_MIRRORS


# SHA-256 of each file's decompressed content (the whole IDX file, header included).
_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
_COUNTS = {"train": 60000, "test": 10000}
_PREFIX = {"train": "train", "test": "t10k"}
_MAGIC = {"images": 0x00000803, "labels": 0x00000801}  # unsigned byte, 3 or 1 dims
_SIDE = 28
_NORMALIZE = ("none", "unit", "standardize")
_MEAN, _STD = 0.1307, 0.3081  # training-set pixel statistics after scaling to [0, 1]


class MNISTError(ValueError):
    """An MNIST file is invalid: truncated, corrupt, mis-named or not the expected file."""


class MNISTNotFoundError(FileNotFoundError):
    """MNIST files are missing and could not be downloaded (the message says how to place them)."""


class _Idx(NamedTuple):
    """What one IDX file must hold."""

    name: str  # file name without .gz, e.g. "train-images-idx3-ubyte"
    kind: str  # "images" or "labels"
    count: int  # number of images or labels
    sha256: str  # of the decompressed content


def _mnist_dir(data_dir: str | os.PathLike | None) -> pathlib.Path:
    """``data_dir``, else ``$JAXINIT_DATA``, else the user cache directory."""
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    if os.environ.get("JAXINIT_DATA"):
        return pathlib.Path(os.environ["JAXINIT_DATA"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "jaxinit" / "mnist"


def _read_idx(
    path: pathlib.Path, idx: _Idx, *, compressed: bool | None = None, shown_as: str | None = None
) -> np.ndarray:
    """The uint8 content of an IDX file, after every check; raises MNISTError naming the file.

    ``compressed`` defaults to whether the name ends in ``.gz``.
    """
    where = shown_as or str(path)
    if compressed is None:
        compressed = path.name.endswith(".gz")

    def fail(problem: str) -> MNISTError:
        return MNISTError(f"{where}: {problem}")

    data = path.read_bytes()
    if compressed:
        try:
            data = gzip.decompress(data)
        except gzip.BadGzipFile:
            raise fail(
                f"not gzip-compressed, though named .gz; if it holds raw IDX bytes, "
                f"rename it to {idx.name!r}"
            ) from None
        except EOFError:
            raise fail("truncated: the gzip stream ends early") from None
        except zlib.error as err:
            raise fail(f"corrupt gzip stream ({err})") from None
    elif data[:2] == b"\x1f\x8b":
        raise fail(f"gzip-compressed, though named without .gz; rename it to {idx.name + '.gz'!r}")
    ndim = 3 if idx.kind == "images" else 1
    header = 4 + 4 * ndim
    if len(data) >= 4 and (magic := int.from_bytes(data[:4], "big")) != _MAGIC[idx.kind]:
        other = {v: k for k, v in _MAGIC.items()}.get(magic)
        hint = f" (that of an MNIST {other} file)" if other else " (not an MNIST IDX file)"
        raise fail(
            f"magic number 0x{magic:08x}{hint}; expected 0x{_MAGIC[idx.kind]:08x} for {idx.kind}"
        )
    if len(data) < header:
        raise fail(f"truncated: {len(data)} bytes, fewer than the {header}-byte IDX header")
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4).tolist()
    if idx.kind == "images" and dims[1:] != [_SIDE, _SIDE]:
        raise fail(f"images of {dims[1]}x{dims[2]} pixels; expected {_SIDE}x{_SIDE}")
    item = math.prod(dims[1:])
    payload = len(data) - header
    if payload != dims[0] * item:
        problem = "truncated" if payload < dims[0] * item else "too long"
        raise fail(
            f"{problem}: the header announces {dims[0]} {idx.kind} ({dims[0] * item} bytes) "
            f"but {payload} bytes follow it"
        )
    if dims[0] != idx.count:
        raise fail(f"holds {dims[0]} {idx.kind}; expected {idx.count}")
    values = np.frombuffer(data, np.uint8, offset=header)
    if idx.kind == "labels" and values.size and values.max() > 9:
        raise fail(f"label {int(values.max())} out of range; labels are 0..9")
    digest = hashlib.sha256(data).hexdigest()
    if digest != idx.sha256:
        raise fail(
            f"SHA-256 of the decompressed content is {digest}, expected {idx.sha256}: "
            f"the file is corrupt or not {idx.name}"
        )
    return values.reshape(dims)


def _find(directory: pathlib.Path, name: str) -> pathlib.Path | None:
    """The file holding ``name``: uncompressed if present (faster), else gzip-compressed."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _copy(response, out, *, label: str) -> None:
    """Streams ``response`` into ``out``, with a progress bar when stderr is a terminal."""
    chunks = iter(lambda: response.read(1 << 16), b"")
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        for chunk in chunks:
            out.write(chunk)
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    total = int(response.headers.get("Content-Length") or 0) or None
    columns = (TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=True) as bar:
        task = bar.add_task(label, total=total)
        for chunk in chunks:
            out.write(chunk)
            bar.advance(task, len(chunk))


def _fetch(url: str, target: pathlib.Path, idx: _Idx, *, timeout: float) -> None:
    """Downloads ``url``, verifies it, and moves it to ``target``; nothing is left on failure."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            _copy(response, out, label=target.name)
            out.flush()
            os.fsync(out.fileno())
        _read_idx(pathlib.Path(tmp), idx, compressed=True, shown_as="the downloaded file")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _download(
    directory: pathlib.Path, idx: _Idx, *, mirrors: Sequence[str], timeout: float
) -> list[str]:
    """Tries each mirror in turn; returns one line per failure ([] on success)."""
    failures = []
    for mirror in mirrors:
        url = f"{mirror.rstrip('/')}/{idx.name}.gz"
        try:
            _fetch(url, directory / f"{idx.name}.gz", idx, timeout=timeout)
            return []
        except (OSError, ValueError, http.client.HTTPException) as err:
            if isinstance(err, urllib.error.HTTPError):
                err.close()
            failures.append(f"{url}: {type(err).__name__}: {err}")
    return failures or ["no mirrors given"]


def _not_found(directory, split, missing, failures) -> MNISTNotFoundError:
    tried = "".join(f"\n  - {line}" for line in failures) if failures else " (download=False)"
    names = [f"{name}.gz" for name in _SHA256]
    return MNISTNotFoundError(
        f"MNIST {split} files missing from {directory}: {', '.join(missing)}. Download tried:"
        f"{tried}\nTo place them by hand, copy {', '.join(f'{n}.gz' for n in missing)} "
        f"(gzip-compressed, or uncompressed without .gz; all four MNIST files are "
        f"{', '.join(names)}) into {directory}, or put them in a directory of your "
        f"choice and set JAXINIT_DATA=/that/directory or pass data_dir=. Their decompressed "
        f"content must match the SHA-256 sums in jaxinit.data."
    )


def _load_mnist(
    split: str,
    *,
    data_dir: str | os.PathLike | None,
    normalize: str,
    download: bool,
    mirrors: Sequence[str],
    timeout: float,
    checksums: Mapping[str, str],
    counts: Mapping[str, int],
) -> tuple[np.ndarray, np.ndarray]:
    """``load_mnist`` with the expected sums and sizes as arguments (tests use small files)."""
    check_choice("split", split, tuple(_COUNTS))
    if normalize is None:
        raise TypeError(f"normalize is one of {list(_NORMALIZE)}; got None (raw pixels: 'none')")
    check_choice("normalize", normalize, _NORMALIZE)
    if isinstance(mirrors, str) or not isinstance(mirrors, Sequence):
        raise TypeError(f"mirrors is a sequence of base URLs; got {mirrors!r}")
    check_real("timeout (seconds)", timeout, low=0.0, strict=True)
    directory = _mnist_dir(data_dir)
    files = {}
    for kind in ("images", "labels"):
        name = f"{_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
        files[kind] = _Idx(name, kind, counts[split], checksums[name])
    missing = [idx for idx in files.values() if _find(directory, idx.name) is None]
    failures: list[str] = []
    if missing and download:
        directory.mkdir(parents=True, exist_ok=True)
        for idx in missing:
            failures += _download(directory, idx, mirrors=mirrors, timeout=timeout)
    if missing and (failures or not download):
        still = [idx.name for idx in missing if _find(directory, idx.name) is None]
        raise _not_found(directory, split, still, failures)
    images = _read_idx(_find(directory, files["images"].name), files["images"])
    labels = _read_idx(_find(directory, files["labels"].name), files["labels"])
    # both files were checked against the split's count, so they agree
    x = images.reshape(len(images), _SIDE * _SIDE).astype(np.float32)
    if normalize != "none":
        x /= np.float32(255.0)
    if normalize == "standardize":
        x -= np.float32(_MEAN)
        x /= np.float32(_STD)
    return x, labels.astype(np.int32)


def load_mnist(
    split: str,
    *,
    data_dir: str | os.PathLike | None = None,
    normalize: str = "unit",
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""MNIST images and labels, checked byte for byte (LeCun et al. 1998).

    Args:
      split: ``"train"`` (60000 examples) or ``"test"`` (10000).
      data_dir: directory of the IDX files ``{train,t10k}-{images-idx3,labels-idx1}-ubyte``,
        each gzip-compressed (``.gz``) or not (preferred when both are present);
        default ``$JAXINIT_DATA``, else
        ``$XDG_CACHE_HOME/jaxinit/mnist`` or ``~/.cache/jaxinit/mnist``.
      normalize: ``"none"`` (raw 0..255 as float32), ``"unit"`` (:math:`x/255 \in [0, 1]`)
        or ``"standardize"`` (:math:`(x/255 - 0.1307)/0.3081`, the training set's
        pixel mean and standard deviation).
      download: fetch missing files from ``mirrors`` (tried in order; any failure,
        a bad checksum included, moves on to the next).
      mirrors: base URLs, each serving ``<name>.gz``; None takes
        ``$JAXINIT_MNIST_MIRRORS`` (comma-separated, e.g. a cluster's own mirror),
        else :data:`MNIST_MIRRORS`.
      timeout: seconds a connection or read may block before the mirror counts as failed.

    Returns:
      ``(images, labels)``: numpy float32 ``(N, 784)`` (rows of the 28x28 image)
      and int32 ``(N,)`` in 0..9, on the host (``jnp.asarray`` moves them).

    Raises:
      MNISTError: a file is truncated, corrupt, mis-named or not the expected one.
      MNISTNotFoundError: files are missing and every mirror failed (or
        ``download=False``); the message lists each failure and where to put the files.
    """
    return _load_mnist(
        split,
        data_dir=data_dir,
        normalize=normalize,
        download=download,
        mirrors=_default_mirrors() if mirrors is None else mirrors,
        timeout=timeout,
        checksums=_SHA256,
        counts=_COUNTS,
    )


def make_circles(
    key: jax.Array, n: int, *, noise: float = 0.0, factor: float = 0.8
) -> tuple[jax.Array, jax.Array]:
    r"""Two concentric circles, as ``sklearn.datasets.make_circles``.

    The first :math:`\lfloor n/2 \rfloor` points lie on the unit circle (label 0),
    the rest on the circle of radius ``factor`` (label 1), each at evenly spaced
    angles :math:`2\pi k / m`, :math:`k = 0..m-1`; the points are shuffled and
    :math:`\mathcal{N}(0, \mathrm{noise}^2)` is added to each coordinate. The
    shuffle and the noise use separate keys split from ``key``, so one key gives
    the same order at every noise level.

    Returns:
      ``(x, y)``: float32 ``(n, 2)`` and int32 ``(n,)``.

    Example:
      >>> import jax
      >>> x, y = make_circles(jax.random.key(0), 200, noise=0.05, factor=0.5)
      >>> x.shape, y.shape
      ((200, 2), (200,))
    """
    n = check_int("n", n, low=2)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor is the inner radius, in (0, 1); got {factor!r}")
    if not noise >= 0.0:
        raise ValueError(f"noise is a standard deviation, >= 0; got {noise!r}")
    return _circles(key, n, jnp.float32(noise), jnp.float32(factor))


@functools.partial(jax.jit, static_argnums=1)
def _circles(key, n, noise, factor):
    n_out = n // 2
    n_in = n - n_out

    def circle(m: int, radius) -> jax.Array:
        angle = jnp.arange(m, dtype=jnp.float32) * jnp.float32(2 * math.pi / m)
        return radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)

    x = jnp.concatenate([circle(n_out, jnp.float32(1.0)), circle(n_in, factor)])
    y = jnp.concatenate([jnp.zeros(n_out, jnp.int32), jnp.ones(n_in, jnp.int32)])
    k_perm, k_noise = jax.random.split(key)
    order = jax.random.permutation(k_perm, n)
    return x[order] + noise * jax.random.normal(k_noise, (n, 2), jnp.float32), y[order]


def gaussian(key: jax.Array, n: int, d: int, *, dtype=jnp.float32) -> jax.Array:
    r"""``n`` i.i.d. inputs :math:`x \sim \mathcal{N}(0, I_d)`, shape ``(n, d)``.

    This is the input distribution of ``Grid(inputs="gaussian")``: the sweep
    kernel's input batch for seed ``s`` is exactly (float32, x64 off)
    ``gaussian(jax.random.fold_in(grid.seed_key(s), jaxinit._keys.STREAM_INPUTS), batch, d_in)``.

    Example:
      >>> import jax
      >>> gaussian(jax.random.key(0), 256, 784).shape
      (256, 784)
    """
    n = check_int("n", n, low=0)
    d = check_int("d", d, low=0)
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype; got {dtype!r}")
    return jax.random.normal(key, (n, d), dtype)
