"""`reef user reset-password NAME`: a new one-time password for a forgotten one.

It opens the data dir's DuckDB file directly, so it works while the server is stopped
(only one process can open that file; with a server running, the admin page does this).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import duckdb

from reef.errors import ReefError


def add_user_parser(sub: argparse._SubParsersAction) -> None:
    text = "manage accounts while the server is stopped"
    user = sub.add_parser("user", help=text, description=text.capitalize() + ".")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    text = "print a new one-time password for a user (server stopped)"
    reset = user_sub.add_parser("reset-password", help=text, description=text.capitalize() + ".")
    reset.add_argument("name", help="the user, e.g. admin")
    reset.add_argument(
        "--data", type=Path, default=Path("reef-data"), help="the data dir (default: reef-data)"
    )


def user_main(args: argparse.Namespace) -> int:
    from reef.store.db import Database
    from reef.store.migrations import MIGRATIONS
    from reef.store.people import People, one_time_password

    path = args.data.resolve() / "reef.duckdb"
    if not path.exists():
        print(f"reef: no reef data in {args.data.resolve()} (give --data DIR)", file=sys.stderr)
        return 2
    try:
        db = Database(path)
    except duckdb.IOException as e:
        if "lock" not in str(e).lower():
            raise
        print(
            f"reef: {path} is in use by a running reef server (DuckDB is locked): stop the "
            "server first, or let an admin reset the password on the users page",
            file=sys.stderr,
        )
        return 2
    try:
        db.migrate(MIGRATIONS)
        password = one_time_password()
        People(db).set_password(args.name, password, must_change=True)
    except ReefError as e:
        print(f"reef: {e.message}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(f"new one-time password for '{args.name}': {password}")
    print("(shown once; reef asks for a new password at the next sign-in)")
    return 0
