"""How a :class:`jaxinit.Result` shows itself in a notebook (``_repr_html_``), as xarray's
Dataset does: the kind, the dims with their sizes and labels, every field with its own
dims, shape and dtype, and the attributes (the grid, provenance) folded away.

Plain HTML with inline styles only: it renders the same in Jupyter, VS Code and a saved
notebook on GitHub, where scripts and style sheets are stripped.
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["result_html"]

LABELS_SHOWN = 8  # a dim's first labels; the rest become "… (n more)"
ATTR_CHARS = 400  # an attribute's JSON, cut past this many characters

_TABLE = "border-collapse:collapse;margin:0.2em 0 0.6em 0;font-size:90%"
_CELL = "padding:0.1em 0.8em 0.1em 0;text-align:left;vertical-align:top"


def _labels(labels) -> str:
    shown = ", ".join(repr(v) for v in labels[:LABELS_SHOWN])
    more = len(labels) - LABELS_SHOWN
    return shown + (f", … ({more} more)" if more > 0 else "")


def _row(*cells: str, head: bool = False) -> str:
    tag = "th" if head else "td"
    return "<tr>" + "".join(f'<{tag} style="{_CELL}">{c}</{tag}>' for c in cells) + "</tr>"


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    body = "".join(_row(*map(html.escape, r)) for r in rows)
    return f'<table style="{_TABLE}">{_row(*head, head=True)}{body}</table>'


def _attr(value: Any) -> str:
    text = json.dumps(value, default=lambda v: getattr(v, "tolist", lambda: repr(v))())
    return text if len(text) <= ATTR_CHARS else text[:ATTR_CHARS] + " …"


def result_html(res: Any) -> str:
    """The HTML of ``res`` (any :class:`jaxinit.Result` kind) for a notebook cell."""
    n = len(res.dims)
    sizes = " × ".join(f"{d}: {len(res.coords[d])}" for d in res.dims) or "no dims"
    dims = _table(
        ("dim", "size", "labels"),
        [(d, str(len(res.coords[d])), _labels(res.coords[d])) for d in res.dims],
    )
    fields = _table(
        ("field", "own dims", "shape", "dtype"),
        [
            (
                k,
                ", ".join(f"{fd}={a.shape[n + i]}" for i, fd in enumerate(res.field_dims[k]))
                or "–",
                str(a.shape),
                str(a.dtype),
            )
            for k, a in res.fields.items()
        ],
    )
    attrs = _table(("attribute", "value"), [(k, _attr(v)) for k, v in res.attrs.items()])
    aliases = (
        "<p>aliases: "
        + html.escape("; ".join(f"{d}: {dict(t)}" for d, t in res.aliases.items() if t))
        + "</p>"
        if any(res.aliases.values())
        else ""
    )
    return (
        f"<div><b>{html.escape(type(res).__name__)}</b> "
        f"({html.escape(sizes)}; {len(res.fields)} fields)"
        f"{dims}"
        f"<details><summary>fields</summary>{fields}</details>"
        f"<details><summary>attributes ({len(res.attrs)})</summary>{aliases}{attrs}</details>"
        "</div>"
    )
