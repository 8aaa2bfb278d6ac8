"""Prometheus metrics of the predictor, on KServe's /metrics next to its own."""

from __future__ import annotations

import collections
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from textclf.serve.batching import BatchStats
from textclf.serve.slot import Answer

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def error_kind(status: int) -> str | None:
    """The kind an HTTP status counts as in `textclf_errors_total`; None for a success."""
    if status < 400:
        return None
    return {
        400: "invalid_input",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
        422: "malformed_request",
        503: "not_ready",
    }.get(status, "server_error" if status >= 500 else "client_error")


@dataclass
class ServingMetrics:
    requests: Counter
    latency: Histogram
    errors: Counter
    batch_size: Histogram
    batch_queue: Histogram
    batch_compute: Histogram
    truncated: Counter
    predictions: Counter
    model_info: Gauge
    shadow_texts: Counter
    shadow_skipped: Counter
    shadow_queued: Gauge
    shadow_compute: Histogram
    shadow_info: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry = REGISTRY) -> ServingMetrics:
        return cls(
            requests=Counter(
                "textclf_requests", "HTTP requests by route and status code", ["route", "code"], registry=registry
            ),
            latency=Histogram(
                "textclf_request_latency_seconds",
                "HTTP request latency by route",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            errors=Counter("textclf_errors", "failed requests by kind", ["kind"], registry=registry),
            batch_size=Histogram(
                "textclf_batch_size", "texts per forward pass", buckets=BATCH_BUCKETS, registry=registry
            ),
            batch_queue=Histogram(
                "textclf_batch_queue_seconds",
                "longest wait of a request in a batch before the forward pass",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            batch_compute=Histogram(
                "textclf_batch_compute_seconds",
                "seconds of one forward pass, tokenization included",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            truncated=Counter("textclf_texts_truncated", "texts cut to the model's maximum length", registry=registry),
            predictions=Counter(
                "textclf_predictions",
                "texts answered, by the label given (the class mix)",
                ["label"],
                registry=registry,
            ),
            model_info=Gauge(
                "textclf_model_info",
                "the model being served (value 1)",
                ["model_name", "model_version", "base_model", "backend"],
                registry=registry,
            ),
            shadow_texts=Counter(
                "textclf_shadow_texts",
                "texts the shadow model classified, by whether it agreed with the champion",
                ["outcome"],
                registry=registry,
            ),
            shadow_skipped=Counter(
                "textclf_shadow_skipped_texts",
                "texts in the shadowed share left unshadowed (queue_full, failed)",
                ["reason"],
                registry=registry,
            ),
            shadow_queued=Gauge("textclf_shadow_queued_texts", "texts waiting for the shadow model", registry=registry),
            shadow_compute=Histogram(
                "textclf_shadow_compute_seconds",
                "seconds of one shadow forward pass",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            shadow_info=Gauge(
                "textclf_shadow_model_info",
                "the shadow model (value 1)",
                ["model_name", "model_version", "backend"],
                registry=registry,
            ),
        )

    def record_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        kind = error_kind(status)
        if kind is not None:
            self.errors.labels(kind).inc()

    def record_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.texts)
        self.batch_queue.observe(stats.queue_seconds)
        self.batch_compute.observe(stats.compute_seconds)

    def record_answer(self, texts: list[str], answer: Answer, request_id: str) -> None:
        self.truncated.inc(int(answer.predictions.truncated.sum()))
        for label, count in collections.Counter(answer.predictions.labels).items():
            self.predictions.labels(label).inc(count)

    def set_model(self, name: str, version: str, base_model: str, backend: str) -> None:
        self.model_info.clear()
        self.model_info.labels(name, version, base_model, backend).set(1)

    def set_shadow(self, name: str, version: str, backend: str) -> None:
        self.shadow_info.clear()
        self.shadow_info.labels(name, version, backend).set(1)
