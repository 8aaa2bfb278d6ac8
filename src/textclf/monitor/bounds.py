"""How much the monitor's store keeps (`MonitorStore.enforce_bounds`): one home for the bounds' defaults, which
`MonitorConfig` exposes as settings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreBounds:
    """Most the store keeps of each table, whatever its senders do: past a bound the rows received first go, down
    to 90 % of it. Enforced as writes arrive and at each check."""

    event_bytes: int = 512 * 1024**2
    """Payload bytes of the stored request-log events (their predictions stay when an event goes)."""
    prediction_text_bytes: int = 512 * 1024**2
    """Characters of the texts of the stored predictions (a text may have 100,000)."""
    predictions: int = 1_000_000
    shadow_records: int = 1_000_000
    feedback: int = 1_000_000
    checks: int = 10_000
