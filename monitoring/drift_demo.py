"""`textclf demo-drift` (`make demo-drift`): the whole loop on one machine, with real processes.

Train on one domain of the demo data, serve the champion with request logging to the monitor, send
in-domain traffic (no retraining), then another domain with feedback labels: the scheduled check sees drift,
starts one retraining run on the original data plus the feedback, whose gate promotes the new version only if
it beats the champion on the frozen test split and on the held-out drift window; the deploy step then
switches the running server to it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from textclf.deploy.local_server import ADMIN_TOKEN_VARIABLE
from textclf.monitor.store import FINISHED_RUN_STATUSES
from textclf.runtime.local_processes import free_port, running_server
from textclf.train.modeling import PACKAGED_MINILM


@dataclass(frozen=True)
class DemoSettings:
    workdir: Path
    train_domain: str = "movie_reviews"
    shifted_domain: str = "tweets"
    train_rows: int = 3000
    """Rows of the training domain to train on (0 = all); the rest supply in-domain traffic."""
    traffic: int = 300
    """Texts sent per phase; the monitor's window is this size."""
    feedback_share: float = 1.0
    epochs: int = 2
    finetune: str = "full"
    """Full fine-tuning of the small MiniLM learns a few thousand snippets faster than LoRA on 2 CPU cores."""
    base_model: str = PACKAGED_MINILM
    check_interval_seconds: float = 5.0
    timeout_seconds: float = 2400.0
    seed: int = 7


@dataclass
class DemoResult:
    champion_before: str
    in_domain_decision: str
    in_domain_reason: str
    shifted_decision: str
    shifted_reason: str
    retraining_runs: list[dict[str, Any]]
    seconds_from_first_shifted_request_to_retraining_start: float | None
    retrained_version: str | None
    promotion_decision: str | None
    promotion_reason: str | None
    champion_after: str
    served_version_after: str
    timings: dict[str, float] = field(default_factory=dict)


def _check_now(http: httpx.Client, monitor: str, timeout: float = 600) -> dict[str, Any]:
    """A check that starts now: while a scheduled one runs, the monitor answers 202, so ask again after it."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.post(f"{monitor}/checks")
        if answer.status_code != 202 or time.monotonic() > deadline:
            answer.raise_for_status()
            return answer.json()
        time.sleep(0.5)


def _send(client: httpx.Client, server: str, texts: list[str], prefix: str) -> list[str]:
    """One v2 request per text, each with its own request id (what feedback refers to)."""
    ids = []
    for i, text in enumerate(texts):
        request_id = f"{prefix}-{i}"
        body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]}
        answer = client.post(f"{server}/v2/models/textclf/infer", json=body, headers={"x-request-id": request_id})
        answer.raise_for_status()
        ids.append(request_id)
    return ids


def _wait_for_window(client: httpx.Client, monitor: str, expected_total: int, timeout: float) -> None:
    """The request logger sends asynchronously: wait until the monitor stored every prediction."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = 0
        for line in client.get(f"{monitor}/metrics").text.splitlines():
            if line.startswith("textclf_monitor_predictions_total"):
                stored = int(float(line.rsplit(" ", 1)[1]))
        if stored >= expected_total:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the monitor stored fewer than {expected_total} predictions within {timeout} s")


def _launched(runs: list[dict]) -> bool:
    """A run is claimed before it is launched: its run id exists only once it is no longer "claimed"."""
    return bool(runs) and all(run["status"] != "claimed" for run in runs)


def run_drift_demo(settings: DemoSettings, progress=print) -> DemoResult:
    from mlflow.tracking import MlflowClient

    from textclf.data.demo import load_demo

    workdir = settings.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    in_domain = load_demo(settings.train_domain).sample(frac=1.0, random_state=settings.seed)
    rows = settings.train_rows or len(in_domain) - settings.traffic
    train, held_back = in_domain.iloc[:rows], in_domain.iloc[rows:]
    if len(held_back) < settings.traffic:
        raise ValueError(f"{settings.train_domain} has {len(in_domain)} rows: too few for {rows} + {settings.traffic}")
    shifted = load_demo(settings.shifted_domain).sample(n=settings.traffic, random_state=settings.seed)
    train_csv = workdir / f"{settings.train_domain}_train.csv"
    train[["text", "label"]].to_csv(train_csv, index=False)
    server_port, monitor_port = free_port(), free_port()
    server, monitor = f"http://127.0.0.1:{server_port}", f"http://127.0.0.1:{monitor_port}"
    training_config = workdir / "training.yaml"
    training_config.write_text(
        yaml.safe_dump(
            {
                "data": str(train_csv),
                "encoder": {"base_model": settings.base_model},
                "tuning": {"trials": 0},
                "training": {"epochs": settings.epochs, "finetune": settings.finetune},
                "tracking_uri": tracking_uri,
                "serving": {"url": server},
                "seed": settings.seed,
            }
        )
    )
    cli = [sys.executable, "-m", "textclf.cli"]
    timings: dict[str, float] = {}
    started = time.monotonic()
    progress(f"1/6 training the first champion on {len(train)} {settings.train_domain} texts")
    subprocess.run(
        [*cli, "run", "--config", str(training_config), "--workdir", str(workdir)],
        check=True,
        stdout=(workdir / "first_run.log").open("w"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    timings["first_training_seconds"] = time.monotonic() - started
    client = MlflowClient(tracking_uri, tracking_uri)
    champion_before = str(client.get_model_version_by_alias("textclf", "champion").version)

    with ExitStack() as stack, httpx.Client(timeout=120) as http:
        progress("2/6 starting the monitor and the server (request logging to the monitor)")
        monitor_command = [
            *cli,
            "monitor",
            "--port",
            str(monitor_port),
            "--workdir",
            str(workdir / "monitor"),
            "--check-interval",
            str(settings.check_interval_seconds),
            "--training-config",
            str(training_config),
            "--training-workdir",
            str(workdir),
            "--tracking-uri",
            tracking_uri,
            "--set",
            f"window_size={settings.traffic}",
            "--set",
            f"policy.min_window_size={min(200, settings.traffic)}",
        ]
        # The retraining run the monitor starts inherits its environment; its deploy step loads the new
        # champion into the server with this token (the server's model-repository routes are off without one).
        admin = {**os.environ, ADMIN_TOKEN_VARIABLE: secrets.token_hex(16)}
        stack.enter_context(running_server(monitor_command, f"{monitor}/health", workdir / "monitor.log", 180, admin))
        serve_command = [
            *cli,
            "serve",
            "--model",
            "models:/textclf@champion",
            "--tracking-uri",
            tracking_uri,
            "--port",
            str(server_port),
            "--grpc-port",
            "0",
            "--request-logger-url",
            f"{monitor}/events",
        ]
        stack.enter_context(
            running_server(serve_command, f"{server}/v2/health/ready", workdir / "serve.log", 300, admin)
        )

        progress(f"3/6 sending {settings.traffic} in-domain texts ({settings.train_domain} not trained on)")
        _send(http, server, held_back["text"].iloc[: settings.traffic].tolist(), "in-domain")
        _wait_for_window(http, monitor, settings.traffic, 120)
        in_domain_check = _check_now(http, monitor)
        if http.get(f"{monitor}/retraining").json():
            raise RuntimeError(f"in-domain traffic started a retraining run: {in_domain_check}")
        progress(f"    check: {in_domain_check['decision']}: {in_domain_check['reason']}")

        progress(
            f"4/6 sending {settings.traffic} {settings.shifted_domain} with feedback; checks every "
            f"{settings.check_interval_seconds:.0f} s"
        )
        first_shifted = datetime.now(UTC)
        ids = _send(http, server, shifted["text"].tolist(), "shifted")
        labelled = int(len(ids) * settings.feedback_share)
        feedback = [
            {"request_id": i, "label": label} for i, label in zip(ids[:labelled], shifted["label"], strict=False)
        ]
        http.post(f"{monitor}/feedback", json={"items": feedback}).raise_for_status()
        _wait_for_window(http, monitor, 2 * settings.traffic, 120)
        deadline = time.monotonic() + settings.timeout_seconds
        while time.monotonic() < deadline and not _launched(http.get(f"{monitor}/retraining").json()):
            time.sleep(1)
        checks = http.get(f"{monitor}/checks").json()
        shifted_check = next((c for c in checks if c["decision"] == "retrain"), checks[0])
        progress(f"    scheduled check: {shifted_check['decision']}: {shifted_check['reason']}")
        runs = http.get(f"{monitor}/retraining").json()
        to_start = None
        if runs:
            to_start = (datetime.fromisoformat(runs[0]["started_at"]) - first_shifted).total_seconds()
            progress(f"5/6 retraining run {runs[0]['run_id']} started {to_start:.1f} s after the first shifted request")
            while time.monotonic() < deadline and any(run["status"] not in FINISHED_RUN_STATUSES for run in runs):
                time.sleep(5)
                runs = http.get(f"{monitor}/retraining").json()
            timings["retraining_seconds"] = time.monotonic() - started - timings["first_training_seconds"]
        # A later check inside the cooldown must not start a second run for the same episode.
        _check_now(http, monitor)
        runs = http.get(f"{monitor}/retraining").json()

        champion_after = str(client.get_model_version_by_alias("textclf", "champion").version)
        versions = sorted(int(v.version) for v in client.search_model_versions("name = 'textclf'"))
        retrained = str(versions[-1]) if len(versions) > 1 else None
        promotion_decision = promotion_reason = None
        if retrained is not None:
            tags = client.get_run(client.get_model_version("textclf", retrained).run_id).data.tags
            promotion_decision, promotion_reason = tags.get("promotion_decision"), tags.get("promotion_reason")
        progress(f"6/6 gate: {promotion_decision}: {promotion_reason}; champion v{champion_after}")
        probe = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["what a day"]}]}
        served = http.post(f"{server}/v2/models/textclf/infer", json=probe).json()["model_version"]

    timings["total_seconds"] = time.monotonic() - started
    result = DemoResult(
        champion_before=champion_before,
        in_domain_decision=in_domain_check["decision"],
        in_domain_reason=in_domain_check["reason"],
        shifted_decision=shifted_check["decision"],
        shifted_reason=shifted_check["reason"],
        retraining_runs=runs,
        seconds_from_first_shifted_request_to_retraining_start=to_start,
        retrained_version=retrained,
        promotion_decision=promotion_decision,
        promotion_reason=promotion_reason,
        champion_after=champion_after,
        served_version_after=str(served),
        timings=timings,
    )
    (workdir / "demo_drift.json").write_text(json.dumps(asdict(result), indent=2, default=str))
    return result
