"""Stored values of optional peers, for the tests that compare jaxinit against them where the
peers are not installed (CI has no torch).

``tests/references/torch_init.json``: what ``torch.nn.init`` computes. Rewrite it with
``python tests/references/make_torch_references.py`` and check that it still matches the
installed torch with ``--check`` (torch and numpy only; its docstring lists what is stored).

``tests/references/dks_transforms.json``: DeepMind dks's activation transforms (DKS, TAT),
written by ``python tests/references/make_dks_references.py`` (dks's base package, scipy,
autograd; ``--check`` compares).

``tests/references/nt_kernels.json``: neural-tangents' kernels of small CNNs, written by
``python tests/references/make_nt_references.py`` (neural-tangents on jax 0.5.3).
"""

import functools
import json
import pathlib

DIR = pathlib.Path(__file__).with_name("references")


@functools.cache
def torch_init() -> dict:
    """torch.nn.init's reference values (read once; do not modify the returned dict)."""
    return json.loads((DIR / "torch_init.json").read_text())


@functools.cache
def dks_transforms() -> dict:
    """dks's DKS/TAT parameters for vanilla chains (``references/dks_transforms.json``, written
    by ``references/make_dks_references.py``; read once; do not modify the returned dict)."""
    return json.loads((DIR / "dks_transforms.json").read_text())


@functools.cache
def nt_kernels() -> dict:
    """neural-tangents' NNGP and NTK of small CNNs with global average pooling
    (``references/nt_kernels.json``, written by ``references/make_nt_references.py``)."""
    return json.loads((DIR / "nt_kernels.json").read_text())


def assert_kernels_match(kernels, case: dict) -> None:
    """jaxinit's ``Kernels`` against a stored neural-tangents case, to NT_KERNEL_RTOL/ATOL."""
    import numpy as np
    from _tolerances import NT_KERNEL_ATOL, NT_KERNEL_RTOL

    for name in ("nngp", "ntk"):
        np.testing.assert_allclose(
            np.asarray(getattr(kernels, name)),
            case[name],
            rtol=NT_KERNEL_RTOL,
            atol=NT_KERNEL_ATOL,
            err_msg=name,
        )
