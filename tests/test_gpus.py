"""GPU scheduling: each step gets its own devices, waits while they are busy, and CPU steps
see none. The server is told it has two devices (--gpus 0,1), as on a two-GPU box."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import modules_dir, start_server, wait_run
from reef.runtime.gpus import GpuPool, detect

pytestmark = pytest.mark.slow


def test_pool_lends_distinct_devices_and_refuses_too_many():
    pool = GpuPool(detect("0,1"))
    assert pool.acquire(1, 1) == ["0"] and pool.acquire(2, 1) == ["1"]
    assert pool.acquire(3, 1) is None
    pool.release(1)
    assert pool.acquire(3, 1) == ["0"] and pool.holders() == {"0": 3, "1": 2}
    with pytest.raises(Exception, match="needs 3 GPU"):
        pool.acquire(4, 3)


def test_steps_get_their_own_gpus_and_wait_for_busy_ones(tmp_path):
    server = start_server(
        tmp_path / "data", modules_dir(tmp_path), extra=("--gpus", "0,1", "--workers", "3")
    )
    try:
        with server.client() as client:
            client.post("/api/projects", json={"name": "g"})
            steps = [
                {"name": f"gpu{i}", "module": "sleeper", "gpus": 1, "params": {"seconds": 1.5}}
                for i in range(3)
            ]
            steps.append({"name": "cpu", "module": "sleeper", "params": {"seconds": 0}})
            resp = client.post("/api/projects/g/pipelines", json={"name": "p", "steps": steps})
            assert resp.status_code == 201, resp.text
            too_many = [{"name": "big", "module": "sleeper", "gpus": 3}]
            bad = client.post("/api/projects/g/pipelines", json={"name": "x", "steps": too_many})
            assert bad.status_code == 400 and "needs 3 GPU(s); this server has 2" in bad.text
            run_id = client.post("/api/projects/g/pipelines/p/runs", json={}).json()["id"]
            state = wait_run(client, "g", run_id)
            queue = client.get("/api/queue").json()
    finally:
        server.stop()
    assert state["run"]["status"] == "succeeded", state["run"]["error"]
    s = {step["name"]: step for step in state["steps"]}
    gpu_steps = sorted((s[f"gpu{i}"] for i in range(3)), key=lambda x: x["started_at"])
    first, second, third = gpu_steps
    assert {first["gpu_ids"], second["gpu_ids"]} == {"0", "1"}
    assert third["started_at"] >= min(first["finished_at"], second["finished_at"])
    for step in gpu_steps:
        assert step["record"]["environment_variables"]["CUDA_VISIBLE_DEVICES"] == step["gpu_ids"]
    assert s["cpu"]["record"]["environment_variables"]["CUDA_VISIBLE_DEVICES"] == ""
    assert queue["gpus"] == ["0", "1"] and queue["held"] == {}


def test_a_cpu_torch_build_is_described_without_importing_torch(tmp_path):
    """A server records torch's build in every step's record. For a CPU-only build the facts
    come from torch's version file (no child process importing torch, about a CPU-second per
    server); they must equal what the import reports. A GPU build is probed by the import."""
    from reef.runtime import environment

    probe = subprocess.run(
        [sys.executable, "-c", environment.TORCH_PROBE], capture_output=True, text=True, check=True
    )
    imported = json.loads(probe.stdout.strip().splitlines()[-1])
    if imported["cuda"] is not None:
        assert environment.cpu_torch_facts() is None  # a CUDA build keeps the probe
    else:
        assert environment.cpu_torch_facts() == imported
    assert environment.torch_facts() == imported


@pytest.mark.parametrize("build", ["cuda: Optional[str] = '12.8'", "hip: Optional[str] = '6.4'"])
def test_a_gpu_torch_build_is_not_described_from_its_version_file(tmp_path, monkeypatch, build):
    from reef.runtime import environment

    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "version.py").write_text(
        "from typing import Optional\n__version__ = '2.13.0'\n"
        f"cuda: Optional[str] = None\n{build}\n"
    )
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # find_spec reads it first
    monkeypatch.syspath_prepend(str(tmp_path))
    assert environment.cpu_torch_facts() is None
