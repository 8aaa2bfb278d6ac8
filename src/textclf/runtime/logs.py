"""Structured logs: one JSON object per line, for the model server and the monitoring service alike."""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Callable
from typing import Any


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a record whose message is a dict (an access log line) is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, dict):
            entry.update(record.msg)
        else:
            entry["msg"] = record.getMessage()
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ThrottledLog:
    """Counts occurrences (by kind) and lets one log line through per `seconds`: `due` says whether this one
    should be logged, and hands back what was counted since the last line (this one included)."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._since: collections.Counter[str] = collections.Counter()
        self._logged_at = float("-inf")

    def due(self, kind: str = "") -> collections.Counter[str] | None:
        self._since[kind] += 1
        now = self.clock()
        if now - self._logged_at < self.seconds:
            return None
        counted, self._since = self._since, collections.Counter()
        self._logged_at = now
        return counted
