"""Projects, their members, and the roles that decide what each member may do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from reef.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from reef.store.db import Database, fetched, now
from reef.store.people import Principal, check_name
from reef.store.ttl_cache import NotCached, TTLCache

ROLES = ("reporter", "developer", "maintainer", "owner")
ROLE_HELP = {
    "reporter": "sees everything in the project and comments, but changes nothing",
    "developer": "also uploads and edits datasets, pushes modules and runs pipelines",
    "maintainer": "also manages members (except owners), sets gates and promotes models",
    "owner": "full control: also grants the owner role and deletes the project",
}
LIBRARY = "library"  # built-in modules; readable by every signed-in user


def rank(role: str | None) -> int:
    return ROLES.index(role) + 1 if role in ROLES else 0


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    description: str
    created_by: str
    created_at: datetime


class Projects:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.roles = TTLCache(ttl_s=5.0)  # every request checks a role: keep it cheap
        self.ids = TTLCache(ttl_s=5.0)  # name -> id, for hot paths that only need the id

    def create(self, name: str, owner: Principal, description: str = "") -> Project:
        check_name("project", name)
        if self.db.one("SELECT id FROM projects WHERE name = ?", [name]):
            raise Conflict(f"project '{name}' already exists")
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO projects (name, description, created_by, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                [name, description, owner.name, now()],
            )
            pid = fetched(cur.fetchone())[0]
            cur.execute("INSERT INTO members VALUES (?, ?, 'owner')", [pid, owner.user_id])
        self.roles.clear()
        return self.get(name)

    def get(self, name: str) -> Project:
        row = self.db.one("SELECT * FROM projects WHERE name = ?", [name])
        if row is None:
            raise NotFound(f"project '{name}' not found")
        return Project(**row)

    def name_of(self, project_id: int) -> str | None:
        """The name of project `project_id`, or None."""
        return self.db.scalar("SELECT name FROM projects WHERE id = ?", [project_id])

    def id_of(self, name: str) -> int:
        """The project's id (NotFound if there is none), kept a few seconds."""
        return self.ids.get_or(name, lambda: self.get(name).id)

    def exists(self, name: str) -> bool:
        return self.db.one("SELECT id FROM projects WHERE name = ?", [name]) is not None

    def visible_to(self, who: Principal) -> list[dict]:
        """Projects the user belongs to (all of them for an admin), with the user's role."""
        return self.db.query(
            "SELECT p.name, p.description, p.created_at, m.role FROM projects p "
            "LEFT JOIN members m ON m.project_id = p.id AND m.user_id = ? "
            "WHERE m.role IS NOT NULL OR ? OR p.name = ? ORDER BY p.name",
            [who.user_id, who.is_admin, LIBRARY],
        )

    def update(self, name: str, description: str) -> Project:
        self.get(name)
        self.db.execute("UPDATE projects SET description = ? WHERE name = ?", [description, name])
        return self.get(name)

    def role_of(self, project: str, who: Principal) -> str | None:
        """The role `who` holds in `project`; admins act as owners, everyone reads the library."""
        return self.roles.get_or(
            (project, who.user_id, who.is_admin), lambda: self._role(project, who)
        )

    def cached_role(self, project: str, who: Principal) -> str | NotCached | None:
        """Like role_of from the cache only; MISSING when the database must be asked."""
        return self.roles.get((project, who.user_id, who.is_admin))

    def _role(self, project: str, who: Principal) -> str | None:
        row = self.db.one(
            "SELECT m.role FROM projects p JOIN members m ON m.project_id = p.id "
            "WHERE p.name = ? AND m.user_id = ?",
            [project, who.user_id],
        )
        if who.is_admin:
            return "owner"
        if row:
            return row["role"]
        return "reporter" if project == LIBRARY else None

    def require(self, project: str, who: Principal, role: str) -> str:
        """Raise unless `who` holds at least `role` in `project`; returns the role held."""
        held = self.role_of(project, who)
        if held is None:  # a private project answers as if it did not exist
            raise NotFound(f"project '{project}' not found")
        if rank(held) < rank(role):
            raise PermissionDenied(
                f"this needs the {role} role in project '{project}'; you are {held}"
            )
        return held

    def members(self, project: str) -> list[dict]:
        pid = self.get(project).id
        return self.db.query(
            "SELECT u.name AS user, m.role FROM members m JOIN users u ON u.id = m.user_id "
            "WHERE m.project_id = ? ORDER BY u.name",
            [pid],
        )

    def set_member(self, project: str, user: dict, role: str, by_role: str | None) -> None:
        """Give `user` (a users row) `role`; `by_role` is the role of the one who asks.
        Only owners grant, change or remove the owner role, and the last owner stays."""
        if role not in ROLES:
            raise InvalidInput(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        pid = self.get(project).id
        current = self._member_role(pid, user["id"])
        self._check_owner_change(pid, project, user["name"], current, role, by_role)
        with self.db.transaction() as cur:
            cur.execute(
                "DELETE FROM members WHERE project_id = ? AND user_id = ?", [pid, user["id"]]
            )
            cur.execute("INSERT INTO members VALUES (?, ?, ?)", [pid, user["id"], role])
        self.roles.clear()

    def remove_member(self, project: str, user: dict, by_role: str | None) -> None:
        pid = self.get(project).id
        current = self._member_role(pid, user["id"])
        if current is None:
            raise NotFound(f"'{user['name']}' is not a member of project '{project}'")
        self._check_owner_change(pid, project, user["name"], current, None, by_role)
        self.db.execute(
            "DELETE FROM members WHERE project_id = ? AND user_id = ?", [pid, user["id"]]
        )
        self.roles.clear()

    def _member_role(self, project_id: int, user_id: int) -> str | None:
        return self.db.scalar(
            "SELECT role FROM members WHERE project_id = ? AND user_id = ?", [project_id, user_id]
        )

    def _check_owner_change(
        self,
        pid: int,
        project: str,
        name: str,
        current: str | None,
        new: str | None,
        by: str | None,
    ) -> None:
        if current == new or "owner" not in (current, new):
            return
        if by != "owner":
            raise PermissionDenied("only an owner can grant, change or remove the owner role")
        owners = self.db.scalar(
            "SELECT count(*) FROM members WHERE project_id = ? AND role = 'owner'", [pid]
        )
        if current == "owner" and owners <= 1:
            raise Conflict(
                f"'{name}' is the last owner of project '{project}': make another member "
                "owner first"
            )

    def delete(self, name: str) -> None:
        pid = self.get(name).id
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM members WHERE project_id = ?", [pid])
            cur.execute("DELETE FROM projects WHERE id = ?", [pid])
        self.roles.clear()
        self.ids.clear()
