"""The report's HTML tables are written as ``DataFrame.to_html`` writes them, byte for byte
(adapter/report/htmltable.py writes them itself, for speed: issue 16)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from adapter.report.htmltable import table_html


def _g(x: float) -> str:
    return f"{x:.6g}"


def _pandas(frame: pd.DataFrame, name: str) -> str:
    return str(frame.to_html(index=False, na_rep="", float_format=_g, border=0, table_id=name))


def test_awkward_values_are_written_as_pandas_writes_them() -> None:
    frame = pd.DataFrame(
        {
            "text <&>": ["a&b<c>", "  padded  ", "tab\there", None, 3, 2.5, math.nan, "x\ny"],
            "number": [1.0, np.nan, 1e20, -0.000012345, math.inf, 10.0, 100.5, 2.0],
            "count": list(range(-4, 4)),
        }
    )
    assert table_html(frame, "t", _g) == _pandas(frame, "t")


def test_an_empty_table_and_a_column_of_another_type() -> None:
    empty = pd.DataFrame({"subject": [], "reason": []}, dtype=object)
    assert table_html(empty, "e", _g) == _pandas(empty, "e")
    flags = pd.DataFrame({"flag": [True, False], "day": pd.to_datetime(["2024-01-01", None])})
    assert table_html(flags, "f", _g) == _pandas(flags, "f")  # left to pandas


_cell = st.one_of(
    st.text(max_size=8),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.none(),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_cell, min_size=1, max_size=6),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=6, max_size=6),
)
def test_any_mix_of_text_numbers_and_blanks(objects: list[object], floats: list[float]) -> None:
    size = len(objects)
    frame = pd.DataFrame({"o": pd.Series(objects, dtype=object), "f": floats[:size]})
    assert table_html(frame, "h", _g) == _pandas(frame, "h")
