"""Runnable experiments: ``python -m sweeps.NAME --out DIR [--quick]`` from the repository root."""
