"""CSV that a spreadsheet opens as data, never as formulas: the one writer every CSV of the project uses.

A cell beginning with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by Excel, LibreOffice
and Google Sheets as a formula (``=HYPERLINK(...)``, ``-1+1+cmd|' /C calc'!A0``, ``@SUM(1+1)``). Caller
names, notes and numbers come from outside, so every such cell gets a leading ``'`` (shown as text, the
quote itself hidden). The one exception is a cell that is only a number (``+6281234500112``, ``-1.5``):
no spreadsheet can run it, and a quote would turn every negative figure of a report into text.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence

_FORMULA_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` as a spreadsheet shows it as text: prefixed with ``'`` when it would start a formula."""
    if cell and cell[0] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _text(value: object) -> str:
    return "" if value is None else str(value)


def write_rows(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV document (LF line ends) of ``header`` then ``rows``, every cell made :func:`spreadsheet_safe`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    # the csv module quotes a cell holding a line end of *its* lineterminator only: a lone CR stayed bare
    # and split the row for readers that end lines on CR (a caller name "x\r=cmd" became a formula row)
    quoted = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in ([spreadsheet_safe(h) for h in header],
                *([spreadsheet_safe(_text(v)) for v in row] for row in rows)):
        (quoted if any("\r" in cell for cell in row) else writer).writerow(row)
    return out.getvalue()


def write_dicts(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """As :func:`write_rows`, one row per mapping (a missing column is an empty cell)."""
    return write_rows(columns, ([row.get(c) for c in columns] for row in rows))
