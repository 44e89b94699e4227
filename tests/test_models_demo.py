"""Model operations against the real `reef serve` of the digits demo, over HTTP."""

from __future__ import annotations

import pytest
from sklearn.datasets import load_digits

pytestmark = pytest.mark.slow
API = "/api/projects/demo/models/digits"


@pytest.fixture(scope="module")
def client(demo):
    server, info = demo
    with server.client(info["token"]) as c:
        yield c


def test_registration_keeps_the_training_reference(client):
    v1 = client.get(f"{API}/versions/1").json()
    assert len(v1["reference"]["features"]) == 64 and v1["reference"]["rows"] > 1000


def test_predictions_are_logged_and_labelled(client):
    digits = load_digits()
    answer = client.post(f"{API}/predict", json={"rows": digits.data[:64].tolist()}).json()
    assert len(answer["predictions"]) == 64 and answer["request_id"]
    labels = {"request_id": answer["request_id"], "labels": digits.target[:64].tolist()}
    assert client.post(f"{API}/feedback", json=labels).json() == {"labelled": 64}
    stats = {}
    for _ in range(50):  # the log writes about once a second
        stats = client.get(f"{API}/monitoring").json()
        if any(v["labelled"] for v in stats["versions"]):
            break
    live = next(v for v in stats["versions"] if v["labelled"])
    assert live["accuracy"] >= 0.9 and stats["drift"]["features"]


def test_huge_and_nan_bodies_are_4xx_and_the_server_stays_up(client):
    huge = client.post(
        f"{API}/predict",
        content=b'{"rows": [' + b"[0.5]," * (17 << 20) + b"[0]]}",
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    nan = client.post(
        f"{API}/predict",
        content=b'{"rows": [[NaN' + b", 0" * 63 + b"]]}",
        headers={"content-type": "application/json"},
    )
    assert nan.status_code == 400
    assert client.get("/healthz").status_code == 200
    assert client.post(f"{API}/predict", json={"rows": [[0.0] * 64]}).status_code == 200
