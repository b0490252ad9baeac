"""The agent's floors, checked on its source: SQL is written only in ``stores/``.

The sync and the export say what they want from a database through the stores' functions;
the statements themselves (and the dialect they are written in) live in the stores. A
statement found in a string of ``sync/`` or ``export/`` is named by file and line.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

AGENT = Path(__file__).resolve().parent.parent / "agent" / "terrafusion_agent"
#: the floors above the stores, which must not write SQL themselves
ABOVE_THE_STORES = ("sync", "export")

#: a statement's first keyword as SQL is written in this code base (upper case): enough
#: to find the start of a statement split over several literals or an f-string
_KEYWORD = re.compile(r"\b(?:SELECT|INSERT|UPDATE|DELETE|PRAGMA|CREATE)\b")
#: a whole statement in lower case (a sentence starts with a capital and rarely reads
#: like one)
_STATEMENT = re.compile(
    r"\bselect\s+.+?\s+from\b|\binsert\s+(?:or\s+\w+\s+)?into\b|\bupdate\s+\S+\s+set\b|"
    r"\bdelete\s+from\b|\bpragma\s+\w+|"
    r"\bcreate\s+(?:temp\w*\s+|unique\s+|virtual\s+)?(?:table|index|trigger|view)\b",
    re.DOTALL)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (prose, which may name SQL)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value,
                                                                     ast.Constant):
                found.add(id(body[0].value))
    return found


def _text(node: ast.AST) -> str:
    """A literal's text; an f-string's with ``{}`` where its values go."""
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return node.value


def sql_in(path: Path, root: Path) -> list[str]:
    """``file:line: text`` (the file relative to ``root``) for every string literal of
    ``path`` that holds SQL."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    prose = _docstrings(tree)
    parts_of_fstrings = {id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                         for v in node.values}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) or (
                isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in prose and id(node) not in parts_of_fstrings):
            text = _text(node)
            if _KEYWORD.search(text) or _STATEMENT.search(text):
                where = path.relative_to(root)
                found.append((node.lineno, f"{where}:{node.lineno}: {text[:70]!r}"))
    return [hit for _, hit in sorted(found)]


def test_sql_is_written_only_in_the_stores():
    files = sorted(p for floor in ABOVE_THE_STORES for p in (AGENT / floor).rglob("*.py"))
    assert files, "the agent's source was not found"
    found = [hit for path in files for hit in sql_in(path, AGENT.parent.parent)]
    assert not found, ("SQL outside stores/; move it into a store module:\n"
                       + "\n".join(found))


@pytest.mark.parametrize("source, is_sql", [
    ('x = "SELECT a FROM t"', True),
    ('x = f"SELECT {a} FROM {t}"', True),
    ('x = f"UPDATE {t} SET a = ?"', True),
    ('x = "select a from t where b"', True),
    ('x = ("INSERT INTO t "\n     "VALUES (?)")', True),
    ('x = f"CREATE TRIGGER {name} AFTER"', True),
    ('x = "pragma query_only = 1"', True),
    ('x = "Select the rows to export from the list."', False),
    ('x = "Choose another file; nothing was updated."', False),
    ('"""The one SELECT GDAL reads."""', False),
    ('def f():\n    """Reads with PRAGMA table_info."""', False),
])
def test_the_check_tells_sql_from_prose(tmp_path, source, is_sql):
    path = tmp_path / "module.py"
    path.write_text(source + "\n", encoding="utf-8")
    assert bool(sql_in(path, tmp_path)) is is_sql
