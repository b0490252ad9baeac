"""The Settings dialog: writes the agent's TOML configuration, never a password.

The widgets come from ``resources/ui/settings_dialog.ui``; every signal is wired here.
Limits, defaults and help of the agent's keys come from the agent's declaration of its
configuration (``api.config_key``), never repeated here. The central database is reached
through a libpq service, a server (its password held by the QGIS authentication manager
and, for the agent that runs without QGIS, put in libpq's own password file) or a
SpatiaLite file. The file is edited in place, keeping the user's comments, and validated
by the agent's loader before it replaces the old one (``config_file.save``); then a
running agent is asked to re-read it, in the background.
"""

from __future__ import annotations

import dataclasses
import html
import tempfile
from pathlib import Path
from typing import Optional

from qgis.core import Qgis, QgsApplication, QgsAuthMethodConfig, QgsTask
from qgis.gui import QgsFileWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import pyqtSignal
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QHeaderView,
    QSizePolicy,
    QTableWidgetItem,
)
from terrafusion_agent import api
from terrafusion_agent.api import settings_file as config_file

from ..tasks.settings_tasks import ReloadConfigTask
from . import paths, plugin_settings
from .form_dialog import FormDialog
from .translation import tr

SERVER, SERVICE, SPATIALITE = config_file.SERVER, config_file.SERVICE, config_file.SPATIALITE
Central, Settings, SettingsError = (config_file.Central, config_file.Settings,
                                    config_file.SettingsError)

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("settings_dialog.ui")))

OK_STYLE = "color: #2e7d32;"
ERROR_STYLE = "color: #c62828;"


#: how long QGIS's message bar shows the outcome of a save
MESSAGE_SECONDS = 10


def policies() -> tuple[str, ...]:
    return api.config_key("sync.conflict_policy").choices


def key_help(name: str) -> str:
    """The agent's help of configuration key ``name``, in the user's language, as a
    tooltip (a paragraph, so that Qt wraps a long one instead of showing one wide line)."""
    return f"<p>{html.escape(tr(api.config_key(name).help), quote=False)}</p>"


def limit_spin(spin, name: str) -> None:
    """Range, clear value and tooltip of ``spin`` from the agent's declaration of ``name``."""
    key = api.config_key(name)
    spin.setRange(key.minimum, key.maximum)
    spin.setClearValue(key.default)
    spin.setToolTip(key_help(name))


#: the units the sync interval is shown in, as seconds; the file keeps seconds
#: (``sync.interval_seconds``), analysts think in minutes
SECOND, MINUTE, HOUR = 1, 60, 3600


def interval_unit(seconds: int) -> int:
    """The unit that shows ``seconds`` as a whole number, minutes when it can."""
    if seconds % HOUR == 0 and seconds >= 2 * HOUR:
        return HOUR
    return MINUTE if seconds % MINUTE == 0 else SECOND


def policy_label(policy: str) -> str:
    return {"manual": tr("Ask me (record a conflict)"), "central_wins": tr("Central wins"),
            "local_wins": tr("Local wins")}.get(policy, policy)


def auth_credentials(auth_id: str) -> tuple[str, str]:
    """(user, password) of a QGIS authentication configuration; main thread only."""
    method = QgsAuthMethodConfig()
    manager = QgsApplication.authManager()
    if not manager.loadAuthenticationConfig(auth_id, method, True) or not method.isValid():
        raise SettingsError(tr("The authentication configuration {id} cannot be read; is "
                               "QGIS's master password set?").format(id=auth_id))
    if method.method() != "Basic":
        raise SettingsError(tr("Only a user name and password authentication can be passed "
                               "to the agent; for certificates use a PostgreSQL service."))
    user = method.config("username")
    if not user:
        raise SettingsError(tr("The authentication configuration {id} has no user name.")
                            .format(id=auth_id))
    return user, method.config("password")


class CentralCheckTask(QgsTask):
    """Tries the central connection of a configuration that is not saved yet."""

    def __init__(self, cfg):
        super().__init__(tr("Testing the TerraFusion central connection"),
                         QgsTask.Flag.CanCancel)
        self.cfg = cfg
        self.answer: Optional[tuple[bool, Optional[str]]] = None

    def run(self) -> bool:
        self.answer = api.check_central(self.cfg)
        return True


class SettingsDialog(FormDialog, FORM_CLASS):
    """Edit the agent's configuration file."""

    #: emitted after a successful save with the new ``Config``
    saved = pyqtSignal(object)
    #: emitted once the running agent answered (or none did) after a save, with the
    #: sentence shown in the message bar
    reloadFinished = pyqtSignal(str)  # noqa: N815 - Qt naming

    def __init__(self, iface=None, parent=None):
        super().__init__("TerraFusionSettingsDialog", iface, parent)
        self.config_path: Optional[Path] = None
        self.document: dict = {}
        self._check_task: Optional[CentralCheckTask] = None
        self._reload_task: Optional[ReloadConfigTask] = None
        #: where the last save put the password for the agent, if it did
        self._stored_password: Optional[Path] = None
        #: the last configuration saved (for tests and the plugin)
        self.saved_config = None
        #: the running agent's answer to the last reload (None: no agent was running)
        self.last_reload: Optional[dict] = None

        for text, kind in ((tr("PostgreSQL service (pg_service.conf)"), SERVICE),
                           (tr("PostgreSQL server"), SERVER),
                           (tr("SpatiaLite file"), SPATIALITE)):
            self.kindCombo.addItem(text, kind)
        for policy in policies():
            self.policyCombo.addItem(policy_label(policy), policy)
        self.spatialiteFile.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.spatialiteFile.setFilter(tr("SpatiaLite databases (*.sqlite *.db)"))
        self.localFile.setStorageMode(QgsFileWidget.StorageMode.SaveFile)
        self.localFile.setConfirmOverwrite(False)
        self.localFile.setFilter(tr("SpatiaLite databases (*.sqlite *.db)"))
        self.authSelect.setDataProviderKey("postgres")
        # a port is never "cleared": the button would only take the digits' room
        self.serverPortSpin.setShowClearButton(False)
        for text, unit in ((tr("seconds"), SECOND), (tr("minutes"), MINUTE),
                           (tr("hours"), HOUR)):
            self.intervalUnitCombo.addItem(text, unit)
        self.intervalSpin.setToolTip(key_help("sync.interval_seconds"))
        self._interval_unit = MINUTE
        self.intervalUnitCombo.setCurrentIndex(self.intervalUnitCombo.findData(MINUTE))
        self._limit_interval()
        limit_spin(self.apiPortSpin, "http.port")
        self.apiPortSpin.setSpecialValueText(tr("any free port"))
        self.kindCombo.setToolTip(key_help("central.url"))
        self.localFile.setToolTip(key_help("local.path"))
        self.policyCombo.setToolTip(key_help("sync.conflict_policy"))
        self.tablesTable.horizontalHeaderItem(0).setToolTip(key_help("sync.tables"))
        self.tablesTable.horizontalHeaderItem(1).setToolTip(
            key_help("sync.table_policy.<table>"))
        header = self.tablesTable.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)

        self.schemaEdit.setToolTip(key_help("central.schema"))
        # in line with the fields of the connection pages above it
        margins = self.serverLayout.contentsMargins()
        self.schemaLayout.setContentsMargins(margins.left(), 0, margins.right(), 0)
        self.kindCombo.currentIndexChanged.connect(self._kind_changed)
        self.intervalUnitCombo.currentIndexChanged.connect(self._interval_unit_changed)
        self.authSelect.selectedConfigIdChanged.connect(self._auth_changed)
        self.addTableButton.clicked.connect(self.add_table)
        self.removeTableButton.clicked.connect(self.remove_tables)
        self.testButton.clicked.connect(self.test_connection)
        self.buttonBox.accepted.connect(self.save)
        self.buttonBox.rejected.connect(self.reject)
        self.load()

    # --- reading ----------------------------------------------------------------------------

    def load(self) -> None:
        """Fill the widgets from the configuration file the agent reads."""
        from terrafusion_agent.errors import ConfigError

        self.bar.clearWidgets()
        path, _named = api.config_path()
        self.config_path = path
        self.configPathLabel.setText(tr("Configuration file: {path}").format(path=path))
        try:
            self.document = config_file.read_document(path)
        except SettingsError as exc:
            self.document = {}
            self.bar.pushMessage(tr("Settings"), str(exc), Qgis.MessageLevel.Warning, 0)
        try:
            # what the file says: overrides from the environment are not the file's
            cfg = api.load_config(path, environ={}) if path.exists() else _defaults()
        except ConfigError as exc:
            self.bar.pushMessage(tr("Settings"), str(exc), Qgis.MessageLevel.Warning, 0)
            cfg = _defaults()

        central = config_file.parse_central(
            (self.document.get("central") or {}).get("url") or cfg.central_url)
        self.kindCombo.setCurrentIndex(self.kindCombo.findData(central.kind))
        self._kind_changed()
        self.serviceCombo.clear()
        self.serviceCombo.addItems(config_file.pg_services())
        self.serviceCombo.setCurrentText(central.service)
        self.hostEdit.setText(central.host)
        self.serverPortSpin.setValue(central.port or 5432)
        self.databaseEdit.setText(central.database)
        self.userEdit.setText(central.user)
        auth_id = plugin_settings.auth_config() if central.kind == SERVER else ""
        self.authSelect.setConfigId(auth_id)
        self._auth_changed(auth_id)
        self.spatialiteFile.setFilePath(central.path)

        local = (self.document.get("local") or {}).get("path")
        self.localFile.setFilePath(local or "")
        self.localFile.lineEdit().setPlaceholderText(str(cfg.local_path))

        self.schemaEdit.setText(cfg.central_schema)
        self.set_interval(cfg.interval_seconds)
        self.policyCombo.setCurrentIndex(self.policyCombo.findData(cfg.conflict_policy))
        self.tablesTable.setRowCount(0)
        for table in cfg.tables:
            self.add_table(table, cfg.table_policy.get(table, ""))
        self.apiPortSpin.setValue(cfg.http_port)
        self.startAgentCheck.setChecked(plugin_settings.start_agent())

    # --- the sync interval --------------------------------------------------------------------

    def interval_seconds(self) -> int:
        """The interval shown, in seconds (what the file keeps)."""
        return self.intervalSpin.value() * self._interval_unit

    def set_interval(self, seconds: int) -> None:
        """Show ``seconds`` in the largest unit that keeps it whole (minutes if it can)."""
        unit = interval_unit(seconds)
        self._interval_unit = unit
        self.intervalUnitCombo.blockSignals(True)
        self.intervalUnitCombo.setCurrentIndex(self.intervalUnitCombo.findData(unit))
        self.intervalUnitCombo.blockSignals(False)
        self._limit_interval()
        self.intervalSpin.setValue(seconds // unit)

    def _limit_interval(self) -> None:
        """The spin box's range and clear value: the agent's, in the unit shown."""
        key = api.config_key("sync.interval_seconds")
        unit = self._interval_unit
        low = -(-key.minimum // unit)  # rounded up: never below the agent's minimum
        self.intervalSpin.setRange(low, key.maximum // unit)
        self.intervalSpin.setClearValue(max(low, round(key.default / unit)))

    def _interval_unit_changed(self, *_args) -> None:
        # the same interval in the new unit, as near as the unit allows
        seconds = self.interval_seconds()
        self._interval_unit = self.intervalUnitCombo.currentData()
        self._limit_interval()
        self.intervalSpin.setValue(round(seconds / self._interval_unit))

    # --- the central connection -------------------------------------------------------------

    def _kind_changed(self, *_args) -> None:
        kind = self.kindCombo.currentData()
        index = {SERVICE: 0, SERVER: 1, SPATIALITE: 2}[kind]
        # a SpatiaLite central has no schemas
        self.schemaCaption.setVisible(kind != SPATIALITE)
        self.schemaEdit.setVisible(kind != SPATIALITE)
        self.centralStack.setCurrentIndex(index)
        # the stack is as tall as its current page, not as its tallest one
        for page in range(self.centralStack.count()):
            policy = (QSizePolicy.Policy.Preferred if page == index
                      else QSizePolicy.Policy.Ignored)
            self.centralStack.widget(page).setSizePolicy(policy, policy)
        self.centralStack.adjustSize()
        self.testLabel.setText("")

    def _auth_changed(self, auth_id: str) -> None:
        # With an authentication configuration the user comes from it.
        self.userEdit.setEnabled(not auth_id)
        self.userCaption.setEnabled(not auth_id)
        self.storePasswordCheck.setEnabled(bool(auth_id))
        self.storePasswordCheck.setToolTip(
            tr("Writes the password to {path} (readable only by you), where PostgreSQL "
               "programs such as the agent look for it. Never into the agent's "
               "configuration.").format(path=config_file.pgpass_path()))

    # --- tables -----------------------------------------------------------------------------

    def add_table(self, name: str = "", policy: str = "") -> None:
        row = self.tablesTable.rowCount()
        self.tablesTable.insertRow(row)
        self.tablesTable.setItem(row, 0, QTableWidgetItem(name))
        combo = QComboBox()
        combo.addItem(tr("As above"), "")
        for value in policies():
            combo.addItem(policy_label(value), value)
        combo.setToolTip(key_help("sync.table_policy.<table>"))
        combo.setCurrentIndex(max(0, combo.findData(policy)))
        self.tablesTable.setCellWidget(row, 1, combo)
        if not name:
            self.tablesTable.setCurrentCell(row, 0)
            self.tablesTable.editItem(self.tablesTable.item(row, 0))

    def remove_tables(self) -> None:
        rows = sorted({index.row() for index in self.tablesTable.selectedIndexes()},
                      reverse=True)
        for row in rows:
            self.tablesTable.removeRow(row)

    def table_policies(self) -> tuple[tuple, dict]:
        tables, policies = [], {}
        for row in range(self.tablesTable.rowCount()):
            item = self.tablesTable.item(row, 0)
            name = item.text().strip() if item is not None else ""
            if not name or name in tables:
                continue
            tables.append(name)
            policy = self.tablesTable.cellWidget(row, 1).currentData()
            if policy:
                policies[name] = policy
        return tuple(tables), policies

    # --- building the configuration ---------------------------------------------------------

    def central(self) -> tuple[Central, Optional[str]]:
        """The central connection and, with an authentication configuration, its password
        (which only ever goes to libpq's password file, on request)."""
        kind = self.kindCombo.currentData()
        if kind == SERVICE:
            return Central(kind=SERVICE, service=self.serviceCombo.currentText().strip()), None
        if kind == SPATIALITE:
            return Central(kind=SPATIALITE, path=self.spatialiteFile.filePath().strip()), None
        central = Central(kind=SERVER, host=self.hostEdit.text().strip(),
                          port=self.serverPortSpin.value(),
                          database=self.databaseEdit.text().strip(),
                          user=self.userEdit.text().strip())
        auth_id = self.authSelect.configId()
        if not auth_id:
            return central, None
        user, password = auth_credentials(auth_id)
        return dataclasses.replace(central, user=user), password

    def settings(self, central: Central) -> Settings:
        tables, policies = self.table_policies()
        if not tables:
            raise SettingsError(tr("Name at least one table to sync."))
        return Settings(central=central, local_path=self.localFile.filePath(), tables=tables,
                        interval_seconds=self.interval_seconds(),
                        conflict_policy=self.policyCombo.currentData(),
                        table_policy=policies, http_port=self.apiPortSpin.value(),
                        central_schema=self.schemaEdit.text())

    # --- saving -----------------------------------------------------------------------------

    def save(self) -> bool:
        """Validate and write the configuration, then ask a running agent to apply it in
        the background; True when it was written."""
        self.bar.clearWidgets()
        # Where the running agent listens is what the file said before this save (with
        # the environment's overrides, as the agent reads it): the save may change it.
        running = self._agent_config()
        try:
            central, password = self.central()
            document = config_file.apply(self.document, self.settings(central))
            cfg = config_file.save(self.config_path, document)
            stored = None
            if password and self.storePasswordCheck.isChecked():
                stored = config_file.store_pgpass(central, password)
        except SettingsError as exc:
            self.bar.pushMessage(tr("Settings"), str(exc), Qgis.MessageLevel.Critical, 0)
            return False
        self.document = document
        self.saved_config = cfg
        plugin_settings.set_start_agent(self.startAgentCheck.isChecked())
        plugin_settings.set_auth_config(self.authSelect.configId()
                                        if central.kind == SERVER else "")
        self._stored_password = stored
        self.saved.emit(cfg)
        self.accept()
        self._reload(running or self._agent_config())
        return True

    # --- applying the saved file in the running agent ---------------------------------------

    def _agent_config(self):
        from terrafusion_agent.errors import ConfigError

        try:
            return api.load_config(self.config_path)
        except ConfigError:
            return None  # no agent runs on a configuration it cannot read

    def _reload(self, running) -> None:
        if running is None:
            self._reloaded(None)
            return
        task = ReloadConfigTask(running)
        task.answered.connect(lambda answer: self._reload_ended(task, answer=answer))
        task.failed.connect(lambda sentence: self._reload_ended(task, failure=sentence))
        self._reload_task = task
        QgsApplication.taskManager().addTask(task)

    def is_reloading(self) -> bool:
        return self._reload_task is not None

    def _reload_ended(self, task: ReloadConfigTask, answer: Optional[dict] = None,
                      failure: Optional[str] = None) -> None:
        if self._reload_task is not task:
            return  # the answer to an earlier save: the latest save's answer speaks
        self._reload_task = None
        if failure is None:
            self._reloaded(answer)
        else:
            self._reload_failed(failure)

    def _reloaded(self, answer: Optional[dict]) -> None:
        self.last_reload = answer
        path = self.config_path
        if answer is None:
            text = tr("Settings saved to {path}. No agent is running; it reads them when it "
                      "starts.").format(path=path)
            self._announce(text, Qgis.MessageLevel.Success)
            return
        restart = [str(k) for k in answer.get("restart_required") or []]
        applied = [k for k in answer.get("changed") or [] if k not in restart]
        if not restart:
            text = tr("Settings saved to {path} and applied by the running agent.")
            level = Qgis.MessageLevel.Success
        elif applied:
            text = tr("Settings saved to {path}. The running agent applied the other changes; "
                      "restart it to apply {keys}.")
            level = Qgis.MessageLevel.Warning
        else:
            text = tr("Settings saved to {path}. Restart the agent to apply {keys}.")
            level = Qgis.MessageLevel.Warning
        self._announce(text.format(path=path, keys=", ".join(restart)), level)

    def _reload_failed(self, sentence: str) -> None:
        self.last_reload = None
        self._announce(tr("Settings saved to {path}, but the running agent did not apply "
                          "them: {reason}").format(path=self.config_path, reason=sentence),
                       Qgis.MessageLevel.Warning)

    def _announce(self, text: str, level) -> None:
        if self._stored_password is not None:
            text += " " + tr("The password is kept for the agent in {path}.").format(
                path=self._stored_password)
        # the dialog has closed by now: QGIS's own message bar is where the user looks
        bar = self.iface.messageBar() if self.iface is not None else self.bar
        bar.pushMessage("TerraFusion", text, level, MESSAGE_SECONDS)
        self.reloadFinished.emit(text)

    # --- testing the connection -------------------------------------------------------------

    def test_connection(self) -> None:
        """Try the central connection as the agent would, in the background."""
        if self._check_task is not None:
            return
        try:
            central, password = self.central()
            cfg = self._candidate(central)
        except SettingsError as exc:
            self._show_test(False, str(exc))
            return
        if password:
            # In memory only, for this one test: the agent itself gets it from libpq.
            cfg = dataclasses.replace(cfg, central_url=central.url(password=password))
        self.testButton.setEnabled(False)
        self.testLabel.setStyleSheet("")
        self.testLabel.setText(tr("Connecting…"))
        task = CentralCheckTask(cfg)
        task.taskCompleted.connect(lambda: self._tested(task))
        task.taskTerminated.connect(lambda: self._tested(task))
        self._check_task = task
        QgsApplication.taskManager().addTask(task)

    def is_testing(self) -> bool:
        return self._check_task is not None

    def _candidate(self, central: Central):
        """The configuration the dialog shows, loaded by the agent, without saving it."""
        document = config_file.apply(self.document, self.settings(central))
        return config_file.check(self.config_path, document)

    def _tested(self, task: CentralCheckTask) -> None:
        if self._check_task is not task:
            return
        self._check_task = None
        self.testButton.setEnabled(True)
        ok, reason = task.answer or (False, tr("The test was cancelled."))
        self._show_test(ok, tr("Connected.") if ok else reason)

    def _show_test(self, ok: bool, text: str) -> None:
        self.testLabel.setStyleSheet(OK_STYLE if ok else ERROR_STYLE)
        self.testLabel.setText(text)

    def teardown(self) -> None:
        self._check_task = None
        self._reload_task = None


def _defaults():
    """The agent's built-in defaults (what an empty configuration file means)."""
    with tempfile.TemporaryDirectory() as folder:
        empty = Path(folder) / "agent.toml"
        empty.write_text("", encoding="utf-8")
        cfg = api.load_config(empty, environ={})
    # relative to nothing: the defaults do not live in that temporary folder
    return cfg
