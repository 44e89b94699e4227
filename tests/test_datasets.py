"""DatasetStore on real Lance datasets in a temp dir."""

from __future__ import annotations

import json
import math
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from reef.errors import InvalidInput, NotFound
from reef.store.datasets import DatasetNotFound, DatasetStore


@pytest.fixture
def store(tmp_path: Path) -> DatasetStore:
    return DatasetStore(tmp_path / "datasets")


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_create_gives_version_1(store: DatasetStore, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "a.csv", "x,name\n1,a\n2,b\n")
    info = store.import_file("proj", "iris", src)
    assert info.version == 1
    assert info.num_rows == 2
    assert info.columns == [("x", "int64"), ("name", "string")]
    assert info.timestamp.tzinfo is not None
    assert abs(datetime.now(UTC) - info.timestamp) < timedelta(minutes=1)
    assert store.exists("proj", "iris")
    assert store.uri("proj", "iris") == store.root / "proj" / "iris.lance"
    assert store.open("proj", "iris").has_stable_row_ids
    assert [p.name for p in (store.root / "proj").iterdir()] == ["iris.lance"]


def test_reimport_adds_version_and_keeps_old(store: DatasetStore, tmp_path: Path) -> None:
    store.import_file("p", "d", write_csv(tmp_path / "v1.csv", "x\n1\n2\n"))
    info = store.import_file("p", "d", write_csv(tmp_path / "v2.csv", "x,y\n10,a\n20,b\n30,c\n"))
    assert info.version == 2
    assert store.latest_version("p", "d") == 2
    assert store.rows("p", "d", 1, 0, 10) == (["x"], [[1], [2]])
    assert store.rows("p", "d", None, 0, 10) == (["x", "y"], [[10, "a"], [20, "b"], [30, "c"]])
    assert [(v.version, v.num_rows) for v in store.versions("p", "d")] == [(1, 2), (2, 3)]
    assert store.info("p", "d", 1).columns == [("x", "int64")]
    assert store.info("p", "d").version == 2
    assert store.open("p", "d", 1).version == 1


def test_rows_paging(store: DatasetStore) -> None:
    store.write_table("p", "d", pa.table({"i": list(range(2500))}))
    names, page = store.rows("p", "d", None, 10, 5)
    assert names == ["i"]
    assert page == [[10], [11], [12], [13], [14]]
    assert len(store.rows("p", "d", None, 0, 5000)[1]) == 1000
    assert store.rows("p", "d", None, 0, 0)[1] == [[0]]
    assert store.rows("p", "d", None, 2499, 10)[1] == [[2499]]
    assert store.rows("p", "d", None, 9999, 10)[1] == []
    with pytest.raises(InvalidInput):
        store.rows("p", "d", None, -1, 10)


def test_rows_are_json_serialisable(store: DatasetStore) -> None:
    table = pa.table(
        {
            "f": [1.5, math.nan],
            "t": pa.array([datetime(2024, 1, 2, 3, 4), None], pa.timestamp("ns")),
            "b": [b"\x00\x01", None],
            "l": [[1, 2], []],
        }
    )
    store.write_table("p", "d", table)
    _, page = store.rows("p", "d", None, 0, 10)
    assert page[0] == [1.5, "2024-01-02T03:04:00", "AAE=", [1, 2]]
    assert page[1] == [None, None, None, []]
    json.dumps(page, allow_nan=False)


def test_ragged_csv_leaves_no_dataset(store: DatasetStore, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "bad.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n")
    with pytest.raises(InvalidInput, match="line 3 has 2 fields but the header has 3"):
        store.import_file("p", "d", src)
    assert not store.exists("p", "d")
    assert not store.uri("p", "d").exists()
    assert list((store.root / "p").iterdir()) == []


def test_ragged_csv_on_existing_dataset_keeps_latest(store: DatasetStore, tmp_path: Path) -> None:
    store.import_file("p", "d", write_csv(tmp_path / "ok.csv", "a,b\n1,2\n"))
    with open(tmp_path / "bad.csv", "w") as f:  # the bad row is far past the first block
        f.write("a,b\n")
        f.writelines(f"{i},{i}\n" for i in range(150_000))
        f.write("1,2,3\n")
    with pytest.raises(InvalidInput, match="line 150002 has 3 fields"):
        store.import_file("p", "d", tmp_path / "bad.csv")
    assert store.latest_version("p", "d") == 1
    assert store.info("p", "d").num_rows == 1
    assert len(store.versions("p", "d")) == 1


def test_truncated_parquet(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": list(range(10_000))}), src)
    data = src.read_bytes()
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="invalid Parquet file"):
        store.import_file("p", "d", src)
    assert not store.uri("p", "d").exists()
    store.write_table("p", "d", pa.table({"a": [1]}))
    with pytest.raises(InvalidInput):
        store.import_file("p", "d", src)
    assert store.latest_version("p", "d") == 1


def test_parquet_import(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "data.pq"
    pq.write_table(pa.table({"a": [1, 2, 3], "b": ["x", "y", "z"]}), src, row_group_size=1)
    info = store.import_file("p", "d", src)
    assert (info.num_rows, info.columns) == (3, [("a", "int64"), ("b", "string")])


@pytest.mark.parametrize(
    ("text", "delimiter"), [("a;b\n1;2\n", ";"), ("a\tb\n1\t2\n", "\t"), ("a|b\n1|2\n", "|")]
)
def test_delimiter_detected(store: DatasetStore, tmp_path: Path, text: str, delimiter: str) -> None:
    src = write_csv(tmp_path / "d.csv", text)
    store.import_file("p", "d", src)
    assert store.rows("p", "d", None, 0, 10) == (["a", "b"], [[1, 2]])


def test_semicolon_csv_with_decimal_commas_in_quotes(store: DatasetStore, tmp_path: Path) -> None:
    src = write_csv(tmp_path / "d.txt", '"name, full";value\n"Doe, J";"1,5"\n')
    store.import_file("p", "d", src)
    assert store.rows("p", "d", None, 0, 10) == (["name, full", "value"], [["Doe, J", "1,5"]])


def test_bad_inputs(store: DatasetStore, tmp_path: Path) -> None:
    cases = {
        "empty.csv": ("", "empty"),
        "dup.csv": ("a,a\n1,2\n", "duplicate column names: 'a'"),
        "dot.csv": ("a.b,c\n1,2\n", "cannot contain '.'"),
        "data.json": ("{}", "unsupported file type '.json'; upload CSV, TSV, Parquet"),
    }
    for filename, (text, message) in cases.items():
        with pytest.raises(InvalidInput, match=message):
            store.import_file("p", "d", write_csv(tmp_path / filename, text))
    with pytest.raises(InvalidInput, match="no columns"):
        store.write_table("p", "d", pa.table({}))
    assert not store.exists("p", "d")
    assert list((store.root / "p").iterdir()) == []


def test_unknown_dataset_or_version(store: DatasetStore) -> None:
    with pytest.raises(DatasetNotFound, match="dataset 'p/nope' not found"):
        store.info("p", "nope")
    store.write_table("p", "d", pa.table({"a": [1]}))
    for version in (0, 2, 99):
        with pytest.raises(NotFound, match=f"dataset 'p/d' has no version {version}"):
            store.rows("p", "d", version, 0, 10)
    assert not store.exists("p", "nope")


@pytest.mark.parametrize("name", ["", "A", "../x", "a/b", "-a", ".a", "a..b", "x" * 64, "a b"])
def test_bad_names(store: DatasetStore, name: str) -> None:
    with pytest.raises(InvalidInput):
        store.uri("p", name)
    with pytest.raises(InvalidInput):
        store.write_table(name, "d", pa.table({"a": [1]}))


def test_write_parquet_round_trip(store: DatasetStore, tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2, 3], "b": ["x", None, "z"]})
    store.write_table("p", "d", table)
    store.write_table("p", "d", pa.table({"a": [9]}))
    dest = tmp_path / "out" / "v1.parquet"
    store.write_parquet("p", "d", 1, dest)
    assert pq.read_table(dest).equals(table)
    assert [p.name for p in dest.parent.iterdir()] == ["v1.parquet"]


def test_write_table_accepts_reader(store: DatasetStore) -> None:
    schema = pa.schema([("a", pa.int64())])
    batches = [pa.record_batch([pa.array([i, i + 1])], schema=schema) for i in range(3)]
    info = store.write_table("p", "d", pa.RecordBatchReader.from_batches(schema, batches))
    assert (info.version, info.num_rows) == (1, 6)


def test_failing_reader_commits_nothing(store: DatasetStore) -> None:
    schema = pa.schema([("a", pa.int64())])

    def batches():
        yield pa.record_batch([pa.array([1])], schema=schema)
        raise pa.ArrowInvalid("source broke")

    def write_failing() -> None:
        with pytest.raises(InvalidInput, match="source broke"):
            store.write_table("p", "d", pa.RecordBatchReader.from_batches(schema, batches()))

    write_failing()
    assert not store.uri("p", "d").exists()
    store.write_table("p", "d", pa.table({"a": [1, 2]}))
    write_failing()
    assert (store.latest_version("p", "d"), store.info("p", "d").num_rows) == (1, 2)


def test_large_streaming_import(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "big.csv"
    with open(src, "w") as f:
        f.write("id,value,label\n")
        f.writelines(f"{i},{i * 0.5},row{i % 7}\n" for i in range(200_000))
    info = store.import_file("p", "big", src)
    assert info.num_rows == 200_000
    assert info.columns == [("id", "int64"), ("value", "double"), ("label", "string")]
    assert store.rows("p", "big", None, 199_999, 1)[1] == [[199_999, 99_999.5, "row2"]]


def test_csv_types_widen_when_later_rows_disagree(store: DatasetStore, tmp_path: Path) -> None:
    src = tmp_path / "mixed.csv"
    with open(src, "w") as f:  # pyarrow infers types from the first 1 MB block only
        f.write("n,code,empty\n")
        f.writelines(f"{i},{i},\n" for i in range(150_000))
        f.write("1.5,A7,3\n")
    info = store.import_file("p", "d", src)
    assert info.columns == [("n", "double"), ("code", "string"), ("empty", "int64")]
    assert store.rows("p", "d", None, 150_000, 1)[1] == [[1.5, "A7", 3]]


def test_concurrent_writes_each_get_a_version(store: DatasetStore) -> None:
    infos = []

    def write(n: int) -> None:
        infos.append(store.write_table("p", "d", pa.table({"a": list(range(n))})))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(info.version for info in infos) == list(range(1, 9))
    assert sorted(v.num_rows for v in store.versions("p", "d")) == list(range(1, 9))
    assert [p.name for p in (store.root / "p").iterdir()] == ["d.lance"]
