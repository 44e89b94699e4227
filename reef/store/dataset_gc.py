"""Garbage in the data dir that killed work leaves behind, and its removal.

A Lance write puts its data files in place first and commits the version's manifest last, so
an import killed in between leaves data files that no version refers to (or, for a first
import, a dataset folder with no version at all). A killed upload leaves its spool folder
(`tmp…` in the data dir), and a killed artifact upload its `.incoming-…` file. None of them
is ever read again. Call `collect` only when no import runs: at start-up, or from `reef gc`
while the server is stopped.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lance

from reef.store.dataset_write import is_dataset

SPOOL = re.compile(r"tmp[a-z0-9_]{8}")  # tempfile.mkdtemp's names


@dataclass
class Garbage:
    """What `collect` removed."""

    paths: list[Path] = field(default_factory=list)
    bytes: int = 0

    def add(self, path: Path) -> None:
        self.bytes += _size(path)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        self.paths.append(path)


def collect(data_dir: Path) -> Garbage:
    """Remove unreferenced Lance files, spool folders and partial artifact files."""
    garbage = Garbage()
    for uri in sorted(data_dir.glob("datasets/*/*.lance")):
        if not is_dataset(uri):  # a first import killed before its first commit
            garbage.add(uri)
            continue
        for path in unreferenced(uri):
            garbage.add(path)
    for path in sorted(data_dir.glob("tmp*")):
        if path.is_dir() and SPOOL.fullmatch(path.name):
            garbage.add(path)
    for path in sorted(data_dir.glob("blobs/.incoming-*")):
        garbage.add(path)
    return garbage


def unreferenced(uri: Path) -> list[Path]:
    """Data files of the dataset at `uri` that none of its versions refers to."""
    files = {p.name: p for p in (uri / "data").glob("*.lance")}
    if not files:
        return []
    latest = lance.dataset(str(uri))
    referenced = _data_files(latest)
    if files.keys() <= referenced:  # the common case: one version read, not all
        return []
    for version in latest.versions():
        referenced |= _data_files(lance.dataset(str(uri), version=version["version"]))
    return [path for name, path in sorted(files.items()) if name not in referenced]


def _data_files(ds: lance.LanceDataset) -> set[str]:
    return {Path(f.path).name for frag in ds.get_fragments() for f in frag.metadata.files}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
