import pytest

from textclf.data.cleaning import CleaningConfig, clean_text

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
