"""Image folders and zip archives with one sub-folder per label.

Each image becomes a row: `image` (the encoded file bytes, unchanged), `label` (its folder),
`path` (relative to the root), `width` and `height` (read by pillow from the header, without
decoding the pixels). Files that are not images, and files outside a label folder, are skipped
and counted. A zip whose entries would escape its folder (`../x.png`, `/etc/x`, `C:\\x`) is
refused before anything is read, and so is one whose entries declare more than the import's
limits allow (`import_limits`); entries are counted again as they stream. A single top-level
folder that holds the label folders (the usual result of zipping a folder) is looked through.
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from reef.errors import InvalidInput
from reef.store.import_limits import Budget, check_archive, read_entry

SCHEMA = pa.schema(
    [
        ("image", pa.binary()),
        ("label", pa.string()),
        ("path", pa.string()),
        ("width", pa.int64()),
        ("height", pa.int64()),
    ]
)
_BATCH_ROWS = 512
_BATCH_BYTES = 64 << 20
_JUNK = ("__MACOSX", ".DS_Store", "Thumbs.db")


class ImageSource:
    """Images under `src` (a directory or a .zip), labelled by their sub-folder."""

    def __init__(self, src: Path, budget: Budget) -> None:
        self.src = src
        self.budget = budget
        self.is_zip = src.is_file()
        if self.is_zip and not zipfile.is_zipfile(src):
            raise InvalidInput(f"{src.name} is not a zip archive")
        self.paths = _zip_paths(src, budget) if self.is_zip else _dir_paths(src)
        self.depth = _root_depth(self.paths)
        self.notes: list[str] = []
        self.skipped = 0

    def open(self) -> pa.RecordBatchReader:
        self.skipped = 0
        return pa.RecordBatchReader.from_batches(SCHEMA, self._batches())

    def retry(self, error: Exception, names: list[str] | None) -> bool:
        return False

    def problem(self, error: Exception) -> InvalidInput:
        return InvalidInput(f"could not read the images: {error}")

    def details(self) -> dict[str, str]:
        return {"skipped": str(self.skipped)}

    def _batches(self) -> Iterator[pa.RecordBatch]:
        rows: list[tuple[bytes, str, str, int, int]] = []
        size = 0
        for path, data in self._files():
            row = _image_row(path, data, self.depth)
            if row is None:
                self.skipped += 1
                continue
            rows.append(row)
            size += len(data)
            if len(rows) >= _BATCH_ROWS or size >= _BATCH_BYTES:
                yield _batch(rows)
                rows, size = [], 0
        if rows:
            yield _batch(rows)
        if self.skipped:
            self.notes.append(f"skipped {self.skipped} file(s) that are not labelled images")

    def _files(self) -> Iterator[tuple[str, bytes]]:
        if self.is_zip:
            with zipfile.ZipFile(self.src) as archive:
                for name in self.paths:
                    yield name, read_entry(archive, name, self.budget, "the zip archive")
        else:
            for name in self.paths:
                yield name, (self.src / name).read_bytes()


def _zip_paths(src: Path, budget: Budget) -> list[str]:
    """The archive's file entries, sorted; InvalidInput if any would escape the folder,
    LimitExceeded if their declared sizes are over the limits."""
    with zipfile.ZipFile(src) as archive:
        infos = archive.infolist()
    for info in infos:
        _check_entry(info.filename)
    check_archive(infos, budget, "the zip archive")
    return sorted(info.filename for info in infos if not info.is_dir() and not _is_link(info))


def _check_entry(name: str) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    escapes = name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts
    if escapes:
        raise InvalidInput(
            f"the zip archive has an entry that escapes its folder: {name!r}; nothing imported"
        )


def _is_link(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def _dir_paths(src: Path) -> list[str]:
    """Regular files under `src` (symbolic links are not followed), as sorted POSIX paths."""
    found = []
    for folder, dirs, files in os.walk(src):
        dirs.sort()
        for name in files:
            path = Path(folder) / name
            if not path.is_symlink():
                found.append(path.relative_to(src).as_posix())
    return sorted(found)


def _image_row(path: str, data: bytes, depth: int) -> tuple[bytes, str, str, int, int] | None:
    label = _label(path, depth)
    if label is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError):
        return None
    return data, label, path, width, height


def _root_depth(paths: list[str]) -> int:
    """1 if every file lies under one wrapping folder that holds the label folders, else 0."""
    parts = [PurePosixPath(p).parts for p in paths if not _is_junk(p)]
    firsts = {p[0] for p in parts}
    return 1 if len(firsts) == 1 and all(len(p) >= 3 for p in parts) else 0


def _is_junk(path: str) -> bool:
    return any(part in _JUNK or part.startswith(".") for part in PurePosixPath(path).parts)


def _label(path: str, depth: int) -> str | None:
    """The label folder of `path` (the first folder under the root); None if unlabelled."""
    parts = PurePosixPath(path).parts
    if _is_junk(path) or len(parts) < depth + 2:
        return None
    return parts[depth]


def _batch(rows: list[tuple[bytes, str, str, int, int]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    return pa.RecordBatch.from_arrays(
        [pa.array(list(values), field.type) for values, field in zip(columns, SCHEMA, strict=True)],
        schema=SCHEMA,
    )
