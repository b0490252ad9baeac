"""The model and the oracle of the randomized sync test (``sync_model.py``).

**The model.** Every value written is unique to its cell (it carries the writer and the
operation number), so a value names the edit that made it. Each edit is recorded with
the value its writer saw in that cell when it wrote (``prev``): an agent sees its local
copy, the central writer sees central inside its transaction. A delete writes a
tombstone into every column of the row, seeing the row's values. The ``prev`` links
make a history per cell.

**The oracle.** An edit is *accounted for* when

- it is on the lineage of the central value (the central value, its ``prev``, that
  one's ``prev``, ...; for a missing row, the lineages of the effective deletes): it
  arrived, or a writer who had seen it overwrote it;
- or it is part of a recorded conflict (``conflicts list --all``) on its row and column,
  as the local or the central value (for a delete: a conflict with a missing side);
- or it was dropped by a "keep central" resolution of its own agent (the conflict's
  columns; the whole row when central had deleted it), or by a merge of its own agent
  that took central's side of its column, or a later edit that saw it is accounted for.

An edit is *delivered* once its agent ran a successful sync that started after it (and
after the last resolution on that row, and no conflict of its agent holds the row), or
once its value was seen centrally; central edits are delivered when they commit. After
every step that can change central, every delivered edit must be accounted for (else:
a loss), every central value must be one somebody wrote, and every row inserted offline
must exist at most once centrally. Every new conflict is checked to be true: each of its
columns was changed by two different writers to different values, central's value is
not the agent's own earlier push and not older than the base. After a successful sync
of one agent alone, its local copy equals central except for rows it holds in conflict,
and nothing is left pending. "Keep local" must get the local value through (or be a new
conflict); "keep central" must keep central's values of the conflicting columns and
still push the other columns edited locally. A merge (a side per conflicting column) is
"keep local" for the columns it takes locally and "keep central" for the others. At the
end, all conflicts are resolved,
every agent syncs twice without faults, and then: every edit is delivered and accounted
for, every copy equals central, ``verify`` exits 0 everywhere, nothing is pending.

The oracle is pure Python: ``test_sync_model.py`` tests it on histories made by hand,
so that it is known to fail when it should.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Optional

AGENTS = ("A", "B", "C")
CENTRAL = "W"
ABSENT = "<no row>"
GEOM = "geom"
KEYS = {"parcels": "prop_id", "sales": "sale_id"}
#: the column that marks a row inserted by the test
MARKER = {"parcels": "legal_desc", "sales": "sale_date"}


# --- values ---------------------------------------------------------------------------------


def side(keep, col: str) -> str:
    """The side a resolution kept for column ``col``: ``keep`` itself, or a merge's
    choice ({column: side}) for that column."""
    return keep if isinstance(keep, str) else keep[col]


def val(col: str, v: Any) -> Optional[str]:
    """A comparable, printable form of one value as central, a local copy or a conflict
    record shows it (numbers to 4 decimals, geometry as lower-case WKB hex)."""
    if v is None:
        return None
    if col == GEOM:
        return "g:" + (v.lower() if isinstance(v, str) else bytes(v).hex())
    if isinstance(v, bool):
        return f"n:{int(v)}.0000"
    if isinstance(v, (int, float, Decimal)):
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        return "n:" + str(d.quantize(Decimal("0.0001")))
    if isinstance(v, (datetime.date, datetime.datetime)):
        return "s:" + v.isoformat()
    return "s:" + str(v)


def show(v: Optional[str]) -> str:
    if v is None:
        return "NULL"
    if v.startswith("g:"):
        return f"<geometry {v[2:14]}..{v[-8:]}>"
    return repr(v[2:]) if v.startswith("s:") else v[2:] if v.startswith("n:") else v


# --- the model and its oracle ---------------------------------------------------------------


@dataclass(eq=False)
class Write:
    """One edit of one cell (an insert or a delete is one Write per column)."""

    id: int
    writer: str
    table: str
    key: Any
    col: str
    value: Optional[str]
    prev: Optional[str]
    kind: str  # set | insert | delete
    t: int
    step: int
    seen_central: Optional[int] = None  # the step at which central first showed it
    discarded: bool = False  # dropped by a "keep central" of its own agent
    excluded: set = field(default_factory=set)  # conflicts that no longer account for it

    def describe(self) -> str:
        what = {"set": f"set {self.col} = {show(self.value)}",
                "insert": f"inserted it ({self.col} = {show(self.value)})",
                "delete": "deleted it"}[self.kind]
        seen = "" if self.seen_central is None else f", on central at step {self.seen_central}"
        flags = "".join([seen, ", dropped by keep central" if self.discarded else "",
                         f", kept local in conflict {sorted(self.excluded)}"
                         if self.excluded else ""])
        return (f"{self.writer} at step {self.step} on {self.table} {self.key}: {what} "
                f"(saw {show(self.prev)}{flags})")


@dataclass
class Cell:
    writes: list = field(default_factory=list)
    by_value: dict = field(default_factory=dict)
    children: dict = field(default_factory=dict)  # prev value -> writes that saw it


@dataclass
class AgentView:
    """What the model knows of one agent."""

    name: str
    last_ok_start: int = -1  # clock at the start of its last successful sync
    conflicts: dict = field(default_factory=dict)  # id -> conflict record
    resolved_t: dict = field(default_factory=dict)  # row -> clock of its last resolution
    expectations: list = field(default_factory=list)  # (clock, conflict, keep)

    @property
    def open_rows(self) -> set:
        return {(c["table"], tuple(c["pk"])[0]) for c in self.conflicts.values()
                if c["resolved_at"] is None}

    def open_conflicts(self) -> list:
        return [c for c in self.conflicts.values() if c["resolved_at"] is None]


@dataclass
class Discrepancy:
    kind: str  # loss | false_conflict | duplicate | unknown_value | divergence | ...
    text: str
    count: int = 1


class Model:
    """Every edit, every conflict record and what each agent has delivered; the oracle."""

    def __init__(self, agents=AGENTS):
        self.clock = 0
        self.cells: dict[tuple, Cell] = {}
        self.initial: dict[tuple, dict] = {}  # (table, key) -> {col: value} at the start
        self.added: dict[str, Optional[str]] = {}  # column added centrally -> its default
        self.row_writes: dict[tuple, list] = {}
        self.row_conflicts: dict[tuple, list] = {}  # row -> [(agent, conflict)]
        self.first_seen: dict[tuple, dict] = {}  # (agent, id) -> the conflict as first listed
        self.inserted: dict[tuple, tuple] = {}  # (table, marker) -> (key, writer, step)
        self.agents = {a: AgentView(a) for a in agents}
        self._ids = 0

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    # --- recording ----------------------------------------------------------------------

    def load_initial(self, central: dict) -> None:
        for table, rows in central.items():
            for key, row in rows.items():
                self.initial[(table, key)] = dict(row)

    def initial_values(self, table: str, key: Any, col: str) -> set:
        row = self.initial.get((table, key))
        if row is not None and col in row:
            return {row[col]}
        if table == "parcels" and col in self.added:
            return {None, self.added[col]}
        return {ABSENT}

    def _add(self, writer, table, key, col, value, prev, kind, step) -> Write:
        self._ids += 1
        w = Write(self._ids, writer, table, key, col, value, prev, kind, self.tick(), step)
        cell = self.cells.setdefault((table, key, col), Cell())
        cell.writes.append(w)
        cell.by_value[value] = w
        cell.children.setdefault(prev, []).append(w)
        self.row_writes.setdefault((table, key), []).append(w)
        return w

    def known(self, table, key, col, value) -> bool:
        cell = self.cells.get((table, key, col))
        return (cell is not None and value in cell.by_value) or \
            value in self.initial_values(table, key, col)

    def record_set(self, writer, table, key, col, value, prev, step) -> Write:
        return self._add(writer, table, key, col, value, prev, "set", step)

    def record_insert(self, writer, table, key, row: dict, step) -> list:
        self.inserted[(table, row[MARKER[table]])] = (key, writer, step)
        return [self._add(writer, table, key, c, v, ABSENT, "insert", step)
                for c, v in row.items()]

    def record_delete(self, writer, table, key, seen: dict, step) -> list:
        self._ids += 1
        tomb = f"deleted by {writer} at step {step} (#{self._ids})"
        return [self._add(writer, table, key, c, tomb, v, "delete", step)
                for c, v in seen.items()]

    def add_column(self, col: str, default: Optional[str]) -> None:
        self.added[col] = default

    def key_in_use(self, table: str, key: Any) -> bool:
        return (table, key) in self.initial or (table, key) in self.row_writes

    # --- agents -------------------------------------------------------------------------

    def sync_succeeded(self, agent: str, started: int) -> None:
        view = self.agents[agent]
        view.last_ok_start = max(view.last_ok_start, started)

    def delivered(self, w: Write) -> bool:
        if w.writer == CENTRAL or w.seen_central is not None:
            return True
        view = self.agents[w.writer]
        row = (w.table, w.key)
        if row in view.open_rows:
            return False
        return view.last_ok_start > max(w.t, view.resolved_t.get(row, -1))

    def conflicts_listed(self, agent: str, records: list) -> list[Discrepancy]:
        """Take in an agent's ``conflicts list --all``; new records are checked to be true."""
        view = self.agents[agent]
        out = []
        for c in records:
            new = c["id"] not in view.conflicts
            view.conflicts[c["id"]] = c
            if not new:
                continue
            if c.get("kind", "conflict") != "conflict":
                out.append(Discrepancy(c.get("kind", "?"), f"{agent}'s edit of {c['table']} "
                                       f"{c['pk']} was {c.get('kind')}: {c.get('message')}"))
                continue
            row = (c["table"], tuple(c["pk"])[0])
            # as first listed: an open conflict's local side follows later edits
            first = self.first_seen[(agent, c["id"])] = dict(c)
            self.row_conflicts.setdefault(row, []).append((agent, first))
            out.extend(self._check_conflict(agent, c))
        return out

    def resolved(self, agent: str, conflict: dict, keep) -> None:
        """A resolution went through: "keep central" drops this agent's edits of the
        conflicting columns made so far (of the whole row when central deleted it); "keep
        local" must get them through, so this conflict no longer accounts for them.
        ``keep`` may also be a merge, {column: "local" or "central"}, of a conflict with
        both rows: each column as if kept that way."""
        t = self.tick()
        view = self.agents[agent]
        row = (conflict["table"], tuple(conflict["pk"])[0])
        view.resolved_t[row] = t
        cols = set(conflict["columns"])
        for w in self.row_writes.get(row, []):
            if w.writer != agent or w.t >= t:
                continue
            if keep == "central" and conflict["central"] is None:
                hit = True  # accepting central's delete drops every edit of the row
            elif w.kind == "delete":
                hit = conflict["local"] is None
            else:
                hit = w.col in cols
            if not hit:
                continue
            if side(keep, w.col) == "central" or (w.kind == "delete"
                                                  and conflict["central"] is None):
                w.discarded = True  # dropped, or (a delete) central had deleted the row too
            else:
                w.excluded.add((agent, conflict["id"]))
        view.expectations.append((t, conflict, keep))

    # --- the oracle ---------------------------------------------------------------------

    def _norm_row(self, table: str, row: Optional[dict]) -> Optional[dict]:
        if row is None:
            return None
        return {c: val(c, v) for c, v in row.items()}

    def writer_of(self, table, key, col, value) -> str:
        cell = self.cells.get((table, key, col))
        if cell is not None and value in cell.by_value:
            return cell.by_value[value].writer
        if value in self.initial_values(table, key, col):
            return "origin"
        return "nobody"

    def _lineage(self, cell: Optional[Cell], value) -> list:
        chain, seen = [], set()
        while value not in seen:
            seen.add(value)
            chain.append(value)
            w = cell.by_value.get(value) if cell is not None else None
            if w is None:
                break
            value = w.prev
        return chain

    def _check_conflict(self, agent: str, c: dict) -> list[Discrepancy]:
        table, key = c["table"], tuple(c["pk"])[0]
        cols = c["columns"]
        base, local, central = (self._norm_row(table, c[s]) for s in ("base", "local", "central"))
        where = f"conflict {c['id']} of agent {agent} on {table} {key} columns {cols}"
        problems, kind = [], "false_conflict"
        for side, row in (("base", base), ("local", local), ("central", central)):
            for col, v in (row or {}).items():
                if not self.known(table, key, col, v):
                    problems.append(f"its {side} value of {col} {show(v)} was never written")
        if table not in KEYS:
            problems.append("nobody edits this table")
        elif not cols:
            problems.append("it names no column")
        elif base is None:
            first = self.row_writes.get((table, key), [None])[0]
            if first is not None and first.kind == "insert" and first.writer == agent:
                who = self.inserted_by(table, central) or "nobody known"
                problems.append(f"a row this agent inserted offline met a central row under "
                                f"its key (central's row was inserted by {who})")
            else:  # brought back by "keep local" over a delete, and central has it again
                for col in cols:
                    mine, n = (local or {}).get(col), (central or {}).get(col)
                    wl, wn = (self.writer_of(table, key, col, v) for v in (mine, n))
                    if mine == n:
                        problems.append(f"both sides hold the same {col} {show(mine)}")
                    elif "origin" in (wl, wn):
                        problems.append(f"only {wn if wl == 'origin' else wl} changed {col}, "
                                        "the other side holds the original value")
                    elif wl == wn:
                        problems.append(f"{col}: {show(mine)} and {show(n)} both come from "
                                        f"{wl}")
        elif local is None:  # deleted here, updated centrally
            for col in cols:
                b, n = base.get(col), (central or {}).get(col)
                if b == n:
                    problems.append(f"central did not change {col} ({show(b)})")
                elif self.writer_of(table, key, col, n) == agent:
                    problems.append(f"central's {col} {show(n)} is this agent's own push")
        elif central is None:  # updated here, deleted centrally
            if not any(w.kind == "delete" and w.writer != agent
                       for w in self.row_writes.get((table, key), [])):
                problems.append("nobody else deleted the row")
            for col in cols:
                if base.get(col) == local.get(col):
                    problems.append(f"this agent did not change {col} ({show(base.get(col))})")
        else:
            for col in cols:
                b, mine, n = base.get(col), local.get(col), central.get(col)
                wl, wn = (self.writer_of(table, key, col, v) for v in (mine, n))
                if b == mine:
                    problems.append(f"this agent did not change {col} ({show(b)})")
                elif b == n:
                    problems.append(f"central did not change {col} ({show(b)})")
                elif mine == n:
                    problems.append(f"both sides hold the same {col} {show(mine)}")
                elif wn == agent:
                    problems.append(f"central's {col} {show(n)} is this agent's own push")
                elif wl == wn:
                    problems.append(f"{col}: {show(mine)} and {show(n)} both come from {wl}")
                elif n in self._lineage(self.cells.get((table, key, col)), b)[1:]:
                    kind = "loss"
                    problems.append(f"central's {col} {show(n)} is older than the base "
                                    f"{show(b)}: central lost a write")
        if not problems:
            return []
        return [Discrepancy(kind, f"{where}: " + "; ".join(problems) +
                            f"\n    base {c['base']}\n    local {c['local']}"
                            f"\n    central {c['central']}")]

    def inserted_by(self, table: str, row: Optional[dict]) -> Optional[str]:
        if row is None or table not in MARKER:
            return None
        found = self.inserted.get((table, row.get(MARKER[table])))
        return None if found is None else f"{found[1]} at step {found[2]}"

    def _in_conflict(self, w: Write) -> bool:
        for agent, c in self.row_conflicts.get((w.table, w.key), []):
            if (agent, c["id"]) in w.excluded:
                continue
            if w.kind == "delete":
                if c["local"] is None or c["central"] is None:
                    return True
            elif w.col in c["columns"]:
                for side in (c["local"], c["central"]):
                    if side is not None and val(w.col, side.get(w.col)) == w.value:
                        return True
        return False

    def _effective_deletes(self, cell: Cell) -> list:
        return [w for w in cell.writes if w.kind == "delete" and self.delivered(w)
                and not w.discarded and not self._in_conflict(w)]

    def check_central(self, central: dict, step: int = 0) -> list[Discrepancy]:
        """Everything decidable from central alone (see the module docstring)."""
        out: list[Discrepancy] = []
        for table, rows in central.items():
            for key, row in rows.items():
                for col, v in row.items():
                    cell = self.cells.get((table, key, col))
                    if cell is not None and v in cell.by_value:
                        w = cell.by_value[v]
                        w.seen_central = step if w.seen_central is None else w.seen_central
                    elif v not in self.initial_values(table, key, col):
                        out.append(Discrepancy(
                            "unknown_value", f"central {table} {key} {col} = {show(v)}, "
                            "a value nobody wrote there" + self._history(table, key, col)))
        out.extend(self._check_markers(central))
        losses = []
        for (table, key, col), cell in self.cells.items():
            row = central.get(table, {}).get(key)
            now = ABSENT if row is None else row.get(col, ABSENT)
            lineage = set(self._lineage(cell, now))
            if now == ABSENT:
                for d in self._effective_deletes(cell):
                    lineage.update(self._lineage(cell, d.value))
            memo: dict = {}
            for w in cell.writes:
                if self.delivered(w) and not self._accounted(cell, w, lineage, memo):
                    losses.append(f"{w.describe()}; central has {show(now)}"
                                  + self._history(table, key, col))
        if losses:
            out.append(Discrepancy("loss", f"{len(losses)} edit(s) lost:\n  " +
                                   "\n  ".join(losses), len(losses)))
        return out

    def _accounted(self, cell: Cell, w: Write, lineage: set, memo: dict) -> bool:
        if w.id in memo:
            return memo[w.id]
        memo[w.id] = False  # no cycles: a write only sees older values
        ok = (w.discarded or w.value in lineage or self._in_conflict(w)
              or any(not self.delivered(child) or self._accounted(cell, child, lineage, memo)
                     for child in cell.children.get(w.value, [])))
        memo[w.id] = ok
        return ok

    def _history(self, table, key, col) -> str:
        cell = self.cells.get((table, key, col))
        lines = [f"initially {', '.join(show(v) for v in self.initial_values(table, key, col))}"]
        lines += [w.describe() for w in (cell.writes if cell else [])]
        lines += [f"conflict {c['id']} of {a}: columns {c['columns']}, resolution "
                  f"{c['resolution']}" for a, c in self.row_conflicts.get((table, key), [])]
        return "\n      history: " + "\n               ".join(lines)

    def _check_markers(self, central: dict) -> list[Discrepancy]:
        out = []
        for table, col in MARKER.items():
            seen: dict = {}
            for key, row in central.get(table, {}).items():
                if (table, row.get(col)) in self.inserted:
                    seen.setdefault(row[col], []).append(key)
            for marker, keys in seen.items():
                expect, writer, step = self.inserted[(table, marker)]
                if keys != [expect]:
                    out.append(Discrepancy(
                        "duplicate", f"the {table} row inserted by {writer} at step {step} "
                        f"under key {expect} is centrally under key(s) {keys}"))
        return out

    def check_copy(self, agent: str, local: dict, central: dict) -> list[Discrepancy]:
        """After a successful sync of this agent alone: its copy equals central except
        for the rows it holds in conflict."""
        held = self.agents[agent].open_rows
        diffs = []
        for table in KEYS:
            lrows, crows = local.get(table, {}), central.get(table, {})
            lcols = next(iter(lrows.values()), {}).keys()
            ccols = next(iter(crows.values()), {}).keys()
            if lrows and crows and set(lcols) != set(ccols):
                diffs.append(f"{table}: local columns {sorted(lcols)}, central {sorted(ccols)}")
                continue
            for key in sorted(set(lrows) | set(crows), key=str):
                if (table, key) in held:
                    continue
                lr, cr = lrows.get(key), crows.get(key)
                if lr is None or cr is None:
                    diffs.append(f"{table} {key}: only {'central' if lr is None else 'local'}"
                                 f" has the row" + self._row_history(table, key))
                    continue
                for col in cr:
                    if lr.get(col) != cr[col]:
                        diffs.append(f"{table} {key} {col}: local {show(lr.get(col))}, "
                                     f"central {show(cr[col])}" + self._history(table, key, col))
        if not diffs:
            return []
        return [Discrepancy("divergence", f"agent {agent}'s copy differs from central after "
                            f"its sync ({len(diffs)}):\n  " + "\n  ".join(diffs[:8]))]

    def _row_history(self, table, key) -> str:
        ws = self.row_writes.get((table, key), [])
        lines = sorted({f"{w.writer} {w.kind} at step {w.step}" for w in ws})
        return ("\n      row history: " + "; ".join(lines)) if lines else ""

    def check_resolutions(self, agent: str, central: dict) -> list[Discrepancy]:
        """After this agent's next successful sync, "keep central" shows centrally."""
        view = self.agents[agent]
        out, left = [], []
        for t, c, keep in view.expectations:
            if view.last_ok_start <= t:
                left.append((t, c, keep))
                continue
            kept_central = [col for col in c["columns"] if side(keep, col) == "central"]
            if not kept_central:
                continue  # keep local: the exclusion in resolved() makes a drop a loss
            table, key = c["table"], tuple(c["pk"])[0]
            row = central.get(table, {}).get(key)
            first = self.first_seen.get((agent, c["id"]), c)
            if row is None or first["local"] is None:
                continue  # (another agent may bring a deleted row back: not this one)
            for col in kept_central:
                mine = val(col, first["local"].get(col))
                if mine is not None and row.get(col) == mine:
                    out.append(Discrepancy(
                        "resolution", f"{agent} kept central in conflict {c['id']} on "
                        f"{table} {key}, yet its local {col} {show(mine)} reached central"))
        view.expectations = left
        return out

    def check_final(self) -> list[Discrepancy]:
        late = [w for cell in self.cells.values() for w in cell.writes if not self.delivered(w)]
        if not late:
            return []
        return [Discrepancy("loss", f"{len(late)} edit(s) never delivered after the final "
                            "syncs:\n  " + "\n  ".join(w.describe() for w in late[:10]),
                            len(late))]
