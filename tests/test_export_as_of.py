"""Exports as of a past moment: the table as it stood then, rebuilt from central's history.

A copy of the parcels is saved from central at a moment T; then rows are updated (one
twice), deleted and inserted, a geometry moved, and the local copy synced, so that the
table as it is differs from the copy in every way a history can get wrong. An export as
of T equals the copy in every feature's attributes and geometry (PostGIS in gpkg and
geojson, the embedded SQLite central in gpkg), with filters, fields, presets, a CRS and
overwrite working as usual. A time before the history starts, to come, or not a time is
one sentence; a cancel (also one that lands while central is still answering), Ctrl+C or
a full disk leaves neither the file nor the rebuilt table behind; the API takes
``"as_of"``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from as_of_support import FIELDS, Changed, changed_county
from conftest import AgentEnv, embedded_agent, write_config
from osgeo import gdal, ogr, osr
from terrafusion_agent.errors import ExportCancelled, ExportError, InvalidExport

PRESET = """
[export.presets.public_parcels]
table = "parcels"
format = "geojson"
fields = ["prop_id", "owner_name", "market_value"]
renames = { owner_name = "owner" }
where = "market_value > 250000"
filename = "public_{table}.gpkg"
"""


# --- a county whose parcels changed after a moment ---------------------------------------


@pytest.fixture
def pg_county(pg_agent) -> Changed:
    return changed_county(pg_agent)


@pytest.fixture
def sqlite_county(tmp_path) -> Changed:
    return changed_county(embedded_agent(tmp_path / "embedded"))


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# --- reading what was written --------------------------------------------------------------


def features(path: Path, fmt: str) -> tuple[dict[int, tuple[dict, ogr.Geometry]], int]:
    """The file's features by prop_id (attributes, geometry) and its layer's EPSG code."""
    ds = gdal.OpenEx(str(path), gdal.OF_VECTOR)
    assert ds is not None, path
    layer = ds.GetLayer(0)
    out = {}
    for feature in layer:
        attrs = feature.items()
        if fmt == "gpkg" and layer.GetFIDColumn() == "prop_id":
            attrs["prop_id"] = feature.GetFID()
        geom = feature.GetGeometryRef()
        out[int(attrs["prop_id"])] = (attrs, geom.Clone() if geom else None)
    srs = layer.GetSpatialRef()
    epsg = int(srs.GetAuthorityCode(None)) if srs is not None else None
    return out, epsg


def same_value(written, expected) -> bool:
    if expected is None:
        return written in (None, "")
    if isinstance(expected, (int, float)) or type(expected).__name__ == "Decimal":
        return written not in (None, "") and float(written) == pytest.approx(float(expected))
    return str(written) == str(expected)


def vertices(geom: ogr.Geometry) -> list[tuple[float, float]]:
    if geom.GetGeometryCount() == 0:
        return [p[:2] for p in geom.GetPoints() or []]
    return [v for i in range(geom.GetGeometryCount()) for v in vertices(geom.GetGeometryRef(i))]


def in_wgs84(wkb: bytes) -> ogr.Geometry:
    geom = ogr.CreateGeometryFromWkb(wkb)
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(2927)
    dst.ImportFromEPSG(4326)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    geom.Transform(osr.CoordinateTransformation(src, dst))
    return geom


def assert_same_geometry(written: ogr.Geometry, wkb: bytes, epsg: int) -> None:
    assert written is not None
    if epsg == 2927:
        assert written.ExportToWkb() == ogr.CreateGeometryFromWkb(wkb).ExportToWkb()
        return
    got, want = vertices(written), vertices(in_wgs84(wkb))
    assert len(got) == len(want)
    for (x, y), (ex, ey) in zip(sorted(got), sorted(want)):
        assert abs(x - ex) < 1e-6 and abs(y - ey) < 1e-6, ((x, y), (ex, ey))


def assert_equals_copy(path: Path, fmt: str, copy: dict[int, dict],
                       fields: list[str] = FIELDS,
                       renames: dict[str, str] | None = None) -> None:
    """Every feature of the file is the saved copy's row, and nothing else is there."""
    renames = renames or {}
    written, epsg = features(path, fmt)
    assert sorted(written) == sorted(copy)
    for key, row in copy.items():
        attrs, geom = written[key]
        assert sorted(attrs) == sorted(renames.get(f, f) for f in fields), attrs
        for name in fields:
            assert same_value(attrs[renames.get(name, name)], row[name]), (key, name, attrs)
        assert_same_geometry(geom, row["geom"], epsg)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def assert_one_sentence(proc, *fragments: str, code: int = 1) -> None:
    """One sentence on stderr and exit ``code``: 2 for a bad argument, 1 for a failure."""
    assert proc.returncode == code, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(err.splitlines()) == 1 and err.endswith("."), err
    for fragment in fragments:
        assert fragment in err, err


# --- the table as it stood -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["gpkg", "geojson"])
def test_an_export_as_of_a_moment_equals_a_copy_saved_then_on_postgis(pg_county, out, fmt):
    target = out / f"parcels-then.{fmt}"
    proc = pg_county.env.run("export", "parcels", "--format", fmt, "--out", str(target),
                             "--as-of", pg_county.at)
    summary = json.loads(proc.stdout)
    assert summary["as_of"] == pg_county.at
    assert summary["features"] == len(pg_county.before)
    assert_equals_copy(target, fmt, pg_county.before)
    assert listing(out) == [target.name]  # the rebuilt table went with the export


def test_an_export_as_of_a_moment_equals_a_copy_saved_then_on_the_embedded_central(
        sqlite_county, out):
    target = out / "parcels-then.gpkg"
    proc = sqlite_county.env.run("export", "parcels", "--format", "gpkg", "--out",
                                 str(target), "--as-of", sqlite_county.at)
    assert json.loads(proc.stdout)["as_of"] == sqlite_county.at
    assert_equals_copy(target, "gpkg", sqlite_county.before)
    assert listing(out) == [target.name]


def test_without_as_of_the_same_export_is_the_table_as_it_is(pg_county, out):
    # the other side of the tests above: the copy is not what the table holds now
    target = out / "parcels-now.gpkg"
    proc = pg_county.env.run("export", "parcels", "--format", "gpkg", "--out", str(target))
    assert json.loads(proc.stdout)["as_of"] is None
    assert_equals_copy(target, "gpkg", pg_county.after)


def test_filter_and_fields_apply_to_the_rows_as_they_stood(pg_county, out):
    target = out / "valuable.geojson"
    fields = ["prop_id", "owner_name", "market_value"]
    proc = pg_county.env.run("export", "parcels", "--format", "geojson", "--out", str(target),
                             "--where", "market_value > 250000", "--fields", ",".join(fields),
                             "--as-of", pg_county.at)
    expected = {k: r for k, r in pg_county.before.items() if float(r["market_value"]) > 250000}
    now = {k for k, r in pg_county.after.items() if float(r["market_value"]) > 250000}
    assert expected and set(expected) != now  # the changes after T matter to this filter
    assert json.loads(proc.stdout)["features"] == len(expected)
    assert_equals_copy(target, "geojson", expected, fields)


def test_a_preset_a_crs_and_overwrite_work_as_of_a_moment(pg_county, out, tmp_path):
    env = AgentEnv(pg_county.env.dir, write_config(tmp_path / "preset", pg_county.env.central_url,
                                                   PRESET), pg_county.env.central_url)
    text = env.config.read_text().replace('path = "local.sqlite"',
                                          f'path = "{pg_county.env.local_path}"')
    env.config.write_text(text)
    target = out / "public_parcels.gpkg"
    target.write_text("an older export")
    proc = env.run("export", "--preset", "public_parcels", "--format", "gpkg", "--crs",
                   "EPSG:4326", "--out", str(out), "--overwrite", "--as-of", pg_county.at)
    summary = json.loads(proc.stdout)
    assert summary["preset"] == "public_parcels" and summary["crs"] == "EPSG:4326"
    expected = {k: r for k, r in pg_county.before.items() if float(r["market_value"]) > 250000}
    assert_equals_copy(target, "gpkg", expected, ["prop_id", "owner_name", "market_value"],
                       {"owner_name": "owner"})
    assert listing(out) == [target.name]


# --- refusals --------------------------------------------------------------------------------


def test_a_moment_before_the_history_starts_is_refused_saying_when_it_starts(pg_county, out):
    proc = pg_county.env.run("export", "parcels", "--format", "gpkg", "--out",
                             str(out / "p.gpkg"), "--as-of", "2001-01-01T00:00:00",
                             check=False)
    assert_one_sentence(proc, "history", "starts", code=2)
    assert listing(out) == []


@pytest.mark.parametrize("moment, fragment", [
    ("2999-01-01T00:00:00", "in the future"),
    ("next tuesday", "not understood"),
    ("2026-02-30", "not understood"),
])
def test_a_moment_to_come_or_not_a_moment_is_one_sentence(sqlite_agent, out, moment,
                                                          fragment):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    sqlite_agent.run("sync")
    proc = sqlite_agent.run("export", "parcels", "--format", "gpkg", "--out",
                            str(out / "p.gpkg"), "--as-of", moment, check=False)
    assert_one_sentence(proc, repr(moment), fragment, code=2)
    assert listing(out) == []


def test_an_unreachable_central_is_its_usual_sentence(sqlite_agent, out):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    sqlite_agent.run("sync")
    url = "postgresql://gis@127.0.0.1:1/county"
    proc = sqlite_agent.run("export", "parcels", "--format", "gpkg", "--out",
                            str(out / "p.gpkg"), "--as-of", "2026-01-01T00:00:00",
                            check=False, env={"TERRAFUSION_CENTRAL__URL": url,
                                              "TERRAFUSION_CENTRAL__CONNECT_TIMEOUT_SECONDS": "2"})
    assert_one_sentence(proc, "cannot be reached", "127.0.0.1")
    assert listing(out) == []


def test_only_a_synced_table_has_a_history(sqlite_county, out):
    proc = sqlite_county.env.run("export", "parcels", "--format", "gpkg", "--out",
                                 str(out / "p.gpkg"), "--as-of", sqlite_county.at,
                                 check=False, env={"TERRAFUSION_SYNC__TABLES": "districts"})
    assert_one_sentence(proc, "'parcels'", "not synced", code=2)
    assert listing(out) == []


# --- progress, cancel, Ctrl+C, a full disk: nothing left behind ------------------------------


def held_history(monkeypatch, store_class, hold):
    """``store_class.rows_as_of`` as it is, but ``hold(store)`` runs first, in the thread
    that rebuilds the table: where a test stands in for a slow answer from central."""
    real = store_class.rows_as_of

    def rows_as_of(self, info, at):
        hold(self)
        yield from real(self, info, at)

    monkeypatch.setattr(store_class, "rows_as_of", rows_as_of)


def test_progress_covers_the_rebuild_then_the_write(sqlite_county, out, monkeypatch):
    from terrafusion_agent.export import ExportRequest, export_table
    from terrafusion_agent.stores.sqlite_central import SpatiaLiteCentral

    seen, rebuilding = [], threading.Event()

    def progress(p) -> None:
        seen.append(p)
        if p.stage == "history":
            rebuilding.set()

    # central answers only once the rebuild has been reported: so it always is
    held_history(monkeypatch, SpatiaLiteCentral, lambda store: rebuilding.wait(30))
    result = export_table(sqlite_county.config(), ExportRequest(
        table="parcels", format="geojson", out=str(out / "p.geojson"), as_of=sqlite_county.at),
        progress=progress)

    stages = [p.stage for p in seen]
    rebuilt = max(i for i, s in enumerate(stages) if s == "history")
    assert stages[0] == "history" and stages[-1] == "done", stages
    assert "history" not in stages[rebuilt + 1:] and len(stages) > rebuilt + 1, stages
    fractions = [p.fraction for p in seen if p.fraction is not None]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(p.fraction is None or p.fraction <= 0.5 for p in seen if p.stage == "history")
    assert all(p.fraction is None or p.fraction >= 0.5 for p in seen if p.stage != "history")
    assert result.as_of == sqlite_county.at and result.features == len(sqlite_county.before)


def test_a_cancel_while_central_answers_stops_it_and_leaves_nothing(pg_county, out,
                                                                    monkeypatch):
    import psycopg
    from terrafusion_agent.export import ExportRequest, export_table
    from terrafusion_agent.stores.postgis import PostGISCentral

    asking, stopped = threading.Event(), []

    def slow_answer(store) -> None:
        asking.set()
        try:  # a history query that takes its time on the server
            store.conn.execute("SELECT pg_sleep(120)")
        except psycopg.errors.QueryCanceled:
            stopped.append("the server cancelled the statement")
            raise

    held_history(monkeypatch, PostGISCentral, slow_answer)
    with pytest.raises(ExportCancelled, match="cancelled"):
        export_table(pg_county.config(), ExportRequest(
            table="parcels", format="gpkg", out=str(out / "p.gpkg"), as_of=pg_county.at),
            cancel=asking.is_set)
    assert stopped == ["the server cancelled the statement"]
    assert listing(out) == []


def test_cancelling_an_as_of_job_leaves_no_file_and_no_rebuilt_table(pg_county, out,
                                                                    monkeypatch):
    from terrafusion_agent.export import jobs
    from terrafusion_agent.stores.postgis import PostGISCentral

    config = pg_county.config()
    held_history(monkeypatch, PostGISCentral,
                 lambda store: store.conn.execute("SELECT pg_sleep(120)"))
    try:
        job_id = jobs.submit(config, {"table": "parcels", "format": "geojson",
                                      "out": str(out / "p.geojson"), "as_of": pg_county.at})
        deadline = time.monotonic() + 60
        while (jobs.get(config, job_id).get("progress") or {}).get("stage") != "history":
            assert time.monotonic() < deadline, jobs.get(config, job_id)
            time.sleep(0.05)
        assert any(p.name.startswith(".p.geojson.tf-as-of-") for p in out.iterdir())
        jobs.cancel(config, job_id)
        state = jobs.wait(config, job_id, timeout=60)
    finally:
        jobs.shutdown(timeout=30)
    assert state["status"] == "cancelled", state
    assert state["request"]["as_of"] == pg_county.at
    assert listing(out) == []


def test_a_rebuilt_table_left_by_a_dead_agent_is_swept_with_its_job(sqlite_county, out):
    import sqlite3

    from terrafusion_agent.export import jobs

    config = sqlite_county.config()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    target = out / "p.gpkg"
    leftover = out / ".p.gpkg.tf-as-of-k1lled00"
    leftover.mkdir()
    (leftover / "as-of.sqlite").write_bytes(b"SQLite format 3\0 half a table")
    try:
        jobs.list_jobs(config)  # the jobs table exists from here on
        jobs.shutdown()
        with sqlite3.connect(config.local_path) as conn:
            job_id = conn.execute(
                "INSERT INTO tf_export_jobs (status, table_name, format, out_path, "
                "request_json, trigger, pid, created_at, started_at) VALUES ('running', "
                "'parcels', 'gpkg', ?, '{}', 'api', ?, '2026-01-01T00:00:00Z', "
                "'2026-01-01T00:00:01Z')", (str(target), dead.pid)).lastrowid
        assert jobs.get(config, job_id)["status"] == "failed"  # the agent starts again
    finally:
        jobs.shutdown(timeout=30)
    assert listing(out) == []


def _terminal_ctrl_c() -> None:
    """In the child: Ctrl+C as a shell hands it over (see test_export_jobs)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_ctrl_c_leaves_no_file_and_no_rebuilt_table(sqlite_county, out):
    target = out / "p.kml"
    # a filter that costs some ten milliseconds a row keeps GDAL writing for seconds
    slow = ("(WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r "
            "WHERE i < 40000 + prop_id % 2) SELECT count(*) FROM r) > 0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "terrafusion_agent", "--config", str(sqlite_county.env.config),
         "export", "parcels", "--format", "kml", "--out", str(target), "--where", slow,
         "--as-of", sqlite_county.at],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_terminal_ctrl_c)
    deadline = time.monotonic() + 120

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:  # the engine's probe of the folder, already gone
            return 0

    def writing() -> bool:  # GDAL writes its temp file beside the rebuilt table's folder
        files = {p.name: p for p in out.iterdir()}
        return any(n.startswith(".p.kml.tf-as-of-") for n in files) and any(
            n.startswith(".p.kml.tf-") and not n.startswith(".p.kml.tf-as-of-")
            and size(p) > 0 for n, p in files.items())

    while not writing():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert listing(out) == []


def test_ctrl_c_while_waiting_for_a_worker_does_not_take_it_for_ended():
    """Python 3.11's Thread.join, interrupted by Ctrl+C, marks a running thread as ended;
    the engine's workers are watched by their own event instead, so Ctrl+C still stops
    GDAL (or the rebuild) before the files are removed."""
    from terrafusion_agent.export.engine import Worker

    release = threading.Event()
    worker = Worker(lambda: release.wait(60), name="held")
    worker.start()
    # Ctrl+C as an interactive Python has it: a pytest started in the background of a
    # shell inherits SIGINT ignored, and blocked threads would take it elsewhere
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    main = threading.get_ident()
    ctrl_c = threading.Timer(0.2, lambda: signal.pthread_kill(main, signal.SIGINT))
    ctrl_c.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            worker.wait(30)
        assert worker.alive()
    finally:
        ctrl_c.cancel()
        release.set()
        signal.signal(signal.SIGINT, before)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    worker.wait(30)
    assert not worker.alive()


def test_a_full_disk_where_the_table_is_rebuilt_is_the_disk_full_sentence(
        sqlite_county, small_disk):
    folder = small_disk(4 << 20)  # too small for even an empty SpatiaLite file
    proc = sqlite_county.env.run("export", "parcels", "--format", "gpkg", "--out",
                                 str(folder / "p.gpkg"), "--as-of", sqlite_county.at,
                                 check=False)
    assert_one_sentence(proc, f"The disk is full in {folder}")
    assert listing(folder) == []


def test_a_disk_that_fills_while_the_rows_arrive_leaves_nothing(sqlite_county, small_disk,
                                                              monkeypatch):
    from terrafusion_agent.export import ExportRequest, asof, export_table

    folder = small_disk(64 << 20)
    real = asof._replace

    def on_a_filling_disk(local, info, rows):
        if rows != ():  # the rows proper, after the empty table was planned
            with open(folder / "ballast", "wb") as ballast:
                try:
                    while True:
                        ballast.write(b"\0" * (1 << 16))
                        ballast.flush()
                except OSError:
                    pass  # the disk is full: the rows find no room
        return real(local, info, rows)

    monkeypatch.setattr(asof, "_replace", on_a_filling_disk)
    with pytest.raises(ExportError) as caught:
        export_table(sqlite_county.config(), ExportRequest(
            table="parcels", format="gpkg", out=str(folder / "p.gpkg"), as_of=sqlite_county.at))
    assert str(caught.value).startswith(f"The disk is full in {folder}:")
    assert listing(folder) == ["ballast"]


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize("as_of, fragment", [
    ("soon", "not understood"), ("2999-12-31T23:59:59Z", "in the future"),
    (20260101, "'as_of' must be a non-empty string"), ("", "'as_of' must be a non-empty"),
    ("2026-01-01\0", "'as_of' contains a NUL"),
    ("2001-01-01T00:00:00", "starts"),
])
def test_an_api_request_with_a_bad_as_of_is_refused_before_a_job_exists(sqlite_county, out,
                                                                       as_of, fragment):
    from terrafusion_agent.export import jobs

    config = sqlite_county.config()
    try:
        before = jobs.list_jobs(config, limit=100)
        with pytest.raises(InvalidExport) as caught:
            jobs.submit(config, {"table": "parcels", "format": "gpkg",
                                 "out": str(out / "p.gpkg"), "as_of": as_of})
        message = str(caught.value)
        assert fragment in message and message.endswith(".") and "\n" not in message
        assert jobs.list_jobs(config, limit=100) == before
    finally:
        jobs.shutdown(timeout=30)
    assert listing(out) == []


def test_the_http_api_runs_an_as_of_export_job_and_answers_422_for_a_bad_time(tmp_path):
    from service_helpers import get, post, started_agent, wait_for

    env = embedded_agent(tmp_path / "agent", "[sync]\ninterval_seconds = 300\n")
    changed = changed_county(env)
    out = tmp_path / "out"
    out.mkdir()
    with started_agent(env) as agent:
        wait_for(lambda: (get(agent.base_url + "/health").json.get("last_sync") or {}
                          ).get("result") == "success", 60, "the first sync")
        bad = post(agent.base_url + "/api/v1/exports",
                   {"table": "parcels", "format": "gpkg", "out": str(out / "p.gpkg"),
                    "as_of": "the first of january"}, token=agent.token)
        assert bad.status == 422 and bad.json["code"] == "invalid_request", bad
        assert "not understood" in bad.json["error"]
        r = post(agent.base_url + "/api/v1/exports",
                 {"table": "parcels", "format": "gpkg", "out": str(out / "p.gpkg"),
                  "as_of": changed.at}, token=agent.token)
        assert r.status == 202, r
        done = wait_for(lambda: (lambda j: j if j["status"] in ("completed", "failed",
                                                                 "cancelled") else None)(
            get(f"{agent.base_url}/api/v1/exports/{r.json['id']}").json), 120, "the job")
    assert done["status"] == "completed", done
    assert done["request"]["as_of"] == changed.at
    assert done["features"] == len(changed.before)
    assert_equals_copy(out / "p.gpkg", "gpkg", changed.before)
