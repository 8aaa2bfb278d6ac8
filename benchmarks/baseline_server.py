"""The seeds' serving baseline: a minimal FastAPI app calling a Hugging Face text-classification pipeline
per request, fp32, no batching across requests. Run by bench_serve.py against the same model directory.

    python benchmarks/baseline_server.py MODEL_DIR PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline

classifier = pipeline("text-classification", model=sys.argv[1], device="cpu")
app = FastAPI()


class PredictRequest(BaseModel):
    text: str


class PredictBatchRequest(BaseModel):
    texts: list[str]


@app.post("/predict")
def predict(request: PredictRequest) -> dict:
    return classifier(request.text, truncation=True)[0]


@app.post("/predict_batch")
def predict_batch(request: PredictBatchRequest) -> dict:
    return {"predictions": classifier(request.texts, truncation=True)}


@app.get("/health")
def health() -> dict:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")
