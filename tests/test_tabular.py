"""Raw-row models end to end on a real `reef serve`: split -> tabular-learner or
text-classifier (registered), then raw rows predicted through the API and scored against a
plain scikit-learn baseline trained on the same split; bad raw rows and a target that does
not fit the module refused with the reason."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import Server, modules_dir, patience, start_server, wait_run

pytestmark = pytest.mark.slow
PROJECT = "tab"


def csv_bytes(columns: dict[str, list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in zip(*columns.values(), strict=True):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode()


def cancer() -> dict[str, list]:
    """Breast cancer with ~15% of the numbers missing and two string category columns."""
    from sklearn.datasets import load_breast_cancer

    data, rng = load_breast_cancer(), np.random.default_rng(0)
    out: dict[str, list] = {}
    for i, name in enumerate(data.feature_names[:10]):
        values = data.data[:, i].round(5)
        out[name] = [
            None if r < 0.15 else float(v)
            for v, r in zip(values, rng.random(len(values)), strict=True)
        ]
    y = data.target
    out["clinic"] = [
        None if r < 0.1 else ("north" if r < 0.3 + 0.4 * t else "south")
        for r, t in zip(rng.random(len(y)), y, strict=True)
    ]
    out["referral"] = [["gp", "self", "hospital"][int(r * 3)] for r in rng.random(len(y))]
    out["diagnosis"] = ["benign" if t else "malignant" for t in y]
    return out


def diabetes() -> dict[str, list]:
    from sklearn.datasets import load_diabetes

    data = load_diabetes(scaled=False)
    out = {n: data.data[:, i].tolist() for i, n in enumerate(data.feature_names)}
    out["disease_progression"] = data.target.tolist()
    return out


def reviews(rows: int = 300) -> dict[str, list]:
    """Short texts of three kinds, with shared filler words and a little label noise."""
    rng = np.random.default_rng(1)
    words = {
        "shipping": "late parcel courier delivery tracking box arrived delayed",
        "billing": "invoice charge refund payment card price overcharged bill",
        "quality": "broken cracked faulty scratched quality defect stopped working",
    }
    filler = ["the", "my", "it", "was", "and", "very", "again", "please", "today", "order"]
    texts, labels = [], []
    for i in range(rows):
        label = list(words)[i % 3]
        own = rng.choice(words[label].split(), 2).tolist()
        other = rng.choice(words[list(words)[rng.integers(3)]].split(), 1).tolist()
        texts.append(" ".join(rng.permutation(own + other + rng.choice(filler, 3).tolist())))
        labels.append(label if rng.random() > 0.1 else list(words)[rng.integers(3)])
    return {"message": texts, "stars": rng.integers(1, 6, rows).tolist(), "topic": labels}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("tabular")
    srv = start_server(root / "data", modules_dir(root))
    with srv.client() as client:
        client.post("/api/projects", json={"name": PROJECT}).raise_for_status()
        for name, columns in [
            ("cancer", cancer()),
            ("diabetes", diabetes()),
            ("reviews", reviews()),
        ]:
            files = {"file": (f"{name}.csv", csv_bytes(columns))}
            resp = client.post(
                f"/api/projects/{PROJECT}/datasets", data={"name": name}, files=files
            )
            assert resp.status_code == 201, resp.text
    yield srv
    srv.stop()


def learn(client, name: str, target: str, module: str, stratify: bool = True) -> dict:
    """split (publishing train and test) -> module (registered as `name`); the run's state."""
    steps = [
        {
            "name": "split",
            "module": "library/split",
            "inputs": {"data": f"dataset:{name}"},
            "params": {"label": target, "stratify": stratify, "seed": 0},
            "publish": {"train": f"{name}-train", "test": f"{name}-test"},
        },
        {
            "name": "learn",
            "module": f"library/{module}",
            "inputs": {"train": "split.train"},
            "params": {"target": target},
            "register": name,
        },
    ]
    resp = client.post(f"/api/projects/{PROJECT}/pipelines", json={"name": name, "steps": steps})
    assert resp.status_code == 201, resp.text
    run = client.post(f"/api/projects/{PROJECT}/pipelines/{name}/runs", json={}).json()
    state = wait_run(client, PROJECT, run["id"], timeout=300)
    assert state["run"]["status"] == "succeeded", state["run"]["error"]
    return state


def table(client, name: str) -> pa.Table:
    resp = client.get(
        f"/api/projects/{PROJECT}/datasets/{name}/versions/latest/download?format=parquet"
    )
    assert resp.status_code == 200, resp.text
    return pq.read_table(io.BytesIO(resp.content))


def predict(client, model: str, rows: list[dict]) -> dict:
    resp = client.post(f"/api/projects/{PROJECT}/models/{model}/predict", json={"rows": rows})
    assert resp.status_code == 200, resp.text
    return resp.json()


def refused(client, model: str, rows: list[dict]) -> str:
    resp = client.post(f"/api/projects/{PROJECT}/models/{model}/predict", json={"rows": rows})
    assert resp.status_code == 400, resp.text
    return resp.json()["detail"]


def baseline(train: pa.Table, test: pa.Table, target: str, estimator) -> np.ndarray:
    """Plain scikit-learn: impute + one-hot (or TF-IDF for `message`) + `estimator`."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, x_test = train.drop([target]).to_pandas(), test.drop([target]).to_pandas()
    text = [c for c in x.columns if c == "message"]
    strings = [
        c for c in x.columns if pa.types.is_string(train.schema.field(c).type) and c not in text
    ]
    numbers = [c for c in x.columns if c not in strings + text]
    parts = [("n", make_pipeline(SimpleImputer(), StandardScaler()), numbers)]
    if strings:
        fill = SimpleImputer(strategy="constant", fill_value="missing")
        parts.append(("s", make_pipeline(fill, OneHotEncoder(handle_unknown="ignore")), strings))
    parts += [("t", TfidfVectorizer(), c) for c in text]
    model = make_pipeline(ColumnTransformer(parts), estimator)
    return model.fit(x, train[target].to_numpy()).predict(x_test)


def test_classification_with_missing_values_and_categories(server: Server) -> None:
    from sklearn.linear_model import LogisticRegression

    with server.client() as client:
        state = learn(client, "cancer", "diagnosis", "tabular-learner")
        assert state["metrics"]["train_accuracy"] > 0.9
        train, test = table(client, "cancer-train"), table(client, "cancer-test")
        rows = test.drop(["diagnosis"]).to_pylist()  # raw rows: nulls and strings as they are
        answer = predict(client, "cancer", rows)
        truth = test["diagnosis"].to_pylist()
        accuracy = np.mean(
            [p["label"] == t for p, t in zip(answer["predictions"], truth, strict=True)]
        )
        base = np.mean(
            baseline(train, test, "diagnosis", LogisticRegression(max_iter=2000)) == truth
        )
        print(f"cancer: tabular-learner accuracy {accuracy:.4f}, scikit-learn baseline {base:.4f}")
        assert accuracy >= 0.9 and accuracy >= base - 0.04
        assert set(answer["predictions"][0]["probabilities"]) and "unseen_categories" not in answer

        row = rows[0]
        seen = predict(client, "cancer", [{**row, "clinic": "east"}, row])
        assert seen["unseen_categories"] == {"clinic": 1}  # answered, and counted
        assert refused(client, "cancer", [row, {**row, "clinic": 7}]) == (
            "row 1: 'clinic' expected text, got the number 7"
        )
        assert refused(client, "cancer", [{**row, "mean radius": "large"}]) == (
            "row 0: 'mean radius' expected a number, got text 'large'"
        )
        missing = {k: v for k, v in row.items() if k != "referral"}
        assert "row 0: 'referral' is missing" in refused(client, "cancer", [missing])
        versions = client.get(f"/api/projects/{PROJECT}/models/cancer").json()["versions"]
        assert len(versions) == 1  # nothing stored changed
        assert versions[0]["schema"]["format"] == 2

        body = {"dataset": "cancer-test", "output": "cancer-scored"}
        job = client.post(f"/api/projects/{PROJECT}/models/cancer/batch", json=body).json()
        for _ in range(int(patience(120) / 0.2)):
            job = client.get(job["links"]["api"]).json()
            if job["status"] in ("done", "failed"):
                break
            time.sleep(0.2)
        assert job["status"] == "done", job
        scored = table(client, "cancer-scored")  # every row, nulls and all, scored in the graph
        assert scored["prediction"].to_pylist() == [p["label"] for p in answer["predictions"]]


def test_gates_score_a_raw_row_model_on_a_dataset(server: Server) -> None:
    api = f"/api/projects/{PROJECT}/models/cancer"
    with server.client() as client:
        # another algorithm, so that the model differs (an identical one makes no v2)
        body = {"params": {"learn": {"algorithm": "forest"}}}
        run = client.post(f"/api/projects/{PROJECT}/pipelines/cancer/runs", json=body).json()
        assert wait_run(client, PROJECT, run["id"])["run"]["status"] == "succeeded"  # v2
        assert client.post(f"{api}/versions/1/promote", json={"alias": "production"}).is_success
        checks = [
            {"type": "parity"},
            {"type": "latency", "max_ms": 1000},
            {
                "type": "better_than",
                "dataset": "cancer-test",
                "label": "diagnosis",
                "min_delta": -0.1,
            },
        ]
        assert client.post(f"{api}/gates", json={"checks": checks}).status_code == 200
        result = client.get(f"{api}/versions/2/gate").json()
        assert all(c["ok"] for c in result["checks"]), result
        better = next(c for c in result["checks"] if c["type"] == "better_than")
        assert min(better["value"]["candidate"], better["value"]["current"]) >= 0.85


def test_regression_and_a_regression_target_refused_by_a_classifier(server: Server) -> None:
    from sklearn.linear_model import Ridge

    with server.client() as client:
        for module, params in [
            ("gradient-boosting", {"label": "disease_progression"}),
            ("tabular-learner", {"target": "disease_progression", "task": "classification"}),
        ]:
            steps = [
                {
                    "name": "s",
                    "module": "library/split",
                    "inputs": {"data": "dataset:diabetes"},
                    "params": {"label": "disease_progression", "stratify": False},
                },
                {
                    "name": "m",
                    "module": f"library/{module}",
                    "inputs": {"train": "s.train"},
                    "params": params,
                },
            ]
            resp = client.post(
                f"/api/projects/{PROJECT}/pipelines", json={"name": "bad", "steps": steps}
            )
            assert resp.status_code == 400, resp.text
            assert resp.json()["detail"] == (
                "step 'm': 'disease_progression' has 214 distinct numbers in 442 rows: this "
                "looks like a number to predict, not groups"
            )
        assert client.get(f"/api/projects/{PROJECT}/pipelines/bad").status_code == 404

        state = learn(client, "diabetes", "disease_progression", "tabular-learner", stratify=False)
        assert state["metrics"]["train_rmse"] > 0
        train, test = table(client, "diabetes-train"), table(client, "diabetes-test")
        answer = predict(client, "diabetes", test.drop(["disease_progression"]).to_pylist())
        predicted = np.array([p["value"] for p in answer["predictions"]])
        truth = test["disease_progression"].to_numpy()
        rmse = float(np.sqrt(np.mean((predicted - truth) ** 2)))
        base = baseline(train, test, "disease_progression", Ridge())
        base_rmse = float(np.sqrt(np.mean((base - truth) ** 2)))
        print(f"diabetes: tabular-learner RMSE {rmse:.2f}, scikit-learn Ridge {base_rmse:.2f}")
        assert rmse <= base_rmse * 1.1
        assert refused(client, "diabetes", [{**test.to_pylist()[0], "bmi": "heavy"}]) == (
            "row 0: 'bmi' expected a number, got text 'heavy'"
        )


def test_text_classification_with_a_number_mixed_in(server: Server) -> None:
    from sklearn.linear_model import LogisticRegression

    with server.client() as client:
        learn(client, "reviews", "topic", "text-classifier")
        train, test = table(client, "reviews-train"), table(client, "reviews-test")
        answer = predict(client, "reviews", test.drop(["topic"]).to_pylist())
        truth = test["topic"].to_pylist()
        accuracy = np.mean(
            [p["label"] == t for p, t in zip(answer["predictions"], truth, strict=True)]
        )
        base = np.mean(baseline(train, test, "topic", LogisticRegression(max_iter=2000)) == truth)
        print(f"reviews: text-classifier accuracy {accuracy:.4f}, scikit-learn baseline {base:.4f}")
        assert accuracy >= 0.75 and accuracy >= base - 0.04  # 10% of the labels are noise
        one = predict(client, "reviews", [{"message": "refund my card payment please", "stars": 2}])
        assert one["predictions"][0]["label"] == "billing"
        assert refused(client, "reviews", [{"message": 5, "stars": 2}]) == (
            "row 0: 'message' expected text, got the number 5"
        )
