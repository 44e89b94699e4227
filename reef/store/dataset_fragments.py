"""Where the rows of a version live, read from Lance's metadata instead of scanning.

A Lance version is a list of fragments; a fragment is data files (its physical rows, which
never change once written), a row-id sequence (the stable row id of each physical row) and a
deletion file (the physical offsets deleted so far). Two versions that share a fragment (same
id, same data files) hold the same values at each of its offsets, so the rows that can differ
between them are only those whose offsets one version deleted and the other did not, plus the
rows of fragments only one version has. That is what `moved_rows` returns, reading only
deletion files and row-id sequences: a 1% edit of 10M rows reads a few hundred KB, no data.

Deletion files are Arrow IPC ("array") or a portable Roaring bitmap ("bitmap"), both public
formats; anything else (an external row-id sequence, a deletion file on another base path)
answers None and the caller scans instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
from lance.fragment import FragmentMetadata, LanceFragment, RowIdSequence

_NO_RUNS, _RUNS = 12346, 12347  # portable Roaring cookies
_NO_OFFSETS_BELOW = 4  # with run containers, offsets are written from this many containers
_ARRAY_MAX = 4096  # containers with more values are bitmaps of 2**16 bits


class Unreadable(Exception):
    """Something in the metadata this module does not read; scan instead."""


@dataclass(frozen=True)
class Moved:
    """Row ids that left their place from the old version to the new one (`gone`: live in
    old there but not in new) and that arrived somewhere (`arrived`), each sorted."""

    gone: np.ndarray
    arrived: np.ndarray


def moved_rows(old: lance.LanceDataset, new: lance.LanceDataset) -> Moved | None:
    """The rows not at the same place in both versions, or None when the metadata is not
    readable here (the caller scans then)."""
    try:
        return _moved(old, new)
    except (Unreadable, OSError, ValueError, pa.ArrowException):
        return None


def _moved(old: lance.LanceDataset, new: lance.LanceDataset) -> Moved:
    before = {_place(f): f for f in old.get_fragments()}
    after = {_place(f): f for f in new.get_fragments()}
    gone, arrived = [], []
    for place, fragment in before.items():
        if place not in after:
            gone.append(_live_ids(old.uri, fragment))
        elif _deletions(fragment) != _deletions(after[place]):
            was, now = _deleted(old.uri, fragment), _deleted(new.uri, after[place])
            ids = _row_ids(fragment.metadata)
            gone.append(ids[np.setdiff1d(now, was, assume_unique=True)])
            arrived.append(ids[np.setdiff1d(was, now, assume_unique=True)])
    arrived += [_live_ids(new.uri, f) for place, f in after.items() if place not in before]
    return Moved(_sorted(gone), _sorted(arrived))


def _place(fragment: LanceFragment) -> tuple[int, tuple[str, ...]]:
    return fragment.fragment_id, tuple(sorted(f.path for f in fragment.metadata.files))


def _deletions(fragment: LanceFragment) -> tuple[int, int] | None:
    deletion = fragment.metadata.deletion_file
    return None if deletion is None else (deletion.read_version, deletion.id)


def _sorted(parts: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.uint64)


def _row_ids(fragment: FragmentMetadata) -> np.ndarray:
    """The stable row id of each physical row of the fragment."""
    meta = fragment.row_id_meta
    if meta is None or "Inline" not in meta.json()[:10]:
        raise Unreadable(f"fragment {fragment.id}: row ids not inline")
    ids = RowIdSequence.from_inline_metadata(meta).to_pyarrow().to_numpy()
    if len(ids) != fragment.physical_rows:
        raise Unreadable(f"fragment {fragment.id}: {len(ids)} row ids")
    return ids.astype(np.uint64, copy=False)


def _live_ids(uri: str, fragment: LanceFragment) -> np.ndarray:
    ids = _row_ids(fragment.metadata)
    deleted = _deleted(uri, fragment)
    return np.delete(ids, deleted.astype(np.int64)) if len(deleted) else ids


def _deleted(uri: str, fragment: LanceFragment) -> np.ndarray:
    """The fragment's deleted offsets, sorted (uint32)."""
    deletion = fragment.metadata.deletion_file
    if deletion is None:
        return np.zeros(0, np.uint32)
    if deletion.base_id is not None or deletion.file_type not in ("array", "bitmap"):
        raise Unreadable(f"fragment {fragment.fragment_id}: deletion file {deletion}")
    name = fragment.deletion_file()
    if name is None:
        return np.zeros(0, np.uint32)
    path = Path(uri) / name
    if deletion.file_type == "array":
        with pa.memory_map(str(path)) as source:
            offsets = pa.ipc.open_file(source).read_all().column(0).to_numpy()
        found = np.unique(offsets.astype(np.uint32))
    else:
        found = roaring_values(path.read_bytes())
    if deletion.num_deleted_rows is not None and len(found) != deletion.num_deleted_rows:
        raise Unreadable(f"fragment {fragment.fragment_id}: {len(found)} deletions read")
    return found


def roaring_values(data: bytes) -> np.ndarray:
    """The values of a 32-bit Roaring bitmap in the portable serialization, sorted (uint32)."""
    cookie = int.from_bytes(data[:4], "little")
    if cookie & 0xFFFF == _RUNS:
        count, pos = (cookie >> 16) + 1, 4
        flags = np.frombuffer(data, np.uint8, (count + 7) // 8, pos)
        runs = np.unpackbits(flags, bitorder="little")[:count].astype(bool)
        pos += (count + 7) // 8
    elif cookie == _NO_RUNS:
        count, pos = int.from_bytes(data[4:8], "little"), 8
        runs = np.zeros(count, bool)
    else:
        raise Unreadable(f"not a portable Roaring bitmap (cookie {cookie})")
    header = np.frombuffer(data, "<u2", 2 * count, pos).reshape(count, 2).astype(np.int64)
    pos += 4 * count
    if cookie == _NO_RUNS or count >= _NO_OFFSETS_BELOW:
        pos += 4 * count  # container offsets: not needed when reading in order
    parts = []
    for (key, cardinality), run in zip(header, runs, strict=True):
        values, pos = _container(data, pos, int(cardinality) + 1, bool(run))
        parts.append(values + np.uint32(int(key) << 16))
    return np.concatenate(parts) if parts else np.zeros(0, np.uint32)


def _container(data: bytes, pos: int, cardinality: int, run: bool) -> tuple[np.ndarray, int]:
    """One container's low 16 bits as uint32, and where the next container starts."""
    if run:
        count = int.from_bytes(data[pos : pos + 2], "little")
        pairs = np.frombuffer(data, "<u2", 2 * count, pos + 2).reshape(count, 2)
        spans = [np.arange(s, s + n + 1, dtype=np.uint32) for s, n in pairs.astype(np.uint32)]
        return (np.concatenate(spans) if spans else np.zeros(0, np.uint32)), pos + 2 + 4 * count
    if cardinality > _ARRAY_MAX:
        bits = np.unpackbits(np.frombuffer(data, np.uint8, 8192, pos), bitorder="little")
        return np.flatnonzero(bits).astype(np.uint32), pos + 8192
    values = np.frombuffer(data, "<u2", cardinality, pos).astype(np.uint32)
    return values, pos + 2 * cardinality
