"""Users, password hashes and tokens (API, browser session, and a run's step token)."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from reef.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from reef.store.db import Database, now
from reef.store.ttl_cache import MISSING, TTLCache

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
SESSION_DAYS = 14

TOKEN_PREFIX = "reef_"


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and through which kind of token."""

    user_id: int
    name: str
    is_admin: bool
    via: str  # session | api | run
    run_id: int | None = None
    step: str | None = None  # a step's run token: the step it reports as


def check_name(kind: str, name: str) -> str:
    """A URL-safe name: lower-case letters, digits, and `_.-`, up to 63 characters."""
    if not isinstance(name, str) or not NAME.match(name) or ".." in name:
        raise InvalidInput(
            f"invalid {kind} name {name!r}: use lower-case letters, digits, '-', '_' or '.', "
            "starting with a letter or digit, at most 63 characters"
        )
    return name


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    _, salt, _ = stored.split("$")
    return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class People:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tokens = TTLCache(ttl_s=5.0)  # every request resolves its token: keep it cheap

    def create_user(self, name: str, password: str, is_admin: bool = False) -> int:
        check_name("user", name)
        if len(password) < 8:
            raise InvalidInput("a password needs at least 8 characters")
        if self.db.one("SELECT id FROM users WHERE name = ?", [name]):
            raise Conflict(f"user '{name}' already exists")
        rows = self.db.execute(
            "INSERT INTO users (name, password_hash, is_admin, created_at) "
            "VALUES (?, ?, ?, ?) RETURNING id",
            [name, hash_password(password), is_admin, now()],
        )
        return int(rows[0][0])

    def user(self, name: str) -> dict:
        row = self.db.one("SELECT id, name, is_admin, created_at FROM users WHERE name = ?", [name])
        if row is None:
            raise NotFound(f"user '{name}' not found")
        return row

    def list_users(self) -> list[dict]:
        return self.db.query("SELECT id, name, is_admin, created_at FROM users ORDER BY name")

    def count_users(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM users"))

    def check_password(self, name: str, password: str) -> Principal:
        row = self.db.one("SELECT * FROM users WHERE name = ?", [name])
        if row is None or not verify_password(password, row["password_hash"]):
            raise NotAuthenticated("wrong user name or password")
        return Principal(row["id"], row["name"], row["is_admin"], via="password")

    def issue_token(
        self,
        user_id: int,
        kind: str,
        label: str = "",
        run_id: int | None = None,
        ttl: timedelta | None = None,
        step: str | None = None,
    ) -> str:
        """A new random token; only its hash is stored. The prefix makes it recognisable (and
        keeps it from starting with '-', which command lines would read as an option). A run
        token given `step` reports as that step only."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = now() + ttl if ttl else None
        self.db.execute(
            "INSERT INTO tokens (hash, user_id, kind, label, run_id, created_at, expires_at, "
            "step_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [token_hash(token), user_id, kind, label, run_id, now(), expires, step],
        )
        return token

    def resolve_token(self, token: str, kinds: tuple[str, ...]) -> Principal | None:
        """Who a token belongs to (None: unknown, revoked, expired, or not of `kinds`)."""
        row = self.tokens.get_or(token_hash(token), lambda: self._token_row(token))
        if row is None or row["kind"] not in kinds or _expired(row["expires_at"]):
            return None
        return Principal(
            row["id"], row["name"], row["is_admin"], row["kind"], row["run_id"], row["step_name"]
        )

    def cached_token(self, token: str, kinds: tuple[str, ...]) -> Principal | object | None:
        """Like resolve_token from the cache only; MISSING when the database must be asked."""
        row = self.tokens.get(token_hash(token))
        if row is MISSING:
            return MISSING
        return self.resolve_token(token, kinds)

    def _token_row(self, token: str) -> dict | None:
        return self.db.one(
            "SELECT t.kind, t.run_id, t.step_name, t.expires_at, u.id, u.name, u.is_admin "
            "FROM tokens t "
            "JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND NOT t.revoked",
            [token_hash(token)],
        )

    def revoke_token(self, token: str) -> None:
        self.db.execute("UPDATE tokens SET revoked = true WHERE hash = ?", [token_hash(token)])
        self.tokens.clear()

    def revoke_run_tokens(self, run_id: int) -> None:
        self.db.execute(
            "UPDATE tokens SET revoked = true WHERE run_id = ? AND NOT revoked", [run_id]
        )
        self.tokens.clear()

    def session_ttl(self) -> timedelta:
        return timedelta(days=SESSION_DAYS)


def _expired(expires_at: datetime | None) -> bool:
    return expires_at is not None and expires_at < now()
