"""``terrafusion:sync``: one pull and push now, as the dock's *Sync now* does."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFile,
)

from ..gui.translation import tr

CONFIG = "CONFIG"


def config_parameter() -> QgsProcessingParameterFile:
    """The agent configuration file; empty means the one the agent itself reads."""
    return QgsProcessingParameterFile(
        CONFIG, tr("Agent configuration file (empty: the agent's own)"),
        behavior=QgsProcessingParameterFile.Behavior.File, extension="toml", optional=True)


def load_config(path):
    """The agent's configuration; its one-sentence error as a Processing error."""
    from terrafusion_agent import api
    from terrafusion_agent.errors import TerraFusionError

    try:
        return api.load_config(path or None)
    except TerraFusionError as exc:
        raise QgsProcessingException(str(exc)) from None


class SyncAlgorithm(QgsProcessingAlgorithm):
    """Pull what changed centrally and push the local edits, now."""

    def name(self) -> str:
        return "sync"

    def displayName(self) -> str:  # noqa: N802 - QGIS API
        return tr("Sync now")

    def shortHelpString(self) -> str:  # noqa: N802 - QGIS API
        return tr("Pulls what changed in the central database into the local copy and pushes "
                  "the local edits, detecting conflicts instead of overwriting. When the sync "
                  "agent runs, it is asked to do it; otherwise the sync runs here, exactly as "
                  "“terrafusion-agent sync” does.")

    def createInstance(self):  # noqa: N802 - QGIS API
        return SyncAlgorithm()

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 - QGIS API
        self.addParameter(config_parameter())
        self.addOutput(QgsProcessingOutputString("RESULT", tr("Result")))
        self.addOutput(QgsProcessingOutputNumber("PULLED", tr("Rows pulled")))
        self.addOutput(QgsProcessingOutputNumber("PUSHED", tr("Rows pushed")))
        self.addOutput(QgsProcessingOutputNumber("CONFLICTS", tr("New conflicts")))
        self.addOutput(QgsProcessingOutputString("VIA", tr("Synced by")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 - QGIS API
        from terrafusion_agent.api import SyncFailed, sync_now

        cfg = load_config(self.parameterAsFile(parameters, CONFIG, context))

        def progress(fraction, table) -> None:
            if fraction is not None:
                feedback.setProgress(100.0 * fraction)
            if table:
                feedback.setProgressText(tr("Syncing {table}…").format(table=table))

        try:
            summary = sync_now(cfg, progress=progress, cancelled=feedback.isCanceled,
                               trigger="processing")
        except SyncFailed as exc:
            raise QgsProcessingException(str(exc) or tr("The sync was cancelled.")) from None
        feedback.pushInfo(tr("Sync finished: {pulled} rows pulled, {pushed} pushed, "
                             "{conflicts} new conflict(s).").format(
                                 pulled=summary.get("pulled", 0),
                                 pushed=summary.get("pushed", 0),
                                 conflicts=summary.get("conflicts", 0)))
        return {"RESULT": summary.get("result", "success"),
                "PULLED": summary.get("pulled", 0), "PUSHED": summary.get("pushed", 0),
                "CONFLICTS": summary.get("conflicts", 0), "VIA": summary.get("via", "")}
