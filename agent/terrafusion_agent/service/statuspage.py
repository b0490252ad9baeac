"""``GET /``: a small status page for an admin's browser.

One self-contained HTML document: inline CSS, an inline SVG chart of recent sync
durations, no script and nothing fetched from elsewhere (the route sends a CSP saying
so). Every value is escaped; the page reloads itself every 30 seconds.

It speaks plainly: "Working normally" rather than health-check words, each time in local
time with how long ago it was, counts with thousands separators. The API listens on the
loopback interface, so whoever reads the page sits at this machine: its local time zone
is the reader's. Each run's duration is the one its record gives (the same figure as in
the ``sync`` summary, the log line and ``/api/v1/syncs``).
"""

from __future__ import annotations

import math
from datetime import datetime
from html import escape
from typing import Any, Optional

from terrafusion_agent.timeutil import format_duration, parse

#: plain words for the health states, and their colours
STATES = {"pass": ("Working normally", "#2e7d32"), "warn": ("Needs attention", "#ef6c00"),
          "fail": ("Not working", "#c62828")}
#: plain words for a run's result, and its colour in the chart and the table
RESULTS = {"success": ("succeeded", "#2e7d32"), "failed": ("failed", "#c62828"),
           "cancelled": ("cancelled", "#757575"), "running": ("running", "#1565c0")}
#: who started a run
TRIGGERS = {"schedule": "on schedule", "api": "asked through the API",
            "cli": "command line", "plugin": "QGIS plugin", "manual": "by hand",
            "recover": "recover"}
#: what each health check looks at, in plain words
CHECKS = {"local:reachable": "Local copy", "central:reachable": "Central database",
          "sync:freshness": "Sync schedule", "sync:result": "Last sync",
          "sync:conflicts": "Conflicts", "sync:rejected": "Rows refused by central"}
CHART_WIDTH = 640
CHART_HEIGHT = 220
#: the plot inside the chart: room on the left for the seconds, below for the times
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 12, 12, 44


def _e(value: Any) -> str:
    return escape("—" if value is None else str(value))


def count(value: Any) -> str:
    """A count with thousands separators (``12,345``); a dash when unknown."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    return f"{value:,}"


def ago(when: Optional[datetime], now: datetime) -> str:
    """``3 min ago`` (or ``in 4 min`` for a time to come)."""
    if when is None:
        return ""
    seconds = (now - when).total_seconds()
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        amount = f"{int(seconds)} s"
    elif seconds < 3600:
        amount = f"{int(seconds // 60)} min"
    elif seconds < 48 * 3600:
        amount = f"{int(seconds // 3600)} h"
    else:
        amount = f"{int(seconds // 86400):,} days"
    if seconds < 5:
        return "just now"
    return f"in {amount}" if future else f"{amount} ago"


def local_time(stamp: Optional[str], now: datetime, relative: bool = True) -> str:
    """A stored UTC time as this machine's local time, with how long ago it was:
    ``2026-12-02 14:03:12 PST (3 min ago)``; a dash when there is none."""
    when = parse(stamp)
    if when is None:
        return "—"
    shown = when.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return f"{shown} ({ago(when, now)})" if relative else shown


def axis_ticks(top: float, most: int = 5) -> list[float]:
    """Round tick values from 0 up to at least ``top``: steps of 1, 2 or 5 times a power
    of ten, at most ``most`` of them."""
    if top <= 0:
        return [0.0, 1.0]
    step = 10 ** math.floor(math.log10(top / most))
    for factor in (1, 2, 5, 10):
        if math.ceil(top / (factor * step) - 1e-9) <= most:
            step *= factor
            break
    n = max(1, math.ceil(top / step - 1e-9))
    return [round(i * step, 10) for i in range(n + 1)]


def _seconds_label(value: float) -> str:
    return f"{value:,.0f} s" if value >= 10 or value == 0 else f"{value:g} s"


def duration_chart(runs: list[dict[str, Any]]) -> str:
    """An SVG bar chart of finished runs' durations, oldest left, with a seconds axis
    and the runs' start times below; the bar's colour tells the result."""
    runs = [r for r in reversed(runs) if r.get("duration_seconds") is not None]
    if not runs:
        return '<p class="muted">No finished sync yet.</p>'
    width, height = CHART_WIDTH - _LEFT - _RIGHT, CHART_HEIGHT - _TOP - _BOTTOM
    ticks = axis_ticks(max(float(r["duration_seconds"]) for r in runs))
    top = ticks[-1]
    base = _TOP + height
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
             f'height="{CHART_HEIGHT}" role="img" font-size="11" '
             f'aria-label="Duration in seconds of the last {len(runs)} syncs">']
    for i, value in enumerate(ticks):  # the seconds axis: ticks and light grid lines
        y = base - height * value / top
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + width}" y2="{y:.1f}" '
                     f'stroke="{"#999" if i == 0 else "#e4e4e4"}"/>'
                     f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#444">'
                     f'{escape(_seconds_label(value))}</text>')
    parts.append(f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{base}" stroke="#999"/>'
                 f'<text transform="translate(14 {_TOP + height / 2:.0f}) rotate(-90)" '
                 f'text-anchor="middle" fill="#444">duration (seconds)</text>')
    slot = width / len(runs)
    bar = max(1.0, slot * 0.8)
    for i, run in enumerate(runs):
        seconds = float(run["duration_seconds"])
        h = max(1.0, height * seconds / top)
        x = _LEFT + i * slot + (slot - bar) / 2
        word, colour = RESULTS.get(str(run.get("result")), (str(run.get("result")), "#757575"))
        parts.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>sync {_e(run.get("id"))} {escape(word)}: '
            f'{escape(format_duration(seconds))}, started '
            f'{_e(local_time(run.get("started_at"), _now_of(run), relative=False))}'
            f'</title></rect>')
    first, last = runs[0], runs[-1]
    label_y = base + 16
    parts.append(
        f'<text x="{_LEFT}" y="{label_y}" fill="#444">'
        f'{_e(local_time(first.get("started_at"), _now_of(first), relative=False))}</text>'
        f'<text x="{_LEFT + width}" y="{label_y}" text-anchor="end" fill="#444">'
        f'{_e(local_time(last.get("started_at"), _now_of(last), relative=False))}</text>'
        f'<text x="{_LEFT + width / 2:.0f}" y="{label_y + 16}" text-anchor="middle" '
        f'fill="#444">sync runs by start time, oldest to newest</text></svg>')
    legend = " ".join(
        f'<span class="key" style="background:{colour}"></span>{escape(word)}'
        for result, (word, colour) in RESULTS.items() if result != "running"
        and any(r.get("result") == result for r in runs))
    return "".join(parts) + f'<p class="muted">{legend}</p>'


def _now_of(run: dict[str, Any]) -> datetime:
    # only for labels without "ago": any time will do
    return parse(run.get("started_at")) or datetime.now().astimezone()


def _row(label: str, value: str, cls: Optional[str] = None) -> str:
    """A row of the summary table; ``value`` is HTML already escaped."""
    attr = f' class="{cls}"' if cls else ""
    return f"<tr><th>{escape(label)}</th><td{attr}>{value}</td></tr>"


def _last_sync(last: dict[str, Any], now: datetime) -> str:
    word = RESULTS.get(str(last.get("result")), (str(last.get("result")), ""))[0]
    text = (f"{escape(word)} {escape(local_time(last.get('finished_at'), now))}, "
            f"pulled {count(last.get('pulled'))}, pushed {count(last.get('pushed'))}, "
            f"conflicts {count(last.get('conflicts'))}")
    seconds = last.get("duration_seconds")
    if seconds is not None:
        text += f", took {escape(format_duration(seconds))}"
    return text


def table_lines(tables: list[dict[str, Any]], last_success: Optional[str],
                now: datetime) -> str:
    """One line per synced table: rows in the local copy, its last pull (a successful
    sync pulls every table, with or without changes), its last rows pulled."""
    if not tables:
        return '<p class="muted">No synced table yet.</p>'
    items = []
    for t in tables:
        pulled = max((s for s in (t.get("pulled_at"), last_success) if s),
                     key=lambda s: parse(s) or now, default=None)
        if t.get("rows") is None:
            items.append(f"<li><b>{_e(t['table'])}</b>: not copied yet</li>")
            continue
        line = (f"<b>{_e(t['table'])}</b>: {count(t['rows'])} rows; "
                f"last pull {escape(local_time(pulled, now))}")
        if t.get("rows_pulled_at"):
            line += (f"; last changes pulled {escape(local_time(t['rows_pulled_at'], now))}: "
                     f"{count(t.get('rows_pulled'))} rows")
        items.append(f"<li>{line}</li>")
    return '<ul class="tables">' + "".join(items) + "</ul>"


def render(body: dict[str, Any], runs: list[dict[str, Any]],
           tables: Optional[list[dict[str, Any]]] = None) -> str:
    """The page for a health ``body``, recent ``runs`` (newest first, as
    ``/api/v1/syncs`` gives them) and the per-table figures ``tables``."""
    now = parse(body.get("time")) or datetime.now().astimezone()
    status = str(body.get("status"))
    state, colour = STATES.get(status, (status, "#333"))
    last = body.get("last_sync") or {}
    running = body.get("sync_running")
    started_by = str((running or {}).get("trigger"))
    problems = [
        f"<b>{escape(CHECKS.get(name, name))}</b>: "
        f"{_e(check[0].get('output') or 'needs a look')}"
        for name, check in (body.get("checks") or {}).items()
        if check and check[0].get("status") != "pass"
    ]
    reachable = body.get("central_reachable")
    rows = "".join([
        _row("Agent", f"TerraFusion agent {_e(body.get('version'))}"),
        _row("Central database", f"{_e(body.get('central'))} "
             f"({'reachable' if reachable else 'not reachable'})",
             None if reachable else "bad"),
        _row("Local copy", _e(body.get("local_path"))),
        _row("Syncing now",
             f"yes ({escape(TRIGGERS.get(started_by, started_by))}"
             f", started {escape(local_time(running.get('started_at'), now))})"
             if running else "no"),
        _row("Last sync", _last_sync(last, now) if last else "none yet"),
        _row("Last successful sync", escape(local_time(body.get("last_success"), now))),
        _row("Next sync", escape(local_time(body.get("next_sync"), now))),
        _row("Sync interval", escape(format_interval(body.get("interval_seconds")))),
        _row("Local edits waiting to be pushed", count(body.get("pending_local_edits"))),
        _row("Conflicts waiting for a decision", count(body.get("open_conflicts"))),
        _row("Edits refused by central", count(body.get("rejected_rows"))),
        _row("Failed syncs in a row", count(body.get("consecutive_failures"))),
    ])
    run_rows = "".join(_run_row(r, now) for r in runs[:15])
    problem_list = ("<ul>" + "".join(f"<li>{p}</li>" for p in problems) + "</ul>"
                    if problems else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TerraFusion agent: {escape(state)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 64em; }}
h1 {{ font-size: 1.3em; }} h2 {{ font-size: 1.1em; margin-top: 1.5em; }}
.state {{ color: #fff; background: {colour}; padding: .1em .5em; border-radius: .3em; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: .2em .8em .2em 0; }}
.runs td, .runs th {{ border-bottom: 1px solid #ddd; font-size: 13px; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.muted {{ color: #777; }} .bad {{ color: #c62828; }}
.key {{ display: inline-block; width: .8em; height: .8em; margin: 0 .3em 0 .8em; }}
</style></head>
<body>
<h1>TerraFusion agent <span class="state">{escape(state)}</span></h1>
{problem_list}
<table>{rows}</table>
<h2>Synced tables</h2>
{table_lines(tables or [], body.get("last_success"), now)}
<h2>Recent sync durations</h2>
{duration_chart(runs)}
<h2>Recent syncs</h2>
<table class="runs"><tr><th>#</th><th>started</th><th>started by</th><th>result</th>
<th class="num">duration</th><th class="num">pulled</th><th class="num">pushed</th>
<th class="num">conflicts</th><th>error</th></tr>
{run_rows}</table>
<p class="muted">Times are this computer's local time. Machine-readable:
<a href="/health">/health</a>, <a href="/metrics">/metrics</a>,
<a href="/api/v1/syncs">/api/v1/syncs</a>, <a href="/openapi.json">/openapi.json</a>.
Updated {escape(local_time(body.get("time"), now, relative=False))}; this page reloads
every 30 s.</p>
</body></html>
"""


def _run_row(r: dict[str, Any], now: datetime) -> str:
    word, colour = RESULTS.get(str(r.get("result")), (str(r.get("result")), "#333"))
    trigger = str(r.get("trigger"))
    seconds = r.get("duration_seconds")
    return (f"<tr><td>{_e(r.get('id'))}</td>"
            f"<td>{escape(local_time(r.get('started_at'), now))}</td>"
            f"<td>{escape(TRIGGERS.get(trigger, trigger))}</td>"
            f'<td style="color:{colour}">{escape(word)}</td>'
            f'<td class="num">{escape(format_duration(seconds)) if seconds is not None else "—"}'
            f'</td><td class="num">{count(r.get("pulled"))}</td>'
            f'<td class="num">{count(r.get("pushed"))}</td>'
            f'<td class="num">{count(r.get("conflicts"))}</td>'
            f"<td>{escape(str(r.get('error') or ''))}</td></tr>")


def format_interval(seconds: Any) -> str:
    """``every 5 min`` (or ``every 90 s``)."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "—"
    if seconds >= 60 and seconds % 60 == 0:
        return f"every {int(seconds // 60):,} min"
    return f"every {seconds:,} s"
