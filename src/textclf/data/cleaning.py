"""Text cleaning: the one function that training, evaluation and serving all call."""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Every pattern runs in time linear in the text (a text may be `max_text_chars` long and arrive from anyone):
# possessive quantifiers never give back what they matched, so no input makes them backtrack, and a tag's
# body is bounded. The tag pattern used to be `<\s*/?\s*[a-zA-Z][^<>]{0,200}?/?\s*>`, whose two optional
# whitespace runs split n spaces n² ways: "<" + 100,000 spaces + "!" took ~38 s.
_HTML_TAG = re.compile(r"<\s*+/?\s*+[a-zA-Z][^<>]{0,200}+>")
_URL = re.compile(r"(?:https?://|www\.)\S++", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s++")
# html.unescape's own reference pattern; each match is unescaped alone so a numeric reference with thousands
# of digits (which makes html.unescape raise: int() refuses over 4,300 digits) becomes U+FFFD instead, as
# html.unescape does for any code point past U+10FFFF.
_CHARACTER_REFERENCE = re.compile(r"&(?:#[0-9]++;?|#[xX][0-9a-fA-F]++;?|[^\t\n\f <&#;]{1,32};?)")
_LONGEST_CODE_POINT_DIGITS = 7  # 1114111 (U+10FFFF) in decimal; 6 hex digits


class CleaningConfig(BaseModel):
    """Which cleaning steps run; saved in the model directory so serving cleans exactly as training did."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strip_html: bool = Field(True, description="remove HTML tags and unescape entities")
    strip_urls: bool = Field(True, description="remove URLs")
    normalize_unicode: bool = Field(True, description="NFKC-normalize unicode")
    normalize_whitespace: bool = Field(True, description="collapse runs of whitespace")
    lowercase: bool = Field(False, description="lowercase texts (uncased tokenizers do this anyway)")

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
        text = unescape_html(_HTML_TAG.sub(" ", text))
    if config.strip_urls:
        text = _URL.sub(" ", text)
    if config.normalize_unicode:
        text = unicodedata.normalize("NFKC", text)
    if config.normalize_whitespace:
        text = _WHITESPACE.sub(" ", text).strip()
    if config.lowercase:
        text = text.lower()
    return text


def unescape_html(text: str) -> str:
    """`html.unescape`, in linear time and without its failure on numeric references too long to convert."""
    if "&" not in text:
        return text
    return _CHARACTER_REFERENCE.sub(_unescape_reference, text)


def _unescape_reference(match: re.Match[str]) -> str:
    reference = match.group(0)
    if not reference.startswith("&#"):
        return html.unescape(reference)
    hexadecimal = reference[2:3] in ("x", "X")
    digits = reference[3 if hexadecimal else 2 :].rstrip(";").lstrip("0") or "0"
    if len(digits) > _LONGEST_CODE_POINT_DIGITS:
        return "\ufffd"
    return html.unescape(f"&#{'x' if hexadecimal else ''}{digits};")


def clean_texts(texts: list[str], config: CleaningConfig) -> list[str]:
    return [clean_text(text, config) for text in texts]
