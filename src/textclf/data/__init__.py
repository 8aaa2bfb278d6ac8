"""The data stage: sources (files, URLs, the Hub, the embedded demo data), validation, de-duplication and
splitting, the one cleaning function, and preprocessing (label map, tokenization)."""
