"""Imports of every format into real Lance datasets; the files are generated here."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
from PIL import Image

from reef.errors import InvalidInput
from reef.store.dataset_import import ImportOptions
from reef.store.datasets import DatasetStore


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


def rows(store: DatasetStore, name: str = "d", version: int | str | None = None) -> list[list]:
    return store.rows("p", name, version, 0, 1000)[1]


def png(width: int, height: int, color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def assert_nothing_written(store: DatasetStore, name: str = "d") -> None:
    assert not store.exists("p", name)
    assert not store.uri("p", name).exists()


# --- text formats --------------------------------------------------------------------------


def test_tsv_by_suffix_and_by_format(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "a.tsv"
    src.write_text("a\tb, c\n1\tx, y\n")
    store.import_file("p", "d", src)
    assert store.rows("p", "d", None, 0, 10) == (["a", "b, c"], [[1, "x, y"]])
    other = tmp_path / "a.dat"
    other.write_text("a\tb\n2\tz\n")
    store.import_file("p", "e", other, fmt="tsv")
    assert rows(store, "e") == [[2, "z"]]


def test_empty_csv_cells_are_null_in_every_column(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "a.csv"
    src.write_text('n,clinic,notes\n1,,""\n,north,seen today\n')
    store.import_file("p", "d", src)
    assert rows(store) == [[1, None, None], [None, "north", "seen today"]]


@pytest.mark.parametrize(
    ("encoding", "detected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8"), ("utf-16", "utf-16"), ("cp1252", "cp1252")],
)
def test_encodings_detected(
    store: DatasetStore, tmp_path: Path, encoding: str, detected: str
) -> None:
    src = tmp_path / "e.csv"
    src.write_bytes("name;city\nJosé;Zürich\n".encode(encoding))
    preview = store.preview(src)
    assert preview["detected"] == {"delimiter": ";", "encoding": detected}
    store.import_file("p", "d", src)
    assert store.rows("p", "d", None, 0, 10) == (["name", "city"], [["José", "Zürich"]])


def test_late_non_utf8_bytes_fall_back_to_cp1252(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "late.csv"
    with open(src, "wb") as f:  # the first 64 KiB and the first block are plain ASCII
        f.write(b"n,s\n")
        f.writelines(b"%d,x\n" % i for i in range(200_000))
        f.write("1,café\n".encode("cp1252"))
    info = store.import_file("p", "d", src)
    assert info.num_rows == 200_001
    assert any("cp1252" in note for note in info.notes)
    assert store.rows("p", "d", None, 200_000, 1)[1] == [[1, "café"]]


def test_encoding_and_delimiter_can_be_given(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_bytes("a|b;c\n1|é;f\n".encode("latin-1"))
    store.import_file("p", "d", src, options=ImportOptions(delimiter="|", encoding="latin-1"))
    assert store.rows("p", "d", None, 0, 10) == (["a", "b;c"], [[1, "é;f"]])
    with pytest.raises(InvalidInput, match="unknown encoding"):
        ImportOptions(encoding="klingon")
    with pytest.raises(InvalidInput, match="one character"):
        ImportOptions(delimiter=";;")


def test_column_types_override(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "t.csv"
    src.write_text("zip,amount,ok,when\n01234,3,true,2024-05-01 10:00:00\n")
    types = {"zip": "string", "amount": "float64", "ok": "bool", "when": "timestamp"}
    info = store.import_file("p", "d", src, options=ImportOptions(column_types=types))
    assert info.columns == [
        ("zip", "string"),
        ("amount", "double"),
        ("ok", "bool"),
        ("when", "timestamp[us]"),
    ]
    assert rows(store) == [["01234", 3.0, True, "2024-05-01T10:00:00"]]


def test_column_type_that_does_not_fit(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "t.jsonl"
    src.write_text('{"a": "x1"}\n')
    with pytest.raises(InvalidInput, match="column 'a' cannot be read as int64"):
        store.import_file("p", "d", src, options=ImportOptions(column_types={"a": "int64"}))
    with pytest.raises(InvalidInput, match="no column\\(s\\) 'b'"):
        store.import_file("p", "d", src, options=ImportOptions(column_types={"b": "int64"}))
    with pytest.raises(InvalidInput, match="unknown column type"):
        ImportOptions(column_types={"a": "int128"})
    assert_nothing_written(store)


def test_preview_shows_types_and_first_rows(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "p.csv"
    src.write_text("id,score,label\n" + "".join(f"{i},{i / 2},l{i}\n" for i in range(100)))
    preview = store.preview(src, rows=3)
    assert preview["columns"] == [
        {"name": "id", "type": "int64"},
        {"name": "score", "type": "double"},
        {"name": "label", "type": "string"},
    ]
    assert preview["rows"] == [[0, 0.0, "l0"], [1, 0.5, "l1"], [2, 1.0, "l2"]]
    fixed = store.preview(src, options=ImportOptions(column_types={"id": "string"}), rows=1)
    assert fixed["columns"][0] == {"name": "id", "type": "string"}
    assert fixed["rows"] == [["0", 0.0, "l0"]]
    assert not store.root.joinpath("p").exists()


# --- binary formats ------------------------------------------------------------------------


def test_jsonl(store: DatasetStore, tmp_path: Path) -> None:
    for suffix in (".jsonl", ".ndjson"):
        src = tmp_path / f"a{suffix}"
        src.write_text('{"a": 1, "b": "x"}\n{"a": 2, "b": null}\n\n')
        info = store.import_file("p", "d", src)
    assert info.unchanged  # the same rows again: no new version
    assert store.latest_version("p", "d") == 1
    assert store.rows("p", "d", None, 0, 10) == (["a", "b"], [[1, "x"], [2, None]])


def test_bad_jsonl(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"a": 1}\n{"a": 2\n')
    with pytest.raises(InvalidInput, match="invalid JSON Lines file"):
        store.import_file("p", "d", src)
    assert_nothing_written(store)


@pytest.mark.parametrize("suffix", [".arrow", ".feather", ".ipc"])
def test_arrow_ipc_file_and_stream(store: DatasetStore, tmp_path: Path, suffix: str) -> None:
    table = pa.table({"a": [1, 2, 3], "s": ["x", "y", None]})
    src = tmp_path / f"t{suffix}"
    if suffix == ".feather":
        feather.write_feather(table, src)
    elif suffix == ".arrow":
        with pa.ipc.new_file(src, table.schema) as writer:
            writer.write_table(table, max_chunksize=1)
    else:
        with pa.ipc.new_stream(src, table.schema) as writer:
            writer.write_table(table)
    store.import_file("p", "d", src)
    assert store.open("p", "d").to_table().equals(table)


def test_truncated_arrow_file(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "t.arrow"
    with pa.ipc.new_file(src, pa.schema([("a", pa.int64())])) as writer:
        writer.write_table(pa.table({"a": list(range(10_000))}))
    src.write_bytes(src.read_bytes()[:5000])
    with pytest.raises(InvalidInput, match="invalid Arrow IPC file"):
        store.import_file("p", "d", src)
    assert_nothing_written(store)


def test_parquet_append_mode(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "a.parquet"
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), src)
    store.import_file("p", "d", src)
    other = tmp_path / "b.parquet"
    pq.write_table(pa.table({"b": ["z"], "a": pa.array([3], pa.int32())}), other)
    info = store.import_file("p", "d", other, options=ImportOptions(mode="append"))
    assert (info.version, info.num_rows) == (2, 3)
    assert rows(store) == [[1, "x"], [2, "y"], [3, "z"]]


# --- Excel ---------------------------------------------------------------------------------


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    first = book.active
    first.title = "notes"
    first.append(["just a note"])
    data = book.create_sheet("data")
    data.append(["id", "score", "label", "when", "ok", "mixed"])
    data.append([1, 0.5, "cat", datetime(2024, 1, 2, 3, 4, 5), True, 1])
    data.append([2, 1, "dog", None, False, "two"])
    data.append([None, None, None, None, None, None])
    data.append([3, 2.25, None, datetime(2024, 2, 1), None, None])
    book.save(path)
    return path


def test_xlsx_chosen_sheet(store: DatasetStore, tmp_path: Path) -> None:
    src = workbook(tmp_path / "book.xlsx")
    info = store.import_file("p", "d", src, options=ImportOptions(sheet="data"))
    assert info.columns == [
        ("id", "int64"),
        ("score", "double"),
        ("label", "string"),
        ("when", "timestamp[us]"),
        ("ok", "bool"),
        ("mixed", "string"),
    ]
    assert rows(store) == [
        [1, 0.5, "cat", "2024-01-02T03:04:05", True, "1"],
        [2, 1.0, "dog", None, False, "two"],
        [3, 2.25, None, "2024-02-01T00:00:00", None, None],
    ]
    store.import_file("p", "first", src)  # no sheet: the first one
    assert store.rows("p", "first", None, 0, 10) == (["just a note"], [])


def test_xlsx_wrong_sheet_names_the_sheets(store: DatasetStore, tmp_path: Path) -> None:
    src = workbook(tmp_path / "book.xlsx")
    with pytest.raises(InvalidInput, match="no sheet 'Data'; its sheets are 'notes', 'data'"):
        store.import_file("p", "d", src, options=ImportOptions(sheet="Data"))
    assert_nothing_written(store)
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InvalidInput, match="not a readable Excel"):
        store.import_file("p", "d", broken)


def test_xlsx_preview_and_types(store: DatasetStore, tmp_path: Path) -> None:
    src = workbook(tmp_path / "book.xlsx")
    preview = store.preview(src, options=ImportOptions(sheet="data"), rows=1)
    assert preview["detected"] == {"sheet": "data"}
    assert preview["rows"] == [[1, 0.5, "cat", "2024-01-02T03:04:05", True, "1"]]
    options = ImportOptions(sheet="data", column_types={"id": "string", "score": "string"})
    store.import_file("p", "d", src, options=options)
    assert rows(store)[0][:2] == ["1", "0.5"]


# --- images --------------------------------------------------------------------------------


def image_tree(root: Path) -> Path:
    for label, size in (("cat", (3, 2)), ("dog", (5, 4))):
        (root / label).mkdir(parents=True)
        (root / label / f"{label}1.png").write_bytes(png(*size))
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "README.md").write_text("top-level, no label")
    return root


def test_image_folder(store: DatasetStore, tmp_path: Path) -> None:
    root = image_tree(tmp_path / "pets")
    info = store.import_file("p", "d", root)
    assert info.columns == [
        ("image", "binary"),
        ("label", "string"),
        ("path", "string"),
        ("width", "int64"),
        ("height", "int64"),
    ]
    assert (info.num_rows, info.skipped) == (2, 2)
    table = store.open("p", "d").to_table()
    assert table.select(["label", "path", "width", "height"]).to_pylist() == [
        {"label": "cat", "path": "cat/cat1.png", "width": 3, "height": 2},
        {"label": "dog", "path": "dog/dog1.png", "width": 5, "height": 4},
    ]
    assert table["image"][0].as_py() == (root / "cat" / "cat1.png").read_bytes()
    with Image.open(io.BytesIO(table["image"][1].as_py())) as image:
        assert image.size == (5, 4)


def test_image_zip_with_wrapping_folder(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "pets.zip"
    with zipfile.ZipFile(src, "w") as archive:
        archive.writestr("pets/cat/a.png", png(2, 2))
        archive.writestr("pets/dog/b.png", png(4, 1))
        archive.writestr("pets/dog/c.txt", "x")
        archive.writestr("__MACOSX/pets/dog/._b.png", "junk")
    info = store.import_file("p", "d", src)
    assert (info.num_rows, info.skipped) == (2, 2)
    assert store.open("p", "d").to_table(columns=["label", "path", "width"]).to_pylist() == [
        {"label": "cat", "path": "pets/cat/a.png", "width": 2},
        {"label": "dog", "path": "pets/dog/b.png", "width": 4},
    ]
    preview = store.preview(src, rows=1)
    assert preview["shown_columns"] == ["label", "path", "width", "height"]
    assert preview["rows"] == [["cat", "pets/cat/a.png", 2, 2]]


@pytest.mark.parametrize(
    "entry", ["../evil.png", "/abs/evil.png", "cat/../../evil.png", "C:/x.png"]
)
def test_zip_slip_is_refused(store: DatasetStore, tmp_path: Path, entry: str) -> None:
    src = tmp_path / "evil.zip"
    with zipfile.ZipFile(src, "w") as archive:
        archive.writestr("cat/a.png", png(2, 2))
        archive.writestr(zipfile.ZipInfo(entry), png(2, 2))
    with pytest.raises(InvalidInput, match="escapes its folder"):
        store.import_file("p", "d", src)
    assert_nothing_written(store)
    assert not (tmp_path / "evil.png").exists()


def test_not_a_zip(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "x.zip"
    src.write_bytes(b"PK but not really")
    with pytest.raises(InvalidInput, match="not a zip archive"):
        store.import_file("p", "d", src)


def test_import_failure_keeps_previous_version(store: DatasetStore, tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"a": 1}) + "\n")
    store.import_file("p", "d", good)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../x.png", png(1, 1))
    with pytest.raises(InvalidInput):
        store.import_file("p", "d", bad)
    assert [v.version for v in store.versions("p", "d")] == [1]
