"""Shared fixtures: a throwaway PostGIS cluster, configs, and an agent CLI runner."""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from pgcluster import PgCluster  # noqa: E402

_db_names = (f"tf_test_{i}" for i in itertools.count(1))


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster):
    """URL of a fresh PostGIS database for one test."""
    name = next(_db_names)
    url = pg_cluster.create_db(name)
    yield url
    pg_cluster.drop_db(name)


@pytest.fixture
def bouncer_url(pg_cluster):
    """URL of a fresh PostGIS database for one test, reached through a PgBouncer in
    transaction pooling mode of its own: a pooler shared across tests would keep server
    connections to databases dropped, or to a cluster restarted, by earlier tests."""
    name = next(_db_names)
    pg_cluster.create_db(name)
    yield from _bounced(pg_cluster, name)


def _bounced(pg_cluster, name: str):
    """Yield the URL of database ``name`` through a PgBouncer of its own; at the end,
    check that the test's transactions went through it, stop it and drop the database."""
    from pgbouncer import PgBouncer

    try:
        bouncer = PgBouncer(pg_cluster).start()
    except BaseException:
        pg_cluster.drop_db(name)
        raise
    try:
        yield bouncer.url(name)
        # the test's clients talked to central through the pooler, not around it
        assert bouncer.transactions(name) > 0, "No transaction went through PgBouncer."
    finally:
        bouncer.stop()  # before the drop: its server connections hold the database
        pg_cluster.drop_db(name)


@pytest.fixture(scope="session")
def _synced_counties(tmp_path_factory) -> dict:
    """Demo counties synced once per session, by (central kind, parcels): the folder
    with the central (SpatiaLite) and the local copy, and the PostGIS template's name."""
    return {}


def _copy_sqlite(source: Path, dest: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{source}{suffix}")
        if path.exists():
            shutil.copyfile(path, f"{dest}{suffix}")


def synced_copy(request, tmp_path: Path, kind: str, parcels: int = 200) -> AgentEnv:
    """An agent in ``tmp_path`` whose central ("spatialite", "postgis" or "pgbouncer")
    holds a demo county of ``parcels`` parcels, synced once into its local copy: both
    copied from one county made (init-central, sync) once per session, which costs a
    file copy or a CREATE DATABASE ... TEMPLATE instead of two agent runs."""
    made = request.getfixturevalue("_synced_counties")
    base = "spatialite" if kind == "spatialite" else "postgis"
    cluster = request.getfixturevalue("pg_cluster") if base == "postgis" else None
    if (base, parcels) not in made:
        folder = request.getfixturevalue("tmp_path_factory").mktemp(f"county_{base}")
        template = None
        if cluster is not None:
            template = f"tf_county_{parcels}"
            url = cluster.create_db(template)
        else:
            url = f"sqlite:///{folder / 'central.sqlite'}"
        env = AgentEnv(folder, write_config(folder, url), url)
        env.run("init-central", "--demo-parcels", str(parcels))
        env.run("sync")
        made[(base, parcels)] = (folder, template)
    folder, template = made[(base, parcels)]
    tmp_path.mkdir(parents=True, exist_ok=True)
    _copy_sqlite(folder / "local.sqlite", tmp_path / "local.sqlite")
    if cluster is None:
        _copy_sqlite(folder / "central.sqlite", tmp_path / "central.sqlite")
        url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    else:
        name = next(_db_names)
        cluster.psql("postgres", f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        if kind == "pgbouncer":
            bounced = _bounced(cluster, name)
            url = next(bounced)
            request.addfinalizer(lambda: next(bounced, None))
        else:
            url = cluster.url(name)
            request.addfinalizer(lambda: cluster.drop_db(name))
    return AgentEnv(tmp_path, write_config(tmp_path, url), url)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's own config, data or logs."""
    for key in list(os.environ):
        if key.startswith("TERRAFUSION_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@dataclass
class AgentEnv:
    """A config file in a temp folder plus a way to run the CLI against it."""

    dir: Path
    config: Path
    central_url: str

    @property
    def local_path(self) -> Path:
        return self.dir / "local.sqlite"

    def run(self, *args: str, check: bool = True, timeout: float = 300,
            env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [sys.executable, "-m", "terrafusion_agent", "--config", str(self.config), *args],
            capture_output=True, text=True, timeout=timeout, env=full_env)
        if check and proc.returncode != 0:
            raise AssertionError(
                f"terrafusion-agent {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stdout}\n{proc.stderr}")
        return proc

    def load(self):
        from terrafusion_agent import config

        return config.load(self.config)


def write_config(directory: Path, central_url: str, extra: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "agent.toml"
    path.write_text(
        f'[central]\nurl = "{central_url}"\n'
        f'[local]\npath = "local.sqlite"\n'
        f'[http]\nport = 0\n'
        f'[logging]\ndir = "logs"\n{extra}',
        encoding="utf-8")
    return path


def embedded_agent(directory: Path, extra: str = "") -> AgentEnv:
    """An agent configured with an embedded SpatiaLite central in ``directory``."""
    url = f"sqlite:///{directory / 'central.sqlite'}"
    return AgentEnv(directory, write_config(directory, url, extra), url)


def synced_county(directory: Path, parcels: int) -> AgentEnv:
    """An embedded demo county of ``parcels`` parcels, synced once into its local copy."""
    env = embedded_agent(directory)
    env.run("init-central", "--demo-parcels", str(parcels))
    env.run("sync")
    return env


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size)`` mounts a real file system of ``size`` bytes (tmpfs) in a new
    folder under tmp_path and returns the folder; each is unmounted at the end. A full
    disk made this way fails writes the way a real one does (ENOSPC at the write).
    Mounting needs root (as make test runs in CI): without it the test fails, never
    skips, since a full-disk test that does not fill a disk proves nothing."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.fail("This test mounts a small tmpfs to fill it up, which needs root; "
                    "run make test as root.")
    mounted: list[Path] = []

    def mount(size: int) -> Path:
        folder = tmp_path / f"disk{len(mounted) + 1}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs",
                        str(folder)], check=True, capture_output=True, timeout=30)
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            # something still holds a file there (a test that failed half way)
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


@pytest.fixture
def sqlite_agent(tmp_path) -> AgentEnv:
    """An agent configured with an embedded SpatiaLite central in tmp_path."""
    return embedded_agent(tmp_path)


@pytest.fixture
def pg_agent(tmp_path, pg_url) -> AgentEnv:
    """An agent configured with a fresh PostGIS central."""
    return AgentEnv(tmp_path, write_config(tmp_path, pg_url), pg_url)


def agent_of_kind(request, tmp_path: Path, kind: str) -> AgentEnv:
    """An agent whose central is "spatialite", "postgis" or "pgbouncer" (PostGIS
    through PgBouncer in transaction pooling mode)."""
    if kind == "postgis":
        url = request.getfixturevalue("pg_url")
    elif kind == "pgbouncer":
        url = request.getfixturevalue("bouncer_url")
    else:
        url = f"sqlite:///{tmp_path / 'central.sqlite'}"
    return AgentEnv(tmp_path, write_config(tmp_path, url), url)


@pytest.fixture(params=["spatialite", "postgis"])
def central_url(request, tmp_path) -> str:
    """The URL of a fresh central of both kinds, one after the other."""
    if request.param == "postgis":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'central.sqlite'}"


def agent_before(migration: str, dest: Path) -> Path:
    """The agent as it was just before ``migration`` (a path in this repository) was added,
    taken from the repository's history into ``dest``; the folder to put on PYTHONPATH."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> bytes:
        return subprocess.run(["git", "-C", str(root), *args], check=True,
                              capture_output=True, timeout=60).stdout

    added = git("log", "--diff-filter=A", "--format=%H", "--", migration).split()
    base = added[-1].decode() + "^" if added else "HEAD"
    with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", base, "agent"))) as tar:
        tar.extractall(dest)
    assert not (dest / migration).exists()
    return dest / "agent"


@pytest.fixture(params=["spatialite", "postgis"])
def any_agent(request, tmp_path) -> AgentEnv:
    """Both central kinds, one after the other."""
    return agent_of_kind(request, tmp_path, request.param)


def central_exec(agent: AgentEnv, sql: str, params: tuple = ()) -> list:
    """Run SQL on the agent's central database as another client would (no agent code)."""
    if agent.central_url.startswith("sqlite:///"):
        from terrafusion_agent.stores.spatialite import connect

        conn = connect(agent.central_url[len("sqlite:///"):])
        try:
            cur = conn.execute(sql.replace("%s", "?"), params)
            return cur.fetchall() if cur.description else []
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(agent.central_url, autocommit=True) as conn:
        cur = conn.execute(sql, params or None)
        return cur.fetchall() if cur.description else []


def local_exec(agent: AgentEnv, sql: str, params: tuple = ()) -> list:
    """Edit or read the local copy as QGIS or another SpatiaLite client would."""
    from terrafusion_agent.stores.spatialite import connect

    conn = connect(agent.local_path)
    try:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []
    finally:
        conn.close()
