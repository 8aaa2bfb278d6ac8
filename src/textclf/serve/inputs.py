"""Validation of the texts a prediction request carries, shared by every protocol the server speaks.

Each rule raises `InvalidTexts` with a message that says what to fix; the server turns it into a 4xx.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class InvalidTexts(ValueError):
    """The request's texts break a rule; the message tells the client what to change."""


@dataclass(frozen=True)
class InputLimits:
    """How many texts a request may carry and how long each may be (their defaults are `ServingConfig`'s)."""

    max_texts: int
    max_text_chars: int


def decode_text(item: object, index: int) -> str:
    """One item of a request as text: a str, or UTF-8 bytes (v2 BYTES tensors arrive as bytes over gRPC)."""
    if isinstance(item, bytes | bytearray):
        try:
            return bytes(item).decode("utf-8")
        except UnicodeDecodeError as error:
            raise InvalidTexts(
                f"text {index} is not valid UTF-8 (byte {error.start}): send texts encoded as UTF-8"
            ) from None
    if isinstance(item, str):
        return item
    raise InvalidTexts(f"text {index} is {type(item).__name__}, not a string: send each text as a JSON string")


def validate_texts(items: Sequence[object], limits: InputLimits) -> list[str]:
    """The request's items as a list of non-empty strings, or `InvalidTexts` naming the first problem."""
    if len(items) == 0:
        raise InvalidTexts("no texts: send at least one text")
    if len(items) > limits.max_texts:
        raise InvalidTexts(
            f"{len(items)} texts in one request; this server takes at most {limits.max_texts}: split the request"
        )
    texts = []
    for index, item in enumerate(items):
        text = decode_text(item, index)
        if not text.strip():
            raise InvalidTexts(f"text {index} is empty or only whitespace: send text to classify")
        if len(text) > limits.max_text_chars:
            raise InvalidTexts(
                f"text {index} has {len(text)} characters; the limit is {limits.max_text_chars}: shorten it"
            )
        if "\x00" in text:
            raise InvalidTexts(f"text {index} contains a NUL character: remove it")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise InvalidTexts(
                f"text {index} has an unpaired surrogate at character {error.start}: send valid Unicode"
            ) from None
        texts.append(text)
    return texts
