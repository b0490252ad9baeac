"""Push alerts (``[alerts] webhook_url``): a real HTTP receiver on 127.0.0.1 gets one small
JSON message when syncs fail ``failures_threshold`` times in a row (once per run of
failures), one when a sync works again after that, and one for new conflicts and for
rows central refused; a receiver that is down or hangs never fails or holds up a sync;
the URL's secrets are sent, never shown."""

from __future__ import annotations

import base64
import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest
from conftest import AgentEnv, central_exec, embedded_agent, local_exec, write_config
from service_helpers import get, post, read_token, started_agent, wait_for
from test_fleet import set_central_up

pytestmark = pytest.mark.timeout(300)

HOOK_USER = "tf-alerts"
HOOK_PASSWORD = "Hook-Pass-Okapi-61"
HOOK_TOKEN = "Query-Token-Ibis-7724"
HOOK_PATH_TOKEN = "PathTokenHeron4455667788"


class Receiver:
    """An HTTP server on 127.0.0.1 in a thread, keeping every message POSTed to it.
    ``hold()`` makes it take requests and answer none until the block ends."""

    def __init__(self):
        self.messages: list[dict] = []
        self.requests: list[dict] = []
        self.got = threading.Condition()
        self._release = threading.Event()
        self._release.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.got:
                    receiver.requests.append({"path": self.path,
                                              "auth": self.headers.get("Authorization")})
                    receiver.messages.append(json.loads(body))
                    receiver.got.notify_all()
                receiver._release.wait(60)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return (f"http://{HOOK_USER}:{HOOK_PASSWORD}@127.0.0.1:{port}/hooks/{HOOK_PATH_TOKEN}"
                f"?token={HOOK_TOKEN}&v=1")

    def events(self) -> list[str]:
        with self.got:
            return [m["event"] for m in self.messages]

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        with self.got:
            if not self.got.wait_for(lambda: len(self.messages) >= count, timeout):
                raise AssertionError(f"{count} alert(s) expected, got {self.messages}")
            return list(self.messages)

    @contextmanager
    def hold(self) -> Iterator[None]:
        self._release.clear()
        try:
            yield
        finally:
            self._release.set()


@pytest.fixture
def receiver():
    r = Receiver()
    r.thread.start()
    yield r
    r._release.set()
    r.server.shutdown()
    r.server.server_close()


def alerting(env_dir, central_url: str, url: str, threshold: int = 2) -> AgentEnv:
    extra = f'[alerts]\nwebhook_url = "{url}"\nfailures_threshold = {threshold}\n'
    return AgentEnv(env_dir, write_config(env_dir, central_url, extra), central_url)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (HOOK_PASSWORD, HOOK_TOKEN, HOOK_PATH_TOKEN):
            assert secret not in text


def log_text(agent: AgentEnv) -> str:
    return "".join(p.read_text() for p in (agent.dir / "logs").glob("*.jsonl*"))


# --- one-off syncs (the CLI) ------------------------------------------------------------


def test_a_run_of_failures_alerts_once_and_the_recovery_alerts_too(
        receiver, tmp_path, pg_url, pg_cluster):
    agent = alerting(tmp_path, pg_url, receiver.url, threshold=2)
    agent.run("init-central", "--demo-parcels", "20")
    agent.run("sync")
    outputs = []
    set_central_up(pg_cluster, pg_url, False)
    try:
        proc = agent.run("sync", check=False)
        assert proc.returncode == 1 and receiver.events() == []
        outputs.append(proc.stderr)
        for _ in range(3):  # the second failure reaches the threshold; later ones say nothing
            proc = agent.run("sync", check=False)
            assert proc.returncode == 1
            outputs.append(proc.stderr)
        assert receiver.events() == ["sync_failing"]
    finally:
        set_central_up(pg_cluster, pg_url, True)
    outputs.append(agent.run("sync").stdout)
    [failing, recovered] = receiver.wait_for(2)
    assert recovered["event"] == "sync_recovered"

    agent_id = local_exec(agent, "SELECT value FROM tf_meta WHERE key = 'agent_id'")[0][0]
    assert failing["agent_id"] == agent_id and failing["host"]
    assert failing["detail"]["consecutive_failures"] == 2
    assert "cannot be reached" in failing["detail"]["error"]
    assert recovered["detail"] == {"failures_before": 4}
    assert failing["at"] < recovered["at"] and failing["text"]
    # the secrets of the URL reach the receiver, and nothing else
    expected = "Basic " + base64.b64encode(f"{HOOK_USER}:{HOOK_PASSWORD}".encode()).decode()
    assert {r["auth"] for r in receiver.requests} == {expected}
    assert {r["path"] for r in receiver.requests} == {
        f"/hooks/{HOOK_PATH_TOKEN}?token={HOOK_TOKEN}&v=1"}
    assert_no_secret(*outputs, agent.run("status").stdout, log_text(agent),
                     json.dumps(receiver.messages))


def test_new_conflicts_and_refused_rows_each_alert(receiver, tmp_path):
    agent = alerting(tmp_path, f"sqlite:///{tmp_path / 'central.sqlite'}", receiver.url)
    agent.run("init-central", "--demo-parcels", "20")
    agent.run("sync")
    central_exec(agent, "UPDATE parcels SET owner_name = 'CENTRAL' WHERE prop_id = 100001")
    local_exec(agent, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100001")
    central_exec(agent, "CREATE TRIGGER no_negative BEFORE UPDATE OF land_value ON parcels "
                        "WHEN NEW.land_value < 0 BEGIN SELECT RAISE(ABORT, 'land_value must "
                        "not be negative'); END")
    local_exec(agent, "UPDATE parcels SET land_value = -5 WHERE prop_id = 100002")
    agent.run("sync")
    by_event = {m["event"]: m for m in receiver.wait_for(2)}
    assert set(by_event) == {"conflicts", "rejected"}
    assert by_event["conflicts"]["detail"]["new"] == 1
    assert by_event["rejected"]["detail"]["new"] == 1
    agent.run("sync")  # nothing new: nothing to say
    assert len(receiver.events()) == 2


def test_a_receiver_that_is_down_never_fails_the_sync(tmp_path, receiver):
    url = receiver.url
    receiver.server.server_close()  # nothing listens there any more
    agent = alerting(tmp_path, f"sqlite:///{tmp_path / 'central.sqlite'}", url)
    agent.run("init-central", "--demo-parcels", "20")
    agent.run("sync")
    central_exec(agent, "UPDATE parcels SET owner_name = 'CENTRAL' WHERE prop_id = 100001")
    local_exec(agent, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100001")
    proc = agent.run("sync")
    assert json.loads(proc.stdout)["conflicts"] == 1
    lines = [json.loads(line) for line in log_text(agent).splitlines()]
    [failed] = [entry for entry in lines if entry.get("alert") == "conflicts"]
    assert "could not be sent to http://127.0.0.1:" in failed["message"]
    assert_no_secret(proc.stdout, proc.stderr, log_text(agent))


# --- the running agent ------------------------------------------------------------------


def finished(base: str, run_id: int) -> dict:
    return wait_for(lambda: (lambda r: r if r["result"] != "running" else None)(
        get(f"{base}/api/v1/syncs/{run_id}").json), 60, f"sync {run_id} to end")


def test_the_agent_alerts_from_its_own_syncs_and_a_hanging_receiver_holds_none(
        receiver, tmp_path, pg_url, pg_cluster):
    agent = alerting(tmp_path, pg_url, receiver.url, threshold=2)
    agent.run("init-central", "--demo-parcels", "20")
    agent.run("sync")
    with started_agent(agent) as running:
        base, token = running.base_url, read_token(tmp_path)
        # the first (scheduled) sync at start
        wait_for(lambda: get(base + "/api/v1/syncs").json["runs"][0]["result"] == "success",
                 60, "the first sync")
        set_central_up(pg_cluster, pg_url, False)
        try:
            for _ in range(2):
                run_id = post(base + "/api/v1/syncs", token=token).json["id"]
                assert finished(base, run_id)["result"] == "failed"
            [failing] = receiver.wait_for(1)
            assert failing["event"] == "sync_failing"
        finally:
            set_central_up(pg_cluster, pg_url, True)
        central_exec(agent, "UPDATE parcels SET owner_name = 'CENTRAL' WHERE prop_id = 100001")
        local_exec(agent, "UPDATE parcels SET owner_name = 'LOCAL' WHERE prop_id = 100001")
        with receiver.hold():
            run_id = post(base + "/api/v1/syncs", token=token).json["id"]
            # the receiver has the messages and answers none: the sync is over all the same
            receiver.wait_for(3)
            assert finished(base, run_id)["result"] == "success"
            assert get(base + "/health").status == 200
        assert receiver.events()[1:] == ["sync_recovered", "conflicts"]
        health = get(base + "/health").text
        reload = post(base + "/api/v1/config/reload", token=token).text
    assert_no_secret(health, reload, log_text(agent))


def test_a_webhook_url_that_is_not_http_is_refused_without_showing_it(tmp_path):
    agent = embedded_agent(tmp_path, f'[alerts]\nwebhook_url = "ftp://u:{HOOK_PASSWORD}@x/"\n')
    proc = agent.run("status", check=False)
    assert proc.returncode == 2
    assert "alerts.webhook_url must start with http:// or https://" in proc.stderr
    assert_no_secret(proc.stderr)


def test_the_webhook_urls_secrets_are_masked_from_the_moment_it_is_read(tmp_path, receiver):
    from terrafusion_agent import api

    agent = alerting(tmp_path, f"sqlite:///{tmp_path / 'central.sqlite'}", receiver.url)
    config = api.load_config(agent.config)
    said = api.redact(f"posting to {config.alert_webhook_url} failed: {HOOK_PASSWORD}, "
                      f"{HOOK_TOKEN}, {HOOK_PATH_TOKEN}")
    assert_no_secret(said)
    assert "posting to http://tf-alerts:***@127.0.0.1:" in said
