"""Bad input reaches the user as one clear sentence and a non-zero exit, never a traceback."""

from pathlib import Path

import pytest
from conftest import AgentEnv, write_config
from terrafusion_agent.stores import spatialite


def assert_one_sentence(proc, *fragments):
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr
    assert len(err.splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, err


def test_invalid_config_file(sqlite_agent):
    sqlite_agent.config.write_text("[sync]\ninterval_seconds = 'x'\n")
    proc = sqlite_agent.run("status", check=False)
    assert_one_sentence(proc, "sync.interval_seconds")
    assert proc.returncode == 2


def test_unreadable_config_file(sqlite_agent):
    sqlite_agent.config.unlink()
    sqlite_agent.config.mkdir()
    assert_one_sentence(sqlite_agent.run("sync", check=False), "cannot be read")


def test_missing_config_file(sqlite_agent):
    sqlite_agent.config.unlink()
    assert_one_sentence(sqlite_agent.run("sync", check=False), "does not exist")


def test_unreachable_postgres_central(sqlite_agent):
    url = "postgresql://gis:S3cretPw@127.0.0.1:1/county"
    env = {"TERRAFUSION_CENTRAL__URL": url, "TERRAFUSION_CENTRAL__CONNECT_TIMEOUT_SECONDS": "2"}
    proc = sqlite_agent.run("sync", check=False, env=env)
    assert_one_sentence(proc, "cannot be reached", "127.0.0.1")
    assert "S3cretPw" not in proc.stderr + proc.stdout


def test_missing_embedded_central(sqlite_agent):
    assert_one_sentence(sqlite_agent.run("sync", check=False), "does not exist", "init-central")


def test_missing_table_is_named(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "50")
    proc = sqlite_agent.run("sync", check=False,
                            env={"TERRAFUSION_SYNC__TABLES": "parcels,parcel_history"})
    assert_one_sentence(proc, "parcel_history", "does not exist")


@pytest.mark.parametrize("args", [["init-central", "--demo-parcels", "zero"],
                                  ["conflicts", "resolve", "1"],
                                  ["frobnicate"]])
def test_bad_arguments_exit_2(sqlite_agent, args):
    proc = sqlite_agent.run(*args, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr


def test_table_without_primary_key_is_refused_by_name(pg_agent, pg_cluster):
    dbname = pg_agent.central_url.split("/")[3].split("?")[0]
    pg_cluster.psql(dbname, "CREATE TABLE permits (permit_no text, issued date)")
    proc = pg_agent.run("init-central", check=False,
                        env={"TERRAFUSION_SYNC__TABLES": "permits"})
    assert_one_sentence(proc, "permits", "primary key")


# --- a failed init-central leaves nothing it made behind ---------------------------------


def _agent_with_central(directory: Path, central: Path) -> AgentEnv:
    url = f"sqlite:///{central}"
    return AgentEnv(directory, write_config(directory, url), url)


def test_a_refused_init_central_leaves_no_file_it_made(tmp_path):
    agent = _agent_with_central(tmp_path, tmp_path / "data" / "central.sqlite")
    proc = agent.run("init-central", "--demo-parcels", "50", check=False,
                     env={"TERRAFUSION_SYNC__TABLES": "parcels,parcel_history"})
    assert_one_sentence(proc, "parcel_history", "does not exist")
    # neither the central file (with its folder) nor the log folder it had made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml"]


def test_a_refused_init_central_leaves_an_existing_central_byte_identical(tmp_path):
    central = tmp_path / "central.sqlite"
    conn = spatialite.connect(central, create=True)
    conn.execute("CREATE TABLE permits (permit_no text, issued date)")
    conn.execute("INSERT INTO permits VALUES ('B-1001', '2024-05-02')")
    conn.close()
    before = central.read_bytes()
    agent = _agent_with_central(tmp_path, central)
    proc = agent.run("init-central", "--demo-parcels", "50", check=False,
                     env={"TERRAFUSION_SYNC__TABLES": "parcels,permits"})
    assert_one_sentence(proc, "permits", "primary key")
    # refused before the demo or the bookkeeping were written into it
    assert central.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml", "central.sqlite"]


def test_an_init_central_that_fills_the_disk_leaves_no_file_and_says_why(tmp_path, small_disk):
    # room for SpatiaLite's metadata, not for the bookkeeping and the demo after it
    disk = small_disk(10_000_000)
    agent = _agent_with_central(tmp_path, disk / "data" / "central.sqlite")
    proc = agent.run("init-central", "--demo-parcels", "20000", check=False)
    assert_one_sentence(proc, "central.sqlite", "cannot be created or upgraded", "full")
    assert list(disk.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.toml", "disk1"]
