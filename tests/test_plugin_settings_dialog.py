"""The Settings dialog in headless QGIS, driven like a user would: the config it writes
(no secret in it; the password where libpq finds it), checked with the agent's own loader;
a service name, presets and comments kept; an invalid configuration refused; limits,
defaults and help taken from the agent's declaration; after a save, what a running agent
applied, what needs its restart, why it applied nothing, or that none runs; and the
connection test.
"""

from __future__ import annotations

import json
import stat
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from plugin_support import *  # noqa: F403 - the shared fixtures and helpers (its __all__)
from qgis.core import Qgis, QgsApplication, QgsAuthMethodConfig
from qgis.PyQt.QtCore import Qt

pytestmark = pytest.mark.qgis

PASSWORD = "S3cret-Passw0rd!"


@pytest.fixture
def auth_config(qgis_app):
    """A user name and password in the QGIS authentication manager; yields its id."""
    manager = QgsApplication.authManager()
    if not manager.masterPasswordIsSet():
        assert manager.setMasterPassword("master-of-tests", True)
    method = QgsAuthMethodConfig("Basic")
    method.setName("county database")
    method.setConfig("username", "analyst")
    method.setConfig("password", PASSWORD)
    assert manager.storeAuthenticationConfig(method)
    yield method.id()
    manager.removeAuthenticationConfig(method.id())


@pytest.fixture
def settings_dialog(plugin, tmp_path, use_config, monkeypatch):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    use_config(config)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "pgpass"))
    return plugin.show_settings()


@pytest.fixture
def running_agent(tmp_path, use_config):
    """A demo central, an agent running on it, and the plugin pointed at both;
    yields the config and the agent's port."""
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    _agent_cli(config, "init-central", "--demo-parcels", "20")
    with agent_process(config) as port:
        use_config(config, port=port)
        yield config, port


def _set_table_policy(dialog, table: str, policy: str) -> None:
    for row in range(dialog.tablesTable.rowCount()):
        if dialog.tablesTable.item(row, 0).text() == table:
            combo = dialog.tablesTable.cellWidget(row, 1)
            combo.setCurrentIndex(combo.findData(policy))


def test_settings_dialog_writes_a_config_with_no_secret_in_it(
        settings_dialog, auth_config, tmp_path, qtbot):
    from terrafusion_agent import config as tf_config

    dialog = settings_dialog
    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("server"))
    dialog.hostEdit.setText("db.county.local")
    dialog.serverPortSpin.setValue(5433)
    dialog.databaseEdit.setText("terrafusion")
    dialog.authSelect.setConfigId(auth_config)
    dialog.intervalSpin.setValue(2)  # minutes
    dialog.policyCombo.setCurrentIndex(dialog.policyCombo.findData("central_wins"))
    _set_table_policy(dialog, "parcels", "manual")
    dialog.apiPortSpin.setValue(8799)

    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.buttonBox.button(dialog.buttonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)

    text = (tmp_path / "agent.toml").read_text(encoding="utf-8")
    assert PASSWORD not in text and "master-of-tests" not in text
    cfg = tf_config.load(tmp_path / "agent.toml", environ={})
    assert cfg.central_url == "postgresql://analyst@db.county.local:5433/terrafusion"
    assert cfg.interval_seconds == 120 and cfg.conflict_policy == "central_wins"
    assert cfg.table_policy == {"parcels": "manual"} and cfg.http_port == 8799
    assert cfg.tables == ("parcels", "districts", "sales")
    assert cfg.log_dir == tmp_path / "logs", "keys the dialog does not edit are kept"
    # the agent, which runs without QGIS, finds the password where libpq looks for it
    pgpass = tmp_path / "pgpass"
    assert pgpass.read_text(encoding="utf-8").splitlines() == [
        f"db.county.local:5433:terrafusion:analyst:{PASSWORD}"]
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    assert not dialog.isVisible()


def test_settings_dialog_writes_a_service_name_and_keeps_the_presets(
        plugin, tmp_path, use_config, qtbot):
    from terrafusion_agent import config as tf_config

    config = tmp_path / "agent.toml"
    config.write_text(
        '[central]\nurl = "sqlite:///central.sqlite"\n[logging]\nlevel = "DEBUG"\n'
        '[export.presets.title_company]\ntable = "parcels"\nformat = "gpkg"\n'
        'fields = ["geo_id", "legal_desc"]\n', encoding="utf-8")
    use_config(config)
    dialog = plugin.show_settings()
    assert dialog.kindCombo.currentData() == "spatialite"
    assert dialog.spatialiteFile.filePath() == "central.sqlite"

    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("service"))
    dialog.serviceCombo.setCurrentText("county gis")
    assert dialog.save()

    cfg = tf_config.load(config, environ={})
    assert cfg.central_url == "postgresql:///?service=county%20gis"
    assert cfg.log_level == "DEBUG"
    assert cfg.presets["title_company"].fields == ("geo_id", "legal_desc")
    dialog.load()
    assert dialog.kindCombo.currentData() == "service"
    assert dialog.serviceCombo.currentText() == "county gis"


def test_settings_dialog_refuses_an_invalid_configuration_and_keeps_the_file(
        settings_dialog, tmp_path):
    before = (tmp_path / "agent.toml").read_text(encoding="utf-8")
    dialog = settings_dialog
    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("service"))
    dialog.serviceCombo.setCurrentText("")

    assert not dialog.save()

    assert "service" in " ".join(i.text() for i in dialog.bar.items())
    dialog.serviceCombo.setCurrentText("county")
    dialog.tablesTable.setRowCount(0)
    assert not dialog.save()
    assert "table" in " ".join(i.text() for i in dialog.bar.items())
    assert (tmp_path / "agent.toml").read_text(encoding="utf-8") == before
    assert dialog.isVisible()


def test_settings_dialog_takes_limits_defaults_and_help_from_the_agents_declaration(
        settings_dialog):
    from terrafusion_agent import api

    dialog = settings_dialog
    for spin, name in ((dialog.intervalSpin, "sync.interval_seconds"),
                       (dialog.apiPortSpin, "http.port")):
        key = api.config_key(name)
        assert spin.toolTip() == f"<p>{key.help}</p>", name
    key = api.config_key("http.port")
    assert (dialog.apiPortSpin.minimum(), dialog.apiPortSpin.maximum(),
            dialog.apiPortSpin.clearValue()) == (key.minimum, key.maximum, key.default)
    # the interval in minutes: the agent's limits and default (in seconds) divided by 60
    key = api.config_key("sync.interval_seconds")
    assert dialog.intervalUnitCombo.currentText() == "minutes"
    assert (dialog.intervalSpin.minimum(), dialog.intervalSpin.maximum(),
            dialog.intervalSpin.clearValue()) == (
        -(-key.minimum // 60), key.maximum // 60, key.default // 60)
    assert api.config_key("central.schema").help in dialog.schemaEdit.toolTip()
    assert [dialog.policyCombo.itemData(i) for i in range(dialog.policyCombo.count())] == \
        list(api.config_key("sync.conflict_policy").choices)
    assert api.config_key("central.url").help in dialog.kindCombo.toolTip()
    assert api.config_key("local.path").help in dialog.localFile.toolTip()
    # the .ui repeats none of the agent's numbers
    ui = ET.parse(REPO / "resources" / "ui" / "settings_dialog.ui").getroot()
    for name in ("intervalSpin", "apiPortSpin"):
        spin = ui.find(f".//widget[@name='{name}']")
        assert {p.get("name") for p in spin.iter("property")} <= {"singleStep"}, name


def _save_and_wait(dialog, qtbot) -> str:
    """Click Save; the sentence shown once the running agent answered (or none did)."""
    with qtbot.waitSignal(dialog.reloadFinished, timeout=WAIT_MS) as done:
        qtbot.mouseClick(dialog.buttonBox.button(dialog.buttonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)
    assert not dialog.is_reloading()
    return done.args[0]


def _bar_texts(qgis_iface, level) -> list[str]:
    """What the plugin told QGIS's message bar at ``level``."""
    return [m.split(":", 1)[1] for m in qgis_iface.messageBar().get_messages(level)]


def test_settings_dialog_saves_keeping_comments_and_says_no_agent_runs_to_apply_them(
        plugin, qgis_iface, tmp_path, use_config, qtbot):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    config.write_text("# county office settings\n" + config.read_text(encoding="utf-8")
                      + "[sync]  # nights are quiet\ninterval_seconds = 300\n",
                      encoding="utf-8")
    use_config(config, port=_free_port())  # nothing listens there
    dialog = plugin.show_settings()
    dialog.intervalSpin.setValue(15)  # minutes

    text = _save_and_wait(dialog, qtbot)

    assert text == (f"Settings saved to {config}. No agent is running; it reads them when "
                    "it starts.")
    assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Success)
    assert dialog.last_reload is None
    saved = config.read_text(encoding="utf-8")
    assert saved.startswith("# county office settings\n")
    assert saved.endswith("[sync]  # nights are quiet\ninterval_seconds = 900\n")


def test_settings_dialog_has_the_running_agent_apply_the_saved_settings(
        plugin, qgis_iface, running_agent, qtbot):
    config, _port = running_agent
    dialog = plugin.show_settings()
    dialog.intervalSpin.setValue(2)  # minutes
    _set_table_policy(dialog, "sales", "central_wins")

    text = _save_and_wait(dialog, qtbot)

    assert text == f"Settings saved to {config} and applied by the running agent."
    assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Success)
    answer = dialog.last_reload
    assert {"sync.interval_seconds", "sync.table_policy.sales"} <= set(answer["changed"])
    assert answer["restart_required"] == []


def test_settings_dialog_names_the_keys_the_running_agent_must_restart_for(
        plugin, qgis_iface, running_agent, qtbot):
    config, port = running_agent
    dialog = plugin.show_settings()
    dialog.intervalSpin.setValue(2)  # minutes
    dialog.apiPortSpin.setValue(_free_port())

    text = _save_and_wait(dialog, qtbot)

    assert text == (f"Settings saved to {config}. The running agent applied the other "
                    "changes; restart it to apply http.port.")
    assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Warning)
    assert dialog.last_reload["restart_required"] == ["http.port"]
    # it still answers where it listened before: the new port waits for a restart
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as r:
        assert json.load(r)["status"] == "pass"


def test_settings_dialog_says_why_the_running_agent_did_not_apply_the_saved_settings(
        plugin, qgis_iface, running_agent, tmp_path, qtbot):
    config, _port = running_agent
    (tmp_path / "token").unlink()  # the plugin can no longer prove who it is
    dialog = plugin.show_settings()
    dialog.intervalSpin.setValue(2)  # minutes

    text = _save_and_wait(dialog, qtbot)

    assert text.startswith(f"Settings saved to {config}, but the running agent did not "
                           f"apply them: The agent's API token file {tmp_path / 'token'} "
                           "cannot be read")
    assert text in _bar_texts(qgis_iface, Qgis.MessageLevel.Warning)
    assert config.read_text(encoding="utf-8").count("interval_seconds = 120") == 1


def test_settings_dialog_tests_the_connection_as_the_agent_would(
        plugin, county, use_config, qtbot):
    use_config(county)
    dialog = plugin.show_settings()

    dialog.test_connection()
    qtbot.waitUntil(lambda: not dialog.is_testing(), timeout=WAIT_MS)
    assert dialog.testLabel.text() == "Connected."

    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("server"))
    dialog.hostEdit.setText("127.0.0.1")
    dialog.serverPortSpin.setValue(_free_port())
    dialog.databaseEdit.setText("nowhere")
    dialog.test_connection()
    qtbot.waitUntil(lambda: not dialog.is_testing(), timeout=30_000)
    assert "cannot be reached" in dialog.testLabel.text()


@pytest.mark.parametrize(("seconds", "shown", "unit"), [
    (300, 5, "minutes"), (3600, 60, "minutes"), (7200, 2, "hours"), (90, 90, "seconds")])
def test_settings_dialog_shows_the_interval_in_minutes_when_it_can(
        plugin, tmp_path, use_config, seconds, shown, unit):
    config = _write_config(tmp_path, tmp_path / "local.sqlite")
    config.write_text(config.read_text(encoding="utf-8")
                      + f"[sync]\ninterval_seconds = {seconds}\n", encoding="utf-8")
    use_config(config)

    dialog = plugin.show_settings()

    assert (dialog.intervalSpin.value(), dialog.intervalUnitCombo.currentText()) == (
        shown, unit)
    assert dialog.interval_seconds() == seconds


def test_settings_dialog_keeps_the_interval_when_its_unit_changes_and_saves_seconds(
        settings_dialog, tmp_path, qtbot):
    from terrafusion_agent import config as tf_config

    dialog = settings_dialog
    dialog.intervalSpin.setValue(15)
    dialog.intervalUnitCombo.setCurrentIndex(dialog.intervalUnitCombo.findText("seconds"))
    assert dialog.intervalSpin.value() == 900
    dialog.intervalUnitCombo.setCurrentIndex(dialog.intervalUnitCombo.findText("hours"))
    assert dialog.intervalSpin.value() == 1, "a quarter of an hour rounds up to the minimum"
    dialog.intervalUnitCombo.setCurrentIndex(dialog.intervalUnitCombo.findText("minutes"))
    dialog.intervalSpin.setValue(20)

    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.buttonBox.button(dialog.buttonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)

    assert "interval_seconds = 1200" in (tmp_path / "agent.toml").read_text(encoding="utf-8")
    assert tf_config.load(tmp_path / "agent.toml", environ={}).interval_seconds == 1200


def test_settings_dialog_edits_the_central_schema_of_a_postgresql_central(
        settings_dialog, tmp_path, qtbot):
    from terrafusion_agent import config as tf_config

    dialog = settings_dialog
    assert dialog.schemaEdit.text() == "public"
    assert not dialog.schemaEdit.isVisibleTo(dialog), "a SpatiaLite central has no schemas"
    dialog.kindCombo.setCurrentIndex(dialog.kindCombo.findData("server"))
    assert dialog.schemaEdit.isVisibleTo(dialog)
    dialog.hostEdit.setText("db.county.local")
    dialog.databaseEdit.setText("terrafusion")
    dialog.userEdit.setText("analyst")
    dialog.schemaEdit.setText("assessor")

    with qtbot.waitSignal(dialog.saved, timeout=WAIT_MS):
        qtbot.mouseClick(dialog.buttonBox.button(dialog.buttonBox.StandardButton.Save),
                         Qt.MouseButton.LeftButton)

    cfg = tf_config.load(tmp_path / "agent.toml", environ={})
    assert cfg.central_schema == "assessor"
    assert dialog.saved_config.central_schema == "assessor"
