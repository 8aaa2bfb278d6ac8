from __future__ import annotations

import pytest

from textclf.serve.inputs import InputLimits, InvalidTexts, validate_texts

pytestmark = pytest.mark.unit

LIMITS = InputLimits(max_texts=3, max_text_chars=50)


def test_strings_and_utf8_bytes_pass() -> None:
    assert validate_texts(["good", "café".encode()], LIMITS) == ["good", "café"]


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one text"),
        (["a", "b", "c", "d"], "at most 3"),
        (["fine", ""], "text 1 is empty"),
        ([" \t\n"], "text 0 is empty"),
        (["ok", 5], "text 1 is int"),
        ([None], "text 0 is NoneType"),
        ([["nested"]], "text 0 is list"),
        ([b"caf\xe9"], "not valid UTF-8"),
        (["x" * 51], "limit is 50"),
        (["a\x00b"], "NUL"),
        (["bad \ud800 surrogate"], "unpaired surrogate"),
    ],
)
def test_each_rule_names_the_text_and_the_fix(items: list, message: str) -> None:
    with pytest.raises(InvalidTexts, match=message):
        validate_texts(items, LIMITS)
