"""The Slicer module's files without Slicer: the .ui holds every control, the module file compiles and is found
by the Extension Wizard's rules, and the CMake lists name every Python file and resource."""
from __future__ import annotations

import py_compile
import re
import xml.etree.ElementTree as ET
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent
ROOT = MODULE.parent

CONTROLS = {  # issue 4, item 2: name -> widget class
    "defaultModelCheckBox": "QCheckBox", "modelPathLineEdit": "ctkPathLineEdit", "paramPathLineEdit": "ctkPathLineEdit",
    "backendComboBox": "QComboBox", "deviceComboBox": "QComboBox", "loadModelButton": "QPushButton",
    "modelInfoLabel": "QLabel", "dataFolderButton": "ctkDirectoryButton", "skipFinishedCheckBox": "QCheckBox",
    "prevScanButton": "QPushButton", "nextScanButton": "QPushButton",
    "positivePointPlaceWidget": "qSlicerMarkupsPlaceWidget", "negativePointPlaceWidget": "qSlicerMarkupsPlaceWidget",
    "undoButton": "QPushButton", "redoButton": "QPushButton", "resetButton": "QPushButton",
    "finishSegmentButton": "QPushButton", "finishScanButton": "QPushButton",
    "embeddedSegmentEditorWidget": "qMRMLSegmentEditorWidget", "opacitySlider": "ctkSliderWidget",
    "progressBar": "QProgressBar", "progressLabel": "QLabel", "progressTable": "QTableWidget", "statusLabel": "QLabel",
    # issue 12, item 4: prompts beyond points
    "promptBoxButton": "QPushButton", "promptLassoButton": "QPushButton", "promptScribbleButton": "QPushButton",
    "promptNegativeCheckBox": "QCheckBox",
}


def test_ui_parses_and_holds_every_control():
    tree = ET.parse(MODULE / "Resources" / "UI" / "EISegMed3D.ui")
    widgets = {w.get("name"): w.get("class") for w in tree.iter("widget")}
    for name, cls in CONTROLS.items():
        assert widgets.get(name) == cls, f"{name}: expected a {cls}, found {widgets.get(name)}"
    names = [w.get("name") for w in tree.iter("widget")]
    assert len(names) == len(set(names)), "widget names must be unique (childWidgetVariables)"
    custom = {c.findtext("class") for c in tree.iter("customwidget")}
    assert {cls for cls in CONTROLS.values() if not cls.startswith("Q")} <= custom


def test_module_file_compiles_and_is_found_by_the_extension_wizard(tmp_path):
    source = MODULE / "EISegMed3D.py"
    py_compile.compile(str(source), cfile=str(tmp_path / "m.pyc"), doraise=True)
    text = source.read_text(encoding="utf-8")
    assert "from slicer.ScriptedLoadableModule import *" in text
    assert re.search(r"^class EISegMed3D\(ScriptedLoadableModule\):", text, re.M)
    for cls in ("EISegMed3DWidget", "EISegMed3DLogic", "EISegMed3DTest"):
        assert re.search(rf"^class {cls}\(", text, re.M), cls
    assert not (MODULE / "__init__.py").exists(), "a folder with __init__.py is skipped as a library"
    assert 'parent.categories = ["Segmentation"]' in text


def test_shortcuts_do_not_clash_with_the_segment_editor():
    text = (MODULE / "EISegMed3D.py").read_text(encoding="utf-8")
    keys = re.findall(r'^\s+\("([^"]+)", "on|^\s+\("([^"]+)", "set', text, re.M)
    keys = [a or b for a, b in keys]
    assert len(keys) >= 9
    for key in keys:
        # Segment Editor (qMRMLSegmentEditorWidget::installKeyboardShortcuts): z/y, q/w and / * , . < >, i, digits,
        # Escape, Space; slice views (vtkMRMLSliceIntersectionWidget): b/f (slices), v, r, g, t, [ ] { }
        assert key.lower() not in set("zyqwbfvrgt[]{}i/*,.<>") | {"esc", "escape", "space"} and not key.isdigit(), key


def listed(cmake: Path) -> set:
    text = cmake.read_text(encoding="utf-8")
    return {line.strip() for line in text.splitlines() if line.startswith("  ") and ("." in line or "/" in line) and " " not in line.strip()}


def test_cmake_lists_every_python_file_and_resource():
    names = listed(MODULE / "CMakeLists.txt")
    present = {str(p.relative_to(MODULE)) for p in MODULE.glob("*.py")}
    for pattern in ("EISegMed3DLib/*.py", "inference/*.py", "Resources/**/*"):
        present |= {str(p.relative_to(MODULE)) for p in MODULE.glob(pattern) if p.is_file() and "__pycache__" not in p.parts}
    missing = sorted(present - names)
    assert not missing, f"add to EISegMed3D/CMakeLists.txt: {missing}"
    stale = sorted(n for n in names if not (MODULE / n).exists())
    assert not stale, f"listed but absent: {stale}"
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest" in text


def test_extension_cmake_has_what_select_extension_reads():
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    for needle in ("project(EISegMed3D)", "EXTENSION_HOMEPAGE", 'EXTENSION_CATEGORY "Segmentation"', "EXTENSION_ICONURL",
                   "add_subdirectory(EISegMed3D)", "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needle in text, needle


def test_nothing_shipped_in_slicer_imports_the_training_package():
    """Slicer gets EISegMed3D/ only: the engine, the MRML logic and the module never import training/ (the demo's
    simulated user lives in inference/robot.py for that reason)."""
    import ast

    offenders = []
    for path in sorted(MODULE.rglob("*.py")):
        if "Testing" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            offenders += [f"{path.relative_to(MODULE)}:{node.lineno} {n}" for n in names
                          if n == "training" or n.startswith("training.")]
    assert not offenders, offenders
