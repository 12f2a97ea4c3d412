r"""Training many MLPs at once: Flax NNX models stacked and vmapped, Optax state per model.

The classic experiment trains a 5-layer, 100-unit ReLU MLP on MNIST from
``normal(stddev=0.01)``, Glorot and He initializations (the first never learns,
He learns fastest), and a [2, 10, 5, 1] ReLU net with a sigmoid output on two
circles from zeros, ``normal(stddev=10)`` and He (zeros never breaks the
symmetry between hidden units)::

    from jaxinit.data import load_mnist
    from jaxinit.training import TrainGrid, restore_model, train

    grid = TrainGrid(inits=["normal(stddev=0.01)", "glorot_normal", "he_normal"], seeds=10,
                     steps=2000, eval_every=100)  # 4 × 100 ReLU, SGD 0.01, batches of 128
    res = train(grid, load_mnist("train"), load_mnist("test"), out="runs/mnist")
    res.sel(init="he_normal").loss                  # (seed, step)
    res.sel(init="he_normal").test_accuracy         # (seed, eval); the steps: res.eval_steps
    model = restore_model("runs/mnist", init="he_normal", seed=0)  # an nnx.Module, trained

Every model minimizes the mean loss of its mini-batch :math:`B_t` with its own
optimizer state, :math:`\theta_{t+1} = \theta_t + \mathrm{tx}(\nabla_\theta
\tfrac{1}{|B_t|}\sum_{i \in B_t} \ell(f_\theta(x_i), y_i))`, where :math:`\ell`
is the softmax cross-entropy, or the binary cross-entropy of one sigmoid unit.

How it runs. The models of one activation share a Flax graph; their parameters
(drawn eagerly, as the model built alone draws them: from 256 seeds up, an MLP grid
of jaxinit's initializers draws an init's seeds in vmapped blocks, op for op the same
draws) are stacked along a leading axis, and one
``jax.jit`` program scans a fixed number of steps, each a ``vmap`` over models
of a functional ``nnx.merge`` step, so a transform such as
``optax.clip_by_global_norm`` sees one model's gradients, never the stack's.
The stack is split over the devices (``shard_map`` over a ``models`` mesh
axis, padded to a multiple of their number), each device scanning its own
models with no communication. The program is compiled once per activation,
stack size and device count: initializer families and scales, and seeds, are
data (drawn outside the program). On a CPU, see :func:`train` for one device
per core.

Randomness. Model ``(init, seed)``'s layer ``l`` is drawn with
``layer_keys(seed_key(root_seed, seed), l)`` (:mod:`jaxinit._keys`): its hidden
layers are bitwise the network that :func:`jaxinit.sweep`, :mod:`jaxinit.lsuv`
and :mod:`jaxinit.isometry` see for that seed and init, they do not depend on
the rest of the grid, and every init sees the same keys for a seed (common
random numbers). The mini-batch order of epoch :math:`e` is a permutation drawn
from ``fold_in(k, e)``, with ``k`` the shared batch key or, with
``shuffle="per_seed"``, the seed's own.

Your own model. ``TrainGrid(model=make, inits=[...], seeds=n, rule=...)`` trains any Flax
NNX model whose state is all ``nnx.Param`` (``make(rngs) -> nnx.Module`` returning logits
``(batch, classes)``) from the model grid's network of each (init, seed)
(``ModelGrid(model=make, rule=rule).build(seed, init=init)``, the one :func:`jaxinit.sweep`
measures), with the same optimizers, evaluation, checkpoints and resume;
``restore_model(out, init=..., seed=..., model=make)`` gives a trained module back. On an
accelerator its models are vmapped as the MLP's; on XLA:CPU each (model, step) is a call of
its own, since a vmapped convolution becomes a grouped one and a convolution's gradient
inside a compiled loop runs about 7× slower there. ``record_stats_at`` records every output
the model's sweep captures, by path (``result.attrs["layers"]``); ``keep_params`` is the
MLP's.

μP for your model. With ``width=[...]`` the factory takes the width,
``make(rngs, *, width)``, and ``parametrization="mup"`` applies the table below to it as
microsoft/mup's ``set_base_shapes`` does for torch: a dim grows with width where the model at
``base_width`` and at twice it differ; a kernel of a Linear, LinearGeneral, Conv or
ConvTranspose is a hidden weight when its module's fan-in and fan-out grow, the output
weight when only its fan-in does, an input weight when only its fan-out does; every other
parameter growing along one axis (biases, norms, embeddings) is a vector, as the table's
biases (:meth:`TrainGrid.layer_rules` lists each parameter's role and factors). Scale the
attention logits by 1/d (:func:`jaxinit.models.mup_attention`), as TP5 prescribes; the zoo's
``Transformer(attention_scale="1/d")`` does. ``sweeps/coord_check.py --model transformer``
checks it.

Width, learning rate and μP. ``TrainGrid(width=[64, 256, 1024], learning_rate=[1e-3,
3e-3], optimizer="adam", parametrization="mup")`` adds the dims ``width`` (every
hidden layer's width; ``hidden`` gives the depth) and ``learning_rate``. Each width
is a shape of its own, so there is one compiled program per (activation, width);
rates are data in each model's optimizer state (``optax.inject_hyperparams``).
``parametrization="mup"`` applies Yang et al. (2022), Table 3, with base shapes
(μP equals the standard parametrization at ``base_width``, the smallest width by
default), each fan entering as its ratio to the base model's:

=================  ==========================  ==========================  ==================
                   input weights, all biases   output weights              hidden weights
=================  ==========================  ==========================  ==================
init variance      1/fan_in                    1/fan_in² (1/fan_in)        1/fan_in
SGD learning rate  fan_out (1)                 1/fan_in (1)                1
Adam learning rate 1                           1/fan_in (1)                1/fan_in (1)
=================  ==========================  ==========================  ==================

(the standard parametrization in parentheses). The variances scale the grid's own
initializer (He's 2/fan_in keeps its gain); the rates are factors on the base rate,
applied per parameter after the optimizer. ``grid.layer_rules(d_in, d_out,
width=w)`` lists each parameter's factors; ``output_init="zeros"`` is TP5's other
output init. ``record_stats_at`` also records ``post_abs_mean`` (mean |h| per
hidden layer) and ``logit_abs_mean``: :func:`coord_slopes` turns them into the coord
check's slopes, and :func:`best_learning_rates` reads learning-rate transfer off a
result (``sweeps/coord_check.py``, ``sweeps/lr_transfer.py``).

Warning: an epoch is ``n // batch_size`` whole mini-batches; the last
``n mod batch_size`` examples of each permutation are left out (torch's
``DataLoader`` keeps a smaller last batch by default).

References:
  - Glorot & Bengio (2010), Understanding the difficulty of training deep
    feedforward neural networks. http://proceedings.mlr.press/v9/glorot10a.html
  - He et al. (2015), Delving Deep into Rectifiers. https://arxiv.org/abs/1502.01852
  - Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao (2022), Tensor
    Programs V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer.
    https://arxiv.org/abs/2203.03466
"""

# the public API, and the constants other code reads as jaxinit.training.X (the redundant
# "as" marks a re-export outside __all__)
from jaxinit._keys import STREAM_BATCHES as STREAM_BATCHES
from jaxinit._progress import jsonl_writer
from jaxinit.training._checkpoint import restore_model
from jaxinit.training._coord import FINAL_LOSS as FINAL_LOSS
from jaxinit.training._coord import (
    best_learning_rates,
    coord_sizes,
    coord_slopes,
    final_loss,
    final_losses,
)
from jaxinit.training._grid import MLP, TrainGrid, make_optimizer
from jaxinit.training._grid import OUTPUTS as OUTPUTS
from jaxinit.training._grid import SHARED_SEED as SHARED_SEED
from jaxinit.training._grid import SHUFFLES as SHUFFLES
from jaxinit.training._mup import EXPONENTS as EXPONENTS
from jaxinit.training._mup import KINDS as KINDS
from jaxinit.training._mup import PARAMETRIZATIONS as PARAMETRIZATIONS
from jaxinit.training._mup import LayerRule
from jaxinit.training._program import MODELS as MODELS
from jaxinit.training._program import STAT_FIELDS as STAT_FIELDS
from jaxinit.training._run import EVAL_BATCH as EVAL_BATCH
from jaxinit.training._run import SCAN_STEPS as SCAN_STEPS
from jaxinit.training._run import TrainResult, train

__all__ = [
    "MLP",
    "LayerRule",
    "TrainGrid",
    "TrainResult",
    "best_learning_rates",
    "coord_sizes",
    "coord_slopes",
    "final_loss",
    "final_losses",
    "jsonl_writer",
    "make_optimizer",
    "restore_model",
    "train",
]
