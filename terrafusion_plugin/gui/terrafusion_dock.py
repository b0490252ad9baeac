"""The TerraFusion dock: agent state, sync now, recent syncs, synced layers.

The widgets come from ``resources/ui/terrafusion_dock.ui``; every signal is wired here.
The dock never waits on the network or a database: all of it goes through ``QgsTask``.
The Export, Conflicts, Pending edits and Settings dialogs and the Feature history panel
belong to the plugin; the dock only asks for them with a signal.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from qgis.core import QgsApplication, QgsProject
from qgis.gui import QgsDockWidget
from qgis.PyQt import uic
from qgis.PyQt.QtCore import QEvent, QLocale, Qt, QTimer, pyqtSignal
from qgis.PyQt.QtGui import QFont, QIcon
from qgis.PyQt.QtWidgets import QHeaderView, QStyle, QTableWidgetItem
from terrafusion_agent.api import (
    HEALTH_TIMEOUT,
    NOT_RUNNING,
    OTHER_AGENT,
    RUNNING,
    SCHEDULER_STOPPED,
    AgentStatus,
)

from ..tasks.dock_tasks import AgentStatusTask, StartAgentTask, SyncedLayersTask, SyncTask
from . import paths, plugin_settings
from .project_layers import GROUP_NAME, add_synced_layers, reload_synced_layers
from .translation import tr

FORM_CLASS, _ = uic.loadUiType(str(paths.ui_path("terrafusion_dock.ui")))

#: how often the state is asked for while the dock is on screen
REFRESH_INTERVAL_MS = 10_000
#: ... and while a freshly started agent is awaited
STARTING_INTERVAL_MS = 1_000
#: how long a started agent may take to answer before the dock says so
STARTING_PATIENCE = 30
DASH = "–"
FAILED_COLOR = "#c62828"  # red reads as an error on both light and dark themes
ERROR_STYLE = f"color: {FAILED_COLOR};"


def local_time(iso: Optional[str], fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An ISO 8601 UTC time from the agent, shown in the workstation's time zone."""
    if not iso:
        return DASH
    try:
        moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone().strftime(fmt)


def day_time(iso: Optional[str]) -> str:
    """"14:05:09" for today, the date with it before and after: what a dock's line needs."""
    full = local_time(iso)
    if full == DASH or len(full) != 19:
        return full
    return full[11:] if full.startswith(datetime.now().strftime("%Y-%m-%d")) else full


def short_time(iso: Optional[str]) -> str:
    """"14:05" for today, "11-24 14:05" before: what fits a narrow dock's table."""
    full = local_time(iso, "%Y-%m-%d %H:%M")
    if full == DASH or len(full) != 16:
        return full
    today = datetime.now().strftime("%Y-%m-%d")
    return full[11:] if full.startswith(today) else full[5:]


def result_text(result: Optional[str]) -> str:
    """A sync run's result in the user's language."""
    return {"success": tr("succeeded"), "failed": tr("failed"), "running": tr("running"),
            "cancelled": tr("cancelled")}.get(result or "", result or DASH)


#: QGIS's own icons for a sync run's result, as its task manager and message bar show them
RESULT_ICONS = {"success": "/mIconSuccess.svg", "failed": "/mIconCritical.svg",
                "running": "/mTaskRunning.svg", "cancelled": "/mTaskCancel.svg"}
#: the widest "Started" a row can show (digits are equally wide in the usual fonts)
WIDEST_TIME = "00-00 00:00"
#: the widest count the counts' columns make room for without growing
WIDEST_COUNT = 88888


def result_icon(result: Optional[str]) -> QIcon:
    name = RESULT_ICONS.get(result or "")
    return QgsApplication.getThemeIcon(name) if name else QIcon()


def _count(value) -> str:
    return DASH if value is None else str(value)


def _figure(value) -> str:
    """A row count as QGIS writes numbers (its locale; a thousands separator if the user
    turned it on in QGIS's options)."""
    return DASH if value is None else QLocale().toString(int(value))


class TerraFusionDock(QgsDockWidget, FORM_CLASS):
    """Shows how the sync agent is doing, syncs on demand, adds the synced layers."""

    exportRequested = pyqtSignal()  # noqa: N815 - Qt naming
    conflictsRequested = pyqtSignal()  # noqa: N815
    pendingRequested = pyqtSignal()  # noqa: N815
    settingsRequested = pyqtSignal()  # noqa: N815
    historyRequested = pyqtSignal()  # noqa: N815
    #: emitted on the main thread after every sync started here, with its summary or None
    syncFinished = pyqtSignal(object)  # noqa: N815

    def __init__(self, parent=None, project: Optional[QgsProject] = None):
        super().__init__(parent)
        self.setupUi(self)
        # QGIS restores a dock's place and visibility by this name.
        self.setObjectName("TerraFusionDock")
        self._project = project
        self._status_task: Optional[AgentStatusTask] = None
        self._layers_task: Optional[SyncedLayersTask] = None
        self._sync_task: Optional[SyncTask] = None
        self._start_task: Optional[StartAgentTask] = None
        #: configurations for which an automatic start was tried in this session
        self._autostart_tried: set = set()
        self._starting = 0  # refreshes left while waiting for a started agent
        #: the last state shown, the last sync's summary (for tests and the plugin)
        self.status: Optional[AgentStatus] = None
        self.last_summary: Optional[dict] = None

        self._timer = QTimer(self)
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh)
        self.refreshButton.clicked.connect(self.refresh)
        self.addLayersButton.clicked.connect(self.add_synced_layers)
        self.syncButton.clicked.connect(self.sync_now)
        self.startAgentButton.clicked.connect(self.start_agent)
        self.exportButton.clicked.connect(self.exportRequested)
        self.conflictsButton.clicked.connect(self.conflictsRequested)
        self.pendingButton.clicked.connect(self.pendingRequested)
        self.settingsButton.clicked.connect(self.settingsRequested)
        self.historyButton.clicked.connect(self.historyRequested)
        self.conflictsLabel.linkActivated.connect(lambda _link: self.conflictsRequested.emit())
        self.visibilityChanged.connect(self._visibility_changed)

        icon = QgsApplication.getThemeIcon
        self.refreshButton.setIcon(icon("/mActionRefresh.svg"))
        self.addLayersButton.setIcon(icon("/mActionAddSpatiaLiteLayer.svg"))
        self.syncButton.setIcon(_plugin_icon("sync.svg"))
        self.startAgentButton.setIcon(icon("/mActionStart.svg"))
        self.exportButton.setIcon(_plugin_icon("export.svg"))
        self.conflictsButton.setIcon(_plugin_icon("conflicts.svg"))
        self.settingsButton.setIcon(icon("/mActionOptions.svg"))
        self.historyButton.setIcon(_plugin_icon("history.svg"))

        # Recent syncs, narrow enough for a dock at its minimum width in any language: the
        # result is the start time's icon (its word in the tooltip), and the counts'
        # headers are icons (their words in the tooltips); the time column takes the rest.
        table = self.historyTable
        table.horizontalHeaderItem(1).setText("↓")
        table.horizontalHeaderItem(2).setText("↑")
        table.horizontalHeaderItem(3).setIcon(_plugin_icon("conflicts.svg"))
        header = table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2, 3):
            # as wide as a five-digit count (wider for more): the counts of one row stand
            # apart, and the columns do not jump from one refresh to the next
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Fixed)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        header.setMinimumSectionSize(0)
        table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        table.setWordWrap(False)
        self.refreshButton.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        # A grid, not a form layout: Qt's form layout cuts off wrapped values (the last
        # sync, the local copy's path) when the dock is narrow; captions sit at the top
        # of their row beside a value of several lines.
        for row in range(self.agentForm.rowCount()):
            item = self.agentForm.itemAtPosition(row, 0)
            if item is not None and item.widget() is not None:
                item.widget().setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.syncProgress.setVisible(False)
        self.startAgentButton.setVisible(False)
        self._show_message("")
        self._fit_width()
        self.scrollContents.installEventFilter(self)

    # --- agent state ------------------------------------------------------------------

    def refresh(self) -> None:
        """Ask the agent for its state in the background (once at a time)."""
        if self._status_task is not None:
            return
        task = AgentStatusTask()
        task.statusReady.connect(self._status_ready)
        self._status_task = task
        QgsApplication.taskManager().addTask(task)

    def is_refreshing(self) -> bool:
        return self._status_task is not None

    def is_polling(self) -> bool:
        """Whether the state is being asked for every few seconds (while on screen)."""
        return self._timer.isActive()

    def _visibility_changed(self, visible: bool) -> None:
        # Poll only while someone can see the answer.
        if visible:
            self.refresh()
            self._timer.start()
        else:
            self._timer.stop()

    def _status_ready(self, status: AgentStatus) -> None:
        self._status_task = None
        self.status = status
        self.stateLabel.setText(self._state_text(status))
        if status.status_page:
            self.statusPageLabel.setText('<a href="{url}">{text}</a>'.format(
                url=status.status_page, text=tr("Open the status page")))
        else:
            self.statusPageLabel.setText("")
        self.statusPageLabel.setVisible(bool(status.status_page))

        last = self._last_sync_text(status.last_sync) if status.local_path else DASH
        if status.serves_this_copy and status.health is not None:
            next_ = (day_time(status.next_sync) if status.next_sync else tr("Not scheduled"))
        else:
            next_ = DASH
        if status.sync_running:
            next_ = tr("Syncing now")
        self.lastSyncLabel.setText(last if status.last_sync or status.local_exists else DASH)
        self.nextSyncLabel.setText(next_)
        self.pendingLabel.setText(_count(status.pending_edits))
        conflicts = status.open_conflicts
        if conflicts:
            self.conflictsLabel.setText('{n} – <a href="conflicts">{review}</a>'.format(
                n=conflicts, review=tr("Review…")))
        else:
            self.conflictsLabel.setText(_count(conflicts))
        if status.local_path is None:
            self.localPathLabel.setText(DASH)
        elif status.local_exists:
            self.localPathLabel.setText(str(status.local_path))
        else:
            self.localPathLabel.setText(
                tr("{path} (not created yet)").format(path=status.local_path))
        self._show_history(status.runs)

        gave_up = False
        if status.running:
            self._stop_starting()
        elif self._starting > 0:
            self._starting -= 1
            if self._starting == 0:
                self._stop_starting()
                gave_up = True
        starting = self._starting > 0
        self.startAgentButton.setVisible(status.state == NOT_RUNNING)
        self.startAgentButton.setEnabled(self._start_task is None and not starting)
        if gave_up:
            self._show_message(tr("The agent was started but does not answer at {address}; "
                                  "see its log in {folder}.").format(
                                      address=status.address, folder=self._log_folder()),
                               error=True)
        elif self._sync_task is None:
            if starting:
                self._show_message(tr("Starting the agent…"))
            else:
                error, message = self._status_message(status)
                self._show_message(message, error=error)
        self._maybe_start_agent(status)

    def _show_history(self, runs) -> None:
        table = self.historyTable
        table.setRowCount(0)
        for run in runs:
            row = table.rowCount()
            table.insertRow(row)
            result = run.get("result")
            tip = [tr("Started {when}").format(when=local_time(run.get("started_at"))),
                   tr("Result: {result}").format(result=result_text(result)),
                   tr("Rows pulled: {pulled}, pushed: {pushed}, conflicts: {conflicts}")
                   .format(pulled=_figure(run.get("pulled")), pushed=_figure(run.get("pushed")),
                           conflicts=_figure(run.get("conflicts")))]
            if run.get("trigger"):
                tip.append(tr("Asked by: {trigger}").format(trigger=run["trigger"]))
            if run.get("error"):
                tip.append(str(run["error"]))
            started = QTableWidgetItem(result_icon(result), short_time(run.get("started_at")))
            # what a screen reader says for the icon
            started.setData(Qt.ItemDataRole.AccessibleTextRole,
                            f"{started.text()}, {result_text(result)}")
            cells = [started] + [QTableWidgetItem(_figure(run.get(key)))
                                 for key in ("pulled", "pushed", "conflicts")]
            for column, item in enumerate(cells):
                if column:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                item.setToolTip("\n".join(tip))
                table.setItem(row, column, item)
            if run.get("conflicts"):
                bold = QFont(table.font())
                bold.setBold(True)
                cells[3].setFont(bold)
        self._fit_width()

    def _fit_width(self) -> None:
        """Make the table as wide as its columns need, so that it never scrolls sideways
        (the dock follows: see ``eventFilter``)."""
        table = self.historyTable
        header = table.horizontalHeader()
        style = table.style()
        margin = style.pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, table) + 1
        icon = style.pixelMetric(QStyle.PixelMetric.PM_SmallIconSize, None, table)
        time = (table.fontMetrics().horizontalAdvance(WIDEST_TIME) + icon + 4 * margin)
        count = (table.fontMetrics().horizontalAdvance(_figure(WIDEST_COUNT))
                 + 4 * margin)
        widths = [max(time, header.sectionSizeHint(0), table.sizeHintForColumn(0))]
        widths += [max(count, header.sectionSizeHint(c), table.sizeHintForColumn(c))
                   for c in range(1, table.columnCount())]
        for column in range(1, table.columnCount()):
            header.resizeSection(column, widths[column])
        scrollbar = table.verticalScrollBar().sizeHint().width()
        table.setMinimumWidth(sum(widths) + 2 * table.frameWidth() + scrollbar)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt API
        if watched is self.scrollContents and event.type() == QEvent.Type.LayoutRequest:
            # the contents' minimum width changed (a text, the table): the scroll area,
            # which only scrolls up and down, must be at least that wide
            area = self.scrollArea
            area.setMinimumWidth(self.scrollContents.minimumSizeHint().width()
                                 + area.verticalScrollBar().sizeHint().width()
                                 + 2 * area.frameWidth())
        return super().eventFilter(watched, event)

    @staticmethod
    def _state_text(status: AgentStatus) -> str:
        if status.state == NOT_RUNNING:
            return tr("Not running")
        if status.state != RUNNING:
            return tr("Unknown")
        if status.problem == OTHER_AGENT:
            return tr("Another agent answers")
        health = status.health or {}
        version = health.get("version") or "?"
        state = health.get("status")
        if state == "warn" and not _problems(health, "warn"):
            # waiting conflicts are a "warn" for monitoring; here they have their own line
            state = "pass"
        return {
            "pass": tr("Running (agent {version})"),
            "warn": tr("Running with warnings (agent {version})"),
            "fail": tr("Running with failing checks (agent {version})"),
        }.get(state, tr("Running (agent {version})")).format(version=version)

    @staticmethod
    def _last_sync_text(last: Optional[dict]) -> str:
        if not last:
            return tr("Never")
        return tr("{when}, {result}, rows pulled: {pulled}, pushed: {pushed}").format(
            when=day_time(last.get("finished_at") or last.get("started_at")),
            result=result_text(last.get("result")), pulled=_count(last.get("pulled")),
            pushed=_count(last.get("pushed")))

    @staticmethod
    def _status_message(status: AgentStatus) -> tuple[bool, str]:
        """(is an error, one sentence) to show under the state."""
        if status.error:
            return True, status.error
        if status.state == NOT_RUNNING:
            return True, tr("No agent answers at {address}. Start it with “Start agent”, or "
                            "run “terrafusion-agent run”.").format(address=status.address)
        if status.problem == OTHER_AGENT:
            return True, tr("The agent at {address} works on another local copy ({path}); "
                            "give this one another API port in the settings.").format(
                                address=status.address,
                                path=(status.health or {}).get("local_path"))
        if status.problem == SCHEDULER_STOPPED:
            return True, tr("The agent answers, but its sync schedule has stopped.")
        if status.problem == HEALTH_TIMEOUT:
            return True, tr("The agent answers, but did not report its state in time.")
        for wanted in ("fail", "warn"):
            problems = _problems(status.health or {}, wanted)
            if problems:
                # the agent's own sentence, e.g. "The local copy has not been created yet."
                return wanted == "fail", problems[0]
        return False, ""

    # --- starting the agent -----------------------------------------------------------

    def start_agent(self) -> None:
        """Start the bundled agent, detached, then watch it come up."""
        if self._start_task is not None:
            return
        self.startAgentButton.setEnabled(False)
        self._show_message(tr("Starting the agent…"))
        task = StartAgentTask()
        task.agentStarted.connect(self._agent_started)
        task.failed.connect(self._agent_start_failed)
        self._start_task = task
        QgsApplication.taskManager().addTask(task)

    def is_starting_agent(self) -> bool:
        return self._start_task is not None or self._starting > 0

    def _maybe_start_agent(self, status: AgentStatus) -> None:
        # Started automatically only for a configuration someone wrote (a first start
        # without one would sync nothing), on a port the dock can find it on, once.
        if (status.state != NOT_RUNNING or not plugin_settings.start_agent()
                or status.config_file is None or not status.port
                or self._start_task is not None or self._starting):
            return
        key = str(status.config_file)
        if key in self._autostart_tried:
            return
        self._autostart_tried.add(key)
        self.start_agent()

    def _agent_started(self, pid: int) -> None:
        self._start_task = None
        self._starting = STARTING_PATIENCE
        self._timer.setInterval(STARTING_INTERVAL_MS)
        if not self._timer.isActive():
            self._timer.start()
        self.refresh()

    def _agent_start_failed(self, message: str) -> None:
        self._start_task = None
        self.startAgentButton.setEnabled(True)
        self._show_message(message, error=True)

    def _stop_starting(self) -> None:
        self._starting = 0
        self._timer.setInterval(REFRESH_INTERVAL_MS)
        if not self.isVisible():
            self._timer.stop()

    def _log_folder(self) -> str:
        try:
            from terrafusion_agent import api

            return str(api.load_config().log_dir)
        except Exception:  # noqa: BLE001 - only a hint in a message
            return DASH

    # --- sync now ---------------------------------------------------------------------

    def sync_now(self) -> None:
        """Sync now, through the agent when it runs, else in a background task."""
        if self._sync_task is not None:
            return
        self.syncButton.setEnabled(False)
        self.syncProgress.setRange(0, 100)
        self.syncProgress.setValue(0)
        self.syncProgress.setVisible(True)
        self._show_message(tr("Syncing…"))
        task = SyncTask()
        task.progressChanged.connect(self._sync_progress)
        task.busyChanged.connect(self._sync_busy)
        task.tableChanged.connect(self._sync_table)
        task.synced.connect(self._synced)
        task.failed.connect(self._sync_failed)
        self._sync_task = task
        QgsApplication.taskManager().addTask(task)

    def is_syncing(self) -> bool:
        return self._sync_task is not None

    def cancel_sync(self) -> None:
        if self._sync_task is not None:
            self._sync_task.cancel()

    def _sync_progress(self, value: float) -> None:
        if self.syncProgress.maximum() > 0:
            self.syncProgress.setValue(int(value))

    def _sync_busy(self, busy: bool) -> None:
        # The agent does not say how far its sync is: the bar then just shows it works.
        if busy:
            self.syncProgress.setRange(0, 0)
            self._show_message(tr("The agent is syncing…"))
        else:
            self.syncProgress.setRange(0, 100)

    def _sync_table(self, table: str) -> None:
        if table:
            self._show_message(tr("Syncing {table}…").format(table=table))

    def _synced(self, summary: dict) -> None:
        self._sync_task = None
        self.last_summary = summary
        self.syncProgress.setRange(0, 100)
        self.syncProgress.setValue(100)
        self.syncProgress.setVisible(False)
        self.syncButton.setEnabled(True)
        conflicts = summary.get("conflicts") or 0
        text = tr("Sync finished: {pulled} rows pulled, {pushed} pushed.").format(
            pulled=summary.get("pulled", 0), pushed=summary.get("pushed", 0))
        if conflicts:
            text += " " + tr("{n} new conflict(s) wait for your decision.").format(n=conflicts)
        self._show_message(text, error=False)
        local_path = summary.get("local_path")
        if summary.get("pulled") and local_path:
            # QGIS caches what it drew; the pulled rows must show without a manual reload.
            reload_synced_layers(self._project or QgsProject.instance(), local_path)
        self.refresh()
        self.syncFinished.emit(summary)

    def _sync_failed(self, message: str, cancelled: bool) -> None:
        self._sync_task = None
        self.last_summary = None
        self.syncProgress.setRange(0, 100)
        self.syncProgress.setVisible(False)
        self.syncButton.setEnabled(True)
        self._show_message(message, error=not cancelled)
        self.refresh()
        self.syncFinished.emit(None)

    # --- synced layers ----------------------------------------------------------------

    def add_synced_layers(self) -> None:
        """Read the local copy's tables in the background, then add them as layers."""
        if self._layers_task is not None:
            return
        self.addLayersButton.setEnabled(False)
        self._show_message(tr("Reading the local copy…"))
        task = SyncedLayersTask()
        task.layersReady.connect(self._layers_ready)
        task.failed.connect(self._layers_failed)
        self._layers_task = task
        QgsApplication.taskManager().addTask(task)

    def is_adding_layers(self) -> bool:
        return self._layers_task is not None

    def _layers_ready(self, entries: list) -> None:
        self._layers_task = None
        self.addLayersButton.setEnabled(True)
        project = self._project or QgsProject.instance()
        # The layers are created here, on the main thread, as QGIS requires.
        result = add_synced_layers(project, entries)
        if result.invalid:
            self._show_message(tr("QGIS could not open these tables of the local copy: "
                                  "{tables}.").format(tables=", ".join(result.invalid)),
                               error=True)
        elif result.added:
            self._show_message(tr("Layers added to the group “{group}”: {layers}.").format(
                group=GROUP_NAME, layers=", ".join(layer.name() for layer in result.added)))
        elif result.present:
            self._show_message(tr("The synced layers are already in the project."))
        else:
            self._show_message(tr("The local copy has no synced tables yet."))

    def _layers_failed(self, message: str) -> None:
        self._layers_task = None
        self.addLayersButton.setEnabled(True)
        self._show_message(message, error=True)

    # --- helpers ----------------------------------------------------------------------

    def _show_message(self, text: str, error: bool = False) -> None:
        self.messageLabel.setText(text)
        self.messageLabel.setVisible(bool(text))
        self.messageLabel.setStyleSheet(ERROR_STYLE if error else "")

    def message(self) -> str:
        return self.messageLabel.text()

    def teardown(self) -> None:
        """Stop polling and detach from running tasks before the dock is deleted.

        A running sync is left to finish: stopping it half-way gains nothing (it ends at a
        transaction boundary either way) and the user asked for it.
        """
        self._timer.stop()
        for task, connections, cancel in (
            (self._status_task, (("statusReady", self._status_ready),), True),
            (self._layers_task, (("layersReady", self._layers_ready),
                                 ("failed", self._layers_failed)), True),
            (self._sync_task, (("progressChanged", self._sync_progress),
                               ("busyChanged", self._sync_busy),
                               ("tableChanged", self._sync_table),
                               ("synced", self._synced), ("failed", self._sync_failed)), False),
            (self._start_task, (("agentStarted", self._agent_started),
                                ("failed", self._agent_start_failed)), False),
        ):
            if task is None:
                continue
            try:
                # only our own slots: the task manager listens to the same signals
                for name, slot in connections:
                    getattr(task, name).disconnect(slot)
                if cancel:
                    task.cancel()
            except (RuntimeError, TypeError):
                pass  # the task already ended and QGIS deleted it
        self._status_task = self._layers_task = self._sync_task = self._start_task = None


def _problems(health: dict, wanted: str) -> list[str]:
    """The agent's sentences for its checks in state ``wanted``, open conflicts left out
    (the dock shows those on their own line, with a link to resolve them)."""
    return [check.get("output") or name
            for name, results in (health.get("checks") or {}).items()
            if name != "sync:conflicts"
            for check in results if check.get("status") == wanted]


def _plugin_icon(name: str):
    from qgis.PyQt.QtGui import QIcon

    path: Path = paths.icon_path(name)
    return QIcon(str(path))
