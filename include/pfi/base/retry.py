"""The retry policy of deferred sends: exponential backoff with a cap, then giving up.

A settings value (``[dmp.retry]``, ``[mssante.retry]``) read by the protocols' configurations and
applied by the delivery queue (:mod:`pfi.flows.queue`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pfi.base.errors import ConfigurationError


@dataclass(frozen=True)
class RetryPolicy:
    """When to try again after a transient failure, and when to stop trying.

    The n-th retry waits ``first_delay × factor^(n-1)``, never more than ``max_delay``; a delivery
    whose first creation (or release from ``held``) is older than ``give_up_after`` is not retried
    any more: it fails.
    """

    first_delay: timedelta = timedelta(minutes=1)
    factor: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(days=3)

    def __post_init__(self) -> None:
        if self.first_delay <= timedelta(0) or self.max_delay < self.first_delay:
            raise ConfigurationError("retry delays must be positive, max_delay ≥ first_delay")
        if self.factor < 1:
            raise ConfigurationError("the retry factor must be at least 1")
        if self.give_up_after <= timedelta(0):
            raise ConfigurationError("give_up_after must be positive")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> RetryPolicy:
        """From a settings section: ``first_delay_seconds``, ``factor``, ``max_delay_seconds``,
        ``give_up_after_hours`` (each optional)."""
        raw = raw or {}
        default = cls()
        try:
            return cls(
                first_delay=_seconds(raw, "first_delay_seconds", default.first_delay),
                factor=float(raw.get("factor", default.factor)),
                max_delay=_seconds(raw, "max_delay_seconds", default.max_delay),
                give_up_after=timedelta(
                    hours=float(
                        raw.get("give_up_after_hours", default.give_up_after.total_seconds() / 3600)
                    )
                ),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"retry settings: {exc}") from None

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1 for the first failure)."""
        exponent = max(attempts - 1, 0)
        seconds = self.first_delay.total_seconds() * self.factor**exponent
        return min(timedelta(seconds=seconds), self.max_delay)

    def expired(self, created_at: datetime, now: datetime) -> bool:
        return now - created_at >= self.give_up_after


def _seconds(raw: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    return timedelta(seconds=float(raw[key])) if key in raw else default


__all__ = ["RetryPolicy"]
