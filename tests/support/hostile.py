"""Hostile text shapes, each a function of the length wanted: the inputs that make careless regular
expressions, reference decoding or normalization take more than linear time, or crash."""

from __future__ import annotations

from collections.abc import Callable

HOSTILE_SHAPES: dict[str, Callable[[int], str]] = {
    # the shape that took the old tag pattern ~38 s: "<", spaces, then no letter
    "open-bracket-then-spaces": lambda n: "<" + " " * (n - 2) + "!",
    "tag-openings-then-spaces": lambda n: ("<a" + " " * 198) * (n // 200),
    "closing-slash-and-spaces": lambda n: ("< / " * n)[:n],
    "only-open-brackets": lambda n: "<" * n,
    "unclosed-tags": lambda n: ("<a" * n)[:n],
    "tags": lambda n: ("<b>x</b> " * n)[:n],
    "one-long-url": lambda n: "http://" + "a" * (n - 7),
    "url-prefixes": lambda n: ("www." * n)[:n],
    "huge-numeric-reference": lambda n: "&#" + "9" * (n - 2),
    "huge-hex-reference": lambda n: "&#x" + "f" * (n - 3),
    "zero-padded-reference": lambda n: "&#" + "0" * (n - 4) + "65",
    "ampersands": lambda n: "&" * n,
    "named-reference-prefixes": lambda n: ("&ampamp" * n)[:n],
    "nfkc-expanding": lambda n: "\ufdfa" * n,  # NFKC writes 18 characters for each
    "combining-marks": lambda n: "a" + "\u0301" * (n - 1),
    "whitespace-mix": lambda n: (" \t\n\u00a0\u2028\u3000" * n)[:n],
    "astral-emoji": lambda n: "\U0001f600" * n,
    "one-long-word": lambda n: "a" * n,
    "ideographs": lambda n: "\u4e2d" * n,  # one token each
    "short-words": lambda n: ("word " * n)[:n],
    "long-words": lambda n: (("x" * 150 + " ") * n)[:n],  # one [UNK] each in WordPiece: few tokens, many characters
    "expanding-long-words": lambda n: (("\ufb03" * 40 + " ") * n)[:n],  # NFKC: "ffi" each, words of 120
}
