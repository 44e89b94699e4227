"""Each person's inbox: comments, mentions and prediction feedback on what they own or
follow, with a read marker per entry; comments on models and dataset versions; follows.

An entry is a row of `inbox` (kind, subject, actor, text), so a new kind of event (a run
failed, an approval is asked for) is one more `notify` call and no schema change. Feedback
is stored by the model registry; `collect_feedback` turns the rows a person has not seen
into entries, once each (keyed by `source`).
"""

from __future__ import annotations

from collections.abc import Iterable

from reef.store.db import Database, now

_ENTRY = (
    "SELECT id, kind, project, subject_kind, subject, actor, text, created_at, read_at "
    "FROM inbox WHERE user_name = ?"
)
_PROJECT_OWNERS = (
    "SELECT u.name FROM members mb JOIN users u ON u.id = mb.user_id "
    "WHERE mb.project_id = ? AND mb.role = 'owner'"
)
# a model is owned by its first registrant and the project's owners; the feedback rows on
# it not yet in their inbox
_NEW_FEEDBACK = """
    SELECT m.name AS model, p.name AS project, f.request_id, f."row", f.label, f.author, f."at",
           'feedback:' || f.model_id || ':' || f.request_id || ':' || f."row" AS source
    FROM prediction_feedback f
    JOIN models m ON m.id = f.model_id
    JOIN projects p ON p.id = m.project_id
    WHERE f.author <> ?
      AND (? = (SELECT arg_min(v.created_by, v.version) FROM model_versions v
                WHERE v.model_id = m.id)
           OR EXISTS (SELECT 1 FROM members mb JOIN users u ON u.id = mb.user_id
                      WHERE mb.project_id = m.project_id AND mb.role = 'owner' AND u.name = ?))
      AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.user_name = ? AND i.source =
          'feedback:' || f.model_id || ':' || f.request_id || ':' || f."row")
"""


class Inbox:
    def __init__(self, db: Database) -> None:
        self.db = db

    def notify(
        self,
        users: Iterable[str],
        kind: str,
        project: str,
        subject: tuple[str, str],
        actor: str,
        text: str,
        source: str | None = None,
    ) -> None:
        """One entry for each of `users` (never for the actor: nobody is told of their own act)."""
        rows = [
            [u, kind, project, subject[0], subject[1], actor, text[:500], source, now()]
            for u in sorted(set(users) - {actor})
        ]
        if not rows:
            return
        with self.db.transaction() as cur:
            cur.executemany(
                "INSERT INTO inbox (user_name, kind, project, subject_kind, subject, actor, "
                "text, source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def entries(self, user: str, unread_only: bool = False, limit: int = 100) -> list[dict]:
        self.collect_feedback(user)
        where = " AND read_at IS NULL" if unread_only else ""
        return self.db.query(f"{_ENTRY}{where} ORDER BY id DESC LIMIT ?", [user, limit])

    def unread(self, user: str) -> int:
        self.collect_feedback(user)
        return int(
            self.db.scalar(
                "SELECT count(*) FROM inbox WHERE user_name = ? AND read_at IS NULL", [user]
            )
        )

    def mark_read(self, user: str, ids: list[int] | None = None) -> int:
        """Mark the given entries (all when `ids` is None) read; returns how many changed."""
        where, params = ("", []) if ids is None else (" AND list_contains(?, id)", [ids])
        rows = self.db.execute(
            f"UPDATE inbox SET read_at = ? WHERE user_name = ? AND read_at IS NULL{where} "
            "RETURNING id",
            [now(), user, *params],
        )
        return len(rows)

    def collect_feedback(self, user: str) -> None:
        """Feedback on the models `user` owns, given by someone else, becomes entries."""
        for f in self.db.query(_NEW_FEEDBACK, [user, user, user, user]):
            text = (
                f"row {f['row']} of prediction {f['request_id']}: the right answer is {f['label']}"
            )
            self.notify(
                [user], "feedback", f["project"], ("model", f["model"]), f["author"], text,
                source=f["source"],
            )  # fmt: skip

    # --- follows ------------------------------------------------------------------------

    def follow(self, user: str, project_id: int, kind: str, target: str, on: bool) -> None:
        self.db.execute(
            "DELETE FROM follows WHERE user_name = ? AND project_id = ? AND kind = ? "
            "AND target = ?",
            [user, project_id, kind, target],
        )
        if on:
            self.db.execute(
                "INSERT INTO follows VALUES (?, ?, ?, ?, ?)",
                [user, project_id, kind, target, now()],
            )

    def followers(self, project_id: int, kind: str, target: str) -> list[str]:
        rows = self.db.query(
            "SELECT user_name FROM follows WHERE project_id = ? AND kind = ? AND target = ?",
            [project_id, kind, target],
        )
        return [r["user_name"] for r in rows]

    # --- comments on models and dataset versions ------------------------------------------

    def add_comment(self, project_id: int, kind: str, target: str, author: str, text: str) -> int:
        rows = self.db.execute(
            "INSERT INTO item_comments (project_id, kind, target, author, text, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [project_id, kind, target, author, text, now()],
        )
        return int(rows[0][0])

    def comments(self, project_id: int, kind: str, target: str) -> list[dict]:
        return self.db.query(
            "SELECT id, author, text, created_at FROM item_comments "
            "WHERE project_id = ? AND kind = ? AND target = ? ORDER BY id",
            [project_id, kind, target],
        )

    def owners(self, project_id: int, kind: str, target: str) -> list[str]:
        """Who owns an item: the person who made it (the run's starter, the model's first
        registrant, the dataset's creator) and the project's owners."""
        made_by = {
            "run": "SELECT created_by FROM runs WHERE project_id = ? "
            "AND id = TRY_CAST(? AS BIGINT)",
            "model": "SELECT arg_min(v.created_by, v.version) FROM model_versions v "
            "JOIN models m ON m.id = v.model_id WHERE m.project_id = ? AND m.name = ?",
            "dataset": "SELECT created_by FROM datasets WHERE project_id = ? AND name = ?",
        }[kind]
        maker = self.db.scalar(made_by, [project_id, target.split("@")[0]])
        owners = [r["name"] for r in self.db.query(_PROJECT_OWNERS, [project_id])]
        return [*([maker] if maker else []), *owners]
