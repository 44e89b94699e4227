"""Git over smart HTTP at `/git/{project}/{module}.git`: dulwich, in front of the Litestar app.

`mount(app)` puts `GitHTTP` ahead of Litestar's router: a request under `/git/` runs dulwich's
WSGI application in a worker thread (through a2wsgi), anything else goes on to Litestar.

- Who: HTTP Basic, where the password is the user's password or one of their API tokens
  (a bearer API token works too). No or bad credentials: 401 with `WWW-Authenticate`, so
  that git asks its credential helper.
- What: the project role. Reporters clone and fetch; developers push (maintainers, in
  `library`); anyone else gets 404, whether the module exists or not. A push to a module
  that does not exist creates it; if the push stores nothing, the empty repository goes.
- Pushes: dulwich's update hook runs `ModuleStore.check_update` on every pushed ref once the
  pack is in (a valid reef.toml, no rewrite or deletion of main, the ref not moved since the
  pusher fetched) under the store's write lock; a refusal shows in `git push` as
  `! [remote rejected] main -> main (<reason>)`. The post-receive hook writes the audit log and
  enqueues the pipeline triggers on the module (`TriggerService.on_push`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qs

from a2wsgi import WSGIMiddleware
from dulwich.errors import HookError, NotGitRepository
from dulwich.hooks import Hook
from dulwich.objects import ObjectID
from dulwich.refs import Ref
from dulwich.repo import Repo
from dulwich.server import Backend, ReceivePackHandler
from dulwich.web import make_wsgi_chain
from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send

from reef.errors import NotAuthenticated, NotFound, PermissionDenied, ReefError
from reef.hub import Hub
from reef.server.auth import basic_principal
from reef.store.modules import ModuleStore
from reef.store.people import Principal
from reef.store.projects import LIBRARY, rank

PREFIX = "/git/"
REALM = 'Basic realm="reef"'
ZERO_SHA = b"0" * 40
_PATH_RE = re.compile(r"^/git/(?P<project>[^/]+)/(?P<module>[^/]+)\.git(?P<rest>/.*)$")
WSGIStart = Any  # the WSGI start_response callable
Environ = dict[str, Any]  # a2wsgi's TypedDict names only the PEP 3333 keys
log = logging.getLogger("reef.git")


def mount(app: Litestar) -> Litestar:
    """Serve git under `/git/` ahead of `app`'s router (a Litestar mount would append a `/`
    to the paths that dulwich matches)."""
    logging.getLogger("dulwich").setLevel(logging.WARNING)  # it logs every request at INFO
    app.asgi_handler = GitHTTP(app, app.asgi_handler)
    return app


@dataclass(frozen=True)
class GitRequest:
    """Which module a git request is for, and whether it is (part of) a push."""

    project: str
    module: str
    push: bool  # git-receive-pack, or its refs advertisement

    @property
    def where(self) -> str:
        return f"{self.project}/{self.module}"


def parse_request(environ: Environ) -> GitRequest | None:
    mat = _PATH_RE.match(environ.get("PATH_INFO", ""))
    if mat is None:
        return None
    rest = mat["rest"]
    service = parse_qs(environ.get("QUERY_STRING", "")).get("service", [""])[0]
    push = rest == "/git-receive-pack" or (rest == "/info/refs" and service == "git-receive-pack")
    return GitRequest(mat["project"], mat["module"], push)


class GitHTTP:
    """ASGI: `/git/...` to dulwich (in a2wsgi's worker threads), the rest to `inner`."""

    def __init__(self, app: Litestar, inner: ASGIApp) -> None:
        self.app = app
        self.inner = inner
        self.new_modules = NewModules()
        self.wsgi = WSGIMiddleware(cast(Any, self.handle))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX):
            await self.wsgi(scope, receive, send)  # type: ignore[arg-type]
        else:
            await self.inner(scope, receive, send)

    def handle(self, environ: Environ, start_response: WSGIStart) -> Iterable[bytes]:
        """The WSGI application: authenticate, authorize, then let dulwich answer."""
        # uvicorn has already de-chunked the body; dulwich would try to de-chunk it again.
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        req = parse_request(environ)
        if req is None:
            return reply(start_response, NotFound("git URLs look like /git/PROJECT/MODULE.git"))
        hub: Hub = self.app.state.hub
        try:
            address = environ.get("REMOTE_ADDR", "")  # sign-in failures count per address
            who = authenticate(hub, environ.get("HTTP_AUTHORIZATION", ""), address)
            authorize(hub, who, req)
        except ReefError as err:
            return reply(start_response, err)
        return self.serve(hub, who, req, environ, start_response)

    def serve(
        self, hub: Hub, who: Principal, req: GitRequest, environ: Environ, start: WSGIStart
    ) -> Iterator[bytes]:
        backend = ModuleBackend(hub, who, req)
        pushing = self.new_modules.pushing(hub.modules, req) if req.push else nullcontext()
        with pushing:
            try:
                yield from make_wsgi_chain(backend, handlers=HANDLERS)(environ, start)
            finally:
                backend.close()


def authenticate(hub: Hub, header: str, address: str = "") -> Principal:
    """HTTP Basic (password, or an API token as the password), or a bearer API token."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        return basic_principal(hub, value.strip(), address)
    if scheme.lower() == "bearer" and (who := hub.people.resolve_token(value.strip(), ("api",))):
        return who
    raise NotAuthenticated("sign in with your user name and a password or API token")


def authorize(hub: Hub, who: Principal, req: GitRequest) -> None:
    """Raise unless `who` may do this. Non-members learn nothing: 404 whether the module
    exists or not."""
    role = hub.projects.role_of(req.project, who)
    if role is None or (req.push and not hub.projects.exists(req.project)):
        raise NotFound(f"repository {req.where} not found")
    hub.modules.repo_path(req.project, req.module)  # InvalidInput (400) for a bad name
    needed = "maintainer" if req.project == LIBRARY else "developer"
    if req.push and rank(role) < rank(needed):
        raise PermissionDenied(
            f"pushing to {req.where} needs the {needed} role in project '{req.project}'; "
            f"you are {role}"
        )
    if not req.push and not hub.modules.exists(req.project, req.module):
        raise NotFound(f"repository {req.where} not found")


def reply(start_response: WSGIStart, err: ReefError) -> list[bytes]:
    """A plain-text error; git shows its body to the user as `remote: ...`."""
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    if err.status == 401:
        headers.append(("WWW-Authenticate", REALM))
    start_response(f"{err.status} {HTTPStatus(err.status).phrase}", headers)
    return [f"{err.message}\n".encode()]


class NewModules:
    """A push to a module that does not exist creates its repository; when the last push
    in flight to it ends with no ref stored, the repository goes again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: Counter[tuple[str, str]] = Counter()

    @contextmanager
    def pushing(self, store: ModuleStore, req: GitRequest) -> Iterator[None]:
        key = (req.project, req.module)
        with self._lock:
            self._active[key] += 1
            store.init(req.project, req.module)
        try:
            yield
        finally:
            with self._lock:
                self._active[key] -= 1
                if not self._active[key]:
                    del self._active[key]
                    store.remove_if_empty(req.project, req.module)


class ModuleBackend(Backend):
    """dulwich's view of the data dir for one request: the one repository the request was
    authorized for, opened once, with reef's hooks attached."""

    def __init__(self, hub: Hub, who: Principal, req: GitRequest) -> None:
        self.hub = hub
        self.who = who
        self.req = req
        self.store = hub.modules
        self._repo: Repo | None = None

    def open_repository(self, path: str | bytes) -> Repo:
        # dulwich asks for the URL prefix, '/git/project/module.git' (str or bytes)
        if os.fsdecode(path).strip("/") != f"git/{self.req.where}.git":
            raise NotGitRepository(f"{os.fsdecode(path)!r} is not a module repository")
        if self._repo is None:
            self._repo = self._open()
        return self._repo

    def _open(self) -> Repo:
        path = self.store.repo_path(self.req.project, self.req.module)
        if not (path / "HEAD").is_file():
            raise NotGitRepository(f"repository {self.req.where} not found")
        repo = Repo(str(path))
        repo.hooks["update"] = UpdateCheck(self.store, self.req)
        repo.hooks["post-receive"] = PushRecord(self.hub, self.who, self.req)
        return repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()


class ReceivePack(ReceivePackHandler):
    """dulwich's receive-pack, with the ref updates of a push under the store's write lock.

    dulwich moves a ref with a compare-and-swap but reports "ok" even when the swap fails.
    Holding the lock from the update hook's check (which refuses a ref that moved since the
    pusher fetched) to the write makes that check the truth: of two pushes racing from the
    same commit, one lands and the other is told to fetch first.
    """

    backend: ModuleBackend

    def _apply_pack(
        self, refs: list[tuple[ObjectID, ObjectID, Ref]]
    ) -> Iterator[tuple[bytes, bytes]]:
        results = super()._apply_pack(refs)
        yield next(results)  # ("unpack", "ok"): the pack is in the object store now
        with self.backend.store.writing():
            statuses = list(results)  # the update hook and the ref writes, per ref
        yield from statuses


HANDLERS: dict[bytes, Any] = {b"git-receive-pack": ReceivePack}


class UpdateCheck(Hook):
    """dulwich's update hook: once per pushed ref, after the pack is in and before the ref
    moves. A HookError refuses that ref, its message shown by `git push`."""

    def __init__(self, store: ModuleStore, req: GitRequest) -> None:
        self.store = store
        self.req = req

    def execute(self, ref: bytes, old: bytes, new: bytes) -> tuple[bytes, bytes]:
        """Returns (stdout, stderr) for the pusher, as dulwich's shell hooks do: nothing."""
        try:
            self.store.check_update(
                self.req.project, self.req.module, ref.decode(), _sha(old), _sha(new)
            )
        except ReefError as err:
            raise HookError(" ".join(err.message.split())) from None
        except Exception:
            log.exception("checking a push to %s failed", self.req.where)
            raise HookError("reef could not check this update (see the server log)") from None
        return b"", b""


class PushRecord(Hook):
    """dulwich's post-receive hook: audit every ref that moved. It runs inside the push, so
    it never raises (an error here would show the pusher `RPC failed` after the refs moved).
    Its output reaches the pusher as `remote: ...` lines."""

    def __init__(self, hub: Hub, who: Principal, req: GitRequest) -> None:
        self.hub = hub
        self.who = who
        self.req = req

    def execute(self, updated: list[tuple[bytes, bytes, bytes]]) -> bytes:
        lines = []
        for old, new, ref in updated:
            name, sha = ref.decode(), _sha(new)
            try:
                self._record(name, _sha(old), sha)
            except Exception:
                log.exception("recording a push to %s failed", self.req.where)
            moved = f"now at {sha[:10]}" if sha else "deleted"
            lines.append(f"reef: {self.req.where} {name.removeprefix('refs/heads/')} {moved}\n")
        return "".join(lines).encode()

    def _record(self, ref: str, old: str | None, new: str | None) -> None:
        target = f"module {self.req.module}"
        audit = self.hub.audit
        audit.record(
            self.who.name, "module.push", target, self.req.project, ref=ref, sha=new, old=old
        )
        self.hub.triggers.on_push(self.req.project, self.req.module, ref, new)


def _sha(value: bytes) -> str | None:
    """A hex sha from the protocol, None for the all-zero 'no object' sha."""
    return None if value == ZERO_SHA else value.decode()
