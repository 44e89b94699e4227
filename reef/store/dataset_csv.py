"""CSV and TSV sources: encoding and delimiter detection, streaming reads, clear errors.

pyarrow infers column types from the first block only; when a later row contradicts the
inferred type, the import is retried with that column widened (null -> int64 -> float64 ->
string). The encoding is guessed from the first 64 KiB: a UTF-16 BOM means UTF-16, bytes that
decode as UTF-8 mean UTF-8, anything else cp1252 (or latin-1 if the bytes include the five
that cp1252 leaves undefined). If a guessed UTF-8 turns out wrong further down the file, the
import is retried once as cp1252/latin-1 and says so in its notes.
"""

from __future__ import annotations

import codecs
import csv
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from reef.errors import InvalidInput

_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024
_CSV_BLOCK_BYTES = 1 << 20
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"
_RAGGED = re.compile(r"Expected (\d+) columns, got (\d+): (.*)", re.S)
_CONVERSION = re.compile(
    r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to (.+?): invalid value '(.*)'",
    re.S,
)
_BAD_UTF8 = "invalid UTF8"


def detect_encoding(src: Path) -> str:
    """The encoding of a text file, guessed from its first 64 KiB (see the module doc)."""
    with src.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:  # final=False: the sample may end inside a multi-byte character
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return _single_byte_encoding(head)
    return "utf-8"


def _single_byte_encoding(data: bytes) -> str:
    return "latin-1" if any(b in data for b in _CP1252_UNDEFINED) else "cp1252"


def sniff_delimiter(src: Path, encoding: str) -> str:
    """The most frequent of , ; TAB | in the header line (outside quotes); ',' if none."""
    with src.open("rb") as f:
        head = f.read(_SNIFF_BYTES)
    text = codecs.getincrementaldecoder(_python_codec(encoding))(errors="replace").decode(head)
    lines = text.lstrip("\ufeff").splitlines()
    header = re.sub(r'"[^"]*"', "", lines[0]) if lines else ""
    best = max(_DELIMITERS, key=header.count)
    return best if header.count(best) else ","


def _python_codec(encoding: str) -> str:
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


class CsvSource:
    """A CSV file read as a stream of record batches, re-openable with adjusted settings."""

    def __init__(
        self,
        src: Path,
        delimiter: str | None,
        encoding: str | None,
        types: dict[str, pa.DataType],
        fmt: str = "csv",
    ) -> None:
        self.src = src
        self.encoding_given = encoding is not None
        self.encoding = encoding or detect_encoding(src)
        default = "\t" if fmt == "tsv" else None
        self.delimiter = delimiter or default or sniff_delimiter(src, self.encoding)
        self.fixed = dict(types)  # chosen by the user: never widened
        self.types = dict(types)
        self.notes: list[str] = []
        self.skipped = 0

    def open(self) -> pa.RecordBatchReader:
        reader = pcsv.open_csv(
            self.src,
            read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, encoding=self.encoding),
            parse_options=pcsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=True),
            # an empty cell is a missing value (null), in text columns too, not ""
            convert_options=pcsv.ConvertOptions(column_types=self.types, strings_can_be_null=True),
        )
        binary = [f.name for f in reader.schema if pa.types.is_binary(f.type)]
        if binary:
            reader.close()
            raise pa.ArrowInvalid(f"{_BAD_UTF8} in column(s) {', '.join(map(repr, binary))}")
        return reader

    def retry(self, error: Exception, names: list[str] | None) -> bool:
        """Adjust the settings after `error` and say whether another attempt makes sense."""
        if _BAD_UTF8 in str(error):
            return self._fall_back_encoding()
        widened = _widened(error, names)
        if widened is None or widened[0] in self.fixed or self.types.get(widened[0]) == widened[1]:
            return False
        self.types[widened[0]] = widened[1]
        return True

    def _fall_back_encoding(self) -> bool:
        if self.encoding_given or self.encoding != "utf-8":
            return False
        with self.src.open("rb") as f:
            self.encoding = _single_byte_encoding(f.read())
        self.notes.append(f"the file is not valid UTF-8: read it as {self.encoding}")
        return True

    def problem(self, error: Exception) -> InvalidInput:
        return csv_problem(error, self.src, self.delimiter, self.encoding)

    def details(self) -> dict[str, str]:
        return {"delimiter": self.delimiter, "encoding": self.encoding}


def _widened(error: Exception, names: list[str] | None) -> tuple[str, pa.DataType] | None:
    """(column, wider type) for a CSV conversion error, or None for any other error."""
    match = _CONVERSION.search(str(error))
    if match is None or names is None or int(match[1]) >= len(names):
        return None
    column, current, value = names[int(match[1])], match[2], match[3]
    if current == "null" and _parses(int, value):
        return column, pa.int64()
    if (current == "null" or current.startswith(("int", "uint"))) and _parses(float, value):
        return column, pa.float64()
    return column, pa.string()


def _parses(kind: type, value: str) -> bool:
    try:
        kind(value)
    except ValueError:
        return False
    return True


def csv_problem(error: Exception, src: Path, delimiter: str, encoding: str) -> InvalidInput:
    text = str(error)
    if "Empty CSV file" in text:
        return InvalidInput("the CSV file is empty: it needs a header row")
    if _BAD_UTF8 in text:
        return InvalidInput(f"invalid CSV: text that is not valid {encoding}; set the encoding")
    ragged = _RAGGED.search(text)
    if ragged is None:
        return InvalidInput(f"invalid CSV: {text}")
    expected, got, row = int(ragged[1]), int(ragged[2]), ragged[3].strip()[:80]
    line = _first_ragged_line(src, delimiter, encoding)
    where = f"line {line}" if line is not None else "a row"
    return InvalidInput(
        f"invalid CSV: {where} has {got} fields but the header has {expected}: {row!r}"
    )


def _first_ragged_line(src: Path, delimiter: str, encoding: str) -> int | None:
    """The line number of the first row whose field count differs from the header's
    (pyarrow's streaming reader does not report it)."""
    try:
        with src.open(newline="", encoding=_python_codec(encoding), errors="replace") as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, [])
            for row in reader:
                if row and len(row) != len(header):
                    return reader.line_num
    except csv.Error:
        return None
    return None
