"""Deprecated: moved into :mod:`jaxinit`; importing from here warns, and this module goes in
the next release (CHANGELOG.md)."""

from jaxinit._deprecated import moved_module

__getattr__ = moved_module("jaxinit.results", "jaxinit._results", "jaxinit")
