"""No export replaces the agent's own files: the local copy (and SQLite's files beside
it), the lock, the configuration, the token, the logs and an embedded central. Refused
in one sentence naming what the target is, however the path reaches the file (a link,
``..``, another case), from the CLI, the API, a preset and the plugin; every pending
edit survives."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from conftest import AgentEnv, embedded_agent, local_exec, synced_county
from service_helpers import post, serving_agent, wait_for

PRESET = """
[export.presets.local_named]
table = "parcels"
format = "gpkg"
filename = "local.sqlite"
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> AgentEnv:
    """A synced county with one pending local edit that no export may lose."""
    env = synced_county(tmp_path_factory.mktemp("county"), 300)
    # a token file name with a suffix, which an export's --out keeps as it is
    env.config.write_text(env.config.read_text().replace(
        "[http]\n", '[http]\ntoken_file = "api.token"\n'), encoding="utf-8")
    (env.dir / "api.token").write_text("0123456789abcdef0123456789abcdef\n")
    local_exec(env, "UPDATE parcels SET owner_name = 'PENDING EDIT' WHERE prop_id = 100001")
    return env


@pytest.fixture
def county(template, tmp_path) -> AgentEnv:
    """The template county copied for one test (its config names its files relatively,
    but for the embedded central)."""
    directory = tmp_path / "agent"
    shutil.copytree(template.dir, directory)
    url = f"sqlite:///{directory / 'central.sqlite'}"
    config = directory / "agent.toml"
    config.write_text(config.read_text().replace(template.central_url, url), encoding="utf-8")
    return AgentEnv(directory, config, url)


def fingerprint(env: AgentEnv) -> dict[str, str]:
    """Every file of the agent's folder, by content."""
    return {str(p.relative_to(env.dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(env.dir.rglob("*")) if p.is_file()}


def pending(env: AgentEnv) -> int:
    from terrafusion_agent.stores.local import LocalStore

    with LocalStore.open_existing(env.local_path) as local:
        return local.pending_count()


@pytest.fixture
def untouched(county):
    """Asserts, after the test, that no file of the agent changed and the edit waits."""
    before = fingerprint(county)
    assert pending(county) == 1
    yield county
    assert fingerprint(county) == before
    assert pending(county) == 1


def assert_refused(proc, target, what: str) -> None:
    assert proc.returncode != 0, proc.stdout
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"{target} is {what}; choose another" in err, err


@pytest.mark.parametrize("name, fmt, what", [
    ("local.sqlite", "gpkg", "the agent's local copy"),
    ("local.sqlite-wal", "gpkg", "the write-ahead log of the agent's local copy"),
    ("local.sqlite-shm", "csv", "the shared-memory index of the agent's local copy"),
    ("local.sqlite-journal", "gpkg", "the rollback journal of the agent's local copy"),
    ("local.sqlite.lock", "csv", "the lock file of the agent's local copy"),
    ("agent.toml", "csv", "the agent's configuration file"),
    ("api.token", "csv", "the agent's API token file"),
    ("central.sqlite", "gpkg", "the agent's embedded central database"),
    ("logs/agent.jsonl", "csv", "in the agent's log folder"),
])
def test_an_export_onto_an_agent_file_is_refused_with_or_without_overwrite(
        untouched, name, fmt, what):
    target = untouched.dir / name
    for overwrite in (["--overwrite"], []):
        proc = untouched.run("export", "parcels", "--format", fmt, "--out", str(target),
                             *overwrite, check=False)
        assert_refused(proc, target, what)


def test_a_path_through_dot_dot_a_link_or_a_linked_folder_is_refused(untouched, tmp_path):
    link = tmp_path / "copy.gpkg"
    link.symlink_to(untouched.local_path)
    folder = tmp_path / "data"
    folder.symlink_to(untouched.dir)
    for target in (untouched.dir / "logs" / ".." / "local.sqlite", link,
                   folder / "local.sqlite", folder / "logs" / ".." / "agent.toml"):
        proc = untouched.run("export", "parcels", "--format", "gpkg", "--out", str(target),
                             "--overwrite", check=False)
        assert proc.returncode == 2, (target, proc.stdout)  # a bad --out
        assert "is the agent's" in proc.stderr and "choose another file." in proc.stderr


def test_the_local_copys_name_in_another_case_is_refused(untouched):
    # one file on Windows and macOS; beside the local copy, never a name worth the doubt
    target = untouched.dir / "LOCAL.SQLITE"
    proc = untouched.run("export", "parcels", "--format", "gpkg", "--out", str(target),
                         "--overwrite", check=False)
    assert_refused(proc, target, "the agent's local copy")
    assert not target.exists()


def test_a_preset_naming_the_local_copy_is_refused(untouched):
    config = untouched.dir / "preset.toml"
    config.write_text(untouched.config.read_text() + PRESET, encoding="utf-8")
    proc = AgentEnv(untouched.dir, config, untouched.central_url).run(
        "export", "--preset", "local_named", "--out", str(untouched.dir), "--overwrite",
        check=False)
    config.unlink()
    assert_refused(proc, untouched.local_path, "the agent's local copy")


def test_an_ordinary_file_beside_the_agents_files_is_still_written(county, tmp_path):
    out = tmp_path / "parcels.gpkg"
    county.run("export", "parcels", "--format", "gpkg", "--out", str(out))
    assert out.stat().st_size > 0


def test_the_api_refuses_an_export_onto_the_local_copy_with_a_422(tmp_path):
    with serving_agent(tmp_path / "served", 200) as (env, agent):
        # the sync it runs at start writes the copy: compare with the copy after it
        wait_for(lambda: (agent.recent_runs(1) or [{}])[0].get("result") not in (None, "running")
                 and not agent.scheduler.is_running(), 60, "the agent's first sync")
        before = env.local_path.read_bytes()
        target = f"{env.dir}/logs/../local.sqlite"
        r = post(f"{agent.base_url}/api/v1/exports",
                 {"table": "parcels", "format": "gpkg", "out": target, "overwrite": True},
                 token=agent.token)
        assert r.status == 422, r
        assert r.json["error"] == f"{target} is the agent's local copy; choose another file."
        assert env.local_path.read_bytes() == before


def test_the_plugins_exports_refuse_the_local_copy(qgis_app, untouched):
    from qgis.core import QgsVectorLayer
    from terrafusion_agent.export import ExportRequest

    from terrafusion_plugin.tasks.export_task import LayerExportTask, TableExportTask

    config = str(untouched.config)
    table = TableExportTask(ExportRequest(table="parcels", format="gpkg",
                                          out=str(untouched.local_path), overwrite=True,
                                          trigger="plugin"), None, config_path=config)
    layer = QgsVectorLayer("Point?crs=EPSG:2927&field=name:string", "wells", "memory")
    other = LayerExportTask(layer, "gpkg", str(untouched.dir / "agent.toml"), None, ["name"],
                            None, config_path=config)

    assert table.run() is False and other.run() is False
    assert table.error == (f"{untouched.local_path} is the agent's local copy; "
                           "choose another file.")
    assert other.error == (f"{untouched.dir / 'agent.toml'} is the agent's configuration "
                           "file; choose another file.")


def test_own_files_follow_the_configuration(tmp_path):
    from terrafusion_agent.export.protected import own_files

    env = embedded_agent(tmp_path)
    config = env.load()
    paths = {p for p, _ in own_files(config)}
    assert {config.local_path, Path(f"{config.local_path}-wal"), env.config,
            config.token_file, tmp_path / "central.sqlite"} <= paths
