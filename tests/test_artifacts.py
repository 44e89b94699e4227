"""Artifacts: stored by digest, downloadable, and visualizations shown inline but sandboxed."""

from __future__ import annotations

from conftest import api_token, login

SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4"/></svg>'


def test_visualization_artifacts_show_inline_and_are_sandboxed(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "viz"}, headers=headers)
    hub = app_client.app.state.hub
    run = hub.runs.create_run(hub.projects.get("viz").id, None, {"steps": []}, [], "admin")
    for name, body in (
        ("plot.svg", SVG),
        ("report.html", b"<h1>hi</h1><script>1</script>"),
        ("data.bin", b"\x00\x01"),
    ):
        resp = app_client.post(
            f"/api/projects/viz/runs/{run}/artifacts",
            headers=headers,
            files={"file": (name, body)},
            data={"step": "draw"},
        )
        assert resp.status_code == 201, resp.text
    artifacts = app_client.get(f"/api/projects/viz/runs/{run}", headers=headers).json()["artifacts"]
    by_name = {a["name"]: a for a in artifacts}
    assert by_name["plot.svg"]["visual"] == "image" and by_name["data.bin"]["visual"] is None
    svg = app_client.get(
        f"/api/projects/viz/runs/{run}/artifacts/{by_name['plot.svg']['id']}", headers=headers
    )
    assert svg.content == SVG and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.headers["content-security-policy"].startswith("sandbox")
    login(app_client)
    page = app_client.get(f"/projects/viz/runs/{run}").text
    assert f'<img src="/projects/viz/runs/{run}/artifacts/{by_name["plot.svg"]["id"]}"' in page
    assert "<iframe sandbox" in page
    assert f'artifacts/{by_name["data.bin"]["id"]}" alt' not in page


def test_run_page_has_comments_and_the_record(app_client):
    headers = api_token(app_client)
    app_client.post("/api/projects", json={"name": "c"}, headers=headers)
    run_id = app_client.post(
        "/api/projects/c/runs", json={"name": "manual"}, headers=headers
    ).json()["id"]
    login(app_client)
    page = app_client.get(f"/projects/c/runs/{run_id}").text
    assert "Reproducibility record" in page and "No comments yet." in page
    from conftest import csrf

    resp = app_client.post(
        f"/projects/c/runs/{run_id}/comments",
        data={"text": "looks <b>good</b>", "_csrf_token": csrf(page)},
    )
    assert resp.status_code == 200
    assert "looks &lt;b&gt;good&lt;/b&gt;" in resp.text  # escaped, shown on the page
