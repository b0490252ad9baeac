"""A full disk at the export's edge: always said in words, never published.

GDAL's GeoJSON and KML writers do not check their writes: on a full disk they go on,
close a file cut short and report nothing. Other writers report the failure in words
that do not say why (FlatGeobuf: "Unexpected I/O failure"; the CSV writer: "Unable to
write feature"), or bury it under later errors (a GeoPackage's first error, "database or
disk is full", is followed by "no such table"). So the export engine, and the plugin's
own layer export, look at three things before a file is published:

* every message GDAL, SQLite and the operating system gave: any words for a full disk;
* the disk: a write that failed for want of space leaves hardly a byte free (Linux file
  systems fill the last block before they refuse), so a failure on a disk left nearly
  full is a full disk, whatever the words;
* the file: flushed to the disk (``fsync``, which also brings out the errors network
  shares and quotas report only late), and for the text formats its features counted.
  GDAL starts every GeoJSON feature and every KML placemark with a fixed marker, which a
  value can never contain (JSON escapes quotes, XML escapes ``<``), so counting them is a
  fast scan; a CSV file's records are counted line by line, minding quoted line breaks.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Callable, Iterable, Optional

from terrafusion_agent.errors import ExportError

#: free space below which a failed write is put down to a full disk
NEARLY_FULL_BYTES = 1 << 20
#: what GDAL, SQLite, the C library and Windows say when a disk or a quota is full
_FULL_WORDS = re.compile(
    r"no space left on device|database or disk is full|disk quota exceeded|"
    r"not enough space on the disk|disk is full|disk full", re.IGNORECASE)
_FULL_ERRNOS = {errno.ENOSPC} | ({errno.EDQUOT} if hasattr(errno, "EDQUOT") else set())
#: what starts each feature in the file GDAL writes, and how a complete file ends
_FEATURE_MARKERS = {"geojson": b'\n{ "type": "Feature"', "kml": b"<Placemark"}
_ENDINGS = {"geojson": b"}\n", "kml": b"</kml>\n", "csv": b"\n"}
_CHUNK = 1 << 22


def error(out: Path) -> ExportError:
    """The one sentence for an export that a full disk stopped."""
    return ExportError(f"The disk is full in {out.parent}: {out.name} was not written; "
                       "free some space there or choose another folder.")


def said_full(messages: Iterable[str]) -> bool:
    """Whether any of ``messages`` says that a disk (or a quota) is full."""
    return any(_FULL_WORDS.search(str(m)) for m in messages)


def is_full_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the operating system's or SQLite's full-disk error."""
    if isinstance(exc, OSError):
        return exc.errno in _FULL_ERRNOS or said_full([str(exc)])
    if isinstance(exc, sqlite3.Error):
        return said_full([str(exc)])
    return False


def free_bytes(folder: Path) -> Optional[int]:
    """Bytes this process may still write in ``folder``'s file system (None if unknown).

    Root may fill the blocks a file system keeps in reserve, so for root those count.
    """
    try:
        if hasattr(os, "statvfs"):
            st = os.statvfs(folder)
            blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
            return blocks * st.f_frsize
        return shutil.disk_usage(folder).free
    except (OSError, ValueError):
        return None


def nearly_full(folder: Path) -> bool:
    """Whether ``folder``'s disk has (next to) no room left."""
    free = free_bytes(folder)
    return free is not None and free < NEARLY_FULL_BYTES


def flush_to_disk(path: Path) -> None:
    """``fsync`` a written file, so the rename that publishes it publishes its bytes and
    a late write error (network shares, quotas) is heard now; raises OSError."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def incomplete(path: Path, fmt: str, features: int, folder: Path,
               recount: Optional[Callable[[], int]] = None) -> Optional[str]:
    """Why ``path``, a ``fmt`` file GDAL wrote with ``features`` features, is cut short;
    None when it is whole or cannot be checked (gpkg, fgb and shp report their own write
    errors). ``recount`` gives the number of features the source holds now: a table
    synced between planning and writing is not a file cut short."""
    ending = _ENDINGS.get(fmt)
    if ending is None:
        return None
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(max(0, size - len(ending)))
        if f.read() != ending:
            return "it does not end the way a complete file does"
    found = _features_in(path, fmt, features, folder)
    if found is None or found == features or (recount is not None and found == recount()):
        return None
    return f"it holds {found:,} of {features:,} features"


def _features_in(path: Path, fmt: str, expected: int, folder: Path) -> Optional[int]:
    """Features in a written text file; None when GDAL framed it in an unknown way."""
    if fmt == "csv":
        return _csv_records(path) - 1  # the header
    found = _count(path, _FEATURE_MARKERS[fmt])
    if found == 0 and expected and not nearly_full(folder):
        # not the framing GDAL is known to write (another GDAL version): the ending is
        # all that can be checked, and a full disk is ruled out
        return None
    return found


def _count(path: Path, marker: bytes) -> int:
    """Occurrences of ``marker`` in the file, read in chunks (no two overlap)."""
    count, carry = 0, b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(_CHUNK)
            if not chunk:
                return count
            data = carry + chunk
            count += data.count(marker)
            # a marker cut by the chunk boundary is found next time; a whole one in
            # ``carry`` cannot be found twice, since carry is shorter than a marker
            carry = data[-(len(marker) - 1):] if len(marker) > 1 else b""


def _csv_records(path: Path) -> int:
    """Complete records of a CSV file: line ends outside quoted fields (a doubled quote
    inside a field flips the count twice, so only the field's own quotes matter)."""
    records, quoted = 0, False
    with open(path, "rb") as f:
        for line in f:
            if line.count(b'"') % 2:
                quoted = not quoted
            if not quoted and line.endswith(b"\n"):
                records += 1
    return records
