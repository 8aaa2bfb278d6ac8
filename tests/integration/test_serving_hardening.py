"""The predictor under attack and administration, as a real `textclf serve` process at its default limits:
hostile texts at the length limit must not hold up other requests, the model-repository routes need the
admin token, an unload leaves a server that answers 503 at once and comes back on load, and SIGTERM always
ends the process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.hostile import HOSTILE_SHAPES
from tests.support.servers import ADMIN_TOKEN, RunningServer, admin, textclf_server
from textclf.config import ServingConfig

pytestmark = pytest.mark.integration

MODEL = "textclf"
MAX_TEXT_CHARS = ServingConfig.model_fields["max_text_chars"].default
SHORT = {"text": "a short and friendly review"}
MIN_SHORT_REQUESTS = 10


def test_hostile_texts_at_the_length_limit_do_not_hold_up_a_short_request(admin_server: RunningServer) -> None:
    url = admin_server.url
    long_statuses: dict[str, int] = {}
    short_seconds: list[float] = []
    done = threading.Event()

    def send_long(shape: str) -> None:
        with httpx.Client(timeout=120) as client:
            response = client.post(f"{url}/predict", json={"text": HOSTILE_SHAPES[shape](MAX_TEXT_CHARS)})
            long_statuses[shape] = response.status_code

    def send_short() -> None:
        with httpx.Client(timeout=30) as client:
            while not done.is_set() or len(short_seconds) < MIN_SHORT_REQUESTS:
                started = time.perf_counter()
                assert client.post(f"{url}/predict", json=SHORT).status_code == 200
                short_seconds.append(time.perf_counter() - started)

    # One hostile text in flight at a time (the case), the short requests beside it.
    with ThreadPoolExecutor(2) as pool:
        prober = pool.submit(send_short)
        for shape in sorted(HOSTILE_SHAPES):
            send_long(shape)
        done.set()
        prober.result()

    blank = {shape for shape, make in HOSTILE_SHAPES.items() if not make(MAX_TEXT_CHARS).strip()}  # 400: no text
    assert long_statuses == {shape: 400 if shape in blank else 200 for shape in HOSTILE_SHAPES}
    assert len(short_seconds) >= MIN_SHORT_REQUESTS
    assert max(short_seconds) < 1.0, sorted(short_seconds)[-5:]


def test_the_model_repository_routes_are_off_without_an_admin_token(serving_server: RunningServer) -> None:
    with httpx.Client(base_url=serving_server.url, timeout=30) as client:
        for action in ("unload", "load"):
            refused = client.post(f"/v2/repository/models/{MODEL}/{action}", headers=admin("anything"))
            assert refused.status_code == 403
            assert "TEXTCLF_SERVE_ADMIN_TOKEN" in refused.json()["error"]
        assert client.post("/predict", json=SHORT).status_code == 200


def grpc_administration(server: RunningServer) -> dict:
    """An unload and an inference over gRPC, by tritonclient in a process of its own (grpc_probe.py)."""
    probe = Path(__file__).with_name("grpc_probe.py")
    result = subprocess.run(
        [sys.executable, str(probe), server.grpc_target, "administration"], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout)


def test_unload_answers_503_at_once_and_load_brings_the_model_back(admin_server: RunningServer) -> None:
    unload, load = f"/v2/repository/models/{MODEL}/unload", f"/v2/repository/models/{MODEL}/load"
    v2 = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["fine"]}]}
    with httpx.Client(base_url=admin_server.url, timeout=30) as client:
        assert client.post(unload).status_code == 401
        wrong = client.post(unload, headers=admin("not-the-token"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        refused = grpc_administration(admin_server)
        assert "over gRPC" in refused["unload"]["message"] and refused["infer"]["status"] == "OK"
        assert client.post("/predict", json=SHORT).status_code == 200
        # Any path under /v2/repository needs the token, a model name with a newline in it too (schemathesis found
        # one that passed the route check); a model this server does not serve is not found, not "not ready".
        assert client.post("/v2/repository/models/y%0A/load").status_code == 401
        for action in ("load", "unload"):
            unknown = client.post(f"/v2/repository/models/elsewhere/{action}", headers=admin())
            assert unknown.status_code == 404 and f"serves '{MODEL}'" in unknown.json()["error"], unknown.text

        assert client.post(unload, headers=admin()).status_code == 200
        for method, path, body in (
            ("POST", "/predict", SHORT),
            ("POST", f"/v2/models/{MODEL}/infer", v2),
            ("POST", f"/v1/models/{MODEL}:predict", {"instances": ["fine"]}),
            ("GET", f"/v2/models/{MODEL}/ready", None),
            ("GET", "/health", None),
        ):
            started = time.perf_counter()
            answer = client.request(method, path, json=body)
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert time.perf_counter() - started < 1.0, path
            # What is true, and what brings it back (issue 33: /predict said "still loading: retry shortly").
            assert "still loading" not in answer.text, (path, answer.text)
        assert "was unloaded" in client.post("/predict", json=SHORT).json()["detail"]
        assert grpc_administration(admin_server)["infer"]["status"] == "StatusCode.UNAVAILABLE"
        assert client.get("/v2/health/live").status_code == 200
        assert client.post(unload, headers=admin()).status_code == 200, "a second unload is harmless"

        assert client.post(load, headers=admin()).status_code == 200
        assert client.get(f"/v2/models/{MODEL}/ready").json()["ready"] is True
        assert client.post("/predict", json=SHORT).status_code == 200
        assert grpc_administration(admin_server)["infer"]["status"] == "OK"


def test_sigterm_ends_a_server_whose_model_was_unloaded_while_clients_keep_asking(
    tmp_path: Path, step_inputs: dict
) -> None:
    with textclf_server(
        tmp_path, "--model", str(step_inputs["model"]), env={"TEXTCLF_SERVE_ADMIN_TOKEN": ADMIN_TOKEN}
    ) as server:
        stop = threading.Event()

        def keep_asking() -> None:
            with httpx.Client(base_url=server.url, timeout=5) as client:
                while not stop.is_set():
                    try:
                        client.post("/predict", json=SHORT)
                    except httpx.HTTPError:
                        return

        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post(f"/v2/repository/models/{MODEL}/unload", headers=admin()).status_code == 200
        askers = [threading.Thread(target=keep_asking) for _ in range(4)]
        for asker in askers:
            asker.start()
        time.sleep(1)
        server.process.send_signal(signal.SIGTERM)
        try:
            # Ended by the signal within the bound (wait raises TimeoutExpired otherwise), not killed or crashed.
            assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)
        finally:
            stop.set()
            for asker in askers:
                asker.join()
