"""Which database a pull reads: the read replica (``central.read_url``) or the primary.

Pushes, the heartbeat, key blocks, receipts and purges always go to the primary
(``central.url``); only a pull's reads may go to a streaming hot standby. A standby
lags, and reading it must never take the local copy back in time nor skip a change.

**The floor.** Besides its checkpoint, the local copy keeps a *floor*: a snapshot that
shows every transaction any local row may already reflect. Each pull widens it with
what its own snapshot shows at most (:meth:`ReadSession.floor`), and each push, in the
local transaction that settles it, with a snapshot the primary takes after the push
committed (that snapshot shows the push and every central version it merged, since
those finished before it). The floor only grows (:func:`snapshots.union`).

**The rule.** A pull reads the replica only when the replica's snapshot certainly shows
everything the floor shows, checked inside the very snapshot the pull then reads
(:meth:`PgReadSession.covers`). Why that is enough:

- *Never back in time.* A pull overwrites a row with its version in the read snapshot
  R. Every transaction the local row reflects is shown by the floor, hence by R, so
  R's version holds all of them: no row loses a change it had. This covers the
  replica older than the checkpoint (the checkpoint is part of the floor) and
  read-your-writes: this agent pushed at T2, merging a row another agent changed at
  T1 < T2; a replica at T1.5 would hand back the T1 version, and this agent's own T2
  entries are skipped by origin, so the row would stay old for good. The floor holds
  T2 from the moment the push is settled locally, so a replica at T1.5 is not read.
- *Never skip a change.* A pull applies the changes of every transaction its snapshot
  shows and the checkpoint does not, and the new checkpoint is only what the snapshot
  *certainly* shows (on a standby, everything below its xmin: see
  :class:`PgReadSession`). Every transaction the checkpoint shows was therefore
  applied, by this pull or an earlier one, and any other is still ahead. The floor
  contains the old checkpoint, so the checkpoint never moves back either.
- *Without the floor* neither holds: a replica behind the checkpoint sets the
  checkpoint back, and the read-your-writes case above loses the row's newer values.

A replica that is down, not a copy of the central (another system identifier or
central id), or behind the floor is passed over for the primary, which is always
current; the warning naming the reason is logged once until the replica serves again.
A standby shows only commits the primary has already flushed, so the heartbeat's
durable commit after the snapshot (see ``pull``) keeps its meaning with a replica.
"""

from __future__ import annotations

import copy
import logging
import threading
from typing import Callable, Optional

from terrafusion_agent.config import Config
from terrafusion_agent.errors import CentralUnavailable, ReplicaUnusable
from terrafusion_agent.redact import redact_url
from terrafusion_agent.stores import snapshots
from terrafusion_agent.stores.base import CentralStore
from terrafusion_agent.stores.local import LocalStore

log = logging.getLogger("terrafusion.sync")

#: local meta key of the floor (a pg_snapshot text)
FLOOR = "central_floor"

# The reason of the last fallback warned about, per read replica URL: a replica that
# stays down is reported once, not at every sync.
_warned: dict[str, str] = {}
_warned_lock = threading.Lock()


def choose_reader(config: Config, primary: CentralStore, local: LocalStore) -> CentralStore:
    """The store the next pull reads: the read replica when one is configured,
    reachable, a copy of ``primary``, and this copy has a floor to check it against
    (the session itself checks it, see :class:`PostGISReplica`); else ``primary``.
    The caller closes a store that is not ``primary``."""
    url = config.central_read_url
    if not url:
        return primary
    floor = local.meta(FLOOR)
    if floor is None:
        # nothing to hold the replica to yet (the first pull, or after a push an earlier
        # process could not settle): this pull reads the primary and sets the floor
        return primary
    from terrafusion_agent.stores.postgis import PostGISReplica

    try:
        replica = PostGISReplica(url, floor, schema=config.central_schema,
                                 connect_timeout=config.connect_timeout_seconds,
                                 statement_timeout=config.statement_timeout_seconds)
    except CentralUnavailable as exc:
        fall_back(url, "down", str(exc))
        return primary
    try:
        reason = _not_a_copy(replica, primary)
    except CentralUnavailable as exc:
        reason = str(exc)
    if reason:
        replica.close()
        fall_back(url, "not a copy", reason)
        return primary
    return replica


def _not_a_copy(replica: CentralStore, primary: CentralStore) -> Optional[str]:
    """Why ``replica`` is not a physical copy of ``primary``'s database, or None."""
    ids = [getattr(store, "identity", lambda: None)() for store in (replica, primary)]
    if ids[0] is None or ids[1] is None:
        return "the read replica needs a PostgreSQL central database."
    (replica_id, replica_system, _), (central_id, system, _) = ids[0], ids[1]
    if replica_system != system:
        return (f"The read replica {replica.describe()} is not a copy of the central "
                f"database {primary.describe()} (another PostgreSQL system).")
    if replica_id != central_id:
        return (f"The read replica {replica.describe()} does not hold the central "
                f"database {primary.describe()} (another database, or not yet set up).")
    return None


def pull_reading(config: Config, primary: CentralStore, local: LocalStore,
                 pull_once: Callable[[CentralStore], None], summary: dict) -> None:
    """Run ``pull_once(store)`` with the store :func:`choose_reader` picks; when the
    replica cannot serve (ReplicaUnusable: the pull rolled back), once more with the
    primary, the summary as it was before."""
    source = choose_reader(config, primary, local)
    if source is primary:
        pull_once(primary)
        return
    before = copy.deepcopy(summary)
    try:
        pull_once(source)
    except ReplicaUnusable as exc:
        summary.clear()
        summary.update(before)
        fall_back(config.central_read_url, "cannot serve", str(exc))
        pull_once(primary)
        return
    finally:
        source.close()
    served(config.central_read_url)


def record_floor(local: LocalStore, snapshot: Optional[str]) -> None:
    """Widen the floor with ``snapshot`` (inside the local transaction that makes the
    local copy reflect it); None forgets the floor, so the next pull reads the primary."""
    if snapshot is None:
        local.set_meta(FLOOR, None)
        return
    old = local.meta(FLOOR)
    new = snapshots.parse(snapshot)
    if old is not None:
        new = snapshots.union(snapshots.parse(old), new)
    local.set_meta(FLOOR, str(new))


def floor_after_push(config: Config, primary: CentralStore) -> Optional[str]:
    """What the floor takes in after a push committed (read on the primary right after
    the commit); None, which forgets the floor, when no replica is configured: a floor
    kept while no push widens it would hold a later replica to too little."""
    return primary.current_snapshot() if config.central_read_url else None


def fall_back(url: str, kind: str, reason: str) -> None:
    """Say once per kind of trouble that pulls read the primary instead of ``url``."""
    with _warned_lock:
        if _warned.get(url) == kind:
            return
        _warned[url] = kind
    log.warning("pulls read the primary instead of the read replica %s: %s",
                redact_url(url), reason)


def served(url: str) -> None:
    with _warned_lock:
        if _warned.pop(url, None) is None:
            return
    log.info("pulls read the read replica %s again", redact_url(url))
