"""The CNN's infinite-width NNGP and NTK (``ji.theory.conv_kernels``) against neural-tangents
(stored references) and against the MLP's kernels where the two networks coincide."""

import numpy as np
import pytest
from _references import assert_kernels_match, nt_kernels

import jaxinit as ji

REF = nt_kernels()  # its residual network's cases are in tests/test_theory_residual.py


def _id(c):
    return (
        f"{c['activation']}-L{c['depth']}-{c['padding']}-{'x'.join(map(str, c['filter_shape']))}"
        + ("-cross" if c["cross"] else "")
    )


@pytest.mark.parametrize("case", REF["cases"], ids=_id)
def test_equal_neural_tangents(case):
    x1 = np.asarray(REF["x1"], np.float32)
    x2 = np.asarray(REF["x2"], np.float32) if case["cross"] else None
    k = ji.theory.conv_kernels(
        case["activation"], x1, x2, depth=case["depth"], sigma_w2=REF["sigma_w2"],
        sigma_b2=REF["sigma_b2"], filter_shape=tuple(case["filter_shape"]),
        padding=case["padding"],
    )  # fmt: skip
    assert_kernels_match(k, case)


def test_a_1x1_image_is_the_mlp():
    """On 1×1 images a convolution is a Dense layer and pooling does nothing: the CNN of
    ``depth`` convolutions is the MLP of ``depth + 1`` Dense layers."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 1, 1, 5)).astype(np.float32)
    for act in ("relu",):
        cnn = ji.theory.conv_kernels(act, x, depth=3, sigma_w2=1.5, sigma_b2=0.05,
                                     filter_shape=(1, 1))  # fmt: skip
        mlp = ji.theory.kernels(act, x.reshape(4, 5), depth=4, sigma_w2=1.5, sigma_b2=0.05)
        np.testing.assert_allclose(cnn.nngp, mlp.nngp, rtol=1e-5)
        np.testing.assert_allclose(cnn.ntk, mlp.ntk, rtol=1e-5)


def test_constant_images_with_circular_padding_are_the_mlp():
    """Every position of a constant image (CIRCULAR) is alike, so every pair of positions
    has the MLP's covariance: the CNN is the MLP of ``depth + 1`` Dense layers on the pixel
    vectors. tanh goes through the quadrature, 6×6 images through its batches of pairs."""
    v = np.random.default_rng(2).normal(size=(2, 3)).astype(np.float32)
    images = np.broadcast_to(v[:, None, None, :], (2, 6, 6, 3))
    cnn = ji.theory.conv_kernels("tanh", images, depth=2, sigma_w2=1.5, sigma_b2=0.05,
                                 padding="CIRCULAR")  # fmt: skip
    mlp = ji.theory.kernels("tanh", v, depth=3, sigma_w2=1.5, sigma_b2=0.05)
    np.testing.assert_allclose(cnn.nngp, mlp.nngp, rtol=1e-5)
    np.testing.assert_allclose(cnn.ntk, mlp.ntk, rtol=1e-5)


def test_integer_filters_overflow_and_the_caller_s_name():
    x = np.ones((1, 3, 3, 1), np.float32)
    a = ji.theory.conv_kernels("relu", x, depth=1, sigma_w2=2.0, sigma_b2=0.0,
                               filter_shape=[np.int64(3), 3])  # fmt: skip
    b = ji.theory.conv_kernels("relu", x, depth=1, sigma_w2=2.0, sigma_b2=0.0)
    np.testing.assert_array_equal(a.nngp, b.nngp)
    with pytest.warns(RuntimeWarning, match="conv_kernels: the kernels overflowed float32"):
        ji.theory.conv_kernels("relu", 1e3 * x, depth=30, sigma_w2=30.0, sigma_b2=0.0)
    with pytest.raises(ValueError, match="conv_kernels: sigma_w2 must be a finite number > 0"):
        ji.theory.conv_kernels("relu", x, depth=1, sigma_w2=-1.0, sigma_b2=0.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(padding="VALID"),
            ValueError,
            "padding=.VALID. is not valid; choose one of .SAME., .CIRCULAR.",
        ),
        (dict(filter_shape=(3,)), ValueError, "filter_shape must be a pair of ints >= 1"),
        (dict(depth=0), ValueError, "depth must be an int >= 1"),
        (dict(sigma_w2=0.0), ValueError, "sigma_w2 must be a finite number > 0"),
        (dict(x1=np.ones((2, 4, 4))), ValueError, r"must be images \(n, height, width, channels\)"),
        (dict(x2=np.ones((2, 5, 4, 1))), ValueError, "must be images of one shape"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = dict(x1=np.ones((2, 4, 4, 1)), x2=None, depth=2, sigma_w2=2.0, sigma_b2=0.0)
    args.update(kwargs)
    x1, x2 = args.pop("x1"), args.pop("x2")
    with pytest.raises(error, match=match):
        ji.theory.conv_kernels("relu", x1, x2, **args)
