"""Settings an administrator changes in the browser, kept in DuckDB (not command-line flags).

Today one: who may create projects ("everyone", "admins", or "allowed": admins and the
users an admin allowed).
"""

from __future__ import annotations

from reef.errors import InvalidInput
from reef.store.db import Database
from reef.store.people import Principal

PROJECT_CREATION = {
    "everyone": "every signed-in person may create projects",
    "admins": "only administrators may create projects",
    "allowed": "administrators and the people they allow may create projects",
}


class SiteSettings:
    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, key: str, default: str) -> str:
        value = self.db.scalar("SELECT value FROM site_settings WHERE key = ?", [key])
        return default if value is None else str(value)

    def put(self, key: str, value: str) -> None:
        self.db.execute(
            "INSERT INTO site_settings VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
            [key, value, value],
        )

    def project_creation(self) -> str:
        return self.get("project_creation", "everyone")

    def set_project_creation(self, mode: str) -> None:
        if mode not in PROJECT_CREATION:
            raise InvalidInput(
                f"project_creation must be one of {', '.join(PROJECT_CREATION)}, not {mode!r}"
            )
        self.put("project_creation", mode)

    def may_create_projects(self, who: Principal) -> bool:
        mode = self.project_creation()
        if who.is_admin or mode == "everyone":
            return True
        if mode == "admins":
            return False
        allowed = self.db.scalar(
            "SELECT may_create_projects FROM users WHERE id = ?", [who.user_id]
        )
        return bool(allowed)
