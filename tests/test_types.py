"""The stores' contract is checked by a type checker: mypy, configured in pyproject.toml
over stores/, sync/ and demo/, finds every call into a store that the contract does
not allow (a missing method, a wrong argument)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_stores_sync_and_demo_pass_mypy(tmp_path):
    if importlib.util.find_spec("mypy") is None:
        pytest.fail("mypy is not installed: pip install -e '.[test]'")
    # a cache of its own: a clean run, as on a fresh checkout
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
         "--cache-dir", str(tmp_path / "mypy-cache")],
        cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
