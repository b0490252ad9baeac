"""Bad input reaches the user as one clear sentence and a non-zero exit, never a traceback."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AgentEnv, central_exec, write_config
from terrafusion_agent import cli
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


# --- a fresh user's first commands say what to do -----------------------------------------


def _bare(tmp_path: Path, *args: str, env: dict | None = None,
          cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI as a fresh user runs it: no --config before the command, the platform's
    folders (conftest points them into tmp_path)."""
    return subprocess.run([sys.executable, "-m", "terrafusion_agent", *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd or tmp_path,
                          env={**os.environ, **(env or {})})


def test_a_fresh_sync_says_how_to_get_a_central_naming_the_config_file(tmp_path):
    proc = _bare(tmp_path, "sync")
    default = tmp_path / "xdg-config" / "terrafusion" / "agent.toml"
    assert_one_sentence(proc, "does not exist", "init-central --demo-parcels",
                        f"set central.url in {default}")
    assert proc.returncode == 1


def test_a_fresh_init_central_says_what_to_do_and_creates_no_central(tmp_path):
    proc = _bare(tmp_path, "init-central")
    default = tmp_path / "xdg-config" / "terrafusion" / "agent.toml"
    assert_one_sentence(proc, "Table parcels of sync.tables does not exist",
                        "init-central --demo-parcels", f"{default} (a file to create)")
    assert proc.returncode == 2
    assert not (tmp_path / "xdg-data" / "terrafusion" / "central.sqlite").exists()
    assert not default.exists()


def test_a_missing_table_that_no_demo_makes_is_not_answered_with_the_demo(sqlite_agent):
    proc = sqlite_agent.run("init-central", check=False,
                            env={"TERRAFUSION_SYNC__TABLES": "permits"})
    assert_one_sentence(proc, "Table permits", "list in sync.tables only tables central has",
                        str(sqlite_agent.config))
    assert "--demo-parcels" not in proc.stderr
    assert proc.returncode == 2


def test_a_refused_init_central_makes_no_table_in_postgis(pg_agent):
    proc = pg_agent.run("init-central", check=False)
    assert_one_sentence(proc, "Table parcels", "--demo-parcels")
    assert proc.returncode == 2
    assert central_exec(pg_agent, "SELECT relname FROM pg_class "
                                  "WHERE relname LIKE 'tf\\_%' OR relname = 'parcels'") == []


def test_a_successful_init_central_piped_into_head_keeps_what_it_made(tmp_path):
    agent = _agent_with_central(tmp_path, tmp_path / "central.sqlite")
    proc = subprocess.Popen([sys.executable, "-m", "terrafusion_agent", "--config",
                             str(agent.config), "init-central", "--demo-parcels", "20"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the summary is printed
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert central_exec(agent, "SELECT count(*) FROM parcels") == [(20,)]


def test_relative_paths_resolve_against_the_config_file_wherever_the_cli_runs(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "agent.toml").write_text('[central]\nurl = "sqlite:///data/central.sqlite"\n'
                                     '[local]\npath = "data/local.sqlite"\n'
                                     '[logging]\ndir = "logs"\n[http]\nport = 0\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for command in (["init-central", "--demo-parcels", "20"], ["sync"]):
        proc = _bare(tmp_path, "--config", "../conf/agent.toml", *command, cwd=elsewhere)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (conf / "data").iterdir()) >= ["central.sqlite",
                                                                   "local.sqlite"]
    assert list(elsewhere.iterdir()) == []
    status = json.loads(_bare(tmp_path, "status", "--config", str(conf / "agent.toml")).stdout)
    assert status["central"] == f"sqlite:///{conf / 'data' / 'central.sqlite'}"
    assert status["local_path"] == str(conf / "data" / "local.sqlite")


# --- options after the command, help, exit codes ---------------------------------------------


def test_config_and_debug_work_after_the_command(sqlite_agent, tmp_path):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    proc = _bare(tmp_path, "sync", "--config", str(sqlite_agent.config))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pulled"] > 0
    proc = _bare(tmp_path, "conflicts", "list", "--config", str(sqlite_agent.config))
    assert proc.returncode == 0, proc.stderr
    # after the command it wins over one before it, as the later option does
    proc = _bare(tmp_path, "--config", str(tmp_path / "nope.toml"), "status",
                 "--config", str(sqlite_agent.config))
    assert proc.returncode == 0, proc.stderr
    proc = _bare(tmp_path, "status", "--config", str(tmp_path / "nope.toml"), "--debug")
    assert "Traceback" in proc.stderr and "nope.toml does not exist" in proc.stderr
    proc = _bare(tmp_path, "status", "--config", str(tmp_path / "nope.toml"))
    assert_one_sentence(proc, "nope.toml does not exist")
    assert proc.returncode == 2


def _commands(parser: argparse.ArgumentParser, prefix: tuple = ()):
    """Every (sub)command's parser with its words: ("conflicts", "resolve")..."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield prefix + (name,), sub
                yield from _commands(sub, prefix + (name,))


def test_every_command_has_a_description_and_an_example_in_its_help():
    commands = list(_commands(cli._parser()))
    assert {words[0] for words, _ in commands} >= {"init-central", "uninstall-central", "sync",
                                                "export", "install-service", "fleet"}
    for words, parser in commands:
        text = parser.format_help()
        assert parser.description and len(parser.description) > 40, words
        examples = text.split("examples:\n", 1)[1]
        assert f"  terrafusion-agent {' '.join(words)}" in examples, (words, text)
        assert "--config PATH" in text and "--debug" in text, words


def test_help_is_printed_as_written_by_a_real_process(tmp_path):
    proc = _bare(tmp_path, "init-central", "--help")
    assert proc.returncode == 0
    # what init-central creates, in its own lines
    assert "\n  triggers  on every table of sync.tables" in proc.stdout
    assert "tf_change_log" in proc.stdout and "tf_fleet" in proc.stdout
    assert "examples:\n  terrafusion-agent init-central --demo-parcels 10000" in proc.stdout


def test_a_missing_table_of_sync_tables_exits_2_on_sync(sqlite_agent):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    proc = sqlite_agent.run("sync", check=False,
                            env={"TERRAFUSION_SYNC__TABLES": "parcels,parcel_history"})
    assert_one_sentence(proc, "parcel_history", "does not exist")
    assert proc.returncode == 2


@pytest.mark.parametrize("args", [
    ["export", "nowhere", "--format", "gpkg"],
    ["export", "parcels", "--format", "dwg"],
    ["export", "parcels", "--format", "csv", "--fields", "acreage"],
    ["export", "--preset", "nope"],
])
def test_bad_export_arguments_exit_2(sqlite_agent, tmp_path, args):
    sqlite_agent.run("init-central", "--demo-parcels", "20")
    sqlite_agent.run("sync")
    proc = sqlite_agent.run(*args, "--out", str(tmp_path / "out.gpkg"), check=False)
    assert_one_sentence(proc)
    assert proc.returncode == 2
    assert not (tmp_path / "out.gpkg").exists()


def test_an_environment_override_with_an_unknown_key_names_the_variable(sqlite_agent):
    proc = sqlite_agent.run("status", check=False, env={"TERRAFUSION_SYNC__INTERVAL": "60"})
    assert_one_sentence(proc, "TERRAFUSION_SYNC__INTERVAL ",
                        "did you mean TERRAFUSION_SYNC__INTERVAL_SECONDS?")
    assert proc.returncode == 2
