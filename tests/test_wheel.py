"""The agent as pip installs it, away from the checkout.

The wheel is built from the checkout (``scripts/package_plugin.py`` builds the same one
for the plugin zip) and installed into a fresh virtualenv on the system's Python, which
then runs ``init-central``, ``sync`` and ``verify`` from a folder outside the checkout,
with no PYTHONPATH: every file the agent needs at run time (the migration scripts above
all) must be in the wheel.

The fresh virtualenv gets the agent's dependencies without a package index: the
distributions this test runs with are linked into one folder on its path, following
``Requires-Dist`` of the wheel itself (and theirs in turn), so a dependency missing from
pyproject.toml is missing there too. No network makes the test as reliable as the rest
of the suite, and it runs the versions the suite runs.
"""

from __future__ import annotations

import email.parser
import json
import os
import runpy
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from conftest import write_config
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
DEMO_PARCELS = 1000


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        headers = email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))
    return headers.get_all("Requires-Dist") or []


def _link_dependencies(requires: list[str], folder: Path) -> list[str]:
    """Link into ``folder`` the installed distributions that ``requires`` needs, except
    those the system's Python has anyway; returns their names."""
    ours = {Path(sysconfig.get_path(key)).resolve() for key in ("purelib", "platlib")}
    folder.mkdir()
    todo = [Requirement(text) for text in requires]
    seen: set[str] = set()
    while todo:
        requirement = todo.pop()
        key = canonicalize_name(requirement.name)
        if key in seen or (requirement.marker is not None
                           and not requirement.marker.evaluate({"extra": ""})):
            continue
        seen.add(key)
        dist = metadata.distribution(requirement.name)
        root = Path(dist.locate_file("")).resolve()
        if root in ours:
            tops = {Path(f).parts[0] for f in dist.files or ()}
            for top in tops - {"..", "__pycache__", "bin"}:
                if not (folder / top).exists():
                    (folder / top).symlink_to(root / top)
        todo += [Requirement(text) for text in dist.requires or ()]
    return sorted(seen)


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the agent installed from its wheel; its folder."""
    base = tmp_path_factory.mktemp("wheel")
    build_agent_wheel = runpy.run_path(str(REPO / "scripts" / "package_plugin.py"))[
        "build_agent_wheel"]
    wheel = build_agent_wheel(base / "dist")
    venv = base / "venv"
    # Debian's Python, as the README asks (SpatiaLite and GDAL come from the system);
    # the one this suite's virtualenv is made from.
    python = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    subprocess.run([str(python), "-m", "venv", "--system-site-packages", str(venv)],
                   check=True, capture_output=True, timeout=120)
    site = Path(subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_path('purelib'))"],
        check=True, capture_output=True, text=True, env=_clean_env()).stdout.strip())
    linked = _link_dependencies(_requires(wheel), base / "dependencies")
    assert "sqlalchemy" in linked and "alembic" in linked, linked
    (site / "terrafusion-dependencies.pth").write_text(f"{base / 'dependencies'}\n")
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps",
                           "--no-index", "--disable-pip-version-check", "--quiet", str(wheel)],
                          capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return venv


def _clean_env() -> dict[str, str]:
    """This environment without the checkout on PYTHONPATH or TERRAFUSION_* settings."""
    return {k: v for k, v in os.environ.items()
            if k != "PYTHONPATH" and not k.startswith("TERRAFUSION_")}


def _outside_the_checkout(path: Path) -> Path:
    assert not path.resolve().is_relative_to(REPO), path
    return path


@pytest.fixture(params=["postgis", "spatialite"])
def central_url(request, tmp_path):
    if request.param == "spatialite":
        return f"sqlite:///{tmp_path / 'central.sqlite'}"
    return request.getfixturevalue("pg_url")


def test_the_installed_wheel_inits_syncs_and_verifies_outside_the_checkout(
        venv, central_url, tmp_path):
    work = _outside_the_checkout(tmp_path)
    config = write_config(work / "agent", central_url)

    def run(*args: str, program: str = "terrafusion-agent") -> subprocess.CompletedProcess:
        proc = subprocess.run([str(venv / "bin" / program), *args], cwd=work,
                              capture_output=True, text=True, env=_clean_env(), timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    where = run("-c", "import terrafusion_agent, terrafusion_agent.migrate as m; "
                      "print(terrafusion_agent.__file__); print(m.script_dir('central'))",
                program="python").stdout.split()
    init = json.loads(run("--config", str(config), "init-central",
                          "--demo-parcels", str(DEMO_PARCELS)).stdout)
    sync = json.loads(run("--config", str(config), "sync").stdout)
    verify = json.loads(run("--config", str(config), "verify").stdout)

    assert all(Path(p).is_relative_to(venv) for p in where), where
    assert init["demo"]["parcels"] == DEMO_PARCELS
    assert sync["result"] == "success"
    assert verify["ok"], verify
