"""A central store creates a table from its description and loads its rows in bulk,
alike on PostGIS and SpatiaLite: what the demo county (and any other generator) builds
on, without a line of SQL of its own."""

import sqlite3
import struct
from decimal import Decimal

import psycopg
import pytest
from conftest import central_exec
from terrafusion_agent.errors import TerraFusionError
from terrafusion_agent.stores import open_central
from terrafusion_agent.stores.base import Column, GeometryInfo, TableInfo, TableSpec
from terrafusion_agent.stores.rows import canonical

NOTES = TableSpec(
    TableInfo("field notes é", (
        Column("note_id", "integer", False, "bigint"),
        Column("kind", "text", False),
        Column("body", "text"),
        Column("amount", "real", db_type="numeric(12,2)"),
        Column("exact", "decimal", db_type="numeric"),
        Column("seen", "date"),
        Column("checked", "boolean"),
        Column("photo", "blob"),
        Column("geom", "geometry"),
    ), ("note_id",), GeometryInfo("geom", 2927, "POINT")),
    numbered_key=True, unique=(("body",),), choices=(("kind", ("tree", "well")),),
    indexes=(("seen",),))

#: texts a bulk load must escape, and one ("\\N") that reads as NULL if it does not
TEXTS = ["plain", "also plain", "tab\there", "line\nbreak", "carriage\rreturn",
         "back\\slash", "\\N", "", "Ñandú ☃ 'single' \"double\""]


def point(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def note_rows() -> list[tuple]:
    rows = [("tree", text, Decimal("12.50"), Decimal("1.25"), "2024-02-29", i % 2 == 0,
             b"\x00\\\x01\xff" if i == 0 else None, point(1050000 + i, 80000 + i))
            for i, text in enumerate(TEXTS)]
    return rows + [("well", None, None, None, None, None, None, None)]


@pytest.fixture
def central(any_agent):
    store = open_central(any_agent.load(), create=True)
    yield store
    store.close()


def layout(info: TableInfo) -> tuple:
    return ([(c.name, c.kind, c.nullable) for c in info.columns], info.pk, info.geometry)


def test_a_created_table_reads_back_as_described(central):
    central.create_tables([(NOTES, note_rows())])
    assert layout(central.table_info(NOTES.info.name)) == layout(NOTES.info)


def test_loaded_rows_come_back_unchanged_and_numbered_in_order(central):
    central.create_tables([(NOTES, note_rows())])
    kinds = [c.kind for c in NOTES.info.columns]
    expected = [(i + 1, *row) for i, row in enumerate(note_rows())]
    got = sorted(central.read_rows(central.table_info(NOTES.info.name)))
    assert [[canonical(k, v) for k, v in zip(kinds, row)] for row in got] == \
        [[canonical(k, v) for k, v in zip(kinds, row)] for row in expected]


def test_keys_constraints_and_indexes_hold_after_the_load(central, any_agent):
    central.create_tables([(NOTES, note_rows())])
    table = '"field notes é"'
    central_exec(any_agent, f"INSERT INTO {table} (kind) VALUES ('well')")
    assert central_exec(any_agent, f"SELECT max(note_id) FROM {table}") == [
        (len(note_rows()) + 1,)]
    for refused in ("INSERT INTO {t} (kind) VALUES ('cave')",
                    "INSERT INTO {t} (kind, body) VALUES ('tree', 'plain')",
                    "INSERT INTO {t} (note_id, kind) VALUES (1, 'tree')"):
        with pytest.raises((psycopg.Error, sqlite3.Error)):
            central_exec(any_agent, refused.format(t=table))
    if any_agent.central_url.startswith("sqlite:///"):
        indexes = central_exec(any_agent, "SELECT name FROM sqlite_master WHERE type = "
                               "'index' AND tbl_name = %s", (NOTES.info.name,))
        spatial = central_exec(any_agent, "SELECT spatial_index_enabled FROM "
                               "geometry_columns WHERE f_table_name = lower(%s)",
                               (NOTES.info.name,))
        assert spatial == [(1,)]
    else:
        indexes = central_exec(any_agent, "SELECT indexname FROM pg_indexes "
                               "WHERE tablename = %s", (NOTES.info.name,))
        assert ("field notes é_geom_idx",) in indexes
    assert ("field notes é_seen_idx",) in indexes


def test_a_table_that_cannot_be_created_leaves_no_table_behind(central):
    good = TableSpec(TableInfo("good", (Column("id", "integer", False),
                                        Column("v", "text")), ("id",)))
    bad = TableSpec(TableInfo("bad", (Column("id", "integer", False),), ("id",)))
    with pytest.raises(TerraFusionError, match="cannot create table bad: .*"):
        central.create_tables([(good, [(1, "a")]), (bad, [(1,), (1,)])])
    assert not central.table_exists("good")
    assert not central.table_exists("bad")
