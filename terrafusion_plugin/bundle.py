"""Make the agent and its pure-Python dependencies bundled in the plugin zip importable.

``scripts/package_plugin.py`` installs them into ``ext/`` beside this module. A source
checkout has no ``ext/`` and uses whatever ``terrafusion_agent`` is installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

EXT_DIR = Path(__file__).resolve().parent / "ext"


def use_bundled_packages() -> bool:
    """Put ``ext/`` first on ``sys.path`` if it exists; True when it does."""
    if not EXT_DIR.is_dir():
        return False
    path = str(EXT_DIR)
    # First, not last: the bundled agent must win over an older copy that another
    # plugin or the QGIS installer may have put on the path, since the plugin is
    # written against exactly this agent version.
    if path in sys.path:
        sys.path.remove(path)
    sys.path.insert(0, path)
    return True
