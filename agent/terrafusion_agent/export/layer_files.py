"""Finishing a file that another writer made: the QGIS plugin's export of a project layer
that is not a synced table (QGIS's ``QgsVectorFileWriter`` writes it into a private work
folder beside the target).

The same promises as the engine's own exports hold for it: a file cut short by a full
disk, or one GDAL complained about, is an error and never published; the finished file
(a shapefile's parts as one zip) replaces the target in one rename, flushed first, so the
target is either the old file or the whole new one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import zipfile
from pathlib import Path
from typing import Optional

from terrafusion_agent.errors import ExportError
from terrafusion_agent.export import diskfull
from terrafusion_agent.export.formats import FormatSpec


def written_file(work: Path, out: Path, spec: FormatSpec) -> Path:
    """Where in ``work`` the writer is to write the file for ``out``."""
    return work / f"{out.stem}{spec.gdal_extension}"


def check(work: Path, out: Path, spec: FormatSpec, written: int, messages: list) -> None:
    """Raise ExportError when the writer's file is damaged or cut short (``messages``: what
    GDAL reported as failures while it wrote, which the writer itself may not hear)."""
    full = diskfull.said_full(messages) or diskfull.nearly_full(out.parent)
    if messages:
        if full:
            raise diskfull.error(out)
        raise ExportError(f"GDAL could not write {out.name}: {str(messages[0]).rstrip('.')}.")
    if spec.name != "shp":
        reason = diskfull.incomplete(written_file(work, out, spec), spec.name, written,
                                     out.parent)
        if reason is not None and full:
            raise diskfull.error(out)
        if reason is not None:
            raise ExportError(f"GDAL did not write all of {out.name}: {reason}.")


def publish(work: Path, out: Path, spec: FormatSpec) -> int:
    """Move the finished file into place (a shapefile's parts as one zip); its size."""
    temp = out.with_name(f".{out.name}.tf-{secrets.token_hex(4)}")
    try:
        if spec.name == "shp":
            with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as zf:
                for part in sorted(work.iterdir()):
                    zf.write(part, part.name)
        else:
            shutil.move(str(written_file(work, out, spec)), temp)
        diskfull.flush_to_disk(temp)
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return out.stat().st_size


def os_error(exc: OSError, out: Path) -> Optional[ExportError]:
    """The disk-full sentence when ``exc`` (or the target's folder) says the disk is full;
    None for another failure, which the caller words."""
    if diskfull.is_full_error(exc) or diskfull.nearly_full(out.parent):
        return diskfull.error(out)
    return None
