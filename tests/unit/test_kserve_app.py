"""What textclf relies on in KServe, checked against the pinned version (serving/kserve_app.py cites each file): a
KServe release that changes one of these fails here, not in a user's cluster."""

from __future__ import annotations

import asyncio
import logging
import socket

import grpc
import httpx
import pytest
from fastapi import FastAPI
from kserve import Model
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from timing_asgi import TimingMiddleware

from textclf.serving.kserve_app import PredictorServer, RefusedRepositoryExtension, inference_app
from textclf.serving.middleware import ROUTE_NAMES, RouteNames

pytestmark = pytest.mark.unit


class Counting(Model):
    """A model that records the repository calls it gets."""

    def __init__(self) -> None:
        super().__init__("counting")
        self.calls: list[str] = []
        self.ready = True

    def reload(self) -> bool:
        self.calls.append("reload")
        self.ready = True
        return True

    def unload(self) -> None:
        self.calls.append("unload")
        self.ready = False

    def stop(self) -> None:
        self.calls.append("stop")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_kserve_route_has_a_name_and_requests_are_named_as_the_router_routes_them() -> None:
    app = FastAPI()
    register_v1_endpoints(app, None, None)
    register_v2_endpoints(app, None, None)
    unnamed = set(app.openapi()["paths"]) - set(ROUTE_NAMES) - {"/v2/models"}
    assert not unnamed, f"KServe routes with no metric name: {sorted(unnamed)}"
    names = RouteNames(app)
    assert names.of("POST", "/v1/models/textclf:predict") == "v1_predict"
    assert names.of("GET", "/v1/models/textclf") == "v1_model"
    assert names.of("POST", "/v2/models/textclf/versions/3/infer") == "v2_infer"
    assert names.of("GET", "/v2/models/textclf") == "v2_model_metadata"
    assert names.of("POST", "/v2/repository/models/a\nb/load") == "v2_repository"
    assert names.of("GET", "/nowhere") == "other"


def test_the_repository_routes_call_the_reloading_repository() -> None:
    model = Counting()
    server = PredictorServer(inference_app(), model, "127.0.0.1", free_port(), 0, 1024)

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=server.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            statuses = [
                (await client.post("/v2/repository/models/counting/unload")).status_code,
                (await client.get("/v2/models/counting/ready")).status_code,
                (await client.post("/v2/repository/models/counting/load")).status_code,
                (await client.get("/v2/models/counting/ready")).status_code,
                (await client.post("/v2/repository/models/other/unload")).status_code,
            ]
        return statuses

    assert asyncio.run(calls()) == [200, 503, 200, 200, 404]
    assert model.calls == ["unload", "reload"]


@pytest.mark.parametrize("verbose", [False, True])
def test_kserves_timing_middleware_is_added_only_when_its_log_is_on(verbose: bool) -> None:
    trace = logging.getLogger("kserve.trace")
    level = trace.level
    trace.setLevel(logging.INFO if verbose else logging.WARNING)
    try:
        server = PredictorServer(inference_app(), Counting(), "127.0.0.1", free_port(), 0, 1024)
    finally:
        trace.setLevel(level)
    assert any(entry.cls is TimingMiddleware for entry in server.app.user_middleware) is verbose


def test_the_grpc_server_serves_the_repository_rpcs_through_the_extension_it_is_given() -> None:
    port = free_port()
    model = Counting()
    server = PredictorServer(inference_app(), model, "127.0.0.1", free_port(), port, 1024)

    async def load_over_grpc() -> grpc.StatusCode:
        serving = asyncio.create_task(server.grpc.start(1))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await asyncio.wait_for(channel.channel_ready(), 10)
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                try:
                    await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="counting"))
                except grpc.aio.AioRpcError as error:
                    return error.code(), error.details()
                return grpc.StatusCode.OK, ""
        finally:
            await server.grpc.stop(0)
            serving.cancel()

    code, details = asyncio.run(load_over_grpc())
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert details == RefusedRepositoryExtension.REFUSAL
    assert model.calls == []


def test_a_grpc_server_that_cannot_start_stops_the_http_server_and_the_model() -> None:
    with socket.socket(socket.AF_INET6) as taken:
        taken.bind(("::", 0))
        taken.listen()
        model = Counting()
        server = PredictorServer(inference_app(), model, "127.0.0.1", free_port(), taken.getsockname()[1], 1024)
        with pytest.raises(RuntimeError, match="the gRPC server failed"):
            asyncio.run(asyncio.wait_for(server.serve(), 30))
    assert model.calls == ["stop"]
