"""Multipart uploads streamed straight into a folder of the data dir: one write per byte.

Litestar's own form parsing spools each file to a temporary file elsewhere (which reef then
copied into the data dir: two writes, and twice the disk, for every upload). Here the request
body is parsed as it arrives: text fields are kept (each up to 1 MiB), the file field is
written as it comes to `<data dir>/uploads/<random>/<file name>`, and the upload limit is
checked on the way. A page's form that sent its CSRF token as a form field (not as the
`X-CSRFToken` header the pages' script adds) has already been parsed by the CSRF check; its
file is then copied once more.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import anyio
from litestar import Request
from litestar.datastructures import UploadFile
from multipart import (
    MultipartSegment,
    ParserError,
    ParserLimitReached,
    PushMultipartParser,
    parse_options_header,
)

from reef.errors import InvalidInput, TooLarge

CSRF_HEADER = "x-csrftoken"
_FIELD_BYTES = 1 << 20
_WRITE_BYTES = 1 << 20


@dataclass
class Received:
    """An upload on disk: its form fields, and its file (None when it sent none)."""

    folder: Path
    fields: dict[str, str] = field(default_factory=dict)
    path: Path | None = None
    filename: str = ""

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


async def receive_upload(request: Request, data_dir: Path, limit_mb: int) -> Received:
    """The multipart body of `request`, its file written under `data_dir/uploads`."""
    root = data_dir / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    received = Received(Path(tempfile.mkdtemp(dir=root)))
    try:
        if request.headers.get(CSRF_HEADER) is None and not request.url.path.startswith("/api/"):
            await _from_parsed_form(request, received, limit_mb)
        else:
            await _parse(request, received, limit_mb << 20)
    except BaseException:
        received.discard()
        raise
    if received.path is not None and received.path.stat().st_size == 0:
        received.discard()
        raise InvalidInput(f"the uploaded file {received.filename!r} is empty")
    return received


async def _parse(request: Request, received: Received, limit: int) -> None:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != "multipart/form-data" or not options.get("boundary"):
        raise InvalidInput("send the file as multipart/form-data (field 'file')")
    writer = _Writer(received, limit)
    stream = request.stream()
    try:
        with PushMultipartParser(options["boundary"], max_segment_count=64) as parser:
            while not parser.closed:
                chunk = await anext(stream, b"")
                for event in parser.parse(chunk):
                    await writer.feed(event)
    except (ParserError, ParserLimitReached) as exc:
        raise InvalidInput(f"invalid multipart/form-data: {exc}") from exc
    finally:
        await writer.close()


class _Writer:
    """Takes the parser's events: a segment starts, its bytes, its end (None)."""

    def __init__(self, received: Received, limit: int) -> None:
        self.received, self.limit = received, limit
        self.segment: MultipartSegment | None = None
        self.text = bytearray()
        self.out: BinaryIO | None = None
        self.buffer, self.size = bytearray(), 0

    async def feed(self, event: Any) -> None:
        if isinstance(event, MultipartSegment):
            self.segment = event
            if event.filename is not None and event.name == "file":
                await self._open(event.filename)
        elif event is None:
            await self._end()
        elif self.out is not None:
            await self._write(event)
        elif self.segment is not None and self.segment.filename is None:
            self.text += event
            if len(self.text) > _FIELD_BYTES:
                raise TooLarge(f"the form field {self.segment.name!r} is over 1 MiB")

    async def _open(self, filename: str) -> None:
        if self.received.path is not None:
            raise InvalidInput("send one file per upload (field 'file')")
        name = Path(filename.replace("\\", "/")).name or "upload"
        self.received.path, self.received.filename = self.received.folder / name, filename
        self.out = await anyio.to_thread.run_sync(self.received.path.open, "wb")

    async def _write(self, data: bytes | bytearray) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(f"upload larger than the limit of {self.limit >> 20} MiB")
        self.buffer += data
        if len(self.buffer) >= _WRITE_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self.out is not None and self.buffer:
            chunk, self.buffer = bytes(self.buffer), bytearray()
            await anyio.to_thread.run_sync(self.out.write, chunk)

    async def _end(self) -> None:
        segment, self.segment = self.segment, None
        if self.out is not None:
            await self.close()
        elif segment is not None and segment.filename is None and segment.name:
            self.received.fields[segment.name] = self.text.decode(segment.charset or "utf-8")
        self.text = bytearray()

    async def close(self) -> None:
        if self.out is not None:
            await self._flush()
            out, self.out = self.out, None
            await anyio.to_thread.run_sync(out.close)


async def _from_parsed_form(request: Request, received: Received, limit_mb: int) -> None:
    form = await request.form()
    for key in form:
        value = form.get(key)
        if isinstance(value, UploadFile):
            if key == "file":
                await anyio.to_thread.run_sync(_copy, value, received, limit_mb)
        elif isinstance(value, str):
            received.fields[key] = value


def received_file(
    data_dir: Path, file: UploadFile, fields: dict[str, str], limit_mb: int
) -> Received:
    """An UploadFile already parsed by Litestar (a page form), copied under
    `data_dir/uploads` as an upload the import path takes."""
    root = data_dir / "uploads"
    root.mkdir(parents=True, exist_ok=True)
    received = Received(Path(tempfile.mkdtemp(dir=root)), dict(fields))
    try:
        _copy(file, received, limit_mb)
    except BaseException:
        received.discard()
        raise
    return received


def _copy(file: UploadFile, received: Received, limit_mb: int) -> None:
    name = Path((file.filename or "upload").replace("\\", "/")).name or "upload"
    received.path, received.filename = received.folder / name, file.filename or name
    file.file.seek(0)
    with received.path.open("wb") as out:
        copied = 0
        while chunk := file.file.read(_WRITE_BYTES):
            copied += len(chunk)
            if copied > limit_mb << 20:
                raise TooLarge(f"upload larger than the limit of {limit_mb} MiB")
            out.write(chunk)
