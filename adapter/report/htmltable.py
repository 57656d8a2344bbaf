"""A DataFrame as an HTML table, byte for byte what ``DataFrame.to_html`` writes for the
report's tables, in time proportional to the cells.

Why our own: ``to_html`` formats every cell through several layers of Python calls (column
formatters, fixed-width padding, then per-cell escaping and stripping); at 2,000 subjects the
report's tables are ~700,000 cells and took ~40 s of a ~57 s report (issue 16). Here each
column is formatted once, as a list of strings, and the rows are joined in one pass.

Covered: columns of int, float (``float_format``, ``na_rep``) and object dtype holding
str, int, float, None. Any other dtype goes to ``to_html`` itself. ``tests/test_report_table.py``
compares the two on the report's tables and on awkward values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

import numpy as np
import pandas as pd

_CELL_INDENT = " " * 6
_ROW_INDENT = " " * 4
# pandas' first escaping pass (printing.pprint_thing) writes these as backslash escapes.
_CONTROL = str.maketrans({"\t": "\\t", "\n": "\\n", "\r": "\\r"})


def table_html(
    frame: pd.DataFrame, table_id: str, float_format: Callable[[float], str], na_rep: str = ""
) -> str:
    """``frame.to_html(index=False, na_rep=na_rep, float_format=float_format, border=0,
    table_id=table_id)``, the same text."""
    columns = [_column(frame.iloc[:, i], float_format, na_rep) for i in range(frame.shape[1])]
    if any(c is None for c in columns):
        html: Any = frame.to_html(
            index=False, na_rep=na_rep, float_format=float_format, border=0, table_id=table_id
        )
        return str(html)
    head = "".join(f"{_CELL_INDENT}<th>{_text(name)}</th>\n" for name in frame.columns)
    parts = [
        f'<table class="dataframe" id="{table_id}">\n',
        '  <thead>\n    <tr style="text-align: right;">\n',
        head,
        "    </tr>\n  </thead>\n  <tbody>\n",
    ]
    cells = [[f"{_CELL_INDENT}<td>{v}</td>\n" for v in c] for c in columns if c is not None]
    row_open, row_close = f"{_ROW_INDENT}<tr>\n", f"{_ROW_INDENT}</tr>\n"
    parts.extend(row_open + "".join(row) + row_close for row in zip(*cells, strict=True))
    parts.append("  </tbody>\n</table>")
    return "".join(parts)


def _column(
    series: pd.Series[Any], float_format: Callable[[float], str], na_rep: str
) -> list[str] | None:
    """A column's cells as written (escaped, stripped), or None for a dtype not covered."""
    values = series.to_numpy()
    kind = values.dtype.kind
    if kind in "iu":
        return [str(v) for v in values.tolist()]
    if kind == "f":
        return _floats(values.tolist(), float_format, na_rep)
    if kind == "O":
        try:
            return _objects(values.tolist(), float_format, na_rep)
        except _UncoveredError:
            return None
    return None


def _floats(
    values: Sequence[float], float_format: Callable[[float], str], na_rep: str
) -> list[str]:
    text = [na_rep if math.isnan(v) else float_format(v) for v in values]
    return [_text(t) for t in _trim_zeros(text)]


def _objects(values: Sequence[Any], float_format: Callable[[float], str], na_rep: str) -> list[str]:
    seen: dict[str, str] = {}  # a column repeats its values (arms, visits, measures)
    out = []
    for v in values:
        if type(v) is str:
            cell = seen.get(v)
            if cell is None:
                cell = seen[v] = _text(v.translate(_CONTROL))
            out.append(cell)
        else:
            out.append(_other(v, float_format, na_rep))
    return out


def _other(v: Any, float_format: Callable[[float], str], na_rep: str) -> str:
    if v is None:
        return "None"
    if isinstance(v, float | np.floating):
        return na_rep if math.isnan(v) else _text(float_format(float(v)))
    if isinstance(v, str | int | np.integer) and not isinstance(v, bool):
        return _text(str(v).translate(_CONTROL))
    raise _UncoveredError


def _text(value: object) -> str:
    return escape(str(value), quote=False).strip()


class _UncoveredError(Exception):
    """A value this writer does not format as pandas does (the caller falls back)."""


def _trim_zeros(values: list[str]) -> list[str]:
    """pandas' trimming of trailing zeros shared by all of a float column's decimals
    (``format._trim_zeros_float``); ``%g``-style formats leave none, so usually a no-op."""
    decimals = [v for v in values if _is_decimal(v)]
    if not decimals or not all(v.endswith("0") for v in decimals):
        return values
    while decimals and all(v.endswith("0") for v in decimals):
        values = [v[:-1] if _is_decimal(v) else v for v in values]
        decimals = [v for v in values if _is_decimal(v)]
    return [v + "0" if _is_decimal(v) and v.endswith(".") else v for v in values]


def _is_decimal(value: str) -> bool:
    head, dot, tail = value.strip().lstrip("+-").partition(".")
    return bool(dot) and head.isdigit() and (not tail or tail.isdigit())
