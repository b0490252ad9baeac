"""Bad input reaches the user as one clear sentence and a non-zero exit, never a traceback."""

import pytest


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
