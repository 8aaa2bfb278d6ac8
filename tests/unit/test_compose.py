"""docker-compose.yml, validated offline: dclint (npm; `make install`) checks it against the Compose
specification's JSON schema it bundles and lints it; a deliberately broken copy fails for the reason it names; and
every image, port and variable agrees with names.py, the configuration classes and the Helm chart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from textclf import names
from textclf.config import (
    ENV_PREFIX,
    MONITOR_ENV_PREFIX,
    SERVING_ENV_PREFIX,
    UI_ENV_PREFIX,
    MonitorConfig,
    PipelineConfig,
    ServingConfig,
    UiConfig,
    load_config,
)
from textclf.settings import NESTED_ENV_DELIMITER

pytestmark = pytest.mark.unit

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPOSITORY / "docker-compose.yml"
ENV_EXAMPLE = REPOSITORY / ".env.example"
DCLINT_DIR = Path(sys.prefix) / "node" / "node_modules"
DCLINT = DCLINT_DIR / ".bin" / "dclint"
COMPOSE_SCHEMA = DCLINT_DIR / "dclint" / "schemas" / "compose.schema.json"
# dclint's ordering rules want services and keys alphabetical; the file reads in start-up order instead.
ORDERING_RULES = ["service-keys-order", "services-alphabetical-order", "service-dependencies-alphabetical-order"]
VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<kind>:?[-?])(?P<rest>[^}]*))?\}")
# The configuration classes by the environment prefix they read, longest prefix first.
CONFIG_BY_PREFIX = [
    (SERVING_ENV_PREFIX, ServingConfig),
    (MONITOR_ENV_PREFIX, MonitorConfig),
    (UI_ENV_PREFIX, UiConfig),
    (ENV_PREFIX, PipelineConfig),
]


def env_example() -> dict[str, str]:
    lines = [line for line in ENV_EXAMPLE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def interpolated(text: str, environment: dict[str, str]) -> str:
    """Compose's interpolation: ${NAME}, ${NAME:-default}, ${NAME:?error} (the error when NAME is unset)."""

    def value(match: re.Match) -> str:
        name, kind, rest = match["name"], match["kind"] or "", match["rest"] or ""
        if environment.get(name):
            return environment[name]
        if kind.endswith("?"):
            raise KeyError(f"{name}: {rest}")
        return rest

    return VARIABLE.sub(value, text)


def compose(environment: dict[str, str] | None = None) -> dict:
    return yaml.safe_load(interpolated(COMPOSE_FILE.read_text(), env_example() if environment is None else environment))


def dclint(path: Path) -> subprocess.CompletedProcess:
    assert DCLINT.exists(), f"dclint is not installed at {DCLINT}: `make test` installs it with npm"
    command = [str(DCLINT), str(path), "--color", "false", "--max-warnings", "0"]
    for rule in ORDERING_RULES:
        command += ["--disable-rule", rule]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_compose_file_passes_dclint_and_the_compose_schema() -> None:
    linted = dclint(COMPOSE_FILE)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    jsonschema.validate(yaml.safe_load(COMPOSE_FILE.read_text()), schema)


@pytest.mark.parametrize(
    ("breakage", "where", "reason"),
    [
        (
            ("condition: service_completed_successfully", "condition: service_finished"),
            "/services/predictor/depends_on",
            "'service_finished' is not one of ['service_started', 'service_healthy', 'service_completed_successfully']",
        ),
        (
            ("    user: postgres\n", "    user: postgres\n    restart_policy: always\n"),
            "/services/postgres",
            "'restart_policy' does not match any of the regexes",
        ),
    ],
    ids=["unknown-depends-on-condition", "unknown-service-key"],
)
def test_a_broken_copy_fails_for_the_reason_it_names(
    tmp_path: Path, breakage: tuple[str, str], where: str, reason: str
) -> None:
    original, broken = breakage
    text = COMPOSE_FILE.read_text()
    assert original in text
    copy = tmp_path / "docker-compose.yml"
    copy.write_text(text.replace(original, broken, 1))
    linted = dclint(copy)
    assert linted.returncode != 0 and "invalid-schema" in linted.stdout, linted.stdout
    assert f'instancePath="{where}"' in linted.stdout, linted.stdout
    with pytest.raises(jsonschema.ValidationError) as raised:
        jsonschema.validate(yaml.safe_load(copy.read_text()), json.loads(COMPOSE_SCHEMA.read_text()))
    assert raised.value.message.startswith(reason)


def test_images_ports_and_urls_agree_with_names_and_the_configuration() -> None:
    services = compose()["services"]
    assert services["mlflow"]["image"] == services["train"]["image"] == names.COMPONENTS_IMAGE
    assert services["predictor"]["image"] == names.SERVING_IMAGE
    # Compose's monitor retrains in its own container, with the training stack only the components image holds.
    assert services["monitor"]["image"] == names.COMPONENTS_IMAGE
    assert services["ui"]["image"] == names.MONITOR_IMAGE
    assert services["postgres"]["image"] == names.POSTGRESQL_IMAGE
    serving = ServingConfig()
    published = {
        name: [port.rsplit(":", 1)[1] for port in service.get("ports", [])] for name, service in services.items()
    }
    assert published["predictor"] == [str(serving.http_port), str(serving.grpc_port)]
    assert published["monitor"] == [str(names.MONITOR_PORT)]
    assert published["mlflow"] == [str(names.MLFLOW_PORT)]
    assert published["ui"] == [str(names.UI_PORT)]
    mlflow_url = f"http://{names.MLFLOW_SERVICE_NAME}:{names.MLFLOW_PORT}"
    environments = {name: service.get("environment", {}) for name, service in services.items()}
    assert environments["train"]["TEXTCLF_TRACKING_URI"] == mlflow_url
    assert environments["predictor"]["TEXTCLF_SERVE_TRACKING_URI"] == mlflow_url
    assert environments["monitor"]["TEXTCLF_MONITOR_TRACKING_URI"] == mlflow_url
    assert (
        environments["predictor"]["TEXTCLF_SERVE_REQUEST_LOGGER_URL"] == f"http://monitor:{names.MONITOR_PORT}/events"
    )
    assert environments["ui"]["TEXTCLF_UI_MONITOR_URL"] == f"http://monitor:{names.MONITOR_PORT}"
    assert environments["ui"]["TEXTCLF_UI_SERVING_URL"] == f"http://predictor:{serving.http_port}"
    assert services["predictor"]["command"] == [
        "serve",
        "--model",
        f"models:/{names.REGISTERED_MODEL_NAME}@{names.CHAMPION_ALIAS}",
    ]
    assert f"/v2/models/{names.INFERENCE_SERVICE_NAME}/ready" in services["predictor"]["healthcheck"]["test"][-1]


def test_every_variable_names_a_configuration_field() -> None:
    for name, service in compose()["services"].items():
        for variable in service.get("environment", {}):
            if not variable.startswith(ENV_PREFIX):
                continue
            prefix, config = next(
                (prefix, config) for prefix, config in CONFIG_BY_PREFIX if variable.startswith(prefix)
            )
            field, _, inner = variable.removeprefix(prefix).lower().partition(NESTED_ENV_DELIMITER)
            assert field in config.model_fields, f"{name}: {variable} is no field of {config.__name__}"
            if inner:
                group = config.model_fields[field].annotation
                assert inner in group.model_fields, f"{name}: {variable} is no field of {config.__name__}.{field}"


def test_the_monitors_retraining_repeats_the_training_services_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitor retrains with `textclf run`, which reads TEXTCLF_<FIELD>: the same data, MLflow and predictor
    as the training service. No Compose `configs` entry: Compose writes an inline config into the container,
    which a read-only root filesystem refuses ("cannot create config ... in read-only service")."""
    services = compose()["services"]
    monitor, train = services["monitor"]["environment"], services["train"]["environment"]
    for name, value in monitor.items():
        monkeypatch.setenv(name, value)
    settings = load_config()
    assert settings.tracking_uri == train["TEXTCLF_TRACKING_URI"]
    assert settings.serving.url == train["TEXTCLF_SERVING__URL"]
    assert f"--data={settings.data}" in services["train"]["command"]
    assert all(not service.get("configs") for service in services.values()) and "configs" not in compose()


def test_mlflow_serves_as_the_charts_mlflow_does() -> None:
    chart = (REPOSITORY / "charts" / "textclf" / "templates" / "mlflow-deployment.yaml").read_text()
    command = compose()["services"]["mlflow"]["command"]
    assert command[:2] == ["mlflow", "server"]
    for flag in ("--host=0.0.0.0", f"--port={names.MLFLOW_PORT}", "--serve-artifacts"):
        assert flag in command and flag in chart
    allowed = next(argument for argument in command if argument.startswith("--allowed-hosts="))
    assert f"{names.MLFLOW_SERVICE_NAME}:{names.MLFLOW_PORT}" in allowed.split("=", 1)[1].split(",")


def test_services_are_hardened_and_start_in_order() -> None:
    services = compose()["services"]
    for name, service in services.items():
        assert service["read_only"] is True, name
        assert str(service["user"]) not in {"0", "root", "0:0"}, name
        assert service["cap_drop"] == ["ALL"] and "no-new-privileges:true" in service["security_opt"], name
        if service.get("restart") != "no":
            assert "healthcheck" in service, f"{name} runs on and needs a healthcheck"
        for dependency, wanted in service.get("depends_on", {}).items():
            if wanted["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{name} waits on {dependency}'s missing healthcheck"
            if wanted["condition"] == "service_completed_successfully":
                assert services[dependency]["restart"] == "no", f"{dependency} must run once for {name} to start"
    assert services["predictor"]["depends_on"]["train"]["condition"] == "service_completed_successfully"


def test_no_secret_is_written_in_the_file() -> None:
    text = COMPOSE_FILE.read_text()
    referenced = {match["name"] for match in VARIABLE.finditer(text)}
    assert referenced <= set(env_example()), f".env.example lacks {referenced - set(env_example())}"
    for name, service in yaml.safe_load(text)["services"].items():
        for variable, value in service.get("environment", {}).items():
            if any(word in variable for word in ("TOKEN", "PASSWORD")):
                assert VARIABLE.fullmatch(str(value)), f"{name}: {variable} must come from .env, not the file"
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        compose({})
    ignored = subprocess.run(["git", "check-ignore", ".env"], cwd=REPOSITORY, capture_output=True, check=False)
    assert ignored.returncode == 0, ".env must be ignored by git"


def test_postgres_counts_as_healthy_only_once_it_accepts_tcp_connections() -> None:
    """The official image initialises a new data directory with a temporary server on the Unix socket alone
    (docker-library/postgres docker-entrypoint.sh, docker_temp_server_start: listen_addresses=''); a check over
    that socket passes before the real server listens, and the monitor would start against nothing. The chart's
    probe checks TCP on 127.0.0.1; Compose's must too."""
    from textclf.deploy.manifests import render_chart

    test = compose()["services"]["postgres"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "pg_isready"] and "--host=127.0.0.1" in test[2:], test
    [statefulset] = [d for d in render_chart({"postgresql": {"enabled": True}}) if d["kind"] == "StatefulSet"]
    [container] = statefulset["spec"]["template"]["spec"]["containers"]
    assert "--host=127.0.0.1" in container["readinessProbe"]["exec"]["command"]


def test_the_training_service_trains_only_while_there_is_no_champion() -> None:
    """`docker compose up` after `down` keeps the registry's champion instead of training a new model."""
    assert "--unless-champion" in compose()["services"]["train"]["command"]
