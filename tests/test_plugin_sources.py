"""The plugin's sources, read as text: every dialog's .ui file loaded at run time with no
signals wired in it, Qt imported only through ``qgis.PyQt``, Qt enums only scoped (as Qt6
requires), and the Spanish translation covering every string of the code, the .ui files
and the agent's configuration help, the category labels of the styles, with every
placeholder kept and no user-facing literal bypassing ``tr()``. Nothing here needs QGIS.
"""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

UI_FILES = sorted((REPO / "resources" / "ui").glob("*.ui"))
PLUGIN_SOURCES = sorted((REPO / "terrafusion_plugin").rglob("*.py"))


def test_every_dialog_has_its_ui_file_loaded_at_run_time_with_no_signals_wired_in_it():
    assert {p.stem for p in UI_FILES} == {"terrafusion_dock", "export_dialog",
                                          "settings_dialog", "conflicts_dialog",
                                          "pending_dialog", "history_panel"}
    for ui in UI_FILES:
        root = ET.parse(ui).getroot()
        assert root.findall(".//connection") == [], ui.name
        # one .ui per module of the same name, loaded with uic at run time
        module = REPO / "terrafusion_plugin" / "gui" / f"{ui.stem}.py"
        assert f'ui_path("{ui.name}")' in module.read_text(encoding="utf-8"), ui.name
    generated = [p.name for p in PLUGIN_SOURCES if p.name.startswith("ui_") or
                 p.name.endswith("_rc.py")]
    assert generated == []


def test_qt_is_imported_only_through_qgis_pyqt():
    offenders = []
    for source in PLUGIN_SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{source.name}: {n}" for n in names
                          if n.split(".")[0] in ("PyQt5", "PyQt6", "PySide2", "PySide6", "sip")]
    assert offenders == []


def test_no_bare_qt_enum_members_in_the_plugin():
    # Qt6 only has scoped enums: Qt.AlignRight must be Qt.AlignmentFlag.AlignRight.
    pattern = re.compile(r"\b(Qt|QgsTask|QDialogButtonBox|QHeaderView|QSizePolicy|QgsWkbTypes|"
                         r"QgsFileWidget|Qgis)\.([A-Z][A-Za-z]+)\b(?!\.)")
    enum_types = {"AlignmentFlag", "ItemDataRole", "CheckState", "ItemFlag", "MouseButton",
                  "DockWidgetArea", "TextElideMode", "Flag", "StandardButton", "ButtonRole",
                  "ResizeMode", "Policy", "GeometryType", "Type", "StorageMode",
                  "MessageLevel"}
    offenders = []
    for source in PLUGIN_SOURCES:
        for match in pattern.finditer(source.read_text(encoding="utf-8")):
            if match.group(2) not in enum_types and not match.group(2).startswith("QGIS_"):
                offenders.append(f"{source.name}: {match.group(0)}")
    assert offenders == []


def test_field_types_are_qmetatypes_spelled_for_the_running_qgis():
    # QVariant.Type is deprecated for QgsField from QGIS 3.38 and gone with Qt 6: types
    # are QMetaType.Type, turned into what an older QGIS takes in one place
    pattern = re.compile(r"QVariant\.(Type\b|LongLong|Int|UInt|Double|Bool|String|Date|"
                         r"DateTime|Time|ByteArray|StringList|List|Map)")
    offenders = [f"{source.name}: {match.group(0)}" for source in PLUGIN_SOURCES
                 if source.name != "field_types.py"
                 for match in pattern.finditer(source.read_text(encoding="utf-8"))]
    assert offenders == []


def _ts_translations(context: str) -> dict[str, str]:
    root = ET.parse(REPO / "i18n" / "terrafusion_es.ts").getroot()
    out = {}
    for ctx in root.iter("context"):
        if ctx.findtext("name") == context:
            for msg in ctx.iter("message"):
                tr = msg.find("translation")
                if tr.get("type") not in ("unfinished", "obsolete", "vanished") and tr.text:
                    out[msg.findtext("source")] = tr.text
    return out


def _tr_calls() -> set[str]:
    found = set()
    for source in PLUGIN_SOURCES:
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "tr" and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
    return found


def test_spanish_translation_covers_every_plugin_and_ui_string():
    in_code = _tr_calls()
    assert len(in_code) > 150
    assert sorted(in_code - set(_ts_translations("TerraFusion"))) == []
    for ui in UI_FILES:
        root = ET.parse(ui).getroot()
        in_ui = {s.text for s in root.iter("string") if s.text and s.get("notr") != "true"}
        context = root.findtext("class")
        assert in_ui, ui.name
        assert sorted(in_ui - set(_ts_translations(context))) == [], ui.name


def test_spanish_translation_covers_the_category_labels_of_every_style():
    # the plugin translates a style's legend when it applies the style
    labels = {category.get("label") for qml in (REPO / "resources" / "styles").glob("*.qml")
              for category in ET.parse(qml).getroot().iter("category")}
    assert {"Zoning", "School", "Fire", "Voting precinct", "Levy"} <= labels
    assert sorted(labels - set(_ts_translations("TerraFusion"))) == []


def test_spanish_translation_covers_the_help_of_every_configuration_key():
    # the Settings dialog shows the agent's declared help as tooltips, through tr()
    from terrafusion_agent import config

    helps = {key.help for key in config.KEYS}
    assert sorted(helps - set(_ts_translations("TerraFusion"))) == []


def test_translations_keep_every_placeholder():
    for context in ["TerraFusion"] + [ET.parse(u).getroot().findtext("class") for u in UI_FILES]:
        for source, translation in _ts_translations(context).items():
            assert sorted(re.findall(r"\{\w*\}", source)) == sorted(
                re.findall(r"\{\w*\}", translation)), (source, translation)


def test_every_plugin_string_goes_through_tr():
    # user-facing text handed to a widget as a plain literal would never be translated
    # (the product name, TerraFusion, is the one literal that stays as it is)
    setters = re.compile(r"\.(setText|setToolTip|setWindowTitle|pushMessage|addItem|"
                         r"setPlaceholderText|setSuffix|setSpecialValueText)"
                         r"\(\s*\"(?!TerraFusion\")[A-Za-z]")
    offenders = []
    for source in PLUGIN_SOURCES:
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if setters.search(line):
                offenders.append(f"{source.name}:{number}: {line.strip()}")
    assert offenders == []
