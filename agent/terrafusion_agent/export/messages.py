"""GDAL's bindings for the export, and what GDAL, SQLite and the system say, as sentences.

GDAL is imported only when a file is written or a CRS checked (:func:`gdal_bindings`), so
importing the export package (and the CLI, and the agent) stays light. Its errors are
collected per thread while the export works (:func:`collected_errors`) instead of
printed to stderr: GDAL's handler stack is per thread, and its process-wide exception
mode is left as it is, since QGIS and other plugins share it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

from terrafusion_agent.errors import ExportError

log = logging.getLogger("terrafusion.export")


def fragment(text: str) -> str:
    """A message (GDAL's, SQLite's...) made to fit inside one sentence."""
    return " ".join(text.split()).rstrip(".")


def gdal_bindings():
    """GDAL's ``gdal``, ``ogr`` and ``osr``, imported on first use (about 50 MB, 0.2 s)."""
    try:
        from osgeo import gdal, ogr, osr
    except ImportError:
        raise ExportError("GDAL's Python bindings (osgeo) are not installed, so this "
                          "installation cannot export.") from None
    return gdal, ogr, osr


class GdalMessages(list):
    """GDAL errors raised on this thread while the handler was installed."""

    def text(self) -> str:
        return fragment(self[-1]) if self else "GDAL gave no reason"


@contextlib.contextmanager
def collected_errors(gdal) -> Iterator[GdalMessages]:
    """Collect GDAL's errors on this thread instead of printing them (warnings are
    logged at debug level)."""
    messages = GdalMessages()

    def handler(err_class, err_no, message):
        if err_class >= gdal.CE_Failure:
            messages.append(str(message))
        else:
            log.debug("GDAL: %s", message)

    gdal.PushErrorHandler(handler)
    try:
        yield messages
    finally:
        gdal.PopErrorHandler()
