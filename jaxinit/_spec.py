"""Spec strings: one safe parser and printer, and the registry built on them.

A *spec* names a registered builder and its keyword hyperparameters::

    he_normal
    normal(stddev=0.01)
    variance_scaling(scale=2.0, mode='fan_avg', distribution='uniform')
    leaky_relu(negative_slope=0.2)

Specs are parsed with :mod:`ast` and every value with :func:`ast.literal_eval`,
so a spec can hold numbers, strings, booleans, ``None`` and tuples of those,
and nothing is ever evaluated. Positional arguments are refused: every
hyperparameter in jaxinit is keyword-only.

Every object a registry builds carries its *canonical* spec: the primary name
(aliases resolved), then the hyperparameters in signature order, without those
left at their default (except the ones a builder always shows, such as
``normal``'s ``stddev``). The canonical spec round-trips: ``get(obj.spec) ==
obj``. Sweeps, result files and plots use it as the label.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import inspect
import pickle
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

import jax
import numpy as np

from jaxinit._checks import check_bool, closest_hint

T = TypeVar("T")

__all__ = [
    "Registry",
    "check_bools",
    "format_spec",
    "parse_spec",
    "rebuildable_spec",
    "resolve_specs",
]


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Splits ``"name(k=v, ...)"`` into ``("name", {"k": v, ...})``.

    Raises:
      ValueError: if ``spec`` is not a bare name or a call with literal
        keyword arguments.
    """
    if not isinstance(spec, str):
        raise TypeError(f"a spec is a string; got {type(spec).__name__}: {spec!r}")
    text = spec.strip()
    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError as err:
        raise ValueError(f"cannot parse spec {spec!r}: {err.msg}") from None
    if isinstance(node, ast.Name):
        return node.id, {}
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(
            f"cannot parse spec {spec!r}: expected a name such as 'he_normal' or "
            "a call with keyword arguments such as 'normal(stddev=0.01)'"
        )
    name = node.func.id
    if node.args:
        raise ValueError(
            f"spec {spec!r} has positional arguments; hyperparameters are "
            f"keyword-only: write '{name}(key=value, ...)'"
        )
    kwargs: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is None:
            raise ValueError(f"spec {spec!r}: '**' is not allowed")
        if kw.arg in kwargs:
            raise ValueError(f"spec {spec!r}: {kw.arg!r} is given twice; give it once")
        try:
            value = ast.literal_eval(kw.value)
        except ValueError:
            raise ValueError(
                f"spec {spec!r}: the value of {kw.arg!r} must be a literal "
                f"(number, string, bool, None or tuple); got {ast.unparse(kw.value)!r}"
            ) from None
        kwargs[kw.arg] = list_to_tuple(value)
    return name, kwargs


def resolve_specs(
    owner: str, name: str, values: tuple, get: Callable[[Any], Any]
) -> tuple[tuple, dict[str, str]]:
    """The objects of a list of specs, distinct, and ``{label as given: canonical spec}``.

    ``get`` resolves one spec, object or plain function (``initializers.get``,
    ``activations.get``); its ``spec`` labels the result, and no two may be the same
    configuration. ``owner`` and ``name`` head the error messages.

    Example:
      >>> from jaxinit import initializers
      >>> objs, aliases = resolve_specs("Grid", "inits", ("xavier_normal",), initializers.get)
      >>> objs[0].spec, aliases
      ('glorot_normal', {'xavier_normal': 'glorot_normal'})
    """
    objs = tuple(get(v) for v in values)  # a plain function comes back as custom(fn)
    labels = [o.spec for o in objs]
    repeated = sorted({x for x in labels if labels.count(x) > 1})
    if repeated:
        raise ValueError(f"{owner}: {name} lists the same configuration twice: {repeated}")
    aliases = {
        v: o.spec for v, o in zip(values, objs, strict=True) if isinstance(v, str) and v != o.spec
    }
    return objs, aliases


def _takes_bool(p: inspect.Parameter) -> bool:
    """Whether a parameter is a flag: annotated ``bool`` (the type or, under postponed
    annotations, the string), or unannotated with a True/False default."""
    if p.annotation is bool or p.annotation == "bool":
        return True
    return p.annotation is p.empty and isinstance(p.default, bool)


def check_bools(owner: str, fn: Callable, values: dict[str, Any]) -> None:
    """A TypeError for a value of a flag of ``fn`` (see :func:`_takes_bool`) that is not
    True or False: in a spec, ``nesterov='no'`` is a non-empty string, which Python would
    take as True.

    Example:
      >>> check_bools("sgd", lambda *, nesterov=False: 0, {"nesterov": True})
    """
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a builtin without a signature: nothing to go by
        return
    for name, value in values.items():
        if name in params and _takes_bool(params[name]):
            check_bool(f"{owner}: {name}", value)


def list_to_tuple(value: Any) -> Any:
    """Lists become tuples, recursively, so that hyperparameters stay hashable."""
    if isinstance(value, (list, tuple)):
        return tuple(list_to_tuple(v) for v in value)
    return value


def format_spec(name: str, kwargs: Iterable[tuple[str, Any]] = ()) -> str:
    """The inverse of :func:`parse_spec`: ``name`` or ``name(k=v, ...)``."""
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs)
    return f"{name}({args})" if args else name


def _same(value: Any, default: Any) -> bool:
    if isinstance(value, bool) != isinstance(default, bool):
        return False  # True == 1, but `flag=True` is not `count=1`
    try:
        return bool(value == default)
    except (TypeError, ValueError):  # arrays and exotic values are never "default"
        return False


def _normalize(value: Any, default: Any) -> Any:
    """Brings ``1`` to ``1.0`` where the default is a float, numpy scalars to Python
    numbers and lists to tuples, so that the spec prints and parses back."""
    value = list_to_tuple(value)
    if isinstance(value, np.generic):
        value = value.item()
    elif hasattr(value, "dtype") and hasattr(value, "shape") and value.shape == ():
        # a 0-d array (jnp.array(1.0)), as jax's builders take: its number, so that the spec
        # prints it; a traced one has no number to print
        try:
            value = np.asarray(value).item()
        except Exception as err:
            raise TypeError(
                f"a hyperparameter must be a concrete number, not a traced value "
                f"({type(value).__name__}); build the initializer outside jit"
            ) from err
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# __name__s that say nothing: jax's builders return functions named ``init``
GENERIC_NAMES = frozenset(
    {"init", "initializer", "<lambda>", "f", "fn", "act", "activation", "phi"}
)


def custom_label(registry: Registry, fn: Any, name: str | None) -> str:
    """The label of a user's function made into a registry's object (``custom``): ``name``,
    else ``fn.__name__``; checked to be a plain label that no registered object has.
    ``registry.kind`` names the module in the messages (``ji.<kind>s.custom``)."""
    where = f"ji.{registry.kind}s.custom"
    if name is None:
        name = getattr(fn, "__name__", None)
        if name is None or name in GENERIC_NAMES:
            raise ValueError(
                f"custom: {fn!r} has no name to label results with (its __name__ is "
                f"{name!r}); give one: {where}(fn, name='...')"
            )
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "()=,\n"):
        raise ValueError(
            f"custom: name must be a plain label (no parentheses, '=' or ','); got {name!r}"
        )
    if name in registry.names(aliases=True):
        raise ValueError(
            f"custom: name={name!r} is jaxinit's own {registry.kind} "
            f"({registry.formula(name)}); choose another label, or give the spec string if it "
            "is that function"
        )
    return name


def rebuildable_spec(obj: Any, registry: Registry) -> str:
    """``obj.spec``, checked to rebuild ``obj`` (``registry.get(obj.spec) == obj``): what a
    registry's objects pickle as. A ``pickle.PicklingError`` for one that no spec rebuilds."""
    try:
        same = registry.get(obj.spec) == obj
    except (ValueError, TypeError, KeyError):
        same = False
    if not same:
        raise pickle.PicklingError(
            f"{registry.kind} {obj.spec!r} cannot be pickled: it pickles as its spec, and "
            f"this one does not rebuild it (made by hand or transformed); pickle what built "
            "it instead"
        )
    return obj.spec


class Registry(Generic[T]):
    """Maps names and aliases to builders, and specs to the objects they build.

    The objects are frozen dataclasses with the fields ``name``, ``hparams``
    and ``spec``; the registry fills them in, so a builder only computes.
    """

    def __init__(
        self,
        kind: str,
        cls: type,
        *,
        wrap_callable: Callable[[Callable], T] | None = None,
        takes_dtype: bool = False,
        memoize: bool = False,
    ):
        self.kind = kind  # "initializer", "activation": used in messages
        self.cls = cls
        # every builder also takes dtype= (the default of the call's), as jax's do; it is a
        # field of the built object and part of its spec when given
        self.takes_dtype = takes_dtype
        # get() turns a plain function into an object with this (the kind's ``custom``,
        # which labels it by its name); None: a function is refused
        self.wrap_callable = wrap_callable
        self._builders: dict[str, Callable[..., T]] = {}  # name or alias -> builder
        self._primary: dict[str, str] = {}  # name or alias -> primary name
        self._formulas: dict[str, str] = {}  # primary name -> plain-text formula
        # memoize: one object per canonical spec, so that what it holds (an activation's
        # function) is the same object too, and a program keyed on it compiles once
        self._built: dict[tuple, T] | None = {} if memoize else None

    def register(self, *aliases: str, shown: tuple[str, ...] = (), formula: str = "") -> Callable:
        """Decorates a builder ``f(**hparams) -> T`` registered as ``f.__name__``.

        The decorated builder binds and checks its keywords, normalizes them,
        calls ``f`` and stamps the result with its canonical spec. ``shown``
        names hyperparameters printed in the spec even at their default;
        ``formula`` is a one-line plain-text description for tables.
        """

        def decorate(fn: Callable[..., T]) -> Callable[..., T]:
            name = fn.__name__
            sig = inspect.signature(fn)
            params = sig.parameters
            for p in params.values():
                if p.kind is not p.KEYWORD_ONLY and p.default is p.empty:
                    raise TypeError(f"{name}: hyperparameter {p.name!r} needs a default")

            @functools.wraps(fn)
            def builder(*args: Any, **kwargs: Any) -> T:
                dtype = self._dtype(name, kwargs.pop("dtype", None)) if self.takes_dtype else None
                self._check_keywords(name, kwargs, params)
                try:
                    bound = sig.bind(*args, **kwargs)
                except TypeError:
                    if not args:
                        raise
                    raise TypeError(self._positional(name, args, params)) from None
                check_bools(name, fn, bound.arguments)
                bound.apply_defaults()
                hparams = {k: _normalize(v, params[k].default) for k, v in bound.arguments.items()}
                memo = (name, tuple(hparams.items()), dtype)
                try:
                    return self._built[memo]
                except (TypeError, KeyError):  # off, not built yet, or unhashable hparams
                    pass
                obj = fn(**hparams)
                shown_kw = tuple(
                    (k, v)
                    for k, v in hparams.items()
                    if k in shown or not _same(v, params[k].default)
                )
                extra = {"dtype": dtype} if dtype is not None else {}
                obj = dataclasses.replace(
                    obj,
                    name=name,
                    hparams=tuple(hparams.items()),
                    spec=format_spec(name, shown_kw + tuple(extra.items())),
                    **extra,
                )
                if self._built is not None:
                    with contextlib.suppress(TypeError):  # unhashable: built anew each time
                        self._built[memo] = obj
                return obj

            self._formulas[name] = formula
            for key in (name, *aliases):
                if key in self._builders:
                    raise ValueError(f"{self.kind} {key!r} is registered twice")
                self._builders[key] = builder
                self._primary[key] = name
            return builder

        return decorate

    def _dtype(self, name: str, dtype: Any) -> str | None:
        """``dtype=`` of a builder, as its canonical name (``"bfloat16"``); real floats only."""
        if dtype is None:
            return None
        try:
            canonical = np.dtype(jax.dtypes.canonicalize_dtype(dtype))
        except TypeError:
            canonical = None
        if canonical is None or not jax.numpy.issubdtype(canonical, jax.numpy.floating):
            raise ValueError(
                f"{self.kind} {name!r}: dtype={dtype!r} is not a real floating-point dtype; "
                "valid: float32, bfloat16, float16, float64 (with x64)"
            )
        return canonical.name

    def _check_keywords(self, name: str, kwargs: dict[str, Any], params) -> None:
        for k in kwargs:
            if k not in params:
                valid = ", ".join(params) or "none"
                raise TypeError(
                    f"{self.kind} {name!r} has no hyperparameter {k!r}; "
                    f"valid: {valid}.{closest_hint(k, params)}"
                )

    def _positional(self, name: str, args: tuple, params) -> str:
        """What to write instead of a builder call with too many positional arguments."""
        positional = [p for p in params if params[p].kind is not inspect.Parameter.KEYWORD_ONLY]
        keyword = [p for p in params if p not in positional]
        if positional:
            return (
                f"{self.kind} {name!r} takes at most {len(positional)} positional "
                f"hyperparameters ({', '.join(positional)}); the others are keyword-only: "
                f"{', '.join(keyword)}"
            )
        written = ", ".join(f"{k}={v!r}" for k, v in zip(keyword, args, strict=False))
        return (
            f"{self.kind} {name!r} takes its hyperparameters by keyword only "
            f"({', '.join(keyword) or 'none'}); write {name}({written})"
        )

    def names(self, *, aliases: bool = False) -> tuple[str, ...]:
        """The registered names, sorted; with ``aliases=True`` the aliases too."""
        keys = self._builders if aliases else set(self._primary.values())
        return tuple(sorted(keys))

    def aliases(self, name: str) -> tuple[str, ...]:
        """The other names under which ``name`` is registered."""
        primary = self._primary[self.resolve(name)]
        return tuple(sorted(k for k, v in self._primary.items() if v == primary and k != primary))

    def formula(self, name: str) -> str:
        """The plain-text formula registered for ``name`` (an alias works too)."""
        return self._formulas[self._primary[self.resolve(name)]]

    def resolve(self, name: str) -> str:
        """``name`` itself if registered, else a ValueError with the closest match."""
        if name not in self._builders:
            raise ValueError(
                f"unknown {self.kind} {name!r}.{closest_hint(name, self._builders)} "
                f"Valid names: {', '.join(self.names(aliases=True))}"
            )
        return name

    def builder(self, name: str) -> Callable[..., T]:
        return self._builders[self.resolve(name)]

    def get(self, spec: T | str) -> T:
        """An object as it is, the object a name or spec string builds, or a plain function
        made into one (``custom(fn)``: labelled by its ``__name__``)."""
        if isinstance(spec, self.cls):
            return spec
        if self.wrap_callable is not None and callable(spec) and not hasattr(spec, "spec"):
            return self.wrap_callable(spec)  # (another registry's object has a spec: refused)
        if not isinstance(spec, str):
            raise TypeError(
                f"expected a {self.kind} or a spec string such as 'name(k=v)'; "
                f"got {type(spec).__name__}: {spec!r}"
            )
        name, kwargs = parse_spec(spec)
        builder = self.builder(name)
        try:
            return builder(**kwargs)
        except TypeError as err:  # a wrong keyword in a string is a bad value
            raise ValueError(f"in spec {spec!r}: {err}") from None
