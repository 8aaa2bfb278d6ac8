import base64

import pytest

from textclf.runtime.auth import Access, check_token, presented_token

pytestmark = pytest.mark.unit


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_bearer_and_basic_password_are_the_presented_token() -> None:
    assert presented_token("Bearer abc") == "abc"
    assert presented_token("bearer   abc ") == "abc"
    assert presented_token(basic("textclf", "abc")) == "abc"
    for unusable in (None, "", "Bearer", "Token abc", "Basic !!!", basic("only-user", ""), "Basic " + "\xff"):
        assert presented_token(unusable) is None


def test_no_configured_token_leaves_the_route_open_and_any_configured_one_is_accepted() -> None:
    assert check_token(None, "", "") is Access.OPEN
    assert check_token("Bearer x", "") is Access.OPEN
    assert check_token(None, "secret") is Access.DENIED
    assert check_token("Bearer wrong", "secret") is Access.DENIED
    assert check_token("Bearer secret", "secret") is Access.GRANTED
    assert check_token("Bearer other", "", "secret", "other") is Access.GRANTED
    assert check_token("Bearer " + "\udcff" * 10_000, "secret") is Access.DENIED
