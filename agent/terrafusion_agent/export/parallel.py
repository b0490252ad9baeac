"""The parallel writer: a text export written in two halves at once, then joined.

The text formats (GeoJSON, KML, CSV) are written by one CPU-bound GDAL thread, the slow
part of a big export. With two cores the rows are split in two halves by rowid
(:func:`split_point`), each written by its own GDAL connection and writer at the same
time (GDAL releases the GIL), and the second file's features are appended to the first's
(:func:`splice`). Each format's framing, the text before and after the features, is
checked first: if it is not what GDAL is known to write (another GDAL version), the
halves raise :class:`SpliceError` and the export is redone in one piece.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Optional

from terrafusion_agent.errors import TerraFusionError
from terrafusion_agent.export import publish
from terrafusion_agent.export.plan import ExportPlan
from terrafusion_agent.export.writer import GdalWriter, detached
from terrafusion_agent.stores import export_source

log = logging.getLogger("terrafusion.export")

#: below this many features a second writer costs more than it saves
PARALLEL_MIN_FEATURES = 20_000

#: text before the features, its end marker, and the text after them, per format
FRAMING = {
    "geojson": (b'"features": [\n', b"\n]\n}\n", b",\n"),
    "kml": (b"<Folder><name>", b"</Folder>\n</Document></kml>\n", b""),
    "csv": (b"", b"", b""),
}


class SpliceError(Exception):
    """A half of a split export is not framed the way GDAL is known to write it."""


def worth_splitting(plan: ExportPlan) -> bool:
    """Whether two writers would finish ``plan`` sooner than one."""
    return (plan.spec.name in FRAMING and plan.features >= PARALLEL_MIN_FEATURES
            and (os.cpu_count() or 1) > 1
            and export_source.splits_by_rowid(c.name for c in plan.table.columns))


def split_point(plan: ExportPlan) -> Optional[int]:
    """The rowid that splits the exported rows in two equal halves."""
    try:
        with export_source.open_local(plan.local_path, spatial=bool(plan.where)) as conn:
            return export_source.rowid_at(conn, plan.rows, plan.features // 2)
    except (sqlite3.Error, TerraFusionError) as exc:
        log.debug("no split of %s: %s", plan.table.name, exc)
        return None


def translate_halves(writer: GdalWriter, temp: Path, split: int) -> None:
    """Write rows below ``split`` into ``temp`` with ``writer`` and the rest into a second
    file at the same time, then append the second file to the first."""
    plan, work = writer.plan, writer.work
    ext = plan.spec.gdal_extension
    second = temp.with_name(temp.name[:-len(ext)] + ".2" + ext)  # same temp prefix
    failure: list[BaseException] = []

    def second_half() -> None:
        try:
            with GdalWriter.opened(plan, work) as other:
                try:
                    other.translate(str(second), rowids=(split, None))
                except BaseException as exc:
                    # detached while its messages are still collected: GDAL may speak
                    # when the datasets in the traceback close
                    failure.append(detached(exc))
        except BaseException as exc:  # the local copy could not be opened
            failure.append(detached(exc))

    helper = threading.Thread(target=second_half, name="export-half", daemon=True)
    helper.start()
    try:
        writer.translate(str(temp), rowids=(None, split))
    except BaseException:
        work.abort()  # no point finishing the other half
        raise
    finally:
        helper.join()
    if failure:
        raise failure[0]
    work.stage = "joining"
    try:
        splice(plan.spec.name, temp, second)
    except OSError as exc:
        raise publish.failure(plan.out, exc) from None
    second.unlink()


def body_span(fmt: str, path: Path) -> tuple[int, int]:
    """Offsets of the features in one half: after its header, before its footer."""
    marker, footer, _ = FRAMING[fmt]
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(65536)
        f.seek(max(0, size - len(footer)))
        tail = f.read()
    if fmt == "csv":
        end_of_header = head.find(b"\n")
    else:
        at = head.find(marker)
        end_of_header = -1 if at < 0 else (
            at + len(marker) - 1 if fmt == "geojson" else head.find(b"\n", at))
    if end_of_header < 0 or not tail.endswith(footer):
        raise SpliceError(f"unexpected framing in {path.name}")
    start, end = end_of_header + 1, size - len(footer)
    if end < start:
        raise SpliceError(f"unexpected framing in {path.name}")
    return start, end


def splice(fmt: str, first: Path, second: Path) -> None:
    """Append the features of ``second`` to ``first``, keeping ``first``'s framing."""
    separator = FRAMING[fmt][2]
    start1, end1 = body_span(fmt, first)
    start2, end2 = body_span(fmt, second)
    if end2 == start2:
        return  # nothing to add
    footer = FRAMING[fmt][1]
    with open(first, "r+b") as out, open(second, "rb") as src:
        out.seek(end1)
        out.truncate()
        if end1 > start1:
            out.write(separator)
        src.seek(start2)
        remaining = end2 - start2
        while remaining:
            chunk = src.read(min(remaining, 1 << 20))
            if not chunk:
                raise SpliceError(f"{second.name} ended early")
            out.write(chunk)
            remaining -= len(chunk)
        out.write(footer)
