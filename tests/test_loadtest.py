"""``make loadtest``'s oracle on histories made by hand (so that it is known to fail when
it should), and a short run of the real harness with three agents."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import loadtest  # noqa: E402

OWNER = "owner_name"


def local(agent, key, value, prev):
    return {"agent": agent, "key": key, "col": OWNER, "value": value, "prev": prev}


def central(key, value, prev, col=OWNER):
    return {"agent": None, "key": key, "col": col, "value": value, "prev": prev}


def conflict(key, resolved=False):
    return {"kind": "conflict", "table": "parcels", "pk": [key], "columns": [OWNER],
            "resolved_at": "2026-12-01T00:00:00Z" if resolved else None}


def check(edits, final, copies, conflicts=None, pending=None):
    return loadtest.oracle(edits, final, copies, conflicts or {}, pending or {})


def test_edits_that_arrived_or_wait_in_a_conflict_are_accounted_for():
    edits = [
        local(0, 1, "A0/1", "ORIG1"),            # pushed, then revalued by the assessor
        central(1, "C1", "A0/1"),
        local(0, 2, "A0/2", "ORIG2"),            # both sides at once: a conflict
        central(2, "C2", "ORIG2"),
        central(3, "9000001.25", "100.00", col="land_value"),
    ]
    final = {(1, OWNER): "C1", (2, OWNER): "C2", (3, "land_value"): "9000001.25"}
    copies = {0: {**final, (2, OWNER): "A0/2"}, 1: dict(final)}
    verdict = check(edits, final, copies, {0: [conflict(2)], 1: []})
    assert verdict["violations"] == 0, verdict["examples"]
    assert (verdict["arrived"], verdict["kept_as_conflict"], verdict["conflicts"]) == (4, 1, 1)


def test_a_local_edit_neither_in_central_nor_in_a_conflict_is_lost():
    final = {(1, OWNER): "ORIG1"}
    verdict = check([local(0, 1, "A0/1", "ORIG1")], final, {0: dict(final)})
    assert verdict["by_kind"] == {"local edit lost": 1}


def test_a_central_edit_overwritten_by_an_agent_that_never_saw_it_is_lost():
    # the agent's edit was based on the original value, yet central ends with it
    final = {(1, OWNER): "A0/1"}
    verdict = check([central(1, "C1", "ORIG1"), local(0, 1, "A0/1", "ORIG1")], final,
                    {0: dict(final)})
    assert verdict["by_kind"] == {"central edit overwritten unseen": 1}


def test_a_copy_behind_central_is_a_violation_unless_its_row_is_in_an_open_conflict():
    edits = [central(1, "C1", "ORIG1")]
    final = {(1, OWNER): "C1"}
    stale = {0: {(1, OWNER): "ORIG1"}}
    assert check(edits, final, stale)["by_kind"] == {"copy differs from central": 1}
    # a conflict on the row (made up for this check) excuses the copy only while open
    assert "copy differs from central" not in check(
        edits, final, stale, {0: [conflict(1)]})["by_kind"]
    assert "copy differs from central" in check(
        edits, final, stale, {0: [conflict(1, resolved=True)]})["by_kind"]


def test_a_conflict_on_a_row_not_edited_on_both_sides_is_a_violation():
    edits = [local(0, 1, "A0/1", "ORIG1")]
    final = {(1, OWNER): "ORIG1"}
    verdict = check(edits, final, {0: {(1, OWNER): "A0/1"}}, {0: [conflict(1)]})
    assert verdict["by_kind"] == {"unexpected conflict": 1}


def test_an_edit_still_pending_after_the_final_syncs_is_a_violation():
    final = {(1, OWNER): "A0/1"}
    verdict = check([local(0, 1, "A0/1", "ORIG1")], final, {0: dict(final)},
                    pending={0: [{"table": "parcels", "key": [1], "state": "pending"}]})
    assert verdict["by_kind"] == {"edit still pending after the final syncs": 1}


def test_numbers_compare_as_the_numeric_column_holds_them():
    assert loadtest.norm("land_value", 9000001.25) == loadtest.norm("land_value", "9000001.25")
    assert loadtest.norm("land_value", 0.1 + 0.2) == "0.30"


def test_a_short_run_of_three_agents_accounts_for_every_edit_and_leaves_nothing_behind():
    opts = loadtest.Options(agents=3, minutes=0.2, idle_seconds=4, interval=5,
                            local_rate=20, contested=0.5, central_rate=1, out=None)
    report = loadtest.run(opts, log=lambda _m: None)

    assert report["oracle"]["violations"] == 0, report["oracle"]["examples"]
    made = ("local", "central_land_value", "central_owner_name")
    assert report["oracle"]["edits_checked"] == sum(report["edits"][k] for k in made) > 0
    assert report["edits"]["local"] > 0 and report["edits"]["central_land_value"] > 0
    assert report["agents"]["started"] == report["agents"]["synced_once"] == 3
    assert report["errors"]["agents_died"] == [] and report["errors"]["failed_runs"] == 0
    for name in ("idle", "load"):
        phase = report["phases"][name]
        assert phase["syncs"] > 0
        for key in ("statements_per_sync", "latency_p50_ms", "latency_p99_ms"):
            assert phase[key] is not None and phase[key] > 0, (name, key, phase)
        # server CPU comes in clock ticks of 10 ms: three idle polls may not fill one
        cpu = phase["central_cpu_ms_per_sync"]
        assert cpu is not None and cpu >= 0, (name, phase)
        assert (phase["agents_per_core_at_60s"] or 0) > 0 or cpu == 0, (name, phase)
        # the agents keep their connection: at most the first sync of each opens one
        assert 0 <= phase["new_connections_per_sync"] <= 1, (name, phase)
        assert phase["connections_peak"] is not None
    assert report["headline"]["agents_per_core_at_60s"] > 0
    assert loadtest.table(report)[0] == ("measure", "idle", "load")
    # every process and file of the run is gone
    work = report["work_dir"]
    assert not Path(work).exists()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert work.encode() not in cmdline, f"process {pid} of the run is still running"
