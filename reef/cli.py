"""The `reef` command: serve, demo, worker, dataset, module, user."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from reef import __version__
from reef.runtime.launch import skip_httpx_cli

skip_httpx_cli()  # before the imports below load httpx: no reef command uses httpx's own CLI

from reef.dataset_cli import add_dataset_parser, dataset_main  # noqa: E402
from reef.mlflow_import import add_import_parser, import_main  # noqa: E402
from reef.settings import Settings, describe  # noqa: E402
from reef.user_cli import add_user_parser, user_main  # noqa: E402

SERVE_OPTIONS = (
    "data_dir",
    "host",
    "port",
    "workers",
    "cpu_steps",
    "step_timeout",
    "modules_dir",
    "gpus",
    "queue",
    "worker_timeout",
    "secure_cookies",
    "trust_proxy",
    "unsafe_steps",
    "script_run_timeout",
    "max_upload_mb",
    "max_unpacked_mb",
    "max_cell_mb",
    "max_columns",
    "import_timeout",
    "import_workers",
    "query_workers",
    "query_per_person",
    "query_timeout",
    "export_timeout",
    "cors_origins",
)
DEMO_OPTIONS = ("data_dir", "port", "workers")


def add_settings(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    """Options generated from the Settings dataclass: one source for defaults and help."""
    for name, default, help_text in describe():
        if name not in names:
            continue
        flag = "--data" if name == "data_dir" else "--" + name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=name, action="store_true", help=help_text)
            continue
        kind = type(default) if default is not None else str
        if kind is bool:
            parser.add_argument(flag, dest=name, action="store_true", help=help_text)
            continue
        parser.add_argument(
            flag, dest=name, type=kind, default=default, help=f"{help_text} (default: {default})"
        )


def settings_from(args: argparse.Namespace) -> Settings:
    given = {k: v for k, v in vars(args).items() if k in Settings.__dataclass_fields__}
    settings = Settings(**given)
    password = os.environ.get("REEF_ADMIN_PASSWORD")
    return replace(
        settings, data_dir=Path(settings.data_dir).resolve(), admin_password=password or None
    )


def command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line help is also the description its own --help prints."""
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reef", description="Develop ML together on one GPU box.")
    p.add_argument("--version", action="version", version=f"reef {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    serve = command(sub, "serve", "run the web UI, the API and the queue")
    add_settings(serve, SERVE_OPTIONS)
    demo = command(sub, "demo", "run the digits demo end to end, then keep serving")
    add_settings(demo, DEMO_OPTIONS)
    demo.add_argument(
        "--exit",
        action="store_true",
        help="stop after the demo; exit 0 only if every step succeeded",
    )
    add_worker_parser(sub)
    gc = sub.add_parser(
        "gc", help="remove what killed pushes and imports left (run it while reef is stopped)"
    )
    add_settings(gc, ("data_dir",))
    add_dataset_parser(sub)
    add_user_parser(sub)
    add_import_parser(sub)
    module = command(sub, "module", "work with AI modules")
    module_sub = module.add_subparsers(dest="module_command", required=True)
    new = command(module_sub, "new", "scaffold a new module folder from the template")
    new.add_argument("name", help="module name (lower-case letters, digits, - _ .)")
    new.add_argument(
        "--kind", default="data-processor", help="data-processor, model, evaluator or visualization"
    )
    new.add_argument("--description", default="", help="one line saying what it does")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to create it")
    return p


def add_worker_parser(sub: argparse._SubParsersAction) -> None:
    worker = command(sub, "worker", "run steps for a server that shares a Redis queue")
    worker.add_argument("--server", required=True, help="the server's URL, e.g. http://HOST:8080")
    worker.add_argument(
        "--token", default=None, help="an API token of a developer (default: $REEF_TOKEN)"
    )
    worker.add_argument("--queue", required=True, help="the server's queue: redis://HOST:PORT/DB")
    worker.add_argument("--workers", type=int, default=1, help="steps run at once (default: 1)")
    worker.add_argument(
        "--dir", type=Path, default=Path("reef-worker"), help="work dir (default: ./reef-worker)"
    )
    worker.add_argument("--gpus", default="auto", help="GPUs lent to steps: auto, none or 0,1")
    worker.add_argument("--name", default=None, help="how steps record it (default: HOST:PID)")
    worker.add_argument(
        "--unsafe-steps",
        action="store_true",
        help="run steps without the sandbox (where the kernel lacks Landlock ABI 4)",
    )


def worker_main(args: argparse.Namespace) -> int:
    from reef.runtime.worker import WorkerSettings, run_worker

    token = args.token or os.environ.get("REEF_TOKEN")
    if not token:
        print("reef worker: give --token or set REEF_TOKEN (an API token)", file=sys.stderr)
        return 2
    if not args.queue.startswith(("redis://", "rediss://", "unix://")):
        print("reef worker: --queue must be the server's redis:// queue", file=sys.stderr)
        return 2
    named = {"name": args.name} if args.name else {}
    settings = WorkerSettings(
        server=args.server,
        token=token,
        queue=args.queue,
        workers=max(1, args.workers),
        work_dir=args.dir.resolve(),
        gpus=args.gpus,
        unsafe_steps=args.unsafe_steps,
        **named,
    )
    return run_worker(settings)


def check_queue_or_exit(url: str) -> int | None:
    from reef.runtime.queue import QueueUnavailable, check_queue

    try:
        check_queue(url)
    except QueueUnavailable as e:
        print(f"reef: {e.message}", file=sys.stderr)
        return 2
    return None


def gc_main(data_dir: Path) -> int:
    """`reef gc`: offline, so no import or push is in flight while files are judged."""
    import duckdb

    from reef.store.dataset_gc import collect
    from reef.store.modules import ModuleStore

    if not (data_dir / "reef.duckdb").is_file():
        print(f"reef gc: {data_dir} is no reef data dir", file=sys.stderr)
        return 2
    try:
        duckdb.connect(str(data_dir / "reef.duckdb")).close()
    except duckdb.IOException:
        print(f"reef gc: reef is running on {data_dir}: stop it first", file=sys.stderr)
        return 2
    repos = ModuleStore(data_dir / "git").repair()
    garbage = collect(data_dir)
    for path in [*repos, *garbage.paths]:
        print(f"removed {path}")
    print(
        f"reef gc: removed {len(repos)} half module repo(s) and {len(garbage.paths)} "
        f"unreferenced path(s), {garbage.bytes / 2**20:.1f} MiB"
    )
    return 0


def module_new(args: argparse.Namespace) -> int:
    from reef.errors import ReefError
    from reef.scaffold import write

    try:
        target = write(args.dir, args.name, args.kind, args.description)
    except ReefError as e:
        print(f"reef: {e.message}", file=sys.stderr)
        return 2
    print(
        f"created {target}: edit main.py and reef.toml, then git init, commit and push to "
        f"http://HOST:PORT/git/PROJECT/{args.name}.git"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "module":
        return module_new(args)
    if args.command == "dataset":
        return dataset_main(args)
    if args.command == "user":
        return user_main(args)
    if args.command == "import-mlflow":
        return import_main(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "huey", "huey.consumer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "worker":
        return worker_main(args)
    if args.command == "gc":
        return gc_main(settings_from(args).data_dir)
    settings = settings_from(args)
    if args.command == "serve" and (refused := check_queue_or_exit(settings.queue)):
        return refused
    if args.command == "serve":
        from reef.server.run import serve

        return serve(settings)
    from reef.demo import run_demo

    return run_demo(settings, exit_after=args.exit)


if __name__ == "__main__":
    sys.exit(main())
