"""Sync against a model: random edits by three agents and a central writer, syncs killed
at fault points, the central server stopped mid-sync; nothing lost, no false conflict.

The driver is ``sync_model.py`` (``make soak`` runs it for longer), the model and its
oracle ``sync_oracle.py``.
``SYNC_MODEL_SEED`` and ``SYNC_MODEL_STEPS`` replay another episode; a failure names its
seed, step, the operations before it and the discrepancy.
"""

import os

import pytest
from sync_model import ModelFailure, run_episode
from sync_oracle import AGENTS, CENTRAL, Model, val

CI_SEED = 20261201
CI_STEPS = 450


@pytest.mark.timeout(900)
def test_random_edits_syncs_faults_and_restarts_converge_without_loss(tmp_path, capsys):
    seed = int(os.environ.get("SYNC_MODEL_SEED", CI_SEED))
    steps = int(os.environ.get("SYNC_MODEL_STEPS", CI_STEPS))
    try:
        stats = run_episode(seed, steps, tmp_path)
    except ModelFailure as exc:
        pytest.fail(f"{exc}\n\n{exc.stats.report()}", pytrace=False)
    with capsys.disabled():
        print(f"\nsync model, seed {seed}:\n{stats.report()}")
    # the episode exercised what it is meant to
    assert stats.ops["local update"] and stats.ops["central update"]
    assert stats.ops["offline insert"] and stats.ops["central restart"]
    assert stats.conflicts > 0 and sum(stats.resolved.values()) > 0
    assert stats.faults["fired"] > 0 and stats.restarts > 0


# --- the oracle on its own: it must be able to fail ----------------------------------------


def owner(text):
    return val("owner_name", text)


def county_model():
    model = Model()
    model.load_initial({"parcels": {1: {"prop_id": val("prop_id", 1), "owner_name":
                                        owner("ORIGINAL")}}, "sales": {}})
    return model


def central_with(owner_name):
    return {"parcels": {1: {"prop_id": val("prop_id", 1), "owner_name": owner(owner_name)}},
            "sales": {}}


def conflict(cid, base, local, central, columns=("owner_name",)):
    def row(v):
        return None if v is None else {"prop_id": 1, "owner_name": v}
    return {"id": cid, "table": "parcels", "pk": [1], "columns": list(columns),
            "base": row(base), "local": row(local), "central": row(central),
            "resolved_at": None, "resolution": None}


def test_oracle_reports_an_edit_overwritten_by_a_writer_who_never_saw_it():
    model = county_model()
    model.record_set("A", "parcels", 1, "owner_name", owner("A1"), owner("ORIGINAL"), 1)
    model.sync_succeeded("A", model.tick())
    assert model.check_central(central_with("A1")) == []
    # central overwrites A's value although it saw only the original one
    model.record_set(CENTRAL, "parcels", 1, "owner_name", owner("W2"), owner("ORIGINAL"), 2)
    problems = model.check_central(central_with("W2"))
    assert [p.kind for p in problems] == ["loss"] and "A at step 1" in problems[0].text


def test_oracle_accepts_an_edit_overwritten_by_a_writer_who_saw_it():
    model = county_model()
    model.record_set("A", "parcels", 1, "owner_name", owner("A1"), owner("ORIGINAL"), 1)
    model.sync_succeeded("A", model.tick())
    model.record_set(CENTRAL, "parcels", 1, "owner_name", owner("W2"), owner("A1"), 2)
    assert model.check_central(central_with("W2")) == []


def test_oracle_accepts_a_lost_race_recorded_as_a_conflict_and_flags_a_false_one():
    model = county_model()
    model.record_set(CENTRAL, "parcels", 1, "owner_name", owner("W1"), owner("ORIGINAL"), 1)
    model.record_set("B", "parcels", 1, "owner_name", owner("B2"), owner("ORIGINAL"), 2)
    assert model.conflicts_listed("B", [conflict(1, "ORIGINAL", "B2", "W1")]) == []
    model.sync_succeeded("B", model.tick())
    assert model.check_central(central_with("W1")) == []  # B's edit waits in its conflict
    # a conflict whose central value is B's own earlier push is false
    model.record_set("B", "parcels", 1, "owner_name", owner("B3"), owner("B2"), 3)
    problems = model.conflicts_listed("B", [conflict(2, "ORIGINAL", "B3", "B2")])
    assert [p.kind for p in problems] == ["false_conflict"]
    assert "own push" in problems[0].text


def test_oracle_requires_keep_local_to_reach_central():
    model = county_model()
    model.record_set(CENTRAL, "parcels", 1, "owner_name", owner("W1"), owner("ORIGINAL"), 1)
    model.record_set("C", "parcels", 1, "owner_name", owner("C2"), owner("ORIGINAL"), 2)
    c = conflict(1, "ORIGINAL", "C2", "W1")
    model.conflicts_listed("C", [c])
    c["resolved_at"] = "now"
    model.resolved("C", c, "local")
    model.sync_succeeded("C", model.tick())
    problems = model.check_central(central_with("W1"))  # the resolution was ignored
    assert [p.kind for p in problems] == ["loss"]
    assert model.check_central(central_with("C2")) == []


def test_oracle_requires_keep_central_to_push_the_other_columns():
    model = county_model()
    model.initial[("parcels", 1)]["land_value"] = val("land_value", 100)
    model.record_set(CENTRAL, "parcels", 1, "owner_name", owner("W1"), owner("ORIGINAL"), 1)
    model.record_set("A", "parcels", 1, "owner_name", owner("A2"), owner("ORIGINAL"), 2)
    model.record_set("A", "parcels", 1, "land_value", val("land_value", 222),
                     val("land_value", 100), 3)
    c = conflict(1, "ORIGINAL", "A2", "W1")
    model.conflicts_listed("A", [c])
    c["resolved_at"] = "now"
    model.resolved("A", c, "central")
    model.sync_succeeded("A", model.tick())
    central = central_with("W1")
    central["parcels"][1]["land_value"] = val("land_value", 100)  # land value dropped
    problems = model.check_central(central)
    assert [p.kind for p in problems] == ["loss"] and "land_value" in problems[0].text
    central["parcels"][1]["land_value"] = val("land_value", 222)
    assert model.check_central(central) == []


def test_every_agent_has_a_view():
    assert set(county_model().agents) == set(AGENTS)


def test_oracle_requires_a_merge_to_keep_each_column_its_way():
    model = county_model()
    model.initial[("parcels", 1)]["land_value"] = val("land_value", 100)
    for writer, owner_name, land, t in ((CENTRAL, "W1", 111, 1), ("B", "B2", 222, 2)):
        model.record_set(writer, "parcels", 1, "owner_name", owner(owner_name),
                         owner("ORIGINAL"), t)
        model.record_set(writer, "parcels", 1, "land_value", val("land_value", land),
                         val("land_value", 100), t)
    c = conflict(1, "ORIGINAL", "B2", "W1", columns=("land_value", "owner_name"))
    for row, land in (("base", 100), ("local", 222), ("central", 111)):
        c[row]["land_value"] = land
    model.conflicts_listed("B", [c])
    c["resolved_at"] = "now"
    model.resolved("B", c, {"owner_name": "local", "land_value": "central"})
    model.sync_succeeded("B", model.tick())

    def central(owner_name, land):
        rows = central_with(owner_name)
        rows["parcels"][1]["land_value"] = val("land_value", land)
        return rows

    # the column taken locally must arrive
    assert [p.kind for p in model.check_central(central("W1", 111))] == ["loss"]
    # the column taken centrally must not
    assert [p.kind for p in model.check_resolutions("B", central("B2", 222))] == [
        "resolution"]
    assert model.check_central(central("B2", 111)) == []
    assert model.check_resolutions("B", central("B2", 111)) == []
