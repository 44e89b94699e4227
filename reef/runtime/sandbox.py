"""The sandbox every step runs in: `python -m reef.runtime.sandbox POLICY -- COMMAND...`.

The launcher restricts itself with Landlock (reads: the Python environment, system
libraries, the step's work dir and inputs; writes: its work dir, outputs and a private temp
dir; TCP connect: the server's port only; no signals or abstract sockets outside), drops to
an unprivileged user when reef runs as root, then execs the step. The rules hold for the
step and everything it starts. See docs/pipelines.md "Sandbox" for what that leaves open.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import stat
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import reef
from reef.runtime import landlock

MIN_ABI = 4  # TCP connect rules came with ABI 4
STEP_USER = "nobody"
log = logging.getLogger("reef.sandbox")

SYSTEM_READ = (
    "/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/proc", "/sys",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/ssl",
    "/etc/ca-certificates", "/etc/pki", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf",
    "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf", "/etc/localtime",
    "/etc/timezone", "/etc/mime.types", "/etc/os-release", "/etc/protocols",
    "/etc/services", "/etc/alternatives", "/etc/fonts",
)  # fmt: skip
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
GPU_DEVICES = ("nvidia", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "dri")


@dataclass(frozen=True)
class Policy:
    """What one step may reach."""

    read: tuple[str, ...]  # read-only: its inputs (and the Python environment, always)
    write: tuple[str, ...]  # its work dir, outputs dir and private temp dir
    port: int  # the reef server's TCP port
    uid: int | None = None  # the user it runs as, when reef runs as root
    gid: int | None = None


class Sandbox:
    """Whether steps run sandboxed here, and how a step's command is wrapped."""

    def __init__(self, unsafe: bool = False) -> None:
        self.abi = landlock.abi_version()
        self.unsafe = unsafe
        self.user = _step_user() if os.geteuid() == 0 else None

    @property
    def enabled(self) -> bool:
        return not self.unsafe and self.abi >= MIN_ABI

    def refusal(self) -> str | None:
        """Why no step may run here, or None."""
        if self.unsafe or self.enabled:
            return None
        return (
            f"this kernel offers no sandbox for steps (Landlock ABI {MIN_ABI} or later is "
            f"needed, it has {self.abi or 'none'}); start reef with --unsafe-steps to run "
            "them without one"
        )

    def summary(self) -> str:
        """One line for the start-up banner."""
        if self.enabled:
            who = f", as user {STEP_USER}" if self.user else ""
            return f"steps run sandboxed (Landlock ABI {self.abi}{who})"
        return self.refusal() or "WARNING: steps run without a sandbox (--unsafe-steps)"

    def describe(self) -> dict:
        """For a step's reproducibility record."""
        if not self.enabled:
            return {"enabled": False}
        uid = self.user[0] if self.user else os.geteuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        return {"enabled": True, "landlock_abi": self.abi, "user": user}

    def policy(
        self, base: Path, inputs: list[str], port: int
    ) -> tuple[Policy | None, dict[str, str]]:
        """The policy of a step whose dirs lie under `base`, and the env it adds (TMPDIR);
        (None, {}) when steps run unsandboxed. As root, the dirs it writes are given to the
        step user and the paths it reads are made traversable (search bit only) for it."""
        if not self.enabled:
            return None, {}
        tmp = base / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        write = [base / "work", base / "outputs", tmp]
        read = [*python_paths(), *inputs]
        uid, gid = self.user or (None, None)
        if self.user:
            for folder in write:
                _chown_tree(folder, *self.user)
            for path in [*read, *map(str, write)]:
                grant_traversal(Path(path))
        # Process pools need named semaphores in /dev/shm, which every process shares (a
        # channel between steps), so the sandbox keeps it out of reach. joblib (scikit-learn's
        # n_jobs) then runs in one process; saying so up front spares each step's log its
        # "Permission denied ... serial mode" warning.
        env = {"TMPDIR": str(tmp), "HOME": str(tmp), "JOBLIB_MULTIPROCESSING": "0"}
        policy = Policy(tuple(map(str, read)), tuple(map(str, write)), port, uid, gid)
        return policy, env

    def prefix(self, policy: Policy | None) -> tuple[str, ...]:
        """What goes before a step's command to run it inside `policy`."""
        if policy is None:
            return ()
        spec = json.dumps(asdict(policy))
        return (sys.executable, "-m", "reef.runtime.sandbox", spec, "--")


def python_paths() -> list[str]:
    """The interpreter, its standard library, every site-packages and the reef package."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots |= {p for p in sys.path if p.endswith("-packages") and os.path.isdir(p)}
    roots.add(str(Path(reef.__file__).resolve().parent))
    roots.add(str(Path(sys.executable).resolve().parent))
    return sorted(roots)


def grant_traversal(path: Path) -> None:
    """Give others the search (x) bit, never read, on each ancestor of `path` that lacks
    it, so the step user can reach the paths Landlock lets it read (e.g. under /root)."""
    for parent in reversed(path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.warning("sandbox: giving others the search bit on %s so steps reach it", parent)
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def _chown_tree(path: Path, uid: int, gid: int) -> None:
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def _step_user() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(STEP_USER)
    except KeyError:  # no such user in /etc/passwd: its usual ids
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def restrict(policy: Policy) -> None:
    """Apply `policy` to this process: Landlock rules, then the unprivileged user."""
    rules = landlock.Ruleset()
    rules.allow_paths(SYSTEM_READ, landlock.READ)
    rules.allow_paths(policy.read, landlock.READ)
    rules.allow_paths(policy.write, landlock.WRITE)
    rules.allow_paths(DEVICES, landlock.DEVICE)
    rules.allow_paths([f"/dev/{d}" for d in _gpu_devices()], landlock.DEVICE | landlock.READ)
    rules.allow_connect(policy.port)
    rules.restrict_self()
    if policy.uid is not None and policy.gid is not None:
        os.setgroups([])
        os.setgid(policy.gid)
        os.setuid(policy.uid)


def _gpu_devices() -> list[str]:
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return [n for n in names if n.startswith(GPU_DEVICES)]


def main() -> None:
    spec, sep, *argv = sys.argv[1:]
    if sep != "--" or not argv:
        sys.exit("usage: python -m reef.runtime.sandbox POLICY_JSON -- COMMAND...")
    policy = json.loads(spec)
    restrict(Policy(**{**policy, "read": tuple(policy["read"]), "write": tuple(policy["write"])}))
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
