"""The embedded central database: one SpatiaLite file (demos and single-seat offices)."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Iterator

from terrafusion_agent.demo import county
from terrafusion_agent.errors import CentralUnavailable, TableError, TerraFusionError
from terrafusion_agent.sql import quote_ident as qi
from terrafusion_agent.stores import spatialite
from terrafusion_agent.stores.base import Column, GeometryInfo, TableInfo

log = logging.getLogger("terrafusion.central")


class SpatiaLiteCentral:
    """Central store in a SpatiaLite file. ``create`` allows making a new file (init)."""

    kind = "spatialite"

    def __init__(self, path: str | Path, create: bool = False):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise CentralUnavailable(
                f"The central database {self.path} does not exist; "
                "run 'terrafusion-agent init-central' first."
            )
        try:
            self.conn = spatialite.connect(self.path, create=create, what="central database")
        except TerraFusionError as exc:
            raise CentralUnavailable(str(exc)) from None

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    def close(self) -> None:
        self.conn.close()

    def table_exists(self, name: str) -> bool:
        return bool(self.conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        ).fetchone()[0])

    def table_info(self, name: str) -> TableInfo:
        if not self.table_exists(name):
            raise TableError(
                f"Table {name} does not exist in the central database {self.describe()}."
            )
        rows = self.conn.execute(f"PRAGMA table_info({qi(name)})").fetchall()
        geoms = spatialite.geometry_columns(self.conn, name)
        geometry = None
        if geoms:
            gcol, srid, gtype, dims = geoms[0]
            # geometry_columns stores lower-case names; use the table's own spelling
            gcol = next((r[1] for r in rows if r[1].lower() == gcol.lower()), gcol)
            geometry = GeometryInfo(gcol, srid, gtype, dims)
        geom_names = {g[0].lower() for g in geoms}
        columns = []
        pk = []
        for _cid, cname, decl, notnull, _default, pkpos in rows:
            if geometry is not None and cname == geometry.column:
                kind = "geometry"
            elif cname.lower() in geom_names:
                kind = "blob"
            else:
                kind = spatialite.declared_kind(decl)
            columns.append(Column(cname, kind, not notnull and not pkpos))
            if pkpos:
                pk.append((pkpos, cname))
        if not pk:
            raise TableError(
                f"Table {name} has no primary key; TerraFusion syncs only tables with one."
            )
        return TableInfo(name, tuple(columns), tuple(c for _, c in sorted(pk)), geometry)

    def count(self, info: TableInfo) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {qi(info.name)}").fetchone()[0])

    def read_rows(self, info: TableInfo) -> Iterator[tuple]:
        exprs = [f"AsBinary({qi(c.name)})" if c.kind == "geometry" else qi(c.name)
                 for c in info.columns]
        cur = self.conn.execute(f"SELECT {', '.join(exprs)} FROM {qi(info.name)}")
        while True:
            batch = cur.fetchmany(5000)
            if not batch:
                return
            yield from batch

    def create_demo(self, n: int) -> dict:
        if self.table_exists("parcels"):
            have = self.count(self.table_info("parcels"))
            log.info("demo county already present with %d parcels", have)
            return {"created": False, "parcels": have}
        dialect = county.Dialect("spatialite")
        srid = county.SRID
        c = self.conn
        try:
            c.execute("BEGIN")
            c.execute("""
                CREATE TABLE parcels (
                  prop_id INTEGER NOT NULL PRIMARY KEY, geo_id TEXT NOT NULL UNIQUE,
                  situs_address TEXT, owner_name TEXT, legal_desc TEXT, acres DOUBLE,
                  land_value DOUBLE, impr_value DOUBLE, market_value DOUBLE,
                  tax_area_code TEXT, property_use_code TEXT, year_built INTEGER)""")
            c.execute(f"SELECT AddGeometryColumn('parcels', 'geom', {srid}, 'MULTIPOLYGON', 'XY')")
            cols = ("prop_id, geo_id, situs_address, owner_name, legal_desc, acres, land_value, "
                    "impr_value, market_value, tax_area_code, property_use_code, year_built, geom")
            c.execute(f"INSERT INTO parcels ({cols}) {county.parcels_select(dialect, n)}")
            c.execute("SELECT CreateSpatialIndex('parcels', 'geom')")
            c.execute("""
                CREATE TABLE districts (
                  district_id INTEGER NOT NULL PRIMARY KEY,
                  district_type TEXT NOT NULL CHECK (district_type IN
                    ('school', 'fire', 'voting_precinct', 'zoning', 'levy')),
                  code TEXT NOT NULL, name TEXT NOT NULL)""")
            c.execute("SELECT AddGeometryColumn('districts', 'geom', ?, 'MULTIPOLYGON', 'XY')",
                      (srid,))
            c.executemany(
                "INSERT INTO districts (district_type, code, name, geom) VALUES "
                f"(?, ?, ?, CastToMultiPolygon(BuildMbr(?, ?, ?, ?, {srid})))",
                [(t, code, nm, *box) for t, code, nm, box in county.districts(n)])
            c.execute("SELECT CreateSpatialIndex('districts', 'geom')")
            c.execute("""
                CREATE TABLE sales (
                  sale_id INTEGER NOT NULL PRIMARY KEY, prop_id INTEGER NOT NULL,
                  sale_date DATE NOT NULL, sale_price DOUBLE NOT NULL)""")
            c.execute("INSERT INTO sales (prop_id, sale_date, sale_price) "
                      f"{county.sales_select(dialect)}")
            c.execute("CREATE INDEX sales_prop_id_idx ON sales (prop_id)")
            c.execute("COMMIT")
        except sqlite3.Error as exc:
            c.execute("ROLLBACK")
            raise TerraFusionError(f"The demo county could not be created: {exc}.") from None
        return {"created": True, "parcels": n}

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run one statement (for the engine's bookkeeping and for tests)."""
        try:
            self.conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise TerraFusionError(f"The central database refused a statement: {exc}.") from None
