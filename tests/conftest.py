"""Fixtures: real servers on free loopback ports, in-process apps over temp data dirs."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from reef.runtime import landlock
from reef.sdk import tls_context  # one per worker: the health polls made thousands
from reef.settings import REPO_MODULES, Settings

ADMIN_PASSWORD = "admin-password-for-tests"
TEST_MODULES = Path(__file__).parent / "modules"


STEP_ROOT = Path(tempfile.gettempdir()) / "reef-test-data"
# a kernel without Landlock ABI 4 refuses steps: there the suite runs them unsandboxed (and
# test_sandbox.py skips); on this kernel (ABI 7) every test's steps run sandboxed
UNSAFE = landlock.abi_version() < 4
STEP_FLAGS = ("--unsafe-steps",) if UNSAFE else ()


def reachable(data: Path) -> Path:
    """`data`, made a link to a folder that sandboxed steps can reach. As root, steps run as
    `nobody`, who cannot pass pytest's temp root: pytest keeps it 0700 and resets it whenever
    any pytest session starts, so the search bit reef grants would not last."""
    if os.geteuid() != 0 or data.exists() or data.is_symlink():
        return data
    STEP_ROOT.mkdir(exist_ok=True)
    STEP_ROOT.chmod(0o711)
    real = Path(tempfile.mkdtemp(dir=STEP_ROOT))
    real.chmod(0o711)
    atexit.register(shutil.rmtree, real, ignore_errors=True)
    data.parent.mkdir(parents=True, exist_ok=True)
    data.symlink_to(real, target_is_directory=True)
    return data


_TEMPLATES: dict[str, Path] = {}  # per worker: module names -> a freshly opened data dir


def seeded(data: Path, modules: Path | None = None) -> Path:
    """`data`, made reachable and filled with a copy of a data dir reef has just opened for
    the first time (migrated, `admin` created with ADMIN_PASSWORD, the built-in modules of
    `modules` committed). Each worker opens one such dir per set of modules and copies it:
    opening an empty dir costs seconds of git fsyncs, migrations and password hashing, and
    almost every test starts from exactly that state."""
    modules = modules or REPO_MODULES
    key = ",".join(sorted(p.name for p in modules.iterdir() if (p / "reef.toml").is_file()))
    template = _TEMPLATES.get(key)
    if template is None:
        from reef.hub import Hub

        template = Path(tempfile.mkdtemp(prefix="reef-template-"))
        atexit.register(shutil.rmtree, template, ignore_errors=True)
        first = Settings(
            data_dir=template, modules_dir=modules, admin_password=ADMIN_PASSWORD, workers=0
        )
        Hub.open(first).close()
        _TEMPLATES[key] = template
    target = reachable(data)
    shutil.copytree(template, target.resolve(), dirs_exist_ok=True)
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def modules_dir(root: Path) -> Path:
    """The built-in modules plus the test modules (sleeper), in one folder."""
    dest = root / "modules"
    for src in [*REPO_MODULES.iterdir(), *TEST_MODULES.iterdir()]:
        if (src / "reef.toml").exists():
            shutil.copytree(src, dest / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@functools.cache
def loopback() -> httpx.Client:
    """A client for one-off requests to the test servers (health polls, tokens). It keeps no
    connection open: servers stop, and a later one may take the same port."""
    return httpx.Client(
        timeout=60, verify=tls_context(), limits=httpx.Limits(max_keepalive_connections=0)
    )


@dataclass
class Server:
    """A `reef serve` subprocess."""

    url: str
    data: Path
    proc: subprocess.Popen
    log: Path

    def token(self, user: str = "admin", password: str = ADMIN_PASSWORD) -> str:
        resp = loopback().post(f"{self.url}/api/tokens", auth=(user, password))
        resp.raise_for_status()
        return resp.json()["token"]

    def client(self, token: str | None = None) -> httpx.Client:
        token = token or self.token()
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            verify=tls_context(),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Stop the server; one that outlives `timeout` after the signal is killed, so no
        test leaves a server running."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(patience(timeout))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    data: Path, modules: Path | None = None, port: int | None = None, extra: tuple = ()
) -> Server:
    port = port or free_port()
    log = data.parent / f"server-{port}.log"
    if data.exists():  # a test made it (or seeded it with data of its own)
        reachable(data).mkdir(parents=True, exist_ok=True)
    else:
        seeded(data, modules)
    env = {**os.environ, "REEF_ADMIN_PASSWORD": ADMIN_PASSWORD}
    cmd = [sys.executable, "-m", "reef.cli", "serve", "--data", str(data), "--port", str(port)]
    if modules:
        cmd += ["--modules-dir", str(modules)]
    cmd += [*STEP_FLAGS, *extra]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", data, proc, log)
    try:
        wait_healthy(server)
    except BaseException:
        server.stop(signal.SIGKILL)  # never leave a server behind when its start failed
        raise
    return server


def start_redis(root: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a free loopback port (no persistence); (process, URL)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + patience(10)
    while time.monotonic() < deadline:
        done = subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True)
        if done.stdout.strip() == b"PONG":
            return proc, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    proc.kill()
    raise TimeoutError("redis-server did not start")


def patience(seconds: float) -> float:
    """A timeout scaled by how busy the machine is: `seconds` on a quiet machine, up to six
    times that when the load average is far above the core count (CI after a session, or
    parallel helpers, load the box; a wait that gives up there is a false failure)."""
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return seconds * min(6.0, max(1.0, load))


def wait_healthy(server: Server, timeout: float = 120) -> None:
    timeout = patience(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"reef serve exited early:\n{server.output()}")
        try:
            if loopback().get(f"{server.url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"reef serve not healthy in {timeout} s:\n{server.output()}")


def wait_run(client: httpx.Client, project: str, run_id: int, timeout: float = 180) -> dict:
    timeout = patience(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get(f"/api/projects/{project}/runs/{run_id}").json()
        if state["run"]["status"] in ("succeeded", "failed", "cancelled"):
            return state
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} still {state['run']['status']} after {timeout} s")


# Groups that take 20 s or more, longest first (seconds summed from --durations=0 on 2 cores,
# bench/results/suite.txt): started in this order, no worker is left alone with a long group
# at the end (with only the three longest first, the last 90 s kept one core idle). The
# shorter rest keep the order of their files.
HEAVY_FIRST = (
    "test_mlflow",  # 129 s
    "demo",  # 79
    "test_run_control",  # 61
    "test_step_limits",  # 52
    "test_image_serving",  # 50
    "test_builtin_modules",  # 49
    "test_worker",  # 48
    "test_models",  # 45
    "test_model_metrics",  # 45
    "test_expert_path",  # 45
    "test_hardening_limits",  # 43
    "test_datasets_api",  # 42
    "test_triggers",  # 39
    "test_crash_safety",  # 39
    "test_git",  # 33
    "test_labeling_browser",  # 32
    "test_tabular",  # 31
    "test_wheel",  # 31
    "test_pipelines_api",  # 31
    "test_api_fuzz",  # 30
    "test_raw_row_models",  # 26
    "test_auth",  # 24
    "test_modules_ui",  # 22
    "test_tracking",  # 22
    "test_labeling",  # 21
)


def group_of(item: pytest.Item) -> str:
    """The xdist group of a test: every test that reads the session's `demo` server shares one
    (so the demo runs once, not once per worker); the others stay with their file, whose
    module-scoped fixtures serve tests in order."""
    return "demo" if "demo" in item.fixturenames else item.path.stem


@pytest.hookimpl(tryfirst=True)  # before xdist's hook reads the marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(group_of(item)))

    def rank(item: pytest.Item) -> int:
        group = item.get_closest_marker("xdist_group").args[0]
        return HEAVY_FIRST.index(group) if group in HEAVY_FIRST else len(HEAVY_FIRST)

    items.sort(key=rank)  # stable: files keep their order within a rank


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A fresh `reef serve` with the built-in and test modules."""
    srv = start_server(tmp_path / "data", modules_dir(tmp_path))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `reef serve` for the tests of a file that neither stop it nor need settings of
    their own (each start costs seconds of imports); such tests use names of their own."""
    root = tmp_path_factory.mktemp("shared")
    srv = start_server(root / "data", modules_dir(root))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict]]:
    """One server on which the demo flow ran once (shared by the slow tests that read it)."""
    from reef.demo import DemoResult, drive
    from reef.sdk import Client

    root = tmp_path_factory.mktemp("demo")
    srv = start_server(root / "data", modules_dir(root))
    client = Client(srv.url, srv.token())
    try:  # a failed demo must not leave its server running
        result = DemoResult()
        drive(client, result)
        assert result.ok, "\n".join(result.lines) + "\n" + srv.output()
        yield srv, {"run_id": result.run_id, "accuracy": result.accuracy, "token": srv.token()}
    finally:
        client.close()
        srv.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    modules = modules_dir(tmp_path)
    return Settings(
        data_dir=seeded(tmp_path / "data", modules).resolve(),
        unsafe_steps=UNSAFE,
        modules_dir=modules,
        admin_password=ADMIN_PASSWORD,
        port=free_port(),
    )


@pytest.fixture
def app_client(settings: Settings) -> Iterator:
    """The app in-process (Litestar's TestClient) over a temp data dir: for API behaviour that
    needs no step process."""
    from litestar.testing import TestClient

    from reef.server.app import create_app

    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client


@pytest.fixture(scope="module")
def openapi_doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The OpenAPI document of an app built in-process (nothing served)."""
    from reef.server.app import create_app

    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("openapi")))
    return app.openapi_schema.to_schema()


def api_token(client, user: str = "admin", password: str = ADMIN_PASSWORD) -> dict[str, str]:
    resp = client.post("/api/tokens", auth=(user, password))
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['token']}"}


def csrf(html: str) -> str:
    """The CSRF token of the first form on a page."""
    return re.search(r'name="_csrf_token" value="([^"]+)"', html).group(1)


def login(client, user: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Sign a test client in through the login form (session cookie)."""
    token = csrf(client.get("/login").text)
    resp = client.post(
        "/login",
        data={"username": user, "password": password, "_csrf_token": token},
        follow_redirects=False,
    )
    assert resp.status_code in (302, 303), resp.text
