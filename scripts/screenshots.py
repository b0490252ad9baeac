#!/usr/bin/env python3
"""Take the plugin's screenshots in QGIS itself, under Xvfb, with the demo county.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--parcels 3000]

Starts ``Xvfb :99`` (unless ``--display`` names a running X server) with a 1600x1000
screen, creates a demo county (a throwaway PostGIS cluster as central, a first sync, a
parcel's history written by the assessment system's import, an analyst and a GIS editor,
two real conflicts, a pending edit), starts the agent on a free port, builds the plugin zip and
installs it into a throwaway QGIS profile, then runs QGIS (``qgis --code
scripts/qgis_screenshots.py``) at the window size of a first start (80 % of the screen:
1280x800) with its default dock widths. Inside QGIS the plugin is driven as an analyst
drives it, and QGIS grabs:

    main_window.png      QGIS with the synced layers and the TerraFusion dock
    dock.png             the dock alone: agent state, Sync now, tools, recent syncs
    export.png           the Export dialog: parcels to a GeoPackage, a filter, some fields
    settings.png         the Settings dialog as the demo county's config fills it
    settings_server.png  the same for a county PostgreSQL server, its login in QGIS's
                         authentication manager (not saved)
    pending.png          the Pending edits dialog, one edit selected
    pending_on_map.png   QGIS with that edit's parcel outlined on the map
    history.png          the Feature history panel alone, for lot 7
    history_in_qgis.png  QGIS with lot 7 selected and its history beside the map
    conflicts.png        the Conflicts dialog, the conflict on lot 12 selected

Look at each one before it goes into docs/screenshots.

Everything runs in a throwaway folder; the agent and Xvfb are stopped at the end. On
failure it prints one sentence to stderr and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from pgcluster import PgCluster  # noqa: E402 - the tests' throwaway PostGIS cluster

DEFAULT_OUT = REPO / "docs" / "screenshots"
SCREEN = "1600x1000x24"


class ScreenshotError(Exception):
    """One sentence for the user."""


# --- the world around QGIS: X server, demo county, agent ----------------------------------


def start_xvfb(display: str) -> subprocess.Popen:
    if not shutil.which("Xvfb"):
        raise ScreenshotError("Xvfb is not installed (Debian: apt-get install xvfb).")
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", SCREEN, "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket_path = Path(f"/tmp/.X11-unix/X{display.lstrip(':')}")
    deadline = time.monotonic() + 10
    while not socket_path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ScreenshotError(f"Xvfb did not start on display {display}.")
        time.sleep(0.1)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent(config: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "terrafusion_agent", "--config", str(config),
                           *args], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise ScreenshotError(f"terrafusion-agent {args[0]} failed: "
                              f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return proc.stdout


def make_county(work: Path, parcels: int, port: int, central_url: str) -> Path:
    """A synced demo county on a PostGIS central, with a feature history written by three
    hands, two conflicts and one pending edit; its config file."""
    config = work / "agent.toml"
    config.write_text(
        f'[central]\nurl = "{central_url}"\n'
        f'[local]\npath = "{work / "local.sqlite"}"\n'
        f"[sync]\ninterval_seconds = 300\n[sync.table_policy]\nsales = \"central_wins\"\n"
        f"[http]\nport = {port}\n"
        f'[logging]\ndir = "{work / "logs"}"\n'
        '[export.presets.public_parcels]\ntable = "parcels"\nformat = "geojson"\n'
        'crs = "EPSG:4326"\nfields = ["geo_id", "situs_address", "market_value"]\n'
        '[export.presets.title_company]\ntable = "parcels"\nformat = "gpkg"\n'
        'fields = ["prop_id", "geo_id", "owner_name", "legal_desc", "acres"]\n',
        encoding="utf-8")
    agent(config, "init-central", "--demo-parcels", str(parcels))
    agent(config, "sync")
    import psycopg
    from terrafusion_agent.stores.spatialite import connect

    with psycopg.connect(central_url, autocommit=True) as admin:
        # the assessment system's nightly import and a GIS editor working on PostGIS in QGIS
        for role in ("assessor_import", "gis_editor"):
            admin.execute(f"CREATE ROLE {role} LOGIN")
            admin.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON parcels TO {role}")

    def central(role: str, application: str, sql: str) -> None:
        with psycopg.connect(central_url, user=role, application_name=application,
                             autocommit=True) as conn:
            conn.execute(sql)

    def local(sql: str) -> None:
        conn = connect(work / "local.sqlite")
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()

    # lot 7's story: revalued by the import, sold (the analyst's edit, pushed by the
    # agent), its boundary corrected by the GIS editor
    central("assessor_import", "ProVal nightly import",
            "UPDATE parcels SET land_value = 118400, market_value = 402600 "
            "WHERE prop_id = 100007")
    local("UPDATE parcels SET owner_name = 'OKAFOR CHIDI & ADAEZE' WHERE prop_id = 100007")
    agent(config, "sync")
    central("gis_editor", "QGIS", "UPDATE parcels SET geom = ST_Multi(ST_Buffer("
            "ST_Translate(geom, 6, 0), 0)), acres = round((ST_Area(geom) / 43560)::numeric, 4) "
            "WHERE prop_id = 100007")
    # an analyst and a colleague both revalued lot 4; the colleague also moved lot 12
    local("UPDATE parcels SET land_value = 71500, market_value = 71500 WHERE prop_id = 100004")
    central("assessor_import", "ProVal nightly import",
            "UPDATE parcels SET land_value = 69900, market_value = 69900 "
            "WHERE prop_id = 100004")
    local("UPDATE parcels SET owner_name = 'GARCIA MARIA' WHERE prop_id = 100012")
    central("gis_editor", "QGIS", "UPDATE parcels SET owner_name = 'GARCIA-LOPEZ MARIA', "
            "geom = ST_Translate(geom, 12, -8) WHERE prop_id = 100012")
    agent(config, "sync")
    return config


def start_agent(config: Path, log: Path) -> subprocess.Popen:
    with open(log, "wb") as err:
        return subprocess.Popen([sys.executable, "-m", "terrafusion_agent", "--config",
                                 str(config), "run"], stdout=subprocess.DEVNULL, stderr=err)


# --- QGIS ---------------------------------------------------------------------------------


def install_profile(work: Path) -> Path:
    """A throwaway QGIS profiles folder whose default profile has the plugin, installed
    from the zip ``make package`` builds, enabled; returns the profiles folder."""
    zip_path = work / "terrafusion_plugin.zip"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "package_plugin.py"),
                           "--out", str(zip_path)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode != 0:
        raise ScreenshotError("the plugin zip could not be built: "
                              f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    profiles = work / "qgis-profiles"
    plugins = profiles / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(plugins)
    ini = profiles / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.parent.mkdir(parents=True)
    ini.write_text(
        "[PythonPlugins]\nterrafusion_plugin=true\n\n"
        "[locale]\noverrideFlag=true\n"
        f"userLocale={os.environ.get('TF_LOCALE', 'en_US')}\n\n"
        # the script runs its own agent; exports would go to the analyst's folder
        "[terrafusion]\nstart_agent=false\n"
        f"export_folder={Path.home() / 'exports'}\n", encoding="utf-8")
    return profiles


def run_qgis(profiles: Path, config: Path, out: Path, work: Path) -> list[str]:
    """QGIS itself (``qgis --code``) takes the screenshots; the names it wrote."""
    qgis = shutil.which("qgis")
    if not qgis:
        raise ScreenshotError("QGIS is not installed (Debian: apt-get install qgis).")
    result = work / "shots.json"
    env = dict(os.environ, TERRAFUSION_CONFIG=str(config), TF_SHOTS_OUT=str(out),
               TF_SHOTS_RESULT=str(result), TF_SHOTS_WORK=str(work))
    env.pop("PYTHONPATH", None)  # the plugin finds its agent in the zip, as a user's does
    with open(work / "qgis.log", "wb") as log:
        try:
            subprocess.run([qgis, "--profiles-path", str(profiles), "--profile", "default",
                            "--nologo", "--noversioncheck", "--code",
                            str(REPO / "scripts" / "qgis_screenshots.py")],
                           env=env, stdout=log, stderr=subprocess.STDOUT, timeout=900)
        except subprocess.TimeoutExpired:
            raise ScreenshotError("QGIS did not finish the screenshots within 15 minutes; "
                                  f"see {work / 'qgis.log'}.") from None
    if not result.exists():
        tail = (work / "qgis.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise ScreenshotError("QGIS ended without taking the screenshots: "
                              + " / ".join(tail))
    report = json.loads(result.read_text(encoding="utf-8"))
    if report.get("error"):
        raise ScreenshotError(f"QGIS could not take the screenshots: {report['error']}")
    return report["shots"]


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--parcels", type=int, default=3000)
    parser.add_argument("--display", help="use this running X display instead of Xvfb :99")
    args = parser.parse_args(argv)
    xvfb = None
    agent_proc = None
    cluster = None
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        if args.display:
            if not Path(f"/tmp/.X11-unix/X{args.display.lstrip(':')}").exists():
                raise ScreenshotError(f"No X server runs on display {args.display}.")
            os.environ["DISPLAY"] = args.display
        else:
            xvfb = start_xvfb(":99")
            os.environ["DISPLAY"] = ":99"
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp(prefix="runtime-"))
        with tempfile.TemporaryDirectory(prefix="terrafusion-screens-") as tmp:
            work = Path(tmp)
            port = free_port()
            cluster = PgCluster().start()
            config = make_county(work, args.parcels, port, cluster.create_db("county"))
            agent_proc = start_agent(config, work / "agent.log")
            profiles = install_profile(work)
            out = args.out.resolve()
            try:
                for name in run_qgis(profiles, config, out, work):
                    path = out / name
                    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
            finally:
                stop(agent_proc)  # before its folder goes away
        return 0
    except ScreenshotError as exc:
        print(f"screenshots: {exc}", file=sys.stderr)
        return 1
    finally:
        stop(agent_proc)
        stop(xvfb)
        if cluster is not None:
            cluster.stop()


def stop(proc: Optional[subprocess.Popen]) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    raise SystemExit(main())
