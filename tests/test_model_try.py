"""Predictions by people on the model page: one input per feature, the answer with its
confidence, right/wrong feedback with live accuracy; try-it calls stay out of drift."""

from __future__ import annotations

import re

from test_models import lab, promote, training_data  # noqa: F401  (lab is a fixture)

from conftest import csrf, login

PAGE = "/projects/lab/models/m"


def _post(client, url: str, data: dict):
    token = csrf(client.get(PAGE).text)
    return client.post(url, data={**data, "_csrf_token": token}, headers={"HX-Request": "true"})


def test_one_input_per_feature_answer_in_words_and_feedback(app_client, lab):  # noqa: F811
    promote(app_client, 1)
    login(app_client)
    page = app_client.get(PAGE).text
    for f in ("a", "b", "c", "d"):
        assert re.search(rf'name="f:{f}" inputmode="decimal" size="8" placeholder="-?[\d.]+"', page)
    assert "<summary>Advanced: rows as JSON</summary>" in page
    answer = _post(app_client, f"{PAGE}/try", {"f:a": "0.5"})
    assert answer.status_code == 200, answer.text
    said = re.search(r"The model says: <strong>([xyz]), (\d+)% sure</strong>", answer.text)
    assert said, answer.text
    label = said[1]
    others = sorted({"x", "y", "z"} - {label})
    for other in others:
        assert f'name="label" value="{other}">{other}</button>' in answer.text
    request_id = re.search(r'name="request_id" value="(\w+)"', answer.text)[1]
    thanks = _post(app_client, f"{PAGE}/try/feedback",
                   {"request_id": request_id, "label": others[0], "verdict": "wrong"})  # fmt: skip
    assert f"the correct answer is <strong>{others[0]}</strong>" in thanks.text
    assert "Live accuracy: right on 0 of 1 labelled answers (0%)" in thanks.text
    again = _post(app_client, f"{PAGE}/try", {})  # every box empty: typical values
    request_id = re.search(r'name="request_id" value="(\w+)"', again.text)[1]
    label = re.search(r"The model says: <strong>([xyz]),", again.text)[1]
    thanks = _post(app_client, f"{PAGE}/try/feedback",
                   {"request_id": request_id, "label": label, "verdict": "right"})  # fmt: skip
    assert "right on 1 of 2 labelled answers (50%)" in thanks.text


def test_a_wrong_value_is_refused_and_nothing_logged(app_client, lab):  # noqa: F811
    promote(app_client, 1)
    login(app_client)
    refused = _post(app_client, f"{PAGE}/try", {"f:b": "abc"})
    assert refused.status_code == 400 and "'b' expects a number, not 'abc'" in refused.text
    lab.model_service.flush()
    assert lab.model_service.log.read(("lab", "m"), None, ["request_id"]).num_rows == 0


def test_try_calls_are_marked_and_kept_out_of_drift(app_client, lab):  # noqa: F811
    promote(app_client, 1)
    service = lab.model_service
    x = training_data(seed=4, n=300)[0]
    service.predict("lab", "m", (x + 3.0).tolist(), source="try")  # far off: would drift
    service.flush()
    logged = service.log.read(("lab", "m"), None, ["source"])
    assert set(logged["source"].to_pylist()) == {"try"}
    model_id = service.model_id("lab", "m")
    assert service.monitor.check(("lab", "m"), model_id) == []
    drift = service.monitor.drift(("lab", "m"), model_id, service.monitor.config(model_id))
    assert drift["rows"] == 0
    service.predict("lab", "m", (x + 3.0).tolist())  # the same rows from the API: drift
    service.flush()
    assert {a["kind"] for a in service.monitor.check(("lab", "m"), model_id)} >= {"drift"}


def test_a_file_scored_from_the_page_becomes_new_datasets(app_client, lab):  # noqa: F811
    """An uploaded CSV is stored as m-input-1 and scored into m-scores-1; the training
    data gets no new version."""
    login(app_client)
    token = csrf(app_client.get(PAGE).text)
    x, _ = training_data(seed=2, n=20)
    csv = "a,b,c,d\n" + "\n".join(",".join(f"{v:.5f}" for v in row) for row in x)
    resp = app_client.post(
        f"{PAGE}/batch",
        data={"_csrf_token": token},
        files={"file": ("new-rows.csv", csv.encode())},
        headers={"HX-Request": "true"},
    )
    assert resp.status_code == 200 and 'role="alert"' not in resp.text, resp.text
    lab.model_service.batches.wait()
    table = app_client.get(f"{PAGE}/batch").text
    assert "/projects/lab/datasets/m-scores-1?version=1" in table
    assert lab.datasets.open("lab", "m-input-1").count_rows() == 20
    scored = lab.datasets.open("lab", "m-scores-1").to_table()
    assert scored.num_rows == 20 and "prediction" in scored.column_names
    assert lab.datasets.latest_version("lab", "table") == 1
