"""What killed work leaves behind: half module repositories, Lance files of killed imports,
and script runs whose script died. Each is repaired at start-up, by `reef gc`, or by the
script-run watch."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import lance

import reef
from conftest import patience, start_server
from reef.hub import Hub
from reef.settings import Settings
from reef.store.modules import ModuleStore, _init_bare

CSV = "a,b\n1,x\n2,y\n3,z\n"


def make_dataset(settings: Settings, tmp_path: Path) -> Path:
    """Dataset lab/points with two versions; its Lance folder."""
    src = tmp_path / "points.csv"
    src.write_text(CSV)
    hub = Hub.open(settings, start_queue=False)
    try:
        hub.projects.create("lab", hub.admin(), "")
        hub.datasets.import_file("lab", "points", src)
        (tmp_path / "more.csv").write_text("a,b\n4,w\n")
        hub.datasets.append("lab", "points", tmp_path / "more.csv", "csv")
        return hub.datasets.uri("lab", "points")
    finally:
        hub.close()


def plant_leftovers(data: Path, uri: Path) -> list[Path]:
    """What killed imports and uploads leave: data files no version refers to, a dataset with
    no version, an upload spool folder, a partial artifact."""
    fragment = next((uri / "data").glob("*.lance"))
    orphan = uri / "data" / "0101-killed-import.lance"
    shutil.copyfile(fragment, orphan)
    half = data / "datasets" / "lab" / "half.lance" / "data"
    half.mkdir(parents=True)
    shutil.copyfile(fragment, half / "0202-first-import.lance")
    spool = data / "tmpabcd1234"
    spool.mkdir()
    (spool / "upload.csv").write_text(CSV * 1000)
    incoming = data / "blobs" / ".incoming-killed"
    incoming.parent.mkdir(exist_ok=True)
    incoming.write_bytes(b"x" * 1000)
    return [orphan, half.parent, spool, incoming]


def test_reef_gc_removes_what_killed_imports_left_and_keeps_every_version(settings, tmp_path):
    uri = make_dataset(settings, tmp_path)
    before = {v["version"]: lance.dataset(str(uri), version=v["version"]).count_rows()
              for v in lance.dataset(str(uri)).versions()}  # fmt: skip
    leftovers = plant_leftovers(settings.data_dir, uri)
    done = subprocess.run(
        [sys.executable, "-m", "reef.cli", "gc", "--data", str(settings.data_dir)],
        capture_output=True,
        text=True,
        timeout=patience(120),
    )
    assert done.returncode == 0, done.stderr
    assert "4 unreferenced path(s)" in done.stdout
    assert [p for p in leftovers if p.exists()] == []
    after = {v["version"]: lance.dataset(str(uri), version=v["version"]).count_rows()
             for v in lance.dataset(str(uri)).versions()}  # fmt: skip
    assert after == before == {1: 3, 2: 4}


def test_start_up_removes_them_too(settings, tmp_path):
    uri = make_dataset(settings, tmp_path)
    leftovers = plant_leftovers(settings.data_dir, uri)
    Hub.open(settings, start_queue=False).close()
    assert [p for p in leftovers if p.exists()] == []
    assert lance.dataset(str(uri)).count_rows() == 4


def test_gc_refuses_while_reef_runs(server):
    done = subprocess.run(
        [sys.executable, "-m", "reef.cli", "gc", "--data", str(server.data)],
        capture_output=True,
        text=True,
        timeout=patience(60),
    )
    assert done.returncode == 2 and "stop it first" in done.stderr


def test_a_half_created_module_is_repaired(tmp_path):
    store = ModuleStore(tmp_path / "git")
    module = (Path(reef.__file__).parent / "library" / "split").resolve()
    store.commit_dir("team", "kept", module, "first", "dev <dev@x>")
    root = tmp_path / "git" / "team"
    (root / "killed-mid-init.git" / "objects").mkdir(parents=True)  # no HEAD: a killed init
    _init_bare(root / "killed-mid-pack.git")  # whole, but no ref: killed before the ref moved
    (root / "next.git.x1y2.creating" / "refs").mkdir(parents=True)  # killed while being built
    removed = {p.name for p in store.repair()}
    assert removed == {"killed-mid-init.git", "killed-mid-pack.git", "next.git.x1y2.creating"}
    assert store.list_modules("team") == ["kept"]
    (root / "again.git" / "objects").mkdir(parents=True)  # a half repo under a running reef
    assert store.init("team", "again") and store.exists("team", "again")
    store.commit_dir("team", "again", module, "first", "dev <dev@x>")
    assert store.list_modules("team") == ["again", "kept"]


def test_a_silent_script_run_fails_and_a_heartbeat_keeps_one_alive(tmp_path):
    from conftest import modules_dir

    server = start_server(
        tmp_path / "data", modules_dir(tmp_path), extra=("--script-run-timeout", "2")
    )
    try:
        with server.client() as client:
            client.post("/api/projects", json={"name": "lab"})
            created = client.post("/api/projects/lab/runs", json={"name": "killed"}).json()
            assert created["heartbeat_s"] == 0.5
            alive = reef.init("lab", "alive", url=server.url, token=server.token())
            deadline = time.monotonic() + patience(30)
            while time.monotonic() < deadline:
                run = client.get(f"/api/projects/lab/runs/{created['id']}").json()["run"]
                if run["status"] != "running":
                    break
                time.sleep(0.2)
            assert run["status"] == "failed"
            assert "stopped reporting" in run["error"] and "2 s" in run["error"]
            time.sleep(3)  # longer than the timeout: only the heartbeats keep it running
            kept = client.get(f"/api/projects/lab/runs/{alive.run_id}").json()["run"]
            assert kept["status"] == "running"
            alive.finish()
            kept = client.get(f"/api/projects/lab/runs/{alive.run_id}").json()["run"]
            assert kept["status"] == "succeeded"
    finally:
        server.stop()


def test_a_server_killed_mid_import_leaves_nothing_after_its_restart(tmp_path):
    from conftest import modules_dir

    rows = 3_000_000  # ~60 MB: Lance writes data files well before it commits the version
    src = tmp_path / "big.csv"
    with src.open("w") as f:
        f.write("a,b,c\n")
        f.writelines(f"{i},{i * 0.5},row{i}\n" for i in range(rows))
    server = start_server(tmp_path / "data", modules_dir(tmp_path))
    with server.client() as client:
        client.post("/api/projects", json={"name": "lab"})
        with src.open("rb") as f:
            started = client.post(
                "/api/projects/lab/datasets?wait=false",
                files={"file": ("big.csv", f, "text/csv")},
                data={"name": "big", "message": "m"},
            )
        assert started.status_code == 202, started.text
    lance_dir = server.data / "datasets" / "lab" / "big.lance"
    deadline = time.monotonic() + patience(120)
    while not list(lance_dir.glob("data/*")) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert list(lance_dir.glob("data/*")), "the import wrote no data file in time"
    server.proc.kill()
    server.proc.wait(10)
    killed = sorted(p.name for p in lance_dir.glob("data/*"))
    restarted = start_server(server.data, tmp_path / "modules")
    try:
        versions = (lance_dir / "_versions").is_dir()
        left = sorted(p.name for p in lance_dir.glob("data/*")) if lance_dir.exists() else []
        referenced = [] if not versions else sorted(
            Path(f.path).name for fr in lance.dataset(str(lance_dir)).get_fragments()
            for f in fr.metadata.files
        )  # fmt: skip
        assert killed and left == referenced  # only what a committed version refers to
        assert not [p for p in server.data.glob("tmp*") if p.is_dir()]  # the upload's spool
    finally:
        restarted.stop()
