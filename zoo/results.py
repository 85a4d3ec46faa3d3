"""The one results store of zoo: CSV files that only grow (bench's results and curves, search's trials, cv's folds).

Rows are appended in one write and flushed to disk, so an interrupted job keeps what it finished and
a rerun adds after it. The one rewrite: rows that bring a new column (a search that adds a searched
value) widen the header, the file replaced whole and atomically, its rows kept.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from zoo.atomic import atomic_path
from zoo.spreadsheet import safe_dict


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a results or curves CSV ([] if it does not exist yet)."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _header(path: Path) -> list[str] | None:
    """The column names of an existing CSV (None if there is none yet)."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def append_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Add rows at the end of a CSV (with the header if the file is new), in one write, flushed to disk.

    A kill during the write can at worst leave a partial last line: :func:`finished` does not count
    it, and the next append starts on a new line so that it stays a row of its own.
    """
    import io

    old = _header(path)
    if old is not None and set(columns) - set(old):  # new columns: widen the header, the old rows kept
        columns = old + [c for c in columns if c not in old]
        kept = read_rows(path)
        with atomic_path(path, sync=True) as temporary, open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
    elif old is not None:
        columns = old
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    new = not path.is_file() or path.stat().st_size == 0
    if new:
        writer.writeheader()
    else:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                buffer.write("\n")
    writer.writerows(safe_dict({k: "" if v is None else v for k, v in row.items()}) for row in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        f.write(buffer.getvalue())
        f.flush()
        os.fsync(f.fileno())
