"""Moving a remote step's inputs and outputs over HTTP, in a stream both ways: a dataset as an
Arrow IPC stream (written to Parquet where the step reads it), a table output as its Parquet
file, a model dir as a tar stream. Nothing is held whole in memory."""

from __future__ import annotations

import io
import shutil
import tarfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

CHUNK = 1 << 20
ARROW, PARQUET, TAR = "arrow", "parquet", "tar"  # the x-reef-format of a download
MEDIA_TYPES = {
    ARROW: "application/vnd.apache.arrow.stream",
    PARQUET: "application/vnd.apache.parquet",
    TAR: "application/x-tar",
}


class _Sink(io.RawIOBase):
    """A write-only buffer whose content is taken out piece by piece."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.buffer += data
        return len(data)

    def take(self) -> bytes:
        out, self.buffer = bytes(self.buffer), bytearray()
        return out


def arrow_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    """The batches of `reader` as an Arrow IPC stream, a batch at a time."""
    sink = _Sink()
    with pa.ipc.new_stream(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
            yield sink.take()
    yield sink.take()  # the end-of-stream marker


def file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def tar_chunks(root: Path) -> Iterator[bytes]:
    """A dir as an uncompressed tar stream, file by file and chunk by chunk."""
    for path in sorted(root.rglob("*")):
        info = tarfile.TarInfo(path.relative_to(root).as_posix())
        if path.is_dir():
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            continue
        info.size, info.mode = path.stat().st_size, 0o644
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        yield from file_chunks(path)
        if pad := -info.size % tarfile.BLOCKSIZE:
            yield b"\0" * pad
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


class _ChunkReader(io.RawIOBase):
    """A readable file over an iterable of byte chunks (a response or request body)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks, self.rest = iter(chunks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, out: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self.rest:
            self.rest = next(self.chunks, b"")
            if not self.rest:
                return 0
        n = min(len(out), len(self.rest))
        out[:n], self.rest = self.rest[:n], self.rest[n:]
        return n


def save(chunks: Iterable[bytes], fmt: str, dest: Path) -> None:
    """Write a download (or an upload) to `dest`: a Parquet file, or a dir for a tar stream.
    `dest` appears only once complete; a cut stream raises and leaves nothing behind."""
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
    try:
        if fmt == ARROW:
            _arrow_to_parquet(io.BufferedReader(_ChunkReader(chunks)), tmp)
        elif fmt == PARQUET:
            with tmp.open("wb") as f:
                for chunk in chunks:
                    f.write(chunk)
        elif fmt == TAR:
            with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks)), mode="r|") as tf:
                tf.extractall(tmp, filter="data")
            tmp.mkdir(exist_ok=True)  # an empty dir sends an empty tar
        else:
            raise ValueError(f"unknown transfer format {fmt!r}")
        _replace(tmp, dest)
    finally:
        _remove(tmp)


def _arrow_to_parquet(source: io.BufferedReader, dest: Path) -> None:
    reader = pa.ipc.open_stream(source)
    with pq.ParquetWriter(dest, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _replace(src: Path, dest: Path) -> None:
    _remove(dest)
    src.replace(dest)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
