"""Writers: the tables as CSV (and an xlsx workbook with a sheet per table), the HTML page.

CSV is UTF-8 with ``\\n`` line ends and floats to 10 significant digits, so the same store
gives byte-identical files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

FLOAT_FORMAT = "%.10g"


def write_csvs(tables: Mapping[str, pd.DataFrame], out: Path) -> list[Path]:
    """``<name>.csv`` for each table, in ``out``."""
    paths = []
    for name, frame in tables.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False, lineterminator="\n", float_format=FLOAT_FORMAT)
        paths.append(path)
    return paths


def write_xlsx(tables: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """One workbook, a sheet per table (named after it), header row frozen."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in tables.items():
            frame.to_excel(writer, sheet_name=name[:31], index=False, freeze_panes=(1, 0))
    return path


def write_text(text: str, path: Path) -> Path:
    """A text file in UTF-8 with ``\\n`` line ends."""
    path.write_text(text, encoding="utf-8", newline="\n")
    return path
