"""Content-addressed files: models, plots, checkpoints. A file is stored once per digest."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, BinaryIO

from reef.errors import NotFound

CHUNK = 1 << 20


class Artifacts:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise NotFound(f"artifact {digest!r} not found")
        return self.root / digest[:2] / digest

    def put_stream(self, stream: IO[bytes]) -> tuple[str, int]:
        """Store a stream; returns (sha256 digest, size). Written to a temp file, then renamed."""
        incoming = self.incoming()
        try:
            while chunk := stream.read(CHUNK):
                incoming.write(chunk)
        except BaseException:
            incoming.abort()
            raise
        return incoming.commit()

    def incoming(self) -> Incoming:
        """A file being received chunk by chunk (an HTTP body): write, then commit or abort."""
        return Incoming(self)

    def put_file(self, src: Path) -> tuple[str, int]:
        with src.open("rb") as f:
            return self.put_stream(f)

    def open(self, digest: str) -> BinaryIO:
        path = self.path(digest)
        if not path.exists():
            raise NotFound(f"artifact {digest} not found")
        return path.open("rb")

    def copy_to(self, digest: str, dest: Path) -> None:
        with self.open(digest) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)


class Incoming:
    """One artifact arriving in pieces: hashed as written, renamed into place on commit."""

    def __init__(self, store: Artifacts) -> None:
        self.store = store
        self.sha = hashlib.sha256()
        self.size = 0
        fd, self.tmp = tempfile.mkstemp(dir=store.root, prefix=".incoming-")
        self.out = os.fdopen(fd, "wb")

    def write(self, chunk: bytes) -> None:
        self.sha.update(chunk)
        self.size += len(chunk)
        self.out.write(chunk)

    def commit(self) -> tuple[str, int]:
        try:
            self.out.close()
            digest = self.sha.hexdigest()
            dest = self.store.path(digest)
            dest.parent.mkdir(exist_ok=True)
            os.replace(self.tmp, dest)
        except BaseException:
            self.abort()
            raise
        return digest, self.size

    def abort(self) -> None:
        self.out.close()
        Path(self.tmp).unlink(missing_ok=True)
