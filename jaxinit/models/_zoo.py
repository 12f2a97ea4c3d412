r"""The zoo: the networks initialization is studied on, as plain Flax NNX modules.

Each takes ``rngs`` (a :class:`flax.nnx.Rngs`, first) and hyperparameters by keyword, so
``functools.partial(CNN, depth=50, channels=64)`` is a factory for
:class:`jaxinit.ModelGrid`. None of them calls ``sow``: the sweep captures their
layers itself.

- :class:`MLP`: ``depth`` ``Linear`` layers of ``width``, each followed by the
  activation; the output is the last hidden layer, as in :func:`jaxinit.sweep`'s
  built-in MLP (which stays the fast path for it).
- :class:`CNN`: ``depth`` convolutions of ``channels`` ("SAME" padding, or
  ``padding="CIRCULAR"``), the activation after each, global average pooling,
  optional linear head. With ``delta_orthogonal`` and circular padding this is the
  network of Xiao et al. (2018), *Dynamical Isometry and a Mean Field Theory of
  CNNs* (zero padding loses variance at the border, layer after layer).
- :class:`ResNet`: ``x_{l+1} = x_l + α·F(x_l)`` with ``F = fc_out ∘ φ ∘ fc_in``
  (``norm="pre"``: ``F(LN(x))``; ``"post"``: ``LN(x + α·F(x))``; ``None``: no norm).
  ``alpha = 1/√depth`` keeps the variance ``O(1)`` in depth (Hayou et al. 2021,
  *Stable ResNet*); ``zero_branch=True`` initializes every ``fc_out`` to zero (the
  branch is the identity at init: SkipInit, De & Smith 2020; Fixup, Zhang et al.
  2019, also rescales ``fc_in``), kept by the rule ``RESIDUAL_KEEP_ZERO``.
- :class:`Transformer`: an encoder of ``depth`` pre-LN blocks (multi-head
  self-attention and a two-layer MLP), a linear embedding of the tokens and a
  final LayerNorm.
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
from flax import nnx

from jaxinit import activations as _activations
from jaxinit._checks import check_choice, check_int

__all__ = ["CNN", "MLP", "RESIDUAL_KEEP_ZERO", "ResNet", "Transformer"]

# A rule's exclude regex that keeps ResNet(zero_branch=True)'s zero last layers.
RESIDUAL_KEEP_ZERO = r"fc_out$"


def _act(activation: Any):
    return _activations.get(activation).fn


class MLP(nnx.Module):
    """``depth`` layers ``h = φ(W h + b)`` of ``width`` units on ``d_in`` inputs."""

    def __init__(self, rngs: nnx.Rngs, *, d_in: int, width: int, depth: int, activation="relu"):
        check_int("MLP: depth", depth, low=1)
        self.act = _act(activation)
        sizes = [
            check_int("MLP: d_in", d_in, low=1),
            *[check_int("MLP: width", width, low=1)] * depth,
        ]
        self.layers = nnx.List([nnx.Linear(m, n, rngs=rngs) for m, n in itertools.pairwise(sizes)])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = self.act(layer(x))
        return x


class CNN(nnx.Module):
    """``depth`` convolutions ``(kernel_size,)*2`` of ``channels``, global pooling, a head.

    Inputs ``(batch, height, width, in_channels)``; the output is the head's
    ``(batch, classes)``, or the pooled ``(batch, channels)`` when ``classes`` is None.
    ``padding``: any of ``nnx.Conv``'s (``"SAME"``, ``"CIRCULAR"``, ...).
    """

    def __init__(
        self,
        rngs: nnx.Rngs,
        *,
        in_channels: int = 3,
        channels: int = 32,
        depth: int = 4,
        kernel_size: int = 3,
        classes: int | None = 10,
        activation="relu",
        padding: str = "SAME",
    ):
        check_int("CNN: depth", depth, low=1)
        check_int("CNN: channels", channels, low=1)
        k = check_int("CNN: kernel_size", kernel_size, low=1)
        self.activation = _activations.get(activation)  # what theory.predict reads back
        self.act = self.activation.fn
        ins = [check_int("CNN: in_channels", in_channels, low=1), *[channels] * (depth - 1)]
        self.convs = nnx.List(
            [nnx.Conv(c, channels, (k, k), padding=padding, rngs=rngs) for c in ins]
        )
        self.head = None if classes is None else nnx.Linear(channels, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for conv in self.convs:
            x = self.act(conv(x))
        x = x.mean(axis=(1, 2))
        return x if self.head is None else self.head(x)


class ResidualBlock(nnx.Module):
    """``x + α·fc_out(φ(fc_in(n(x))))``; with ``norm="post"``, ``LN(x + α·F(x))``."""

    def __init__(self, width: int, *, alpha: float, norm, activation, zero_branch, rngs):
        # activation and zero_branch are what theory reads back (theory.predict of a ModelGrid)
        self.alpha, self.norm_kind, self.zero_branch = alpha, norm, zero_branch
        self.activation = _activations.get(activation)
        self.act = self.activation.fn
        self.norm = None if norm is None else nnx.LayerNorm(width, rngs=rngs)
        self.fc_in = nnx.Linear(width, width, rngs=rngs)
        out_init = nnx.initializers.zeros_init() if zero_branch else nnx.initializers.lecun_normal()
        self.fc_out = nnx.Linear(width, width, kernel_init=out_init, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        u = self.norm(x) if self.norm_kind == "pre" else x
        y = x + self.alpha * self.fc_out(self.act(self.fc_in(u)))
        return self.norm(y) if self.norm_kind == "post" else y


class ResNet(nnx.Module):
    """A residual MLP: an input layer to ``width``, then ``depth`` :class:`ResidualBlock`\\ s.

    ``alpha``: the residual branch's scale (a number, or ``"1/sqrt(depth)"``);
    ``norm``: ``"pre"``, ``"post"`` or None; ``zero_branch``: every block's
    ``fc_out`` starts at zero (keep it with ``rule=kernels(exclude=RESIDUAL_KEEP_ZERO)``);
    ``classes``: a linear ``head`` from the stream to that many logits (None: the stream
    ``(batch, width)`` is the output), to train it as a classifier.
    """

    def __init__(
        self,
        rngs: nnx.Rngs,
        *,
        d_in: int,
        width: int = 64,
        depth: int = 8,
        alpha: float | str = 1.0,
        norm: str | None = "pre",
        activation="relu",
        zero_branch: bool = False,
        classes: int | None = None,
    ):
        check_int("ResNet: depth", depth, low=1)
        if norm is not None:
            check_choice("ResNet: norm", norm, ("pre", "post", None))
        if alpha == "1/sqrt(depth)":
            alpha = depth**-0.5
        elif isinstance(alpha, str) or not isinstance(alpha, (int, float)):
            raise ValueError(f"ResNet: alpha must be a number or '1/sqrt(depth)'; got {alpha!r}")
        self.inp = nnx.Linear(check_int("ResNet: d_in", d_in, low=1), width, rngs=rngs)
        self.blocks = nnx.List(
            [
                ResidualBlock(
                    width,
                    alpha=float(alpha),
                    norm=norm,
                    activation=activation,
                    zero_branch=zero_branch,
                    rngs=rngs,
                )
                for _ in range(depth)
            ]
        )
        check_int("ResNet: classes", classes, low=1, none=True)
        self.head = None if classes is None else nnx.Linear(width, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.inp(x)
        for block in self.blocks:
            x = block(x)
        return x if self.head is None else self.head(x)


ATTENTION_SCALES = ("1/sqrt(d)", "1/d")


def mup_attention(query: jax.Array, key: jax.Array, value: jax.Array, *args, **kwargs):
    r"""``nnx.dot_product_attention`` with logits :math:`q \cdot k / d` instead of
    :math:`q \cdot k / \sqrt{d}` (:math:`d` the head's dimension): μP's attention (Yang et
    al. 2022, *Tensor Programs V*, §4: with training, ``q`` and ``k`` become correlated and
    their dot product grows as :math:`d`, not :math:`\sqrt{d}`). Pass it as
    ``nnx.MultiHeadAttention(..., attention_fn=mup_attention)``."""
    depth = query.shape[-1]
    query = query / jax.numpy.sqrt(jax.numpy.asarray(depth, query.dtype))
    return nnx.dot_product_attention(query, key, value, *args, **kwargs)


class EncoderBlock(nnx.Module):
    """A pre-LN Transformer encoder block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(
        self,
        d_model: int,
        heads: int,
        *,
        mlp_ratio: int,
        activation,
        rngs,
        attention_scale: str = "1/sqrt(d)",
    ):
        self.ln1 = nnx.LayerNorm(d_model, rngs=rngs)
        fn = mup_attention if attention_scale == "1/d" else nnx.dot_product_attention
        self.attn = nnx.MultiHeadAttention(heads, d_model, decode=False, attention_fn=fn, rngs=rngs)
        self.ln2 = nnx.LayerNorm(d_model, rngs=rngs)
        self.fc_in = nnx.Linear(d_model, mlp_ratio * d_model, rngs=rngs)
        self.fc_out = nnx.Linear(mlp_ratio * d_model, d_model, rngs=rngs)
        self.act = _act(activation)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x + self.attn(self.ln1(x))
        return x + self.fc_out(self.act(self.fc_in(self.ln2(x))))


class Transformer(nnx.Module):
    """A Transformer encoder on ``(batch, tokens, d_in)``: embedding, blocks, final LayerNorm;
    ``(batch, tokens, d_model)``, or with ``classes`` the logits ``(batch, classes)`` of a
    linear head on the mean over tokens (MNIST's rows as 28 tokens of 28 pixels).

    ``attention_scale="1/d"`` scales the attention logits by the head's dimension instead
    of its square root (:func:`mup_attention`), as μP prescribes."""

    def __init__(
        self,
        rngs: nnx.Rngs,
        *,
        d_in: int,
        d_model: int = 64,
        heads: int = 4,
        depth: int = 4,
        mlp_ratio: int = 2,
        activation="gelu",
        classes: int | None = None,
        attention_scale: str = "1/sqrt(d)",
    ):
        check_int("Transformer: depth", depth, low=1)
        check_choice("Transformer: attention_scale", attention_scale, ATTENTION_SCALES)
        if d_model % check_int("Transformer: heads", heads, low=1):
            raise ValueError(f"Transformer: d_model={d_model} is not a multiple of heads={heads}")
        self.embed = nnx.Linear(check_int("Transformer: d_in", d_in, low=1), d_model, rngs=rngs)
        self.blocks = nnx.List(
            [
                EncoderBlock(
                    d_model,
                    heads,
                    mlp_ratio=mlp_ratio,
                    activation=activation,
                    rngs=rngs,
                    attention_scale=attention_scale,
                )
                for _ in range(depth)
            ]
        )
        self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)
        check_int("Transformer: classes", classes, low=1, none=True)
        self.head = None if classes is None else nnx.Linear(d_model, classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.embed(x)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        return x if self.head is None else self.head(x.mean(axis=1))
