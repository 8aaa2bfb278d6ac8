"""The monitor stage, free of FastAPI: request-logger events to prediction records, the store, drift reports
(Evidently), the drift decision, the check that ties them together, and retraining runs. `monitoring/` is
the HTTP adapter over it."""
