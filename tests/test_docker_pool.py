"""deployments/docker-pool.yaml: the deployments of prefect.yaml on a Docker work pool, and a whole flow run
in the worker image, picked up by a real `prefect worker` of type docker from the test harness's API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.gitrepos import make_repo

ROOT = Path(__file__).resolve().parents[1]
POOL_FILE = ROOT / "deployments" / "docker-pool.yaml"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def test_docker_pool_file_mirrors_prefect_yaml() -> None:
    main, docker = _load(ROOT / "prefect.yaml"), _load(POOL_FILE)
    wanted = {
        d["entrypoint"]: d.get("schedules")
        for d in main["deployments"]
        if not d["entrypoint"].startswith("flows/codechange")
    }
    got = {d["entrypoint"]: d.get("schedules") for d in docker["deployments"]}
    assert got == wanted  # same workers, same schedules (code-change flows stay on the process pool)
    build = docker["build"][1]["prefect_docker.deployments.steps.build_docker_image"]
    assert (build["pull"], build["rm"], build["forcerm"], build["network_mode"]) == (False, True, True, "host")
    for deployment in docker["deployments"]:
        assert deployment["name"] == "docker"
        pool = deployment["work_pool"]
        jobs = pool["job_variables"]
        assert pool["name"] == "nightshift-docker"
        assert jobs["image"] == "{{ build-image.image }}"
        assert (jobs["image_pull_policy"], jobs["network_mode"], jobs["auto_remove"]) == ("Never", "host", True)
        hardening = jobs["container_create_kwargs"]
        assert (hardening["user"], hardening["read_only"], hardening["cap_drop"]) == ("10001:10001", True, ["ALL"])
        assert jobs["env"]["NIGHTSHIFT_SANDBOX_BACKEND"] == "process"  # honest: logged as degraded
    assert "ANTHROPIC_API_KEY" not in POOL_FILE.read_text()


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.usefixtures("prefect_harness")
def test_a_flow_runs_in_the_worker_image_on_a_docker_pool(worker_image: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.settings import PREFECT_API_URL
    from prefect_docker.worker import DockerWorker

    from blocks.repository import RepositoryTarget
    from nightshift.sandbox import engine

    api_url = PREFECT_API_URL.value()
    assert api_url
    assert "127.0.0.1" in api_url
    repo = make_repo(tmp_path / "service", {"app.py": "import os\n\n\ndef f():\n    return os.sep\n"})
    state = tmp_path / "state"
    state.mkdir()
    for path in (tmp_path, state):
        path.chmod(0o777)  # the flow container runs as uid 10001
    RepositoryTarget(url=str(repo)).save("default", overwrite=True)
    with get_client(sync_client=True) as client:
        template = DockerWorker.get_default_base_job_template()
        client.create_work_pool(WorkPoolCreate(name="nightshift-docker", type="docker", base_job_template=template))

    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    deploy = subprocess.run(
        [
            sys.executable,
            "-m",
            "prefect",
            "--no-prompt",
            "deploy",
            "--prefect-file",
            str(POOL_FILE),
            "--name",
            "map_flow/docker",  # prefect deploy matches the entrypoint function
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("map/docker")
        run = client.create_flow_run_from_deployment(
            deployment.id,
            parameters={"repo": str(repo)},
            job_variables={
                "volumes": [f"{repo}:{repo}:ro", f"{state}:{state}"],
                "env": {"NIGHTSHIFT_STATE_DIR": str(state)},
                "labels": {"io.nightshift.test-run": "docker-pool"},
            },
        )
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "nightshift-docker", "--type", "docker"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 600
        with get_client(sync_client=True) as client:
            while True:
                state_now = client.read_flow_run(run.id).state
                assert state_now is not None
                if state_now.is_final() or time.monotonic() > deadline:
                    break
                time.sleep(1)
            logs = client.read_logs()
    finally:
        worker.terminate()  # SIGTERM; a worker also stops on SIGINT
        try:
            output, _ = worker.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            output, _ = worker.communicate()
    text = "\n".join(log.message for log in logs if log.flow_run_id == run.id)
    assert state_now.is_completed(), f"{state_now}\nworker:\n{output[-4000:]}\nflow logs:\n{text[-4000:]}"
    assert any(state.rglob("*")), "the flow wrote its run folder through the mounted state directory"
    left = engine.client().containers.list(all=True, filters={"label": "io.nightshift.test-run=docker-pool"})
    assert left == []  # auto_remove
