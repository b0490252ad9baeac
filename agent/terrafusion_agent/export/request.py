"""What an export is asked to do, from the CLI, the API, the plugin or Processing."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from terrafusion_agent.errors import InvalidExport

#: keys of an API request body (``POST /api/v1/exports``)
BODY_KEYS = ("table", "preset", "format", "out", "crs", "where", "fields", "overwrite")


@dataclass(frozen=True)
class ExportRequest:
    """One export, as asked for. ``table`` and ``format`` may come from ``preset``.

    ``out`` is the file to write; with a preset that has a ``filename`` template it is the
    folder to write into. ``where`` is an SQLite expression on the table's columns.
    """

    table: Optional[str] = None
    format: Optional[str] = None
    out: Optional[str | os.PathLike] = None
    crs: Optional[str] = None
    where: Optional[str] = None
    fields: Optional[tuple[str, ...]] = None
    preset: Optional[str] = None
    overwrite: bool = False
    #: free-form label of who asked (cli, api, plugin, processing); kept with jobs
    trigger: str = field(default="api", compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The request as JSON (kept with a job)."""
        return {
            "table": self.table, "format": self.format,
            "out": None if self.out is None else str(self.out), "crs": self.crs,
            "where": self.where, "fields": None if self.fields is None else list(self.fields),
            "preset": self.preset, "overwrite": self.overwrite,
        }


def refuse_nul(request: ExportRequest) -> None:
    """Raise :class:`InvalidExport` if a value of ``request`` holds a NUL character.

    No file name, table name or SQL text can: the operating system and SQLite would
    refuse it deep inside the export, far from the value that caused it.
    """
    for key in ("table", "preset", "format", "out", "crs", "where", "fields"):
        _no_nul(key, getattr(request, key))


def _no_nul(key: str, value: Any) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    if any(v is not None and "\0" in str(v) for v in values):
        raise InvalidExport(f"The export's {key!r} contains a NUL character, which no name, "
                            "path or filter may hold.")


def request_from_body(body: Any, *, trigger: str = "api") -> ExportRequest:
    """Check an API request body's shape and types; raises :class:`InvalidExport` (4xx).

    Only the shape is checked here; whether the table, fields, CRS, filter and folder
    exist is checked by :func:`terrafusion_agent.export.plan.plan_export`.
    """
    if not isinstance(body, dict):
        raise InvalidExport("The export request must be a JSON object.")
    unknown = sorted(set(body) - set(BODY_KEYS))
    if unknown:
        raise InvalidExport(
            f"Unknown key {unknown[0]!r} in the export request; known keys: "
            f"{', '.join(BODY_KEYS)}.")
    values: dict[str, Any] = {}
    for key in ("table", "preset", "format", "out", "crs", "where"):
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
    overwrite = body.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise InvalidExport("The export request's 'overwrite' must be true or false.")
    return ExportRequest(overwrite=overwrite, trigger=trigger, **values)


def split_fields(text: Optional[str]) -> Optional[tuple[str, ...]]:
    """``"a, b"`` (the CLI's ``--fields``) as a tuple of names; None when not given."""
    if text is None:
        return None
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise InvalidExport("--fields names no field; give them as a,b,c.")
    return names
