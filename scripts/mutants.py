"""``make mutants``: does the suite notice when a promise of the README breaks?

Each mutant below is one small change to the agent that a user would pay for (an edit
lost, a late transaction skipped, a password in a log line, a colleague's file
clobbered). The script copies the tree to a temporary folder once, and for each mutant
changes that copy (never the working tree), runs the tests named for it with
``pytest -x -q`` and reports *killed* (a test failed) or *survived* (all passed). It
exits non-zero if any mutant survived, no longer applies (its snippet is not found
exactly once: update the snippet after a rewrite), or broke the run itself.

Usage: ``python scripts/mutants.py [--list] [--baseline] [--tests T ...] [NAME ...]``
(``--baseline`` first runs every named test on the unchanged copy; ``--tests`` runs
other tests than the named ones, e.g. to see whether an end-to-end test also kills a
mutant a unit test kills first).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "agent/terrafusion_agent/"
TWOWAY = "tests/test_sync_twoway.py::"
FAULTS = "tests/test_sync_faults.py::"
#: pytest's exit code when tests ran and some failed; anything else but 0 is a broken run
TESTS_FAILED = 1


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    original: str
    replacement: str
    tests: tuple[str, ...]
    #: what a user would lose if this shipped
    breaks: str


MUTANTS: tuple[Mutant, ...] = (
    # --- pull ---------------------------------------------------------------------------
    Mutant("change-window", PKG + "stores/postgis.py",
           "AND NOT pg_visible_in_snapshot(tx, %s::pg_snapshot) ",
           "AND tx >= pg_snapshot_xmax(%s::pg_snapshot) ",
           (TWOWAY + "test_a_central_transaction_open_across_a_sync_is_pulled_once_it_commits",),
           "a central transaction open across a sync is never pulled"),
    Mutant("origin-filter-postgis", PKG + "stores/postgis.py",
           "HAVING bool_or(origin IS DISTINCT FROM %s)",
           "HAVING bool_or(origin IS DISTINCT FROM %s OR true)",
           (TWOWAY + "test_the_agent_does_not_pull_back_what_it_pushed",),
           "the agent pulls back every row it pushed"),
    Mutant("origin-filter-spatialite", PKG + "stores/sqlite_central.py",
           "HAVING sum(origin IS NOT ?) > 0", "HAVING sum(origin IS NOT ?) >= 0",
           (TWOWAY + "test_the_agent_does_not_pull_back_what_it_pushed",),
           "the agent pulls back every row it pushed (embedded central)"),
    Mutant("pull-over-pending-edits", PKG + "sync/pull.py",
           "waiting = local.pending_keys(info.name) - set(refetch)", "waiting = set()",
           (TWOWAY + "test_same_column_edits_are_a_recorded_conflict_and_central_is_untouched",),
           "a pull overwrites a local edit not yet pushed"),
    # --- push ---------------------------------------------------------------------------
    Mutant("push-drops-updates", PKG + "sync/push.py",
           "ws.update(info, [(o.key, o.central_update) for o in outcomes])",
           "pass",
           (TWOWAY + "test_local_update_reaches_central",),
           "a local edit is settled without reaching central"),
    Mutant("push-reopens-manual-conflicts", PKG + "sync/push.py",
           'local.set_entry_state(entry["id"], "conflict")', "pass",
           (TWOWAY + "test_same_column_edits_are_a_recorded_conflict_and_central_is_untouched",),
           "a waiting conflict is recorded again at every sync"),
    Mutant("receipts-ignored", PKG + "sync/push.py",
           "receipts = central.receipts(agent_id, batches)", "receipts = {}",
           (FAULTS + "test_killed_again_and_again_at_every_boundary_converges",),
           "a push committed centrally but never settled makes the agent conflict with itself"),
    Mutant("settle-over-later-edit", PKG + "sync/push.py",
           "    if untouched:\n        if record", "    if entry is not None:\n        if record",
           (FAULTS + "test_unsettled_push_is_recognised_after_both_sides_edited_the_rows_again",),
           "an edit made while the push ran is overwritten by the settle"),
    Mutant("refused-row-stalls-queue", PKG + "sync/push.py",
           "        if ws.refusal(exc) is None:\n            raise\n        if len",
           "        if True:\n            raise\n        if len",
           ("tests/test_sync_rejected.py",),
           "one row central refuses stops every other edit from reaching it"),
    Mutant("rebase-forgets-unseen-values", PKG + "sync/push.py",
           "base.update({c: pushed_local[c] for c in later",
           "base.update({c: pushed_local[c] for c in ()",
           (FAULTS + "test_a_later_edit_of_a_value_central_merged_but_never_showed_is_a_conflict",),
           "after an unsettled push, an edit of a value never shown overwrites central's"),
    Mutant("push-not-durable", PKG + "stores/postgis.py",
           "                    _durable(cur)\n"
           "                    cur.execute(\"SELECT set_config(",
           "                    cur.execute(\"SELECT set_config(",
           (FAULTS + "test_central_stopped_at_fault_point_converges",),
           "a push the server acknowledged is lost when it crashes"),
    Mutant("checkpoint-not-durable", PKG + "stores/postgis.py",
           "                _durable(cur)\n                cur.execute(\n                    "
           "\"INSERT INTO tf_agents",
           "                cur.execute(\n                    \"INSERT INTO tf_agents",
           (FAULTS + "test_central_stopped_at_fault_point_converges",),
           "after a server crash, central changes are never pulled"),
    Mutant("resolution-forgets-unseen-values", PKG + "sync/conflicts.py",
           "new.update({c: base[c] for c in mine", "new.update({c: base[c] for c in ()",
           (TWOWAY + "test_an_edit_made_on_a_stale_row_in_conflict_is_a_new_conflict_not_an_"
            "overwrite",),
           "an edit made on a stale row in conflict overwrites central after a resolution"),
    Mutant("keep-local-over-delete-drops-base", PKG + "sync/conflicts.py",
           'local.put_entry(info.name, key, "insert", encode_base(info, base))',
           'local.put_entry(info.name, key, "insert", None)',
           (TWOWAY + "test_keep_local_over_a_delete_merges_with_a_row_made_again_meanwhile",),
           "a row kept over a delete conflicts on columns only one side changed"),
    Mutant("keep-central-drops-later-edits", PKG + "sync/conflicts.py",
           "kept = {c: now[c] for c in mine if c not in columns}", "kept = {}",
           (TWOWAY + "test_keep_central_keeps_an_edit_made_after_detection_in_another_column",),
           "keeping central silently drops edits made after the conflict"),
    # --- reconciliation -----------------------------------------------------------------
    Mutant("same-column-edits-merge", PKG + "sync/conflicts.py",
           "clash = sorted(c for c in mine & theirs if not same(info, c, local, central))",
           "clash = []",
           (TWOWAY + "test_same_column_edits_are_a_recorded_conflict_and_central_is_untouched",),
           "the same column edited on both sides: local silently overwrites central"),
    Mutant("merge-keeps-central-changes-away", PKG + "sync/conflicts.py",
           "    if theirs - mine:\n", "    if False:\n",
           (TWOWAY + "test_disjoint_column_edits_merge",),
           "a merge pushes local's columns but never brings central's to local"),
    Mutant("delete-over-central-update", PKG + "sync/conflicts.py",
           "if base is not None and rows_equal(info, base, central):",
           "if base is not None:",
           (TWOWAY + "test_local_delete_against_central_update_is_a_conflict",),
           "a local delete silently discards a central update"),
    Mutant("central-wins-forgets-local", PKG + "sync/conflicts.py",
           'o.resolution = "central_wins"', 'o.resolution, o.local = "central_wins", None',
           (TWOWAY + "test_a_policy_records_the_values_it_overwrote",),
           "central_wins overwrites local values without recording them"),
    Mutant("local-wins-forgets-central", PKG + "sync/conflicts.py",
           "            _merge(info, o, mine, theirs)\n    return o",
           "            _merge(info, o, mine, theirs)\n            o.central = None\n    return o",
           (TWOWAY + "test_a_policy_records_the_values_it_overwrote",),
           "local_wins overwrites central values without recording them"),
    Mutant("verify-hides-pending-edits", PKG + "sync/verify.py",
           'entry["pending_edits"] = local.pending_count(name)', 'entry["pending_edits"] = 0',
           (TWOWAY + "test_verify_reports_pending_edits",),
           "verify says nothing of edits waiting to be pushed"),
    # --- pending edits ------------------------------------------------------------------
    Mutant("discard-forgets-central", PKG + "sync/pending.py",
           '    local.put_entry(info.name, key, "refetch", None, state="refetch")',
           "    local.drop_change(info.name, key)",
           ("tests/test_pending.py::test_discarding_a_refused_edit_settles_it_and_the_next"
            "_sync_brings_centrals_row",),
           "a discarded row keeps a stale version that central replaced meanwhile"),
    Mutant("discard-beside-a-sync", PKG + "service/daemon.py",
           '            with self.scheduler.exclusive("discarding pending edits", '
           "RESOLVE_WAIT_SECONDS):\n                result = discard(self.config, edits)",
           "            result = discard(self.config, edits)",
           ("tests/test_pending_api.py::test_a_discard_sent_during_a_sync_waits_for_it_then"
            "_applies",),
           "a discard asked for during a sync runs beside it, on the rows it sends"),
    # --- secrets ------------------------------------------------------------------------
    Mutant("redact-url-password", PKG + "redact.py",
           "    text = _URL_PASSWORD.sub(", "    text = text or _URL_PASSWORD.sub(",
           ("tests/test_redact.py",), "a password in a URL reaches messages"),
    Mutant("redact-password-setting", PKG + "redact.py",
           "    text = _KV_PASSWORD.sub(", "    text = text or _KV_PASSWORD.sub(",
           ("tests/test_redact.py",), "a libpq password= setting reaches messages"),
    Mutant("redact-password-parameter", PKG + "redact.py",
           "    text = _QUERY_PASSWORD.sub(", "    text = text or _QUERY_PASSWORD.sub(",
           ("tests/test_redact.py",), "a ?password= URL parameter reaches messages"),
    Mutant("redact-bearer", PKG + "redact.py",
           "    text = _BEARER.sub(", "    text = text or _BEARER.sub(",
           ("tests/test_redact.py", "tests/test_service.py::test_no_password_or_token_in_logs_"
            "bodies_or_errors"), "a bearer token a client sent reaches messages"),
    Mutant("redact-pgpassword", PKG + "redact.py",
           'secret = os.environ.get("PGPASSWORD")', "secret = None",
           ("tests/test_redact.py",), "the PGPASSWORD value reaches messages"),
    Mutant("redact-registered-secrets", PKG + "redact.py",
           "        if value in text:\n            text = text.replace(value, MASK)",
           "        if False:\n            text = text.replace(value, MASK)",
           ("tests/test_redact.py",), "the API token reaches messages"),
    Mutant("url-password-not-registered", PKG + "config.py",
           "        register_url_password(central[\"url\"])", "        pass",
           ("tests/test_service.py::test_a_password_the_driver_quotes_alone_is_masked_"
            "everywhere",), "a password libpq quotes alone reaches every output"),
    Mutant("token-not-registered", PKG + "service/token.py",
           "    register_secret(token)\n", "",
           ("tests/test_redact.py::test_the_api_token_is_masked_once_the_agent_loads_it",
            "tests/test_service.py::test_no_password_or_token_in_logs_bodies_or_errors"),
           "the API token reaches messages"),
    Mutant("token-any-scheme", PKG + "service/token.py",
           'if scheme.lower() != "bearer":', "if False:",
           ("tests/test_api.py::test_the_right_token_under_another_scheme_is_refused",),
           "the token is accepted under any scheme"),
    Mutant("token-any-value", PKG + "service/token.py",
           "return hmac.compare_digest(", "return True or hmac.compare_digest(",
           ("tests/test_api.py::test_every_post_needs_the_token",),
           "any bearer token opens the API"),
    # --- export and health --------------------------------------------------------------
    Mutant("export-publish-clobbers", PKG + "export/publish.py",
           "    if overwrite:\n        os.replace(temp, final)",
           "    if True:\n        os.replace(temp, final)",
           ("tests/test_export.py::test_a_file_that_appears_at_the_target_during_the_export_"
            "is_kept",), "an export replaces a file that appeared while it ran"),
    Mutant("ready-freshness", PKG + "health.py",
           "timedelta(seconds=2 * config.interval_seconds)",
           "timedelta(seconds=200 * config.interval_seconds)",
           ("tests/test_api.py::test_ready_is_503_naming_freshness_once_the_last_success_is_"
            "older_than_twice_the_interval",),
           "/health/ready stays 200 long after syncs stopped succeeding"),
)


def _tree_files() -> list[str]:
    """The files of the working tree as git sees them (tracked, and new ones not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    return [f for f in out.decode().split("\0") if f and (ROOT / f).is_file()]


def _copy_tree(dest: Path) -> None:
    for name in _tree_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)


def _drop_bytecode(path: Path) -> None:
    # the mutated file and its restored original may share a size and an mtime second
    cached = Path(importlib.util.cache_from_source(str(path)))
    cached.unlink(missing_ok=True)


def _pytest(tree: Path, tests: tuple[str, ...], timeout: float) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'agent'}{os.pathsep}{tree}"}
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", *tests], cwd=tree,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s", time.monotonic() - started
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started


def _first_failure(output: str) -> str:
    m = re.search(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", output, re.MULTILINE)
    return m.group(1) if m else "?"


def run(mutants: list[Mutant], baseline: bool, timeout: float) -> int:
    results: list[tuple[Mutant, str, str]] = []
    with tempfile.TemporaryDirectory(prefix="tf-mutants-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        if baseline:
            tests = tuple(dict.fromkeys(t for m in mutants for t in m.tests))
            print(f"baseline: {len(tests)} test selections on the unchanged tree", flush=True)
            code, output, took = _pytest(tree, tests, timeout * len(mutants))
            if code != 0:
                print(output[-3000:])
                print(f"the named tests fail without any mutant (exit {code}); fix that first")
                return 2
            print(f"baseline passed in {took:.0f} s", flush=True)
        for i, m in enumerate(mutants, 1):
            path = tree / m.path
            pristine = path.read_text(encoding="utf-8")
            found = pristine.count(m.original)
            label = f"[{i}/{len(mutants)}] {m.name}"
            if found != 1:
                verdict, detail = "stale", f"snippet found {found} times in {m.path}"
            else:
                path.write_text(pristine.replace(m.original, m.replacement), encoding="utf-8")
                _drop_bytecode(path)
                try:
                    code, output, took = _pytest(tree, m.tests, timeout)
                finally:
                    path.write_text(pristine, encoding="utf-8")
                    _drop_bytecode(path)
                if code == TESTS_FAILED:
                    verdict, detail = "killed", f"by {_first_failure(output)} ({took:.0f} s)"
                elif code == 0:
                    verdict, detail = "SURVIVED", f"{m.breaks} ({took:.0f} s)"
                else:
                    verdict, detail = "error", f"pytest exit {code}: {output.strip()[-600:]}"
            print(f"{label}: {verdict} {detail}", flush=True)
            results.append((m, verdict, detail))
    print()
    counts = {v: sum(1 for _, verdict, _ in results if verdict == v)
              for v in ("killed", "SURVIVED", "stale", "error")}
    print(f"{len(results)} mutants: {counts['killed']} killed, {counts['SURVIVED']} survived, "
          f"{counts['stale']} stale, {counts['error']} broke the run")
    for m, verdict, detail in results:
        if verdict != "killed":
            print(f"  {verdict}: {m.name} ({m.path}): {detail}")
    return 0 if counts["killed"] == len(results) else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", metavar="NAME", help="only these mutants")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--baseline", action="store_true",
                    help="first check that the named tests pass without any mutant")
    ap.add_argument("--tests", nargs="+", metavar="T",
                    help="run these tests (files or node ids) instead of each mutant's own")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per mutant's tests")
    args = ap.parse_args(argv)
    by_name = {m.name: m for m in MUTANTS}
    unknown = [n for n in args.names if n not in by_name]
    if unknown:
        ap.error(f"unknown mutant(s) {', '.join(unknown)}; see --list")
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:34} {m.path[len(PKG):]:24} {m.breaks}")
        return 0
    chosen = [by_name[n] for n in args.names] if args.names else list(MUTANTS)
    if args.tests:
        chosen = [replace(m, tests=tuple(args.tests)) for m in chosen]
    return run(chosen, args.baseline, args.timeout)


if __name__ == "__main__":
    raise SystemExit(main())
