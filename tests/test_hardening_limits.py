"""Limits that keep one caller from taking the server down (issue 14, items 2 and 4):
never-ending queries and exports, and upload bombs. One `reef serve` for the module, with
project `lab` (a model `m` and a dataset `table`) and ten reporters."""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import httpx
import openpyxl
import psutil
import pytest
from test_models import labelled_table, register

from conftest import ADMIN_PASSWORD, Server, patience, start_server
from reef.hub import Hub
from reef.runtime.dataset_versions import new_version
from reef.settings import Settings

PEOPLE = 10
EXPORT_LIMIT_S = 10
# Never ends within the limit, and writes no row before it ends: the answer is a clean 4xx.
FOREVER = "SELECT sum(a.range * b.range) FROM range(1000000000) a, range(1000000000) b"
QUERY = "/api/projects/lab/datasets/table/query"


def seed_lab(root: Path) -> Hub:
    """An open hub (no queue) over `root/data` with project `lab`: model `m`, dataset
    `table` v1."""
    settings = Settings(data_dir=root / "data", admin_password=ADMIN_PASSWORD)
    hub = Hub.open(settings, start_queue=False)
    hub.projects.create("lab", hub.admin(), "")
    register(hub, root)
    info = hub.datasets.write_table("lab", "table", labelled_table())
    new_version(hub, "admin", "lab", "table", info, "labelled rows", source="test")
    return hub


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    """The server and a token per person (admin and reporter0..9)."""
    root = tmp_path_factory.mktemp("limits")
    data, hub = root / "data", seed_lab(root)
    tokens = {"admin": hub.people.issue_token(hub.admin().user_id, "api")}
    for i in range(PEOPLE):
        user_id = hub.people.create_user(f"reporter{i}", "pw-" + "x" * 12)
        hub.projects.set_member("lab", hub.people.user(f"reporter{i}"), "reporter", "owner")
        tokens[f"reporter{i}"] = hub.people.issue_token(user_id, "api")
    hub.close()
    limits = ("--query-workers", "20", "--query-per-person", "2")
    limits += ("--query-timeout", str(EXPORT_LIMIT_S), "--export-timeout", str(EXPORT_LIMIT_S))
    srv = start_server(data, extra=limits)
    yield srv, tokens
    srv.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def export(srv: Server, token: str, sql: str = FOREVER) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    resp = httpx.post(
        f"{srv.url}{QUERY}?format=csv", json={"sql": sql}, headers=bearer(token), timeout=300
    )
    return resp, time.monotonic() - start


class Prober:
    """Calls each probe in turn while `busy` holds, recording the slowest answer of each."""

    def __init__(self, probes: dict[str, Callable[[], httpx.Response]]) -> None:
        self.probes = probes
        self.worst = dict.fromkeys(probes, 0.0)
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            for name, probe in self.probes.items():
                start = time.monotonic()
                try:
                    resp = probe()
                    if resp.status_code != 200:
                        self.failures.append(f"{name}: {resp.status_code} {resp.text[:200]}")
                except httpx.HTTPError as e:
                    self.failures.append(f"{name}: {e!r}")
                self.worst[name] = max(self.worst[name], time.monotonic() - start)
            time.sleep(0.2)

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def probes(srv: Server, token: str) -> dict[str, Callable[[], httpx.Response]]:
    client = httpx.Client(base_url=srv.url, headers=bearer(token), timeout=60)
    row = {"rows": [[0.1, 0.2, 0.3, 0.4]]}
    return {
        "healthz": lambda: client.get("/healthz"),
        "page": lambda: client.get("/projects/lab"),
        "predict": lambda: client.post("/api/projects/lab/models/m/predict", json=row),
    }


def test_twenty_hanging_exports_leave_the_server_answering(lab):
    srv, tokens = lab
    people = [f"reporter{i}" for i in range(PEOPLE)]
    with Prober(probes(srv, tokens["admin"])) as prober, ThreadPoolExecutor(21) as pool:
        exports = [pool.submit(export, srv, tokens[p]) for p in people for _ in range(2)]
        time.sleep(2)  # all twenty are running
        third, _ = export(srv, tokens["reporter0"])  # over the person's cap: refused at once
        results = [f.result() for f in exports]
    assert third.status_code == 429, third.text
    assert "at once" in third.json()["detail"]
    for resp, _ in results:
        assert resp.status_code == 400, resp.text
        assert f"ran longer than {EXPORT_LIMIT_S} s" in resp.json()["detail"]
    took = sorted(t for _, t in results)
    print(f"\n20 hanging exports ended in {took[0]:.1f}-{took[-1]:.1f} s; worst answer under them:",
          {k: round(v, 3) for k, v in prober.worst.items()})  # fmt: skip
    assert not prober.failures, prober.failures
    assert max(prober.worst.values()) < patience(5), prober.worst
    assert took[-1] < EXPORT_LIMIT_S + patience(20)


def test_a_slow_reader_does_not_stretch_the_export_limit(lab):
    """A result that streams is cut at the limit even while the client reads nothing."""
    srv, tokens = lab
    endless = "SELECT range, range * 2 AS twice FROM range(1000000000000)"
    start = time.monotonic()
    with httpx.stream(
        "POST", f"{srv.url}{QUERY}?format=csv", json={"sql": endless},
        headers=bearer(tokens["reporter9"]), timeout=300,
    ) as resp:  # fmt: skip
        assert resp.status_code == 200
        time.sleep(EXPORT_LIMIT_S + 2)  # read nothing for longer than the limit
        with pytest.raises(httpx.HTTPError):
            for _ in resp.iter_bytes():
                pass
    assert time.monotonic() - start < EXPORT_LIMIT_S + patience(30)


# --- upload bombs ------------------------------------------------------------------------------

GIB = 1 << 30


def zip_bomb(dest: Path) -> Path:
    """A ~1 MB zip of images whose one entry unpacks to 1 GiB."""
    zeros = bytes(1 << 20)
    with (
        zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive,
        archive.open("cats/big.png", "w", force_zip64=True) as f,
    ):
        for _ in range(GIB >> 20):
            f.write(zeros)
    return dest


Part = Callable[[BinaryIO, bytes], None]  # writes a part, given the original (or b"")


def workbook(dest: Path, replace: dict[str, Part]) -> Path:
    """A small openpyxl workbook (header a, b and one row) with some parts rewritten or added
    by streaming writers (so a bomb is built without holding it)."""
    plain = dest.with_suffix(".plain.xlsx")
    book = openpyxl.Workbook()
    book.active.append(["a", "b"])
    book.active.append(["text", 1])
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            if info.filename not in replace:
                out.writestr(info, src.read(info.filename))
        for name, write in replace.items():
            old = src.read(name) if name in src.namelist() else b""
            with out.open(name, "w", force_zip64=True) as f:
                write(f, old)
    return dest


def huge_string(f: BinaryIO, old: bytes) -> None:
    f.write(
        b'<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
        b'2006/main" count="2" uniqueCount="2"><si><t>a</t></si><si><t>'
    )
    chunk = b"A" * (1 << 20)
    for _ in range(500):
        f.write(chunk)
    f.write(b"</t></si></sst>")


def sheet(rows: str, dimension: str = "A1:B2") -> Part:
    def write(f: BinaryIO, old: bytes) -> None:
        f.write(
            b'<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/'
            b'spreadsheetml/2006/main"><dimension ref="' + dimension.encode() + b'"/>'
            b"<sheetData>" + rows.encode() + b"</sheetData></worksheet>"
        )

    return write


def inserted(before: bytes, text: bytes) -> Part:
    return lambda f, old: f.write(old.replace(before, text + before))


SHARED_STRINGS = {  # a workbook whose second shared text is 500 MB
    "[Content_Types].xml": inserted(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" '
        b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.'
        b'sharedStrings+xml"/>'),
    "xl/_rels/workbook.xml.rels": inserted(b"</Relationships>", b'<Relationship Id="rIdS" '
        b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        b'sharedStrings" Target="sharedStrings.xml"/>'),
    "xl/sharedStrings.xml": huge_string,
}  # fmt: skip
HEADER = '<row r="1"><c r="A1" t="inlineStr"><is><t>a</t></is></c><c r="B1"><v>2</v></c></row>'


def wide_csv(dest: Path, columns: int = 100_000) -> Path:
    names = ",".join(f"c{i}" for i in range(columns))
    dest.write_text(names + "\n" + ",".join("1" for _ in range(columns)) + "\n")
    return dest


def one_line_csv(dest: Path) -> Path:
    with dest.open("wb") as f:
        for _ in range(50):
            f.write(b"x" * (1 << 20))
    return dest


BOMBS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    # name: (build it in a folder, what the refusal names, its file name)
    "zip-1gib-entry": (lambda d: zip_bomb(d / "bomb.zip"), "--max-cell-mb", "bomb.zip"),
    "xlsx-500mb-string": (
        lambda d: workbook(d / "s.xlsx", {**SHARED_STRINGS, "xl/worksheets/sheet1.xml": sheet(
            HEADER + '<row r="2"><c r="A2" t="s"><v>1</v></c></row>')}),
        "--max-cell-mb", "s.xlsx",
    ),
    "xlsx-5m-rows": (
        lambda d: workbook(d / "r.xlsx", {"xl/worksheets/sheet1.xml": sheet(
            HEADER + '<row r="5000000"><c r="A5000000"><v>1</v></c></row>', "A1:B5000000")}),
        "Excel's own limit", "r.xlsx",
    ),
    "xlsx-16384-real-columns": (
        lambda d: workbook(d / "c.xlsx", {"xl/worksheets/sheet1.xml": sheet(
            '<row r="1"><c r="A1"><v>1</v></c><c r="XFD1"><v>2</v></c></row>', "A1:XFD1")}),
        "--max-columns", "c.xlsx",
    ),
    "csv-100000-columns": (lambda d: wide_csv(d / "wide.csv"), "--max-columns", "wide.csv"),
    "csv-one-50mb-line": (lambda d: one_line_csv(d / "line.csv"), "first line", "line.csv"),
}  # fmt: skip


class Memory:
    """The server's peak RSS growth while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.base = self.peak = self.process.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / (1 << 20)

    def __enter__(self) -> Memory:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_each_upload_bomb_is_refused_quickly_within_memory(lab, tmp_path, bomb):
    srv, tokens = lab
    build, limit, filename = BOMBS[bomb]
    src = build(tmp_path)
    client = httpx.Client(base_url=srv.url, headers=bearer(tokens["admin"]), timeout=300)
    with Prober(probes(srv, tokens["admin"])) as prober, Memory(srv.proc.pid) as memory:
        start = time.monotonic()
        with src.open("rb") as f:
            resp = client.post(
                "/api/projects/lab/datasets", files={"file": (filename, f)}, data={"name": "bomb"}
            )
        took = time.monotonic() - start
    print(f"\n{bomb}: {src.stat().st_size / 1e6:.2f} MB upload -> {resp.status_code} in "
          f"{took:.1f} s, server RSS +{memory.growth_mb:.0f} MB, worst probe "
          f"{max(prober.worst.values()):.2f} s: {resp.json().get('detail')}")  # fmt: skip
    assert 400 <= resp.status_code < 500, resp.text
    assert limit in resp.json()["detail"]
    assert took < patience(30)
    assert memory.growth_mb < 500
    assert not prober.failures, prober.failures
    names = [d["name"] for d in client.get("/api/projects/lab/datasets").json()]
    assert "bomb" not in names  # nothing stored
    assert not list((srv.data / "uploads").glob("*/*"))  # the upload is gone too


def test_a_workbook_claiming_16384_columns_has_the_columns_it_holds(lab, tmp_path):
    srv, tokens = lab
    rows = HEADER + '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>3</v></c></row>'
    claims = workbook(
        tmp_path / "claims.xlsx", {"xl/worksheets/sheet1.xml": sheet(rows, "A1:XFD9")}
    )
    client = httpx.Client(base_url=srv.url, headers=bearer(tokens["admin"]), timeout=120)
    with claims.open("rb") as f:
        resp = client.post("/api/projects/lab/datasets", files={"file": ("claims.xlsx", f)})
    assert resp.status_code == 201, resp.text
    version = resp.json()
    assert [c for c, _ in version["columns"]] == ["a", "2"] or len(version["columns"]) == 2
    assert version["num_rows"] == 1


def test_a_background_import_over_a_limit_is_a_failed_job_naming_it(lab, tmp_path):
    srv, tokens = lab
    client = httpx.Client(base_url=srv.url, headers=bearer(tokens["admin"]), timeout=120)
    with wide_csv(tmp_path / "wide.csv", 20_000).open("rb") as f:
        resp = client.post("/api/projects/lab/datasets?wait=false", files={"file": ("w.csv", f)})
    assert resp.status_code == 202, resp.text
    deadline = time.monotonic() + patience(30)
    job = resp.json()
    while job["status"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = client.get(f"/api/projects/lab/imports/{job['id']}").json()
    assert job["status"] == "failed" and "--max-columns" in job["error"], job


def test_an_import_past_its_time_limit_stops_and_stores_nothing(tmp_path):
    from reef.errors import TooLarge
    from reef.store.datasets import DatasetStore
    from reef.store.import_limits import ImportLimits

    store = DatasetStore(tmp_path / "ds", ImportLimits(seconds=0.0))
    src = tmp_path / "rows.csv"
    src.write_text("a,b\n" + "1,2\n" * 1000)
    with pytest.raises(TooLarge, match="--import-timeout"):
        store.import_file("p", "rows", src)
    assert not store.exists("p", "rows")
