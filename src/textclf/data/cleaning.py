"""Text cleaning: the one function that training, evaluation and serving all call."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}?/?\s*>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class CleaningConfig(BaseModel):
    """Which cleaning steps run; saved in the model directory so serving cleans exactly as training did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strip_html: bool = Field(True, description="remove HTML tags and unescape entities")
    strip_urls: bool = Field(True, description="remove URLs")
    normalize_unicode: bool = Field(True, description="NFKC-normalize unicode")
    normalize_whitespace: bool = Field(True, description="collapse runs of whitespace")
    lowercase: bool = Field(False, description="lowercase texts (uncased tokenizers do this anyway)")

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> CleaningConfig:
        """The cleaning options among `values`, taken by name."""
        return cls(**{name: values[name] for name in cls.model_fields if name in values})

    def to_dict(self) -> dict[str, bool]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CleaningConfig:
        known = {name: bool(values[name]) for name in cls.model_fields if name in values}
        return cls(**known)


def clean_text(text: str, config: CleaningConfig) -> str:
    """Apply the configured cleaning steps to one text."""
    if config.strip_html:
        # A tag is replaced by a space so "<br />Next" does not glue two words together.
        text = html.unescape(_HTML_TAG.sub(" ", text))
    if config.strip_urls:
        text = _URL.sub(" ", text)
    if config.normalize_unicode:
        text = unicodedata.normalize("NFKC", text)
    if config.normalize_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    if config.lowercase:
        text = text.lower()
    return text


def clean_texts(texts: list[str], config: CleaningConfig) -> list[str]:
    return [clean_text(text, config) for text in texts]
