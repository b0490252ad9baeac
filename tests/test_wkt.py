"""Geometries as WKT for people (``terrafusion_agent.wkt``): what GDAL reads back from it
is the very geometry, byte for byte, whatever its dimensions, parts and byte order."""

from __future__ import annotations

import pytest
from osgeo import ogr
from terrafusion_agent.wkt import to_wkt

ogr.UseExceptions()


@pytest.mark.parametrize("wkt", [
    "POINT (1 2)",
    "POINT Z (1 2 3.5)",
    "POINT M (1 2 3)",
    "POINT ZM (1 2 3 4)",
    "POINT EMPTY",
    "LINESTRING (0.1 0.30000000000000004, 1e+20 -5)",
    "POLYGON ((0 0, 10 0, 10 10, 0 0), (2 2, 4 2, 4 4, 2 2))",
    "MULTIPOLYGON (((1072000.123456789 100.5, 1072010 100.5, 1072010 110.25, "
    "1072000.123456789 100.5)), ((0 0, 1 0, 1 1, 0 0)))",
    "MULTIPOINT ((1 2), (3 4))",
    "MULTILINESTRING M ((0 0 1, 1 1 2), (2 2 3, 3 3 4))",
    "GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))",
    "MULTIPOLYGON EMPTY",
])
@pytest.mark.parametrize("order", [ogr.wkbNDR, ogr.wkbXDR])
def test_wkt_reads_back_as_the_same_geometry(wkt, order):
    geometry = ogr.CreateGeometryFromWkt(wkt)
    text = to_wkt(bytes(geometry.ExportToIsoWkb(order)))
    assert text == wkt  # written as GDAL writes ISO WKT
    again = ogr.CreateGeometryFromWkt(text)
    assert again.ExportToIsoWkb(ogr.wkbNDR) == geometry.ExportToIsoWkb(ogr.wkbNDR)


def test_extended_wkb_with_an_srid_reads_as_its_geometry():
    # PostGIS's own form: SRID 4326 in the header, Z flagged in the type's high bits
    ewkb = bytes.fromhex("01010000A0E6100000000000000000F03F00000000000000400000000000000840")
    assert to_wkt(ewkb) == "POINT Z (1 2 3)"


@pytest.mark.parametrize("wkb", [b"", b"\x01\x01\x00\x00\x00\x00", b"\x02" + b"\x00" * 20,
                                 bytes.fromhex("0108000000"),
                                 bytes.fromhex("0102000000FFFFFF7F")])
def test_anything_else_is_a_value_error(wkb):
    with pytest.raises(ValueError):
        to_wkt(wkb)
