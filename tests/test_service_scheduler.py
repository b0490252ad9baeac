"""The sync schedule: one sync at a time, backoff after failures, stop on request.

These use stand-ins for ``begin_run`` and ``run_sync`` so failures and slow syncs happen
on cue; the real engine is exercised by test_api and test_service.
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from typing import Iterator

import pytest
from service_helpers import wait_for
from terrafusion_agent import config as config_mod
from terrafusion_agent.errors import CentralUnavailable, SyncCancelled, SyncInProgress
from terrafusion_agent.service.scheduler import (
    RunProgress,
    SyncRun,
    SyncScheduler,
    retry_delay,
)


@pytest.fixture
def config(tmp_path):
    (tmp_path / "agent.toml").write_text(
        f'[central]\nurl = "sqlite:///{tmp_path}/central.sqlite"\n'
        f'[local]\npath = "{tmp_path}/local.sqlite"\n[sync]\ninterval_seconds = 300\n')
    return config_mod.load(tmp_path / "agent.toml", environ={})


class FakeSync:
    """Stands in for run_sync (and numbers the runs as begin_run would): fails, succeeds
    or blocks as told."""

    def __init__(self):
        self.calls: list[str] = []
        self.run_ids: list[int] = []
        self.fail = False
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()
        self._ids = itertools.count(1)

    def begin(self, config, trigger) -> int:
        return next(self._ids)

    def __call__(self, config, trigger, stop, run_id, progress):
        self.calls.append(trigger)
        self.run_ids.append(run_id)
        self.entered.set()
        while not self.release.wait(0.01):
            if stop.is_set():
                raise SyncCancelled("The sync was stopped.")
        if self.fail:
            raise CentralUnavailable("The central database cannot be reached: refused.")
        return {"id": run_id, "trigger": trigger, "result": "success",
                "duration_seconds": 0.01, "pulled": 0, "pushed": 0, "conflicts": 0}


def scheduler(config, fake: FakeSync) -> SyncScheduler:
    return SyncScheduler(config, sync=fake, begin=fake.begin)


@contextmanager
def a_held_sync(config) -> Iterator[tuple[SyncScheduler, FakeSync, SyncRun]]:
    """A scheduler (its own schedule far away) running one sync asked for by the API,
    which the fake holds until ``fake.release`` is set."""
    fake = FakeSync()
    fake.release.clear()
    sched = scheduler(config, fake)
    sched.start(first_run=datetime(2100, 1, 1, tzinfo=timezone.utc))
    try:
        run = sched.start_sync("api")
        assert fake.entered.wait(5)
        yield sched, fake, run
    finally:
        fake.release.set()
        sched.shutdown(5)


def _seconds_until(iso: str) -> float:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (when - datetime.now(timezone.utc)).total_seconds()


def test_retry_delay_doubles_from_30_s_and_never_exceeds_the_interval():
    assert [retry_delay(n, 300) for n in range(1, 8)] == [30, 60, 120, 240, 300, 300, 300]
    assert retry_delay(1, 10) == 10
    assert retry_delay(0, 300) == 300
    assert retry_delay(10_000, 600) == 600


def test_a_failure_brings_the_next_attempt_forward_and_success_resets(config):
    fake = FakeSync()
    fake.fail = True
    sched = scheduler(config, fake)
    sched.start()
    try:
        wait_for(lambda: sched.consecutive_failures == 1, 10, "the first failure")
        wait_for(lambda: sched.next_sync() and _seconds_until(sched.next_sync()) < 31, 5,
                 "the retry to be scheduled")
        assert 25 < _seconds_until(sched.next_sync()) <= 30.5  # 30 s less jitter, not 300 s
        state = sched.state()
        assert state["consecutive_failures"] == 1
        assert "cannot be reached" in state["last_error"]

        fake.fail = False
        wait_for(lambda: not sched.is_running(), 5, "the failed sync to end")
        sched.start_sync("api")
        wait_for(lambda: sched.consecutive_failures == 0 and not sched.is_running(), 10,
                 "a successful sync")
        assert sched.state()["last_error"] is None
    finally:
        sched.shutdown(5)


def test_manual_and_scheduled_syncs_never_overlap(config):
    with a_held_sync(config) as (sched, fake, _):
        with pytest.raises(SyncInProgress):
            sched.start_sync("api")
        sched._tick()  # what the scheduler does at the interval: skipped, not queued
        with pytest.raises(SyncInProgress):
            with sched.exclusive("resolving a conflict"):
                pass
        fake.release.set()
        wait_for(lambda: not sched.is_running(), 5, "the sync to end")
        assert fake.calls == ["api"]


def test_shutdown_stops_a_running_sync_and_does_not_count_it_as_a_failure(config):
    fake = FakeSync()
    fake.release.clear()
    sched = scheduler(config, fake)
    sched.start()
    assert fake.entered.wait(5)
    # True: the sync, which never ends on its own, ended on the stop within the deadline
    assert sched.shutdown(5) is True
    assert sched.consecutive_failures == 0
    assert not sched.alive() and sched.next_sync() is None


def test_shutdown_gives_up_on_a_sync_that_ignores_the_stop(config):
    stuck = threading.Event()

    def deaf_sync(config, trigger, stop, **_):
        stuck.wait(30)  # a database call that does not look at the stop event
        return {}

    sched = SyncScheduler(config, sync=deaf_sync, begin=lambda config, trigger: 1)
    sched.start()
    wait_for(sched.is_running, 5, "the sync to start")
    assert sched.shutdown(0.3) is False
    stuck.set()


def test_the_schedule_runs_at_the_configured_interval(config):
    fake = FakeSync()
    sched = scheduler(replace(config, interval_seconds=5), fake)
    sched.start()
    try:
        wait_for(lambda: len(fake.calls) >= 1, 5, "the first sync")
        assert 4 <= _seconds_until(sched.next_sync()) <= 5.1
        assert fake.calls == ["schedule"]
    finally:
        sched.shutdown(5)


def test_a_sync_in_progress_is_named_by_the_refusal_of_another(config):
    with a_held_sync(config) as (sched, fake, first):
        assert first.wait_recorded(5) and first.id == 1
        with pytest.raises(SyncInProgress) as refused:
            sched.start_sync("api")
        assert refused.value.run is first
        assert sched.state()["sync_running"]["id"] == 1
        fake.release.set()
        wait_for(lambda: not sched.is_running(), 5, "the sync to end")
        assert fake.run_ids == [1]  # the sync worked on the run recorded for it
        assert sched.last_ended["id"] == 1 and sched.last_ended["result"] == "success"


def test_exclusive_work_waits_for_the_running_sync_within_its_bound(config):
    with a_held_sync(config) as (sched, fake, _):
        with pytest.raises(SyncInProgress, match="still running after 0 s; resolving"):
            with sched.exclusive("resolving a conflict", timeout=0.05):
                pass
        seen: list = []

        def resolve():
            with sched.exclusive("resolving a conflict", timeout=30):
                seen.append(sched.current())  # the sync in progress, if any

        waiting = threading.Thread(target=resolve)
        waiting.start()
        fake.release.set()
        waiting.join(30)
        assert seen == [None]  # it ran, once the sync was over


def test_a_new_interval_reschedules_the_next_sync(config):
    fake = FakeSync()
    sched = scheduler(config, fake)
    sched.start(first_run=datetime(2100, 1, 1, tzinfo=timezone.utc))
    try:
        sched.reconfigure(replace(config, interval_seconds=60))
        assert 55 <= _seconds_until(sched.next_sync()) <= 60.5
        assert sched.config.interval_seconds == 60
        # a longer one never puts off a sync that was due sooner
        sched.reconfigure(replace(config, interval_seconds=3600))
        assert 50 <= _seconds_until(sched.next_sync()) <= 60.5
    finally:
        sched.shutdown(5)


def test_progress_is_the_share_of_tables_done_and_never_goes_back():
    progress = RunProgress(("parcels", "districts", "sales"))
    assert progress.as_dict() == {"fraction": 0.0, "table": ""}
    progress("parcels", 50, 100)
    assert progress.as_dict() == {"fraction": round(0.5 / 3, 4), "table": "parcels"}
    progress("parcels", 100, 100)
    progress("districts", 0, 0)  # nothing to pull: the table is done at once
    assert progress.as_dict() == {"fraction": round(2 / 3, 4), "table": "districts"}
    progress("parcels", 1, 10)  # the push reports parcels again
    assert progress.as_dict() == {"fraction": round(2 / 3, 4), "table": "parcels"}
    progress("sales", 10, 10)
    assert progress.as_dict()["fraction"] == 1.0
