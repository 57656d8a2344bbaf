"""Writers: the tables as CSV (and an xlsx workbook with a sheet per table), the HTML page.

CSV is UTF-8 with ``\\n`` line ends and floats to 10 significant digits, so the same store
gives byte-identical files. So does the workbook: openpyxl stamps the time of writing into
``docProps/core.xml`` (created, modified) and every zip entry, so those are rewritten to the
report's as-of date (midnight UTC) and the zip entries to 1980-01-01, the earliest zip time.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Mapping
from datetime import date
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


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_CORE = "docProps/core.xml"
_CORE_TIMES = re.compile(r"(<dcterms:(created|modified)[^>]*>)[^<]*(</dcterms:\2>)")


def write_xlsx(tables: Mapping[str, pd.DataFrame], path: Path, *, stamp: date) -> Path:
    """One workbook, a sheet per table (named after it), header row frozen; its times are
    ``stamp`` so the same tables give the same bytes."""
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in tables.items():
            frame.to_excel(writer, sheet_name=name[:31], index=False, freeze_panes=(1, 0))
    _fix_times(path, f"{stamp.isoformat()}T00:00:00Z")
    return path


def _fix_times(path: Path, when: str) -> None:
    """Rewrite the workbook's zip with fixed entry times and core properties set to ``when``."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for info, data in entries:
            if info.filename == _CORE:
                text = _CORE_TIMES.sub(rf"\g<1>{when}\g<3>", data.decode("utf-8"))
                data = text.encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_EPOCH)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = info.external_attr
            target.writestr(fixed, data)


def write_text(text: str, path: Path) -> Path:
    """A text file in UTF-8 with ``\\n`` line ends."""
    path.write_text(text, encoding="utf-8", newline="\n")
    return path
