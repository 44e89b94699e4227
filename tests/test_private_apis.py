"""reef overrides or reads a few private parts of its libraries. Each test here fails with a
message naming the part and the reef code that relies on it, so an upgrade that changes one
is caught here rather than as a crash in a push, a shutdown or a diff."""

from __future__ import annotations

import inspect

import lance
import pyarrow as pa


def test_dulwich_apply_pack_yields_statuses() -> None:
    from dulwich.server import ReceivePackHandler

    method = ReceivePackHandler._apply_pack
    assert inspect.isgeneratorfunction(method) or "Iterator" in str(
        inspect.signature(method).return_annotation
    ), (
        "dulwich's ReceivePackHandler._apply_pack no longer yields (ref, status) pairs; "
        "reef.server.git.ReceivePack wraps it to hold the store's lock around ref updates"
    )
    assert list(inspect.signature(method).parameters) == ["self", "refs"], (
        "dulwich's ReceivePackHandler._apply_pack(self, refs) changed its parameters; "
        "reef.server.git.ReceivePack overrides it"
    )


def test_huey_consumer_installs_signals_through_one_method() -> None:
    from huey.consumer import Consumer

    assert "_set_signal_handlers" in inspect.getsource(Consumer.start), (
        "huey's Consumer.start no longer calls _set_signal_handlers; "
        "reef.runtime.queue.QuietConsumer overrides it so the embedded consumer leaves the "
        "server's SIGINT/SIGTERM alone"
    )
    assert list(inspect.signature(Consumer._set_signal_handlers).parameters) == ["self"]


def test_huey_workers_sleep_through_one_method_of_a_replaceable_class() -> None:
    from huey.consumer import Consumer, Worker

    assert Consumer.worker_class is Worker, (
        "huey's Consumer no longer builds its workers from Consumer.worker_class; "
        "reef.runtime.queue.QuietConsumer sets it to WakingWorker so an idle server sleeps "
        "until a step is queued instead of polling the queue"
    )
    assert "self.sleep()" in inspect.getsource(Worker.loop), (
        "huey's Worker.loop no longer calls self.sleep() when the queue is empty; "
        "reef.runtime.queue.WakingWorker overrides sleep()"
    )
    assert list(inspect.signature(Worker.sleep).parameters) == ["self"]


def test_huey_enqueue_stores_the_task_before_it_returns() -> None:
    from huey import Huey

    source = inspect.getsource(Huey.enqueue)
    assert "self.storage.enqueue(" in source, (
        "huey's Huey.enqueue no longer stores the task itself; "
        "reef.runtime.queue.LocalHuey wakes the workers after it returns"
    )


def test_uvicorn_keeps_captured_signals_in_a_list() -> None:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app=lambda *a: None))
    assert isinstance(getattr(server, "_captured_signals", None), list), (
        "uvicorn.Server no longer has a _captured_signals list; reef.server.run.Server clears "
        "it so a graceful stop exits 0 instead of re-raising the signal"
    )
    assert "_captured_signals" in inspect.getsource(uvicorn.Server.capture_signals)


def test_lance_fragment_metadata_has_what_diffs_read(tmp_path) -> None:
    from lance.fragment import RowIdSequence

    from reef.store.dataset_fragments import _row_ids

    uri = str(tmp_path / "t.lance")
    ds = lance.write_dataset(pa.table({"a": [1, 2, 3]}), uri, enable_stable_row_ids=True)
    ds.delete("a = 2")
    fragment = lance.dataset(uri).get_fragments()[0]
    meta = fragment.metadata
    assert hasattr(RowIdSequence, "from_inline_metadata"), (
        "lance.fragment.RowIdSequence.from_inline_metadata is gone; "
        "reef.store.dataset_fragments reads stable row ids with it"
    )
    deletion = meta.deletion_file
    assert deletion is not None and hasattr(deletion, "read_version") and hasattr(deletion, "id")
    assert _row_ids(meta).tolist() == [0, 1, 2]
