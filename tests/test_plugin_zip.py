"""The plugin zip built by ``scripts/package_plugin.py``: one folder with no caches or
compiled code, the agent beside its pinned third-party packages in ``ext/``, the agent's
version and what the plugin repository requires in ``metadata.txt``; then its unpacked
copy, outside this checkout, in a fresh Python: the bundled agent syncs with no installed
package, the plugin loads with its dialogs and provider, its folders are appended to the
path (naming an older copy loaded first), and both algorithms run from ``qgis_process``.

The zip is built once for this module; every test of it belongs here.
"""

from __future__ import annotations

import configparser
import importlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)

pytestmark = pytest.mark.qgis

AGENT_VERSION = importlib.import_module("terrafusion_agent").__version__


def test_every_dependency_of_the_agent_is_pinned_for_the_zip():
    # a dependency added to pyproject.toml but not to BUNDLED would be missing in QGIS
    assert package_plugin.unbundled_dependencies() == []


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """Build the zip and deploy it into a throwaway plugin folder."""
    base = tmp_path_factory.mktemp("package")
    out, plugins = base / "terrafusion_plugin.zip", base / "plugins"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--out", str(out),
         "--deploy", "--plugins-dir", str(plugins)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, plugins / "terrafusion_plugin"


def test_zip_holds_one_plugin_folder_without_caches_or_compiled_code(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    assert {n.split("/")[0] for n in names} == {"terrafusion_plugin"}
    for required in ("__init__.py", "metadata.txt", "LICENSE", "resources/icons/terrafusion.svg",
                     "resources/icons/sync.svg", "resources/ui/terrafusion_dock.ui",
                     "resources/ui/export_dialog.ui", "resources/ui/settings_dialog.ui",
                     "resources/ui/conflicts_dialog.ui", "resources/styles/parcels.qml",
                     "resources/styles/districts.qml", "processing/provider.py",
                     "gui/terrafusion_dock.py", "tasks/dock_tasks.py",
                     "i18n/terrafusion_es.qm",
                     "agent/terrafusion_agent/__init__.py",
                     "agent/terrafusion_agent/migrations/local/env.py",
                     "agent/terrafusion_agent/migrations/local/script.py.mako",
                     "agent/terrafusion_agent/migrations/central/env.py",
                     "agent/terrafusion_agent/migrations/central/versions/0001_bookkeeping.py",
                     f"agent/terrafusion_agent-{AGENT_VERSION}.dist-info/METADATA",
                     "ext/sqlalchemy/__init__.py", "ext/markupsafe/__init__.py",
                     "ext/packaging/requirements.py", "ext/tomlkit/__init__.py"):
        assert f"terrafusion_plugin/{required}" in names, required
    bad = [n for n in names if "__pycache__" in n or ".." in n
           or n.lower().endswith((".pyc", ".pyo", ".so", ".pyd", ".dylib", ".dll", ".exe"))]
    assert bad == []
    assert zip_path.stat().st_size < 25_000_000


def test_ext_holds_only_third_party_packages_and_the_agent_sits_beside_it(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
    in_ext = {n.split("/")[2] for n in names if n.startswith("terrafusion_plugin/ext/")}
    in_agent = {n.split("/")[2] for n in names if n.startswith("terrafusion_plugin/agent/")}
    assert {"sqlalchemy", "werkzeug", "alembic"} <= in_ext
    assert not {n for n in in_ext if n.startswith("terrafusion")}, in_ext
    assert in_agent == {"terrafusion_agent", f"terrafusion_agent-{AGENT_VERSION}.dist-info"}


def test_zip_version_is_the_agents_version(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(zf.read("terrafusion_plugin/metadata.txt").decode("utf-8"))
        shipped = zf.read(f"terrafusion_plugin/agent/terrafusion_agent-{AGENT_VERSION}"
                          ".dist-info/METADATA").decode("utf-8")
    assert parser["general"]["version"] == AGENT_VERSION
    assert f"\nVersion: {AGENT_VERSION}\n" in shipped
    # the repository's metadata.txt leaves it out, so that there is one source
    assert not re.search(r"^version\s*=", (REPO / "metadata.txt").read_text(encoding="utf-8"),
                         re.MULTILINE)


def test_zip_metadata_has_what_the_plugin_repository_requires(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read_string(zf.read("terrafusion_plugin/metadata.txt").decode("utf-8"))
        meta = dict(parser["general"])
        assert f"terrafusion_plugin/{meta['icon']}" in zf.namelist()
    for key in ("name", "description", "about", "version", "qgisMinimumVersion", "author",
                "email", "repository", "tracker", "homepage", "changelog", "tags"):
        assert meta.get(key, "").strip(), key
    assert meta["name"] == "TerraFusion" and meta["qgisMinimumVersion"] == "3.22"
    # without a maximum of 4.x, QGIS 4 does not list the plugin; supportsQt6 is obsolete
    assert meta["qgisMaximumVersion"] == "4.99" and "supportsQt6" not in meta
    assert meta["category"] == "Database"
    assert meta["hasProcessingProvider"] == "yes"
    assert "/" not in meta["author"]
    assert all(meta[k].startswith("https://") for k in ("repository", "tracker", "homepage"))
    assert len(meta["about"].splitlines()) > 1
    # what an IT admin needs before installing it
    assert "PostgreSQL 14 or newer" in meta["about"] and "init-central" in meta["about"]
    assert "trigger" in meta["about"] and "libpq" in meta["about"]


def test_third_party_notice_names_every_bundled_package_with_its_licence(package):
    zip_path, _ = package
    with zipfile.ZipFile(zip_path) as zf:
        names = set(zf.namelist())
        notice = zf.read("terrafusion_plugin/THIRD-PARTY.txt").decode("utf-8")
        bundled = {}
        for name in names:
            m = re.fullmatch(r"terrafusion_plugin/ext/[^/]+\.dist-info/METADATA", name)
            if m:
                text = zf.read(name).decode("utf-8")
                bundled[re.search(r"^Name: (.+)$", text, re.M).group(1)] = re.search(
                    r"^Version: (.+)$", text, re.M).group(1)
    assert len(bundled) >= 15
    blocks = {b.splitlines()[0]: b for b in notice.split("\n\n")[1:]}
    assert set(blocks) == {f"{n} {v}" for n, v in bundled.items()}
    for head, block in blocks.items():
        assert re.search(r"^  Licence: \S", block, re.M), head
        texts = re.findall(r"^  Text: (.+)$", block, re.M)
        assert texts, head
        assert all(f"terrafusion_plugin/{t}" in names for t in texts), head
    assert "Licence: MIT" in blocks[f"SQLAlchemy {bundled['SQLAlchemy']}"]
    assert "LGPL" in blocks[f"psycopg {bundled['psycopg']}"]


def _unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest


def test_zip_passes_the_plugin_repositorys_upload_scan(package, tmp_path):
    """The commands plugins.qgis.org runs on an upload, on the unpacked zip: Bandit with
    every mandatory rule finds nothing (its .bandit leaves only ext/ out), detect-secrets
    with the shipped baseline finds nothing new."""
    zip_path, _ = package
    root = _unzip(zip_path, tmp_path / "upload")
    plugin = root / "terrafusion_plugin"
    assert (plugin / ".bandit").is_file() and (plugin / ".secrets.baseline").is_file()
    bandit = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", str(root), "-f", "json", "--quiet", "-t",
         ",".join(package_plugin.BANDIT_MANDATORY)], capture_output=True, text=True)
    report = json.loads(bandit.stdout)
    assert report["errors"] == [] and report["results"] == []
    scanned = set(report["metrics"]) - {"_totals"}
    assert any("/agent/terrafusion_agent/" in f for f in scanned)
    assert any("/terrafusion_plugin/gui/" in f for f in scanned)
    assert not any("/terrafusion_plugin/ext/" in f for f in scanned)

    baseline = plugin / ".secrets.baseline"
    shipped = json.loads(baseline.read_text())
    assert shipped["results"], "the bundled libraries' example URLs are acknowledged"
    assert all(f.startswith("terrafusion_plugin/ext/") for f in shipped["results"])
    secrets = subprocess.run(
        [sys.executable, "-m", "detect_secrets", *package_plugin.SECRETS_ARGS,
         "--baseline", "terrafusion_plugin/.secrets.baseline", "--disable-plugin",
         "IPPublicDetector", "."], cwd=root, capture_output=True, text=True)
    assert secrets.returncode == 0 and secrets.stdout.strip() == "", secrets.stderr
    # detect-secrets merged what it found now into the baseline: nothing new
    merged = json.loads(baseline.read_text())["results"]
    assert {(f, s["hashed_secret"], s["type"]) for f, v in merged.items() for s in v} == {
        (f, s["hashed_secret"], s["type"]) for f, v in shipped["results"].items() for s in v}


def test_an_eval_in_our_code_fails_the_package(tmp_path):
    source = tmp_path / "checkout"
    for name in ("agent", "terrafusion_plugin", "resources", "i18n", "scripts"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns(
            "__pycache__", "ext", "*.egg-info"))
    for name in ("metadata.txt", "LICENSE", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    module = source / "agent" / "terrafusion_agent" / "redact.py"
    module.write_text(module.read_text() + "\n\ndef evaluate(text):\n"
                      "    return eval(text)\n")
    out = tmp_path / "dist" / "terrafusion_plugin.zip"
    proc = subprocess.run([sys.executable, str(source / "scripts" / "package_plugin.py"),
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "agent/terrafusion_agent/redact.py" in proc.stderr and "B307" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


def test_bundled_agent_syncs_without_any_installed_package(package, tmp_path):
    _, plugin_dir = package
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    # -S: no site-packages at all, so every import must come from agent/ and ext/
    env = _clean_env(PYTHONPATH=os.pathsep.join([str(plugin_dir / "agent"),
                                                 str(plugin_dir / "ext")]))
    cmd = [sys.executable, "-S", "-m", "terrafusion_agent", "--config", str(config)]

    version = subprocess.run([*cmd, "--version"], capture_output=True, text=True, env=env)
    init = subprocess.run([*cmd, "init-central", "--demo-parcels", "20"],
                          capture_output=True, text=True, env=env, timeout=120)
    sync = subprocess.run([*cmd, "sync"], capture_output=True, text=True, env=env, timeout=120)

    assert version.stdout.strip().startswith("terrafusion-agent "), version.stderr
    assert init.returncode == 0, init.stderr
    assert sync.returncode == 0, sync.stderr
    assert json.loads(sync.stdout)["result"] == "success"


def test_unpacked_plugin_loads_with_its_bundled_agent_dialogs_and_provider(
        package, county, tmp_path):
    _, plugin_dir = package
    out = tmp_path / "parcels.gpkg"
    script = f"""
import json, sys
from unittest import mock
sys.path.insert(0, {str(plugin_dir.parent)!r})
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QDialog, QDockWidget, QMainWindow
app = QgsApplication([], True)
app.initQgis()
sys.path.append(QgsApplication.pkgDataPath() + "/python/plugins")
from processing.core.Processing import Processing
Processing.initialize()
import processing
window = QMainWindow()
iface = mock.MagicMock()
iface.mainWindow.return_value = window
import terrafusion_plugin
before = list(sys.path)
plugin = terrafusion_plugin.classFactory(iface)
added = sys.path[len(before):] if sys.path[:len(before)] == before else "reordered"
warnings = [str(c) for c in iface.messageBar().pushMessage.call_args_list]
plugin.initProcessing()
plugin.initGui()
for show in (plugin.show_export, plugin.show_settings, plugin.show_conflicts,
             plugin.show_pending):
    show()
import sqlalchemy, terrafusion_agent
result = processing.run("terrafusion:export", {{"TABLE": "parcels", "CONFIG": {str(county)!r},
                                                "OUTPUT": {str(out)!r}}})
print(json.dumps({{
    "plugin": terrafusion_plugin.__file__,
    "agent": terrafusion_agent.__file__,
    "sqlalchemy": sqlalchemy.__file__,
    "added": added,
    "warnings": warnings,
    "dock": window.findChild(QDockWidget, "TerraFusionDock") is not None,
    "dialogs": sorted(d.objectName() for d in window.findChildren(QDialog)),
    "features": result["FEATURES"],
}}))
plugin.unload()
"""
    proc = subprocess.run([_qgis_python(), "-s", "-c", script], capture_output=True,
                          text=True, env=_qgis_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    agent, ext = str(plugin_dir / "agent"), str(plugin_dir / "ext")
    assert loaded["plugin"].startswith(str(plugin_dir))
    assert loaded["added"] == [agent, ext]
    # what is bundled meets the agent's requirements: nothing to warn about
    assert loaded["warnings"] == []
    assert loaded["agent"].startswith(agent) and loaded["sqlalchemy"].startswith(ext)
    assert loaded["dock"]
    assert loaded["dialogs"] == ["TerraFusionConflictsDialog", "TerraFusionExportDialog",
                                 "TerraFusionPendingDialog", "TerraFusionSettingsDialog"]
    assert loaded["features"] == DEMO_PARCELS and out.stat().st_size > 0


def _qgis_python() -> str:
    """The Python QGIS runs on (Debian's, with PyQGIS), not this test's virtualenv: the
    unpacked plugin must find its agent and packages in the zip, not in the checkout."""
    return str(Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}")


def _qgis_env(**extra: str) -> dict[str, str]:
    env = _clean_env(QT_QPA_PLATFORM="offscreen")
    env.pop("PYTHONPATH", None)  # the checkout's, in a developer's shell
    env.update(extra)
    return env


def test_bundled_folders_are_appended_and_an_older_copy_loaded_first_is_named(
        package, tmp_path):
    _, plugin_dir = package
    # another plugin's werkzeug, older than the agent's requirement, first on the path
    other = tmp_path / "other_plugin"
    (other / "werkzeug").mkdir(parents=True)
    (other / "werkzeug" / "__init__.py").write_text("")
    (other / "werkzeug-2.0.0.dist-info").mkdir()
    (other / "werkzeug-2.0.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Werkzeug\nVersion: 2.0.0\n")
    script = f"""
import json, sys
from unittest import mock
sys.path[:0] = [{str(plugin_dir.parent)!r}, {str(other)!r}]
from qgis.core import QgsApplication
app = QgsApplication([], False)
before = list(sys.path)
import terrafusion_plugin
terrafusion_plugin.classFactory(None)  # as qgis_process loads it: the warning only logged
iface = mock.MagicMock()
terrafusion_plugin.classFactory(iface)
terrafusion_plugin.use_bundled_packages()  # a reload appends nothing twice
import sqlalchemy, terrafusion_agent, werkzeug
from terrafusion_agent.client.launcher import child_environment
print(json.dumps({{
    "kept": sys.path[:len(before)] == before,
    "added": sys.path[len(before):],
    "werkzeug": werkzeug.__file__, "sqlalchemy": sqlalchemy.__file__,
    "agent": terrafusion_agent.__file__,
    "warnings": [c.args[1] for c in iface.messageBar().pushMessage.call_args_list],
    "child_path": child_environment()["PYTHONPATH"],
}}))
"""
    proc = subprocess.run([_qgis_python(), "-s", "-c", script], capture_output=True,
                          text=True, env=_qgis_env(PYTHONPATH="/opt/qgis/python"),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    agent, ext = str(plugin_dir / "agent"), str(plugin_dir / "ext")
    assert loaded["kept"] and loaded["added"] == [agent, ext]
    assert loaded["werkzeug"].startswith(str(other))
    assert loaded["sqlalchemy"].startswith(ext) and loaded["agent"].startswith(agent)
    assert loaded["warnings"] == [
        f"TerraFusion needs werkzeug>=2.3, but QGIS's Python loads werkzeug 2.0.0 from "
        f"{other}, which comes first on its path; update or remove that copy."]
    # the agent started as a child finds the same folders, after what QGIS set
    assert loaded["child_path"].split(os.pathsep) == ["/opt/qgis/python", agent, ext]


def _qgis_process() -> str:
    # Debian's qgis_process wrapper adds --noversioncheck, which qgis_process refuses
    # (QGIS 3.22); the binary behind it is the real thing.
    found = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if found is None:
        pytest.skip("qgis_process is not installed")
    return found


def test_both_algorithms_run_from_qgis_process_with_the_unpacked_plugin(package, county,
                                                                        tmp_path):
    _, plugin_dir = package
    profile = tmp_path / "qgis-profile"
    shutil.copytree(plugin_dir, profile / "profiles" / "default" / "python" / "plugins"
                    / "terrafusion_plugin")
    env = _clean_env(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(profile))
    qgis_process = _qgis_process()
    out = tmp_path / "valuable.geojson"

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([qgis_process, *args], capture_output=True, text=True, env=env,
                              timeout=180)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    run("plugins", "enable", "terrafusion_plugin")
    listed = run("list").stdout
    exported = run("run", "terrafusion:export", "--json", "--", "TABLE=parcels",
                   f"CONFIG={county}", "WHERE=market_value > 300000", f"OUTPUT={out}")
    synced = run("run", "terrafusion:sync", "--json", "--", f"CONFIG={county}")

    assert "terrafusion:export" in listed and "terrafusion:sync" in listed
    with sqlite3.connect(county.parent / "local.sqlite") as conn:
        expected = conn.execute("SELECT count(*) FROM parcels WHERE market_value > 300000"
                                ).fetchone()[0]
    assert json.loads(exported.stdout)["results"]["FEATURES"] == expected
    assert len(json.loads(out.read_text())["features"]) == expected
    assert json.loads(synced.stdout)["results"]["RESULT"] == "success"


def test_the_requirements_check_is_kept_until_what_it_read_changes(package, tmp_path):
    """QGIS pays for reading the package metadata once, not at every start; a copy that
    changes where it is loaded from (an upgrade) is checked again."""
    _, plugin_dir = package
    other = tmp_path / "other_plugin"
    (other / "werkzeug").mkdir(parents=True)
    init = other / "werkzeug" / "__init__.py"
    init.write_text("")
    (other / "werkzeug-2.0.0.dist-info").mkdir()
    (other / "werkzeug-2.0.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: Werkzeug\nVersion: 2.0.0\n")
    script = f"""
import json, os, shutil, sys
sys.path[:0] = [{str(plugin_dir.parent)!r}, {str(other)!r}]
from qgis.core import QgsApplication
app = QgsApplication([], False)
import terrafusion_plugin
first = terrafusion_plugin.use_bundled_packages()
checks = []
real = terrafusion_plugin.unmet_requirements
terrafusion_plugin.unmet_requirements = lambda: checks.append(1) or real()
kept = terrafusion_plugin.use_bundled_packages()
# the other plugin upgrades its werkzeug: a new file, a new version
new = {str(other / "werkzeug-3.1.0.dist-info")!r}
shutil.move({str(other / "werkzeug-2.0.0.dist-info")!r}, new)
with open(os.path.join(new, "METADATA"), "w") as fh:
    fh.write("Metadata-Version: 2.1\\nName: Werkzeug\\nVersion: 3.1.0\\n")
os.utime({str(init)!r}, ns=(1, os.stat({str(init)!r}).st_mtime_ns + 10**9))
again = terrafusion_plugin.use_bundled_packages()
print(json.dumps({{"first": first, "kept": kept, "again": again, "checks": len(checks)}}))
"""
    proc = subprocess.run([_qgis_python(), "-s", "-c", script], capture_output=True,
                          text=True, env=_qgis_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [u[1] for u in seen["first"]] == ["werkzeug"]
    assert seen["kept"] == seen["first"]  # from the settings, without a second check
    assert seen["again"] == [] and seen["checks"] == 1  # checked again once, and now met
