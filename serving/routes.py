"""The routes textclf adds to KServe's FastAPI app: the seeds' simple API (`/predict`, `/predict_batch`,
`/health`), label names in the v2 model metadata, the validation-error handler and the Swagger page."""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, StrictStr

from textclf.serve.slot import ServedVersion, Unavailable
from textclf.serving.middleware import serving_middleware
from textclf.serving.model import TextClassifierModel
from textclf.serving.protocol import (
    UNAVAILABLE_DETAILS,
    checked_texts,
    prediction_rows,
    request_id_of,
    unavailable_as_not_ready,
)
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
    """`POST /predict`, `POST /predict_batch`, `GET /health` and the v2 metadata with label names. The simple API
    asks the model's slot directly and writes its answer from the slot's columns: no v1 envelope in between."""
    router = APIRouter()
    slot = model.slot

    def require_ready() -> ServedVersion:
        served = slot.served
        if slot.unloaded:
            raise HTTPException(503, UNAVAILABLE_DETAILS[Unavailable.UNLOADED].format(name=model.name))
        if not model.ready or served is None:
            raise HTTPException(503, "the model is still loading: retry shortly")
        return served

    async def classify(texts: list[str], raw: Request) -> tuple[list[dict[str, Any]], str]:
        require_ready()
        with unavailable_as_not_ready(model.name):
            answer = await slot.predict(checked_texts(texts, model.limits), request_id_of(None, raw.headers))
        return prediction_rows(answer), answer.version

    @router.post("/predict", response_model=PredictResponse, tags=["simple API"])
    async def predict(request: PredictRequest, raw: Request) -> Response:
        """Classify one text."""
        (prediction,), version = await classify([request.text], raw)
        return json_response({**prediction, "model_name": model.name, "model_version": version})

    @router.post("/predict_batch", response_model=PredictBatchResponse, tags=["simple API"])
    async def predict_batch(request: PredictBatchRequest, raw: Request) -> Response:
        """Classify several texts in one request."""
        predictions, version = await classify(request.texts, raw)
        return json_response({"predictions": predictions, "model_name": model.name, "model_version": version})

    @router.get("/health", response_model=HealthResponse, tags=["simple API"])
    async def health() -> HealthResponse:
        """200 once the model answers predictions; 503 while it loads."""
        served = require_ready()
        return HealthResponse(
            status="ok", model_name=model.name, model_version=served.version, labels=list(served.classifier.labels)
        )

    @router.get(f"/v2/models/{model.name}", response_model=ModelMetadataResponse, tags=["v2"])
    async def model_metadata() -> ModelMetadataResponse:
        """v2 model metadata; `parameters.labels` lists the class names in `probabilities` column order."""
        served = require_ready()
        metadata = served.classifier.metadata
        return ModelMetadataResponse(
            name=model.name,
            versions=[served.version],
            platform="pytorch_transformers",
            inputs=model.get_input_types(),
            outputs=model.get_output_types(),
            parameters={
                "labels": list(metadata.labels),
                "max_length": metadata.prediction_length,
                "base_model": metadata.base_model,
            },
        )

    return router


def json_response(document: dict[str, Any]) -> Response:
    """The document as JSON, written once (the route's response model documents it; validating it again would
    only repeat the slot's work)."""
    return Response(orjson.dumps(document), media_type="application/json")


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


def install(app: FastAPI, served: TextClassifierModel, **middleware_options: Any) -> None:
    """Add textclf's routes ahead of KServe's (so the metadata route answers first), the middleware
    (`serving_middleware`), a 500 logged once for an unexpected error, and a validation-error handler (KServe
    registers none for it)."""
    app.include_router(simple_api_router(served))
    app.add_exception_handler(RequestValidationError, request_validation_handler)

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="textclf serving")

    app.add_middleware(serving_middleware, routed_by=app, model=served, **middleware_options)
    app.add_middleware(UnexpectedErrors, service="predictor")
