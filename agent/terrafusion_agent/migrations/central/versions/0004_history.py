"""Central audit history: who changed which row when, and each changed column's old and
new value, written by the triggers that feed the change log, in the writer's transaction.

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-01

PostgreSQL
----------
``tf_history_tx`` holds one row per writing transaction: who (the login role, the
application, and for an agent's push its id, the analyst's OS user and host) and when.
The row is made at the transaction's first change; a deferred constraint trigger stamps
``committed_at`` with the clock at commit, so "as of T" means "what was committed by T".
``tf_history`` holds one entry per changed row: the key, the operation, and the changed
columns with their values as text (an insert: the whole new row, a delete: the whole old
row, an update: only what changed); the table's first geometry column is kept as a
geometry beside the texts (``old_geom``/``new_geom``), exact and compact, its text marked
``''``. ``feature`` is a number per (table, key) that the "one feature's history" index
sorts on: the key itself for a table keyed by one whole number (so a mass update appends
to the index), a hash otherwise (``tf_history_feature``).

Capture is set-based: three statement triggers per table (``tf_capture`` for updates, so
agents of 0.2.0 still find their trigger, ``tf_capture_ins`` and ``tf_capture_del``) with
transition tables, each running one statement that writes the change log and the history
from the rows the statement changed. The statement is generated from the table's columns
by ``tf_capture_sql`` and compiled into a function of the table's own (``tf_track``);
when the table's columns change later, that function notices and runs the statement
generated afresh for the new columns until ``init-central`` refreshes it. The functions
run as their owner (SECURITY DEFINER): writers need no privilege on the bookkeeping, and
cannot alter it.

The upgrade moves every table that has the row trigger of c0002 to the new capture and
records, per table, the moment its history starts (``history_start:<table>`` in
``tf_settings``); a table tracked later starts when its tracking is installed.

SQLite (the embedded central)
-----------------------------
The row triggers stay row triggers and write the history too (``tf_history`` with its
values in ``tf_history_values``, stored as SQLite holds them). SQLite has no session
variables and no commit hook: an agent's push names itself, its OS user and host in
``tf_origin`` and stamps its history transaction just before committing; a change made
by another program carries the time of its statement.
"""

from alembic import op

revision = "c0004"
down_revision = "c0003"
branch_labels = None
depends_on = None

#: the settings every capture statement runs under: its texts come out in one form
#: whatever the writer's session uses (dates, time zone, every digit of a double, hex
#: bytes), and its join plan stays sound however many rows the statement changed (the
#: plan is kept for the session, made for whatever size the first statement had)
CAPTURE_SETTINGS = ("SET DateStyle = 'ISO, YMD' SET TimeZone = 'UTC' "
                    "SET extra_float_digits = 1 SET bytea_output = 'hex' "
                    "SET IntervalStyle = 'postgres' SET enable_nestloop = off SET jit = off")


def upgrade() -> None:
    bind = op.get_bind()
    # the driver's own connection, in the migration's transaction: these bodies are full
    # of % and : that a parameter parser would take for placeholders
    raw = bind.connection.driver_connection
    if bind.dialect.name == "postgresql":
        schema = raw.execute("SELECT current_schema()").fetchone()[0]
        for statement in _postgresql(schema):
            raw.execute(statement)
        # every table tracked by the row trigger of c0002 starts its history now
        raw.execute("""
            DO $$ DECLARE r record; BEGIN
              FOR r IN SELECT tg.tgrelid AS rel, array_agg(a.attname::text
                         ORDER BY array_position(i.indkey, a.attnum)) AS pk
                       FROM pg_trigger tg
                       JOIN pg_proc p ON p.oid = tg.tgfoid AND p.proname = 'tf_capture'
                       JOIN pg_class c ON c.oid = tg.tgrelid
                       JOIN pg_index i ON i.indrelid = tg.tgrelid AND i.indisprimary
                       JOIN pg_attribute a ON a.attrelid = tg.tgrelid
                                          AND a.attnum = ANY(i.indkey)
                       WHERE tg.tgname = 'tf_capture'
                         AND c.relnamespace = (SELECT oid FROM pg_namespace
                                               WHERE nspname = current_schema())
                       GROUP BY tg.tgrelid
              LOOP
                PERFORM tf_track(r.rel, r.pk);
              END LOOP;
            END $$""")
    else:
        from terrafusion_agent.stores import sqlite_central

        for statement in _SQLITE:
            raw.execute(statement)
        names = [r[0] for r in raw.execute(
            "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name = "
            "'tf_capture_ins_' || tbl_name")]
        for name in names:
            sqlite_central.install_capture(raw, sqlite_central.describe_table(raw, name))


def downgrade() -> None:
    bind = op.get_bind()
    raw = bind.connection.driver_connection
    if bind.dialect.name == "postgresql":
        raw.execute("""
            DO $$ DECLARE r record; BEGIN
              FOR r IN SELECT tg.tgrelid::regclass AS rel, tg.tgfoid::regproc AS fn,
                              array_agg(a.attname::text
                                        ORDER BY array_position(i.indkey, a.attnum)) AS pk
                       FROM pg_trigger tg
                       JOIN pg_index i ON i.indrelid = tg.tgrelid AND i.indisprimary
                       JOIN pg_attribute a ON a.attrelid = tg.tgrelid
                                          AND a.attnum = ANY(i.indkey)
                       WHERE tg.tgname = 'tf_capture' AND tg.tgoldtable IS NOT NULL
                       GROUP BY tg.tgrelid, tg.tgfoid
              LOOP
                EXECUTE format('DROP TRIGGER tf_capture_ins ON %s', r.rel);
                EXECUTE format('DROP TRIGGER tf_capture_del ON %s', r.rel);
                EXECUTE format('CREATE OR REPLACE TRIGGER tf_capture AFTER INSERT OR UPDATE '
                               'OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION tf_capture(%s)',
                               r.rel, (SELECT string_agg(quote_literal(k), ', ')
                                       FROM unnest(r.pk) k));
                EXECUTE format('DROP FUNCTION %s()', r.fn);
              END LOOP;
            END $$""")
        for statement in (
                "DROP FUNCTION tf_track(regclass, text[], boolean)",
                "DROP FUNCTION tf_history_tracked(regclass)",
                "DROP FUNCTION tf_capture_sql(oid, text[], text, boolean)",
                "DROP FUNCTION tf_capture_layout(oid)",
                "DROP FUNCTION tf_history_feature(text, jsonb)",
                "DROP TABLE tf_history",
                "DROP TABLE tf_history_tx",
                "DROP FUNCTION tf_history_begin()",
                "DROP FUNCTION tf_history_stamp()",
                "DELETE FROM tf_settings WHERE key LIKE 'history\\_start:%'"):
            raw.execute(statement)
    else:
        from terrafusion_agent.stores import sqlite_central

        names = [r[0] for r in raw.execute(
            "SELECT tbl_name FROM sqlite_master WHERE type = 'trigger' AND name = "
            "'tf_capture_ins_' || tbl_name")]
        # the triggers of c0002 first: SQLite drops nothing a trigger still names
        for name in names:
            for statement in sqlite_central.capture_statements(
                    sqlite_central.describe_table(raw, name), history=False):
                raw.execute(statement)
        for statement in ("DROP TRIGGER tf_origin_session", "DROP TABLE tf_history_values",
                          "DROP TABLE tf_history", "DROP TABLE tf_history_tx",
                          "ALTER TABLE tf_origin DROP COLUMN history_tx",
                          "ALTER TABLE tf_origin DROP COLUMN host",
                          "ALTER TABLE tf_origin DROP COLUMN os_user",
                          "DELETE FROM tf_settings WHERE key LIKE 'history^_start:%' "
                          "ESCAPE '^' OR key LIKE 'capture^_columns:%' ESCAPE '^'"):
            raw.execute(statement)


_SQLITE = (
    "ALTER TABLE tf_origin ADD COLUMN os_user TEXT",
    "ALTER TABLE tf_origin ADD COLUMN host TEXT",
    # the history transaction of the agent's push under way; any new origin (a push
    # starting or ending, also one by an agent of 0.2.0) forgets the previous one
    "ALTER TABLE tf_origin ADD COLUMN history_tx INTEGER",
    """
    CREATE TRIGGER tf_origin_session AFTER UPDATE OF origin ON tf_origin BEGIN
      UPDATE tf_origin SET history_tx = NULL WHERE id = 1;
    END""",
    """
    CREATE TABLE tf_history_tx (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      committed_at TEXT NOT NULL,
      role TEXT,
      application TEXT,
      agent_id TEXT,
      os_user TEXT,
      host TEXT)""",
    "CREATE INDEX tf_history_tx_committed_at ON tf_history_tx (committed_at)",
    """
    CREATE TABLE tf_history (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      tx INTEGER NOT NULL,
      table_name TEXT NOT NULL,
      pk TEXT NOT NULL,
      op TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')))""",
    "CREATE INDEX tf_history_feature ON tf_history (table_name, pk, id)",
    "CREATE INDEX tf_history_tx_entries ON tf_history (tx)",
    # no declared type: a value keeps the storage class it had in the row
    """
    CREATE TABLE tf_history_values (
      entry INTEGER NOT NULL,
      col TEXT NOT NULL,
      old_value,
      new_value,
      PRIMARY KEY (entry, col)) WITHOUT ROWID""",
)


def _postgresql(schema: str) -> list[str]:
    path = 'SET search_path = "' + schema.replace('"', '""') + '", pg_catalog'
    return [
        """
        CREATE TABLE tf_history_tx (
          id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          xid bigint NOT NULL,
          committed_at timestamptz,
          role text,
          application text,
          agent_id text,
          os_user text,
          host text)""",
        "CREATE INDEX tf_history_tx_committed_at ON tf_history_tx (committed_at)",
        # an entry's id only orders it within its transaction (time orders the rest): a
        # session may take its ids a thousand at a time
        """
        CREATE TABLE tf_history (
          id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1000),
          tx bigint NOT NULL,
          table_name text NOT NULL,
          feature bigint NOT NULL,
          pk jsonb NOT NULL,
          op "char" NOT NULL CHECK (op IN ('I', 'U', 'D')),
          cols text[] NOT NULL,
          old_vals text[],
          new_vals text[],
          old_geom geometry,
          new_geom geometry,
          PRIMARY KEY (feature, id))""",
        # entries are appended in transaction order: a block range index finds those
        # of a span of transactions for almost nothing per insert
        "CREATE INDEX tf_history_tx_range ON tf_history USING brin (tx)",
        # only pg_catalog inside: no search_path of its own, so a query can inline it
        """
        CREATE FUNCTION tf_history_feature(t text, pk jsonb) RETURNS bigint
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
          SELECT CASE WHEN jsonb_array_length(pk) = 1 AND jsonb_typeof(pk -> 0) = 'number'
                       AND (pk ->> 0) ~ '^-?[0-9]{1,19}$'
                       AND (pk ->> 0)::numeric BETWEEN -9223372036854775808
                                                   AND 9223372036854775807
                      THEN (pk ->> 0)::bigint # (hashtext(t)::bigint << 52)
                      ELSE hashtextextended(t || pk::text, 0) END
        $fn$""",
        f"""
        CREATE FUNCTION tf_history_begin() RETURNS bigint LANGUAGE plpgsql {path} AS $fn$
        DECLARE
          x xid8 := pg_current_xact_id();
          mark text := current_setting('terrafusion.history_tx', true);
          found bigint;
        BEGIN
          -- the mark names this transaction's row; it is checked, not trusted, so no
          -- writer can file its changes under another transaction
          IF mark ~ ('^' || x::text || ':[0-9]{{1,18}}$') THEN
            SELECT id INTO found FROM tf_history_tx
            WHERE id = split_part(mark, ':', 2)::bigint AND xid = x::text::bigint
              AND committed_at IS NULL;
            IF found IS NOT NULL THEN
              RETURN found;
            END IF;
          END IF;
          INSERT INTO tf_history_tx (xid, role, application, agent_id, os_user, host)
          VALUES (x::text::bigint, session_user,
                  nullif(current_setting('application_name'), ''),
                  nullif(current_setting('terrafusion.origin', true), ''),
                  nullif(current_setting('terrafusion.os_user', true), ''),
                  nullif(current_setting('terrafusion.host', true), ''))
          RETURNING id INTO found;
          PERFORM set_config('terrafusion.history_tx', x::text || ':' || found, true);
          RETURN found;
        END
        $fn$""",
        f"""
        CREATE FUNCTION tf_history_stamp() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
        {path} AS $fn$
        BEGIN
          UPDATE tf_history_tx SET committed_at = clock_timestamp() WHERE id = NEW.id;
          RETURN NULL;
        END
        $fn$""",
        # deferred to the commit, so it fires once per transaction and as late as a
        # trigger can
        """
        CREATE CONSTRAINT TRIGGER tf_history_stamp AFTER INSERT ON tf_history_tx
        DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION tf_history_stamp()""",
        """
        CREATE FUNCTION tf_capture_layout(rel oid) RETURNS text LANGUAGE sql STABLE AS $fn$
          SELECT string_agg(quote_ident(attname) || ' ' || atttypid::text || ' '
                            || atttypmod::text, ',' ORDER BY attnum)
          FROM pg_attribute WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped
        $fn$""",
        f"""
        CREATE FUNCTION tf_capture_sql(rel oid, pk text[], event text,
                                       history boolean DEFAULT true)
        RETURNS text LANGUAGE plpgsql STABLE {path} AS $fn$
        DECLARE
          t text;
          hash_of_t bigint;
          geom_type oid := to_regtype('geometry');
          -- types whose equality tells every change apart; any other (numeric, float,
          -- json...) is compared by its stored bytes, so 1.0 -> 1.00 counts as a change
          plain oid[] := ARRAY['int2', 'int4', 'int8', 'text', 'varchar', 'bpchar', 'bool',
                               'date', 'timestamp', 'timestamptz', 'uuid',
                               'bytea']::regtype[]::oid[];
          who text := 'nullif(current_setting(''terrafusion.origin'', true), '''')';
          col record;
          n int := 0;
          g int;
          names text[] := '{{}}';
          lits text[] := '{{}}';
          changed text[] := '{{}}';
          ki int[];
          int_key boolean;
          side text;
          p text;
          f text;
          d text;
        BEGIN
          pk := ARRAY(SELECT unnest(pk));  -- a trigger's TG_ARGV counts from 0
          SELECT quote_literal(relname), hashtext(relname)::bigint << 52
            INTO STRICT t, hash_of_t FROM pg_class WHERE oid = rel;
          FOR col IN SELECT attname, atttypid FROM pg_attribute
                     WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped ORDER BY attnum
          LOOP
            n := n + 1;
            names := names || col.attname::text;
            lits := lits || quote_literal(col.attname);
            IF g IS NULL AND col.atttypid = geom_type THEN
              g := n;
            END IF;
            changed := changed || CASE WHEN col.atttypid = ANY(plain)
                                         OR col.atttypid = geom_type
              THEN format('o.%1$I IS DISTINCT FROM n.%1$I', col.attname)
              ELSE format('ROW(o.%1$I)::record *<> ROW(n.%1$I)::record', col.attname) END;
          END LOOP;
          ki := ARRAY(SELECT array_position(names, k) FROM unnest(pk) k);
          int_key := cardinality(pk) = 1 AND (
            SELECT atttypid FROM pg_attribute WHERE attrelid = rel AND attname = pk[1]
          ) IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype);

          IF event = 'UPDATE' AND NOT history THEN
            RETURN format(
              'INSERT INTO tf_change_log (table_name, pk, op, origin) '
              'SELECT %1$s, jsonb_build_array(%2$s), CASE WHEN o.%3$I IS NULL THEN ''I'' '
              'WHEN n.%3$I IS NULL THEN ''D'' ELSE ''U'' END, %4$s '
              'FROM tf_old o FULL JOIN tf_new n ON %5$s '
              'WHERE o.%3$I IS NULL OR n.%3$I IS NULL OR o *<> n',
              t, (SELECT string_agg(format('coalesce(n.%1$I, o.%1$I)', k), ', ')
                  FROM unnest(pk) k),
              pk[1], who,
              (SELECT string_agg(format('o.%1$I = n.%1$I', k), ' AND ') FROM unnest(pk) k));
          ELSIF event = 'UPDATE' THEN
            -- The rows before and after, paired by key: a row whose key changed is a
            -- delete of the old key and an insert of the new one. Subquery j works out
            -- once per row which columns changed, as the bits of a mask per 62 columns
            -- (every bit set for a row without a partner); OFFSET 0 keeps it a subquery,
            -- so the tests are not repeated wherever a bit is read.
            p := 'jsonb_build_array(' || (
              SELECT string_agg(format('coalesce(j.n%1$s, j.o%1$s)', k), ', ')
              FROM unnest(ki) k) || ')';
            f := CASE WHEN int_key
              THEN format('(coalesce(j.n%1$s, j.o%1$s))::int8 # %2$s', ki[1], hash_of_t)
              ELSE format('hashtextextended(%s || %s::text, 0)', t, p) END;
            d := format(
              'SELECT CASE WHEN j.ok IS NULL THEN ''I'' WHEN j.nk IS NULL THEN ''D'' '
              'ELSE ''U'' END::"char" AS op, %1$s AS pk, %2$s AS feature, (%3$s) AS cols, '
              'CASE WHEN j.ok IS NOT NULL THEN (%4$s) END AS ov, '
              'CASE WHEN j.nk IS NOT NULL THEN (%5$s) END AS nv, %6$s AS og, %7$s AS ng '
              'FROM (SELECT o.%8$I AS ok, n.%8$I AS nk, %9$s, %10$s '
              'FROM tf_old o FULL JOIN tf_new n ON %11$s OFFSET 0) j WHERE %12$s',
              p, f,
              (SELECT string_agg(format('CASE WHEN j.m%s & %s::int8 <> 0 THEN ARRAY[%s] END',
                                        (c - 1) / 62, 1::int8 << ((c - 1) % 62), lits[c]),
                                 ' || ') FROM generate_series(1, n) c),
              (SELECT string_agg(format('CASE WHEN j.m%s & %s::int8 <> 0 THEN ARRAY[%s] END',
                                        (c - 1) / 62, 1::int8 << ((c - 1) % 62),
                                        CASE WHEN c = g THEN ''''''
                                             ELSE format('(j.o%s)::text', c) END),
                                 ' || ') FROM generate_series(1, n) c),
              (SELECT string_agg(format('CASE WHEN j.m%s & %s::int8 <> 0 THEN ARRAY[%s] END',
                                        (c - 1) / 62, 1::int8 << ((c - 1) % 62),
                                        CASE WHEN c = g THEN ''''''
                                             ELSE format('(j.n%s)::text', c) END),
                                 ' || ') FROM generate_series(1, n) c),
              CASE WHEN g IS NULL THEN 'NULL::geometry'
                   ELSE format('CASE WHEN j.m%s & %s::int8 <> 0 THEN j.o%s END',
                               (g - 1) / 62, 1::int8 << ((g - 1) % 62), g) END,
              CASE WHEN g IS NULL THEN 'NULL::geometry'
                   ELSE format('CASE WHEN j.m%s & %s::int8 <> 0 THEN j.n%s END',
                               (g - 1) / 62, 1::int8 << ((g - 1) % 62), g) END,
              pk[1],
              (SELECT string_agg(format('o.%I AS o%s, n.%I AS n%s', names[c], c, names[c], c),
                                 ', ') FROM generate_series(1, n) c),
              (SELECT string_agg(format(
                  'CASE WHEN o.%1$I IS NULL OR n.%1$I IS NULL THEN -1::int8 ELSE %2$s END '
                  'AS m%3$s',
                  pk[1], (SELECT string_agg(format('CASE WHEN %s THEN %s::int8 ELSE 0::int8 END',
                                                   changed[c], 1::int8 << ((c - 1) % 62)),
                                            ' | ')
                          FROM generate_series(w * 62 + 1, least(n, w * 62 + 62)) c), w), ', ')
               FROM generate_series(0, (n - 1) / 62) w),
              (SELECT string_agg(format('o.%1$I = n.%1$I', k), ' AND ') FROM unnest(pk) k),
              (SELECT string_agg(format('j.m%s <> 0', w), ' OR ')
               FROM generate_series(0, (n - 1) / 62) w));
          ELSE
            -- an insert or a delete: every column of the rows on one side
            side := CASE WHEN event = 'INSERT' THEN 'tf_new' ELSE 'tf_old' END;
            p := 'jsonb_build_array(' || (
              SELECT string_agg(format('s.%I', k), ', ') FROM unnest(pk) k) || ')';
            IF NOT history THEN
              RETURN format('INSERT INTO tf_change_log (table_name, pk, op, origin) '
                            'SELECT %s, %s, %L, %s FROM %s s', t, p,
                            left(event, 1), who, side);
            END IF;
            f := CASE WHEN int_key THEN format('(s.%I)::int8 # %s', pk[1], hash_of_t)
                 ELSE format('hashtextextended(%s || %s::text, 0)', t, p) END;
            d := 'ARRAY[' || (SELECT string_agg(CASE WHEN c = g THEN ''''''
                                                     ELSE format('(s.%I)::text', names[c]) END,
                                                ', ')
                              FROM generate_series(1, n) c) || ']';
            d := format('SELECT %1$L::"char" AS op, %2$s AS pk, %3$s AS feature, '
                        'ARRAY[%4$s] AS cols, %5$s AS ov, %6$s AS nv, %7$s AS og, %8$s AS ng '
                        'FROM %9$s s',
                        left(event, 1), p, f, array_to_string(lits, ', '),
                        CASE WHEN event = 'INSERT' THEN 'NULL::text[]' ELSE d END,
                        CASE WHEN event = 'INSERT' THEN d ELSE 'NULL::text[]' END,
                        CASE WHEN event = 'INSERT' OR g IS NULL THEN 'NULL::geometry'
                             ELSE format('s.%I', names[g]) END,
                        CASE WHEN event = 'DELETE' OR g IS NULL THEN 'NULL::geometry'
                             ELSE format('s.%I', names[g]) END,
                        side);
          END IF;
          RETURN format(
            'WITH d AS MATERIALIZED (%1$s), '
            'c AS (INSERT INTO tf_change_log (table_name, pk, op, origin) '
            'SELECT %2$s, d.pk, d.op, %3$s FROM d), '
            'x AS (SELECT tf_history_begin() AS tx WHERE EXISTS (SELECT FROM d)) '
            'INSERT INTO tf_history (tx, table_name, feature, pk, op, cols, old_vals, '
            'new_vals, old_geom, new_geom) '
            'SELECT x.tx, %2$s, d.feature, d.pk, d.op, d.cols, d.ov, d.nv, d.og, d.ng '
            'FROM d CROSS JOIN x', d, t, who);
        END
        $fn$""",
        f"""
        CREATE FUNCTION tf_history_tracked(rel regclass) RETURNS boolean LANGUAGE sql STABLE
        {path} AS $fn$
          SELECT count(*) = 3 FROM pg_trigger tg JOIN pg_proc p ON p.oid = tg.tgfoid
          WHERE tg.tgrelid = rel AND tg.tgname IN ('tf_capture', 'tf_capture_ins',
                                                    'tf_capture_del')
            AND tg.tgenabled <> 'D' AND tg.tgtype & 1 = 0
            AND p.prosrc LIKE '%INSERT INTO tf_history (%'
        $fn$""",
        f"""
        CREATE FUNCTION tf_track(rel regclass, pk text[], history boolean DEFAULT true)
        RETURNS void LANGUAGE plpgsql {path} AS $fn$
        DECLARE
          fn text := format('%I.%I', current_schema(), 'tf_capture_' || left(md5(rel::text), 16));
          args text := (SELECT string_agg(quote_literal(k), ', ') FROM unnest(pk) k);
          had boolean;
        BEGIN
          -- no writer of the table is under way from here to the commit: whatever is
          -- committed after the moment taken below is captured
          EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', rel);
          had := tf_history_tracked(rel);
          EXECUTE format(
            'CREATE OR REPLACE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER '
            'SET search_path = %I, pg_catalog %s AS %L', fn, current_schema(), %(settings)L,
            format('BEGIN IF tf_capture_layout(TG_RELID) IS DISTINCT FROM %L THEN '
                   'EXECUTE tf_capture_sql(TG_RELID, TG_ARGV, TG_OP, %L); '
                   'ELSIF TG_OP = ''INSERT'' THEN %s; ELSIF TG_OP = ''UPDATE'' THEN %s; '
                   'ELSE %s; END IF; RETURN NULL; END',
                   tf_capture_layout(rel), history,
                   tf_capture_sql(rel, pk, 'INSERT', history),
                   tf_capture_sql(rel, pk, 'UPDATE', history),
                   tf_capture_sql(rel, pk, 'DELETE', history)));
          EXECUTE format('CREATE OR REPLACE TRIGGER tf_capture AFTER UPDATE ON %s '
                         'REFERENCING OLD TABLE AS tf_old NEW TABLE AS tf_new '
                         'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', rel, fn, args);
          EXECUTE format('CREATE OR REPLACE TRIGGER tf_capture_ins AFTER INSERT ON %s '
                         'REFERENCING NEW TABLE AS tf_new '
                         'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', rel, fn, args);
          EXECUTE format('CREATE OR REPLACE TRIGGER tf_capture_del AFTER DELETE ON %s '
                         'REFERENCING OLD TABLE AS tf_old '
                         'FOR EACH STATEMENT EXECUTE FUNCTION %s(%s)', rel, fn, args);
          IF history AND NOT had THEN
            INSERT INTO tf_settings (key, value)
            SELECT 'history_start:' || relname, to_char(clock_timestamp() AT TIME ZONE 'UTC',
                                                        'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
            FROM pg_class WHERE oid = rel
            ON CONFLICT (key) DO UPDATE SET value = excluded.value;
          END IF;
        END
        $fn$""".replace("%(settings)L", "'" + CAPTURE_SETTINGS.replace("'", "''") + "'"),
    ]
