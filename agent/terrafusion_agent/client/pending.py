"""Discard pending local edits (``terrafusion_agent.api`` decides who discards).

A discard writes the local copy, so it goes through the running agent when one serves
the copy (``POST /api/v1/pending/discard``: the agent makes it wait for a running sync,
which must not meet a half-restored row); without an agent it is made here, under the
copy's lock, with the agent package's own ``discard``, as the agent would.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .http import ApiError

#: the agent makes a discard sent during a sync wait for up to a minute (as a conflict
#: resolution); the client waits a little longer for that answer
DISCARD_TIMEOUT_SECONDS = 75.0


def discard_via_agent(client, edits: Optional[Sequence[tuple[str, Sequence]]]
                      ) -> dict[str, Any]:
    """The discard made by the running agent; raises NoAnswer when it went away, and
    the agent's refusal as the error the agent raised (NotFound, BadRequest...)."""
    body = {"all": True} if edits is None else {
        "edits": [{"table": table, "key": list(key)} for table, key in edits]}
    status, answer = client.post("/api/v1/pending/discard", body,
                                 timeout=DISCARD_TIMEOUT_SECONDS)
    try:
        result = client.checked(status, answer, 200)
    except ApiError as exc:
        raise _as_agent_error(exc) from None
    return {**result, "via": "agent"}


def discard_here(cfg, edits: Optional[Sequence[tuple[str, Sequence]]]) -> dict[str, Any]:
    """The discard made in this process, under the local copy's lock."""
    from terrafusion_agent.lock import LocalLock
    from terrafusion_agent.sync.pending import discard

    with LocalLock(cfg.local_path):
        result = discard(cfg, edits)
    return {**result, "via": "here"}


def _as_agent_error(exc: ApiError):
    """The agent's answer as the error it would have raised here: a front end tells a
    bad key from a missing edit whoever did the work."""
    from terrafusion_agent import errors

    kind = {404: errors.NotFound, 400: errors.BadRequest,
            422: errors.BadRequest}.get(exc.status, errors.TerraFusionError)
    if exc.status == 409 and exc.code in ("sync_in_progress", "busy"):
        kind = errors.SyncInProgress
    return kind(str(exc))
