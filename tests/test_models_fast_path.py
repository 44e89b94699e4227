"""The predict fast path: a warm model with a cached caller is answered ahead of Litestar's
middleware, with the same answers and errors as the regular route; anything else still
goes through the regular route."""

from __future__ import annotations

import lance
import pytest
from test_models import API, FEATURES, lab, lab_server, training_data  # noqa: F401

from conftest import api_token


def fast(app_client) -> int:
    return app_client.app.asgi_handler.answered


def test_warm_predictions_take_the_fast_path_with_the_same_answer(app_client, lab):  # noqa: F811
    rows = training_data(seed=5, n=3)[0].tolist()
    first = app_client.post(f"{API}/predict", json={"rows": rows})  # cold: regular route
    assert first.status_code == 200, first.text
    before = fast(app_client)
    second = app_client.post(f"{API}/predict", json={"rows": rows})
    assert second.status_code == 200 and fast(app_client) == before + 1
    a, b = first.json(), second.json()
    assert a["predictions"] == b["predictions"] and a["model_version"] == b["model_version"]
    assert a["request_id"] != b["request_id"] and set(a) == set(b)
    named = [dict(zip(FEATURES, row, strict=True)) for row in rows]
    by_name = app_client.post(f"{API}/predict", json={"rows": named, "version": 2})
    assert by_name.status_code == 200 and by_name.json()["model_version"] == 2
    lab.model_service.flush()
    stats = app_client.get(f"{API}/monitoring").json()
    assert stats["requests"] == 3  # every answered request is logged


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"rows": [[1.0, 2.0]]}, 400, "4 features"),
        ({"rows": [[True, 1, 2, 3]]}, 400, "number"),
        ({"rows": []}, 400, "empty"),
        ({"rows": [[0, 0, 0, 0]], "version": "nope"}, 400, "nope"),
        ({"nothing": 1}, 400, "unknown field `nothing`"),
        ({"version": 1}, 400, "required field `rows`"),
        ([1, 2], 400, "Expected `object`, got `array`"),
    ],
)
def test_errors_match_the_regular_route(app_client, lab, body, status, fragment):  # noqa: F811
    assert app_client.post(f"{API}/predict", json={"rows": [[0, 0, 0, 0]]}).status_code == 200
    resp = app_client.post(f"{API}/predict", json=body)
    assert resp.status_code == status, resp.text
    assert fragment in resp.json()["detail"] and resp.json()["status"] == status


def test_callers_the_cache_does_not_vouch_for_go_the_regular_way(app_client, lab):  # noqa: F811
    ok = app_client.post(f"{API}/predict", json={"rows": [[0, 0, 0, 0]]})
    assert ok.status_code == 200
    anonymous = app_client.post(
        f"{API}/predict", json={"rows": [[0, 0, 0, 0]]}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401
    wrong = app_client.post(
        f"{API}/predict", json={"rows": [[0, 0, 0, 0]]}, headers={"Authorization": "Bearer x"}
    )
    assert wrong.status_code == 401
    lab.people.create_user("outsider", "outsider-password")
    outsider = api_token(app_client, "outsider", "outsider-password")
    for _ in range(2):  # the second time its token and (lack of) role are cached
        resp = app_client.post(f"{API}/predict", json={"rows": [[0, 0, 0, 0]]}, headers=outsider)
        assert resp.status_code == 404, resp.text  # a non-member: as if there were none
    missing = app_client.post("/api/projects/lab/models/nope/predict", json={"rows": [[0]]})
    assert missing.status_code == 404


@pytest.mark.slow
def test_a_clean_shutdown_writes_every_logged_prediction(tmp_path):
    """`reef serve` answers 200 fast-path requests, gets SIGTERM at once, and the prediction
    log on disk then holds every one of them (the buffer is flushed on the way out)."""
    server = lab_server(tmp_path)
    data = server.data
    with server.client() as client:
        for _ in range(200):
            resp = client.post(f"{API}/predict", json={"rows": [[0.1, 0.2, 0.3, 0.4]] * 2})
            assert resp.status_code == 200, resp.text
    assert server.stop() == 0
    log = lance.dataset(str(data / "predictions" / "lab" / "m.lance")).to_table()
    assert log.num_rows == 400 and len(set(log["request_id"].to_pylist())) == 200
