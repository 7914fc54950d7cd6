"""Exponential backoff for reconnecting to a lost peer (a PLC, a broker).

Attempt k (k = 0, 1, ...) after a failure waits d_k = min(initial * 2^k, maximum)
seconds; a success resets k to 0.
"""

from __future__ import annotations


class Backoff:
    """Delays between reconnection attempts, doubling up to a cap (seconds)."""

    def __init__(self, initial: float, maximum: float) -> None:
        if not 0 < initial <= maximum:
            raise ValueError(f"backoff needs 0 < initial <= maximum, got {initial} and {maximum}")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.failures = 0

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before the next attempt."""
        delay = min(self.initial * 2.0 ** self.failures, self.maximum)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
