"""The built-in modules in project `library`: installed at start, updated with reef, and a
maintainer's push is never overwritten by a restart."""

from __future__ import annotations

from dataclasses import replace

from reef.hub import Hub


def reopen(settings) -> Hub:
    return Hub.open(settings, start_queue=False)


def test_builtin_updates_land_but_a_push_is_kept(settings):
    hub = reopen(settings)
    first = hub.modules.head("library", "split")
    hub.close()
    split = settings.modules_dir / "split"
    (split / "README.md").write_text("# split\n\nA newer reef release changed this.\n")
    hub = reopen(settings)
    second = hub.modules.head("library", "split")
    assert second != first  # a new reef version's module is committed
    files = {
        "reef.toml": (split / "reef.toml").read_bytes().replace(b"0.2", b"0.3"),
        "main.py": (split / "main.py").read_bytes(),
    }
    pushed = hub.modules.commit_files(
        "library", "split", files, "maintainer's change", "ada <ada@reef.local>"
    )
    hub.close()
    (split / "README.md").write_text("# split\n\nAnd another release.\n")
    hub = reopen(settings)
    try:
        assert hub.modules.head("library", "split") == pushed  # the push wins
        assert hub.modules.head("library", "evaluate")  # the others are still installed
    finally:
        hub.close()


def test_restart_without_changes_makes_no_commit(settings):
    hub = reopen(settings)
    heads = {m: hub.modules.head("library", m) for m in hub.modules.list_modules("library")}
    hub.close()
    hub = reopen(replace(settings))
    try:
        assert {m: hub.modules.head("library", m) for m in heads} == heads
    finally:
        hub.close()
