"""The deterministic synthetic demo county (parcels, districts, sales) in EPSG:2927.

The county is a grid of city blocks separated by streets. Each block holds two rows of
five lots whose width and depth vary from block to block; lots front numbered and named
streets and get real-looking owners, addresses, legal descriptions and values. The same
``N`` always gives the same county: every attribute is a pure function of the parcel
number (an integer hash), never of a random generator.

Everything about the county lives in this module: it computes the rows and hands them
to the central store's bulk load (:meth:`CentralStore.create_tables`), which knows
nothing of parcels.
"""

from __future__ import annotations

import logging
import math
import struct
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterator

from terrafusion_agent.stores.base import (
    CentralStore,
    Column,
    GeometryInfo,
    TableInfo,
    TableSpec,
)

log = logging.getLogger("terrafusion.central")

SRID = 2927  # NAD83(HARN) / Washington South (ftUS)
TABLES = ("parcels", "districts", "sales")  # the tables create() makes
ORIGIN_X, ORIGIN_Y = 1_050_000, 80_000  # Clark County, WA
CELL_W, CELL_H = 480, 360  # block plus street, feet
LOTS_PER_BLOCK = 10
FIRST_PROP_ID = 100_000

LAST_NAMES = (
    "SMITH JOHNSON WILLIAMS BROWN JONES MILLER DAVIS GARCIA RODRIGUEZ WILSON MARTINEZ "
    "ANDERSON TAYLOR THOMAS HERNANDEZ MOORE MARTIN JACKSON THOMPSON WHITE LOPEZ LEE "
    "GONZALEZ HARRIS CLARK LEWIS ROBINSON WALKER PEREZ HALL YOUNG ALLEN SANCHEZ WRIGHT "
    "KING SCOTT GREEN BAKER ADAMS NELSON HILL RAMIREZ CAMPBELL MITCHELL ROBERTS CARTER "
    "PHILLIPS EVANS TURNER TORRES NGUYEN PARKER COLLINS EDWARDS STEWART FLORES MORRIS "
    "MURPHY RIVERA COOK ROGERS MORGAN PETERSON COOPER REED BAILEY BELL KIM HOWARD WARD "
    "COX OLSON LARSON JOHANSSON PETROV KOWALSKI"
).split()
FIRST_NAMES = (
    "JAMES MARY ROBERT PATRICIA JOHN JENNIFER MICHAEL LINDA DAVID ELIZABETH WILLIAM "
    "BARBARA RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CHARLES KAREN CHRISTOPHER LISA "
    "DANIEL NANCY MATTHEW BETTY ANTHONY SANDRA MARK MARGARET DONALD ASHLEY STEVEN KIMBERLY "
    "ANDREW EMILY PAUL DONNA JOSHUA MICHELLE KENNETH CAROL KEVIN AMANDA BRIAN MELISSA "
    "GEORGE DEBORAH TIMOTHY STEPHANIE"
).split()
STREET_NAMES = (
    "MILL PLAIN BLVD", "FOURTH PLAIN BLVD", "FORT VANCOUVER WAY", "MAIN ST",
    "ANDRESEN RD", "BURTON RD", "HAZEL DELL AVE", "SALMON CREEK AVE", "PADDEN PKWY",
    "ST JOHNS BLVD", "CHKALOV DR", "EVERGREEN HWY", "LIEBE RD", "MCGILLIVRAY BLVD",
)
SUBDIVISIONS = (
    "HAZEL DELL ADD", "ORCHARDS ESTATES", "FELIDA HEIGHTS", "MINNEHAHA TRACTS",
    "CASCADE PARK", "FISHERS LANDING", "SIFTON ACRES", "LAKE SHORE PLAT",
    "BURNT BRIDGE CREEK", "COVINGTON MEADOWS", "PLEASANT VALLEY", "GLENWOOD ESTATES",
    "KNAPP ACRES", "MOUNT VISTA", "PROEBSTEL PLACE", "DOLLAR CORNER",
)
# (city, zip) for a 3 x 3 split of the county, south-west first
CITIES = (
    ("VANCOUVER", "98661"), ("VANCOUVER", "98683"), ("CAMAS", "98607"),
    ("VANCOUVER", "98665"), ("ORCHARDS", "98662"), ("WASHOUGAL", "98671"),
    ("RIDGEFIELD", "98642"), ("BATTLE GROUND", "98604"), ("YACOLT", "98675"),
)
# property use: (code, share in 1/1000)
USE_CODES = (("11", 780), ("12", 40), ("13", 30), ("18", 20), ("50", 40), ("91", 90))
SCHOOL_DISTRICTS = (
    ("037", "VANCOUVER SD 37"), ("114", "EVERGREEN SD 114"), ("117", "CAMAS SD 117"),
    ("122", "RIDGEFIELD SD 122"), ("119", "BATTLE GROUND SD 119"), ("098", "HOCKINSON SD 98"),
)
FIRE_DISTRICTS = (
    ("FD05", "CLARK COUNTY FIRE DISTRICT 5"), ("FD03", "CLARK COUNTY FIRE DISTRICT 3"),
    ("FD06", "CLARK COUNTY FIRE DISTRICT 6"), ("FD09", "CAMAS-WASHOUGAL FIRE"),
)
ZONING = (
    ("R1-6", "SINGLE FAMILY RESIDENTIAL 6,000 SF"),
    ("R1-10", "SINGLE FAMILY RESIDENTIAL 10,000 SF"),
    ("R-18", "MULTI-FAMILY RESIDENTIAL 18 DU/AC"), ("CC", "COMMUNITY COMMERCIAL"),
    ("IL", "LIGHT INDUSTRIAL"), ("R-5", "RURAL 5 ACRES"), ("MX", "MIXED USE"),
)

DISTRICT_TYPES = ("school", "fire", "voting_precinct", "zoning", "levy")
FIRST_SALE = date(2008, 1, 1)

_GEOMETRY = GeometryInfo("geom", SRID, "MULTIPOLYGON")
PARCELS = TableSpec(TableInfo("parcels", (
    Column("prop_id", "integer", False, "bigint"),
    Column("geo_id", "text", False),
    Column("situs_address", "text"),
    Column("owner_name", "text"),
    Column("legal_desc", "text"),
    Column("acres", "real", db_type="numeric(12,4)"),
    Column("land_value", "real", db_type="numeric(14,2)"),
    Column("impr_value", "real", db_type="numeric(14,2)"),
    Column("market_value", "real", db_type="numeric(14,2)"),
    Column("tax_area_code", "text"),
    Column("property_use_code", "text"),
    Column("year_built", "integer", db_type="integer"),
    Column("geom", "geometry"),
), ("prop_id",), _GEOMETRY), unique=(("geo_id",),))
DISTRICTS = TableSpec(TableInfo("districts", (
    Column("district_id", "integer", False, "integer"),
    Column("district_type", "text", False),
    Column("code", "text", False),
    Column("name", "text", False),
    Column("geom", "geometry"),
), ("district_id",), _GEOMETRY), numbered_key=True,
    choices=(("district_type", DISTRICT_TYPES),))
SALES = TableSpec(TableInfo("sales", (
    Column("sale_id", "integer", False, "bigint"),
    Column("prop_id", "integer", False, "bigint"),
    Column("sale_date", "date", False),
    Column("sale_price", "real", False, "numeric(14,2)"),
), ("sale_id",)), numbered_key=True, indexes=(("prop_id",),))


def create(store: CentralStore, n: int) -> dict[str, Any]:
    """Create the demo county of ``n`` parcels in ``store``, unless it has one already."""
    if store.table_exists("parcels"):
        have = store.count(store.table_info("parcels"))
        log.info("demo county already present with %d parcels", have)
        return {"created": False, "parcels": have}
    store.create_tables([(PARCELS, parcels(n)), (DISTRICTS, districts(n)),
                         (SALES, sales(n))])
    return {"created": True, "parcels": n}


def grid(n_parcels: int) -> tuple[int, int]:
    """(columns, rows) of blocks for ``n_parcels`` lots: a county about 4:3 wide."""
    blocks = max(1, math.ceil(n_parcels / LOTS_PER_BLOCK))
    ncols = max(1, math.ceil(math.sqrt(blocks * 4 / 3 * CELL_H / CELL_W)))
    return ncols, math.ceil(blocks / ncols)


_M = 2147483647  # 2^31 - 1
_A = 1103515245
#: what salt s adds to i * _A in :func:`_hash`, for the salts a parcel uses
_SALTED = [s * 1000003 * _A for s in range(11)]


def _hash(i: int, salt: int) -> int:
    """A deterministic integer hash of ``i`` in [0, 2^31-1), one per salt."""
    return (i * _A + _SALTED[salt]) % _M * 48271 % _M


def _ordinal(n: int) -> str:
    """1ST, 2ND, 3RD, 4TH ... 11TH, 12TH, 13TH ... 21ST."""
    suffix = "TH" if n % 100 in (11, 12, 13) else {1: "ST", 2: "ND", 3: "RD"}.get(n % 10, "TH")
    return f"{n}{suffix}"


def _street(number: int) -> str:
    """Every sixth street has a name, the others a number."""
    if number % 6 == 0:
        return STREET_NAMES[(number // 6) % len(STREET_NAMES)]
    return f"NE {_ordinal(number + 1)} ST"


#: ISO WKB of a little-endian MultiPolygon of one polygon of one ring of five points
_BOX_WKB = struct.pack("<BIIBIII", 1, 6, 1, 1, 3, 1, 5)
_POINTS = struct.Struct("<10d")


def box(x0: float, y0: float, x1: float, y1: float) -> bytes:
    """A rectangle as MultiPolygon WKB, counter-clockwise from its lower left corner."""
    return _BOX_WKB + _POINTS.pack(x0, y0, x1, y0, x1, y1, x0, y1, x0, y0)


#: property use code by ``hash % 1000``, from the codes' shares
_USE_BY_SHARE = [code for code, share in USE_CODES for _ in range(share)]


def _lot_size(bcol: int, brow: int) -> tuple[int, int]:
    """(width, depth) of every lot of the block in column ``bcol`` and row ``brow``."""
    return 60 + (bcol % 4) * 10, 120 + (brow % 3) * 15


def _values(h_use: int, h_value: int, area: int) -> tuple[str, int, int]:
    """(property use code, land value, improvement value) of a lot of ``area`` square
    feet, from its hashes of salts 3 and 4."""
    use = _USE_BY_SHARE[h_use % 1000]
    land = area * (6 + (h_value // 7) % 14) // 100 * 100
    impr = 0 if use == "91" else (120000 + h_value % 480000) // 100 * 100
    return use, land, impr


def _acres(area: int) -> float:
    """Square feet in acres, rounded half up to 4 decimals."""
    return float((Decimal(area) / 43560).quantize(Decimal("0.0001"), ROUND_HALF_UP))


def parcels(n: int) -> Iterator[tuple]:
    """The rows of parcels 1..n, in :data:`PARCELS` column order, block by block."""
    ncols, nrows = grid(n)
    for b in range(math.ceil(n / LOTS_PER_BLOCK)):
        brow, bcol = divmod(b, ncols)
        width, depth = _lot_size(bcol, brow)
        acres = _acres(width * depth)
        city, zip_code = CITIES[(bcol * 3) // ncols + 3 * ((brow * 3) // nrows)]
        school = (bcol * 3) // ncols + 3 * ((brow * 2) // nrows)
        fire = (bcol * 2) // ncols + 2 * ((brow * 2) // nrows)
        tax_area = str((school + 1) * 100 + fire + 1)
        # two rows of five lots, the first fronting street brow, the second brow + 1
        streets = [f"{_street(brow + r)}, {city} WA {zip_code}" for r in (0, 1)]
        plat = f"BLOCK {b % 40 + 1} {SUBDIVISIONS[(b // 40) % len(SUBDIVISIONS)]} PLAT"
        x_left = ORIGIN_X + bcol * CELL_W + 15
        y_low = ORIGIN_Y + brow * CELL_H + 30
        for j in range(min(LOTS_PER_BLOCK, n - b * LOTS_PER_BLOCK)):
            i = b * LOTS_PER_BLOCK + j + 1
            r, k = divmod(j, 5)
            use, land, impr = _values(_hash(i, 3), _hash(i, 4), width * depth)
            h_first, h_kind = _hash(i, 2), _hash(i, 6)
            last = LAST_NAMES[_hash(i, 1) % len(LAST_NAMES)]
            if h_kind % 29 == 0:
                owner = f"{last} FAMILY TRUST"
            elif h_kind % 31 == 0:
                owner = f"{last} HOLDINGS LLC"
            elif h_kind % 3 == 0:
                owner = (f"{last} {FIRST_NAMES[h_first % len(FIRST_NAMES)]} & "
                         f"{FIRST_NAMES[(h_first // 64) % len(FIRST_NAMES)]}")
            else:
                owner = f"{last} {FIRST_NAMES[h_first % len(FIRST_NAMES)]}"
            x0, y0 = x_left + k * width, y_low + r * depth
            yield (
                FIRST_PROP_ID + i,
                f"{b:06d}-{j + 1:03d}",
                f"{(bcol + 1) * 100 + k * 10 + (2 if r == 0 else 1)} {streets[r]}",
                owner,
                f"LOT {j + 1} {plat}",
                acres,
                land,
                impr,
                land + impr,
                tax_area,
                use,
                None if use == "91" else 1905 + _hash(i, 5) % 120,
                box(x0, y0, x0 + width, y0 + depth),
            )


def sales(n: int) -> Iterator[tuple]:
    """(prop_id, sale_date, sale_price) for about a quarter of parcels 1..n: a first
    sale for one parcel in four, a second for one in nineteen, parcel by parcel."""
    ncols, _ = grid(n)
    for i in range(1, n + 1):
        prop_id = FIRST_PROP_ID + i
        for salt, one_in in ((9, 4), (10, 19)):
            h = _hash(prop_id, salt)
            if h % one_in == 0:
                brow, bcol = divmod((i - 1) // LOTS_PER_BLOCK, ncols)
                width, depth = _lot_size(bcol, brow)
                _, land, impr = _values(_hash(i, 3), _hash(i, 4), width * depth)
                yield (prop_id, (FIRST_SALE + timedelta(days=h % 6500)).isoformat(),
                       (land + impr) * (70 + h % 45) // 100 // 100 * 100)


def districts(n_parcels: int) -> Iterator[tuple]:
    """(district_type, code, name, geometry) for every district."""
    ncols, nrows = grid(n_parcels)

    def split(nx: int, ny: int) -> Iterator[tuple[int, bytes]]:
        for iy in range(ny):
            for ix in range(nx):
                c0, c1 = ncols * ix // nx, ncols * (ix + 1) // nx
                r0, r1 = nrows * iy // ny, nrows * (iy + 1) // ny
                if c1 > c0 and r1 > r0:
                    yield iy * nx + ix, box(
                        ORIGIN_X + c0 * CELL_W, ORIGIN_Y + r0 * CELL_H,
                        ORIGIN_X + c1 * CELL_W, ORIGIN_Y + r1 * CELL_H,
                    )

    for idx, shape in split(3, 2):
        code, name = SCHOOL_DISTRICTS[idx]
        yield "school", code, name, shape
    for idx, shape in split(2, 2):
        code, name = FIRE_DISTRICTS[idx]
        yield "fire", code, name, shape
    # about 1,000 parcels (10 x 10 blocks) per voting precinct
    px, py = max(1, math.ceil(ncols / 10)), max(1, math.ceil(nrows / 10))
    for idx, shape in split(px, py):
        yield "voting_precinct", f"PCT {idx + 1:04d}", f"PRECINCT {idx + 1}", shape
    zx, zy = max(1, math.ceil(ncols / 6)), max(1, math.ceil(nrows / 6))
    for idx, shape in split(zx, zy):
        code, name = ZONING[(idx * 2654435761 >> 7) % len(ZONING)]
        yield "zoning", code, name, shape
    for idx, shape in split(4, 3):
        yield "levy", f"LV-{idx + 1:02d}", f"LEVY AREA {idx + 1}", shape
