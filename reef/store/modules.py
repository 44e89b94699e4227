"""AI modules as bare git repositories, one per module, written with dulwich.

Layout: `<root>/<project>/<module>.git`, HEAD -> refs/heads/main. The same repositories are
what `git clone` / `git push` reach over smart HTTP, so every module version is a commit.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from dulwich.diff_tree import CHANGE_ADD, CHANGE_DELETE, TreeChange, tree_changes
from dulwich.errors import NotTreeError
from dulwich.graph import can_fast_forward
from dulwich.index import commit_tree
from dulwich.object_store import BaseObjectStore, iter_tree_contents, tree_lookup_path
from dulwich.objects import Blob, Commit, Tag, Tree, TreeEntry
from dulwich.patch import write_object_diff
from dulwich.refs import check_ref_format
from dulwich.repo import Repo

from reef.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from dulwich.objects import ObjectID
    from dulwich.refs import Ref
from reef.manifest import InvalidManifest, Manifest, parse_manifest

MANIFEST = "reef.toml"
MAIN_REF = cast("Ref", b"refs/heads/main")
CREATING = ".creating"  # suffix of a repository being built, before its rename into place
_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_HEX_RE = re.compile(r"^[0-9a-f]{4,40}$")
_SKIP_DIRS = {"__pycache__", ".git"}
_FILE_MODE = 0o100644
_EXEC_MODE = 0o100755
_DIFF_STATUS = {CHANGE_ADD: "added", CHANGE_DELETE: "deleted"}


class ModuleNotFound(NotFound):
    """No such module, revision or file."""


@dataclass(frozen=True)
class CommitInfo:
    """One commit of a module, as `log` lists it."""

    sha: str
    message: str
    author: str
    timestamp: datetime


class ModuleStore:
    """Bare git repositories of AI modules under one root folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()

    # --- paths and listing ----------------------------------------------------------

    def repo_path(self, project: str, name: str) -> Path:
        """Where the bare repository of `project/name` lives (it may not exist)."""
        return self.root / _slug(project, "project") / f"{_slug(name, 'module')}.git"

    def exists(self, project: str, name: str) -> bool:
        """True when the module's repository exists (it may still have no commit)."""
        return (self.repo_path(project, name) / "HEAD").is_file()

    def list_modules(self, project: str) -> list[str]:
        """Names of the modules of `project`, sorted."""
        folder = self.root / _slug(project, "project")
        if not folder.is_dir():
            return []
        names = (p.name.removesuffix(".git") for p in folder.glob("*.git"))
        return sorted(n for n in names if (folder / f"{n}.git" / "HEAD").is_file())

    # --- writing --------------------------------------------------------------------

    def commit_files(
        self, project: str, name: str, files: dict[str, bytes], message: str, author: str
    ) -> str:
        """Commit `files` (the whole module tree) onto main; return the head sha.

        The manifest is validated first, so an invalid module stores nothing. When the tree
        equals the current head's tree, no commit is made.
        """
        blobs = _blobs(files)
        _validate_module(files)
        with self._lock, self._open(project, name, create=True) as repo:
            entries = [(path.encode(), blob.id, _FILE_MODE) for path, blob in blobs.items()]
            for blob in blobs.values():
                repo.object_store.add_object(blob)
            tree_id = commit_tree(repo.object_store, entries)
            parent = _ref_or_none(repo, MAIN_REF)
            if parent is not None and _commit(repo, parent).tree == tree_id:
                return parent.decode()
            commit = _new_commit(tree_id, parent, message, author)
            repo.object_store.add_object(commit)
            if not _move_main(repo, parent, commit.id):
                raise InvalidInput(f"module {project}/{name} changed during the commit; retry")
            return commit.id.decode()

    def commit_dir(self, project: str, name: str, src: Path, message: str, author: str) -> str:
        """Commit every file under `src` (skipping __pycache__, *.pyc and .git)."""
        return self.commit_files(project, name, read_tree(Path(src)), message, author)

    # --- reading --------------------------------------------------------------------

    def head(self, project: str, name: str) -> str:
        """The sha of main's head; ModuleNotFound if the module has no commit."""
        with self._open(project, name) as repo:
            sha = _ref_or_none(repo, MAIN_REF)
        if sha is None:
            raise ModuleNotFound(f"module {project}/{name} has no commits yet")
        return sha.decode()

    def resolve(self, project: str, name: str, rev: str | None) -> str:
        """Full commit sha for None/"main", a branch, a tag, or a full or short sha."""
        if rev is None or rev in ("", "main", "HEAD"):
            return self.head(project, name)
        with self._open(project, name) as repo:
            sha = _resolve_ref(repo, rev) or _resolve_sha(repo, rev)
        if sha is None:
            raise ModuleNotFound(f"module {project}/{name} has no revision {rev!r}")
        return sha

    def read_file(self, project: str, name: str, sha: str, path: str) -> bytes:
        """The bytes of `path` in the given revision; ModuleNotFound if it is not there."""
        commit = self.resolve(project, name, sha)
        with self._open(project, name) as repo:
            tree = _commit(repo, commit).tree
            try:
                mode, blob_id = tree_lookup_path(repo.__getitem__, tree, path.encode())
            except (KeyError, NotTreeError):
                mode, blob_id = 0, _oid("")
            if not stat.S_ISREG(mode):
                raise ModuleNotFound(f"module {project}/{name}@{commit[:10]} has no file {path!r}")
            return _blob_data(repo, blob_id)

    def manifest(self, project: str, name: str, sha: str | None = None) -> Manifest:
        """The parsed reef.toml of a revision (main's head by default)."""
        commit = self.resolve(project, name, sha)
        try:
            text = self.read_file(project, name, commit, MANIFEST)
        except ModuleNotFound:
            raise InvalidManifest(f"module {project}/{name} has no {MANIFEST}") from None
        return parse_manifest(_decode(text))

    def log(self, project: str, name: str, limit: int = 50) -> list[CommitInfo]:
        """Commits reachable from main, newest first."""
        head = _oid(self.head(project, name))
        with self._open(project, name) as repo:
            walker = repo.get_walker(include=[head], max_entries=limit)
            return [_commit_info(entry.commit) for entry in walker]

    def checkout(self, project: str, name: str, sha: str, dest: Path) -> None:
        """Write the files of a revision into `dest` (created if missing)."""
        commit = self.resolve(project, name, sha)
        dest = Path(dest)
        with self._open(project, name) as repo:
            tree = _commit(repo, commit).tree
            for entry in iter_tree_contents(repo.object_store, tree):
                _write_entry(repo, entry.path.decode(), entry.mode, entry.sha, dest)

    # --- browsing -------------------------------------------------------------------

    def tree(self, project: str, name: str, sha: str, path: str = "") -> list[dict[str, Any]]:
        """The folder `path` of a revision: folders first, then files, each by name.

        Entries are `{name, path, type: "tree" | "blob", size}` (size is None for folders);
        symlinks and submodules are left out, as `checkout` leaves them out.
        """
        commit = self.resolve(project, name, sha)
        folder = path.strip("/")
        with self._open(project, name) as repo:
            tree = _subtree(repo, _commit(repo, commit).tree, folder)
            if tree is None:
                raise ModuleNotFound(
                    f"module {project}/{name}@{commit[:10]} has no folder {path!r}"
                )
            entries = [_tree_entry(repo, folder, e) for e in tree.iteritems()]
        listed = [e for e in entries if e is not None]
        return sorted(listed, key=lambda e: (e["type"] != "tree", e["name"]))

    def diff(self, project: str, name: str, from_sha: str, to_sha: str) -> list[dict[str, str]]:
        """What changed from one revision to another: `{path, status, patch}` per file, where
        status is added, deleted or modified and patch is the file's unified diff."""
        old = self.resolve(project, name, from_sha)
        new = self.resolve(project, name, to_sha)
        with self._open(project, name) as repo:
            store = repo.object_store
            changes = tree_changes(store, _commit(repo, old).tree, _commit(repo, new).tree)
            return [_file_diff(store, change) for change in changes]

    def set_tag(self, project: str, name: str, tag: str, sha: str) -> None:
        """Point lightweight tag `tag` at commit `sha` (created or moved)."""
        if not _SLUG_RE.match(tag):
            raise InvalidInput(f"invalid tag name {tag!r}")
        with self._lock, self._open(project, name) as repo:
            repo.refs[_ref(f"refs/tags/{tag}")] = _oid(sha)

    def tags(self, project: str, name: str) -> list[dict[str, str]]:
        """Tags that point at commits, by name: `{name, sha}` with the commit's sha."""
        with self._open(project, name) as repo:
            tags = repo.refs.as_dict(_ref("refs/tags"))
            peeled = {tag: _peel_commit(repo, sha) for tag, sha in tags.items()}
        return [
            {"name": tag.decode(), "sha": commit.id.decode()}
            for tag, commit in sorted(peeled.items())
            if commit is not None
        ]

    # --- pushes (git smart HTTP) ----------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the store's write lock: commits and pushed ref updates never interleave."""
        with self._lock:
            yield

    def init(self, project: str, name: str) -> bool:
        """Create the empty bare repository of a new module; False if it already exists."""
        path = self.repo_path(project, name)
        with self._lock:
            if (path / "HEAD").is_file():
                return False
            _init_bare(path)
        return True

    def repair(self) -> list[Path]:
        """At start-up (no push in flight): remove what killed pushes left, i.e. repositories
        still being built, folders with no HEAD and repositories with no ref; return them."""
        removed = []
        for path in sorted(self.root.glob("*/*.git*")) if self.root.is_dir() else []:
            if path.is_dir() and (path.name.endswith(CREATING) or not _has_refs(path)):
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        return removed

    def remove_if_empty(self, project: str, name: str) -> bool:
        """Delete the module's repository if no ref points anywhere (a refused first push)."""
        path = self.repo_path(project, name)
        with self._lock:
            if not (path / "HEAD").is_file():
                return False
            with self._open(project, name) as repo:
                if repo.refs.as_dict(_ref("refs")):
                    return False
            shutil.rmtree(path)
            return True

    def check_update(
        self, project: str, name: str, ref: str, old: str | None, new: str | None
    ) -> None:
        """Refuse a pushed ref update that reef does not allow. Call it under `writing()`.

        `old` is None for a new ref and `new` None for a deletion. Raises Conflict when the
        ref moved since the pusher looked, InvalidInput for a change reef refuses (deleting
        or rewriting main), InvalidManifest when the new commit is not a valid module.
        """
        with self._open(project, name) as repo:
            current = _ref_or_none(repo, _ref(ref))
            if current != (old.encode() if old else None):
                raise Conflict(
                    f"{ref.removeprefix('refs/heads/')} moved since you fetched (another push "
                    "came first): fetch first, then push again"
                )
            _check_ref_policy(repo, ref, old, new)
            if new is not None:
                commit = _peel_commit(repo, _oid(new))
                if commit is None:
                    raise InvalidInput(f"{ref} must point at a commit")
                _validate_tree(repo, commit.tree)

    # --- helpers --------------------------------------------------------------------

    @contextmanager
    def _open(self, project: str, name: str, create: bool = False) -> Iterator[Repo]:
        path = self.repo_path(project, name)
        if not (path / "HEAD").is_file():
            if not create:
                raise ModuleNotFound(f"no module {project}/{name}")
            _init_bare(path)
        repo = Repo(str(path))
        try:
            yield repo
        finally:
            repo.close()


def read_tree(src: Path) -> dict[str, bytes]:
    """All files under `src` keyed by relative posix path, skipping caches and .git."""
    if not src.is_dir():
        raise InvalidInput(f"{src} is not a folder")
    files = {}
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.suffix == ".pyc":
            continue
        if path.is_file() and not path.is_symlink():
            files[rel.as_posix()] = path.read_bytes()
    return files


def _slug(value: str, what: str) -> str:
    if not isinstance(value, str) or not _SLUG_RE.match(value) or value.endswith(".git"):
        raise InvalidInput(
            f"invalid {what} name {value!r}: use lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (at most 63 characters)"
        )
    return value


def _blobs(files: dict[str, bytes]) -> dict[str, Blob]:
    if not files:
        raise InvalidInput("a module needs at least one file")
    blobs = {}
    for path, data in files.items():
        parts = path.split("/")
        if path.startswith("/") or "\\" in path or any(p in ("", ".", "..", ".git") for p in parts):
            raise InvalidInput(f"invalid file path {path!r}: use a relative posix path")
        if not isinstance(data, bytes):
            raise InvalidInput(f"file {path!r}: content must be bytes")
        blobs[path] = Blob.from_string(data)
    return blobs


def _validate_module(files: dict[str, bytes]) -> Manifest:
    if MANIFEST not in files:
        raise InvalidManifest(f"a module needs a {MANIFEST} at its root")
    manifest = parse_manifest(_decode(files[MANIFEST]))
    if manifest.entrypoint not in files:
        raise InvalidManifest(
            f"reef.toml: entrypoint {manifest.entrypoint!r} is not among the module's files"
        )
    return manifest


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidManifest(f"{MANIFEST} is not UTF-8 text") from None


def _init_bare(path: Path) -> None:
    """Create a bare repository atomically: it is built under a temporary name, then renamed
    into place, so a kill leaves no half repository at `path`. A half one that an older reef
    left there (a folder with no HEAD) is replaced. Callers hold the store's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.rmtree(path)
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.", suffix=CREATING, dir=path.parent))
    with Repo.init_bare(str(tmp), mkdir=False, default_branch=b"main") as repo:
        repo.refs.set_symbolic_ref(_ref("HEAD"), MAIN_REF)
    os.rename(tmp, path)


def _has_refs(path: Path) -> bool:
    """True for a whole repository with at least one ref (a module that was pushed)."""
    if not (path / "HEAD").is_file():
        return False
    try:
        with Repo(str(path)) as repo:
            return bool(repo.refs.as_dict(_ref("refs")))
    except Exception:  # not a readable repository: a half one
        return False


def _ref_or_none(repo: Repo, ref: Ref) -> ObjectID | None:
    try:
        return repo.refs[ref]
    except KeyError:
        return None


def _move_main(repo: Repo, old: ObjectID | None, new: ObjectID) -> bool:
    """Compare-and-swap main, so that a concurrent push is never overwritten."""
    if old is None:
        return repo.refs.add_if_new(MAIN_REF, new)
    return repo.refs.set_if_equals(MAIN_REF, old, new)


def _new_commit(tree_id: ObjectID, parent: ObjectID | None, message: str, author: str) -> Commit:
    now = int(time.time())
    commit = Commit()
    commit.tree = tree_id
    commit.parents = [parent] if parent is not None else []
    commit.author = commit.committer = author.encode()
    commit.author_time = commit.commit_time = now
    commit.author_timezone = commit.commit_timezone = 0
    commit.encoding = b"UTF-8"
    commit.message = message.encode() if message.endswith("\n") else f"{message}\n".encode()
    return commit


def _resolve_ref(repo: Repo, rev: str) -> str | None:
    for prefix in ("refs/heads/", "refs/tags/", ""):
        ref = _ref(f"{prefix}{rev}")
        if not check_ref_format(ref):
            return None  # also keeps "../" and friends away from the refs folder
        if (prefix or rev.startswith("refs/")) and ref in repo.refs:
            obj = repo[repo.refs[ref]]
            while isinstance(obj, Tag):
                obj = repo[obj.object[1]]
            return obj.id.decode() if isinstance(obj, Commit) else None
    return None


def _resolve_sha(repo: Repo, rev: str) -> str | None:
    rev = rev.lower()
    if not _HEX_RE.match(rev):
        return None
    if len(rev) == 40:
        store = repo.object_store
        obj = store.get_raw(_oid(rev)) if _oid(rev) in store else None
        return rev if obj is not None and obj[0] == Commit.type_num else None
    heads = [sha for ref, sha in repo.get_refs().items() if ref != b"HEAD"]
    if not heads:
        return None
    matches = {
        e.commit.id for e in repo.get_walker(include=heads) if e.commit.id.decode().startswith(rev)
    }
    if len(matches) > 1:
        raise InvalidInput(f"revision {rev!r} is ambiguous; give more characters")
    return matches.pop().decode() if matches else None


def _commit_info(commit: Commit) -> CommitInfo:
    return CommitInfo(
        sha=commit.id.decode(),
        message=commit.message.decode("utf-8", "replace").strip(),
        author=commit.author.decode("utf-8", "replace"),
        timestamp=datetime.fromtimestamp(commit.commit_time, tz=UTC),
    )


def _write_entry(repo: Repo, rel: str, mode: int, sha: ObjectID, dest: Path) -> None:
    parts = rel.split("/")
    if any(p in ("", ".", "..", ".git") for p in parts):
        raise InvalidInput(f"refusing to check out unsafe path {rel!r}")
    if not stat.S_ISREG(mode):
        return  # symlinks and submodules are not part of a module's files
    target = dest.joinpath(*parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(_blob_data(repo, sha))
    if mode == _EXEC_MODE:
        target.chmod(0o755)


def _subtree(repo: Repo, tree_id: ObjectID, folder: str) -> Tree | None:
    if not folder:
        return _tree(repo, tree_id)
    try:
        mode, sha = tree_lookup_path(repo.__getitem__, tree_id, folder.encode())
    except (KeyError, NotTreeError):
        return None
    return _tree(repo, sha) if stat.S_ISDIR(mode) else None


def _tree_entry(repo: Repo, folder: str, entry: TreeEntry) -> dict[str, Any] | None:
    name = entry.path.decode("utf-8", "replace")
    path = f"{folder}/{name}" if folder else name
    if stat.S_ISDIR(entry.mode):
        return {"name": name, "path": path, "type": "tree", "size": None}
    if stat.S_ISREG(entry.mode):
        size = len(_blob_data(repo, entry.sha))
        return {"name": name, "path": path, "type": "blob", "size": size}
    return None


def _file_diff(store: BaseObjectStore, change: TreeChange) -> dict[str, str]:
    old, new = change.old, change.new
    out = io.BytesIO()
    write_object_diff(
        out,
        store,
        (old.path, old.mode, old.sha) if old else (None, None, None),
        (new.path, new.mode, new.sha) if new else (None, None, None),
    )
    entry = new or old
    path = entry.path.decode("utf-8", "replace") if entry and entry.path else ""
    status = _DIFF_STATUS.get(change.type, "modified")
    return {"path": path, "status": status, "patch": out.getvalue().decode("utf-8", "replace")}


def _peel_commit(repo: Repo, sha: ObjectID) -> Commit | None:
    """The commit `sha` names, through any annotated tags; None for a tree or blob."""
    try:
        obj = repo[sha]
        while isinstance(obj, Tag):
            obj = repo[obj.object[1]]
    except KeyError:
        return None
    return obj if isinstance(obj, Commit) else None


def _check_ref_policy(repo: Repo, ref: str, old: str | None, new: str | None) -> None:
    if not ref.startswith(("refs/heads/", "refs/tags/")):
        raise InvalidInput(f"{ref}: only branches and tags can be pushed")
    if ref == MAIN_REF.decode():
        if new is None:
            raise InvalidInput("branch main cannot be deleted: it holds the module's versions")
        if old is not None and not can_fast_forward(repo, _oid(old), _oid(new)):
            raise InvalidInput(
                "non-fast-forward push to main refused: its history cannot be rewritten "
                "(fetch, merge or rebase onto it, and push again)"
            )
    elif new is not None and _ref_or_none(repo, MAIN_REF) is None:
        raise InvalidInput(
            "a new module's first push must create branch main (git push URL HEAD:main)"
        )


def _validate_tree(repo: Repo, tree_id: ObjectID) -> Manifest:
    """The checks `commit_files` makes, on a pushed tree: reef.toml parses, entrypoint exists."""
    text = _blob_at(repo, tree_id, MANIFEST)
    if text is None:
        raise InvalidManifest(f"a module needs a {MANIFEST} at its root")
    manifest = parse_manifest(_decode(text))
    if _blob_at(repo, tree_id, manifest.entrypoint) is None:
        raise InvalidManifest(
            f"reef.toml: entrypoint {manifest.entrypoint!r} is not among the module's files"
        )
    return manifest


def _blob_at(repo: Repo, tree_id: ObjectID, path: str) -> bytes | None:
    try:
        mode, sha = tree_lookup_path(repo.__getitem__, tree_id, path.encode())
    except (KeyError, NotTreeError):
        return None
    return _blob_data(repo, sha) if stat.S_ISREG(mode) else None


def _oid(sha: str | bytes) -> ObjectID:
    """A hex object id as dulwich types it."""
    return cast("ObjectID", sha.encode() if isinstance(sha, str) else sha)


def _ref(name: str) -> Ref:
    return cast("Ref", name.encode())


def _commit(repo: Repo, sha: str | bytes) -> Commit:
    obj = repo[_oid(sha)]
    if not isinstance(obj, Commit):
        raise ModuleNotFound(f"{_oid(sha).decode()[:10]} is not a commit")
    return obj


def _tree(repo: Repo, sha: ObjectID) -> Tree:
    obj = repo[sha]
    if not isinstance(obj, Tree):
        raise ModuleNotFound(f"{sha.decode()[:10]} is not a folder")
    return obj


def _blob_data(repo: Repo, sha: ObjectID) -> bytes:
    obj = repo[sha]
    if not isinstance(obj, Blob):
        raise ModuleNotFound(f"{sha.decode()[:10]} is not a file")
    return obj.data
