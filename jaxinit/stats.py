"""Deprecated: moved into :mod:`jaxinit.sweeping`; importing from here warns, and this module goes in
the next release (CHANGELOG.md)."""

from jaxinit._deprecated import moved_module

__getattr__ = moved_module("jaxinit.stats", "jaxinit.sweeping._stats", "jaxinit.sweeping")
