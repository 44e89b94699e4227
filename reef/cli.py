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
    settings = settings_from(args)
    if args.command == "serve":
        from reef.server.run import serve

        return serve(settings)
    from reef.demo import run_demo

    return run_demo(settings, exit_after=args.exit)


if __name__ == "__main__":
    sys.exit(main())
