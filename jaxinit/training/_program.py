r"""The compiled programs: ``jit`` of a ``shard_map`` over the devices of a ``vmap`` over models.

:func:`train_chunk` scans ``prog.length`` (``min(SCAN_STEPS, steps)``) optimizer
steps of every stacked model, :math:`\theta_{t+1} = \theta_t + \mathrm{tx}(\nabla_\theta
\tfrac{1}{|B_t|}\sum_{i \in B_t} \ell(f_\theta(x_i), y_i))`; :func:`evaluate`
and :func:`batch_stats` measure them. Each program is compiled once per
:class:`Program` (activation, shapes, output, optimizer spec), mesh and
input shapes: initializers and seeds are data.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from jaxinit import activations as _activations
from jaxinit.sweeping._stats import BACKWARD_FIELDS, FORWARD_FIELDS, layer_stats
from jaxinit.training._grid import Tx

# the internal API of jaxinit.training (its _run imports these; users do not)
__all__ = [
    "MODELS",
    "STAT_DIMS",
    "STAT_FIELDS",
    "Program",
    "batch_stats",
    "evaluate",
    "init_opt",
    "model_batch_stats",
    "model_layers",
    "train_chunk",
    "train_one",
]

MODELS = "models"  # name of the mesh axis that the stacked models are split over
# the sweep's per-layer fields (jaxinit.sweeping._stats) less the histogram's, plus the gradients',
# plus the coord check's sizes (mean |h|, mup's convention) of every hidden layer's
# activations and of the output logits
STAT_FIELDS = (
    *(f for f in FORWARD_FIELDS if f not in ("hist_below", "hist_above")),
    *BACKWARD_FIELDS,
    "post_abs_mean",
    "logit_abs_mean",
)
# the dims after the model's of each statistic that is not per hidden layer
STAT_DIMS = {"logit_abs_mean": ("stat_step",)}


class Program(NamedTuple):
    """What a compiled program is specialized to; one program per distinct value.
    Evaluation and statistics get a copy without the fields they do not use."""

    graphdef: Any  # nnx.GraphDef of the group's MLP (activation and shapes)
    activation: _activations.Activation  # the one in graphdef, for the statistics
    output: str  # "softmax" or "sigmoid"
    per_model: bool = False  # each model has its own mini-batch rows (shuffle="per_seed")
    tx: Tx | None = None
    length: int = 0  # steps per call of the training program
    # a model grid's on XLA:CPU: train one model and one step per call (train_one), and
    # evaluate one model at a time (lax.map). There a vmapped convolution becomes a grouped
    # one, and a convolution's gradient inside a loop (scan or lax.map) runs about 7x slower
    # than outside one (a CNN's step: 98 ms against 15 ms, measured with jax 0.10.2)
    map_models: bool = False


def _over_models(prog: Program, fn: Callable, in_axes: tuple, *args):
    """``vmap(fn, in_axes)(*args)``, or with ``prog.map_models`` the same one model at a
    time (``lax.map``; arguments with axis None are shared)."""
    if not prog.map_models:
        return jax.vmap(fn, in_axes=in_axes)(*args)
    mapped = [a for a, ax in zip(args, in_axes, strict=True) if ax is not None]

    def one(xs):
        it = iter(xs)
        return fn(*(next(it) if ax is not None else a for a, ax in zip(args, in_axes, strict=True)))

    return jax.lax.map(one, mapped)


def _per_example(output: str, logits: jax.Array, y: jax.Array):
    """Per-example loss and correctness."""
    if output == "sigmoid":
        z = logits[:, 0]
        return optax.sigmoid_binary_cross_entropy(z, y.astype(z.dtype)), (z > 0) == (y == 1)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    return loss, jnp.argmax(logits, -1) == y


def _batch(prog: Program, x, y, rows):
    """Mini-batch inputs and labels, and their vmap axis (None: shared by the models)."""
    if rows is None:
        return x, y, None
    return x[rows], y[rows], 0 if prog.per_model else None


def _on(mesh: Mesh, body: Callable, in_specs: tuple, out_specs: Any) -> Callable:
    """``body`` run on every device of ``mesh`` with its own slice of the model axis
    (``P(MODELS)``; ``P()``: the whole array, replicated). A model's program is the same
    on any number of devices; only the number of models a device stacks changes."""
    # check_vma=False: every value is device-local (nothing is summed across devices)
    return jax.shard_map(body, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def _rows_spec(prog: Program, rows: Any, model_axis: int) -> P:
    return P(*(None,) * model_axis, MODELS) if prog.per_model and rows is not None else P()


def _update(prog: Program, p, o, xb, yb):
    """One optimizer step of one model on one mini-batch: new parameters, state and loss."""
    loss_fn = lambda p: _per_example(prog.output, nnx.merge(prog.graphdef, p)(xb), yb)[0].mean()  # noqa: E731
    loss, grads = jax.value_and_grad(loss_fn)(p)
    updates, o = prog.tx.tx.update(grads, o, p)
    return optax.apply_updates(p, updates), o, loss


@functools.partial(jax.jit, static_argnums=(0,))
def train_one(prog: Program, params, opt_state, x, y, rows):
    """One step of one model (not stacked) on its mini-batch ``rows`` ``(batch,)``, or on the
    full batch for None, with no loop around it (see ``Program.map_models``): its new
    parameters, optimizer state and loss."""
    xb, yb = (x, y) if rows is None else (x[rows], y[rows])
    return _update(prog, params, opt_state, xb, yb)


@functools.partial(jax.jit, static_argnums=(0, 1))
def train_chunk(prog: Program, mesh: Mesh, params, opt_state, x, y, rows, n_active):
    """``prog.length`` steps, of which the first ``n_active`` update (the rest are no-ops).

    ``rows``: ``(steps, batch)`` or ``(steps, models, batch)`` indices, or None
    for the full batch. Returns the new state and the losses ``(models, steps)``.
    The models are split over ``mesh``'s devices; ``x`` and ``y`` are on all of them.
    """

    update = functools.partial(_update, prog)

    def body(params, opt_state, x, y, rows, n_active):
        n_models = jax.tree.leaves(params)[0].shape[0]  # on this device

        def step(carry, inp):  # a real branch: i and n_active are the same for every model
            i, r = inp

            def run(c):  # a shared mini-batch is gathered once, outside the vmap
                xb, yb, ax = _batch(prog, x, y, r)
                p, o, loss = jax.vmap(update, in_axes=(0, 0, ax, ax))(*c, xb, yb)
                return (p, o), loss

            skip = lambda c: (c, jnp.full((n_models,), jnp.nan, jnp.float32))  # noqa: E731
            return jax.lax.cond(i < n_active, run, skip, carry)

        xs = (jnp.arange(prog.length), rows)
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), xs)
        return params, opt_state, losses.T

    specs = (P(MODELS), P(MODELS), P(), P(), _rows_spec(prog, rows, 1), P())
    return _on(mesh, body, specs, P(MODELS))(params, opt_state, x, y, rows, n_active)


@functools.partial(jax.jit, static_argnums=(0, 1))
def init_opt(prog: Program, mesh: Mesh, params, lrs):
    """Every model's optimizer state; ``lrs`` ``(models,)``: each one's injected learning rate."""
    if lrs is None:
        return _on(mesh, jax.vmap(prog.tx.tx.init), (P(MODELS),), P(MODELS))(params)
    init = jax.vmap(lambda p, lr: prog.tx.with_lr(lr).init(p))
    return _on(mesh, init, (P(MODELS), P(MODELS)), P(MODELS))(params, lrs)


@functools.partial(jax.jit, static_argnums=(0, 1))
def evaluate(prog: Program, mesh: Mesh, params, x, y, weight):
    """Mean loss and accuracy ``(models,)`` over ``x`` ``(chunks, rows, d)`` (rows: ``_run.eval_rows``); padding has weight 0."""

    def one(p):
        model = nnx.merge(prog.graphdef, p)

        def chunk(args):
            xb, yb, wb = args
            loss, correct = _per_example(prog.output, model(xb), yb)
            return (loss * wb).sum(), (correct * wb).sum()

        losses, correct = jax.lax.map(chunk, (x, y, weight))
        return losses.sum() / weight.sum(), correct.sum() / weight.sum()

    specs = (P(MODELS), P(), P(), P())
    body = lambda p, *data: _over_models(prog, one, (0,), p)  # noqa: E731
    return _on(mesh, body, specs, P(MODELS))(params, x, y, weight)


@functools.partial(jax.jit, static_argnums=(0, 1))
def batch_stats(prog: Program, mesh: Mesh, params, x, y, rows):
    """Per-layer statistics ``(models, layer)`` on one mini-batch, as a sweep's (:mod:`jaxinit.sweeping._stats`)."""

    def one(p, xb, yb):
        model = nnx.merge(prog.graphdef, p)

        def loss_fn(probes):
            logits, zs, hs = model.trace(xb, probes)
            return _per_example(prog.output, logits, yb)[0].mean(), (zs, hs, logits)

        probes = [jnp.zeros((xb.shape[0], layer.out_features)) for layer in model.layers]
        grads, (zs, hs, logits) = jax.grad(loss_fn, has_aux=True)(probes)
        out = []
        for l, (z, h, g) in enumerate(zip(zs, hs, grads, strict=True)):
            s = layer_stats(z, h, saturation=prog.activation.saturation, hist=None)
            s = s._replace(
                grad_var=g.var(),
                weight_grad_norm=jnp.linalg.norm((xb if l == 0 else hs[l - 1]).T @ g),
            )
            out.append({**s._asdict(), "post_abs_mean": jnp.abs(h).mean()})
        per_layer = {k: jnp.stack([s[k] for s in out]) for k in STAT_FIELDS if k not in STAT_DIMS}
        return {**per_layer, "logit_abs_mean": jnp.abs(logits).mean()}

    def body(params, x, y, rows):
        xb, yb, ax = _batch(prog, x, y, rows)
        return jax.vmap(one, in_axes=(0, ax, ax))(params, xb, yb)

    specs = (P(MODELS), P(), P(), _rows_spec(prog, rows, 0))
    return _on(mesh, body, specs, P(MODELS))(params, x, y, rows)


def model_layers(graphdef: Any, params: Any, x: jax.ShapeDtypeStruct) -> list[tuple[str, str]]:
    """``(label, module type)`` of every output a model grid's statistics capture, in call
    order (:mod:`jaxinit.sweeping._capture`), traced abstractly on inputs shaped ``x``."""
    from jaxinit.sweeping._capture import tap

    found = []

    def run(p, x):
        model = nnx.merge(graphdef, p)
        with tap(model) as outputs:
            y = model(x)
        found.extend((o.name, o.type) for o in outputs)
        return y

    jax.eval_shape(run, params, x)
    return found


@functools.partial(jax.jit, static_argnums=(0, 1))
def model_batch_stats(prog: Program, mesh: Mesh, params, x, y, rows):
    """:func:`batch_stats` of a model grid's models: every output the sweep of the model
    captures (:mod:`jaxinit.sweeping._capture`), in call order, on one mini-batch. Each is
    reduced as the model sweep does (``(batch, features)``, moments in both ``pre_*`` and
    ``post_*``); ``grad_var`` is the variance of the training loss's gradient with respect
    to the output, ``weight_grad_norm`` the norm of its module's kernel gradient (NaN for a
    module without one), ``post_abs_mean`` its mean |h| (mup's coord check)."""
    from jaxinit.models._kernels import KERNEL_TYPES, path_str
    from jaxinit.sweeping._capture import ROOT, tap
    from jaxinit.sweeping._model_pass import _layer_stats, _matrix

    def run(p, probes, xb):
        model = nnx.merge(prog.graphdef, p)
        with tap(model, probes=probes) as outputs:
            logits = model(xb)
        kernels = {
            path_str(q) or ROOT: path_str((*q, "kernel"))
            for q, m in nnx.iter_modules(model)
            if isinstance(m, KERNEL_TYPES)
        }
        names = [o.name for o in outputs]
        return logits, [o.value for o in outputs], names, kernels

    def one(p, xb, yb):
        shapes = {}

        def shaped(p, xb):
            logits, outs, names, _ = run(p, None, xb)
            shapes.update({n: o.shape for n, o in zip(names, outs, strict=True)})
            return logits

        jax.eval_shape(shaped, p, xb)
        info = {}

        def loss_fn(p, probes):
            logits, outs, names, kernels = run(p, probes, xb)
            info.update(names=names, kernels=kernels)
            return _per_example(prog.output, logits, yb)[0].mean(), (outs, logits)

        probes = {n: jnp.zeros(s, jnp.float32) for n, s in shapes.items()}
        (_, (outs, logits)), (gw, gp) = jax.value_and_grad(loss_fn, (0, 1), has_aux=True)(p, probes)
        flat = {"/".join(map(str, q)): v.get_value() for q, v in nnx.to_flat_state(gw)}
        nan = jnp.float32(jnp.nan)
        norms = [
            jnp.linalg.norm(_matrix(flat[info["kernels"][n.split("#")[0]]]))
            if n.split("#")[0] in info["kernels"]
            else nan
            for n in info["names"]
        ]
        s = _layer_stats(outs, None, False)._replace(
            grad_var=jnp.stack([_matrix(gp[n]).var() for n in info["names"]]),
            weight_grad_norm=jnp.stack(norms),
        )
        per_layer = {k: getattr(s, k) for k in STAT_FIELDS if k not in STAT_DIMS and hasattr(s, k)}
        per_layer["post_abs_mean"] = jnp.stack([jnp.abs(_matrix(o)).mean() for o in outs])
        return {**per_layer, "logit_abs_mean": jnp.abs(logits).mean()}

    def body(params, x, y, rows):
        xb, yb, ax = _batch(prog, x, y, rows)
        return _over_models(prog, one, (0, ax, ax), params, xb, yb)

    specs = (P(MODELS), P(), P(), _rows_spec(prog, rows, 0))
    return _on(mesh, body, specs, P(MODELS))(params, x, y, rows)
