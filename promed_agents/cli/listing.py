"""List output of the ``promed`` command line: a table for people, JSON or CSV for
programs.

case -> consultation graph -> **trace in SQL** -> ... (what ``cases list`` and
``traces list`` print)

A table keeps its first columns whole and folds the long text column, so it stays
readable at 80 columns and when piped; ``--format json`` (one array of objects) and
``--format csv`` (a header row) print the same rows as plain values.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from enum import Enum
from typing import Annotated, Any

import typer
from rich.table import Table

from promed_agents.cli.options import console, shown
from promed_agents.display_text import without_controls

_C1 = re.compile("[\x80-\x9f]")


class ListFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


FormatOption = Annotated[ListFormat, typer.Option(
    "--format", help="table (for people), json or csv (for programs).")]


def _cell(value: Any) -> Any:
    """A CSV cell: empty for None, JSON for a list or mapping, text without controls."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, dict)):
        value = json.dumps(value, ensure_ascii=False)
    return without_controls(value) if isinstance(value, str) else value


NARROW_MAX = 32
"""The widest a listing's narrow columns (ids, names) get: a long id is cut with an
ellipsis, so the wide column keeps its room."""


def print_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: ListFormat,
               title: str, wide: str | None = None) -> None:
    """``rows`` under ``columns``; ``wide`` names the one column that folds in a table
    (the others are cut with an ellipsis when the terminal is narrow)."""
    if fmt is ListFormat.JSON:
        text = json.dumps([dict(zip(columns, row, strict=True)) for row in rows],
                          ensure_ascii=False, indent=1)
        # JSON escapes C0 controls itself; C1 ones (U+0080-U+009F) too, here
        console.file.write(_C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")
        return
    if fmt is ListFormat.CSV:
        writer = csv.writer(console.file, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([_cell(v) for v in row] for row in rows)
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold" if column == wide else "ellipsis",
                         no_wrap=column != wide, ratio=1 if column == wide else None,
                         min_width=None if column == wide else min(len(column), 8),
                         max_width=None if column == wide else NARROW_MAX)
    for row in rows:
        table.add_row(*("-" if v is None else shown(v, one_line=name != wide)
                        for name, v in zip(columns, row, strict=True)))
    console.print(table)
