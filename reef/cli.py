"""The `reef` command: serve, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path

from reef.settings import Settings, describe

SERVE_OPTIONS = ("data_dir", "host", "port", "workers", "step_timeout", "modules_dir")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
