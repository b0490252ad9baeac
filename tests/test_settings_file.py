"""The Settings dialog's file writer: the user's file survives a save, byte for byte, except
the values that changed; a bad or secret-holding file never replaces the old one."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from terrafusion_agent import config
from terrafusion_agent.client import settings_file
from terrafusion_agent.client.settings_file import Central, Settings, SettingsError

KEPT_BY_HAND = '''\
# Kept by Dana at the county GIS office; ask before changing the central URL.

[http]   # the API, for the QGIS plugin
port = 8765

[export.presets.title_company]
# what the title company may see
format = "gpkg"
table = "parcels"
fields = ["geo_id", "legal_desc"]   # nothing personal

[sync]
# five minutes in the day; the night job runs its own sync
interval_seconds = 300  # at least 5
tables = [
    "parcels",   # the big one
    "districts",
]
conflict_policy = "manual"

[sync.table_policy]
districts = "central_wins"   # the planning office owns them

[central]
url = "sqlite:///central.sqlite"

[logging]
level = "DEBUG"
'''


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _as_shown(path: Path) -> Settings:
    """The settings as the dialog shows them for ``path`` (what a user sees before editing)."""
    cfg = config.load(path, environ={})
    document = settings_file.read_document(path)
    return Settings(central=settings_file.parse_central(document["central"]["url"]),
                    local_path="", tables=cfg.tables, interval_seconds=cfg.interval_seconds,
                    conflict_policy=cfg.conflict_policy, table_policy=dict(cfg.table_policy),
                    http_port=cfg.http_port)


def _save(path: Path, settings: Settings):
    return settings_file.save(path, settings_file.apply(settings_file.read_document(path),
                                                        settings))


def test_a_save_keeps_comments_order_and_presets_and_changes_only_the_edited_values(tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND)
    edited = dataclasses.replace(_as_shown(path), interval_seconds=120,
                                 tables=("parcels", "districts", "sales"))

    cfg = _save(path, edited)

    expected = KEPT_BY_HAND.replace("interval_seconds = 300  # at least 5",
                                    "interval_seconds = 120  # at least 5").replace(
        '    "districts",\n]', '    "districts",\n    "sales",\n]')
    assert path.read_text(encoding="utf-8") == expected
    assert cfg.interval_seconds == 120 and cfg.tables == ("parcels", "districts", "sales")
    assert cfg.presets["title_company"].fields == ("geo_id", "legal_desc")
    assert cfg.table_policy == {"districts": "central_wins"} and cfg.log_level == "DEBUG"


def test_a_save_without_changes_leaves_the_file_as_it_was(tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND)

    _save(path, _as_shown(path))

    assert path.read_text(encoding="utf-8") == KEPT_BY_HAND


def test_a_removed_table_takes_its_line_and_policy_and_the_others_keep_their_comments(
        tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND)
    edited = dataclasses.replace(_as_shown(path), tables=("parcels",), table_policy={
        "parcels": "local_wins"})

    cfg = _save(path, edited)

    text = path.read_text(encoding="utf-8")
    assert '    "parcels",   # the big one\n]' in text and '"districts"' not in text
    assert "[sync.table_policy]\nparcels = \"local_wins\"\n" in text
    assert text.startswith("# Kept by Dana") and "# what the title company may see" in text
    assert cfg.tables == ("parcels",) and cfg.table_policy == {"parcels": "local_wins"}


def test_a_new_file_gets_the_header_and_only_the_values_that_are_not_defaults(tmp_path):
    path = tmp_path / "new" / "agent.toml"
    defaults = config.load(_write(tmp_path / "empty.toml", ""), environ={})
    shown = Settings(central=Central(kind="spatialite", path="central.sqlite"), local_path="",
                     tables=defaults.tables, interval_seconds=defaults.interval_seconds,
                     conflict_policy=defaults.conflict_policy, table_policy={},
                     http_port=defaults.http_port)

    cfg = _save(path, dataclasses.replace(shown, interval_seconds=60))

    assert path.read_text(encoding="utf-8") == (
        settings_file.HEADER + '\n[central]\nurl = "sqlite:///central.sqlite"\n\n'
        "[sync]\ninterval_seconds = 60\n")
    assert cfg.interval_seconds == 60 and cfg.tables == defaults.tables


def test_the_central_schema_is_written_for_a_server_and_left_alone_for_spatialite(tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND.replace(
        'url = "sqlite:///central.sqlite"', 'url = "sqlite:///central.sqlite"\nschema = "gis"'))
    server = Central(kind="server", host="db.county.local", database="terrafusion", user="gis")

    # a SpatiaLite central has no schemas: the file's value stays for a later server
    assert _save(path, dataclasses.replace(_as_shown(path), central_schema="")) \
        .central_schema == "gis"
    cfg = _save(path, dataclasses.replace(_as_shown(path), central=server,
                                          central_schema=" assessor "))
    assert cfg.central_schema == "assessor"
    assert 'schema = "assessor"' in path.read_text(encoding="utf-8")
    # left empty: the default schema
    assert _save(path, dataclasses.replace(_as_shown(path), central=server,
                                           central_schema="")).central_schema == "public"


def test_a_password_in_the_file_is_dropped_by_the_next_save(tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND.replace(
        'url = "sqlite:///central.sqlite"',
        'url = "postgresql://gis:S3cret@db.county.local/terrafusion"  # move to .pgpass'))

    cfg = _save(path, _as_shown(path))

    text = path.read_text(encoding="utf-8")
    assert "S3cret" not in text
    assert 'url = "postgresql://gis@db.county.local/terrafusion"  # move to .pgpass' in text
    assert cfg.central_url == "postgresql://gis@db.county.local/terrafusion"


def test_a_document_holding_a_password_is_refused_and_the_old_file_stays(tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND)
    document = settings_file.read_document(path)
    document["central"]["url"] = "postgresql://gis:S3cret@db.county.local/terrafusion"

    with pytest.raises(SettingsError, match="password cannot be written"):
        settings_file.save(path, document)

    assert path.read_text(encoding="utf-8") == KEPT_BY_HAND
    assert os.listdir(tmp_path) == ["agent.toml"]


def test_a_value_the_agent_refuses_is_named_and_the_old_file_stays(tmp_path):
    path = _write(tmp_path / "agent.toml", KEPT_BY_HAND)

    with pytest.raises(SettingsError) as err:
        _save(path, dataclasses.replace(_as_shown(path), interval_seconds=1))

    assert str(err.value) == (
        "Configuration key sync.interval_seconds must be between 5 and 604800.")
    assert path.read_text(encoding="utf-8") == KEPT_BY_HAND
    assert os.listdir(tmp_path) == ["agent.toml"], "no temporary file is left behind"


def test_a_file_that_is_not_toml_is_one_sentence(tmp_path):
    path = _write(tmp_path / "agent.toml", "[sync\n")

    with pytest.raises(SettingsError, match=r"agent\.toml is not valid TOML"):
        settings_file.read_document(path)
