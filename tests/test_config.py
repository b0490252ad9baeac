"""Configuration: lookup order, overrides, defaults and validation messages."""

import dataclasses
import importlib.util
from pathlib import Path

import pytest
from terrafusion_agent import config
from terrafusion_agent.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


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


def test_relative_paths_and_central_file_resolve_against_the_file_not_the_current_folder(
        tmp_path, monkeypatch):
    write(tmp_path / "conf" / "agent.toml",
          '[central]\nurl = "sqlite:///data/central.sqlite"\n'
          '[local]\npath = "../copies/local.sqlite"\n[logging]\ndir = "logs"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as a service or a shell in another folder would be
    cfg = config.load("../conf/agent.toml", environ={})
    conf = tmp_path / "conf"
    assert cfg.central_url == f"sqlite:///{conf / 'data' / 'central.sqlite'}"
    assert cfg.local_path == tmp_path / "copies" / "local.sqlite"  # ".." folded away
    assert (cfg.log_dir, cfg.token_file) == (conf / "logs", conf / "token")
    assert cfg.source == cfg.file == conf / "agent.toml"
    assert all(p.is_absolute() for p in (cfg.local_path, cfg.log_dir, cfg.token_file))


def test_a_relative_path_from_an_override_is_relative_to_the_file_too(tmp_path, monkeypatch):
    path = write(tmp_path / "conf" / "agent.toml", "")
    monkeypatch.chdir(tmp_path)
    cfg = config.load(path, environ={"TERRAFUSION_CENTRAL__URL": "sqlite:///c.sqlite",
                                     "TERRAFUSION_LOCAL__PATH": "l.sqlite"})
    assert cfg.central_url == f"sqlite:///{tmp_path / 'conf' / 'c.sqlite'}"
    assert cfg.local_path == tmp_path / "conf" / "l.sqlite"


def test_a_postgresql_url_is_kept_as_written(tmp_path):
    url = "postgresql://gis@db.county.local/terrafusion?sslmode=require"
    cfg = config.load(write(tmp_path / "a.toml", f'[central]\nurl = "{url}"\n'), environ={})
    assert cfg.central_url == url


def test_a_missing_default_file_is_still_named_as_the_file_to_edit(tmp_path):
    cfg = config.load(environ={})  # XDG_CONFIG_HOME is tmp_path/xdg-config (conftest)
    assert cfg.source is None
    assert cfg.file == tmp_path / "xdg-config" / "terrafusion" / "agent.toml"


@pytest.mark.parametrize(("text", "env", "sentence"), [
    ("[sync]\ntables = []\n", {}, "Configuration key sync.tables must name at least one table."),
    ("", {"TERRAFUSION_SYNC__TABLES": ""},
     "Environment variable TERRAFUSION_SYNC__TABLES (sync.tables) must name at least one "
     "table."),
    ("[sync.table_policy]\nparcles = 'central_wins'\n", {},
     "Configuration key sync.table_policy.parcles sets the policy of table parcles, which "
     "is not in sync.tables (did you mean parcels?)."),
    ("[sync]\ntables = ['parcels']\n[sync.table_policy]\nsales = 'local_wins'\n", {},
     "Configuration key sync.table_policy.sales sets the policy of table sales, which is "
     "not in sync.tables (it lists parcels)."),
    ("", {"TERRAFUSION_SYNC__TABLE_POLICY__PARCLES": "manual"},
     "Environment variable TERRAFUSION_SYNC__TABLE_POLICY__PARCLES "
     "(sync.table_policy.parcles) sets the policy of table parcles, which is not in "
     "sync.tables (did you mean parcels?)."),
    ("", {"TERRAFUSION_SYNC__INTERVAL": "60"},
     "Environment variable TERRAFUSION_SYNC__INTERVAL names no configuration key (did you "
     "mean TERRAFUSION_SYNC__INTERVAL_SECONDS?)."),
    ("", {"TERRAFUSION_SYNC_INTERVAL_SECONDS": "60"},
     "Environment variable TERRAFUSION_SYNC_INTERVAL_SECONDS is not a "
     "TERRAFUSION_<SECTION>__<KEY> override (did you mean "
     "TERRAFUSION_SYNC__INTERVAL_SECONDS?)."),
    ("", {"TERRAFUSION_SYNC__TABLE_POLICY": "manual"},
     "Environment variable TERRAFUSION_SYNC__TABLE_POLICY names no configuration key (did "
     "you mean TERRAFUSION_SYNC__TABLE_POLICY__<TABLE>?)."),
    ("", {"TERRAFUSION_HTTP__PORTT": "80"},
     "Environment variable TERRAFUSION_HTTP__PORTT names no configuration key (did you "
     "mean TERRAFUSION_HTTP__PORT?)."),
    ("", {"TERRAFUSION_SYNC__INTERVAL_SECONDS": "soon"},
     "Environment variable TERRAFUSION_SYNC__INTERVAL_SECONDS (sync.interval_seconds) must "
     "be a whole number."),
    ("[sync]\ninterval = 60\n", {},
     "Unknown configuration key sync.interval in {file} (did you mean "
     "sync.interval_seconds?)."),
    ("[logging]\nlevle = 'DEBUG'\n", {},
     "Unknown configuration key logging.levle in {file} (did you mean logging.level?)."),
    ("[http]\ninterval_seconds = 60\n", {},
     "Unknown configuration key http.interval_seconds in {file} (did you mean "
     "sync.interval_seconds?)."),
    ("tables = ['parcels']\n", {},
     "Unknown configuration section [tables] in {file} (did you mean sync.tables?)."),
    ("[central]\nurl = 'sqlite:///'\n", {},
     "Configuration key central.url must name the SpatiaLite file after sqlite:///."),
])
def test_silent_misconfigurations_are_refused_naming_the_culprit(tmp_path, text, env,
                                                                 sentence):
    path = write(tmp_path / "agent.toml", text)
    with pytest.raises(ConfigError) as err:
        config.load(path, environ=env)
    assert str(err.value) == sentence.replace("{file}", str(path))
    assert err.value.exit_code == 2


def test_a_policy_for_a_synced_table_stays_valid(tmp_path):
    cfg = config.load(write(tmp_path / "agent.toml", "[sync]\ntables = ['permits']\n"
                            "[sync.table_policy]\npermits = 'central_wins'\n"), environ={})
    assert cfg.policy_for("permits") == "central_wins"


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


@pytest.mark.parametrize(("text", "sentence"), [
    ("[sync]\ninterval_secs = 60\n", "Unknown configuration key sync.interval_secs in "
     "{file} (did you mean sync.interval_seconds?)."),
    ("[sync]\ninterval_seconds = 1\n",
     "Configuration key sync.interval_seconds must be between 5 and 604800."),
    ("[sync]\ninterval_seconds = true\n",
     "Configuration key sync.interval_seconds must be a whole number."),
    ("[sync.table_policy]\nparcels = 'mine'\n", "Configuration key sync.table_policy.parcels "
     "must be one of manual, central_wins, local_wins, not 'mine'."),
    ("[sync]\ntable_policy = 3\n", "Configuration key sync.table_policy must be a table."),
    ("[sync]\ntables = ['a', 'a']\n",
     "Configuration key sync.tables must not name the same entry twice."),
    ("sync = 3\n", "Configuration key sync must be a table."),
    ("[http]\nhost = ''\n", "Configuration key http.host must be a non-empty string."),
    ("[centrale]\nurl = 'x'\n",
     "Unknown configuration section [centrale] in {file} (did you mean [central]?)."),
    ("[export]\nfoo = 1\n", "Unknown configuration key export.foo in {file}."),
    ("[export.presets]\np = 1\n", "Configuration key export.presets.p must be a table."),
    ("[export.presets.p]\ntable = 't'\n", "Configuration key export.presets.p.format is missing."),
    ("[export.presets.p]\ntable = 't'\nformat = 'gpkg'\nbogus = 1\n",
     "Unknown configuration key export.presets.p.bogus in {file}."),
    ("[export.presets.p]\ntable = 't'\nformat = 'gpkg'\nrenames = 3\n",
     "Configuration key export.presets.p.renames must map field names to new names."),
    ("[export.presets.p]\ntable = 't'\nformat = 'gpkg'\nfilename = 'a/b'\n",
     "Configuration key export.presets.p.filename must be a file name inside the output "
     "folder, not a path."),
])
def test_refusals_keep_their_exact_sentences(tmp_path, text, sentence):
    path = write(tmp_path / "agent.toml", text)
    with pytest.raises(ConfigError) as err:
        config.load(path, environ={})
    assert str(err.value) == sentence.replace("{file}", str(path))


# --- the declaration --------------------------------------------------------------------


def test_the_declared_key_names_are_the_contracts():
    # other people's files and scripts use these names (docs/contract.md)
    assert [k.name for k in config.KEYS] == [
        "central.url", "central.read_url", "central.schema",
        "central.connect_timeout_seconds",
        "central.statement_timeout_seconds", "central.retention_days",
        "central.history_retention_days",
        "local.path", "local.busy_timeout_seconds",
        "sync.tables", "sync.interval_seconds", "sync.conflict_policy",
        "sync.table_policy.<table>",
        "http.host", "http.port", "http.metrics_host", "http.metrics_port",
        "http.token_file",
        "logging.level", "logging.dir", "alerts.webhook_url", "alerts.failures_threshold",
        "export.presets.<name>.table", "export.presets.<name>.format",
        "export.presets.<name>.crs", "export.presets.<name>.fields",
        "export.presets.<name>.renames", "export.presets.<name>.where",
        "export.presets.<name>.max_features", "export.presets.<name>.filename"]


def test_every_config_attribute_comes_from_exactly_one_declared_key():
    produced = [k.field for k in config.KEYS if k.section != "export"] + ["presets"]
    assert sorted(produced) == sorted(
        f.name for f in dataclasses.fields(config.Config)
        if f.name not in ("source", "file"))
    preset_keys = [k.field for k in config.KEYS if k.section == "export"]
    assert sorted(preset_keys) == sorted(
        f.name for f in dataclasses.fields(config.ExportPreset) if f.name != "name")


def test_an_empty_file_gives_the_declared_defaults(tmp_path):
    cfg = config.load(write(tmp_path / "agent.toml", ""), environ={})
    for key in config.KEYS:
        if key.section == "export" or "<" in key.name:
            continue
        assert getattr(cfg, key.field) == key.default_for(tmp_path), key.name


def _plain_keys():
    return [k for k in config.KEYS if "<" not in k.name]


@pytest.mark.parametrize("key", [k for k in _plain_keys() if k.minimum is not None],
                         ids=lambda k: k.name)
def test_the_declared_limits_are_the_ones_the_loader_enforces(tmp_path, key):
    section, name = key.name.split(".")
    for value in (key.minimum, key.maximum):
        cfg = config.load(write(tmp_path / "agent.toml", f"[{section}]\n{name} = {value}\n"),
                          environ={})
        assert getattr(cfg, key.field) == value
    for value in (key.minimum - 1, key.maximum + 1):
        write(tmp_path / "agent.toml", f"[{section}]\n{name} = {value}\n")
        with pytest.raises(ConfigError, match=f"{key.name} must be between"):
            config.load(tmp_path / "agent.toml", environ={})


@pytest.mark.parametrize("key", [k for k in _plain_keys() if k.choices], ids=lambda k: k.name)
def test_the_declared_choices_are_the_ones_the_loader_accepts(tmp_path, key):
    section, name = key.name.split(".")
    for choice in key.choices:
        cfg = config.load(write(tmp_path / "agent.toml", f"[{section}]\n{name} = '{choice}'\n"),
                          environ={})
        assert getattr(cfg, key.field) == choice
    with pytest.raises(ConfigError, match=key.name):
        config.load(write(tmp_path / "agent.toml", f"[{section}]\n{name} = 'other'\n"),
                    environ={})


def test_every_key_has_one_sentence_of_help():
    for key in config.KEYS:
        assert key.help.endswith(".") and "\n" not in key.help, key.name


def _config_docs():
    spec = importlib.util.spec_from_file_location("config_docs", REPO / "scripts" /
                                                  "config_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_configuration_reference_is_the_one_the_declaration_generates():
    committed = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == _config_docs().render(), (
        "docs/configuration.md is out of date: run python scripts/config_docs.py")


def test_the_configuration_reference_names_every_key_its_limits_and_when_it_applies():
    page = _config_docs().render()
    for key in config.KEYS:
        row = next(line for line in page.splitlines()
                   if line.startswith(f"| `{key.parts[-1]}` |") and key.help in line)
        assert ("| restart |" if key.name in config.RESTART_KEYS else "| live |") in row
        if key.minimum is not None:
            assert f"{key.minimum} to {key.maximum}" in row


def test_the_keys_that_need_a_restart_are_the_listening_address_and_the_files():
    assert config.RESTART_KEYS == {"http.host", "http.port", "http.metrics_host",
                                   "http.metrics_port", "http.token_file",
                                   "local.path", "logging.dir"}
    assert config.needs_restart("http.port")
    assert not config.needs_restart("sync.interval_seconds")
    assert not config.needs_restart("sync.table_policy.parcels")
    assert not config.needs_restart("export.presets.public.format")
    assert not config.needs_restart("export.presets.public")
    with pytest.raises(KeyError):
        config.needs_restart("sync.interval_secs")


def test_changed_keys_names_each_dotted_key_whose_value_differs(tmp_path):
    old = config.load(write(tmp_path / "agent.toml", """
[sync]
interval_seconds = 300
[sync.table_policy]
parcels = "manual"
sales = "local_wins"
[export.presets.public]
table = "parcels"
format = "geojson"
[export.presets.gone]
table = "sales"
format = "csv"
"""), environ={})
    # the new settings, said as what differs from the old
    new = dataclasses.replace(
        old, interval_seconds=120, http_port=9000,
        table_policy={"parcels": "manual", "districts": "central_wins"},
        presets={"public": dataclasses.replace(old.presets["public"], format="gpkg"),
                 "added": dataclasses.replace(old.presets["gone"], name="added")})

    assert config.changed_keys(old, new) == [
        "sync.interval_seconds", "sync.table_policy.sales", "sync.table_policy.districts",
        "http.port", "export.presets.public.format", "export.presets.gone",
        "export.presets.added"]
    assert config.changed_keys(old, old) == []
    assert [k for k in config.changed_keys(old, new) if config.needs_restart(k)] == ["http.port"]


# --- the read replica ---------------------------------------------------------------------


def test_a_read_replica_is_optional_and_a_postgresql_url(tmp_path):
    base = "[central]\nurl = 'postgresql://gis@db/county'\n"
    assert config.load(write(tmp_path / "a.toml", base), environ={}).central_read_url == ""
    cfg = config.load(write(tmp_path / "b.toml",
                            base + "read_url = 'postgresql://gis@standby/county'\n"), environ={})
    assert cfg.central_read_url == "postgresql://gis@standby/county"
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path / "c.toml", base + "read_url = 'sqlite:///x.sqlite'\n"),
                    environ={})
    assert str(err.value).startswith("Configuration key central.read_url must start with "
                                     "postgresql://")


def test_a_read_replica_with_an_embedded_central_is_refused_in_one_sentence(tmp_path):
    text = "[central]\nurl = 'sqlite:///central.sqlite'\nread_url = 'postgresql://gis@db/c'\n"
    with pytest.raises(ConfigError) as err:
        config.load(write(tmp_path / "agent.toml", text), environ={})
    assert str(err.value) == ("Configuration key central.read_url needs a PostgreSQL "
                              "central.url: an embedded SQLite central has no read replica.")


def test_a_password_in_the_read_replica_url_is_masked(tmp_path):
    from terrafusion_agent.redact import redact

    text = ("[central]\nurl = 'postgresql://gis@db/county'\n"
            "read_url = 'postgresql://gis:Standby-Secret9@standby/county'\n")
    config.load(write(tmp_path / "agent.toml", text), environ={})
    assert "Standby-Secret9" not in redact("connection to standby failed: Standby-Secret9")
