"""Entry of every step process: `python -m reef.runtime.launch ENTRYPOINT`.

It asks the kernel to kill this process when the reef thread that started it dies (so a
crashed server leaves no step running), keeps httpx's command-line tool from loading, then
runs the module's entrypoint as __main__.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: recovery at start-up still cleans up
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def skip_httpx_cli() -> None:
    """httpx imports its command-line tool (click, rich, pygments) unless that import fails:
    about 0.2 s of the SDK's 0.35 s import on a busy 2-core box, in every step, for a tool no
    step uses. A None entry in sys.modules makes that import fail; httpx then goes without."""
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def main() -> None:
    parent = int(os.environ.get("REEF_PARENT_PID", os.getppid()))
    die_with_parent(parent)
    skip_httpx_cli()
    entry = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, os.getcwd())
    runpy.run_path(entry, run_name="__main__")


if __name__ == "__main__":
    main()
