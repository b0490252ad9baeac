"""Export jobs (the API's /api/v1/exports): queued, recorded, cancellable, counted; and the
CLI's progress and Ctrl+C. A bigger county, so that an export lasts long enough to stop."""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AgentEnv, synced_county
from terrafusion_agent import config as config_mod
from terrafusion_agent.errors import BadRequest, ExportError, InvalidExport, NotFound
from terrafusion_agent.export import add_listener, jobs, publish, remove_listener

PARCELS = 20_000


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> AgentEnv:
    return synced_county(tmp_path_factory.mktemp("county"), PARCELS)


@pytest.fixture
def config(county):
    return config_mod.load(county.config)


@pytest.fixture(autouse=True)
def _no_jobs_left():
    yield
    jobs.shutdown(timeout=30)


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def job_rows(config) -> list[tuple]:
    with sqlite3.connect(config.local_path) as conn:
        return conn.execute("SELECT id, status, features, bytes, duration_seconds, error, "
                            "started_at, finished_at FROM tf_export_jobs ORDER BY id").fetchall()


def wait_until_writing(config, job_id, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = jobs.get(config, job_id)
        if state["status"] == "running" and state.get("progress", {}).get("bytes_written"):
            return state
        assert state["status"] in ("pending", "running"), state
        time.sleep(0.05)
    raise AssertionError("the job never started writing")


def test_a_job_completes_with_features_and_bytes_recorded(config, out):
    target = out / "districts.gpkg"
    job_id = jobs.submit(config, {"table": "districts", "format": "gpkg", "out": str(target)})
    state = jobs.wait(config, job_id, timeout=60)
    assert state["status"] == "completed", state
    (count,) = sqlite3.connect(config.local_path).execute(
        "SELECT count(*) FROM districts").fetchone()
    assert state["features"] == count > 0
    assert state["bytes"] == target.stat().st_size
    row = [r for r in job_rows(config) if r[0] == job_id][0]
    assert row[1:4] == ("completed", count, target.stat().st_size)
    assert row[4] > 0 and row[5] is None and row[6] and row[7]
    assert jobs.get(config, str(job_id))["out"] == str(target)


def test_cancelling_a_running_job_stops_it_and_leaves_no_file(config, out):
    job_id = jobs.submit(config, {"table": "parcels", "format": "geojson",
                                  "out": str(out / "parcels.geojson")})
    wait_until_writing(config, job_id)
    jobs.cancel(config, job_id)
    # how soon GDAL's read is interrupted is measured by make bench (bench_export)
    state = jobs.wait(config, job_id, timeout=30)
    assert state["status"] == "cancelled", state
    assert list(out.iterdir()) == []
    assert [r[1] for r in job_rows(config) if r[0] == job_id] == ["cancelled"]


def test_a_job_cancelled_while_waiting_never_runs(config, out):
    first = jobs.submit(config, {"table": "parcels", "format": "kml", "out": str(out / "a.kml")})
    second = jobs.submit(config, {"table": "districts", "format": "csv",
                                  "out": str(out / "b.csv")})
    assert jobs.get(config, second)["status"] == "pending"
    assert jobs.cancel(config, second)["status"] in ("pending", "cancelled")
    jobs.cancel(config, first)
    assert jobs.wait(config, second, timeout=30)["status"] == "cancelled"
    assert jobs.wait(config, first, timeout=30)["status"] == "cancelled"
    assert jobs.get(config, second)["started_at"] is None
    assert list(out.iterdir()) == []


def test_a_failed_job_leaves_no_file(config, out, monkeypatch):
    def disk_full(folder, packed):
        packed.write_bytes(b"PK half a zip")
        raise ExportError("No space left on device.")

    monkeypatch.setattr(publish, "zip_shapefile", disk_full)
    job_id = jobs.submit(config, {"table": "districts", "format": "shp",
                                  "out": str(out / "districts.zip")})
    state = jobs.wait(config, job_id, timeout=60)
    assert state["status"] == "failed"
    assert "No space left" in state["error"]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("body, fragment", [
    ([], "JSON object"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x.gpkg", "color": "red"}, "color"),
    ({"table": "parcels", "format": "gpkg"}, "'out'"),
    ({"format": "gpkg", "out": "/tmp/x.gpkg"}, "'table' or a 'preset'"),
    ({"table": "parcels", "format": "gpkg", "out": "x.gpkg"}, "absolute"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x.gpkg", "fields": 3}, "fields"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x.gpkg", "overwrite": "yes"},
     "overwrite"),
    ({"table": "parcels", "format": "dwg", "out": "/tmp/x.dwg"}, "dwg"),
    ({"table": "permits", "format": "gpkg", "out": "/tmp/x.gpkg"}, "permits"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x.gpkg", "crs": "EPSG:0"}, "EPSG:0"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x.gpkg", "where": "acres >>"},
     "acres >>"),
    ({"table": "parcels", "format": "gpkg", "out": "/no/such/folder/x.gpkg"}, "does not exist"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x\0.gpkg"}, "'out' contains a NUL"),
    ({"table": "parcels", "format": "gpkg", "out": "/tmp/x.gpkg", "where": "1\0"},
     "'where' contains a NUL"),
])
def test_invalid_requests_are_refused_before_a_job_exists(config, body, fragment):
    before = len(job_rows(config)) if Path(config.local_path).exists() else 0
    with pytest.raises(InvalidExport) as caught:
        jobs.submit(config, body)
    assert isinstance(caught.value, BadRequest)  # the API answers 4xx
    message = str(caught.value)
    assert fragment in message and message.endswith(".") and "\n" not in message
    assert len(job_rows(config)) == before


@pytest.mark.parametrize("job_id", [987654, "no-such-job", "0", "-3", 2**70])
def test_an_unknown_job_is_not_found(config, job_id):
    with pytest.raises(NotFound):
        jobs.get(config, job_id)
    with pytest.raises(NotFound):
        jobs.cancel(config, job_id)


def test_listeners_count_every_job_result(config, out):
    events = []
    add_listener(events.append)
    try:
        done = jobs.submit(config, {"table": "districts", "format": "fgb",
                                    "out": str(out / "d.fgb")})
        jobs.wait(config, done, timeout=60)
        slow = jobs.submit(config, {"table": "parcels", "format": "kml",
                                    "out": str(out / "p.kml")})
        waiting = jobs.submit(config, {"table": "sales", "format": "csv",
                                       "out": str(out / "s.csv")})
        jobs.cancel(config, waiting)
        jobs.cancel(config, slow)
        jobs.wait(config, waiting, timeout=30)
    finally:
        remove_listener(events.append)
    results = [(e["format"], e["result"]) for e in events]
    assert results == [("fgb", "completed"), ("kml", "cancelled"), ("csv", "cancelled")]
    assert events[0]["features"] > 0 and events[0]["duration_seconds"] > 0


def test_jobs_are_listed_newest_first(config, out):
    ids = [jobs.submit(config, {"table": "districts", "format": "csv",
                                "out": str(out / f"d{i}.csv")}) for i in range(3)]
    for job_id in ids:
        jobs.wait(config, job_id, timeout=60)
    listed = [j["id"] for j in jobs.list_jobs(config, limit=3)]
    assert listed == ids[::-1]


def test_a_job_left_running_by_a_dead_process_is_failed_and_cleaned(config, out):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = out / "p.geojson"
    leftover = out / ".p.geojson.tf-0badf00d.geojson"
    leftover.write_text("{half")
    with sqlite3.connect(config.local_path) as conn:
        job_id = conn.execute(
            "INSERT INTO tf_export_jobs (status, table_name, format, out_path, request_json, "
            "trigger, pid, created_at, started_at) VALUES ('running', 'parcels', 'geojson', "
            "?, '{}', 'api', ?, '2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z')",
            (str(target), dead.pid)).lastrowid
    jobs.shutdown()  # the next use of jobs is a fresh start of the agent
    state = jobs.get(config, job_id)
    assert state["status"] == "failed"
    assert "stopped" in state["error"]
    assert not leftover.exists()


# --- the CLI on a terminal --------------------------------------------------------------


def test_the_cli_shows_progress_on_a_terminal(county, out):
    master, slave = pty.openpty()
    target = out / "parcels.geojson"
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(county.config), "export",
         "parcels", "--format", "geojson", "--out", str(target)],
        stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    stdout, _ = proc.communicate(timeout=300)
    terminal = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(master)
    assert proc.returncode == 0
    assert json.loads(stdout)["features"] == PARCELS
    text = terminal.decode()
    assert "writing" in text and "%" in text and "\r" in text, text


def _terminal_ctrl_c() -> None:
    """In the child: Ctrl+C as a shell hands it to a command, whatever earlier tests in
    this long-lived pytest process did to its own SIGINT (ignored or blocked signals are
    inherited, and then the CLI never sees one)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _writing(folder: Path, prefix: str) -> bool:
    """Whether a temp file named ``prefix``... in ``folder`` holds bytes yet. The export
    first proves the folder writable with a probe file it removes at once: a file listed
    may be gone before it is looked at."""
    for path in folder.iterdir():
        try:
            if path.name.startswith(prefix) and path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            continue
    return False


def test_ctrl_c_stops_the_cli_and_leaves_no_file(county, out):
    target = out / "parcels.kml"
    # a filter that costs a few milliseconds a row keeps the export running for seconds
    # after its temp file appears, however busy the machine
    slow = "length(hex(zeroblob(20000 + prop_id % 2))) > 0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(county.config), "export",
         "parcels", "--format", "kml", "--out", str(target), "--where", slow],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_terminal_ctrl_c)
    deadline = time.monotonic() + 60
    while not _writing(out, ".parcels.kml.tf-"):
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(out.iterdir()) == []


# --- the API's cancel route, on a running agent ------------------------------------------


def test_the_api_cancels_a_running_export_and_removes_its_partial_file(county, out, tmp_path):
    """A real agent paused at the fault point export.before_rows (its temporary file made,
    no row written yet): POST /api/v1/exports/{id}/cancel stops it; the job ends
    cancelled, nothing is left in the folder, and a second cancel answers with the
    finished job unchanged."""
    from service_helpers import get, post, read_token, start_process, stop_process, wait_for

    pause = tmp_path / "pause"
    reached, go = tmp_path / "pause.reached", tmp_path / "pause.go"
    proc, base = start_process(county.config, env={
        "TERRAFUSION_FAULT": "export.before_rows", "TERRAFUSION_FAULT_PAUSE": str(pause)},
        interval=None)
    try:
        token = read_token(county.config.parent)
        submitted = post(base + "/api/v1/exports", {
            "table": "parcels", "format": "gpkg", "out": str(out / "parcels.gpkg")},
            token=token)
        assert submitted.status == 202, submitted
        job_id = submitted.json["id"]
        wait_for(reached.exists, 60, "the export to reach export.before_rows")
        assert get(f"{base}/api/v1/exports/{job_id}").json["status"] == "running"
        assert list(out.iterdir()), "the export's temporary file exists"

        assert post(f"{base}/api/v1/exports/{job_id}/cancel").status == 401  # no token
        unknown = post(f"{base}/api/v1/exports/{job_id + 1000}/cancel", token=token)
        assert unknown.status == 404 and unknown.json["error"]
        stopping = post(f"{base}/api/v1/exports/{job_id}/cancel", token=token)
        assert stopping.status == 202, stopping
        assert stopping.json["id"] == job_id
        assert stopping.headers["Location"] == f"/api/v1/exports/{job_id}"

        go.touch()  # GDAL goes on, and the cancel stops it
        state = wait_for(lambda: (lambda s: s if s["status"] not in ("pending", "running")
                                  else None)(get(f"{base}/api/v1/exports/{job_id}").json),
                         60, "the job to end")
        assert state["status"] == "cancelled", state
        assert list(out.iterdir()) == []

        again = post(f"{base}/api/v1/exports/{job_id}/cancel", token=token)
        assert again.status == 200 and again.json["status"] == "cancelled"
        assert again.json["finished_at"] == state["finished_at"]
    finally:
        stop_process(proc)


def test_cancelling_a_finished_job_leaves_it_as_it_was(config, out):
    from terrafusion_agent import api

    job_id = jobs.submit(config, {"table": "districts", "format": "csv",
                                  "out": str(out / "districts.csv")})
    done = jobs.wait(config, job_id, timeout=60)
    assert done["status"] == "completed"
    assert api.cancel_export(config, job_id) == jobs.get(config, job_id)
    assert jobs.get(config, job_id)["status"] == "completed"
    assert (out / "districts.csv").exists()
    with pytest.raises(NotFound):
        api.cancel_export(config, job_id + 1000)
