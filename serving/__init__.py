"""The KServe predictor for textclf models: a `kserve.Model` over the core's `TextClassifier`, plus the
server entry point, observability and the deploy step's InferenceService builder."""
