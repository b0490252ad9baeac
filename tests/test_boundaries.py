"""The layers hold: the plugin is a Qt shell over the agent's one face, and the agent
never needs QGIS or Qt.

Read from the source with ``ast`` (every import, at module level or inside a function),
so a lazy import deep in a method counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "terrafusion_plugin"
AGENT = REPO / "agent" / "terrafusion_agent"

#: what the plugin may import of the agent: the face and its exceptions
PLUGIN_MAY_IMPORT = {"terrafusion_agent.api", "terrafusion_agent.errors"}


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, name) for every absolute import in ``path``; ``from a import b`` is ``a.b``
    (b may be a module or a name in a: both fall under a's rule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "ext" not in p.relative_to(folder).parts)


def test_the_plugin_imports_only_the_agents_api_and_errors():
    wrong = []
    for path in _sources(PLUGIN):
        for line, name in _imports(path):
            if not (name == "terrafusion_agent" or name.startswith("terrafusion_agent.")):
                continue
            if not any(name == allowed or name.startswith(allowed + ".")
                       for allowed in PLUGIN_MAY_IMPORT):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert wrong == [], "\n".join(wrong)


def test_the_plugin_keeps_only_qt_code_in_its_three_rooms():
    """Besides ``__init__.py`` and ``plugin.py``, every module sits in gui/, tasks/ or
    processing/, and each of them imports QGIS or Qt (Qt-free code belongs to the agent)."""
    stray, qt_free = [], []
    for path in _sources(PLUGIN):
        rel = path.relative_to(PLUGIN)
        if len(rel.parts) == 1:
            if rel.name not in ("__init__.py", "plugin.py"):
                stray.append(str(rel))
            continue
        if rel.parts[0] not in ("gui", "tasks", "processing"):
            stray.append(str(rel))
        if rel.name == "__init__.py" or rel.name == "paths.py":
            continue  # a package's face; where the resources are
        if not any(name.split(".")[0] in ("qgis", "PyQt5", "PyQt6")
                   for _, name in _imports(path)):
            qt_free.append(str(rel))
    assert stray == [], f"modules outside gui/, tasks/, processing/: {stray}"
    assert qt_free == [], f"Qt-free modules that belong in the agent: {qt_free}"


def test_the_agent_never_imports_qgis_or_qt():
    wrong = [f"{path.relative_to(REPO)}:{line} imports {name}"
             for path in _sources(AGENT) for line, name in _imports(path)
             if name.split(".")[0] in ("qgis", "PyQt5", "PyQt6", "PySide2", "PySide6",
                                       "terrafusion_plugin")]
    assert wrong == [], "\n".join(wrong)


def test_the_boundary_check_sees_a_lazy_import_inside_a_function(tmp_path):
    """The checker itself: an import hidden in a method is found."""
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from terrafusion_agent.stores.local import LocalStore\n",
                      encoding="utf-8")
    assert _imports(sample) == [(2, "terrafusion_agent.stores.local.LocalStore")]


#: rooms of the agent and what each may not import (docs/architecture.md): the arrows run
#: from front ends (cli, service, api, client) down to sync/export and then stores
AGENT_MAY_NOT = {
    "stores": ("sync", "export", "service", "api", "client", "cli", "demo"),
    "sync": ("export", "service", "api", "client", "cli"),
    "export": ("sync", "service", "api", "client", "cli"),
    "client": ("service", "api", "cli"),
    "service": ("cli", "client"),
}


def test_the_agents_rooms_import_only_downwards():
    wrong = []
    for room, forbidden in AGENT_MAY_NOT.items():
        for path in _sources(AGENT / room):
            for line, name in _imports(path):
                parts = name.split(".")
                if parts[0] == "terrafusion_agent" and len(parts) > 1 and parts[1] in forbidden:
                    wrong.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert wrong == [], "\n".join(wrong)
