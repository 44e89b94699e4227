# ruff: noqa: E402  (sys.path is mended before the other imports)
"""Dataset versioning benchmark: reef against DVC on one table, one 1% change.

Builds a table of `--rows` rows (id int64, three float64 columns, a category string and an
int64 label) as Parquet and CSV in a temp dir, then measures reef through its real stores
(an in-process Hub on a fresh data dir, calling the same functions the HTTP API calls; no HTTP
in the timings):

- import rate of the Parquet and the CSV file (rows/s, MB/s), each as a new dataset;
- a 1% change: one column (`x`) set to new values on 1% of the rows, scattered at random,
  made as one new version through `update_rows` (the JSON change `POST .../versions
  {"op": "update_rows"}` that the dataset page's cell edits send): time, and the extra disk
  under the dataset's Lance dir (`du -sb` before and after);
- the same change as an upload-replace of the edited file (what a DVC user does): matched on
  the declared key `id` (an edited download, rows in order), with no key (rows matched by
  their values), and with the key but the rows reversed: time, extra disk, diff counts;
- the diff of the 1% change through the diff API's code path: counts and the first page.

Then DVC (installed into its own venv /tmp/reef-bench-dvc on first use) does the same
versioning in a `git init` + `dvc init` repo with a local cache: `dvc add` the base Parquet
file and commit, overwrite it with the edited file, `dvc add` + commit again (time, extra
cache disk), and `dvc diff HEAD~1 HEAD` (which only knows that the file changed).

    python bench/datasets.py [--rows 10000000] [--no-dvc] [--work DIR] [--keep]

Prints a table with reef/DVC ratios and the targets (a 1% change: under 3% of the base size
on disk and under 1 s; diff under 1 s) and writes it to bench/results/datasets.txt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `python bench/x.py` puts bench/ first on sys.path, where bench/queue.py would shadow the
# standard library's `queue` for the packages imported below: take bench/ off first
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DVC_VENV = Path("/tmp/reef-bench-dvc")
PROJECT = "bench"
CHUNK = 1_000_000
CATEGORIES = np.array(["cat", "dog", "bird", "fish", "horse", "cow", "sheep", "goat"])


# --- data ----------------------------------------------------------------------------------


def chunk_table(start: int, count: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(start, start + count, dtype=np.int64),
            "x": rng.random(count),
            "y": rng.normal(size=count),
            "z": rng.exponential(size=count),
            "category": pa.array(CATEGORIES[rng.integers(0, len(CATEGORIES), count)]),
            "label": rng.integers(0, 10, count),
        }
    )


def changed_rows(rows: int) -> tuple[np.ndarray, np.ndarray]:
    """The 1% of rows to change (ascending row numbers, which are also their ids and stable
    row ids) and their new `x` values."""
    rng = np.random.default_rng(42)
    picked = np.sort(rng.choice(rows, max(1, rows // 100), replace=False))
    return picked, rng.random(len(picked)) + 10.0


def write_files(work: Path, rows: int) -> tuple[Path, Path, Path]:
    """base.parquet, base.csv and edited.parquet (base with the 1% change), chunk by chunk."""
    picked, values = changed_rows(rows)
    base, csv, edited = work / "base.parquet", work / "base.csv", work / "edited.parquet"
    schema = chunk_table(0, 1, 0).schema
    with (
        pq.ParquetWriter(base, schema) as base_out,
        pq.ParquetWriter(edited, schema) as edited_out,
        pcsv.CSVWriter(csv, schema) as csv_out,
    ):
        for start in range(0, rows, CHUNK):
            table = chunk_table(start, min(CHUNK, rows - start), start)
            base_out.write_table(table)
            csv_out.write_table(table)
            edited_out.write_table(with_change(table, start, picked, values))
    return base, csv, edited


def with_change(table: pa.Table, start: int, picked: np.ndarray, values: np.ndarray) -> pa.Table:
    inside = (picked >= start) & (picked < start + table.num_rows)
    x = table["x"].to_numpy().copy()
    x[picked[inside] - start] = values[inside]
    return table.set_column(1, "x", pa.array(x))


def du(path: Path) -> int:
    return int(subprocess.check_output(["du", "-sb", str(path)]).split()[0])


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


# --- reef ----------------------------------------------------------------------------------


def reef_side(work: Path, base: Path, csv: Path, edited: Path, rows: int) -> dict:
    from reef.hub import Hub
    from reef.runtime.dataset_versions import new_version
    from reef.server.dataset_changes import apply_change, set_key
    from reef.server.dataset_views import diff_context
    from reef.settings import Settings

    hub = Hub.open(Settings(data_dir=work / "reef", admin_password="bench-pass"), False)
    try:
        admin = hub.admin()
        hub.projects.create(PROJECT, admin, "dataset benchmark")

        def imported(name: str, src: Path) -> float:
            def run() -> None:
                info = hub.datasets.import_file(PROJECT, name, src)
                new_version(hub, admin.name, PROJECT, name, info, f"import {src.name}", src.name)

            return timed(run)[1]

        out: dict = {"parquet_s": imported("table", base), "csv_s": imported("table_csv", csv)}
        out["parquet_mb"], out["csv_mb"] = base.stat().st_size / 1e6, csv.stat().st_size / 1e6
        lance_dir = hub.datasets.uri(PROJECT, "table")
        out["base_bytes"] = du(lance_dir)

        picked, values = changed_rows(rows)
        updates = [{"_rowid": int(i), "x": float(v)} for i, v in zip(picked, values, strict=True)]
        change = {"op": "update_rows", "updates": updates, "message": "1% of x"}
        version, out["update_s"] = timed(apply_change, hub, admin, PROJECT, "table", change)
        out["update_bytes"] = du(lance_dir) - out["base_bytes"]
        diff, out["diff_s"] = timed(diff_context, hub, PROJECT, "table", "1", "2", 0, 100)
        out["diff_counts"], out["diff_page"] = diff["counts"], len(diff["rows"])
        assert version["version"] == 2 and diff["counts"]["modified"] == len(picked), diff["counts"]

        def replaced(name: str, key: str | None, upload: Path) -> tuple[float, int, dict, float]:
            """Import the base as `name`, then replace it with `upload`: (time, extra bytes,
            diff counts, diff time)."""
            imported(name, base)
            if key:
                set_key(hub, admin, PROJECT, name, key)
            before = du(hub.datasets.uri(PROJECT, name))
            seconds = imported(name, upload)
            extra = du(hub.datasets.uri(PROJECT, name)) - before
            diff, diff_s = timed(diff_context, hub, PROJECT, name, "1", "2", 0, 9)
            return seconds, extra, diff["counts"], diff_s

        # the same change as an upload of the edited file, replacing the data: with the key
        # `id` (an edited download, rows in order), with no key (rows matched by their
        # values), and with the key but the rows in another order (matched by value and key)
        for label, key, upload in (
            ("replace", "id", edited),
            ("unkeyed", None, edited),
            ("shuffled", "id", shuffled(work, edited)),
        ):
            seconds, extra, counts, diff_s = replaced(label, key, upload)
            out[f"{label}_s"], out[f"{label}_bytes"] = seconds, extra
            out[f"{label}_counts"], out[f"{label}_diff_s"] = counts, diff_s
    finally:
        hub.close()
    return out


def shuffled(work: Path, edited: Path) -> Path:
    """The edited file with its rows in reverse order (not the dataset's scan order)."""
    dest = work / "shuffled.parquet"
    table = pq.read_table(edited)
    pq.write_table(table.take(pa.array(np.arange(table.num_rows)[::-1])), dest)
    return dest


# --- DVC -----------------------------------------------------------------------------------


def dvc_bin() -> Path:
    dvc = DVC_VENV / "bin" / "dvc"
    if not dvc.exists():
        print(f"installing DVC into {DVC_VENV} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_VENV)], check=True)
        pip = [str(DVC_VENV / "bin" / "pip"), "install", "-q"]
        subprocess.run([*pip, "dvc"], check=True, capture_output=True)
    return dvc


def dvc_side(work: Path, base: Path, edited: Path) -> dict:
    dvc, repo = str(dvc_bin()), work / "dvc-repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}  # fmt: skip

    def sh(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True)
        return done.stdout

    sh("git", "init", "-q")
    sh(dvc, "init", "-q")
    sh(dvc, "config", "core.analytics", "false")
    sh("git", "commit", "-qm", "dvc init")
    cache = repo / ".dvc" / "cache"
    data = repo / "table.parquet"
    shutil.copyfile(base, data)

    def add(message: str) -> None:
        sh(dvc, "add", "-q", "table.parquet")
        sh("git", "add", "table.parquet.dvc", ".gitignore")
        sh("git", "commit", "-qm", message)

    out: dict = {"add_s": timed(add, "base")[1]}
    out["base_bytes"] = du(cache)
    data.unlink()  # a user's edit writes the file anew; the cache copy stays untouched
    shutil.copyfile(edited, data)
    out["update_s"] = timed(add, "1% of x")[1]
    out["update_bytes"] = du(cache) - out["base_bytes"]
    out["update_mb"] = out["update_bytes"] / 1e6
    text, out["diff_s"] = timed(sh, dvc, "diff", "HEAD~1", "HEAD")
    out["diff_text"] = " ".join(text.split())
    return out


# --- report --------------------------------------------------------------------------------


def report(rows: int, reef: dict, dvc: dict | None) -> str:
    mb = reef["base_bytes"] / 1e6
    lines = [
        f"dataset benchmark: {rows:,} rows, 1% change = {max(1, rows // 100):,} rows of column x",
        f"reef: in-process Hub, real stores; base Lance dir {mb:,.1f} MB; "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end",
        "",
        f"{'':34} {'reef':>12} {'DVC':>12} {'reef/DVC':>9}",
    ]

    def row(label: str, ours: float, theirs: float | None, unit: str) -> None:
        other = f"{theirs:>10.3f}{unit}" if theirs is not None else f"{'-':>12}"
        ratio = f"{ours / theirs:>9.3f}" if theirs else f"{'-':>9}"
        lines.append(f"{label:34} {ours:>10.3f}{unit} {other} {ratio}")

    for label, key in (("Parquet", "parquet"), ("CSV", "csv")):
        seconds, size = reef[f"{key}_s"], reef[f"{key}_mb"]
        lines.append(
            f"{'import ' + label:34} {seconds:>10.3f} s   ({rows / seconds:,.0f} rows/s, "
            f"{size / seconds:,.0f} MB/s)"
        )
    theirs = dvc or {}
    for label, ours, other, unit in (
        ("add base file (dvc add + commit)", reef["parquet_s"], "add_s", " s"),
        ("1% change: time (update_rows)", reef["update_s"], "update_s", " s"),
        ("1% change: extra disk", reef["update_bytes"] / 1e6, "update_mb", "MB"),
        ("1% change: time (upload-replace)", reef["replace_s"], "update_s", " s"),
        ("1% change: extra disk (replace)", reef["replace_bytes"] / 1e6, "update_mb", "MB"),
        ("diff: counts + first page", reef["diff_s"], "diff_s", " s"),
        ("diff after upload-replace", reef["replace_diff_s"], "diff_s", " s"),
        ("1% change: time (replace, no key)", reef["unkeyed_s"], "update_s", " s"),
        ("1% change: extra disk (no key)", reef["unkeyed_bytes"] / 1e6, "update_mb", "MB"),
        ("1% change: time (key, reordered)", reef["shuffled_s"], "update_s", " s"),
        ("1% change: disk (key, reordered)", reef["shuffled_bytes"] / 1e6, "update_mb", "MB"),
    ):
        row(label, ours, theirs.get(other), unit)
    share = reef["update_bytes"] / reef["base_bytes"]
    lines += [
        "",
        f"reef diff counts: {reef['diff_counts']} (first page: {reef['diff_page']} rows); "
        f"after upload-replace: {reef['replace_counts']}; with no key: {reef['unkeyed_counts']}; "
        f"with the key, rows reordered: {reef['shuffled_counts']}",
        reupload_shares(reef),
        f"targets: 1% change < 3% of base on disk: {share:.2%} "
        f"{'OK' if share < 0.03 else 'MISSED'}; < 1 s: {reef['update_s']:.3f} s "
        f"{'OK' if reef['update_s'] < 1 else 'MISSED'}; diff < 1 s: {reef['diff_s']:.3f} s "
        f"{'OK' if reef['diff_s'] < 1 else 'MISSED'}",
    ]
    if dvc:
        lines.append(f"dvc diff says: {dvc['diff_text'][:200]}")
    return "\n".join(lines) + "\n"


def reupload_shares(reef: dict) -> str:
    """The extra disk of each re-upload as a share of the base, against the 3% target."""
    shares = []
    for label, key in (("keyed", "replace"), ("no key", "unkeyed"), ("reordered", "shuffled")):
        share = reef[f"{key}_bytes"] / reef["base_bytes"]
        shares.append(f"{label} {share:.2%} {'OK' if share <= 0.03 else 'MISSED'}")
    return f"re-upload of a 1% change, extra disk / base: {'; '.join(shares)} (target <= 3%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--no-dvc", action="store_true", help="measure reef only")
    parser.add_argument("--work", type=Path, help="work dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reef-bench-datasets-", dir=args.work))
    try:
        print(f"writing {args.rows:,} rows under {work} ...", flush=True)
        base, csv, edited = write_files(work, args.rows)
        reef = reef_side(work, base, csv, edited, args.rows)
        dvc = None if args.no_dvc else dvc_side(work, base, edited)
        text = report(args.rows, reef, dvc)
        print(text)
        results = ROOT / "bench" / "results"
        results.mkdir(parents=True, exist_ok=True)
        (results / "datasets.txt").write_text(text)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
