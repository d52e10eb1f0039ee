"""Windows: which of a key's events a feature aggregates when it is evaluated at time T.

The rules are those of asofdb's SQL contract (spec section 2), which every backend compiles:

* ``sliding("1h")``: ``T - w < e <= T``; strict (events before T only): ``T - w <= e < T``.
* ``sliding("1d", every="5m")`` (hopping): the sliding value at ``b``, the latest multiple of
  ``every`` since the Unix epoch with ``b <= T`` (``b < T`` strict).
* ``tumbling("1d")``: ``floor(T, w) <= e <= T`` (``< T`` strict), buckets aligned to the epoch.
* ``session(gap="10m")``: the key's current session at T, the longest run of events ``<= T``
  ending at the latest such event ``L`` whose consecutive events are less than ``gap`` apart,
  and only if ``T - L < gap``.
* ``lifetime()``: ``e <= T`` (``< T`` strict).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Optional, Union

from .errors import DefinitionError

Duration = Union[str, dt.timedelta]

MICROS = {
    "us": 1,
    "microsecond": 1,
    "microseconds": 1,
    "ms": 1_000,
    "millisecond": 1_000,
    "milliseconds": 1_000,
    "s": 1_000_000,
    "sec": 1_000_000,
    "second": 1_000_000,
    "seconds": 1_000_000,
    "m": 60_000_000,
    "min": 60_000_000,
    "minute": 60_000_000,
    "minutes": 60_000_000,
    "h": 3_600_000_000,
    "hour": 3_600_000_000,
    "hours": 3_600_000_000,
    "d": 86_400_000_000,
    "day": 86_400_000_000,
    "days": 86_400_000_000,
    "w": 7 * 86_400_000_000,
    "week": 7 * 86_400_000_000,
    "weeks": 7 * 86_400_000_000,
}

_DURATION = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")


def micros(duration: Duration) -> int:
    """A duration in microseconds: a ``timedelta``, or text such as ``"1h"``, ``"30 days"``."""
    if isinstance(duration, dt.timedelta):
        value = (duration.days * 86_400 + duration.seconds) * 1_000_000 + duration.microseconds
    elif isinstance(duration, str):
        found = _DURATION.match(duration.lower())
        if not found or found.group(2) not in MICROS:
            raise DefinitionError(
                f"cannot read {duration!r} as a duration: write a number and a unit, as '1h', '5m', '30 days'"
            )
        value = int(found.group(1)) * MICROS[found.group(2)]
    else:
        raise DefinitionError(f"a duration is text such as '1h' or a timedelta, not {type(duration).__name__}")
    if value <= 0:
        raise DefinitionError(f"a window's duration must be positive, not {duration!r}")
    return value


def interval_sql(us: int) -> str:
    """An INTERVAL literal of ``us`` microseconds, in the largest unit that divides it."""
    for unit, size in (("days", 86_400_000_000), ("hours", 3_600_000_000), ("minutes", 60_000_000)):
        if us % size == 0:
            return f"INTERVAL '{us // size} {unit}'"
    if us % 1_000_000 == 0:
        return f"INTERVAL '{us // 1_000_000} seconds'"
    return f"INTERVAL '{us / 1_000_000:.6f} seconds'"


@dataclass(frozen=True)
class Window:
    """A window kind and its durations, in microseconds."""

    kind: str  # "sliding", "tumbling", "session" or "lifetime"
    width: Optional[int] = None
    every: Optional[int] = None
    gap: Optional[int] = None

    def to_sql(self) -> str:
        """The window clause of asofdb's ``CREATE FEATURE``."""
        if self.kind == "sliding" and self.width is not None:
            hop = f" EVERY {interval_sql(self.every)}" if self.every else ""
            return f"WINDOW SLIDING {interval_sql(self.width)}{hop}"
        if self.kind == "tumbling" and self.width is not None:
            return f"WINDOW TUMBLING {interval_sql(self.width)}"
        if self.kind == "session" and self.gap is not None:
            return f"WINDOW SESSION GAP {interval_sql(self.gap)}"
        return "WINDOW LIFETIME"

    def __repr__(self) -> str:
        return self.to_sql().replace("WINDOW ", "").lower()


def sliding(width: Duration, every: Optional[Duration] = None) -> Window:
    """A sliding window of ``width``; with ``every``, a hopping one evaluated at multiples of it."""
    return Window("sliding", width=micros(width), every=micros(every) if every is not None else None)


def tumbling(width: Duration) -> Window:
    """Buckets of ``width`` aligned to the Unix epoch (UTC): "so far today" for ``"1d"``."""
    return Window("tumbling", width=micros(width))


def session(gap: Duration) -> Window:
    """The key's current session: events less than ``gap`` apart, the latest less than ``gap`` ago."""
    return Window("session", gap=micros(gap))


def lifetime() -> Window:
    """Every event up to the evaluation time."""
    return Window("lifetime")
