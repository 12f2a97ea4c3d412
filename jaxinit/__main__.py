"""``python -m jaxinit``: every initializer, its formula and its variance at a given fan.

python -m jaxinit --fan-in 784 --fan-out 256 --convention torch
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys

from jaxinit import initializers


def table(*, fan_in: int, fan_out: int, convention: str = "jax") -> str:
    """The initializer table as text: name, aliases, formula, mean, variance, std, σ_w²."""
    rows = [("initializer", "aliases", "formula", "mean", "variance", "std", "fan_in·Var")]
    for name in initializers.names():
        builder = initializers.registry.builder(name)
        takes_convention = "convention" in inspect.signature(builder).parameters
        kwargs = {"convention": convention} if takes_convention else {}
        init = builder(**kwargs)
        shape = (fan_out, fan_in) if convention == "torch" and kwargs else (fan_in, fan_out)
        mean, var = init.moments(shape)
        rows.append((
            init.spec,
            ", ".join(initializers.registry.aliases(name)),
            initializers.formula(name),
            f"{mean:.4g}",
            f"{var:.4g}",
            f"{math.sqrt(var):.4g}",
            f"{fan_in * var:.4g}",
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jaxinit", description=__doc__.splitlines()[0])
    parser.add_argument("--fan-in", type=int, default=784, help="fan-in of the layer (default 784)")
    parser.add_argument(
        "--fan-out", type=int, default=256, help="fan-out of the layer (default 256)"
    )
    parser.add_argument("--convention", choices=initializers.CONVENTIONS, default="jax")
    args = parser.parse_args(argv)
    for flag, value in (("--fan-in", args.fan_in), ("--fan-out", args.fan_out)):
        if value < 1:
            parser.error(f"{flag} must be a positive integer; got {value}")
    print(f"jaxinit initializers at fan_in={args.fan_in}, fan_out={args.fan_out} "
          f"({args.convention} convention)\n")  # fmt: skip
    print(table(fan_in=args.fan_in, fan_out=args.fan_out, convention=args.convention))
    return 0


if __name__ == "__main__":
    sys.exit(main())
