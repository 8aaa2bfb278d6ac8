"""How much the monitor's store keeps (`MonitorStore.enforce_bounds`): one home for the bounds' defaults, which
`MonitorConfig` exposes as settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreBounds:
    """Most the store keeps of each table, whatever its senders do: past a bound the rows received first go.
    Enforced as writes arrive (after every `trim_every_rows` rows or `trim_every_bytes` of payload) and at each
    check, so a store overshoots a bound by at most that much."""

    event_bytes: int = 512 * 1024**2
    """Payload bytes of the stored request-log events (their predictions stay when an event goes)."""
    prediction_text_bytes: int = 512 * 1024**2
    """Characters of the texts of the stored predictions (a text may have 100,000)."""
    predictions: int = 1_000_000
    shadow_records: int = 1_000_000
    feedback: int = 1_000_000
    checks: int = 10_000

    @property
    def trim_every_rows(self) -> int:
        return max(1, min(1_000, self.predictions // 20, self.feedback // 20, self.checks // 20))

    @property
    def trim_every_bytes(self) -> int:
        return max(1, min(16 * 1024**2, self.event_bytes // 20, self.prediction_text_bytes // 20))
