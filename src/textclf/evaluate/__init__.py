"""The evaluate stage: classification metrics, baselines, error analysis, the model card, and any model on
any labelled data (`textclf evaluate`)."""
