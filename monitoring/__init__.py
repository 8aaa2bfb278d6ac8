"""The monitoring service: request-log sink, feedback, drift reports and the retraining trigger over HTTP."""
