"""Shared fixtures: a tiny randomly initialised BERT, the fixture dataset, every step's inputs, and real servers
(MLflow, PostgreSQL, the predictor, a request-log sink). Helpers the tests import live in `tests/support/`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.data import REVIEWS_CSV
from tests.support.servers import (
    ADMIN_TOKEN,
    SERVING_TEST_LIMITS,
    EventSink,
    RunningServer,
    create_database,
    textclf_server,
)
from textclf.runtime.local_processes import free_port, running_server
from textclf.serve.backends import BACKENDS

CLUSTER_TESTS_VARIABLE = "TEXTCLF_CLUSTER_TESTS"


TIERS = ("unit", "component", "integration", "container", "slow", "cluster")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test belongs to a tier (`pytest -m unit` runs the fast one alone). Cluster tests create a kind
    cluster, install KFP and KServe and build images (Docker, about 30 minutes): they run only when asked for
    (`make e2e`), and say so everywhere else."""
    untiered = [item.nodeid for item in items if not any(tier in item.keywords for tier in TIERS)]
    if untiered:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(TIERS)}): {', '.join(untiered)}")
    if os.environ.get(CLUSTER_TESTS_VARIABLE) == "1":
        return
    skip = pytest.mark.skip(
        reason=f"needs Docker, kind, kubectl and helm and builds a kind cluster: run `make e2e` "
        f"(sets {CLUSTER_TESTS_VARIABLE}=1)"
    )
    for item in items:
        if "cluster" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a user's tracking server or pick up their TEXTCLF_* settings."""
    for name in list(os.environ):
        if name.startswith("TEXTCLF_") and name != "TEXTCLF_CACHE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def reviews_csv() -> Path:
    return REVIEWS_CSV


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with the packaged MiniLM's tokenizer: the real code paths in seconds."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from textclf.train.modeling import PACKAGED_MINILM, resolve_base_model

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(PACKAGED_MINILM))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@contextmanager
def _mlflow_server(root: Path, backend_store_uri: str) -> Iterator[str]:
    port = free_port()
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    command = [
        mlflow_bin,
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_store_uri,
        "--artifacts-destination",
        (root / "artifacts").as_uri(),
    ]
    uri = f"http://127.0.0.1:{port}"
    with running_server(command, f"{uri}/health", root / "server.log", timeout=120):
        yield uri


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 with its own sqlite store and artifact root; stopped after."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with _mlflow_server(root, f"sqlite:///{root / 'mlflow.db'}") as uri:
        yield uri


@pytest.fixture(scope="session")
def mlflow_server_on_postgres(tmp_path_factory: pytest.TempPathFactory, postgres_url: str) -> Iterator[str]:
    """A real `mlflow server` whose backend store is a database of the test PostgreSQL server, migrated first by
    `mlflow db upgrade` as the chart's init container does; stopped after."""
    root = tmp_path_factory.mktemp("mlflow-server-postgres")
    store = create_database(postgres_url, "mlflow")
    mlflow_bin = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    # The chart's init container: MLflow's migrations on the empty database before the server starts.
    subprocess.run([mlflow_bin, "db", "upgrade", store], check=True, capture_output=True, timeout=300)
    with _mlflow_server(root, store) as uri:
        yield uri


def _postgres_binaries() -> Path | None:
    """The directory of Debian's PostgreSQL server programs (initdb, pg_ctl), newest version first."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server of its own on 127.0.0.1 (Debian's `postgresql` package), stopped after."""
    import tempfile

    binaries = _postgres_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) are not installed: apt-get install postgresql")
    # Not under pytest's temporary root: that is private to this user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="textclf-postgres-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    # PostgreSQL refuses to run as root; as root, run it as the package's `postgres` user.
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=on"
    subprocess.run(
        [
            *as_user,
            str(binaries / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "server.log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        subprocess.run(
            [*as_user, str(binaries / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "textclf"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/textclf"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def kfp_local(tmp_path: Path) -> Iterator[Path]:
    """kfp.local with the subprocess runner in this environment; yields the pipeline root. The test's runs
    cannot leave this process's `print` indented (`print_kept`)."""
    from kfp import local

    from textclf.pipelines.runner import print_kept

    root = tmp_path / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    with print_kept():
        yield root


@pytest.fixture(scope="session")
def step_inputs(tmp_path_factory: pytest.TempPathFactory, reviews_csv: Path, tiny_model_dir: Path) -> dict:
    """Every step's inputs, made by the core step functions on the fixture data and the tiny model,
    so each component can be run alone under kfp.local."""
    import mlflow

    from textclf.data.cleaning import CleaningConfig
    from textclf.data.preprocess import PREDICT_MAX_LENGTH
    from textclf.data.sources import DataSource
    from textclf.registry.tracking import configure
    from textclf.steps.evaluate import EvaluationPaths, run_evaluate
    from textclf.steps.ingest import run_ingest
    from textclf.steps.preprocess import run_preprocess
    from textclf.steps.train import run_train
    from textclf.train.trainer import TrainingParams

    previous_uri = mlflow.get_tracking_uri()
    try:
        root = tmp_path_factory.mktemp("step-inputs")
        tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
        raw = {name: root / f"raw_{name}.parquet" for name in ("train", "validation", "test")}
        prepared = {name: root / f"{name}.parquet" for name in raw}
        outcome = run_ingest(
            DataSource(str(reviews_csv)),
            0.2,
            0.2,
            5,
            raw,
            root / "report.md",
            tracking_uri,
            "fixtures",
            "fixture-run",
        )
        run_preprocess(
            raw,
            prepared,
            root / "preprocessing.json",
            CleaningConfig(),
            str(tiny_model_dir),
            32,
            "head_tail",
            PREDICT_MAX_LENGTH,
        )
        configure(tracking_uri)
        with mlflow.start_run(run_id=outcome.mlflow_run_id):
            run_train(
                prepared["train"],
                prepared["validation"],
                root / "preprocessing.json",
                TrainingParams(epochs=2, batch_size=8),
                outcome.data_fingerprint,
                root / "work",
                root / "model",
            )
            paths = EvaluationPaths(root / "evaluation.json", root / "card.md", root / "errors.html", root / "cm.png")
            run_evaluate(
                root / "model",
                raw["train"],
                prepared["test"],
                str(reviews_csv),
                outcome.data_fingerprint,
                "fixture-model",
                outcome.split_sizes,
                5,
                paths,
            )
    finally:
        # The steps point this process's MLflow client at the fixture store; later tests must not inherit it.
        mlflow.set_tracking_uri(previous_uri)
        mlflow.set_registry_uri(previous_uri)
    return {
        "root": root,
        "tracking_uri": tracking_uri,
        "run_id": outcome.mlflow_run_id,
        "fingerprint": outcome.data_fingerprint,
        "split_sizes": outcome.split_sizes,
        "raw": raw,
        "prepared": prepared,
        "preprocessing": root / "preprocessing.json",
        "model": root / "model",
        "evaluation": root / "evaluation.json",
    }


@pytest.fixture
def fresh_run_id(step_inputs: dict) -> str:
    """A new MLflow run in the fixture store: a step may log its parameters once per run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(step_inputs["tracking_uri"])
    experiment = client.get_experiment_by_name("fixtures")
    return client.create_run(experiment.experiment_id).info.run_id


@pytest.fixture
def local_tracking_uri(tmp_path: Path) -> Iterator[str]:
    """This process's MLflow client pointed at a fresh sqlite store, and pointed back afterwards."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        yield uri
    finally:
        mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="session")
def event_sink() -> Iterator[EventSink]:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    events: list[dict] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            events.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield EventSink(f"http://127.0.0.1:{server.server_address[1]}/events", events)
    finally:
        server.shutdown()


@pytest.fixture(scope="session", params=BACKENDS)
def serving_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, step_inputs: dict, event_sink: EventSink
) -> Iterator[RunningServer]:
    """The trained fixture model behind a real `textclf serve` on each inference backend in turn, logging
    requests to `event_sink`."""
    options = [f"--set={item}" for item in SERVING_TEST_LIMITS]
    with textclf_server(
        tmp_path_factory.mktemp(f"serving-{request.param}"),
        "--model",
        str(step_inputs["model"]),
        "--backend",
        request.param,
        "--request-logger-url",
        event_sink.url,
        *options,
    ) as server:
        yield server


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory: pytest.TempPathFactory, step_inputs: dict) -> Iterator[RunningServer]:
    """The fixture model behind `textclf serve` with the default limits (100,000 characters a text), the admin token
    set (tests may unload the model: one server per test module) and no access log."""
    with textclf_server(
        tmp_path_factory.mktemp("admin-server"),
        "--model",
        str(step_inputs["model"]),
        env={"TEXTCLF_SERVE_ADMIN_TOKEN": ADMIN_TOKEN, "TEXTCLF_SERVE_ACCESS_LOG": "false"},
    ) as server:
        yield server
