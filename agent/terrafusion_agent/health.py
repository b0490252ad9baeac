"""The health body shared by ``GET /health`` and ``terrafusion-agent status``.

Format: ``application/health+json`` (draft-inadarei-api-health-check): a top-level
``status`` of pass, warn or fail, with the agent's own figures beside it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

from terrafusion_agent import __version__
from terrafusion_agent.config import Config
from terrafusion_agent.errors import TerraFusionError
from terrafusion_agent.redact import redact
from terrafusion_agent.stores import open_central
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.timeutil import parse, utc_now

MEDIA_TYPE = "application/health+json"


def check_central(config: Config) -> tuple[bool, Optional[str]]:
    """(reachable, reason) for the configured central database."""
    try:
        open_central(config).close()
        return True, None
    except TerraFusionError as exc:
        return False, redact(str(exc))


def build(config: Config, *, next_sync: Optional[str] = None,
          central: Optional[tuple[bool, Optional[str]]] = None) -> dict:
    """The full health body. ``central`` may carry a cached reachability result."""
    body: dict = {
        "status": "pass",
        "version": __version__,
        "description": "TerraFusion sync agent",
        "time": utc_now(),
        "local_path": str(config.local_path),
        "central": redact(config.central_url),
        "interval_seconds": config.interval_seconds,
        "next_sync": next_sync,
        "last_sync": None,
        "last_success": None,
        "open_conflicts": None,
        "checks": {},
    }
    problems: list[str] = []
    if config.local_path.exists():
        try:
            local = LocalStore.open(config.local_path)
            try:
                body["last_sync"] = local.last_run()
                ok = local.last_run("success")
                body["last_success"] = ok["finished_at"] if ok else None
                body["open_conflicts"] = local.open_conflict_count()
            finally:
                local.close()
            body["checks"]["local:reachable"] = [{"status": "pass"}]
        except TerraFusionError as exc:
            body["checks"]["local:reachable"] = [{"status": "fail", "output": redact(str(exc))}]
            problems.append("fail")
    else:
        body["checks"]["local:reachable"] = [
            {"status": "warn", "output": "The local copy has not been created yet."}]
        problems.append("warn")

    reachable, reason = central if central is not None else check_central(config)
    body["central_reachable"] = reachable
    body["checks"]["central:reachable"] = [
        {"status": "pass"} if reachable else {"status": "fail", "output": reason}]
    if not reachable:
        problems.append("fail")

    last_ok = parse(body["last_success"])
    fresh = last_ok is not None and (
        parse(body["time"]) - last_ok <= timedelta(seconds=2 * config.interval_seconds))
    body["checks"]["sync:freshness"] = [
        {"status": "pass" if fresh else "warn", "observedValue": body["last_success"],
         **({} if fresh else {"output": "No successful sync within twice the interval."})}]
    if not fresh:
        problems.append("warn")
    if body["last_sync"] and body["last_sync"]["result"] == "failed":
        problems.append("warn")
    if "fail" in problems:
        body["status"] = "fail"
    elif "warn" in problems:
        body["status"] = "warn"
    return body
