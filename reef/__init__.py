"""reef: develop machine learning together on one GPU box.

The SDK that module steps and scripts use is re-exported here lazily, so that
`import reef` stays cheap for the server.
"""

from __future__ import annotations

__version__ = "0.1.0"


def step():
    """The context of the module step this process runs (see reef.sdk.StepContext)."""
    from reef.sdk import step as _step

    return _step()


def init(
    project: str,
    name: str | None = None,
    params: dict | None = None,
    url: str | None = None,
    token: str | None = None,
):
    """Open a run for a script or notebook to report to (see reef.sdk.Run)."""
    from reef.sdk import init as _init

    return _init(project, name, params, url, token)
