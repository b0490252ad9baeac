"""The six export formats: which GDAL driver writes each, and what it needs to open everywhere.

No GDAL import here: this module only describes the formats, so the CLI and the API can
validate a request without loading GDAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from terrafusion_agent.errors import InvalidExport

WGS84 = 4326


@dataclass(frozen=True)
class FormatSpec:
    """How one export format is written."""

    name: str  #: the name users type: gpkg, geojson, shp, kml, csv, fgb
    label: str  #: what people call it
    driver: str  #: GDAL driver short name
    extension: str  #: suffix of the file handed to the user (".zip" for shp)
    gdal_extension: str  #: suffix GDAL writes; some drivers pick their mode from it
    fixed_epsg: Optional[int] = None  #: the format only knows this CRS (KML: WGS 84)
    default_epsg: Optional[int] = None  #: CRS when none is asked for (else: the source's)
    needs_geometry: bool = False  #: a table without geometry cannot be written
    max_field_name: Optional[int] = None  #: longest field name, in bytes (dBase: 10)
    dates_as_text: bool = False  #: GDAL would write dates as 2024/01/31; keep ISO text
    streaming: bool = True  #: the file grows as features are written (progress by size)


FORMATS: dict[str, FormatSpec] = {
    spec.name: spec
    for spec in (
        FormatSpec("gpkg", "GeoPackage", "GPKG", ".gpkg", ".gpkg", streaming=False),
        FormatSpec("geojson", "GeoJSON", "GeoJSON", ".geojson", ".geojson",
                   default_epsg=WGS84),
        FormatSpec("shp", "Shapefile", "ESRI Shapefile", ".zip", ".shp", needs_geometry=True,
                   max_field_name=10),
        FormatSpec("kml", "KML", "KML", ".kml", ".kml", fixed_epsg=WGS84, dates_as_text=True),
        FormatSpec("csv", "CSV", "CSV", ".csv", ".csv", dates_as_text=True),
        # FlatGeobuf sorts features into its spatial index when the file is closed, so its
        # size says nothing about progress; without geometry GDAL writes no rows at all.
        FormatSpec("fgb", "FlatGeobuf", "FlatGeobuf", ".fgb", ".fgb", needs_geometry=True,
                   streaming=False),
    )
}


def get_format(name: Optional[str]) -> FormatSpec:
    """The format called ``name``; an unknown one is an :class:`InvalidExport`."""
    if not name:
        raise InvalidExport(
            f"Choose an export format: one of {', '.join(FORMATS)}.")
    spec = FORMATS.get(str(name).strip().lower())
    if spec is None:
        raise InvalidExport(
            f"Unknown export format {name!r}; choose one of {', '.join(FORMATS)}.")
    return spec


#: FlatGeobuf exports of at most this many features keep GDAL's temporary file in memory
FGB_IN_MEMORY_FEATURES = 250_000


def layer_options(spec: FormatSpec, *, geometry_type: Optional[str], target_epsg: Optional[int],
                  fid_column: Optional[str] = None,
                  geometry_name: Optional[str] = None,
                  spatial_index: bool = True, features: int = 0) -> list[str]:
    """GDAL layer creation options (``-lco``) for one export; ``spatial_index=False``
    leaves a GeoPackage's index to the engine (see stores/gpkg_index.py)."""
    if spec.name == "gpkg":
        opts = [] if spatial_index else ["SPATIAL_INDEX=NO"]
        if geometry_name:
            opts.append(f"GEOMETRY_NAME={geometry_name}")
        if fid_column:
            # The table's own integer key becomes the GeoPackage's feature id, so QGIS and
            # later edits see the same ids as the county's database.
            opts.append(f"FID={fid_column}")
        return opts
    if spec.name == "geojson":
        # RFC 7946 (WGS 84, lon/lat, right-hand rings) is what web maps expect; any other
        # CRS can only be written as the older 2008 GeoJSON with a "crs" member.
        return ["RFC7946=YES"] if target_epsg == WGS84 else []
    if spec.name == "shp":
        return ["ENCODING=UTF-8"]  # writes the .cpg, so accents survive in every reader
    if spec.name == "fgb" and features <= FGB_IN_MEMORY_FEATURES:
        # GDAL writes the features to a temporary file, then sorts them into the spatial
        # index when the file is closed: in memory (~0.4 kB a parcel) that round trip
        # spares the disk, for files small enough to hold there
        return ["TEMPORARY_DIR=/vsimem/"]
    if spec.name == "csv":
        if geometry_type is None:
            return []
        if geometry_type.upper() == "POINT":
            return ["GEOMETRY=AS_XY"]
        return ["GEOMETRY=AS_WKT"]
    return []


def shorten_names(names: list[str], limit: int) -> dict[str, str]:
    """Map each name to a unique one of at most ``limit`` bytes (dBase field names).

    Deterministic and close to GDAL's own laundering: ``situs_address`` becomes
    ``situs_addr``; a second name with the same start becomes ``situs_ad_1``, then
    ``situs_ad_2``... Names are compared without case, as dBase readers do.
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    # Names that already fit keep their name even when a longer one comes first.
    for name in names:
        if len(name.encode("utf-8")) <= limit and name.lower() not in taken:
            out[name] = name
            taken.add(name.lower())
    for name in names:
        if name in out:
            continue
        candidate = _truncate(name, limit)
        n = 0
        while candidate.lower() in taken:
            n += 1
            suffix = f"_{n}"
            candidate = _truncate(name, limit - len(suffix)) + suffix
        out[name] = candidate
        taken.add(candidate.lower())
    return {name: out[name] for name in names}


def _truncate(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes, never cutting a character in half."""
    data = text.encode("utf-8")[:limit]
    return data.decode("utf-8", errors="ignore")
