"""The deterministic synthetic demo county (parcels, districts, sales) in EPSG:2927.

The county is a grid of city blocks separated by streets. Each block holds two rows of
five lots whose width and depth vary from block to block; lots front numbered and named
streets and get real-looking owners, addresses, legal descriptions and values. The same
``N`` always gives the same county: every attribute is a pure function of the parcel
number (an integer hash computed in SQL), never of a random generator.

Parcels and sales are generated set-based inside the database; the few hundred district
rectangles are computed here and inserted in one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SRID = 2927  # NAD83(HARN) / Washington South (ftUS)
TABLES = ("parcels", "districts", "sales")  # what a store's create_demo makes
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


@dataclass(frozen=True)
class Dialect:
    """The few SQL fragments in which PostgreSQL and SpatiaLite differ."""

    name: str

    def series(self, n: int) -> str:
        if self.name == "postgis":
            return f"seq(i) AS (SELECT generate_series(1::bigint, {int(n)}::bigint))"
        return f"seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {int(n)})"

    def envelope(self, x0: str, y0: str, x1: str, y1: str) -> str:
        if self.name == "postgis":
            return f"ST_Multi(ST_MakeEnvelope({x0}, {y0}, {x1}, {y1}, {SRID}))"
        return f"CastToMultiPolygon(BuildMbr({x0}, {y0}, {x1}, {y1}, {SRID}))"

    def zero_pad(self, expr: str, width: int) -> str:
        if self.name == "postgis":
            return f"lpad(({expr})::text, greatest({width}, length(({expr})::text)), '0')"
        return f"printf('%0{width}d', {expr})"

    def add_days(self, date: str, days: str) -> str:
        if self.name == "postgis":
            return f"(DATE '{date}' + ({days})::int)"
        return f"date('{date}', '+' || ({days}) || ' days')"


def grid(n_parcels: int) -> tuple[int, int]:
    """(columns, rows) of blocks for ``n_parcels`` lots: a county about 4:3 wide."""
    blocks = max(1, math.ceil(n_parcels / LOTS_PER_BLOCK))
    ncols = max(1, math.ceil(math.sqrt(blocks * 4 / 3 * CELL_H / CELL_W)))
    return ncols, math.ceil(blocks / ncols)


def _hash(expr: str, salt: int) -> str:
    """A deterministic integer hash in [0, 2^31-1) evaluated identically by both dialects."""
    return (
        f"(((({expr} + {salt * 1000003}) * 1103515245) % 2147483647) * 48271 % 2147483647)"
    )


def _values(name: str, items) -> str:
    rows = ", ".join(
        "(" + str(i) + ", " + ", ".join("'" + str(v).replace("'", "''") + "'" for v in item) + ")"
        for i, item in enumerate(items)
    )
    width = len(items[0])
    cols = ", ".join(["idx"] + [f"v{k}" for k in range(width)])
    return f"{name}({cols}) AS (VALUES {rows})"


def _ordinal(expr: str) -> str:
    return (
        f"CAST({expr} AS TEXT) || CASE WHEN ({expr}) % 100 IN (11, 12, 13) THEN 'TH' "
        f"WHEN ({expr}) % 10 = 1 THEN 'ST' WHEN ({expr}) % 10 = 2 THEN 'ND' "
        f"WHEN ({expr}) % 10 = 3 THEN 'RD' ELSE 'TH' END"
    )


def parcels_select(dialect: Dialect, n: int) -> str:
    """SELECT producing the parcels' columns in table order for parcels 1..n."""
    ncols, nrows = grid(n)
    use_case = []
    acc = 0
    for code, share in USE_CODES:
        acc += share
        use_case.append(f"WHEN h_use % 1000 < {acc} THEN '{code}'")
    street_named = [(s,) for s in STREET_NAMES]
    return f"""
WITH RECURSIVE {dialect.series(n)},
{_values("last_names", [(s,) for s in LAST_NAMES])},
{_values("first_names", [(s,) for s in FIRST_NAMES])},
{_values("streets", street_named)},
{_values("subdivisions", [(s,) for s in SUBDIVISIONS])},
{_values("cities", CITIES)},
g AS (
  SELECT i, (i - 1) / {LOTS_PER_BLOCK} AS b, (i - 1) % {LOTS_PER_BLOCK} AS j FROM seq
),
p AS (
  SELECT i, b, j, j / 5 AS r, j % 5 AS k, b % {ncols} AS bcol, b / {ncols} AS brow,
         60 + ((b % {ncols}) % 4) * 10 AS lw, 120 + ((b / {ncols}) % 3) * 15 AS ld,
         {_hash("i", 1)} AS h_owner, {_hash("i", 2)} AS h_first, {_hash("i", 3)} AS h_use,
         {_hash("i", 4)} AS h_value, {_hash("i", 5)} AS h_year, {_hash("i", 6)} AS h_kind
  FROM g
),
q AS (
  SELECT p.*,
         CASE {" ".join(use_case)} END AS use_code,
         brow + r AS street_no,
         ((bcol * 3) / {ncols}) + 3 * ((brow * 3) / {nrows}) AS city_idx,
         ((bcol * 3) / {ncols}) + 3 * ((brow * 2) / {nrows}) AS school_idx,
         ((bcol * 2) / {ncols}) + 2 * ((brow * 2) / {nrows}) AS fire_idx
  FROM p
),
v AS (
  SELECT q.*,
         CASE WHEN use_code = '91' THEN 0
              ELSE (120000 + (h_value % 480000)) / 100 * 100 END AS impr,
         (lw * ld * (6 + (h_value / 7) % 14)) / 100 * 100 AS land
  FROM q
)
SELECT
  {FIRST_PROP_ID} + i AS prop_id,
  {dialect.zero_pad("b", 6)} || '-' || {dialect.zero_pad("j + 1", 3)} AS geo_id,
  CAST((bcol + 1) * 100 + k * 10 + (CASE WHEN r = 0 THEN 2 ELSE 1 END) AS TEXT) || ' ' ||
    CASE WHEN street_no % 6 = 0
         THEN (SELECT v0 FROM streets WHERE idx = (street_no / 6) % {len(STREET_NAMES)})
         ELSE 'NE ' || {_ordinal("street_no + 1")} || ' ST' END ||
    ', ' || cities.v0 || ' WA ' || cities.v1 AS situs_address,
  CASE WHEN h_kind % 29 = 0 THEN ln.v0 || ' FAMILY TRUST'
       WHEN h_kind % 31 = 0 THEN ln.v0 || ' HOLDINGS LLC'
       WHEN h_kind % 3 = 0 THEN ln.v0 || ' ' || fn.v0 || ' & ' || fn2.v0
       ELSE ln.v0 || ' ' || fn.v0 END AS owner_name,
  'LOT ' || CAST(j + 1 AS TEXT) || ' BLOCK ' || CAST(b % 40 + 1 AS TEXT) || ' ' ||
    sd.v0 || ' PLAT' AS legal_desc,
  round(lw * ld / 43560.0, 4) AS acres,
  land AS land_value,
  impr AS impr_value,
  land + impr AS market_value,
  CAST((school_idx + 1) * 100 + fire_idx + 1 AS TEXT) AS tax_area_code,
  use_code AS property_use_code,
  CASE WHEN use_code = '91' THEN NULL ELSE 1905 + h_year % 120 END AS year_built,
  {dialect.envelope(
      f"{ORIGIN_X} + bcol * {CELL_W} + 15 + k * lw",
      f"{ORIGIN_Y} + brow * {CELL_H} + 30 + r * ld",
      f"{ORIGIN_X} + bcol * {CELL_W} + 15 + (k + 1) * lw",
      f"{ORIGIN_Y} + brow * {CELL_H} + 30 + (r + 1) * ld",
  )} AS geom
FROM v
JOIN last_names ln ON ln.idx = h_owner % {len(LAST_NAMES)}
JOIN first_names fn ON fn.idx = h_first % {len(FIRST_NAMES)}
JOIN first_names fn2 ON fn2.idx = (h_first / 64) % {len(FIRST_NAMES)}
JOIN subdivisions sd ON sd.idx = (b / 40) % {len(SUBDIVISIONS)}
JOIN cities ON cities.idx = city_idx
"""


def sales_select(dialect: Dialect) -> str:
    """SELECT producing (prop_id, sale_date, sale_price) for about a quarter of the parcels."""
    h = _hash("prop_id", 9)
    return f"""
WITH s AS (
  SELECT prop_id, market_value, {h} AS h, 1 AS n FROM parcels
  UNION ALL
  SELECT prop_id, market_value, {_hash("prop_id", 10)} AS h, 2 AS n FROM parcels
)
SELECT prop_id,
       {dialect.add_days("2008-01-01", "h % 6500")} AS sale_date,
       CAST(market_value AS BIGINT) * (70 + h % 45) / 100 / 100 * 100 AS sale_price
FROM s
WHERE (n = 1 AND h % 4 = 0) OR (n = 2 AND h % 19 = 0)
ORDER BY prop_id, n
"""


def districts(n_parcels: int) -> list[tuple[str, str, str, tuple[float, float, float, float]]]:
    """(district_type, code, name, (xmin, ymin, xmax, ymax)) for every district."""
    ncols, nrows = grid(n_parcels)
    out = []

    def split(nx: int, ny: int):
        for iy in range(ny):
            for ix in range(nx):
                c0, c1 = ncols * ix // nx, ncols * (ix + 1) // nx
                r0, r1 = nrows * iy // ny, nrows * (iy + 1) // ny
                if c1 > c0 and r1 > r0:
                    yield iy * nx + ix, (
                        ORIGIN_X + c0 * CELL_W, ORIGIN_Y + r0 * CELL_H,
                        ORIGIN_X + c1 * CELL_W, ORIGIN_Y + r1 * CELL_H,
                    )

    for idx, box in split(3, 2):
        code, name = SCHOOL_DISTRICTS[idx]
        out.append(("school", code, name, box))
    for idx, box in split(2, 2):
        code, name = FIRE_DISTRICTS[idx]
        out.append(("fire", code, name, box))
    # about 1,000 parcels (10 x 10 blocks) per voting precinct
    px, py = max(1, math.ceil(ncols / 10)), max(1, math.ceil(nrows / 10))
    for idx, box in split(px, py):
        out.append(("voting_precinct", f"PCT {idx + 1:04d}", f"PRECINCT {idx + 1}", box))
    zx, zy = max(1, math.ceil(ncols / 6)), max(1, math.ceil(nrows / 6))
    for idx, box in split(zx, zy):
        code, name = ZONING[(idx * 2654435761 >> 7) % len(ZONING)]
        out.append(("zoning", code, name, box))
    for idx, box in split(4, 3):
        out.append(("levy", f"LV-{idx + 1:02d}", f"LEVY AREA {idx + 1}", box))
    return out
