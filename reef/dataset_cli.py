"""`reef dataset import`: upload a file as a new dataset version through the JSON API.

The file is streamed (httpx reads it in chunks while sending the multipart body), so a
multi-GB file never sits in memory. The import runs in the background on the server
(`?wait=false`); the command polls its job, shows the rows imported so far on stderr and
prints the new version.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, cast

import httpx

POLL_S = 0.5
CHUNK = 1 << 20


class CliError(Exception):
    """Something to tell the user, then exit 2 (1 when the server refused)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def add_dataset_parser(sub: argparse._SubParsersAction) -> None:
    text = "work with datasets on a reef server"
    dataset = sub.add_parser("dataset", help=text, description=text.capitalize() + ".")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    text = "upload a file as a new dataset version"
    imp = dataset_sub.add_parser("import", help=text, description=text.capitalize() + ".")
    imp.add_argument("path", type=Path, help="the file: CSV, TSV, Parquet, JSONL, Arrow, xlsx, zip")
    imp.add_argument("--project", required=True, help="the project")
    imp.add_argument("--name", required=True, help="the dataset (new or existing)")
    imp.add_argument("--message", default=None, help="what this version is")
    imp.add_argument("--format", default=None, help="the format (default: from the file name)")
    imp.add_argument("--sheet", default=None, help="xlsx: the sheet (default: the first)")
    imp.add_argument("--delimiter", default=None, help="CSV: one character (default: detected)")
    imp.add_argument("--append", action="store_true", help="add the rows instead of replacing")
    imp.add_argument("--server", default=None, help="the server's URL (default: $REEF_URL)")
    imp.add_argument("--token", default=None, help="an API token (default: $REEF_TOKEN)")
    imp.add_argument("--quiet", action="store_true", help="no progress on stderr")


def dataset_main(args: argparse.Namespace) -> int:
    try:
        version = import_file(args)
    except CliError as e:
        print(f"reef dataset import: {e.message}", file=sys.stderr)
        return e.code
    print(
        f"{args.project}/{version['dataset']} v{version['version']}: "
        f"{version['num_rows']:,} rows, {len(version['columns'])} columns"
    )
    return 0


def import_file(args: argparse.Namespace) -> dict[str, Any]:
    """Upload `args.path`, wait for the server's import, and return the new version."""
    url = (args.server or os.environ.get("REEF_URL") or "").rstrip("/")
    token = args.token or os.environ.get("REEF_TOKEN")
    if not url or not token:
        raise CliError("give --server and --token, or set REEF_URL and REEF_TOKEN", 2)
    if not args.path.is_file():
        raise CliError(f"no such file: {args.path}", 2)
    headers = {"Authorization": f"Bearer {token}"}
    show = not args.quiet
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=httpx.Timeout(60)) as client:
            job = _upload(client, args, show)
            return _wait(client, args.project, job, show)
    except httpx.TransportError as e:
        raise CliError(f"cannot reach {url}: {e}") from None


def _fields(args: argparse.Namespace) -> dict[str, str]:
    given = {
        "name": args.name,
        "message": args.message,
        "format": args.format,
        "sheet": args.sheet,
        "delimiter": args.delimiter,
        "mode": "append" if args.append else None,
    }
    return {key: value for key, value in given.items() if value is not None}


def _upload(client: httpx.Client, args: argparse.Namespace, show: bool) -> dict[str, Any]:
    size = args.path.stat().st_size
    with args.path.open("rb") as raw:
        file = _Progress(raw, size, show)
        resp = client.post(
            f"/api/projects/{args.project}/datasets",
            params={"wait": "false"},
            data=_fields(args),
            files={"file": (args.path.name, cast(IO[bytes], file))},
            timeout=httpx.Timeout(60, write=None, read=None),
        )
    if show:
        print(file=sys.stderr)
    return _json(resp, 202)


def _wait(client: httpx.Client, project: str, job: dict[str, Any], show: bool) -> dict[str, Any]:
    while job["status"] in ("queued", "running"):
        if show:
            print(f"\r{_progress_line(job)}", end="", file=sys.stderr, flush=True)
        time.sleep(POLL_S)
        job = _json(client.get(f"/api/projects/{project}/imports/{job['id']}"), 200)
    if show:
        print(f"\r{_progress_line(job)}", file=sys.stderr)
    if job["status"] == "failed":
        raise CliError(job["error"] or "the import failed")
    return job["result"]


def _progress_line(job: dict[str, Any]) -> str:
    total = job.get("total_rows")
    of = f" of {'about ' if job.get('estimated') else ''}{total:,}" if total else ""
    return f"{job['phase']}: {job['rows_done']:,} rows{of}"


def _json(resp: httpx.Response, expected: int) -> dict[str, Any]:
    if resp.status_code != expected:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise CliError(f"{resp.status_code} {detail}")
    return resp.json()


class _Progress:
    """A file that httpx reads chunk by chunk, telling stderr how much was sent."""

    def __init__(self, raw: BinaryIO, size: int, show: bool) -> None:
        self.raw, self.size, self.show, self.sent, self.shown = raw, size, show, 0, -1

    def read(self, n: int = -1) -> bytes:
        chunk = self.raw.read(CHUNK if n is None or n < 0 else n)
        self.sent += len(chunk)
        permille = 1000 * self.sent // self.size if self.size else 1000
        if self.show and permille != self.shown:  # at most 1001 updates, however large
            self.shown = permille
            print(f"\ruploading: {permille / 10:5.1f}%", end="", file=sys.stderr)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def fileno(self) -> int:
        return self.raw.fileno()
