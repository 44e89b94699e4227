"""The `reef` command: serve, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from reef.dataset_cli import add_dataset_parser, dataset_main
from reef.settings import Settings, describe

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
        kind = type(default) if default is not None else str
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


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reef", description="Develop ML together on one GPU box.")
    sub = p.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web UI, the API and the queue")
    add_settings(serve, SERVE_OPTIONS)
    demo = sub.add_parser("demo", help="run the digits demo end to end, then keep serving")
    add_settings(demo, DEMO_OPTIONS)
    demo.add_argument(
        "--exit",
        action="store_true",
        help="stop after the demo; exit 0 only if every step succeeded",
    )
    add_worker_parser(sub)
    add_dataset_parser(sub)
    module = sub.add_parser("module", help="work with AI modules")
    module_sub = module.add_subparsers(dest="module_command", required=True)
    new = module_sub.add_parser("new", help="scaffold a new module folder from the template")
    new.add_argument("name", help="module name (lower-case letters, digits, - _ .)")
    new.add_argument(
        "--kind", default="data-processor", help="data-processor, model, evaluator or visualization"
    )
    new.add_argument("--description", default="", help="one line saying what it does")
    new.add_argument("--dir", type=Path, default=Path("."), help="where to create it")
    return p


def add_worker_parser(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run steps for a server that shares a Redis queue")
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("httpx", "huey", "huey.consumer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "worker":
        return worker_main(args)
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
