"""Read and resolve sync conflicts (``terrafusion_agent.api`` decides who resolves).

The open conflicts are read from the local copy itself (reading never disturbs the
agent). A resolution writes, so it goes through the running agent when one serves the
copy (``POST /api/v1/conflicts/{id}/resolve``: the agent makes it wait for a running
sync); without an agent it is made here, under the copy's lock, with the agent package's
own ``resolve``, like ``terrafusion-agent conflicts resolve``.

A resolution keeps one side (``keep``: "local" or "central") or merges the two rows
column by column (``merge``: {column: "local", "central" or a value}).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .http import ApiError

#: the agent makes a resolution sent during a sync wait for up to a minute (its
#: RESOLVE_WAIT_SECONDS); the client waits a little longer for that answer
RESOLVE_TIMEOUT_SECONDS = 75.0


@dataclass(frozen=True)
class TableShape:
    """What the dialog needs to show a table's rows: column order, key, geometry."""

    columns: tuple
    pk: tuple
    geometry_column: Optional[str] = None
    srid: Optional[int] = None
    #: each column's kind ("integer", "real", "text", ...), in column order
    kinds: tuple = ()


@dataclass
class Resolution:
    resolved: list = field(default_factory=list)  #: ids resolved
    errors: list = field(default_factory=list)  #: one sentence per failed id
    via: str = ""  #: "agent" or "here" (this process, under the local copy's lock)
    results: list = field(default_factory=list)  #: what each resolution did, as resolved
    #: ids whose request itself was refused (a bad merge): their sentences are in
    #: ``errors`` too, and nothing was changed for them
    invalid: list = field(default_factory=list)


def load_conflicts(cfg) -> tuple[list[dict], dict[str, TableShape]]:
    """The open conflicts, oldest first, and the shape of each table they are about."""
    from terrafusion_agent.errors import NotFound
    from terrafusion_agent.stores.local import LocalStore

    local = LocalStore.open_existing(cfg.local_path)
    try:
        conflicts = local.conflicts()
        shapes = {}
        for table in {c["table"] for c in conflicts}:
            try:
                info = local.table_info(table)
            except NotFound:
                continue  # no longer synced; the values are still shown, without a map
            g = info.geometry
            shapes[table] = TableShape(columns=info.column_names, pk=info.pk,
                                       geometry_column=g.column if g else None,
                                       srid=g.srid if g else None,
                                       kinds=tuple(c.kind for c in info.columns))
    finally:
        local.close()
    return conflicts, shapes


def _body(keep: Optional[str], merge: Optional[dict]) -> dict:
    return {"keep": keep} if merge is None else {"merge": merge}


def resolve_via_agent(client, ids: list[int], keep: Optional[str],
                      merge: Optional[dict] = None) -> Resolution:
    """Each resolution sent to the running agent, which makes it wait for a sync it is
    running (the two would race on the rows); raises NoAnswer when it went away."""
    out = Resolution(via="agent")
    for conflict_id in ids:
        try:
            status, body = client.post(f"/api/v1/conflicts/{int(conflict_id)}/resolve",
                                       _body(keep, merge), timeout=RESOLVE_TIMEOUT_SECONDS)
            out.results.append(client.checked(status, body, 200))
        except ApiError as exc:
            out.errors.append(str(exc))
            if exc.status == 422:
                out.invalid.append(conflict_id)
            continue
        out.resolved.append(conflict_id)
    return out


def resolve_here(cfg, ids: list[int], keep: Optional[str],
                 merge: Optional[dict] = None) -> Resolution:
    """Each resolution made in this process, under the local copy's lock."""
    from terrafusion_agent.errors import BadRequest, TerraFusionError
    from terrafusion_agent.lock import LocalLock
    from terrafusion_agent.sync.conflicts import resolve

    out = Resolution(via="here")
    try:
        with LocalLock(cfg.local_path):
            for conflict_id in ids:
                try:
                    out.results.append(resolve(cfg, int(conflict_id), keep, merge))
                except TerraFusionError as exc:
                    out.errors.append(str(exc))
                    if isinstance(exc, BadRequest):
                        out.invalid.append(conflict_id)
                    continue
                out.resolved.append(conflict_id)
    except TerraFusionError as exc:  # the lock: an agent we cannot reach holds the copy
        out.errors.append(str(exc))
    return out


#: what a person may type for a boolean column, and what it means
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def typed_value(kind: str, column: str, text: str) -> Any:
    """What a person typed for column ``column`` of kind ``kind``, as the JSON value a
    merge takes (a number for a number column, text as typed): empty text is NULL, and
    digit grouping as the dialogs show numbers (``64,800.0``) is allowed. Raises
    BadRequest with one sentence when the text is no value of that kind; whether the
    column can hold the value is checked by the resolution itself."""
    from decimal import Decimal, InvalidOperation

    from terrafusion_agent.errors import BadRequest

    typed = text.strip()
    if not typed:
        return None
    if kind in ("integer", "real", "decimal"):
        digits = typed.replace(",", "").replace("_", "").replace(" ", "")
        try:
            if kind == "integer":
                return int(digits)
            number = Decimal(digits)
        except (ValueError, InvalidOperation):
            raise BadRequest(f"{column} takes a "
                             f"{'whole ' if kind == 'integer' else ''}number, not "
                             f"{typed!r}.") from None
        if not number.is_finite():
            raise BadRequest(f"{column} takes a finite number, not {typed!r}.")
        # a decimal keeps every digit typed as text, which the merge reads exactly
        return str(number) if kind == "decimal" else float(number)
    if kind == "boolean":
        if typed.lower() not in _BOOLEANS:
            raise BadRequest(f"{column} takes true or false, not {typed!r}.")
        return _BOOLEANS[typed.lower()]
    return text
