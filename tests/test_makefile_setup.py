"""``make setup``'s Debian packages: PostGIS for the PostgreSQL major version that apt
offers, and nothing done when everything is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("apt-cache") is None or shutil.which("make")
                                is None, reason="needs Debian's apt and make")


def _apt_recipe() -> str:
    proc = subprocess.run(["make", "--no-print-directory", "-n", "apt"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_setup_asks_for_the_postgis_of_the_postgresql_apt_offers():
    depends = subprocess.run(["apt-cache", "depends", "postgresql"], capture_output=True,
                             text=True).stdout
    offered = re.search(r"^\s*Depends: postgresql-(\d+)$", depends, re.MULTILINE)
    if offered is None:
        pytest.skip("apt's package lists are empty here (apt-get update)")
    assert re.findall(r"postgresql-\d+-postgis-3", _apt_recipe()) == [
        f"postgresql-{offered.group(1)}-postgis-3"]


def test_apt_step_does_nothing_when_every_package_is_installed():
    packages = re.search(r"for p in (.*?); do", _apt_recipe()).group(1).split()
    missing = [p for p in packages if "install ok installed" not in subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True).stdout]
    if missing:
        pytest.skip(f"not installed here: {' '.join(missing)}")
    proc = subprocess.run(["make", "--no-print-directory", "apt"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
