"""``GET /``: a small status page for an admin's browser.

One self-contained HTML document: inline CSS, an inline SVG chart of recent sync
durations, no script and nothing fetched from elsewhere (the route sends a CSP saying
so). Every value is escaped; the page refreshes itself every 30 seconds.
"""

from __future__ import annotations

from html import escape
from typing import Any, Optional

_COLOURS = {"success": "#2e7d32", "failed": "#c62828", "running": "#1565c0"}
# Bandit's B105 takes the health status "pass" for a password and its colour for the value
_STATUS_COLOURS = {"pass": "#2e7d32", "warn": "#ef6c00", "fail": "#c62828"}  # nosec B105
CHART_WIDTH = 600
CHART_HEIGHT = 120


def _e(value: Any) -> str:
    return escape("—" if value is None else str(value))


def duration_chart(runs: list[dict[str, Any]]) -> str:
    """An SVG bar chart of run durations, oldest left; bar colour tells the result."""
    runs = [r for r in reversed(runs) if r.get("duration_seconds") is not None]
    if not runs:
        return '<p class="muted">No finished sync yet.</p>'
    top = max(max(float(r["duration_seconds"]) for r in runs), 0.001)
    slot = CHART_WIDTH / len(runs)
    bar = max(1.0, slot * 0.8)
    plot = CHART_HEIGHT - 14
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
             f'height="{CHART_HEIGHT}" role="img" aria-label="Durations of recent syncs">']
    for i, run in enumerate(runs):
        seconds = float(run["duration_seconds"])
        h = max(1.0, plot * seconds / top)
        x = i * slot + (slot - bar) / 2
        colour = _COLOURS.get(str(run.get("result")), "#757575")
        parts.append(
            f'<rect x="{x:.1f}" y="{plot - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>#{_e(run.get("id"))} {_e(run.get("result"))}: '
            f'{seconds:.2f} s, {_e(run.get("started_at"))}</title></rect>')
    parts.append(f'<text x="0" y="{CHART_HEIGHT - 2}" font-size="11" fill="#555">'
                 f'max {top:.2f} s over the last {len(runs)} runs</text></svg>')
    return "".join(parts)


def _row(label: str, value: Any, cls: Optional[str] = None) -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr><th>{escape(label)}</th><td{attr}>{_e(value)}</td></tr>"


def render(body: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    """The page for a health ``body`` and recent ``runs`` (newest first)."""
    status = str(body.get("status"))
    last = body.get("last_sync") or {}
    running = body.get("sync_running")
    problems = [
        f"{escape(name)}: {_e(check[0].get('output') or check[0].get('status'))}"
        for name, check in (body.get("checks") or {}).items()
        if check and check[0].get("status") != "pass"
    ]
    rows = "".join([
        _row("Agent", f"TerraFusion agent {body.get('version')}"),
        _row("Central", body.get("central")),
        _row("Central reachable", "yes" if body.get("central_reachable") else "no"),
        _row("Local copy", body.get("local_path")),
        _row("Syncing now", f"yes ({running.get('trigger')}, since {running.get('started_at')})"
             if running else "no"),
        _row("Last sync", f"{last.get('result')} at {last.get('finished_at')} "
             f"(pulled {last.get('pulled')}, pushed {last.get('pushed')}, "
             f"conflicts {last.get('conflicts')})" if last else None),
        _row("Last success", body.get("last_success")),
        _row("Next sync", body.get("next_sync")),
        _row("Pending local edits", body.get("pending_local_edits")),
        _row("Open conflicts", body.get("open_conflicts")),
        _row("Refused by central", body.get("rejected_rows")),
        _row("Failures in a row", body.get("consecutive_failures")),
    ])
    run_rows = "".join(
        f"<tr><td>{_e(r.get('id'))}</td><td>{_e(r.get('started_at'))}</td>"
        f"<td>{_e(r.get('trigger'))}</td>"
        f"<td style=\"color:{_COLOURS.get(str(r.get('result')), '#333')}\">"
        f"{_e(r.get('result'))}</td>"
        f"<td>{_e(r.get('duration_seconds'))}</td><td>{_e(r.get('pulled'))}</td>"
        f"<td>{_e(r.get('pushed'))}</td><td>{_e(r.get('conflicts'))}</td>"
        f"<td>{_e(r.get('error') or '')}</td></tr>"
        for r in runs[:15])
    problem_list = ("<ul>" + "".join(f"<li>{p}</li>" for p in problems) + "</ul>"
                    if problems else "")
    colour = _STATUS_COLOURS.get(status, "#333")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TerraFusion agent: {_e(status)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 60em; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}
.state {{ color: #fff; background: {colour}; padding: .1em .5em; border-radius: .3em; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: .2em .8em .2em 0; }}
.runs td, .runs th {{ border-bottom: 1px solid #ddd; font-size: 13px; }}
.muted {{ color: #777; }}
</style></head>
<body>
<h1>TerraFusion agent <span class="state">{_e(status)}</span></h1>
{problem_list}
<table>{rows}</table>
<h2>Recent sync durations</h2>
{duration_chart(runs)}
<h2>Recent syncs</h2>
<table class="runs"><tr><th>#</th><th>started</th><th>trigger</th><th>result</th>
<th>seconds</th><th>pulled</th><th>pushed</th><th>conflicts</th><th>error</th></tr>
{run_rows}</table>
<p class="muted">Machine-readable: <a href="/health">/health</a>, <a href="/metrics">/metrics</a>,
<a href="/api/v1/syncs">/api/v1/syncs</a>, <a href="/openapi.json">/openapi.json</a>.
Updated {_e(body.get("time"))}; this page reloads every 30 s.</p>
</body></html>
"""
