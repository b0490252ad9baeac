"""What an export is asked to do, from the CLI, the API, the plugin or Processing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from terrafusion_agent.errors import InvalidExport

#: keys of an API request body (``POST /api/v1/exports``)
BODY_KEYS = ("table", "preset", "format", "out", "crs", "where", "fields", "overwrite",
             "as_of")


@dataclass(frozen=True)
class ExportRequest:
    """One export, as asked for. ``table`` and ``format`` may come from ``preset``.

    ``out`` is the file to write; with a preset that has a ``filename`` template it is the
    folder to write into. ``where`` is an SQLite expression on the table's columns.
    ``as_of`` (ISO 8601, UTC unless it names its zone) exports the table as it stood at
    that moment, rebuilt from central's history (:mod:`terrafusion_agent.export.asof`),
    instead of the local copy as it is.
    """

    table: Optional[str] = None
    format: Optional[str] = None
    out: Optional[str | os.PathLike] = None
    crs: Optional[str] = None
    where: Optional[str] = None
    fields: Optional[tuple[str, ...]] = None
    preset: Optional[str] = None
    overwrite: bool = False
    as_of: Optional[str] = None
    #: free-form label of who asked (cli, api, plugin, processing); kept with jobs
    trigger: str = field(default="api", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON (kept with a job)."""
        return {
            "table": self.table, "format": self.format,
            "out": None if self.out is None else str(self.out), "crs": self.crs,
            "where": self.where, "fields": None if self.fields is None else list(self.fields),
            "preset": self.preset, "overwrite": self.overwrite, "as_of": self.as_of,
        }


def refuse_nul(request: ExportRequest) -> None:
    """Raise :class:`InvalidExport` if a value of ``request`` holds a NUL character.

    No file name, table name or SQL text can: the operating system and SQLite would
    refuse it deep inside the export, far from the value that caused it.
    """
    for key in ("table", "preset", "format", "out", "crs", "where", "fields", "as_of"):
        _no_nul(key, getattr(request, key))


def _no_nul(key: str, value: Any) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if any(v is not None and "\0" in str(v) for v in values):
        raise InvalidExport(f"The export's {key!r} contains a NUL character, which no name, "
                            "path or filter may hold.")


def request_from_body(body: Any, *, trigger: str = "api") -> ExportRequest:
    """Check an API request body's shape and types; raises :class:`InvalidExport` (4xx).

    Only the shape is checked here (and that ``as_of`` is a time that has passed);
    whether the table, fields, CRS, filter and folder exist is checked by
    :func:`terrafusion_agent.export.plan.plan_export`.
    """
    if not isinstance(body, dict):
        raise InvalidExport("The export request must be a JSON object.")
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise InvalidExport(
            f"Unknown key {unknown[0]!r} in the export request; known keys: "
            f"{', '.join(BODY_KEYS)}.")
    values: dict[str, Any] = {}
    for key in ("table", "preset", "format", "out", "crs", "where", "as_of"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise InvalidExport(f"The export request's {key!r} must be a non-empty string.")
        _no_nul(key, value)
        values[key] = value.strip() if key != "where" else value
    if "table" not in values and "preset" not in values:
        raise InvalidExport("The export request needs a 'table' or a 'preset'.")
    if "out" not in values:
        raise InvalidExport("The export request needs 'out', the file (or folder) to write.")
    if not Path(values["out"]).expanduser().is_absolute():
        # The agent's working folder means nothing to a caller: insist on a full path.
        raise InvalidExport(f"The export request's 'out' must be an absolute path, "
                            f"not {values['out']!r}.")
    fields = body.get("fields")
    if fields is not None:
        if isinstance(fields, str):
            fields = [f.strip() for f in fields.split(",") if f.strip()]
        if not isinstance(fields, list) or not fields or not all(
                isinstance(f, str) and f.strip() for f in fields):
            raise InvalidExport("The export request's 'fields' must be a list of field names.")
        _no_nul("fields", fields)
        values["fields"] = tuple(f.strip() for f in fields)
    if "as_of" in values:
        values["as_of"] = parse_as_of(values["as_of"])
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise InvalidExport("The export request's 'overwrite' must be true or false.")
    return ExportRequest(overwrite=overwrite, trigger=trigger, **values)


def parse_time(text: str) -> Optional[datetime]:
    """An ISO 8601 time (UTC unless it names its zone; a space may stand for the T) in
    UTC; None when ``text`` is no such time."""
    value = str(text).strip()
    # Python before 3.11 reads no Z
    value = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        when = datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        return None


def parse_as_of(text: str, now: Optional[datetime] = None) -> str:
    """``text``, an ISO 8601 time (UTC unless it names its zone), as central's history
    takes it: UTC, written with a Z (``2026-01-01T08:00:00Z``). Raises
    :class:`InvalidExport` for a text that is no such time, and for a time after ``now``
    (history cannot tell what a table will hold)."""
    raw = str(text).strip()
    when = parse_time(raw)
    if when is None:
        raise InvalidExport(
            f"The as-of time {raw!r} is not understood; give an ISO 8601 time such as "
            "2026-01-01T00:00:00 (UTC unless it names its zone, as in "
            "2026-01-01T00:00:00-08:00).")
    if when > (now or datetime.now(timezone.utc)):
        raise InvalidExport(
            f"The as-of time {raw!r} is in the future; central's history reaches only up "
            "to now (leave the time out to export the table as it is).")
    return when.isoformat().replace("+00:00", "Z")


def split_fields(text: Optional[str]) -> Optional[tuple[str, ...]]:
    """``"a, b"`` (the CLI's ``--fields``) as a tuple of names; None when not given."""
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise InvalidExport("--fields names no field; give them as a,b,c.")
    return names
