"""Content-addressed files: models, plots, checkpoints. A file is stored once per digest."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

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

    def put_stream(self, stream: BinaryIO) -> tuple[str, int]:
        """Store a stream; returns (sha256 digest, size). Written to a temp file, then renamed."""
        sha, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    sha.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            digest = sha.hexdigest()
            dest = self.path(digest)
            dest.parent.mkdir(exist_ok=True)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return digest, size

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
