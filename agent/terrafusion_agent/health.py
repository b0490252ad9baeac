"""The health body shared by ``GET /health`` and ``terrafusion-agent status``.

Format: ``application/health+json`` (draft-inadarei-api-health-check): a top-level
``status`` of pass, warn or fail, the agent's own figures beside it, and ``checks``
naming what was looked at. ``/health/ready`` is the same checks reduced to yes or no.

A running agent answers ``/health`` from a :class:`HealthMonitor`, whose cached figures
keep the endpoint fast while the central database is slow or gone; the CLI builds the
body directly.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import timedelta
from typing import Any, Callable, Generic, Optional, TypeVar

from terrafusion_agent import __version__
from terrafusion_agent.config import Config
from terrafusion_agent.errors import LocalDamaged, TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.timeutil import parse, utc_now

log = logging.getLogger("terrafusion.health")

MEDIA_TYPE = "application/health+json"
#: checks whose failure makes the agent not ready
READINESS_CHECKS = ("local:reachable", "central:reachable", "sync:freshness")
#: how long a central reachability result is reused (each check opens a connection)
CENTRAL_TTL_SECONDS = 5.0
#: how long the local figures are reused (they are refreshed at once after each sync)
LOCAL_TTL_SECONDS = 2.0

CentralCheck = tuple[bool, Optional[str]]


def check_central(config: Config) -> CentralCheck:
    """(reachable, reason) for the configured central database."""
    from terrafusion_agent.stores import open_central

    try:
        open_central(config).close()
        return True, None
    except TerraFusionError as exc:
        return False, redact(str(exc))
    except Exception as exc:  # noqa: BLE001 - a driver's odd error is still "unreachable"
        log.debug("central check failed", exc_info=True)
        return False, redact(f"The central database cannot be reached: "
                             f"{exc.__class__.__name__}: {exc}")


def read_local(config: Config) -> dict[str, Any]:
    """The local copy's figures and its check: last runs, pending edits, open conflicts,
    rows central refused.

    Opens the copy without migrating it: a running agent migrated it at start, and a
    status query must stay a read.
    """
    figures: dict[str, Any] = {"last_sync": None, "last_success": None,
                               "pending_local_edits": None, "open_conflicts": None,
                               "rejected_rows": None}
    if not config.local_path.exists():
        figures["check"] = {"status": "warn", "output": "The local copy has not been created yet."}
        return figures
    from terrafusion_agent.stores.local import LocalStore

    try:
        local = LocalStore.open(config.local_path, migrate=False)
    except TerraFusionError as exc:
        figures["check"] = {"status": "fail", "output": redact(str(exc))}
        return figures
    try:
        figures["last_sync"] = local.last_run()
        ok = local.last_run("success")
        figures["last_success"] = ok["finished_at"] if ok else None
        figures["open_conflicts"] = local.open_conflict_count()
        figures["rejected_rows"] = local.rejected_count()
        figures["pending_local_edits"] = local.pending_count()
        last = figures["last_sync"] or {}
        # a failure of the local copy names it (a central one does not): worth a check
        if last.get("result") == "failed" and str(local.path) in (last.get("error") or ""):
            _check_damage(local, last["id"])
        figures["check"] = {"status": "pass"}
    except TerraFusionError as exc:  # damaged, busy, unreadable: already one sentence
        figures["check"] = {"status": "fail", "output": redact(str(exc))}
    except sqlite3.Error as exc:
        figures["check"] = {
            "status": "fail",
            "output": redact(f"The local copy {config.local_path} cannot be read: {exc}. "
                             "A sync or an agent restart upgrades its bookkeeping."),
        }
    finally:
        local.close()
    if figures["last_sync"] and figures["last_sync"].get("error"):
        figures["last_sync"]["error"] = redact(str(figures["last_sync"]["error"]))
    return figures


#: (file, failed run) -> the damage SQLite's quick check found there, or None
_damage_checked: dict[tuple, Optional[str]] = {}


def _check_damage(local, failed_run: int) -> None:
    """Raise LocalDamaged when the file is damaged, checked once per failed sync.

    The figures above read only a few small tables, so a copy damaged elsewhere (in a
    synced table) would pass while every sync fails on it; reading every page costs too
    much for each health query, but not once after a sync failed on the local copy.
    """
    try:
        st = local.path.stat()
    except OSError:
        return
    key = (str(local.path), st.st_dev, st.st_ino, failed_run)
    if key not in _damage_checked:
        try:
            local.check_damage()
            found = None
        except LocalDamaged as exc:
            found = str(exc)
        _damage_checked.clear()  # only the newest failed run of a file matters
        _damage_checked[key] = found
    if _damage_checked[key] is not None:
        raise LocalDamaged(_damage_checked[key])


def build(config: Config, *, next_sync: Optional[str] = None,
          central: Optional[CentralCheck] = None,
          local: Optional[dict[str, Any]] = None,
          sync_state: Optional[dict[str, Any]] = None) -> dict:
    """The full health body.

    ``central`` and ``local`` may carry cached results of :func:`check_central` and
    :func:`read_local`; ``sync_state`` is the running scheduler's view (running sync,
    consecutive failures, last error).
    """
    local = read_local(config) if local is None else local
    reachable, reason = check_central(config) if central is None else central
    now = utc_now()
    body: dict = {
        "status": "pass",
        "version": __version__,
        "description": "TerraFusion sync agent",
        "time": now,
        "local_path": str(config.local_path),
        "central": redact(config.central_url),
        "central_reachable": reachable,
        "interval_seconds": config.interval_seconds,
        "next_sync": next_sync,
        "last_sync": local["last_sync"],
        "last_success": local["last_success"],
        "pending_local_edits": local["pending_local_edits"],
        "open_conflicts": local["open_conflicts"],
        "rejected_rows": local.get("rejected_rows"),
        "checks": {},
    }
    if sync_state is not None:
        body.update({k: sync_state[k] for k in
                     ("sync_running", "consecutive_failures", "last_error") if k in sync_state})
    checks = body["checks"]
    checks["local:reachable"] = [local["check"]]
    checks["central:reachable"] = [
        {"status": "pass"} if reachable else {"status": "fail", "output": reason}]

    last_ok = parse(body["last_success"])
    fresh = last_ok is not None and (
        parse(now) - last_ok <= timedelta(seconds=2 * config.interval_seconds))
    checks["sync:freshness"] = [
        {"status": "pass" if fresh else "warn", "observedValue": body["last_success"],
         **({} if fresh else {"output": "No successful sync within twice the interval."})}]
    failures = (sync_state or {}).get("consecutive_failures") or 0
    last = body["last_sync"]
    if failures or (last and last.get("result") == "failed"):
        checks["sync:result"] = [{
            "status": "warn", "observedValue": failures or 1,
            "output": redact(str((sync_state or {}).get("last_error")
                                 or (last or {}).get("error") or "The last sync failed.")),
        }]
    else:
        checks["sync:result"] = [{"status": "pass", "observedValue": 0}]
    open_conflicts = body["open_conflicts"] or 0
    # waiting conflicts are normal work, not an outage: worth a warn, never a fail
    checks["sync:conflicts"] = [
        {"status": "warn", "observedValue": open_conflicts,
         "output": f"{open_conflicts} conflict(s) wait for a decision."}
        if open_conflicts else {"status": "pass", "observedValue": 0}]
    rejected = body["rejected_rows"] or 0
    # a refused row waits for a fix by the analyst; the rest of the queue still syncs
    checks["sync:rejected"] = [
        {"status": "warn", "observedValue": rejected,
         "output": f"{rejected} edited row(s) were refused by the central database and "
                   "wait for a fix or a decision."}
        if rejected else {"status": "pass", "observedValue": 0}]

    statuses = {c[0]["status"] for c in checks.values()}
    body["status"] = "fail" if "fail" in statuses else "warn" if "warn" in statuses else "pass"
    return body


def from_running_agent(config: Config, timeout: float = 2.0) -> Optional[dict]:
    """The health body of the agent serving this configuration's local copy, if it runs.

    None when nothing answers on the configured port (or port 0), or when what answers
    is an agent for another local copy.
    """
    import json
    import urllib.request

    if config.http_port == 0:
        return None
    # the agent is local: a proxy configured for the internet must not see this request
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(config.health_url, timeout=timeout) as resp:
            body = json.loads(resp.read().decode("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or body.get("local_path") != str(config.local_path):
        return None
    return body


def readiness(body: dict) -> tuple[bool, dict[str, list]]:
    """(ready, failing checks) from a health body: see :data:`READINESS_CHECKS`."""
    failing = {name: body["checks"][name] for name in READINESS_CHECKS
               if name in body["checks"] and body["checks"][name][0]["status"] != "pass"}
    return not failing, failing


T = TypeVar("T")


class Cached(Generic[T]):
    """A value recomputed at most every ``ttl`` seconds.

    A stale value is served while one background thread recomputes it, so a request
    waits on a database only for the very first value, never under load and never for a
    central that takes its whole connect timeout to fail.
    """

    def __init__(self, compute: Callable[[], T], ttl: float, name: str):
        self._compute = compute
        self._ttl = ttl
        self._name = name
        self._value: Optional[T] = None
        self._at = float("-inf")
        self._lock = threading.Lock()
        self._first = threading.Lock()
        self._refreshing = False

    def get(self) -> T:
        with self._lock:
            value = self._value
            if value is not None:
                if time.monotonic() - self._at >= self._ttl and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh_in_background,
                                     name=f"health-{self._name}", daemon=True).start()
                return value
        with self._first:  # the first callers wait for one computation, not one each
            with self._lock:
                if self._value is not None:
                    return self._value
            return self.refresh()

    def refresh(self) -> T:
        """Recompute now (in the calling thread) and keep the result.

        A value :meth:`set` while this computed is fresher (a sync that just found central
        gone beats a check that started before): then that one is kept and returned.
        """
        started = time.monotonic()
        value = self._compute()
        with self._lock:
            if self._value is not None and self._at > started:
                return self._value
            self._value, self._at = value, time.monotonic()
        return value

    def set(self, value: T) -> None:
        with self._lock:
            self._value, self._at = value, time.monotonic()

    def _refresh_in_background(self) -> None:
        try:
            self.refresh()
        except Exception:  # noqa: BLE001 - keep serving the old value
            log.exception("refreshing the %s health figures failed", self._name)
        finally:
            with self._lock:
                self._refreshing = False


class HealthMonitor:
    """Cached health figures of a running agent."""

    def __init__(self, config: Config, *, sync_state: Optional[Callable[[], dict]] = None,
                 next_sync: Optional[Callable[[], Optional[str]]] = None):
        self.config = config
        self._sync_state = sync_state
        self._next_sync = next_sync
        # self.config, not config: a reloaded configuration is checked from then on
        self.central = Cached(lambda: check_central(self.config), CENTRAL_TTL_SECONDS,
                              "central")
        self.local = Cached(lambda: read_local(self.config), LOCAL_TTL_SECONDS, "local")

    def body(self) -> dict:
        return build(
            self.config,
            next_sync=self._next_sync() if self._next_sync else None,
            central=self.central.get(),
            local=self.local.get(),
            sync_state=self._sync_state() if self._sync_state else None,
        )

    def ready(self) -> tuple[bool, dict]:
        """(ready, body with only the readiness checks)."""
        body = self.body()
        ok, failing = readiness(body)
        return ok, {"status": "pass" if ok else "fail",
                    "checks": {n: body["checks"][n] for n in READINESS_CHECKS},
                    **({} if ok else {"failing": sorted(failing)})}

    def central_seen(self, reachable: bool, reason: Optional[str] = None) -> None:
        """A sync just found central reachable (or not): no need to wait for the next check."""
        self.central.set((reachable, redact(reason) if reason else None))

    def figure(self, key: str) -> float:
        """A local figure for a metrics gauge (NaN when unknown); never raises."""
        try:
            value = self.local.get().get(key)
        except Exception:  # noqa: BLE001 - a scrape must not fail on a figure
            return float("nan")
        return float("nan") if value is None else float(value)
