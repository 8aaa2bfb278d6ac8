"""Text cleaning: the one function that training, evaluation and serving all call."""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import asdict, dataclass
from typing import Any

_HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][^<>]{0,200}?/?\s*>")
_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CleaningConfig:
    """Which cleaning steps run; saved in the model directory so serving cleans exactly as training did."""

    strip_html: bool = True
    strip_urls: bool = True
    normalize_unicode: bool = True
    normalize_whitespace: bool = True
    lowercase: bool = False

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CleaningConfig:
        known = {name: bool(values[name]) for name in cls.__dataclass_fields__ if name in values}
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
