"""The central database on PostgreSQL + PostGIS."""

from __future__ import annotations

import logging
from typing import Iterator

import psycopg

from terrafusion_agent.demo import county
from terrafusion_agent.errors import CentralUnavailable, TableError, TerraFusionError
from terrafusion_agent.redact import redact, redact_url
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores.base import Column, GeometryInfo, TableInfo

log = logging.getLogger("terrafusion.central")

_KIND_BY_UDT = {
    "int2": "integer", "int4": "integer", "int8": "integer",
    "float4": "real", "float8": "real", "numeric": "real",
    "bool": "boolean", "date": "date", "timestamp": "datetime", "timestamptz": "datetime",
    "bytea": "blob", "geometry": "geometry",
}
# how each kind is read: (select expression template, COPY binary type)
_READ = {
    "integer": ("{c}::int8", "int8"),
    "real": ("{c}::float8", "float8"),
    "boolean": ("{c}", "bool"),
    "blob": ("{c}", "bytea"),
    "geometry": ("ST_AsBinary({c})", "bytea"),
}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return redact(text[0].rstrip(".")) if text else exc.__class__.__name__


class PostGISCentral:
    """Central store on PostGIS; one psycopg connection, opened on construction."""

    kind = "postgis"

    def __init__(self, url: str, schema: str = "public", connect_timeout: int = 10,
                 statement_timeout: int = 600):
        self.url = url
        self.schema = schema
        try:
            self.conn = psycopg.connect(
                url,
                connect_timeout=connect_timeout,
                options=f"-c statement_timeout={int(statement_timeout) * 1000} "
                "-c DateStyle=ISO -c TimeZone=UTC -c application_name=terrafusion-agent",
            )
        except psycopg.Error as exc:
            raise CentralUnavailable(
                f"The central database {redact_url(url)} cannot be reached: {_first_line(exc)}."
            ) from None
        self.conn.autocommit = True
        if not self._scalar("SELECT count(*) FROM pg_extension WHERE extname = 'postgis'"):
            self._require_postgis()

    def describe(self) -> str:
        return redact_url(self.url)

    def close(self) -> None:
        self.conn.close()

    def _scalar(self, sql: str, params: tuple = ()):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            row = cur.fetchone()
            return row[0] if row else None

    def _require_postgis(self) -> None:
        try:
            with self.conn.cursor() as cur:
                cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        except psycopg.Error as exc:
            raise CentralUnavailable(
                f"The central database {redact_url(self.url)} has no PostGIS extension and it "
                f"cannot be created: {_first_line(exc)}."
            ) from None

    # --- schema -------------------------------------------------------------------------

    def table_exists(self, name: str) -> bool:
        return bool(self._scalar(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = %s", (self.schema, name)))

    def table_info(self, name: str) -> TableInfo:
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT column_name, udt_name, is_nullable = 'YES' "
                "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position", (self.schema, name))
            cols = cur.fetchall()
            if not cols:
                raise TableError(
                    f"Table {name} does not exist in the central database {self.describe()}."
                )
            cur.execute(
                "SELECT a.attname FROM pg_index i "
                "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                "WHERE i.indrelid = (quote_ident(%s) || '.' || quote_ident(%s))::regclass "
                "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
                (self.schema, name))
            pk = tuple(r[0] for r in cur.fetchall())
            if not pk:
                raise TableError(
                    f"Table {name} has no primary key; TerraFusion syncs only tables with one."
                )
            cur.execute(
                "SELECT f_geometry_column, srid, type, coord_dimension FROM geometry_columns "
                "WHERE f_table_schema = %s AND f_table_name = %s ORDER BY f_geometry_column",
                (self.schema, name))
            geoms = cur.fetchall()
        geometry = None
        if geoms:
            gcol, srid, gtype, ndims = geoms[0]
            gtype = gtype.upper()
            dims = {2: "XY", 3: "XYZ", 4: "XYZM"}.get(ndims, "XY")
            if gtype.endswith("M") and gtype not in ("GEOMETRY",):
                gtype, dims = gtype[:-1], "XYM"
            geometry = GeometryInfo(gcol, int(srid or 0), gtype, dims)
        columns = []
        for cname, udt, nullable in cols:
            kind = _KIND_BY_UDT.get(udt, "text")
            if kind == "geometry" and (geometry is None or cname != geometry.column):
                kind = "blob"  # extra geometry columns travel as WKB blobs
            columns.append(Column(cname, kind, bool(nullable)))
        return TableInfo(name, tuple(columns), pk, geometry)

    # --- data ---------------------------------------------------------------------------

    def count(self, info: TableInfo) -> int:
        return int(self._scalar(f"SELECT count(*) FROM {qi(self.schema)}.{qi(info.name)}"))

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        """Every row in column order; geometry as ISO WKB, numbers as int/float, dates as text."""
        exprs, types = [], []
        for c in info.columns:
            expr, typ = _READ.get(c.kind, ("{c}::text", "text"))
            exprs.append(expr.format(c=qi(c.name)))
            types.append(typ)
        sql = (f"COPY (SELECT {', '.join(exprs)} FROM {qi(self.schema)}.{qi(info.name)}) "
               "TO STDOUT (FORMAT BINARY)")
        with self.conn.cursor() as cur, cur.copy(sql) as copy:
            copy.set_types(types)
            yield from copy.rows()

    # --- setup --------------------------------------------------------------------------

    def create_demo(self, n: int) -> dict:
        if self.table_exists("parcels"):
            have = self.count(self.table_info("parcels"))
            log.info("demo county already present with %d parcels", have)
            return {"created": False, "parcels": have}
        dialect = county.Dialect("postgis")
        s = qi(self.schema)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(f"""
                CREATE TABLE {s}.parcels (
                  prop_id bigint NOT NULL, geo_id text NOT NULL, situs_address text,
                  owner_name text, legal_desc text, acres numeric(12,4),
                  land_value numeric(14,2), impr_value numeric(14,2),
                  market_value numeric(14,2), tax_area_code text, property_use_code text,
                  year_built integer, geom geometry(MultiPolygon, {county.SRID}))""")
            cur.execute(f"INSERT INTO {s}.parcels {county.parcels_select(dialect, n)}")
            cur.execute(f"ALTER TABLE {s}.parcels ADD PRIMARY KEY (prop_id), "
                        "ADD CONSTRAINT parcels_geo_id_key UNIQUE (geo_id)")
            cur.execute(f"CREATE INDEX parcels_geom_idx ON {s}.parcels USING gist (geom)")
            cur.execute(f"""
                CREATE TABLE {s}.districts (
                  district_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                  district_type text NOT NULL CHECK (district_type IN
                    ('school', 'fire', 'voting_precinct', 'zoning', 'levy')),
                  code text NOT NULL, name text NOT NULL,
                  geom geometry(MultiPolygon, {county.SRID}))""")
            cur.executemany(
                f"INSERT INTO {s}.districts (district_type, code, name, geom) VALUES "
                f"(%s, %s, %s, ST_Multi(ST_MakeEnvelope(%s, %s, %s, %s, {county.SRID})))",
                [(t, c, nm, *box) for t, c, nm, box in county.districts(n)])
            cur.execute(f"CREATE INDEX districts_geom_idx ON {s}.districts USING gist (geom)")
            cur.execute(f"""
                CREATE TABLE {s}.sales (
                  sale_id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                  prop_id bigint NOT NULL, sale_date date NOT NULL,
                  sale_price numeric(14,2) NOT NULL)""")
            cur.execute(f"INSERT INTO {s}.sales (prop_id, sale_date, sale_price) "
                        f"{county.sales_select(dialect)}")
            cur.execute(f"CREATE INDEX sales_prop_id_idx ON {s}.sales (prop_id)")
        with self.conn.cursor() as cur:
            cur.execute(f"ANALYZE {s}.parcels")
            cur.execute(f"ANALYZE {s}.districts")
            cur.execute(f"ANALYZE {s}.sales")
        return {"created": True, "parcels": n}

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run one statement (for the engine's bookkeeping and for tests)."""
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, params)
        except psycopg.Error as exc:
            raise TerraFusionError(f"The central database refused a statement: "
                                   f"{_first_line(exc)}.") from None

