"""Push alerts: a small JSON message POSTed to ``alerts.webhook_url`` when something about
the syncs needs a person.

Events (``"event"`` of the message):

- ``sync_failing``: ``alerts.failures_threshold`` syncs in a row failed (once per run of
  failures, however long it lasts);
- ``sync_recovered``: a sync succeeded after such a run of failures;
- ``conflicts``: a sync recorded new conflicts;
- ``rejected``: central refused rows in a sync.

Each message: ``event``, ``agent_id``, ``host``, ``at`` (ISO 8601 UTC), ``detail`` (the
figures) and ``text`` (one sentence, which chat services show as is). A message is sent
once, from a background thread, with a short timeout: a receiver that is down or slow
never slows or fails a sync, and its error is one log line. The URL may carry a secret
(user:password@, a token): it is sent as Basic authentication and never shown (see
:func:`terrafusion_agent.redact.webhook_display`).
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Optional
from urllib.parse import unquote, urlsplit, urlunsplit

from terrafusion_agent import __version__
from terrafusion_agent.config import Config
from terrafusion_agent.redact import redact, webhook_display
from terrafusion_agent.timeutil import utc_now

log = logging.getLogger("terrafusion.alerts")

#: seconds one POST may take, connecting included
SEND_TIMEOUT_SECONDS = 5.0


class Alerts:
    """The alerts of one local copy's syncs. ``config`` gives the configuration in force
    (a running agent's changes on reload); ``streak`` is how many syncs in a row had
    failed before this object started counting."""

    def __init__(self, config: Callable[[], Config], agent_id: Optional[str],
                 streak: int = 0):
        self._config = config
        self.agent_id = agent_id
        self.host = socket.gethostname()
        self.streak = streak
        # a run of failures already as long as the threshold was announced by whoever
        # counted it first (an agent before its restart, an earlier one-off sync)
        self._announced = streak >= config().alert_failures_threshold
        self._sending: list[threading.Thread] = []
        self._lock = threading.Lock()

    def sync_ended(self, result: str, summary: Optional[dict[str, Any]],
                   error: Optional[BaseException]) -> list[dict[str, Any]]:
        """Count one finished sync (``result`` success, failed or cancelled) and send the
        messages it calls for; returns them."""
        config = self._config()
        messages = []
        with self._lock:
            if result == "failed":
                self.streak += 1
                if self.streak >= config.alert_failures_threshold and not self._announced:
                    self._announced = True
                    reason = redact(str(error)) if error is not None else "The sync failed."
                    messages.append(self._message(
                        "sync_failing", {"consecutive_failures": self.streak, "error": reason},
                        f"TerraFusion on {self.host}: {self.streak} syncs in a row failed. "
                        f"{reason}"))
            elif result == "success":
                if self._announced:
                    messages.append(self._message(
                        "sync_recovered", {"failures_before": self.streak},
                        f"TerraFusion on {self.host} syncs again, after {self.streak} "
                        "failed syncs."))
                self.streak, self._announced = 0, False
        if result == "success" and summary is not None:
            new_conflicts = int(summary.get("conflicts") or 0)
            new_rejected = int(summary.get("rejected") or 0)
            if new_conflicts:
                messages.append(self._message(
                    "conflicts", {"new": new_conflicts,
                                  "open": summary.get("open_conflicts"),
                                  "sync_id": summary.get("id")},
                    f"TerraFusion on {self.host}: the sync found {new_conflicts} new "
                    "conflict(s) to resolve."))
            if new_rejected:
                messages.append(self._message(
                    "rejected", {"new": new_rejected, "open": summary.get("open_rejected"),
                                 "sync_id": summary.get("id")},
                    f"TerraFusion on {self.host}: central refused {new_rejected} row(s) in "
                    "the sync."))
        url = config.alert_webhook_url
        if url and messages:
            self._send(url, messages)
        return messages

    def _message(self, event: str, detail: dict[str, Any], text: str) -> dict[str, Any]:
        return {"event": event, "agent_id": self.agent_id, "host": self.host,
                "at": utc_now(), "version": __version__, "detail": detail, "text": text}

    def _send(self, url: str, messages: list[dict[str, Any]]) -> None:
        # one thread per sync posts its messages one after the other, so a receiver gets
        # them in the order they happened (recovered before the conflicts of that sync)
        thread = threading.Thread(target=post_each, args=(url, messages),
                                  name="terrafusion-alert", daemon=True)
        with self._lock:
            self._sending = [t for t in self._sending if t.is_alive()] + [thread]
        thread.start()

    def wait(self, timeout: float = SEND_TIMEOUT_SECONDS + 1) -> None:
        """Give the messages under way up to ``timeout`` seconds in all to go out (a
        process about to end calls this; daemon threads would die with it)."""
        with self._lock:
            sending = list(self._sending)
        deadline = threading.Event()
        timer = threading.Timer(timeout, deadline.set)
        timer.start()
        try:
            for thread in sending:
                while thread.is_alive() and not deadline.is_set():
                    thread.join(0.05)
        finally:
            timer.cancel()


def for_local_copy(config: Config) -> Optional[Alerts]:
    """The alerts of a one-off sync of ``config``'s copy (the CLI's, when no agent runs),
    counting on from the failures its copy recorded; None when no webhook is set. Call
    under the copy's lock, before the sync."""
    if not config.alert_webhook_url:
        return None
    agent_id, streak = local_state(config)
    return Alerts(lambda: config, agent_id, streak)


def local_state(config: Config) -> tuple[Optional[str], int]:
    """The copy's agent id and its syncs failed in a row; (None, 0) for a copy that does
    not exist yet or cannot be read (then the sync says why; alerts never stop it)."""
    from terrafusion_agent.stores.local import LocalStore

    if not config.local_path.exists():
        return None, 0
    try:
        with LocalStore.open(config.local_path, migrate=False) as local:
            return local.agent_id(), int(local.sync_outcome()["consecutive_failures"])
    except Exception:  # noqa: BLE001 - alerts never stop a sync
        log.debug("the local copy's sync record is unreadable for alerts", exc_info=True)
        return None, 0


def post_each(url: str, messages: list[dict[str, Any]]) -> None:
    """Post ``messages`` to ``url`` in order, each on its own (one that fails does not
    hold back the next)."""
    for message in messages:
        post(url, message)


def post(url: str, message: dict[str, Any]) -> bool:
    """POST ``message`` as JSON to ``url`` once; True when the receiver took it (2xx).
    Never raises: a failure is one log line naming the receiver without its secrets."""
    shown = webhook_display(url)
    try:
        request = _request(url, json.dumps(message).encode("utf-8"))
        with _OPENER.open(request, timeout=SEND_TIMEOUT_SECONDS) as answer:
            answer.read(65536)
            ok = 200 <= answer.status < 300
        if not ok:
            log.warning("the alert %s to %s got HTTP %s", message["event"], shown,
                        answer.status)
            return False
        log.info("alert %s sent to %s", message["event"], shown,
                 extra={"event": "alert", "alert": message["event"]})
        return True
    except urllib.error.HTTPError as exc:
        reason = f"HTTP {exc.code}"
    except Exception as exc:  # noqa: BLE001 - a receiver must never break the agent
        reason = getattr(exc, "reason", None) or exc
    log.warning("the alert %s could not be sent to %s: %s", message["event"], shown,
                redact(str(reason)), extra={"event": "alert", "alert": message["event"],
                                            "result": "failed"})
    return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: following it would hand the Basic authentication, and the
    message, to whatever host the answer names."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _request(url: str, body: bytes) -> urllib.request.Request:
    """The POST, the URL's user and password (if any) moved into a Basic header:
    urllib would otherwise refuse a URL with user info."""
    parts = urlsplit(url)
    headers = {"Content-Type": "application/json",
               "User-Agent": f"terrafusion-agent/{__version__}"}
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        url = urlunsplit(parts._replace(netloc=netloc))
    return urllib.request.Request(url, data=body, method="POST", headers=headers)
