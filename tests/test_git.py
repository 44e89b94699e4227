"""Git over smart HTTP: the real `git` CLI against a real `reef serve`."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import Server, csrf, login, modules_dir, patience, start_server, wait_run
from reef.store.modules import ModuleStore

PASSWORD = "password-123"


@dataclass
class Team:
    """Project `team` and its people: a developer, a reporter, and an outsider."""

    server: Server
    tokens: dict[str, str]  # user -> API token ("admin" too)

    def url(self, user: str, project: str, module: str, secret: str | None = None) -> str:
        host = self.server.url.removeprefix("http://")
        return f"http://{user}:{secret or self.tokens[user]}@{host}/git/{project}/{module}.git"

    def api(self, path: str) -> dict:
        resp = self.server.client(self.tokens["admin"]).get(path)
        resp.raise_for_status()
        return resp.json()

    def store(self) -> ModuleStore:
        return ModuleStore(self.server.data / "git")


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("git")
    server = start_server(root / "data", modules_dir(root))
    admin = server.client()
    admin.post("/api/projects", json={"name": "team"}).raise_for_status()
    roles = {"dev": "developer", "rep": "reporter", "out": None}
    for user, role in roles.items():
        admin.post("/api/users", json={"name": user, "password": PASSWORD}).raise_for_status()
        if role:
            member = {"user": user, "role": role}
            admin.post("/api/projects/team/members", json=member).raise_for_status()
    tokens = {user: server.token(user, PASSWORD) for user in roles}
    yield Team(server, {**tokens, "admin": server.token()})
    admin.close()
    server.stop()


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """The real git, with no prompts, no credential helpers and no user config."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd or Path.cwd()),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
    }
    config = ["-c", "credential.helper=", "-c", "user.name=Dev", "-c", "user.email=dev@reef.test"]
    done = subprocess.run(
        ["git", *config, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert done.returncode == 0, f"git {' '.join(args)}:\n{done.stderr}"
    return done


def start_push(clone: Path) -> subprocess.Popen:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    cmd = ["git", "-c", "credential.helper=", "push", "origin", "main"]
    return subprocess.Popen(cmd, cwd=clone, env=env, stderr=subprocess.PIPE, text=True)


def set_default(clone: Path, param: str, value: str) -> None:
    """Change one parameter's default in the clone's reef.toml."""
    toml = clone / "reef.toml"
    pattern = rf"(\[params\.{param}\][^\[]*?default = )[^\n]*"
    text, count = re.subn(pattern, rf"\g<1>{value}", toml.read_text())
    assert count == 1, f"no default for {param} in reef.toml"
    toml.write_text(text)


def commit(clone: Path, message: str) -> str:
    git("commit", "-qam", message, cwd=clone)
    return git("rev-parse", "HEAD", cwd=clone).stdout.strip()


def publish(team: Team, tmp_path: Path, module: str) -> Path:
    """Clone library/split as admin and push it, test_size 0.3, as team/MODULE (developer)."""
    clone = tmp_path / module
    git("clone", "-q", team.url("admin", "library", "split"), str(clone))
    set_default(clone, "test_size", "0.3")
    commit(clone, "test_size 0.3")
    git("remote", "set-url", "origin", team.url("dev", "team", module), cwd=clone)
    git("push", "-q", "origin", "HEAD:main", cwd=clone)
    return clone


def remote_main(team: Team, module: str) -> str:
    return team.store().head("team", module)


def test_clone_change_push_then_catalog_and_diff(team: Team, tmp_path: Path) -> None:
    clone = publish(team, tmp_path, "split-fast")
    first = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    module = team.api("/api/projects/team/modules/split-fast")
    assert module["commit"] == first
    assert module["manifest"]["params"]["test_size"]["default"] == 0.3

    set_default(clone, "test_size", "0.4")
    second = commit(clone, "test_size 0.4")
    pushed = git("push", "origin", "main", cwd=clone)
    assert f"team/split-fast main now at {second[:10]}" in pushed.stderr
    assert team.api("/api/projects/team/modules/split-fast")["commit"] == second
    [change] = team.store().diff("team", "split-fast", first, second)
    assert (change["path"], change["status"]) == ("reef.toml", "modified")
    assert "-default = 0.3" in change["patch"] and "+default = 0.4" in change["patch"]
    pushes = [a for a in team.api("/api/projects/team")["activity"] if a["action"] == "module.push"]
    assert pushes[0]["actor"] == "dev" and second in pushes[0]["detail"]


def test_tags_and_tree_of_a_pushed_module(team: Team, tmp_path: Path) -> None:
    clone = publish(team, tmp_path, "split-tagged")
    head = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    git("tag", "-a", "v1", "-m", "first release", cwd=clone)
    git("push", "-q", "origin", "v1", cwd=clone)
    store = team.store()
    assert store.tags("team", "split-tagged") == [{"name": "v1", "sha": head}]
    names = {e["name"]: e["type"] for e in store.tree("team", "split-tagged", "v1")}
    assert names["reef.toml"] == "blob" and names["main.py"] == "blob"


def test_broken_manifest_is_refused_with_the_reason(team: Team, tmp_path: Path) -> None:
    clone = publish(team, tmp_path, "split-strict")
    before = remote_main(team, "split-strict")
    set_default(clone, "seed", '"x"')
    commit(clone, "a seed that is no int")
    refused = git("push", "origin", "main", cwd=clone, check=False)
    assert refused.returncode != 0
    assert "[remote rejected]" in refused.stderr
    assert "reef.toml: params.seed: bad default" in refused.stderr
    assert remote_main(team, "split-strict") == before
    assert git("fsck", cwd=team.store().repo_path("team", "split-strict")).returncode == 0


def test_broken_new_module_leaves_nothing(team: Team, tmp_path: Path) -> None:
    clone = tmp_path / "bad"
    git("clone", "-q", team.url("admin", "library", "split"), str(clone))
    (clone / "reef.toml").write_text('name = "bad"\nkind = "nope"\nentrypoint = "main.py"\n')
    commit(clone, "unknown kind")
    refused = git("push", team.url("dev", "team", "bad"), "HEAD:main", cwd=clone, check=False)
    assert "reef.toml: unknown kind 'nope'" in refused.stderr
    assert not team.store().exists("team", "bad")
    names = [m["name"] for m in team.api("/api/projects/team/modules")]
    assert "bad" not in names


def test_main_cannot_be_rewritten_or_deleted(team: Team, tmp_path: Path) -> None:
    clone = publish(team, tmp_path, "split-history")
    git("commit", "-q", "--amend", "-m", "rewritten", cwd=clone)
    forced = git("push", "-f", "origin", "main", cwd=clone, check=False)
    assert "non-fast-forward push to main refused" in forced.stderr
    deleted = git("push", "origin", ":main", cwd=clone, check=False)
    assert "branch main cannot be deleted" in deleted.stderr


def test_reporter_push_is_forbidden(team: Team, tmp_path: Path) -> None:
    clone = publish(team, tmp_path, "split-guarded")
    set_default(clone, "test_size", "0.5")
    commit(clone, "reporter's change")
    refused = git("push", team.url("rep", "team", "split-guarded"), "main", cwd=clone, check=False)
    assert refused.returncode != 0
    assert "403" in refused.stderr
    assert "needs the developer role in project 'team'; you are reporter" in refused.stderr
    # a developer of another project may read the library but not push to it
    library = team.url("dev", "library", "split")
    refused = git("push", library, "main", cwd=clone, check=False)
    assert "403" in refused.stderr and "needs the maintainer role" in refused.stderr
    git("ls-remote", team.url("rep", "team", "split-guarded"))


def test_outsider_cannot_tell_existing_from_missing(team: Team, tmp_path: Path) -> None:
    publish(team, tmp_path, "split-hidden")
    answers = []
    for module in ("split-hidden", "no-such-module"):
        dest = str(tmp_path / "outsider" / module)
        done = git("clone", team.url("out", "team", module), dest, check=False)
        assert done.returncode != 0
        answers.append(done.stderr.replace(module, "MODULE"))
    assert answers[0] == answers[1]
    assert "not found" in answers[0]
    git("clone", "-q", team.url("out", "library", "split"), str(tmp_path / "lib"))


def test_credentials_are_required(team: Team, tmp_path: Path) -> None:
    host = team.server.url
    anonymous = git("clone", f"{host}/git/library/split.git", str(tmp_path / "a"), check=False)
    assert anonymous.returncode != 0
    assert "terminal prompts disabled" in anonymous.stderr
    wrong = team.url("dev", "library", "split", secret="not-a-token")
    refused = git("clone", wrong, str(tmp_path / "b"), check=False)
    assert "Authentication failed" in refused.stderr
    resp = httpx.get(f"{host}/git/library/split.git/info/refs?service=git-upload-pack")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Basic realm="reef"'
    bearer = f"http.extraHeader=Authorization: Bearer {team.tokens['dev']}"
    git("-c", bearer, "clone", "-q", f"{host}/git/library/split.git", str(tmp_path / "c"))
    git("clone", "-q", team.url("dev", "library", "split", PASSWORD), str(tmp_path / "d"))


def test_concurrent_pushes_one_wins_and_the_repo_stays_sound(team: Team, tmp_path: Path) -> None:
    publish(team, tmp_path, "split-race")
    clones = []
    for i in range(3):
        clone = tmp_path / f"racer{i}"
        git("clone", "-q", team.url("dev", "team", "split-race"), str(clone))
        (clone / f"data{i}.bin").write_bytes(os.urandom(300_000))  # a pack worth uploading
        git("add", ".", cwd=clone)
        commit(clone, f"racer {i}")
        clones.append(clone)
    pushes = [start_push(clone) for clone in clones]  # all at once
    results = [(p.wait(patience(60)), p.stderr.read()) for p in pushes]
    winners = [clone for clone, (rc, _) in zip(clones, results, strict=True) if rc == 0]
    assert len(winners) == 1, results
    refusals = [stderr for rc, stderr in results if rc != 0]
    assert all("fetch first" in stderr for stderr in refusals), refusals
    winner = git("rev-parse", "HEAD", cwd=winners[0]).stdout.strip()
    assert remote_main(team, "split-race") == winner
    repo = team.store().repo_path("team", "split-race")
    assert git("fsck", "--strict", cwd=repo).returncode == 0


def test_a_pushed_module_is_run_by_another_user_who_only_fills_the_form(
    team: Team, tmp_path: Path
) -> None:
    clone = publish(team, tmp_path, "splitter")  # dev pushes it with git
    pushed = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    admin = team.server.client(team.tokens["admin"])
    admin.post("/api/users", json={"name": "ana", "password": PASSWORD}).raise_for_status()
    admin.post("/api/projects/team/members", json={"user": "ana", "role": "developer"})
    rows = "x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(100))
    admin.post(
        "/api/projects/team/datasets",
        files={"file": ("cases.csv", rows.encode())},
        data={"name": "cases"},
    ).raise_for_status()
    with httpx.Client(base_url=team.server.url, timeout=60) as ana:  # a browser session
        login(ana, "ana", PASSWORD)
        form = ana.get("/projects/team/run?module=team/splitter").text
        assert 'name="param.test_size"' in form and 'value="0.3"' in form
        fields = {
            "_csrf_token": csrf(form),
            "module": "team/splitter",
            "input.data": "dataset:cases@1",
            "param.label": "label",
        }
        resp = ana.post("/projects/team/run", data=fields, follow_redirects=False)
        assert resp.status_code in (302, 303), resp.text
        run_id = int(resp.headers["location"].rsplit("/", 1)[1])
    state = wait_run(admin, "team", run_id)
    assert state["run"]["status"] == "succeeded" and state["run"]["created_by"] == "ana"
    assert state["steps"][0]["commit_sha"] == pushed
    assert state["metrics"]["test_rows"] == 30  # the pushed default, test_size 0.3


def test_a_first_push_killed_mid_way_leaves_the_name_usable(team: Team, tmp_path: Path) -> None:
    # what a SIGKILL during the first push's repository creation left before creation was
    # atomic: a folder with objects but no HEAD, answered "not found" by git and the API
    half = team.store().repo_path("team", "revived")
    (half / "objects" / "pack").mkdir(parents=True)
    (half / "description").write_text("half")
    clone = publish(team, tmp_path, "revived")
    head = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
    assert team.api("/api/projects/team/modules/revived")["commit"] == head
    assert not list(half.parent.glob("revived.git.*"))  # no temporary folder left behind


def test_a_server_killed_during_a_first_push_leaves_the_name_usable(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", modules_dir(tmp_path))
    token = server.token()
    server.client(token).post("/api/projects", json={"name": "crash"}).raise_for_status()
    host = server.url.removeprefix("http://")
    clone = tmp_path / "big"
    git("clone", "-q", f"http://admin:{token}@{host}/git/library/split.git", str(clone))
    (clone / "weights.bin").write_bytes(os.urandom(40 << 20))  # a push that takes a while
    git("add", "weights.bin", cwd=clone)
    commit(clone, "with weights")
    git("remote", "set-url", "origin", f"http://admin:{token}@{host}/git/crash/big.git", cwd=clone)
    push = start_push(clone)
    folder = server.data / "git" / "crash"
    deadline = time.monotonic() + patience(60)
    while not (folder.is_dir() and any(folder.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)  # the repository is being made: the push is under way
    server.proc.kill()
    server.proc.wait(10)
    assert push.wait(patience(60)) != 0  # the kill cut the push short
    restarted = start_server(server.data, tmp_path / "modules", port=int(host.split(":")[1]))
    try:
        assert [p.name for p in folder.iterdir()] in ([], ["big.git"])  # nothing half left
        again = git("push", "-q", "origin", "HEAD:main", cwd=clone)
        assert again.returncode == 0
        head = git("rev-parse", "HEAD", cwd=clone).stdout.strip()
        module = restarted.client(token).get("/api/projects/crash/modules/big").json()
        assert module["commit"] == head
    finally:
        restarted.stop()
