"""Content checksums: do central and local hold the same rows?

Each row is reduced to a canonical byte string (by column kind, so a PostgreSQL
``numeric`` 1.50 and a local 1.5 agree while two decimals that differ in their 18th
digit do not), hashed, and the hashes are summed modulo 2^128: the digest is
independent of row order, so neither side has to sort.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable

from terrafusion_agent.errors import NotFound
from terrafusion_agent.stores.base import CentralStore, TableInfo
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.stores.rows import canonical

_MOD = 1 << 128


def _canonical(kind: str, value: Any) -> bytes:
    value = canonical(kind, value)
    if value is None:
        return b"N"
    if isinstance(value, int):
        return b"i" + str(value).encode()
    if isinstance(value, bytes):
        return (b"r" if kind == "real" else b"b") + value
    return (b"d" if kind == "decimal" else b"t") + value.encode("utf-8")


def digest(info: TableInfo, rows: Iterable[tuple]) -> tuple[int, str]:
    """(row count, hex digest) of ``rows`` read in ``info.columns`` order."""
    kinds = [c.kind for c in info.columns]
    total = 0
    count = 0
    for row in rows:
        h = hashlib.blake2b(digest_size=16)
        for kind, value in zip(kinds, row):
            part = _canonical(kind, value)
            h.update(len(part).to_bytes(4, "little"))
            h.update(part)
        total = (total + int.from_bytes(h.digest(), "little")) % _MOD
        count += 1
    return count, f"{total:032x}"


def verify(central: CentralStore, local: LocalStore, tables: Iterable[str]) -> dict:
    """Per table: counts and digests on both sides; ``ok`` only when all are equal."""
    report: dict = {"ok": True, "tables": {}}
    for name in tables:
        info = central.table_info(name)
        c_count, c_digest = digest(info, central.read_rows(info))
        entry: dict = {"central_rows": c_count, "central_checksum": c_digest}
        try:
            local_info = local.table_info(name)
        except NotFound:
            local_info = None
        if local_info is None or local_info.column_names != info.column_names:
            entry.update(local_rows=None, local_checksum=None,
                         equal=False, reason="missing or different columns locally")
        else:
            l_count, l_digest = digest(info, local.read_rows(info))
            entry.update(local_rows=l_count, local_checksum=l_digest,
                         equal=(c_count, c_digest) == (l_count, l_digest))
        if local_info is not None:
            entry["pending_edits"] = local.pending_count(name)
        report["tables"][name] = entry
        report["ok"] = report["ok"] and entry["equal"]
    return report
