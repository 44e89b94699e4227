"""Changes as versions: append, cell edits, deletes, column changes, restore, tags, key."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reef.errors import Conflict, InvalidInput, NotFound
from reef.store.datasets import DatasetStore


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    s = DatasetStore(tmp_path / "datasets")
    s.write_table(
        "p",
        "d",
        pa.table(
            {
                "id": [10, 20, 30, 40],
                "label": ["cat", "dog", "cat", "bird"],
                "score": [0.1, 0.9, 0.4, 0.7],
            }
        ),
    )
    return s


def rows(store: DatasetStore, version: int | str | None = None) -> list[list]:
    return store.rows("p", "d", version, 0, 1000)[1]


def row_ids(store: DatasetStore) -> list[int]:
    return [r[0] for r in store.rows("p", "d", None, 0, 1000, with_row_id=True)[1]]


def test_append_table_and_file(store: DatasetStore, tmp_path: Path) -> None:
    info = store.append("p", "d", pa.table({"label": ["fox"], "id": [50], "score": [1]}))
    assert (info.version, info.num_rows) == (2, 5)
    src = tmp_path / "more.csv"
    src.write_text("id,label,score\n60,owl,0.5\n")
    assert store.append("p", "d", src).num_rows == 6
    assert rows(store)[-2:] == [[50, "fox", 1.0], [60, "owl", 0.5]]
    assert row_ids(store) == [0, 1, 2, 3, 4, 5]


def test_append_keeps_stored_types(store: DatasetStore, tmp_path: Path) -> None:
    store.add_column("p", "d", "zip", "string", default="00001")
    src = tmp_path / "more.csv"
    src.write_text("id,label,score,zip\n60,owl,1,01234\n")
    store.append("p", "d", src)
    assert rows(store)[-1] == [60, "owl", 1.0, "01234"]


def test_append_wrong_columns(store: DatasetStore) -> None:
    with pytest.raises(InvalidInput, match="missing 'score'; unknown 'x'"):
        store.append("p", "d", pa.table({"id": [1], "label": ["a"], "x": [1]}))
    with pytest.raises(InvalidInput, match="column 'id' cannot be read as int64"):
        store.append("p", "d", pa.table({"id": ["a"], "label": ["a"], "score": [1.0]}))
    assert store.latest_version("p", "d") == 1


def test_update_cells_by_row_id_keeps_ids(store: DatasetStore) -> None:
    info = store.update_rows(
        "p", "d", [{"_rowid": 1, "label": "wolf"}, {"_rowid": 3, "score": None}]
    )
    assert (info.version, info.num_rows) == (2, 4)
    by_id = {r[0]: r[1:] for r in store.rows("p", "d", None, 0, 10, with_row_id=True)[1]}
    assert by_id == {
        0: [10, "cat", 0.1],
        1: [20, "wolf", 0.9],
        2: [30, "cat", 0.4],
        3: [40, "bird", None],
    }
    assert rows(store, 1)[1] == [20, "dog", 0.9]  # time travel


def test_update_unknown_row_ids_lists_them(store: DatasetStore) -> None:
    with pytest.raises(InvalidInput, match=r"no rows with row id 7, 99 in version 1"):
        store.update_rows("p", "d", [{"_rowid": 99, "label": "x"}, {"_rowid": 7, "label": "y"}])
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        store.update_rows("p", "d", [{"_rowid": 0, "nope": 1}])
    with pytest.raises(InvalidInput, match="takes double values"):
        store.update_rows("p", "d", [{"_rowid": 0, "score": "high"}])
    with pytest.raises(InvalidInput, match="more than once"):
        store.update_rows("p", "d", [{"_rowid": 0, "score": 1}, {"_rowid": 0, "score": 2}])
    with pytest.raises(InvalidInput, match="name its row"):
        store.update_rows("p", "d", [{"label": "x"}])
    for bad in (True, -1, "1", None, 1.5, 2**70):
        with pytest.raises(InvalidInput, match=rf"whole number of 0 or more, not {bad!r}"):
            store.update_rows("p", "d", [{"_rowid": 0}, {"_rowid": bad, "label": "y"}])
    assert store.latest_version("p", "d") == 1


def test_update_by_declared_key(store: DatasetStore) -> None:
    with pytest.raises(InvalidInput, match="declared key"):
        store.update_rows("p", "d", [{"id": 20, "label": "x"}], key="id")
    store.set_key("p", "d", "id")
    assert store.key("p", "d") == "id"
    store.update_rows("p", "d", [{"id": 40, "label": "eagle"}, {"id": 20, "score": 0.0}], key="id")
    assert rows(store) == [[10, "cat", 0.1], [20, "dog", 0.0], [30, "cat", 0.4], [40, "eagle", 0.7]]
    with pytest.raises(InvalidInput, match="no rows with id 55"):
        store.update_rows("p", "d", [{"id": 55, "label": "x"}], key="id")


def test_key_must_be_unique(store: DatasetStore) -> None:
    with pytest.raises(InvalidInput, match="its values repeat"):
        store.set_key("p", "d", "label")
    with pytest.raises(InvalidInput, match="no column"):
        store.set_key("p", "d", "nope")
    store.set_key("p", "d", "id")
    store.set_key("p", "d", None)
    assert store.key("p", "d") is None


def test_delete_rows_by_filter(store: DatasetStore) -> None:
    info = store.delete_rows("p", "d", "label = 'cat' AND score < 0.3")
    assert (info.version, info.num_rows) == (2, 3)
    assert rows(store) == [[20, "dog", 0.9], [30, "cat", 0.4], [40, "bird", 0.7]]
    store.delete_rows("p", "d", "label IN ('dog', 'bird') OR score IS NULL")
    assert rows(store) == [[30, "cat", 0.4]]
    assert row_ids(store) == [2]
    with pytest.raises(InvalidInput, match="no rows match"):
        store.delete_rows("p", "d", "label LIKE 'z%'")


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("", "give a filter"),
        ("nope = 1", "no column 'nope'"),
        ("1=1; DROP TABLE t", "one expression|not several"),
        ("id IN (SELECT 1)", "subquery"),
        ("id > 1 ORDER BY id", "plain expression"),
        ("id > 1 LIMIT 1", "plain expression"),
        ("label = read_text('/etc/passwd')", "the function 'read_text'"),
        ("id = (", "invalid filter"),
        ("label = getenv('HOME')", "the function 'getenv'"),
        ("score > 'abc'", "invalid"),
    ],
)
def test_delete_filter_is_validated(store: DatasetStore, where: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.delete_rows("p", "d", where)
    assert store.latest_version("p", "d") == 1


def test_column_changes(store: DatasetStore) -> None:
    assert store.add_column("p", "d", "checked", "bool").columns[-1] == ("checked", "bool")
    info = store.add_column("p", "d", "source", "string", default="manual")
    assert info.version == 3
    assert rows(store)[0] == [10, "cat", 0.1, None, "manual"]
    store.rename_column("p", "d", "label", "species")
    store.drop_column("p", "d", "checked")
    info = store.info("p", "d")
    assert [c for c, _ in info.columns] == ["id", "species", "score", "source"]
    assert row_ids(store) == [0, 1, 2, 3]
    assert store.rows("p", "d", 1, 0, 1)[0] == ["id", "label", "score"]


def test_column_change_errors(store: DatasetStore) -> None:
    with pytest.raises(InvalidInput, match="already a column"):
        store.add_column("p", "d", "label", "string")
    with pytest.raises(InvalidInput, match="unknown column type"):
        store.add_column("p", "d", "x", "uuid")
    with pytest.raises(InvalidInput, match="takes int64 values"):
        store.add_column("p", "d", "x", "int64", default="many")
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        store.rename_column("p", "d", "nope", "x")
    with pytest.raises(InvalidInput, match="cannot contain"):
        store.rename_column("p", "d", "label", "a.b")
    store.set_key("p", "d", "id")
    with pytest.raises(InvalidInput, match="it is the key"):
        store.drop_column("p", "d", "id")
    store.rename_column("p", "d", "id", "ident")
    assert store.key("p", "d") == "ident"
    assert store.latest_version("p", "d") == 2


def test_restore_makes_old_data_latest(store: DatasetStore) -> None:
    store.delete_rows("p", "d", "id > 15")
    store.add_column("p", "d", "x", "int64", default=1)
    info = store.restore("p", "d", 1)
    assert (info.version, info.num_rows) == (4, 4)
    assert rows(store) == rows(store, 1)
    assert [v.version for v in store.versions("p", "d")] == [1, 2, 3, 4]
    assert rows(store, 2) == [[10, "cat", 0.1]]


def test_tags_and_resolve(store: DatasetStore) -> None:
    store.update_rows("p", "d", [{"_rowid": 0, "label": "lynx"}])
    store.tag("p", "d", "gold", 1)
    assert store.tags("p", "d") == {"gold": 1}
    assert store.resolve("p", "d", "gold") == 1
    assert store.resolve("p", "d", None) == 2
    assert store.resolve("p", "d", "2") == 2
    assert store.resolve("p", "d", "latest") == 2
    assert rows(store, "gold")[0] == [10, "cat", 0.1]
    with pytest.raises(Conflict):
        store.tag("p", "d", "gold", 2)
    store.tag("p", "d", "gold", 2, move=True)
    assert store.resolve("p", "d", "gold") == 2
    store.restore("p", "d", "gold")
    with pytest.raises(InvalidInput, match="invalid tag"):
        store.tag("p", "d", "12", 1)
    with pytest.raises(NotFound, match="no version or tag silver"):
        store.resolve("p", "d", "silver")
    with pytest.raises(NotFound, match="no version 9"):
        store.tag("p", "d", "silver", 9)
    store.untag("p", "d", "gold")
    assert store.tags("p", "d") == {}
    with pytest.raises(NotFound):
        store.untag("p", "d", "gold")


def test_replace_with_key_keeps_row_identity(store: DatasetStore, tmp_path: Path) -> None:
    store.set_key("p", "d", "id")
    src = tmp_path / "new.csv"
    src.write_text("score,id,label\n0.1,10,cat\n0.95,20,dog\n0.7,40,bird\n0.2,50,fox\n")
    info = store.import_file("p", "d", src)
    assert (info.version, info.num_rows) == (2, 4)
    by_id = {r[1]: r[0] for r in store.rows("p", "d", None, 0, 10, with_row_id=True)[1]}
    assert by_id[10] == 0 and by_id[20] == 1 and by_id[40] == 3 and by_id[50] == 4
    diff = store.diff("p", "d", 1, 2)
    assert diff["counts"] == {"added": 1, "removed": 1, "modified": 1}


def keyed(tmp_path: Path, rows: int = 200_000) -> tuple[DatasetStore, Path]:
    """A keyed dataset of `rows` rows, and its download as Parquet."""
    s = DatasetStore(tmp_path / "keyed")
    ids = list(range(rows))
    s.write_table("p", "k", pa.table({"id": ids, "x": [i * 0.5 for i in ids], "t": ["a"] * rows}))
    s.update_rows("p", "k", [{"_rowid": 7, "t": "b"}])  # the scan order is not the id order
    s.set_key("p", "k", "id")
    download = tmp_path / "k.parquet"
    s.write_parquet("p", "k", None, download)
    return s, download


def edited(download: Path, changes: dict[int, float], order: list[int] | None = None) -> Path:
    table = pq.read_table(download)
    x = table["x"].to_pylist()
    for position, value in changes.items():
        x[position] = value
    table = table.set_column(1, "x", pa.array(x))
    table = table.take(order) if order is not None else table
    pq.write_table(table, download.with_name("edited.parquet"))
    return download.with_name("edited.parquet")


def test_an_edited_download_rewrites_only_the_changed_rows(tmp_path: Path) -> None:
    s, download = keyed(tmp_path)
    info = s.import_file("p", "k", edited(download, {3: -1.0, 150_000: -2.0}))
    diff = s.diff("p", "k", info.version - 1, info.version)
    assert diff["counts"] == {"added": 0, "removed": 0, "modified": 2}
    assert [r["row_id"] for r in diff["rows"]] == [3, 150_001]  # row 7 is stored last
    fragments = s.open("p", "k").get_fragments()
    assert fragments[-1].metadata.physical_rows == 2  # only the two rows were written again


@pytest.mark.parametrize(
    ("order", "counts"),
    [
        (list(range(199_999, -1, -1)), {"added": 0, "removed": 0, "modified": 2}),
        (list(range(199_999)), {"added": 0, "removed": 1, "modified": 2}),
    ],
)
def test_an_upload_out_of_order_is_merged_on_the_key(tmp_path: Path, order, counts) -> None:
    s, download = keyed(tmp_path)
    info = s.import_file("p", "k", edited(download, {3: -1.0, 150_000: -2.0}, order))
    assert s.diff("p", "k", info.version - 1, info.version)["counts"] == counts
    ids = {r[1]: r[0] for r in s.rows("p", "k", None, 0, 1000, with_row_id=True)[1]}
    assert all(row_id == key for key, row_id in ids.items())  # rows kept their ids


def test_replace_without_key_keeps_unchanged_rows(store: DatasetStore) -> None:
    # row 10 is unchanged (kept with its row id), 20 changed, 30 and 40 left, 50 is new
    table = {"id": [10, 20, 50], "label": ["cat", "cow", "eel"], "score": [0.1, 0.9, 0.2]}
    store.write_table("p", "d", pa.table(table))
    assert row_ids(store) == [0, 4, 5]
    diff = store.diff("p", "d", 1, 2)
    assert diff["counts"] == {"added": 2, "removed": 3, "modified": 0}
