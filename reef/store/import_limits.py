"""Limits on what one import may cost, checked before and while a file is read, so that a
small upload cannot unpack into gigabytes, thousands of columns or hours of work.

- `unpacked_mb`: what a .zip or .xlsx may unpack to, all entries together. The sizes an
  archive declares are checked first; Python's zipfile never returns more than an entry
  declares (and fails its checksum when the entry lied), and the entries are counted again as
  they stream.
- `cell_mb`: one value (an image of a zip, a text of a workbook). Workbook XML is scanned as it
  streams for text runs longer than this before openpyxl reads it (openpyxl keeps every shared
  text in memory).
- `columns`: counted from a CSV's first line as it streams, from a workbook's header row, from
  a Parquet or Arrow schema.
- `seconds`: the whole import; checked between batches (and every few thousand rows of a
  workbook's first pass).

Each refusal is a `LimitExceeded` (413) that names the limit and the setting that raises it.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from reef.errors import TooLarge

CHUNK = 1 << 20
EXCEL_MAX_ROWS = 1_048_576  # Excel's own limit: a workbook claiming more is not Excel's
_HEADER_LINE_BYTES = 1 << 20


class LimitExceeded(TooLarge):
    """An import went past one of its limits."""


@dataclass(frozen=True)
class ImportLimits:
    unpacked_mb: int = 8192
    cell_mb: int = 64
    columns: int = 10_000
    seconds: float = 3600.0

    def budget(self) -> Budget:
        return Budget(self)


@dataclass
class Budget:
    """The limits of one import, with its clock started."""

    limits: ImportLimits
    started: float = field(default_factory=time.monotonic)

    def check_time(self) -> None:
        if time.monotonic() - self.started > self.limits.seconds:
            raise LimitExceeded(
                f"the import ran longer than its time limit of {self.limits.seconds:g} s "
                "(setting --import-timeout) and was stopped; nothing was stored"
            )

    def check_columns(self, count: int, what: str = "the file") -> None:
        if count > self.limits.columns:
            raise LimitExceeded(
                f"{what} has {count:,} columns or more, over the limit of "
                f"{self.limits.columns:,} (setting --max-columns)"
            )

    def check_cell(self, size: int, what: str) -> None:
        if size > self.limits.cell_mb << 20:
            raise LimitExceeded(
                f"{what} is larger than the limit of {self.limits.cell_mb} MiB for one value "
                "(setting --max-cell-mb)"
            )

    def check_unpacked(self, size: int, what: str) -> None:
        if size > self.limits.unpacked_mb << 20:
            raise LimitExceeded(
                f"{what} unpacks to more than the limit of {self.limits.unpacked_mb} MiB "
                "(setting --max-unpacked-mb)"
            )


def check_archive(infos: Iterable[zipfile.ZipInfo], budget: Budget, what: str) -> None:
    """The sizes a zip declares: each entry within the cell limit, all within unpacked."""
    total = 0
    for info in infos:
        budget.check_cell(info.file_size, f"the entry {info.filename!r} of {what}")
        total += info.file_size
        budget.check_unpacked(total, what)


def read_entry(archive: zipfile.ZipFile, name: str, budget: Budget, what: str) -> bytes:
    """One entry's bytes, counted as they stream (never more than the cell limit held)."""
    parts, size = [], 0
    with archive.open(name) as f:
        while chunk := f.read(CHUNK):
            size += len(chunk)
            budget.check_cell(size, f"the entry {name!r} of {what}")
            parts.append(chunk)
    return b"".join(parts)


def check_workbook(src: Path, budget: Budget) -> None:
    """An .xlsx's declared sizes, then every XML part streamed for an over-long text."""
    what = "the workbook"
    with zipfile.ZipFile(src) as archive:
        infos = archive.infolist()
        total = sum(info.file_size for info in infos)
        budget.check_unpacked(total, what)
        for info in infos:
            if info.filename.endswith(".xml"):
                with archive.open(info) as f:
                    _check_text_runs(f, budget, f"a text in {info.filename!r} of {what}")


def _check_text_runs(f: IO[bytes], budget: Budget, what: str) -> None:
    """Refuse a run of bytes between XML tags longer than the cell limit (counted to within
    one chunk, which the limit dwarfs)."""
    run = 0
    while chunk := f.read(CHUNK):
        last = chunk.rfind(b"<")
        run = run + len(chunk) if last < 0 else len(chunk) - last - 1
        budget.check_cell(run, what)
        budget.check_time()


def check_text_header(src: Path, delimiter: str, budget: Budget) -> None:
    """A CSV's first line, streamed: its columns (delimiters counted, an upper bound) within
    the limit, and the line itself short enough to be a header."""
    sep = delimiter.encode()  # the utf-8/cp1252 delimiters are one byte; utf-16 is rare
    columns, length = 1, 0
    with src.open("rb") as f:
        while chunk := f.read(CHUNK):
            end = chunk.find(b"\n")
            line = chunk if end < 0 else chunk[:end]
            columns += line.count(sep)
            length += len(line)
            budget.check_columns(columns, "the CSV header (its first line)")
            if length > _HEADER_LINE_BYTES:
                raise LimitExceeded(
                    f"the CSV file's first line is longer than {_HEADER_LINE_BYTES >> 20} MiB: "
                    "a CSV file starts with one line of column names, then one row per line"
                )
            if end >= 0:
                return
