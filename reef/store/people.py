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
from reef.store.login_throttle import LoginThrottle
from reef.store.ttl_cache import MISSING, NotCached, TTLCache

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
SESSION_DAYS = 14
INVITE_DAYS = 7
MIN_PASSWORD = 8
USER_COLUMNS = (
    "id, name, is_admin, created_at, coalesce(disabled, false) AS disabled, "
    "coalesce(may_create_projects, false) AS may_create_projects, "
    "coalesce(must_change_password, false) AS must_change_password"
)

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
    must_change: bool = False  # signed in with a one-time password not yet replaced


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


# An unknown name is checked against this hash, so that it takes as long as a known one. No
# password hashes to an all-zero digest; a constant spares every start a ~50 ms hash.
UNKNOWN_USER_HASH = f"scrypt${'00' * 16}${'00' * 64}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_rules(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def one_time_password() -> str:
    """A random password an admin hands over once (16 URL-safe characters)."""
    return secrets.token_urlsafe(12)


class TokenExpired(NotAuthenticated):
    """A known token whose expiry has passed."""


class People:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.tokens = TTLCache(ttl_s=5.0)  # every request resolves its token: keep it cheap
        self.throttle = LoginThrottle()

    def create_user(
        self, name: str, password: str, is_admin: bool = False, must_change: bool = False
    ) -> int:
        check_name("user", name)
        check_password_rules(password)
        if self.db.one("SELECT id FROM users WHERE name = ?", [name]):
            raise Conflict(f"user '{name}' already exists")
        rows = self.db.execute(
            "INSERT INTO users (name, password_hash, is_admin, created_at, disabled, "
            "may_create_projects, must_change_password) "
            "VALUES (?, ?, ?, ?, false, false, ?) RETURNING id",
            [name, hash_password(password), is_admin, now(), must_change],
        )
        return int(rows[0][0])

    def user(self, name: str) -> dict:
        row = self.db.one(f"SELECT {USER_COLUMNS} FROM users WHERE name = ?", [name])
        if row is None:
            raise NotFound(f"user '{name}' not found")
        return row

    def list_users(self) -> list[dict]:
        return self.db.query(f"SELECT {USER_COLUMNS} FROM users ORDER BY name")

    def count_users(self) -> int:
        return int(self.db.scalar("SELECT count(*) FROM users"))

    def check_password(self, name: str, password: str, address: str = "") -> Principal:
        """Who signs in with this password. The hash is verified even for an unknown name
        (same time either way), and failures are throttled per user name and address."""
        name = name if isinstance(name, str) else ""
        self.throttle.check(name, address)
        row = self.db.one("SELECT * FROM users WHERE name = ?", [name])
        matches = verify_password(password, row["password_hash"] if row else UNKNOWN_USER_HASH)
        if row is None or not matches:
            self.throttle.failed(name, address)
            raise NotAuthenticated("wrong user name or password")
        if row["disabled"]:
            raise NotAuthenticated(f"the account '{name}' is disabled: ask an administrator")
        return Principal(
            row["id"],
            row["name"],
            row["is_admin"],
            via="password",
            must_change=bool(row["must_change_password"]),
        )

    def set_password(self, name: str, password: str, must_change: bool = False) -> None:
        """A new password; the user's browser sessions and open invite links end."""
        check_password_rules(password)
        uid = self.user(name)["id"]
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE users SET password_hash = ?, must_change_password = ? WHERE id = ?",
                [hash_password(password), must_change, uid],
            )
            cur.execute(
                "UPDATE tokens SET revoked = true WHERE user_id = ? "
                "AND kind IN ('session', 'invite') AND NOT revoked",
                [uid],
            )
        self.tokens.clear()

    def change_own_password(
        self, who: Principal, current: str, new: str, keep: str | None = None
    ) -> None:
        """A person's new password. Their other browser sessions and open invite links end
        (a stolen session stops working); `keep` is the session making the change. API
        tokens stay: each is revoked on its own."""
        row = self.db.one("SELECT password_hash FROM users WHERE id = ?", [who.user_id])
        if row is None or not verify_password(current, row["password_hash"]):
            raise InvalidInput("the current password is wrong")
        check_password_rules(new)
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE users SET password_hash = ?, must_change_password = false WHERE id = ?",
                [hash_password(new), who.user_id],
            )
            cur.execute(
                "UPDATE tokens SET revoked = true WHERE user_id = ? "
                "AND kind IN ('session', 'invite') AND NOT revoked AND hash <> ?",
                [who.user_id, token_hash(keep) if keep else ""],
            )
        self.tokens.clear()

    def set_flags(self, name: str, **flags: bool) -> dict:
        """Change `disabled`, `is_admin` or `may_create_projects` of a user."""
        uid = self.user(name)["id"]
        for column, value in flags.items():
            if column not in ("disabled", "is_admin", "may_create_projects"):
                raise InvalidInput(f"unknown user setting {column!r}")
            self.db.execute(f"UPDATE users SET {column} = ? WHERE id = ?", [bool(value), uid])
        self.tokens.clear()
        return self.user(name)

    def delete_user(self, name: str) -> None:
        """Remove a user, their tokens and memberships; refused while they are the last owner
        of a project (make someone else owner first)."""
        uid = self.user(name)["id"]
        sole = self.db.query(
            "SELECT p.name FROM members m JOIN projects p ON p.id = m.project_id "
            "WHERE m.user_id = ? AND m.role = 'owner' AND (SELECT count(*) FROM members o "
            "WHERE o.project_id = m.project_id AND o.role = 'owner') = 1 ORDER BY p.name",
            [uid],
        )
        if sole:
            names = ", ".join(r["name"] for r in sole)
            raise Conflict(
                f"'{name}' is the last owner of {names}: make another member owner first"
            )
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM tokens WHERE user_id = ?", [uid])
            cur.execute("DELETE FROM members WHERE user_id = ?", [uid])
            cur.execute("DELETE FROM users WHERE id = ?", [uid])
        self.tokens.clear()

    def issue_invite(self, name: str) -> str:
        """A link token that lets `name` choose a password (valid 7 days, one use)."""
        uid = self.user(name)["id"]
        self.db.execute(
            "UPDATE tokens SET revoked = true WHERE user_id = ? AND kind = 'invite'", [uid]
        )
        return self.issue_token(uid, "invite", "invite", ttl=timedelta(days=INVITE_DAYS))

    def invited(self, token: str) -> str:
        """The user name an invite token is for (NotFound if unknown, used or expired)."""
        row = self._token_row(token)
        if row is None or row["kind"] != "invite" or _expired(row["expires_at"]):
            raise NotFound("this invite link is unknown, already used or expired")
        return row["name"]

    def accept_invite(self, token: str, password: str) -> str:
        name = self.invited(token)
        self.set_password(name, password)
        return name

    def api_tokens(self, user_id: int) -> list[dict]:
        """A user's API tokens that are not revoked; `id` is a prefix of the stored hash."""
        return self.db.query(
            "SELECT left(hash, 16) AS id, label AS name, created_at, last_used_at, expires_at, "
            "coalesce(expires_at < ?, false) AS expired FROM tokens "
            "WHERE user_id = ? AND kind = 'api' AND NOT revoked ORDER BY created_at DESC",
            [now(), user_id],
        )

    def revoke_api_token(self, user_id: int, token_id: str) -> None:
        rows = self.db.execute(
            "UPDATE tokens SET revoked = true WHERE user_id = ? AND kind = 'api' "
            "AND NOT revoked AND left(hash, 16) = ? RETURNING hash",
            [user_id, str(token_id)],
        )
        if not rows:
            raise NotFound(f"no token '{token_id}' of yours to revoke")
        self.tokens.clear()

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
        """Who a token belongs to (None: unknown, revoked, of a disabled user, or not of
        `kinds`). An expired one raises TokenExpired."""
        row = self.tokens.get_or(token_hash(token), lambda: self._used_token_row(token))
        if row is None or row["kind"] not in kinds or row["disabled"]:
            return None
        if _expired(row["expires_at"]):
            raise TokenExpired("token expired")
        return Principal(
            row["id"],
            row["name"],
            row["is_admin"],
            row["kind"],
            row["run_id"],
            row["step_name"],
            row["must_change"],
        )

    def _used_token_row(self, token: str) -> dict | None:
        """The token's row, noting when an API token was last used (at most once a minute
        per token, so this write stays rare)."""
        row = self._token_row(token)
        if row is not None and row["kind"] == "api" and _stale(row["last_used_at"]):
            self.db.execute(
                "UPDATE tokens SET last_used_at = ? WHERE hash = ?", [now(), token_hash(token)]
            )
        return row

    def cached_token(self, token: str, kinds: tuple[str, ...]) -> Principal | NotCached | None:
        """Like resolve_token from the cache only; MISSING when the database must be asked."""
        row = self.tokens.get(token_hash(token))
        if row is MISSING:
            return MISSING
        try:
            return self.resolve_token(token, kinds)
        except TokenExpired:
            return MISSING  # the regular path answers (401 "token expired")

    def _token_row(self, token: str) -> dict | None:
        return self.db.one(
            "SELECT t.kind, t.run_id, t.step_name, t.expires_at, t.last_used_at, u.id, u.name, "
            "u.is_admin, coalesce(u.must_change_password, false) AS must_change, "
            "coalesce(u.disabled, false) AS disabled FROM tokens t "
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


def _stale(last_used: datetime | None) -> bool:
    return last_used is None or now() - last_used > timedelta(minutes=1)


def _expired(expires_at: datetime | None) -> bool:
    return expires_at is not None and expires_at < now()
