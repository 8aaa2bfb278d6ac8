"""The fixture data committed with the tests."""

from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
REVIEWS_CSV = FIXTURES / "reviews.csv"
