"""Labeling's records: label sets, draft labels, assignments, reviewers' decisions and the
project setting "labels need review before publish".

A draft label is one row per (dataset, label column, row id, annotator): labeling a row again
replaces the draft, undo removes it. Drafts reach the dataset only when someone publishes
them, as one new dataset version (reef.runtime.labeling).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from reef.store.db import Database, now

_KEY = "dataset_id = ? AND label_column = ?"


class Annotations:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- label sets ------------------------------------------------------------------------

    def label_set(self, dataset_id: int, column: str) -> list[str] | None:
        found = self.db.scalar(f"SELECT labels FROM label_sets WHERE {_KEY}", [dataset_id, column])
        return None if found is None else json.loads(found)

    def label_sets(self, dataset_id: int) -> dict[str, list[str]]:
        rows = self.db.query(
            "SELECT label_column, labels FROM label_sets WHERE dataset_id = ? ORDER BY created_at",
            [dataset_id],
        )
        return {r["label_column"]: json.loads(r["labels"]) for r in rows}

    def save_label_set(self, dataset_id: int, column: str, labels: list[str], who: str) -> None:
        self.db.execute(
            "INSERT INTO label_sets VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE "
            "SET labels = excluded.labels",
            [dataset_id, column, json.dumps(labels), who, now()],
        )

    # --- drafts ----------------------------------------------------------------------------

    def annotate(
        self, dataset_id: int, column: str, row_id: int, author: str, label: str, base: int
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO annotations VALUES (?, ?, ?, ?, ?, ?, ?)",
            [dataset_id, column, row_id, author, label, base, now()],
        )

    def remove(self, dataset_id: int, column: str, row_id: int, author: str) -> bool:
        gone = self.db.execute(
            f"DELETE FROM annotations WHERE {_KEY} AND row_id = ? AND author = ? RETURNING 1",
            [dataset_id, column, row_id, author],
        )
        return bool(gone)

    def last_by(self, dataset_id: int, column: str, author: str) -> int | None:
        """The row `author` labelled last (what undo takes back)."""
        return self.db.scalar(
            f"SELECT row_id FROM annotations WHERE {_KEY} AND author = ? "
            "ORDER BY labelled_at DESC LIMIT 1",
            [dataset_id, column, author],
        )

    def votes(self, dataset_id: int, column: str) -> dict[int, dict[str, str]]:
        """row id -> annotator -> draft label."""
        votes: dict[int, dict[str, str]] = {}
        for r in self.db.query(
            f"SELECT row_id, author, label FROM annotations WHERE {_KEY} ORDER BY row_id, author",
            [dataset_id, column],
        ):
            votes.setdefault(r["row_id"], {})[r["author"]] = r["label"]
        return votes

    # --- assignments -----------------------------------------------------------------------

    def assign(
        self, dataset_id: int, column: str, pairs: Iterable[tuple[int, str]], who: str
    ) -> int:
        """Ask each annotator of `pairs` (row id, annotator) to label that row; earlier
        assignments of those rows are replaced. Returns how many were made."""
        pairs = list(pairs)
        rows = sorted({r for r, _ in pairs})
        at = now()
        with self.db.transaction() as cur:
            if rows:
                cur.execute(
                    f"DELETE FROM label_assignments WHERE {_KEY} AND list_contains(?, row_id)",
                    [dataset_id, column, rows],
                )
            cur.executemany(
                "INSERT INTO label_assignments VALUES (?, ?, ?, ?, ?, ?)",
                [[dataset_id, column, r, a, who, at] for r, a in pairs],
            )
        return len(pairs)

    def assignments(self, dataset_id: int, column: str) -> dict[int, list[str]]:
        """row id -> the annotators asked to label it."""
        found: dict[int, list[str]] = {}
        for r in self.db.query(
            f"SELECT row_id, annotator FROM label_assignments WHERE {_KEY} "
            "ORDER BY row_id, annotator",
            [dataset_id, column],
        ):
            found.setdefault(r["row_id"], []).append(r["annotator"])
        return found

    # --- review ----------------------------------------------------------------------------

    def decide(self, dataset_id: int, column: str, row_id: int, label: str, who: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO label_decisions VALUES (?, ?, ?, ?, ?, ?)",
            [dataset_id, column, row_id, label, who, now()],
        )

    def decisions(self, dataset_id: int, column: str) -> dict[int, dict]:
        """row id -> {label, reviewer, at}."""
        return {
            r.pop("row_id"): r
            for r in self.db.query(
                "SELECT row_id, label, reviewer, decided_at AS at FROM label_decisions "
                f"WHERE {_KEY} ORDER BY row_id",
                [dataset_id, column],
            )
        }

    def review_required(self, project_id: int) -> bool:
        return bool(
            self.db.scalar(
                "SELECT review_required FROM labeling_settings WHERE project_id = ?",
                [project_id],
            )
        )

    def set_review_required(self, project_id: int, required: bool) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO labeling_settings VALUES (?, ?)", [project_id, required]
        )
