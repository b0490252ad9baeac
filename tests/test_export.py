"""The export engine: every format opens with GDAL with the right rows, CRS, fields and
values; every bad input is one clear sentence and no file; presets; atomic writes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import AgentEnv, synced_county, write_config
from osgeo import gdal, ogr, osr
from terrafusion_agent.stores import spatialite

PARCELS = 2000
FORMATS = ("gpkg", "geojson", "shp", "kml", "csv", "fgb")
SUFFIX = {"shp": ".zip"}
#: fields the KML reader adds on its own
KML_FIELDS = {"Name", "description", "timestamp", "begin", "end", "altitudeMode",
              "tessellate", "extrude", "visibility", "drawOrder", "icon"}
EXPECTED_EPSG = {"gpkg": 2927, "geojson": 4326, "shp": 2927, "kml": 4326, "csv": None,
                 "fgb": 2927}
PARCEL_FIELDS = ["prop_id", "geo_id", "situs_address", "owner_name", "legal_desc", "acres",
                 "land_value", "impr_value", "market_value", "tax_area_code",
                 "property_use_code", "year_built"]
SHP_NAMES = {"situs_address": "situs_addr", "market_value": "market_val",
             "tax_area_code": "tax_area_c", "property_use_code": "property_u"}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def county(tmp_path_factory) -> AgentEnv:
    """One synced demo county for the whole module; tests only read it."""
    return synced_county(tmp_path_factory.mktemp("county"), PARCELS)


PRESETS = """
[export.presets.public_parcels]
table = "parcels"
format = "geojson"
fields = ["geo_id", "situs_address", "market_value"]
renames = { situs_address = "address" }
where = "market_value > 300000"
filename = "{preset}_{table}_{date}.geojson"

[export.presets.title_company]
table = "parcels"
format = "shp"
max_features = 100
filename = "title_{table}.zip"

[export.presets.districts_all]
table = "districts"
format = "gpkg"
"""


def agent_for(tmp_path: Path, local: Path, extra: str = PRESETS) -> AgentEnv:
    """A config of its own (presets...) on an existing local copy."""
    directory = tmp_path / "agent"
    config = write_config(directory, "sqlite:///unused.sqlite", extra)
    text = config.read_text().replace('path = "local.sqlite"', f'path = "{local}"')
    config.write_text(text)
    return AgentEnv(directory, config, "sqlite:///unused.sqlite")


@pytest.fixture
def agent(tmp_path, county) -> AgentEnv:
    return agent_for(tmp_path, county.local_path)


@pytest.fixture
def private(tmp_path, county) -> AgentEnv:
    """A copy of the local database this test may change."""
    copy = tmp_path / "private.sqlite"
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(county.local_path) + suffix)
        if src.exists():
            shutil.copy(src, str(copy) + suffix)
    return agent_for(tmp_path, copy)


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


# --- helpers --------------------------------------------------------------------------------


def export(env: AgentEnv, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return env.run("export", *args, check=check)


def summary(proc) -> dict:
    return json.loads(proc.stdout)


def assert_one_sentence(proc, *fragments: str) -> None:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(err.splitlines()) == 1, err
    assert err.endswith("."), err
    for fragment in fragments:
        assert fragment in err, err


def local_exec(path: Path, sql: str, params: tuple = ()) -> list:
    conn = spatialite.connect(path, create=False)
    try:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def source(path: Path, where: str = "1") -> dict[int, dict]:
    """Parcels straight from the local copy, keyed by prop_id, geometry as WKB."""
    names = ", ".join(f'"{n}"' for n in PARCEL_FIELDS)
    rows = local_exec(path, f"SELECT {names}, AsBinary(geom) FROM parcels WHERE {where}")
    return {r[0]: {**dict(zip(PARCEL_FIELDS, r[:-1])), "geom": r[-1]} for r in rows}


class Output:
    """A written file opened with GDAL; keeps the dataset alive while its layer is used
    (GDAL's Python bindings crash on a layer whose dataset was collected)."""

    def __init__(self, path: Path, fmt: str):
        name = f"/vsizip/{path}" if fmt == "shp" else str(path)
        options = ["X_POSSIBLE_NAMES=X", "Y_POSSIBLE_NAMES=Y"] if fmt == "csv" else []
        self.ds = gdal.OpenEx(name, gdal.OF_VECTOR, open_options=options)
        assert self.ds is not None, f"GDAL cannot open {path}"

    def GetLayer(self, index: int = 0) -> Layer:  # noqa: N802 - reads like GDAL's own
        return Layer(self.ds, self.ds.GetLayer(index))


class Layer:
    """An OGR layer that holds on to its dataset."""

    def __init__(self, ds, layer):
        self.ds, self.layer = ds, layer

    def __getattr__(self, name: str):
        return getattr(self.layer, name)

    def __iter__(self):
        return iter(self.layer)


def open_output(path: Path, fmt: str) -> Output:
    return Output(path, fmt)


def field_names(layer, fmt: str) -> list[str]:
    defn = layer.GetLayerDefn()
    names = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    if fmt == "gpkg" and layer.GetFIDColumn():
        names.insert(0, layer.GetFIDColumn())
    if fmt == "kml":
        names = [n for n in names if n not in KML_FIELDS]
    if fmt == "csv":
        names = [n for n in names if n not in ("WKT", "X", "Y")]
    return names


def rows_of(layer, fmt: str, key: str = "prop_id") -> dict[int, tuple[dict, ogr.Geometry]]:
    out = {}
    for feature in layer:
        attrs = feature.items()
        if fmt == "gpkg" and layer.GetFIDColumn() == key:
            attrs[key] = feature.GetFID()
        geom = feature.GetGeometryRef()
        out[int(float(attrs[key]))] = (attrs, geom.Clone() if geom else None)
    return out


def epsg_of(layer) -> int | None:
    srs = layer.GetSpatialRef()
    if srs is None:
        return None
    if srs.GetAuthorityCode(None):
        return int(srs.GetAuthorityCode(None))
    matches = srs.FindMatches()  # a shapefile's .prj is ESRI WKT without codes
    assert matches and matches[0][1] >= 70, srs.ExportToWkt()
    return int(matches[0][0].GetAuthorityCode(None))


def same_value(written, expected) -> bool:
    if expected is None:
        return written in (None, "")
    if isinstance(expected, (int, float)):
        return written not in (None, "") and float(written) == pytest.approx(float(expected))
    return str(written) == str(expected)


def vertices(geom: ogr.Geometry) -> list[tuple[float, float]]:
    if geom.GetGeometryCount() == 0:
        return [p[:2] for p in geom.GetPoints() or []]
    return [v for i in range(geom.GetGeometryCount()) for v in vertices(geom.GetGeometryRef(i))]


def to_wgs84(wkb: bytes) -> ogr.Geometry:
    geom = ogr.CreateGeometryFromWkb(wkb)
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(2927)
    dst.ImportFromEPSG(4326)
    for srs in (src, dst):
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    geom.Transform(osr.CoordinateTransformation(src, dst))
    return geom


def assert_same_shape(written: ogr.Geometry, wkb: bytes, reprojected: bool) -> None:
    assert written is not None
    if not reprojected:
        expected = ogr.CreateGeometryFromWkb(wkb)
        # Exactly the same coordinates, whatever the ring orientation (a shapefile turns
        # exterior rings clockwise) and nesting (it reads a one-part multipolygon back as
        # a polygon).
        assert sorted(set(vertices(written))) == sorted(set(vertices(expected))), \
            (written.ExportToWkt(), expected.ExportToWkt())
        assert written.GetArea() == pytest.approx(expected.GetArea(), rel=1e-12)
        return
    expected = to_wgs84(wkb)
    got, want = vertices(written), vertices(expected)
    # Same vertices within 1e-6 degrees (~10 cm; GeoJSON keeps 7 decimals) whatever the
    # ring orientation (RFC 7946 makes exterior rings counter-clockwise).
    for points, others in ((got, want), (want, got)):
        for x, y in points:
            assert min(abs(x - ox) + abs(y - oy) for ox, oy in others) < 1e-6, (x, y)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- every format ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_format_has_exact_count_crs_fields_and_filtered_rows(agent, county, out, fmt):
    where = "market_value > 400000 AND acres < 0.5"
    target = out / f"parcels{SUFFIX.get(fmt, '.' + fmt)}"
    proc = export(agent, "parcels", "--format", fmt, "--out", str(target),
                  "--where", where, "--fields", "prop_id,geo_id,market_value,acres")
    expected = source(county.local_path, where)
    assert 0 < len(expected) < PARCELS  # the filter means something
    assert summary(proc)["features"] == len(expected)
    assert listing(out) == [target.name]  # and no temp file

    ds = open_output(target, fmt)
    layer = ds.GetLayer(0)
    assert layer.GetFeatureCount() == len(expected)
    assert epsg_of(layer) == EXPECTED_EPSG[fmt]
    names = ["prop_id", "geo_id", "market_val" if fmt == "shp" else "market_value", "acres"]
    assert field_names(layer, fmt) == names
    rows = rows_of(layer, fmt)
    assert set(rows) == set(expected)
    value = names[2]
    assert all(float(attrs[value]) > 400000 and float(attrs["acres"]) < 0.5
               for attrs, _ in rows.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_attribute_values_and_geometries_survive(agent, county, out, fmt):
    target = out / f"all{SUFFIX.get(fmt, '.' + fmt)}"
    proc = export(agent, "parcels", "--format", fmt, "--out", str(target))
    assert summary(proc)["features"] == PARCELS
    expected = source(county.local_path)
    layer = open_output(target, fmt).GetLayer(0)
    rows = rows_of(layer, fmt)
    assert len(rows) == PARCELS
    reprojected = EXPECTED_EPSG[fmt] == 4326
    sample = sorted(expected)[:: PARCELS // 25]
    for prop_id in sample:
        attrs, geom = rows[prop_id]
        for name in PARCEL_FIELDS:
            written = attrs[SHP_NAMES.get(name, name) if fmt == "shp" else name]
            assert same_value(written, expected[prop_id][name]), (prop_id, name, written)
        assert_same_shape(geom, expected[prop_id]["geom"], reprojected)


def test_geojson_is_rfc7946_in_wgs84_by_default(agent, out):
    target = out / "p.geojson"
    export(agent, "parcels", "--format", "geojson", "--out", str(target))
    doc = json.loads(target.read_text(encoding="utf-8"))
    assert "crs" not in doc  # RFC 7946: WGS 84 lon/lat, no crs member
    coordinates = doc["features"][0]["geometry"]["coordinates"]
    while isinstance(coordinates[0], list):  # Polygon or MultiPolygon: the first point
        coordinates = coordinates[0]
    x, y = coordinates
    assert -125 < x < -116 and 45 < y < 50  # Washington, longitude first


def test_geojson_with_another_crs_keeps_it(agent, out):
    target = out / "p.geojson"
    proc = export(agent, "parcels", "--format", "geojson", "--out", str(target),
                  "--crs", "EPSG:2927")
    assert summary(proc)["crs"] == "EPSG:2927"
    assert epsg_of(open_output(target, "geojson").GetLayer(0)) == 2927


def test_crs_reprojects_gpkg(agent, county, out):
    target = out / "p.gpkg"
    export(agent, "parcels", "--format", "gpkg", "--out", str(target), "--crs", "EPSG:4326")
    layer = open_output(target, "gpkg").GetLayer(0)
    assert epsg_of(layer) == 4326
    expected = source(county.local_path, "prop_id = (SELECT min(prop_id) FROM parcels)")
    (prop_id, row), = expected.items()
    assert_same_shape(layer.GetFeature(prop_id).GetGeometryRef(), row["geom"], True)


def test_gpkg_keeps_the_primary_key_as_feature_id(agent, out):
    target = out / "p.gpkg"
    export(agent, "parcels", "--format", "gpkg", "--out", str(target))
    layer = open_output(target, "gpkg").GetLayer(0)
    assert layer.GetFIDColumn() == "prop_id"
    assert layer.GetGeomType() == ogr.wkbMultiPolygon
    assert layer.GetGeometryColumn() == "geom"


def test_shapefile_zip_has_its_five_parts_in_utf8(agent, out):
    target = out / "p.zip"
    export(agent, "parcels", "--format", "shp", "--out", str(target))
    with zipfile.ZipFile(target) as zf:
        names = zf.namelist()
        assert names == ["parcels.shp", "parcels.shx", "parcels.dbf", "parcels.prj",
                         "parcels.cpg"]
        assert zf.read("parcels.cpg").decode().strip() == "UTF-8"
        assert zf.testzip() is None


def test_shapefile_field_names_are_short_and_unique(private, out):
    rename = '\n[export.presets.long_names]\ntable = "parcels"\nformat = "shp"\n' \
             'renames = { owner_name = "situs_address_2", legal_desc = "situs_address_3" }\n'
    env = agent_for(out.parent / "long", Path(private.load().local_path), PRESETS + rename)
    target = out / "p.zip"
    proc = export(env, "--preset", "long_names", "--out", str(target))
    names = field_names(open_output(target, "shp").GetLayer(0), "shp")
    assert all(len(n.encode()) <= 10 for n in names)
    assert len({n.lower() for n in names}) == len(names)
    assert names[2:5] == ["situs_addr", "situs_ad_1", "situs_ad_2"]
    assert summary(proc)["renamed"]["owner_name"] == "situs_ad_1"


def test_shapefile_text_fields_are_as_wide_as_the_data(private, out):
    long = "LOT 7 " + "X" * 150  # GDAL alone would cut text at 80 characters
    local_exec(private.load().local_path,
               "UPDATE parcels SET legal_desc = ? WHERE prop_id = (SELECT min(prop_id) "
               "FROM parcels)", (long,))
    target = out / "p.zip"
    export(private, "parcels", "--format", "shp", "--out", str(target))
    values = {attrs["legal_desc"] for attrs, _ in
              rows_of(open_output(target, "shp").GetLayer(0), "shp").values()}
    assert long in values


@pytest.mark.parametrize("fmt", FORMATS)
def test_accented_text_survives(private, out, fmt):
    owner = "MÜLLER JOSÉ & SØREN Ñ"
    local = private.load().local_path
    (prop_id,), = local_exec(local, "SELECT min(prop_id) FROM parcels")
    local_exec(local, "UPDATE parcels SET owner_name = ? WHERE prop_id = ?", (owner, prop_id))
    target = out / f"p{SUFFIX.get(fmt, '.' + fmt)}"
    export(private, "parcels", "--format", fmt, "--out", str(target))
    attrs, _ = rows_of(open_output(target, fmt).GetLayer(0), fmt)[prop_id]
    assert attrs["owner_name"] == owner


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "csv", "fgb"])
def test_integers_beyond_32_bits_survive(private, out, fmt):
    local = private.load().local_path
    (prop_id,), = local_exec(local, "SELECT max(prop_id) FROM parcels")
    big = 98_765_432_101  # parcel numbers of this size are common
    local_exec(local, "UPDATE parcels SET year_built = ? WHERE prop_id = ?", (big, prop_id))
    target = out / f"p.{fmt}"
    export(private, "parcels", "--format", fmt, "--out", str(target))
    attrs, _ = rows_of(open_output(target, fmt).GetLayer(0), fmt)[prop_id]
    assert int(attrs["year_built"]) == big


@pytest.mark.parametrize("fmt", ["gpkg", "geojson", "shp", "kml", "csv"])
def test_a_null_first_geometry_does_not_lose_the_geometry_column(private, out, fmt):
    local = private.load().local_path
    (first,), = local_exec(local, "SELECT min(prop_id) FROM parcels")
    local_exec(local, "UPDATE parcels SET geom = NULL WHERE prop_id = ?", (first,))
    target = out / f"p{SUFFIX.get(fmt, '.' + fmt)}"
    proc = export(private, "parcels", "--format", fmt, "--out", str(target))
    assert summary(proc)["features"] == PARCELS
    rows = rows_of(open_output(target, fmt).GetLayer(0), fmt)
    assert rows[first][1] is None
    assert sum(g is not None for _, g in rows.values()) == PARCELS - 1


def test_flatgeobuf_leaves_out_rows_without_geometry_and_says_so(private, out):
    local = private.load().local_path
    (first,), = local_exec(local, "SELECT min(prop_id) FROM parcels")
    local_exec(local, "UPDATE parcels SET geom = NULL WHERE prop_id = ?", (first,))
    target = out / "p.fgb"
    result = summary(export(private, "parcels", "--format", "fgb", "--out", str(target)))
    layer = open_output(target, "fgb").GetLayer(0)
    assert result["features"] == layer.GetFeatureCount() == PARCELS - 1
    assert layer.GetGeomType() == ogr.wkbMultiPolygon
    assert first not in rows_of(layer, "fgb")
    assert any("without geometry" in w and "FlatGeobuf" in w for w in result["warnings"])


def test_an_empty_selection_writes_an_empty_layer_with_geometry(agent, out):
    target = out / "none.gpkg"
    proc = export(agent, "parcels", "--format", "gpkg", "--out", str(target),
                  "--where", "acres < 0")
    assert summary(proc)["features"] == 0
    layer = open_output(target, "gpkg").GetLayer(0)
    assert layer.GetFeatureCount() == 0
    assert layer.GetGeomType() == ogr.wkbMultiPolygon
    assert epsg_of(layer) == 2927


def test_csv_dates_stay_iso_and_tables_without_geometry_export(agent, county, out):
    target = out / "sales.csv"
    proc = export(agent, "sales", "--format", "csv", "--out", str(target))
    (count,), = local_exec(county.local_path, "SELECT count(*) FROM sales")
    assert summary(proc)["features"] == count
    header, first = target.read_text(encoding="utf-8").splitlines()[:2]
    assert header == "sale_id,prop_id,sale_date,sale_price"
    (date,), = local_exec(county.local_path, "SELECT sale_date FROM sales ORDER BY sale_id "
                                             "LIMIT 1")
    assert first.split(",")[2] == date and date[4] == "-"


def test_csv_of_points_has_x_and_y_columns(private, out):
    local = private.load().local_path
    local_exec(local, 'CREATE TABLE wells (well_id INTEGER PRIMARY KEY, name TEXT)')
    local_exec(local, "SELECT AddGeometryColumn('wells', 'geom', 2927, 'POINT', 'XY')")
    local_exec(local, "INSERT INTO wells VALUES (1, 'North', MakePoint(1050000.5, 80000.25, "
                      "2927)), (2, 'South', MakePoint(1060000, 90000, 2927))")
    info = {"name": "wells", "columns": [["well_id", "integer", False], ["name", "text", True],
                                         ["geom", "geometry", True]],
            "pk": ["well_id"], "geometry": {"column": "geom", "srid": 2927, "type": "POINT",
                                            "dims": "XY"}}
    local_exec(local, "INSERT INTO tf_tables (table_name, info_json) VALUES ('wells', ?)",
               (json.dumps(info),))
    target = out / "wells.csv"
    export(private, "wells", "--format", "csv", "--out", str(target))
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "X,Y,well_id,name"
    assert lines[1].startswith("1050000.5,80000.25,")


def test_overwrite_replaces_an_existing_file(agent, out):
    target = out / "p.geojson"
    target.write_text("old")
    proc = export(agent, "parcels", "--format", "geojson", "--out", str(target),
                  "--overwrite", "--where", "acres > 0.3")
    assert open_output(target, "geojson").GetLayer(0).GetFeatureCount() == \
        summary(proc)["features"]
    assert listing(out) == ["p.geojson"]


def test_output_without_suffix_gets_the_format_suffix(agent, out):
    proc = export(agent, "districts", "--format", "fgb", "--out", str(out / "districts"))
    assert summary(proc)["path"] == str(out / "districts.fgb")
    assert listing(out) == ["districts.fgb"]


def test_output_folder_gets_a_file_named_for_the_table(agent, out):
    proc = export(agent, "districts", "--format", "kml", "--out", str(out))
    assert summary(proc)["path"] == str(out / "districts.kml")


# --- bad input: one sentence, non-zero exit, nothing written -------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["nowhere", "--format", "gpkg"], ["nowhere", "not in the local copy", "parcels"]),
    (["parcels", "--format", "dwg"], ["'dwg'", "gpkg, geojson, shp, kml, csv, fgb"]),
    (["parcels"], ["format"]),
    (["parcels", "--format", "csv", "--fields", "geo_id,acreage"], ["acreage", "geo_id"]),
    (["parcels", "--format", "csv", "--crs", "EPSG:999999"], ["EPSG:999999"]),
    (["parcels", "--format", "csv", "--crs", "/etc/passwd"], ["/etc/passwd"]),
    (["parcels", "--format", "csv", "--where", "acres >"], ["acres >", "not valid"]),
    (["parcels", "--format", "csv", "--where", "acreage > 1"], ["acreage"]),
    (["parcels", "--format", "csv", "--where", "1); DROP TABLE parcels; --"], ["filter"]),
    (["parcels", "--format", "csv", "--where", "1) UNION SELECT * FROM sales WHERE (1"],
     ["parenthesis"]),
    (["parcels", "--format", "csv", "--where", "DropTable(NULL, 'parcels') = 1"],
     ["droptable"]),
    (["parcels", "--format", "kml", "--crs", "EPSG:2927"], ["EPSG:4326"]),
    (["sales", "--format", "shp"], ["sales", "no geometry"]),
    (["sales", "--format", "csv", "--crs", "EPSG:4326"], ["sales", "no geometry"]),
])
def test_bad_input_is_one_sentence_and_writes_nothing(agent, county, out, args, fragments):
    suffix = ".zip" if "shp" in args else ".out"
    proc = export(agent, *args, "--out", str(out / f"x{suffix}"), check=False)
    assert_one_sentence(proc, *fragments)
    assert proc.returncode == 2  # a bad argument, as the README says
    assert listing(out) == []
    assert local_exec(county.local_path, "SELECT count(*) FROM parcels") == [(PARCELS,)]


def test_missing_folder_is_named(agent, out):
    proc = export(agent, "parcels", "--format", "csv", "--out", str(out / "no" / "x.csv"),
                  check=False)
    assert_one_sentence(proc, str(out / "no"), "does not exist")


@contextlib.contextmanager
def read_only_folder(folder: Path):
    folder.chmod(0o555)
    immutable = False
    try:
        if os.geteuid() == 0:  # root writes through permissions: make it immutable
            immutable = subprocess.run(["chattr", "+i", str(folder)],
                                       capture_output=True).returncode == 0
            if not immutable:
                pytest.skip("no way to make a folder unwritable for root here")
        yield folder
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_unwritable_folder_is_named(agent, out):
    with read_only_folder(out):
        proc = export(agent, "parcels", "--format", "gpkg", "--out", str(out / "x.gpkg"),
                      check=False)
    assert_one_sentence(proc, str(out), "not writable")
    assert listing(out) == []


def test_existing_file_is_refused_without_overwrite(agent, out):
    target = out / "p.csv"
    target.write_text("keep me")
    proc = export(agent, "parcels", "--format", "csv", "--out", str(target), check=False)
    assert_one_sentence(proc, str(target), "already exists", "--overwrite")
    assert target.read_text() == "keep me"
    assert listing(out) == ["p.csv"]


def test_a_file_that_appears_at_the_target_during_the_export_is_kept(county, out, monkeypatch):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.errors import InvalidExport
    from terrafusion_agent.export import ExportRequest, engine, export_table

    target = out / "d.geojson"
    real_write = engine._gdal_write

    def a_colleague_saves_meanwhile(*args, **kwargs):
        real_write(*args, **kwargs)
        # after every check passed and GDAL wrote the temp file, before it is published
        target.write_text("saved by a colleague")

    monkeypatch.setattr(engine, "_gdal_write", a_colleague_saves_meanwhile)
    with pytest.raises(InvalidExport) as caught:
        export_table(config_mod.load(county.config),
                     ExportRequest(table="districts", format="geojson", out=str(target)))
    message = str(caught.value)
    assert str(target) in message and "already exists" in message and "--overwrite" in message
    assert message.endswith(".") and "\n" not in message
    assert target.read_text() == "saved by a colleague"
    assert listing(out) == ["d.geojson"]


def test_shapefile_must_be_a_zip(agent, out):
    proc = export(agent, "parcels", "--format", "shp", "--out", str(out / "p.shp"),
                  check=False)
    assert_one_sentence(proc, ".zip")


# --- presets --------------------------------------------------------------------------------


def test_preset_applies_fields_renames_filter_crs_and_file_name(agent, county, out):
    proc = export(agent, "--preset", "public_parcels", "--out", str(out))
    result = summary(proc)
    (name,) = listing(out)
    assert name.startswith("public_parcels_parcels_20") and name.endswith(".geojson")
    assert result["path"] == str(out / name)
    layer = open_output(out / name, "geojson").GetLayer(0)
    assert field_names(layer, "geojson") == ["geo_id", "address", "market_value"]
    assert epsg_of(layer) == 4326
    expected = source(county.local_path, "market_value > 300000")
    assert layer.GetFeatureCount() == len(expected) == result["features"]


def test_options_narrow_a_preset(agent, county, out):
    proc = export(agent, "--preset", "public_parcels", "--out", str(out),
                  "--where", "acres > 0.3", "--fields", "geo_id,market_value",
                  "--format", "csv")
    result = summary(proc)
    assert result["fields"] == ["geo_id", "market_value"]
    assert result["path"].endswith(".geojson")  # the preset's file name still applies
    assert result["features"] == len(source(county.local_path,
                                            "market_value > 300000 AND acres > 0.3"))


def test_a_field_outside_the_preset_is_refused(agent, out):
    proc = export(agent, "--preset", "public_parcels", "--out", str(out),
                  "--fields", "geo_id,owner_name", check=False)
    assert_one_sentence(proc, "public_parcels", "owner_name")
    assert listing(out) == []


def test_a_preset_for_another_table_is_refused(agent, out):
    proc = export(agent, "sales", "--preset", "public_parcels", "--out", str(out),
                  check=False)
    assert_one_sentence(proc, "public_parcels", "parcels", "sales")


def test_more_features_than_max_features_is_refused_before_writing(agent, out):
    proc = export(agent, "--preset", "title_company", "--out", str(out), check=False)
    assert_one_sentence(proc, "title_company", "100", f"{PARCELS:,}")
    assert listing(out) == []


def test_max_features_allows_a_narrow_enough_filter(agent, out):
    proc = export(agent, "--preset", "title_company", "--out", str(out),
                  "--where", "prop_id < (SELECT min(prop_id) + 50 FROM parcels)")
    assert summary(proc)["features"] == 50
    assert listing(out) == ["title_parcels.zip"]


def test_an_unknown_preset_is_named(agent, out):
    proc = export(agent, "--preset", "nope", "--out", str(out), check=False)
    assert_one_sentence(proc, "nope", "public_parcels")


@pytest.mark.parametrize("template", ["../{table}.geojson", "/tmp/{table}.geojson",
                                      "sub/{table}.geojson", "..", "{table.__class__}"])
def test_a_preset_file_name_that_leaves_the_folder_is_refused(tmp_path, county, out,
                                                              template):
    bad = f'\n[export.presets.sneaky]\ntable = "parcels"\nformat = "geojson"\n' \
          f'filename = "{template}"\n'
    env = agent_for(tmp_path, county.local_path, bad)
    proc = export(env, "--preset", "sneaky", "--out", str(out), check=False)
    assert_one_sentence(proc, "export.presets.sneaky.filename")
    assert listing(out) == [] and listing(out.parent) == sorted(["agent", "out"])


def test_the_engine_refuses_an_escaping_file_name_from_code(county, out):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.config import ExportPreset
    from terrafusion_agent.errors import InvalidExport
    from terrafusion_agent.export import ExportRequest, plan_export

    base = config_mod.load(county.config)
    # Presets built in code (the plugin, Processing) skip the config loader's check.
    evil = ExportPreset(name="evil", table="parcels", format="geojson",
                        filename="..\\..\\{table}.geojson")
    config = base.__class__(**{**base.__dict__, "presets": {"evil": evil}})
    with pytest.raises(InvalidExport, match="leave the output folder"):
        plan_export(config, ExportRequest(preset="evil", out=str(out)))


# --- atomic writes, progress, events -----------------------------------------------------


def test_a_cancelled_export_leaves_no_file(county, out):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.errors import ExportCancelled
    from terrafusion_agent.export import ExportRequest, export_table

    calls = []

    def cancel() -> bool:  # first asked before GDAL starts, then while it works
        calls.append(1)
        return len(calls) > 1

    with pytest.raises(ExportCancelled):
        export_table(config_mod.load(county.config),
                     ExportRequest(table="parcels", format="kml", out=str(out / "p.kml")),
                     cancel=cancel)
    assert len(calls) > 1
    assert listing(out) == []


def test_a_failing_progress_callback_leaves_no_file(county, out):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.export import ExportRequest, engine, export_table

    def boom(progress):
        raise RuntimeError("the dialog went away")

    events = []
    engine.add_listener(events.append)
    old = engine.PROGRESS_EVERY_SECONDS
    engine.PROGRESS_EVERY_SECONDS = 0.0  # report at the first poll, while GDAL writes
    try:
        with pytest.raises(RuntimeError, match="dialog"):
            export_table(config_mod.load(county.config),
                         ExportRequest(table="parcels", format="kml", out=str(out / "p.kml")),
                         progress=boom)
    finally:
        engine.PROGRESS_EVERY_SECONDS = old
        engine.remove_listener(events.append)
    assert listing(out) == []
    assert [e["result"] for e in events] == ["failed"]


def test_listeners_hear_every_finished_export(county, out):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.export import ExportRequest, add_listener, export_table, remove_listener

    events = []
    add_listener(events.append)
    try:
        result = export_table(config_mod.load(county.config),
                              ExportRequest(table="districts", format="fgb",
                                            out=str(out / "d.fgb")))
    finally:
        remove_listener(events.append)
    (event,) = events
    assert event["format"] == "fgb" and event["result"] == "completed"
    assert event["features"] == result.features > 0
    assert event["duration_seconds"] > 0


def test_progress_reaches_done(county, out):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.export import ExportRequest, export_table

    seen = []
    export_table(config_mod.load(county.config),
                 ExportRequest(table="parcels", format="geojson", out=str(out / "p.geojson")),
                 progress=seen.append)
    assert seen[-1].stage == "done" and seen[-1].fraction == 1.0
    assert seen[-1].bytes_written == (out / "p.geojson").stat().st_size


def test_filename_templates_are_checked_in_the_config(tmp_path):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.errors import ConfigError

    path = tmp_path / "agent.toml"
    path.write_text('[export.presets.x]\ntable = "t"\nformat = "csv"\n'
                    'filename = "{table}_{owner}.csv"\n')
    with pytest.raises(ConfigError, match=r"export\.presets\.x\.filename.*\{owner\}"):
        config_mod.load(path, environ={})
    path.write_text('[export.presets.x]\ntable = "t"\nformat = "csv"\n'
                    'filename = "{preset}-{date}-{time}.csv"\n')
    assert config_mod.load(path, environ={}).presets["x"].filename.startswith("{preset}")


def test_shortened_names_are_deterministic_and_unique():
    from terrafusion_agent.export.formats import shorten_names

    names = ["situs_address", "situs_address_2", "situs_addr", "tax_area_code", "ÅÅÅÅÅÅ"]
    short = shorten_names(names, 10)
    assert short == {"situs_address": "situs_ad_1", "situs_address_2": "situs_ad_2",
                     "situs_addr": "situs_addr", "tax_area_code": "tax_area_c",
                     "ÅÅÅÅÅÅ": "ÅÅÅÅÅ"}
    assert shorten_names(names, 10) == short


# --- the text formats written in two halves -----------------------------------------------


def _export_bytes(config, fmt: str, out: Path, name: str, where: str | None = None) -> bytes:
    from terrafusion_agent.export import ExportRequest, export_table

    target = out / f"{name}.{fmt}"
    result = export_table(config, ExportRequest(table="parcels", format=fmt, out=str(target),
                                                where=where))
    assert result.features == open_output(target, fmt).GetLayer(0).GetFeatureCount()
    return target.read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "geojson", "kml"])
@pytest.mark.parametrize("where", [None, "acres > 0.2"])
def test_two_halves_make_the_same_file_as_one_piece(county, out, monkeypatch, fmt, where):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.export import parallel

    config = config_mod.load(county.config)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FEATURES", 10**12)
    whole = _export_bytes(config, fmt, out, "whole", where)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FEATURES", 100)
    calls = []
    real_splice = parallel.splice
    monkeypatch.setattr(parallel, "splice", lambda *a: calls.append(a) or real_splice(*a))
    halves = _export_bytes(config, fmt, out, "halves", where)
    assert calls, "the export was not split"
    assert halves == whole
    assert listing(out) == sorted([f"halves.{fmt}", f"whole.{fmt}"])


def test_unexpected_framing_falls_back_to_one_piece(county, out, monkeypatch):
    from terrafusion_agent import config as config_mod
    from terrafusion_agent.export import parallel

    config = config_mod.load(county.config)
    whole = _export_bytes(config, "geojson", out, "whole")
    monkeypatch.setattr(parallel, "PARALLEL_MIN_FEATURES", 100)
    # as if a future GDAL framed GeoJSON differently
    monkeypatch.setitem(parallel.FRAMING, "geojson", (b'"features" : [\n', b"\n]\n}\n", b",\n"))
    assert _export_bytes(config, "geojson", out, "again") == whole
    assert listing(out) == ["again.geojson", "whole.geojson"]


# --- the GeoPackage's spatial index copied from the local copy ------------------------------


def _gpkg_index(path: Path) -> dict:
    """What a GeoPackage's spatial index is: schema and triggers, extension, soundness and
    entries (the tree's shape may differ, its content may not)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        return {
            "schema": conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name "
                                   "LIKE 'rtree%' ORDER BY name").fetchall(),
            "extensions": conn.execute("SELECT * FROM gpkg_extensions").fetchall(),
            "check": conn.execute("SELECT rtreecheck('rtree_parcels_geom')").fetchone(),
            "entries": conn.execute("SELECT * FROM rtree_parcels_geom ORDER BY id").fetchall(),
        }
    finally:
        conn.close()


def _gpkg_export(config, out: Path, name: str, where=None) -> Path:
    from terrafusion_agent.export import ExportRequest, export_table

    target = out / f"{name}.gpkg"
    export_table(config, ExportRequest(table="parcels", format="gpkg", out=str(target),
                                       where=where))
    return target


def _spy_copies(monkeypatch) -> list:
    from terrafusion_agent.stores import gpkg_index

    calls: list = []
    real = gpkg_index.copy_index
    monkeypatch.setattr(gpkg_index, "copy_index", lambda *a: calls.append(a) or real(*a))
    return calls


def test_gpkg_spatial_index_copied_from_the_local_copy_is_gdals(county, out, monkeypatch):
    from terrafusion_agent import config as config_mod

    config = config_mod.load(county.config)
    calls = _spy_copies(monkeypatch)
    built = _gpkg_export(config, out, "built", where="1 = 1")  # a filter: GDAL builds it
    assert not calls
    copied = _gpkg_export(config, out, "copied")
    assert len(calls) == 1
    index = _gpkg_index(copied)
    assert index == _gpkg_index(built)
    assert index["check"] == ("ok",) and len(index["entries"]) == PARCELS
    assert index["extensions"] == [("parcels", "geom", "gpkg_rtree_index",
                                    "http://www.geopackage.org/spec120/#extension_rtree",
                                    "write-only")]
    # GDAL uses it for a spatial filter, and answers as it does with its own
    frame = (1050500, 80500, 1052000, 81500)
    counts = []
    for path in (built, copied):
        ds = gdal.OpenEx(str(path), gdal.OF_VECTOR)  # the layer lives as long as this
        layer = ds.GetLayer(0)
        layer.SetSpatialFilterRect(*frame)
        counts.append(layer.GetFeatureCount())
        ds = layer = None
    assert counts[0] == counts[1] > 0


def test_gpkg_copied_index_follows_later_edits(county, out, monkeypatch):
    """Its triggers are the GeoPackage's: edits in QGIS (here through GDAL) keep it right."""
    from terrafusion_agent import config as config_mod

    config = config_mod.load(county.config)
    calls = _spy_copies(monkeypatch)
    files = [_gpkg_export(config, out, "built", where="1 = 1"),
             _gpkg_export(config, out, "copied")]
    assert len(calls) == 1
    for path in files:
        ds = gdal.OpenEx(str(path), gdal.OF_VECTOR | gdal.OF_UPDATE)
        layer = ds.GetLayer(0)
        moved = layer.GetFeature(100005)
        moved.SetGeometry(ogr.CreateGeometryFromWkt(
            "MULTIPOLYGON(((10.5 20.25, 30.125 20.25, 30.125 40.75, 10.5 20.25)))"))
        assert layer.SetFeature(moved) == 0
        assert layer.DeleteFeature(100007) == 0
        added = ogr.Feature(layer.GetLayerDefn())
        added.SetFID(999999)
        added.SetGeometry(ogr.CreateGeometryFromWkt("MULTIPOLYGON(((1 2, 3 2, 3 4, 1 2)))"))
        assert layer.CreateFeature(added) == 0
        ds = layer = None
    built, copied = (_gpkg_index(path) for path in files)
    assert copied == built and copied["check"] == ("ok",)
    ids = {entry[0] for entry in copied["entries"]}
    assert 999999 in ids and 100007 not in ids


def test_gpkg_index_is_built_by_gdal_when_the_local_one_does_not_match(private, out,
                                                                        monkeypatch):
    """A local index that lost an entry is not copied: the export still gets a whole one."""
    import sqlite3

    from terrafusion_agent import config as config_mod

    with contextlib.closing(sqlite3.connect(private.load().local_path)) as conn, conn:
        conn.execute("DELETE FROM idx_parcels_geom WHERE pkid = 100003")  # the rtree only
    calls = _spy_copies(monkeypatch)
    target = _gpkg_export(config_mod.load(private.config), out, "parcels")
    assert not calls
    index = _gpkg_index(target)
    assert index["check"] == ("ok",) and len(index["entries"]) == PARCELS
    assert listing(out) == ["parcels.gpkg"]


@pytest.mark.parametrize("columns, is_rowid", [
    ("(id INTEGER PRIMARY KEY NOT NULL, legal_desc TEXT)", True),
    ("(id integer primary key, g BLOB)", True),
    ("(id INT PRIMARY KEY, g BLOB)", False),  # INT is not INTEGER: not the rowid
    ("(id INTEGER PRIMARY KEY DESC, g BLOB)", False),
    ("(id INTEGER PRIMARY KEY, g BLOB) WITHOUT ROWID", False),
    ("(id INTEGER, b INTEGER, PRIMARY KEY (id, b))", False),
])
def test_only_a_rowid_key_lets_the_index_be_copied(columns, is_rowid):
    import sqlite3

    from terrafusion_agent.stores import gpkg_index

    conn = sqlite3.connect(":memory:")
    conn.execute(f"CREATE TABLE t {columns}")
    assert gpkg_index._is_rowid(conn, "t", "id") is is_rowid


def test_flatgeobuf_keeps_its_temporary_file_in_memory_only_when_small():
    from terrafusion_agent.export.formats import FGB_IN_MEMORY_FEATURES, get_format, layer_options

    def options(features):
        return layer_options(get_format("fgb"), geometry_type="MULTIPOLYGON", target_epsg=2927,
                             features=features)

    assert options(100_000) == ["TEMPORARY_DIR=/vsimem/"]
    assert options(FGB_IN_MEMORY_FEATURES + 1) == []  # next to the output, on disk
