"""UTC timestamps as the agent stores and reports them (ISO 8601 with Z)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(ts: Optional[str]) -> Optional[datetime]:
    if not ts:
        return None
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def seconds_between(start: Optional[str], end: Optional[str]) -> Optional[float]:
    """The seconds from ``start`` to ``end`` (as stored), to the millisecond; None when
    either is missing. A sync run's one duration: its summary, its log line, the API and
    the status page all compute it with this from the run's recorded times."""
    a, b = parse(start), parse(end)
    if a is None or b is None:
        return None
    return round(max(0.0, (b - a).total_seconds()), 3)


def format_duration(seconds: Optional[float]) -> str:
    """A duration as the log and the status page show it: the recorded seconds exactly
    (``12.345 s``), with minutes beside them from a minute on (``754.210 s (12 min 34 s)``)."""
    if seconds is None:
        return "an unknown time"
    text = f"{seconds:,.3f} s"
    if seconds >= 60:
        minutes, secs = divmod(int(round(seconds)), 60)
        hours, minutes = divmod(minutes, 60)
        text += f" ({hours} h {minutes} min)" if hours else f" ({minutes} min {secs} s)"
    return text
