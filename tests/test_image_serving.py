"""Image models take the image file itself: base64 in JSON or a multipart upload, decoded as
training decoded it. The digits, as PNG files, through split -> image-classifier on a real
`reef serve`."""

from __future__ import annotations

import base64
import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import modules_dir, patience, start_server, wait_run
from reef import images
from reef.errors import InvalidInput

pytestmark = pytest.mark.slow
SIZE = 8


def png(pixels: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    image = Image.fromarray(pixels.astype(np.uint8), "L")
    if scale > 1:
        image = image.resize((SIZE * scale, SIZE * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def digits_images(rows: int = 600) -> tuple[bytes, list[bytes]]:
    """scikit-learn's 8x8 digits as a PNG image dataset (Parquet), and PNGs of other digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = (digits.images * (255 / 16)).round()
    table = pa.table(
        {
            "image": pa.array([png(p) for p in pixels[:rows]], pa.binary()),
            "label": digits.target[:rows].astype("int64"),
            "path": [f"{t}/{i}.png" for i, t in enumerate(digits.target[:rows])],
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue(), [png(p, scale=4) for p in pixels[-6:]]  # 32x32: resized to 8x8


PIPELINE = [
    {"name": "split", "module": "library/split", "inputs": {"data": "dataset:digits"}},
    {
        "name": "train",
        "module": "library/image-classifier",
        "inputs": {"train": "split.train"},
        "params": {"image_size": SIZE, "epochs": 8, "batch_size": 32, "lr": 0.01},
        "register": "digits",
    },
]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    dataset, probes = digits_images()
    server = start_server(root / "data", modules_dir(root))
    try:
        with server.client() as client:
            client.post("/api/projects", json={"name": "img"}).raise_for_status()
            up = client.post(
                "/api/projects/img/datasets",
                data={"name": "digits"},
                files={"file": ("digits.parquet", dataset)},
            )
            assert up.status_code == 201, up.text
            resp = client.post("/api/projects/img/pipelines", json={"name": "p", "steps": PIPELINE})
            assert resp.status_code == 201, resp.text
            run = client.post("/api/projects/img/pipelines/p/runs", json={}).json()
            state = wait_run(client, "img", run["id"])
            assert state["run"]["status"] == "succeeded", state["run"]["error"]
            yield client, probes
    finally:
        server.stop()


URL = "/api/projects/img/models/digits/predict"


def test_schema_records_how_images_become_pixels(served) -> None:
    client, _ = served
    schema = client.get("/api/projects/img/models/digits").json()["versions"][0]["schema"]
    assert schema["image"] == images.describe(SIZE, 1)
    assert schema["task"] == "image_classification"


def test_png_as_base64_and_multipart_gives_the_pixel_rows_answer(served) -> None:
    client, probes = served
    pixel_rows = [images.decode(p, SIZE, 1).reshape(-1).astype(float).tolist() for p in probes]
    by_pixels = client.post(URL, json={"rows": pixel_rows}).json()["predictions"]
    encoded = [{"image": base64.b64encode(p).decode()} for p in probes]
    by_base64 = client.post(URL, json={"rows": encoded}).json()["predictions"]
    files = [("image", (f"{i}.png", p, "image/png")) for i, p in enumerate(probes)]
    upload = client.post(URL, files=files)
    assert upload.status_code == 200, upload.text
    by_upload = upload.json()["predictions"]
    assert [p["label"] for p in by_base64] == [p["label"] for p in by_pixels]
    assert [p["label"] for p in by_upload] == [p["label"] for p in by_pixels]
    assert np.allclose(
        [p["probabilities"] for p in by_upload], [p["probabilities"] for p in by_pixels]
    )
    url_text = "data:image/png;base64," + encoded[0]["image"]
    one = client.post(URL, json={"rows": [{"image": url_text}]}).json()["predictions"]
    assert one[0]["label"] == by_pixels[0]["label"]
    from sklearn.datasets import load_digits

    truth = [str(t) for t in load_digits().target[-6:]]
    assert sum(p["label"] == t for p, t in zip(by_pixels, truth, strict=True)) >= 4


def logged_requests(client) -> int:
    return client.get("/api/projects/img/models/digits/monitoring").json()["requests"]


def settled_requests(client) -> int:
    """The logged request count once the prediction log has written what it held: it writes
    about once a second, so earlier tests' requests can land after a first nonzero read."""
    deadline = time.monotonic() + patience(30)
    last = logged_requests(client)
    while time.monotonic() < deadline:
        time.sleep(patience(1.5))
        now = logged_requests(client)
        if now == last and now > 0:
            return now
        last = now
    return last


def test_not_an_image_is_refused_and_not_logged(served) -> None:
    client, probes = served
    good = {"rows": [{"image": base64.b64encode(probes[0]).decode()}]}
    client.post(URL, json=good).raise_for_status()
    before = settled_requests(client)
    refused = [
        client.post(URL, json={"rows": [{"image": base64.b64encode(b"hello").decode()}]}),
        client.post(URL, json={"rows": [{"image": "%%% not base64"}]}),
        client.post(URL, json={"rows": [{"image": 12}]}),
        client.post(URL, files=[("image", ("notes.txt", b"plain text", "text/plain"))]),
        client.post(URL, files=[("other", ("a.png", probes[0], "image/png"))]),
    ]
    assert [r.status_code for r in refused] == [400] * 5, [r.text for r in refused]
    assert "row 0: 'image' is not an image" in refused[0].json()["detail"]
    assert "not valid base64" in refused[1].json()["detail"]
    assert "base64 text" in refused[2].json()["detail"]
    assert "row 0: 'image' is not an image" in refused[3].json()["detail"]
    assert "multipart field 'image'" in refused[4].json()["detail"]
    client.post(URL, json=good).raise_for_status()  # one more good request, then count
    deadline = time.monotonic() + patience(10)
    while logged_requests(client) == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert settled_requests(client) == before + 1


def test_pixel_row_names_the_row_and_the_reason() -> None:
    spec = images.describe(SIZE, 1)
    with pytest.raises(InvalidInput, match=r"row 3: 'image' is not an image \(cannot identify"):
        images.pixel_row(3, b"GIF? no", spec)
    pixels = images.pixel_row(0, png(np.full((SIZE, SIZE), 200)), spec)
    assert len(pixels) == SIZE * SIZE and set(pixels) == {200.0}
