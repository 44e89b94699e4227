"""The one settings object. The CLI builds it once; tests build it with a temp data dir."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

REPO_MODULES = Path(__file__).resolve().parent / "library"


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _opt(Path("reef-data"), "directory holding everything reef owns")
    host: str = _opt("127.0.0.1", "address to listen on")
    port: int = _opt(8080, "port to listen on")
    workers: int = _opt(
        2, "queue consumer threads (steps that may run at once; 0: only `reef worker`s run them)"
    )
    cpu_steps: int = _opt(0, "CPU-only steps that may run at once (0: up to --workers)")
    step_timeout: float = _opt(3600.0, "default time limit of one step, in seconds")
    modules_dir: Path = _opt(REPO_MODULES, "built-in modules committed into project 'library'")
    gpus: str = _opt("auto", "GPUs lent to steps: auto (nvidia-smi), none, or indexes like 0,1")
    max_upload_mb: int = _opt(51200, "largest accepted upload, in MiB")
    max_unpacked_mb: int = _opt(8192, "most a .zip or .xlsx upload may unpack to, in MiB")
    max_cell_mb: int = _opt(64, "largest single value of an upload (an image, a text), in MiB")
    max_columns: int = _opt(10_000, "most columns an uploaded table may have")
    import_timeout: float = _opt(3600.0, "time limit of one dataset import, in seconds")
    import_workers: int = _opt(2, "dataset imports that may run at once (more wait their turn)")
    query_workers: int = _opt(4, "SQL queries and exports that may run at once (more get 429)")
    query_per_person: int = _opt(2, "SQL queries and exports one person may run at once")
    query_timeout: float = _opt(30.0, "time limit of one SQL query, in seconds")
    export_timeout: float = _opt(
        600.0, "time limit of one download (a query's result or a dataset version), in seconds"
    )
    queue: str = _opt(
        "sqlite",
        "step queue: sqlite (a file in the data dir) or redis://HOST:PORT/DB (shared "
        "with `reef worker`s on other boxes)",
    )
    worker_timeout: float = _opt(
        60.0, "seconds a remote worker may stay silent before its running step fails"
    )
    secure_cookies: bool = _opt(
        False, "mark the session cookie Secure (sent over HTTPS only): use behind HTTPS"
    )
    trust_proxy: bool = _opt(
        False,
        "trust X-Forwarded-Proto (https makes cookies Secure) and X-Forwarded-For (the "
        "address sign-in limits count) from a reverse proxy in front of reef",
    )
    unsafe_steps: bool = _opt(
        False,
        "run steps without the sandbox (needed where the kernel lacks Landlock ABI 4); "
        "every page then shows a warning",
    )
    script_run_timeout: float = _opt(
        3600.0,
        "seconds a script run (reef.init) may stay silent before it is marked failed "
        "(the SDK sends a heartbeat while a run is open)",
    )
    cors_origins: str = _opt(
        "", "origins (comma-separated) whose pages may call the API (CORS); none by default"
    )
    admin_password: str | None = _opt(
        None, "password of 'admin' on first start (REEF_ADMIN_PASSWORD)"
    )

    @property
    def url(self) -> str:
        """The URL steps use to reach this server."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    def path(self, *parts: str) -> Path:
        return self.data_dir.joinpath(*parts)


def describe() -> list[tuple[str, object, str]]:
    """(name, default, help) of every setting, for --help and the docs."""
    return [(f.name, f.default, f.metadata.get("help", "")) for f in fields(Settings)]
