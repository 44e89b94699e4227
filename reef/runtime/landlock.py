"""Landlock, the Linux security module that lets a process restrict itself, through ctypes.

Three system calls and one prctl: create a ruleset naming the accesses it handles, add rules
(paths beneath which some accesses stay allowed; TCP ports that may be connected to), then
restrict the calling thread. The restriction holds for the process and everything it
execs, needs no root, and cannot be lifted. Anything the ruleset handles and no rule allows
is refused with EACCES.

PyPI `landlock` (1.0.0.dev5, a pre-release) covers the file-system half only, not the
network rules of ABI 4 or the scopes of ABI 6, so reef keeps this small wrapper.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable

CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446  # x86_64 and aarch64 alike
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH, RULE_NET_PORT = 1, 2
PR_SET_NO_NEW_PRIVS = 38

# file-system access rights (a file takes only the first three and TRUNCATE / IOCTL_DEV)
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
MAKE_SYM, REFER, TRUNCATE, IOCTL_DEV = 1 << 12, 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1

FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ = EXECUTE | READ_FILE | READ_DIR
WRITE = (
    READ | WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_DIR | MAKE_REG | MAKE_SOCK
    | MAKE_FIFO | MAKE_SYM | REFER | TRUNCATE
)  # fmt: skip
DEVICE = READ_FILE | WRITE_FILE | IOCTL_DEV  # a character device such as /dev/null


class LandlockUnavailable(OSError):
    """The kernel offers no Landlock (too old, or not enabled at boot)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPort(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def abi_version() -> int:
    """The Landlock ABI this kernel speaks; 0 when it has none."""
    try:
        libc = _libc()
    except OSError:
        return 0
    version = libc.syscall(CREATE_RULESET, None, ctypes.c_size_t(0), CREATE_RULESET_VERSION)
    return max(int(version), 0)


def handled_fs(abi: int) -> int:
    """Every file-system right this ABI knows (older kernels refuse unknown bits)."""
    rights = (1 << 13) - 1
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


class Ruleset:
    """A ruleset under construction: `allow_path`, `allow_connect`, then `restrict_self`."""

    def __init__(self, abi: int | None = None) -> None:
        self.abi = abi_version() if abi is None else abi
        if self.abi < 1:
            raise LandlockUnavailable("this kernel offers no Landlock")
        self.fs = handled_fs(self.abi)
        self.net = NET_BIND_TCP | NET_CONNECT_TCP if self.abi >= 4 else 0
        scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if self.abi >= 6 else 0
        attr = _RulesetAttr(self.fs, self.net, scoped)
        size = ctypes.sizeof(_RulesetAttr)  # older kernels accept the zeroed fields they lack
        self._libc = _libc()
        self.fd = _check(
            self._libc.syscall(CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
            "landlock_create_ruleset",
        )

    def allow_path(self, path: str | os.PathLike, access: int) -> None:
        """Allow `access` on `path` and beneath it; a path that does not exist is skipped."""
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            if not os.path.isdir(path):
                access &= FILE_RIGHTS
            rule = _PathBeneath(access & self.fs, fd)
            _check(
                self._libc.syscall(ADD_RULE, self.fd, RULE_PATH_BENEATH, ctypes.byref(rule), 0),
                f"landlock_add_rule({path})",
            )
        finally:
            os.close(fd)

    def allow_paths(self, paths: Iterable[str | os.PathLike], access: int) -> None:
        for path in paths:
            self.allow_path(path, access)

    def allow_connect(self, port: int) -> None:
        """Allow TCP connections to `port` (on any address: Landlock cannot tell hosts apart)."""
        if not self.net:
            return
        rule = _NetPort(NET_CONNECT_TCP, port)
        _check(
            self._libc.syscall(ADD_RULE, self.fd, RULE_NET_PORT, ctypes.byref(rule), 0),
            f"landlock_add_rule(port {port})",
        )

    def restrict_self(self) -> None:
        """Enforce the ruleset on this process and all it will exec; no way back."""
        _check(self._libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(self._libc.syscall(RESTRICT_SELF, self.fd, 0), "landlock_restrict_self")
        os.close(self.fd)
