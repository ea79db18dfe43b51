"""What the module file and the README promise, checked without Slicer (issue 10, items 7, 8, 12, 13): shortcuts
that no desktop or Slicer menu takes first, the README's table in step with them, no nested event loop, no
install outside the user's consent, a console example that needs no widget."""
from __future__ import annotations

import ast
import re
from pathlib import Path

MODULE = Path(__file__).resolve().parent.parent
SOURCE = (MODULE / "EISegMed3D.py").read_text(encoding="utf-8")
README = (MODULE.parent / "README.md").read_text(encoding="utf-8")

# Keys taken before the application sees them, or by Slicer's own menus (main window shortcuts).
RESERVED = {
    # GNOME (workspaces, terminal, log out, lock, show desktop, system controls, screencast), X, Linux consoles
    "ctrl+alt+left", "ctrl+alt+right", "ctrl+alt+up", "ctrl+alt+down", "ctrl+alt+t", "ctrl+alt+del",
    "ctrl+alt+delete", "ctrl+alt+l", "ctrl+alt+d", "ctrl+alt+tab", "ctrl+alt+backspace", "ctrl+alt+esc",
    "ctrl+alt+shift+r", "ctrl+alt+shift+left", "ctrl+alt+shift+right", "ctrl+alt+shift+up", "ctrl+alt+shift+down",
    *{f"ctrl+alt+f{n}" for n in range(1, 13)},
    # Windows (Intel graphics screen rotation uses Ctrl+Alt+arrows, listed above)
    # macOS, where Qt's Ctrl is Cmd: force quit, hide others, minimise all, dock
    "ctrl+alt+h", "ctrl+alt+m",
    # Slicer's main window and Segment Editor
    "ctrl+z", "ctrl+y", "ctrl+shift+z", "ctrl+o", "ctrl+s", "ctrl+w", "ctrl+q", "ctrl+f", "ctrl+3", "ctrl+p",
}


def shortcuts() -> list:
    tree = ast.parse(SOURCE)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SHORTCUTS" for t in node.targets):
            return [element.elts[0].value for element in node.value.elts]
    raise AssertionError("SHORTCUTS not found in EISegMed3D.py")


def normal(key: str) -> str:
    return key.lower().replace(" ", "")


def test_no_shortcut_is_taken_by_a_desktop_or_slicer():
    keys = shortcuts()
    assert len(keys) >= 9 and len(set(map(normal, keys))) == len(keys)
    clashes = sorted(k for k in keys if normal(k) in RESERVED)
    assert not clashes, f"taken by the desktop or by Slicer: {clashes}"


def test_the_readme_lists_exactly_the_module_shortcuts():
    table = README[README.index("| shortcut"):]
    table = table[:table.index("\n\n")]
    listed = {normal(k) for k in re.findall(r"`([^`]+)`", table)}
    assert listed == {normal(k) for k in shortcuts()}


def test_no_nested_event_loop_in_the_module():
    widget = SOURCE[SOURCE.index("class EISegMed3DWidget"):SOURCE.index("class EISegMed3DLogic")]
    assert "processEvents" not in widget.replace("nested processEvents loop", ""), \
        "model runs and installs are polled with qt.QTimer"
    assert "qt.QTimer()" in widget and "worker.poll(" in widget


def test_declining_the_install_is_not_reported_as_a_failure():
    widget = SOURCE[SOURCE.index("def ensureDependencies"):SOURCE.index("def _pythonSlicer")]
    assert "Installing the dependencies failed" not in widget and "declined" in widget
    assert "testingEnabled()" in widget  # the self-test installs for itself: the widget never does in testing mode


def test_the_console_example_needs_no_widget():
    example = README[README.index("Scripting from Slicer's Python console"):]
    example = example[:example.index("```\n", example.index("```python") + 3)]
    assert "getModuleLogic" not in example and "EISegMed3D.EISegMed3DLogic()" in example
    docstring = SOURCE[SOURCE.index("class EISegMed3DLogic"):SOURCE.index("def __init__", SOURCE.index("class EISegMed3DLogic"))]
    assert "getModuleLogic(" not in docstring.replace("slicer.util.getModuleLogic needs the widget", "")
