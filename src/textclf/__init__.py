"""textclf: transformer text classification from a labelled dataset to a served, monitored model."""

__version__ = "0.1.0"
