"""ModuleStore on real bare repositories, checked with the real git CLI."""

from __future__ import annotations

import shutil
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dulwich.objects import Commit, Tag
from dulwich.repo import Repo

from reef.errors import InvalidInput, NotFound
from reef.manifest import InvalidManifest
from reef.store.modules import ModuleStore

AUTHOR = "admin <admin@reef.local>"
MODULES = Path(__file__).resolve().parent.parent / "reef" / "library"
TOML = b"""name = "demo"
kind = "model"
entrypoint = "main.py"
[params.n]
type = "int"
default = 1
"""
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git CLI not installed")


def module_files(**extra: bytes) -> dict[str, bytes]:
    return {"reef.toml": TOML, "main.py": b"print('hi')\n", **extra}


def git(*args: str, cwd: Path | None = None) -> str:
    env = {"GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd or Path.cwd()), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.fixture
def store(tmp_path: Path) -> ModuleStore:
    return ModuleStore(tmp_path / "git")


def test_commit_creates_bare_repo(store: ModuleStore, tmp_path: Path) -> None:
    assert not store.exists("p1", "demo")
    sha = store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    path = store.repo_path("p1", "demo")
    assert path == tmp_path / "git" / "p1" / "demo.git"
    assert store.exists("p1", "demo")
    assert len(sha) == 40
    assert store.head("p1", "demo") == sha
    with Repo(str(path)) as repo:
        assert repo.bare
        assert repo.refs.read_ref(b"HEAD") == b"ref: refs/heads/main"
    assert store.list_modules("p1") == ["demo"]
    assert store.list_modules("nope") == []


def test_nested_files_read_and_checkout(store: ModuleStore, tmp_path: Path) -> None:
    files = module_files(**{"lib/util.py": b"X = 1\n", "lib/deep/data.bin": bytes(range(256))})
    sha = store.commit_files("p1", "demo", files, "nested", AUTHOR)
    assert store.read_file("p1", "demo", sha, "lib/deep/data.bin") == bytes(range(256))
    assert store.read_file("p1", "demo", "main", "main.py") == b"print('hi')\n"
    dest = tmp_path / "work"
    dest.mkdir()
    store.checkout("p1", "demo", sha, dest)
    got = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert got == files


def test_read_missing_file(store: ModuleStore) -> None:
    sha = store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    for path in ("nope.py", "main.py/x", "lib"):
        with pytest.raises(NotFound, match="has no file"):
            store.read_file("p1", "demo", sha, path)


def test_history_and_identical_tree(store: ModuleStore) -> None:
    first = store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    same = store.commit_files("p1", "demo", module_files(), "again", AUTHOR)
    assert same == first
    second = store.commit_files("p1", "demo", module_files(**{"a.txt": b"a"}), "second", AUTHOR)
    log = store.log("p1", "demo")
    assert [c.sha for c in log] == [second, first]
    assert [c.message for c in log] == ["second", "first"]
    assert log[0].author == AUTHOR
    assert log[0].timestamp.tzinfo is UTC
    assert abs((datetime.now(UTC) - log[0].timestamp).total_seconds()) < 60
    assert [c.sha for c in store.log("p1", "demo", limit=1)] == [second]


def test_resolve(store: ModuleStore) -> None:
    first = store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    second = store.commit_files("p1", "demo", module_files(**{"a": b"a"}), "second", AUTHOR)
    path = str(store.repo_path("p1", "demo"))
    with Repo(path) as repo:
        repo.refs[b"refs/heads/dev"] = first.encode()
        repo.refs[b"refs/tags/v1"] = first.encode()
        tag = Tag()
        tag.name, tag.object, tag.message = b"v2", (Commit, second.encode()), b"v2\n"
        tag.tagger, tag.tag_time, tag.tag_timezone = AUTHOR.encode(), 0, 0
        repo.object_store.add_object(tag)
        repo.refs[b"refs/tags/v2"] = tag.id
    assert store.resolve("p1", "demo", None) == second
    assert store.resolve("p1", "demo", "main") == second
    assert store.resolve("p1", "demo", "dev") == first
    assert store.resolve("p1", "demo", "v1") == first
    assert store.resolve("p1", "demo", "v2") == second  # annotated tag, peeled
    assert store.resolve("p1", "demo", first) == first
    assert store.resolve("p1", "demo", first[:7]) == first
    assert store.resolve("p1", "demo", first[:7].upper()) == first
    for bad in ("nope", "0" * 40, "abc", "zzzzzzz", "../../HEAD", "refs/heads/../main", "a b"):
        with pytest.raises(NotFound):
            store.resolve("p1", "demo", bad)


def test_not_found(store: ModuleStore) -> None:
    with pytest.raises(NotFound):
        store.head("p1", "ghost")
    with pytest.raises(NotFound):
        store.log("p1", "ghost")
    with pytest.raises(NotFound):
        store.manifest("p1", "ghost")


def test_manifest(store: ModuleStore) -> None:
    first = store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    newer = TOML.replace(b"default = 1", b"default = 2")
    store.commit_files("p1", "demo", module_files(**{"reef.toml": newer}), "v2", AUTHOR)
    assert store.manifest("p1", "demo").params["n"].default == 2
    assert store.manifest("p1", "demo", first).params["n"].default == 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"main.py": b"x"}, "needs a reef.toml"),
        ({"reef.toml": b"name = ", "main.py": b"x"}, "not valid TOML"),
        ({"reef.toml": TOML}, "entrypoint 'main.py' is not among"),
        ({"reef.toml": TOML.replace(b'"model"', b'"trainer"'), "main.py": b""}, "unknown kind"),
    ],
)
def test_invalid_manifest_stores_nothing(store: ModuleStore, files: dict, message: str) -> None:
    with pytest.raises(InvalidManifest, match=message):
        store.commit_files("p1", "demo", files, "bad", AUTHOR)
    assert not store.exists("p1", "demo")


def test_invalid_manifest_keeps_head(store: ModuleStore) -> None:
    sha = store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    with pytest.raises(InvalidManifest):
        store.commit_files("p1", "demo", {"reef.toml": b"kind = 1", "main.py": b""}, "x", AUTHOR)
    assert store.head("p1", "demo") == sha


@pytest.mark.parametrize("path", ["/abs.py", "../up.py", "a//b.py", ".git/config", "a\\b.py"])
def test_unsafe_paths_refused(store: ModuleStore, path: str) -> None:
    with pytest.raises(InvalidInput, match="invalid file path"):
        store.commit_files("p1", "demo", module_files(**{path: b"x"}), "bad", AUTHOR)


@pytest.mark.parametrize(("project", "name"), [("P1", "demo"), ("p1", "../x"), ("p1", "a.git")])
def test_slugs(store: ModuleStore, project: str, name: str) -> None:
    with pytest.raises(InvalidInput, match="invalid"):
        store.commit_files(project, name, module_files(), "x", AUTHOR)
    with pytest.raises(InvalidInput):
        store.repo_path(project, name)


def test_commit_dir_skips_caches(store: ModuleStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "__pycache__").mkdir(parents=True)
    (src / "pkg" / "__pycache__").mkdir(parents=True)
    (src / "reef.toml").write_bytes(TOML)
    (src / "main.py").write_text("print(1)\n")
    (src / "pkg" / "mod.py").write_text("Y = 2\n")
    (src / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    (src / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (src / "stray.pyc").write_bytes(b"\0")
    sha = store.commit_dir("p1", "demo", src, "from dir", AUTHOR)
    dest = tmp_path / "out"
    store.checkout("p1", "demo", sha, dest)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == ["main.py", "pkg/mod.py", "reef.toml"]


def test_concurrent_commits_keep_every_commit(store: ModuleStore) -> None:
    store.commit_files("p1", "demo", module_files(), "base", AUTHOR)

    def commit(i: int) -> None:
        store.commit_files("p1", "demo", module_files(**{f"f{i}": b"x"}), f"c{i}", AUTHOR)

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.log("p1", "demo")) == 9


@needs_git
def test_git_cli_clone_and_log(store: ModuleStore, tmp_path: Path) -> None:
    store.commit_files("p1", "demo", module_files(), "first commit", AUTHOR)
    files = module_files(**{"lib/util.py": b"X = 1\n"})
    sha = store.commit_files("p1", "demo", files, "add lib", AUTHOR)
    bare = store.repo_path("p1", "demo")
    assert git("fsck", "--strict", cwd=bare) == ""
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare), str(clone), cwd=tmp_path)
    assert (clone / "lib" / "util.py").read_text() == "X = 1\n"
    assert git("rev-parse", "HEAD", cwd=clone).strip() == sha
    assert git("branch", "--show-current", cwd=clone).strip() == "main"
    log = git("log", "--format=%H|%an <%ae>|%s", cwd=clone).splitlines()
    assert log[0] == f"{sha}|{AUTHOR}|add lib"
    assert log[1].endswith("|first commit")


@needs_git
def test_git_cli_push_is_readable(store: ModuleStore, tmp_path: Path) -> None:
    store.commit_files("p1", "demo", module_files(), "first", AUTHOR)
    bare = store.repo_path("p1", "demo")
    clone = tmp_path / "clone"
    git("clone", "-q", str(bare), str(clone), cwd=tmp_path)
    (clone / "main.py").write_text("print('pushed')\n")
    git("-c", "user.name=dev", "-c", "user.email=dev@x", "commit", "-qam", "edit", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    pushed = git("rev-parse", "HEAD", cwd=clone).strip()
    assert store.head("p1", "demo") == pushed
    assert store.read_file("p1", "demo", pushed[:8], "main.py") == b"print('pushed')\n"
    assert [c.message for c in store.log("p1", "demo")] == ["edit", "first"]


def test_builtin_modules_commit(store: ModuleStore, tmp_path: Path) -> None:
    for src in sorted(p.parent for p in MODULES.glob("*/reef.toml")):
        sha = store.commit_dir("builtin", src.name, src, f"add {src.name}", AUTHOR)
        assert store.manifest("builtin", src.name, sha).name == src.name
    assert {"split", "mlp-classifier", "evaluate"} <= set(store.list_modules("builtin"))
