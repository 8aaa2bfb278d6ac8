import functools
import html
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.hostile import HOSTILE_SHAPES
from textclf.config import ServingConfig
from textclf.data.cleaning import CleaningConfig, clean_text, unescape_html

pytestmark = pytest.mark.unit


def test_every_step_on() -> None:
    raw = "Great<br />movie!  See https://example.com/x?y=1 or www.foo.org \u00a0now &amp; then\uff01"
    assert clean_text(raw, CleaningConfig()) == "Great movie! See or now & then!"


def test_steps_switch_off_one_by_one() -> None:
    raw = "A<b>B</b> http://x.y  \uff21"
    assert clean_text(raw, CleaningConfig(strip_html=False)) == "A<b>B</b> \uff21".replace("\uff21", "A")
    assert clean_text(raw, CleaningConfig(strip_urls=False)) == "A B http://x.y A"
    assert clean_text(raw, CleaningConfig(normalize_unicode=False)) == "A B \uff21"
    assert clean_text(raw, CleaningConfig(normalize_whitespace=False)).startswith("A B   ")


def test_lowercase_is_opt_in() -> None:
    assert clean_text("MiXeD", CleaningConfig()) == "MiXeD"
    assert clean_text("MiXeD", CleaningConfig(lowercase=True)) == "mixed"


def test_cleaning_is_idempotent() -> None:
    config = CleaningConfig(lowercase=True)
    once = clean_text("Some <i>HTML</i> &lt;3 and https://a.b  text", config)
    assert clean_text(once, config) == once


def test_config_round_trips_and_ignores_unknown_keys() -> None:
    config = CleaningConfig(strip_urls=False, lowercase=True)
    assert CleaningConfig.from_dict({**config.to_dict(), "future_option": True}) == config


# ---- linear time on hostile input (a text may be max_text_chars long and come from anyone) -------------------

MAX_TEXT_CHARS = ServingConfig.model_fields["max_text_chars"].default
# Budgets are multiples of the time to clean ordinary prose of the same length, measured in the same run, so
# they hold on a slower CPU. The worst shape measured costs ~10 times the prose; a pattern that backtracked
# would cost thousands of times more at this length.
CLEAN_BUDGET_RATIO = 30
# NFKC (the standard library's) is linear in what it writes, and U+FDFA becomes 18 characters: 100,000 of
# them are 1.8 million characters to normalize, collapse and lowercase (~37 times the prose), linear all the same.
EXPANDING_SHAPE_BUDGET_RATIO = 120
PROSE = "The quick brown fox jumps over the lazy dog, and <b>then</b> reads https://example.com/?q=1 &amp; more. "


def _seconds_to_clean(text: str) -> float:
    """The fastest of three runs: a bound on the work, not on what else the machine was doing."""
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        clean_text(text, CleaningConfig(lowercase=True))
        timings.append(time.perf_counter() - started)
    return min(timings)


@functools.cache
def prose_seconds() -> float:
    """The time to clean ordinary prose of the length limit on this machine: the unit of the budgets."""
    return _seconds_to_clean((PROSE * (MAX_TEXT_CHARS // len(PROSE) + 1))[:MAX_TEXT_CHARS])


@pytest.mark.parametrize("shape", sorted(HOSTILE_SHAPES))
def test_a_hostile_text_at_the_length_limit_is_cleaned_in_linear_time(shape: str) -> None:
    text = HOSTILE_SHAPES[shape](MAX_TEXT_CHARS)
    assert len(text) <= MAX_TEXT_CHARS
    ratio = EXPANDING_SHAPE_BUDGET_RATIO if shape == "nfkc-expanding" else CLEAN_BUDGET_RATIO
    assert _seconds_to_clean(text) < ratio * prose_seconds()


def test_numeric_references_too_long_to_convert_become_the_replacement_character() -> None:
    assert unescape_html("a &#" + "9" * 5000 + "; b") == "a \ufffd b"
    assert unescape_html("&#x" + "1" * 5000) == "\ufffd"
    assert unescape_html("&#" + "0" * 5000 + "65;") == "A"


html_pieces = st.sampled_from(
    ["<", ">", "/", " ", "<a", "<br/>", "</p >", "< b>", "&", "&amp", "&amp;", "&#", "&#65;", "&#x41", "&#xD800;",
     "&#1114112;", "&notit;", "&lt", ";", "x", "\n", "http://", "www.", "é", "\ufdfa", "\u0301", "\x00"]
)  # fmt: skip
html_like = st.lists(html_pieces | st.text(max_size=3), max_size=60).map("".join)


@settings(max_examples=500, deadline=None)
@given(html_like)
def test_unescape_html_agrees_with_the_standard_library(text: str) -> None:
    assert unescape_html(text) == html.unescape(text)


@settings(max_examples=60, deadline=None)
@given(piece=html_like | st.text(min_size=1, max_size=40), shape=st.sampled_from(sorted(HOSTILE_SHAPES)))
def test_generated_long_texts_are_cleaned_within_the_budget(piece: str, shape: str) -> None:
    """A generated fragment repeated to the length limit, and appended to a hostile shape: linear time
    means neither the repetition nor the mix may cost more than the budget."""
    repeated = (piece * (MAX_TEXT_CHARS // max(len(piece), 1) + 1))[:MAX_TEXT_CHARS]
    mixed = (HOSTILE_SHAPES[shape](MAX_TEXT_CHARS // 2) + repeated)[:MAX_TEXT_CHARS]
    for text in (repeated, mixed):
        assert _seconds_to_clean(text) < EXPANDING_SHAPE_BUDGET_RATIO * prose_seconds(), (shape, piece)
