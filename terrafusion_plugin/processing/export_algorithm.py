"""``terrafusion:export``: a synced table to a file, by the agent's export engine.

The same call as the Export dialog and ``terrafusion-agent export``; the filter is the
engine's (an SQL expression on the table's columns, as in the CLI's ``--where``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterCrs,
    QgsProcessingParameterDateTime,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import Qt

from ..gui.translation import tr
from .sync_algorithm import CONFIG, config_parameter, load_config

TABLE, PRESET, FORMAT, CRS = "TABLE", "PRESET", "FORMAT", "CRS"
FIELDS, WHERE, OUTPUT, FEATURES = "FIELDS", "WHERE", "OUTPUT", "FEATURES"
AS_OF = "AS_OF"


class Format:
    """One export format as the algorithm offers it."""

    def __init__(self, name: str, label: str, extension: str):
        self.name, self.label, self.extension = name, label, extension


def _formats() -> list[Format]:
    # The names are the CLI's contract (docs/contract.md); the agent's FORMATS say the same, which
    # a test checks. Spelled out here because QGIS builds the algorithm while it starts,
    # and importing the export engine for six names would slow every QGIS start down.
    return [Format("gpkg", "GeoPackage", ".gpkg"), Format("geojson", "GeoJSON", ".geojson"),
            Format("shp", tr("Shapefile (zipped)"), ".zip"), Format("kml", "KML", ".kml"),
            Format("csv", "CSV", ".csv"), Format("fgb", "FlatGeobuf", ".fgb")]


class ExportAlgorithm(QgsProcessingAlgorithm):
    """Export a synced table of the local copy to gpkg, geojson, shp, kml, csv or fgb."""

    def name(self) -> str:
        return "export"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Export a synced table")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Writes a table of the local copy to a file with the sync agent's export "
                  "engine, as the Export dialog and “terrafusion-agent export” do. Give a "
                  "table or a preset from the agent's configuration. The format follows the "
                  "output file's extension unless one is chosen; a shapefile is one .zip. "
                  "The filter is an SQL expression on the table's columns, for example "
                  "market_value > 500000. A preset that names its own files writes into "
                  "the output's folder. With “As of”, the table as it stood at that moment, "
                  "rebuilt from central's history (empty: as it is now); a time typed as "
                  "text is read as “terrafusion-agent export --as-of” reads it, in UTC "
                  "unless it names its zone.")

    def createInstance(self):  # noqa: N802 - QGIS API
        return ExportAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        formats = _formats()
        self.addParameter(QgsProcessingParameterString(
            TABLE, tr("Synced table"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            PRESET, tr("Export preset"), optional=True))
        self.addParameter(QgsProcessingParameterEnum(
            FORMAT, tr("Format (empty: from the output file's extension)"),
            options=[f"{spec.label} ({spec.name})" for spec in formats], optional=True))
        self.addParameter(QgsProcessingParameterCrs(
            CRS, tr("CRS (empty: the format's default or the table's)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            FIELDS, tr("Fields, comma separated (empty: all)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            WHERE, tr("Filter (SQL expression on the table's columns)"), optional=True))
        self.addParameter(QgsProcessingParameterDateTime(
            AS_OF, tr("As of (empty: now; else the table as it stood then, from central's "
                      "history)"), optional=True))
        self.addParameter(config_parameter())
        self.addParameter(QgsProcessingParameterFileDestination(
            OUTPUT, tr("Output file"),
            fileFilter=";;".join(f"{spec.label} (*{spec.extension})" for spec in formats)))
        self.addOutput(QgsProcessingOutputNumber(FEATURES, tr("Features exported")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        from terrafusion_agent import api
        from terrafusion_agent.errors import ExportCancelled, TerraFusionError

        cfg = load_config(self.parameterAsFile(parameters, CONFIG, context))
        table = self.parameterAsString(parameters, TABLE, context).strip() or None
        preset_name = self.parameterAsString(parameters, PRESET, context).strip() or None
        out = Path(self.parameterAsFileOutput(parameters, OUTPUT, context))
        preset = cfg.presets.get(preset_name) if preset_name else None
        fmt = self._format(parameters, context, out, preset)
        if preset is not None and preset.filename:
            out = out.parent  # the preset names the file; the output says where
        else:
            extension = {f.name: f.extension for f in _formats()}[fmt]
            if out.suffix.lower() != extension:
                out = out.with_suffix(extension)
        crs = self.parameterAsCrs(parameters, CRS, context)
        try:
            fields = api.split_fields(self.parameterAsString(parameters, FIELDS, context) or None)
            request = api.export_request(
                table=table, preset=preset_name, format=fmt, out=str(out),
                crs=crs.authid() if crs.isValid() and crs.authid() else None,
                where=self.parameterAsString(parameters, WHERE, context).strip() or None,
                fields=fields, overwrite=True, as_of=self._as_of(parameters, context),
                trigger="processing")

            def progress(p) -> None:
                if p.fraction is not None:
                    feedback.setProgress(100.0 * p.fraction)

            result = api.export_table(cfg, request, progress=progress, cancel=feedback.isCanceled)
        except ExportCancelled:
            raise QgsProcessingException(tr("The export was cancelled; no file was left "
                                            "behind.")) from None
        except TerraFusionError as exc:
            raise QgsProcessingException(str(exc)) from None
        for warning in result.warnings:
            feedback.pushWarning(warning)
        feedback.pushInfo(tr("Exported {n} features of {table} to {path}.").format(
            n=result.features, table=result.table, path=result.path))
        return {OUTPUT: str(result.path), FEATURES: result.features}

    def _as_of(self, parameters, context) -> Optional[str]:
        """The moment to export the table as of, in the agent's words; None for now.

        Text goes to the agent as it is (UTC unless it names its zone, as on the command
        line); a date and time from Processing's widget or a model carries its own zone
        (the user's local time) and is turned into UTC here.
        """
        value = parameters.get(AS_OF)
        if isinstance(value, str):
            return value.strip() or None
        if value is None:
            return None
        when = self.parameterAsDateTime(parameters, AS_OF, context)
        return when.toUTC().toString(Qt.DateFormat.ISODate) if when.isValid() else None

    def _format(self, parameters, context, out: Path, preset) -> str:
        """The chosen format, else the preset's (the recipient's), else the extension's."""
        formats = _formats()
        if parameters.get(FORMAT) not in (None, ""):
            return formats[self.parameterAsEnum(parameters, FORMAT, context)].name
        if preset is not None:
            return preset.format
        by_extension = {spec.extension: spec.name for spec in formats}
        return by_extension.get(out.suffix.lower(), "gpkg")
