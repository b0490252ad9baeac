"""Configuration: lookup order, overrides, defaults and validation messages."""

from pathlib import Path

import pytest
from terrafusion_agent import config
from terrafusion_agent.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_empty_file_gives_the_documented_defaults(tmp_path):
    cfg = config.load(write(tmp_path / "agent.toml", ""), environ={})
    assert cfg.tables == ("parcels", "districts", "sales")
    assert cfg.interval_seconds == 300
    assert cfg.conflict_policy == "manual"
    assert (cfg.http_host, cfg.http_port) == ("127.0.0.1", 8765)
    assert cfg.token_file == tmp_path / "token"
    assert cfg.local_path.name == "local.sqlite"
    assert cfg.central_url.startswith("sqlite:///")


def test_no_file_anywhere_is_valid_and_uses_platform_dirs(tmp_path):
    cfg = config.load(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    assert cfg.source is None
    assert "terrafusion" in str(cfg.local_path)


def test_explicit_path_beats_environment_variable(tmp_path):
    a = write(tmp_path / "a.toml", "[sync]\ninterval_seconds = 60\n")
    b = write(tmp_path / "b.toml", "[sync]\ninterval_seconds = 90\n")
    assert config.load(a, environ={"TERRAFUSION_CONFIG": str(b)}).interval_seconds == 60
    assert config.load(None, environ={"TERRAFUSION_CONFIG": str(b)}).interval_seconds == 90


def test_environment_variable_beats_platform_default(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    write(tmp_path / "xdg" / "terrafusion" / "agent.toml", "[sync]\ninterval_seconds = 70\n")
    assert config.load().interval_seconds == 70
    other = write(tmp_path / "other.toml", "[sync]\ninterval_seconds = 80\n")
    monkeypatch.setenv("TERRAFUSION_CONFIG", str(other))
    assert config.load().interval_seconds == 80


def test_override_beats_file(tmp_path):
    path = write(tmp_path / "agent.toml", "[sync]\ninterval_seconds = 60\n")
    env = {"TERRAFUSION_SYNC__INTERVAL_SECONDS": "120",
           "TERRAFUSION_SYNC__TABLES": "parcels,sales",
           "TERRAFUSION_SYNC__TABLE_POLICY__PARCELS": "local_wins",
           "TERRAFUSION_HTTP__HOST": "::1"}
    cfg = config.load(path, environ=env)
    assert cfg.interval_seconds == 120
    assert cfg.tables == ("parcels", "sales")
    assert cfg.policy_for("parcels") == "local_wins"
    assert cfg.policy_for("sales") == "manual"
    assert cfg.http_host == "::1"


def test_relative_paths_are_relative_to_the_config_file(tmp_path):
    cfg = config.load(write(tmp_path / "conf" / "agent.toml",
                            '[local]\npath = "data/local.sqlite"\n'), environ={})
    assert cfg.local_path == tmp_path / "conf" / "data" / "local.sqlite"


def test_presets_are_read(tmp_path):
    cfg = config.load(write(tmp_path / "agent.toml", """
[export.presets.public_parcels]
table = "parcels"
format = "geojson"
crs = "EPSG:4326"
fields = ["geo_id", "situs_address", "market_value"]
renames = { situs_address = "address" }
"""), environ={})
    preset = cfg.presets["public_parcels"]
    assert preset.fields == ("geo_id", "situs_address", "market_value")
    assert preset.renames == {"situs_address": "address"}


@pytest.mark.parametrize(("text", "env", "named"), [
    ("[sync]\ninterval_secs = 60\n", {}, "sync.interval_secs"),
    ("[sync]\ninterval_seconds = 'often'\n", {}, "sync.interval_seconds"),
    ("[sync]\ninterval_seconds = 1\n", {}, "sync.interval_seconds"),
    ("[sync]\nconflict_policy = 'newest'\n", {}, "sync.conflict_policy"),
    ("[sync.table_policy]\nparcels = 'mine'\n", {}, "sync.table_policy.parcels"),
    ("[http]\nport = 70000\n", {}, "http.port"),
    ("[central]\nurl = 'mysql://x'\n", {}, "central.url"),
    ("[centrale]\nurl = 'x'\n", {}, "[centrale]"),
    ("[export.presets.p]\nformat = 'gpkg'\n", {}, "export.presets.p.table"),
    ("[export.presets.p]\ntable = 't'\nformat = 'xlsx'\n", {}, "export.presets.p.format"),
    ("", {"TERRAFUSION_SYNC__INTERVAL_SECONDS": "soon"}, "sync.interval_seconds"),
    ("", {"TERRAFUSION_NOPE": "1"}, "TERRAFUSION_NOPE"),
])
def test_bad_keys_and_values_are_named(tmp_path, text, env, named):
    path = write(tmp_path / "agent.toml", text)
    with pytest.raises(ConfigError) as err:
        config.load(path, environ=env)
    message = str(err.value)
    assert named in message
    assert "\n" not in message and message.endswith(".")


def test_invalid_toml_names_the_file(tmp_path):
    path = write(tmp_path / "agent.toml", "[sync\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        config.load(path, environ={})
    assert str(path) in str(err.value)


def test_missing_named_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml", environ={})


def test_unreadable_file_is_an_error(tmp_path):
    path = tmp_path / "folder.toml"
    path.mkdir()  # a directory cannot be read as a file, even by root
    with pytest.raises(ConfigError, match="cannot be read"):
        config.load(path, environ={})


def test_fault_point_variables_are_not_taken_for_settings(tmp_path):
    env = {"TERRAFUSION_FAULT": "push.after_central_commit",
           "TERRAFUSION_FAULT_PAUSE": str(tmp_path / "pause")}
    assert config.load(write(tmp_path / "agent.toml", ""), environ=env).interval_seconds == 300
