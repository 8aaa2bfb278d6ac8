"""The routes textclf adds to KServe's FastAPI app: the seeds' simple API (`/predict`, `/predict_batch`,
`/health`), label names in the v2 model metadata, the validation-error handler and the Swagger page."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StrictStr
from timing_asgi import TimingMiddleware

from textclf.serving.model import UNLOADED_DETAIL, TextClassifierModel
from textclf.serving.unexpected_errors import UnexpectedErrors


class PredictRequest(BaseModel):
    text: StrictStr = Field(description="the text to classify", examples=["A warm, funny and well acted film."])


class PredictBatchRequest(BaseModel):
    texts: list[StrictStr] = Field(description="the texts to classify", examples=[["Loved it.", "Dull and long."]])


class Prediction(BaseModel):
    label: str = Field(description="the predicted class name")
    score: float = Field(description="probability of the predicted class")
    probabilities: dict[str, float] = Field(description="probability of every class, by class name")
    truncated: bool = Field(description="whether the text was cut to the model's maximum length")


class PredictResponse(Prediction):
    model_name: str
    model_version: str


class PredictBatchResponse(BaseModel):
    predictions: list[Prediction]
    model_name: str
    model_version: str


class HealthResponse(BaseModel):
    status: str = Field(description="'ok' when the model answers predictions")
    model_name: str
    model_version: str
    labels: list[str]


class ModelMetadataResponse(BaseModel):
    """KServe v2 model metadata, plus the label names and max length (extra fields v2 clients ignore)."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    parameters: dict[str, Any]


def simple_api_router(model: TextClassifierModel) -> APIRouter:
    """`POST /predict`, `POST /predict_batch`, `GET /health` and the v2 metadata with label names."""
    router = APIRouter()

    def require_ready() -> None:
        if model.unloaded:
            raise HTTPException(503, UNLOADED_DETAIL.format(name=model.name))
        if not model.ready or model.loaded is None:
            raise HTTPException(503, "the model is still loading: retry shortly")

    async def classify(texts: list[str], headers: dict[str, str]) -> dict[str, Any]:
        """The simple API is the v1 protocol in a friendlier envelope: the same hooks answer it."""
        require_ready()
        answer, _response_headers = await model({"instances": texts}, headers)
        return answer

    @router.post("/predict", response_model=PredictResponse, tags=["simple API"])
    async def predict(request: PredictRequest, raw: Request) -> PredictResponse:
        """Classify one text."""
        answer = await classify([request.text], dict(raw.headers))
        return PredictResponse(
            **answer["predictions"][0], model_name=answer["model_name"], model_version=answer["model_version"]
        )

    @router.post("/predict_batch", response_model=PredictBatchResponse, tags=["simple API"])
    async def predict_batch(request: PredictBatchRequest, raw: Request) -> PredictBatchResponse:
        """Classify several texts in one request."""
        return PredictBatchResponse(**await classify(list(request.texts), dict(raw.headers)))

    @router.get("/health", response_model=HealthResponse, tags=["simple API"])
    async def health() -> HealthResponse:
        """200 once the model answers predictions; 503 while it loads."""
        require_ready()
        return HealthResponse(
            status="ok", model_name=model.name, model_version=model.version, labels=list(model.labels)
        )

    @router.get(f"/v2/models/{model.name}", response_model=ModelMetadataResponse, tags=["v2"])
    async def model_metadata() -> ModelMetadataResponse:
        """v2 model metadata; `parameters.labels` lists the class names in `probabilities` column order."""
        require_ready()
        return ModelMetadataResponse(
            name=model.name,
            versions=[model.version],
            platform="pytorch_transformers",
            inputs=model.get_input_types(),
            outputs=model.get_output_types(),
            parameters={
                "labels": list(model.labels),
                "max_length": model.loaded.classifier.metadata.prediction_length,
                "base_model": model.loaded.classifier.metadata.base_model,
            },
        )

    return router


async def request_validation_handler(_: Request, error: RequestValidationError) -> Response:
    """A 422 that says which field is wrong. FastAPI's default echoes the input, and fails (500) to encode
    an input holding an unpaired surrogate; this one never echoes it and escapes everything."""
    problems = [
        {"location": ".".join(str(part) for part in problem["loc"]), "problem": problem["msg"]}
        for problem in error.errors()
    ]
    summary = "; ".join(f"{item['location']}: {item['problem']}" for item in problems[:5])
    payload = {"error": f"the request does not match the schema: {summary}", "detail": problems}
    return Response(json.dumps(payload, ensure_ascii=True), status_code=422, media_type="application/json")


def skip_unlogged_timing(app: FastAPI) -> None:
    """Keep KServe from adding its per-request timing middleware while the log it feeds is off.

    KServe 0.21.0 adds timing_asgi's `TimingMiddleware` to its app when the REST server starts
    (kserve/protocol/rest/server.py `_add_middlewares`); for every request it matches the route again and reads
    the process's CPU time twice (getrusage, which sums every thread's), only to write a line to the
    `kserve.trace` logger at INFO. Quiet by default, that line is dropped, and so is the work
    (`make profile-serve` shows it). With `--verbose` the logger is on and the middleware stays."""
    add_middleware = app.add_middleware

    def add_unless_unlogged_timing(middleware_class: type, *args: Any, **kwargs: Any) -> None:
        if middleware_class is TimingMiddleware and not logging.getLogger("kserve.trace").isEnabledFor(logging.INFO):
            return
        add_middleware(middleware_class, *args, **kwargs)

    app.add_middleware = add_unless_unlogged_timing


def install(app: FastAPI, served: TextClassifierModel, middleware: type, **middleware_options: Any) -> None:
    """Add textclf's routes ahead of KServe's (so the metadata route answers first), the middleware, a 500
    logged once for an unexpected error, and a validation-error handler (KServe registers none for it); leave out
    KServe's timing middleware unless its log is on."""
    skip_unlogged_timing(app)
    app.include_router(simple_api_router(served))
    app.add_exception_handler(RequestValidationError, request_validation_handler)

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="textclf serving")

    app.add_middleware(middleware, **middleware_options)
    app.add_middleware(UnexpectedErrors, service="predictor")
