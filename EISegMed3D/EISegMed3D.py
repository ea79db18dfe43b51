"""EISeg-Med3D: interactive 3D segmentation by clicks (module, widget, console logic and self-test).

The widget is thin: all MRML work is in EISegMed3DLib (tested headless on slicer-core), all model work in the
`inference` engine. Model runs happen on one worker thread; the GUI thread polls it with processEvents.
"""
import importlib
import importlib.util
import os
import sys
import time

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the engine (`inference`) and EISegMed3DLib live next to this file
    sys.path.insert(0, _HERE)

SHORTCUTS = (  # key, widget method, help text (none clashes with the Segment Editor's z/y, q/w and digits)
    ("p", "setPositiveMode", "positive point mode"),
    ("n", "setNegativeMode", "negative point mode"),
    ("Ctrl+Alt+Z", "onUndo", "undo last click"),
    ("Ctrl+Alt+Y", "onRedo", "redo click"),
    ("Ctrl+Alt+R", "onReset", "reset object"),
    ("e", "onFinishSegment", "finish (end) segment"),
    ("Ctrl+Alt+F", "onFinishScan", "finish scan"),
    ("Ctrl+Alt+Right", "onNextScan", "next scan"),
    ("Ctrl+Alt+Left", "onPrevScan", "previous scan"),
)
SETTINGS = "EISegMed3D/"
DIALOG_AFTER_S = 2.0
AUTOSAVE_MS = 120000


class EISegMed3D(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        parent.title = "EISegMed3D"
        parent.categories = ["Segmentation"]
        parent.dependencies = []
        parent.contributors = ["EISeg-Med3D contributors"]
        keys = "".join(f"<li><b>{key}</b>: {text}</li>" for key, _, text in SHORTCUTS)
        parent.helpText = ("Interactive 3D segmentation by clicks: place positive (green) and negative (red) points; "
                           "each point updates the selected segment (other segments follow the Segment Editor's "
                           "masking settings). Drag or delete a point to re-run. Shortcuts (active while the module "
                           f"is shown):<ul>{keys}</ul>")
        parent.acknowledgementText = "A from-scratch successor of EISeg-Med3D (PaddleSeg, Apache-2.0)."


class EISegMed3DWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.worker = None
        self.shortcuts = []
        self.pointNodes = {}
        self._busy = False
        self._again = False
        self._segmentPending = False

    # --- setup -------------------------------------------------------------------------------------------------
    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/EISegMed3D.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        ui = self.ui
        ui.backendComboBox.addItems(["auto", "onnx", "paddle"])
        ui.deviceComboBox.addItems(["auto", "cpu", "gpu"])
        ui.modelPathLineEdit.filters = ui.modelPathLineEdit.Files | ui.modelPathLineEdit.Dirs
        ui.paramPathLineEdit.nameFilters = ["*.pdiparams"]
        ui.opacitySlider.minimum, ui.opacitySlider.maximum, ui.opacitySlider.singleStep = 0.0, 1.0, 0.05
        ui.opacitySlider.value = 0.9
        editor = ui.embeddedSegmentEditorWidget
        editor.setMRMLScene(slicer.mrmlScene)
        self._setupPoints()
        self._setupNodes()
        self._makeLogic()
        self._restoreSettings()
        ui.progressTable.setColumnCount(2)
        ui.progressTable.setHorizontalHeaderLabels(["Scan", "Finished"])
        ui.progressTable.horizontalHeader().setStretchLastSection(True)
        ui.loadModelButton.connect("clicked()", self.onLoadModel)
        ui.installDependenciesButton.connect("clicked()", lambda: self.ensureDependencies(force=True))
        # directorySelected also fires when the folder picked is the one shown (e.g. restored from the settings)
        ui.dataFolderButton.connect("directorySelected(QString)", self.onDataFolder)
        ui.prevScanButton.connect("clicked()", self.onPrevScan)
        ui.nextScanButton.connect("clicked()", self.onNextScan)
        ui.undoButton.connect("clicked()", self.onUndo)
        ui.redoButton.connect("clicked()", self.onRedo)
        ui.resetButton.connect("clicked()", self.onReset)
        ui.finishSegmentButton.connect("clicked()", self.onFinishSegment)
        ui.finishScanButton.connect("clicked()", self.onFinishScan)
        ui.opacitySlider.connect("valueChanged(double)", self.onOpacitySlider)
        ui.progressTable.connect("cellDoubleClicked(int,int)", self.onTableDoubleClick)
        ui.progressTable.connect("itemChanged(QTableWidgetItem*)", self.onTableItemChanged)
        for icon, button in (("prev", ui.prevScanButton), ("next", ui.nextScanButton), ("done", ui.finishScanButton),
                             ("save", ui.finishSegmentButton)):
            button.setIcon(qt.QIcon(self.resourcePath(f"Icons/{icon}.png")))
        editor.connect("currentSegmentIDChanged(QString)", self.onSegmentChanged)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.autosaveTimer = qt.QTimer()
        self.autosaveTimer.setInterval(AUTOSAVE_MS)
        self.autosaveTimer.connect("timeout()", self.autosave)
        self.autosaveTimer.start()

    def _makeLogic(self):
        """The logic imports the engine, which needs packages Slicer does not bundle (filelock): until they are
        installed the module still shows, with its "Install dependencies..." button."""
        if self.logic is not None:
            return True
        importlib.invalidate_caches()  # packages pip has just installed must be found
        try:
            from EISegMed3DLib import InteractiveSegmentationLogic, Worker
        except ImportError as error:
            self.ui.statusLabel.text = f"Missing Python package {error.name}: press 'Install dependencies...'"
            return False
        self.logic = InteractiveSegmentationLogic(slicer.mrmlScene)
        self.logic.editorNode = self.ui.embeddedSegmentEditorWidget.mrmlSegmentEditorNode()
        self.worker = Worker()
        self.ui.statusLabel.text = ""
        return True

    def _setupPoints(self):
        for positive, widget in ((True, self.ui.positivePointPlaceWidget), (False, self.ui.negativePointPlaceWidget)):
            widget.setMRMLScene(slicer.mrmlScene)
            widget.placeMultipleMarkups = widget.ForcePlaceMultipleMarkups  # persistent placement
            widget.buttonsVisible = False
            widget.placeButton().show()
            widget.placeButton().setToolButtonStyle(qt.Qt.ToolButtonTextBesideIcon)  # tool buttons hide text by default
            widget.placeButton().setText("Positive Point" if positive else "Negative Point")

    def _setupNodes(self):
        """(Re)create the editor's parameter node and the two point lists: closing the scene removes them."""
        editorNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentEditorNode", "EISegMed3D editor")
        editorNode.SetSaveWithScene(False)
        self.ui.embeddedSegmentEditorWidget.setMRMLSegmentEditorNode(editorNode)
        if self.logic is not None:
            self.logic.editorNode = editorNode
        self.removeObservers(self.onPointsChanged)
        for positive, widget, color in ((True, self.ui.positivePointPlaceWidget, (0.1, 0.85, 0.1)),
                                        (False, self.ui.negativePointPlaceWidget, (0.9, 0.1, 0.1))):
            node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "positive" if positive else "negative")
            node.SetSaveWithScene(False)
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetSelectedColor(*color)
            node.GetDisplayNode().SetColor(*color)
            node.GetDisplayNode().SetPointLabelsVisibility(False)
            widget.setCurrentNode(node)
            self.pointNodes[positive] = node
        self._observePoints()

    def _observePoints(self):
        for node in self.pointNodes.values():
            for event in (node.PointPositionDefinedEvent, node.PointEndInteractionEvent, node.PointRemovedEvent):
                self.addObserver(node, event, self.onPointsChanged)

    # --- settings ---------------------------------------------------------------------------------------------
    def _restoreSettings(self):
        s = qt.QSettings()
        self.ui.modelPathLineEdit.currentPath = s.value(SETTINGS + "modelPath", "")
        self.ui.paramPathLineEdit.currentPath = s.value(SETTINGS + "paramPath", "")
        self.ui.backendComboBox.currentText = s.value(SETTINGS + "backend", "auto")
        self.ui.deviceComboBox.currentText = s.value(SETTINGS + "device", "auto")
        self.ui.defaultModelCheckBox.checked = s.value(SETTINGS + "useDefault", "true") == "true"
        self.ui.skipFinishedCheckBox.checked = s.value(SETTINGS + "skipFinished", "true") == "true"
        self.ui.dataFolderButton.blockSignals(True)
        self.ui.dataFolderButton.directory = s.value(SETTINGS + "dataFolder", "")
        self.ui.dataFolderButton.blockSignals(False)

    def _saveSettings(self):
        s = qt.QSettings()
        s.setValue(SETTINGS + "modelPath", self.ui.modelPathLineEdit.currentPath)
        s.setValue(SETTINGS + "paramPath", self.ui.paramPathLineEdit.currentPath)
        s.setValue(SETTINGS + "backend", self.ui.backendComboBox.currentText)
        s.setValue(SETTINGS + "device", self.ui.deviceComboBox.currentText)
        s.setValue(SETTINGS + "useDefault", "true" if self.ui.defaultModelCheckBox.checked else "false")
        s.setValue(SETTINGS + "skipFinished", "true" if self.ui.skipFinishedCheckBox.checked else "false")
        s.setValue(SETTINGS + "dataFolder", self.ui.dataFolderButton.directory)

    # --- enter / exit / cleanup ---------------------------------------------------------------------------------
    def enter(self):
        self._removeShortcuts()  # never twice: an ambiguous QShortcut fires neither
        for key, method, _ in SHORTCUTS:
            shortcut = qt.QShortcut(qt.QKeySequence(key), slicer.util.mainWindow())
            shortcut.connect("activated()", getattr(self, method))
            self.shortcuts.append(shortcut)
        self.ui.embeddedSegmentEditorWidget.setupViewObservations()  # the embedding module's job (editor docs)

    def exit(self):
        self._removeShortcuts()
        for widget in (self.ui.positivePointPlaceWidget, self.ui.negativePointPlaceWidget):
            widget.setPlaceModeEnabled(False)
        editor = self.ui.embeddedSegmentEditorWidget
        editor.setActiveEffect(None)  # as the Segment Editor module does: no effect stays active elsewhere
        editor.removeViewObservations()

    def _removeShortcuts(self):
        for shortcut in self.shortcuts:
            shortcut.disconnect("activated()")
            shortcut.setParent(None)
            shortcut.deleteLater()
        self.shortcuts = []

    def cleanup(self):
        self.autosave()
        if hasattr(self, "autosaveTimer"):
            self.autosaveTimer.stop()
        self.removeObservers()
        self._removeShortcuts()
        editor = self.ui.embeddedSegmentEditorWidget
        editor.removeViewObservations()
        editorNode = editor.mrmlSegmentEditorNode()
        editor.setMRMLSegmentEditorNode(None)
        for node in (*self.pointNodes.values(), editorNode):  # a reloaded module must not find them twice
            if node is not None and node.GetScene() is not None:
                slicer.mrmlScene.RemoveNode(node)
        if self.worker is not None:
            self.worker.stop()

    def onSceneStartClose(self, caller=None, event=None):
        self.autosave()
        if self.logic is not None:
            # Node IDs are reused after a close: the logic must not keep (and later remove) IDs of its old nodes.
            self.logic.closeScan(save=False)

    def onSceneEndClose(self, caller=None, event=None):
        self._setupNodes()

    def autosave(self):
        try:
            if self.logic is not None and self.logic.autosave():
                self.updateProgress()
        except Exception as error:
            slicer.util.errorDisplay(f"Autosave failed: {error}")

    # --- running things ---------------------------------------------------------------------------------------
    def _guard(self, action, *args, failed=None):
        """Run an action with a wait cursor; errors in a message box with their clear text (then `failed`)."""
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            return action(*args)
        except Exception as error:
            slicer.util.errorDisplay(str(error))
            return failed
        finally:
            qt.QApplication.restoreOverrideCursor()

    def _ready(self):
        """Whether a user action may run now: the logic exists, and no model run is using the session."""
        if self.logic is None and not (self.ensureDependencies() and self._makeLogic()):
            return False
        if self._busy:
            self.ui.statusLabel.text = "Busy: wait until the model run has finished"
            return False
        return True

    def _runOnWorker(self, job):
        """Run `job` on the worker, keeping the GUI alive; a dialog appears only after DIALOG_AFTER_S."""
        request = self.worker.submit(job)
        started, dialog = time.monotonic(), None
        try:
            while True:
                outcome = self.worker.wait(request, 0.02)
                if outcome is not None:
                    break
                slicer.app.processEvents()
                if dialog is None and time.monotonic() - started > DIALOG_AFTER_S:
                    dialog = slicer.util.createProgressDialog(labelText="EISegMed3D is running the model...", maximum=0)
        finally:
            if dialog is not None:
                dialog.close()
        if outcome.error is not None:
            raise outcome.error
        if outcome.superseded:
            raise RuntimeError("the model run was replaced by a newer request")
        return outcome.result

    def ensureDependencies(self, force=False, paddle=False):
        """Ask once, then install the runtime packages on the main thread (Paddle only when it is needed)."""
        modules = ("paddle",) if paddle else ("filelock", "onnxruntime", "SimpleITK")  # filelock: not bundled with Slicer
        if not force and all(importlib.util.find_spec(name) is not None for name in modules):
            return True
        requirements = self.resourcePath("requirements-paddle.txt" if paddle else "requirements.txt")
        what = ("Paddle (paddlepaddle, CPU build, about 200 MB), needed for the Paddle backend and the original "
                "model's .pdmodel files" if paddle else "ONNX Runtime, SimpleITK, filelock and scipy")
        try:  # Slicer >= 5.11; a submodule, so it must be imported to be found
            import slicer.packaging as packaging

            packaging = packaging if hasattr(packaging, "pip_ensure") and hasattr(packaging, "load_requirements") else None
        except ImportError:
            packaging = None
        try:
            with slicer.util.tryWithErrorDisplay("Installing the dependencies failed"):  # shows the error, re-raises
                if packaging is not None:  # asks the user itself, shows progress, skips in testing mode
                    packaging.pip_ensure(packaging.load_requirements(requirements), requester="EISegMed3D")
                elif slicer.util.confirmOkCancelDisplay(
                        f"EISegMed3D needs {what}.\nInstall now into Slicer's Python? "
                        "For a GPU build of Paddle see Resources/requirements-paddle.txt."):
                    # a list: a single string is split like a shell line, which breaks paths with spaces or backslashes
                    slicer.util.pip_install(["-r", requirements])
                else:
                    return False
        except Exception:
            return False
        return True

    # --- model ------------------------------------------------------------------------------------------------
    def onLoadModel(self):
        if not (self.ensureDependencies() and self._ready()):
            return
        self._saveSettings()
        ui = self.ui
        path = None if ui.defaultModelCheckBox.checked else (ui.modelPathLineEdit.currentPath or None)
        params = ui.paramPathLineEdit.currentPath or None
        backend, device = ui.backendComboBox.currentText, ui.deviceComboBox.currentText
        needs_paddle = backend == "paddle" or (path or "").endswith(".pdmodel")
        if needs_paddle and not self.ensureDependencies(paddle=True):
            return
        self._busy = True  # points placed meanwhile wait for the new model
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            described = self._runOnWorker(lambda: self.logic.loadModel(path, params, backend, device))
            ui.modelInfoLabel.text = described
        except Exception as error:
            slicer.util.errorDisplay(f"Could not load the model: {error}")
        finally:
            self._busy = False
            qt.QApplication.restoreOverrideCursor()
        if self._segmentPending:
            self.onSegmentChanged(ui.embeddedSegmentEditorWidget.currentSegmentID())
        if self._again:
            self.onPointsChanged()

    # --- clicks -----------------------------------------------------------------------------------------------
    def _target(self):
        editor = self.ui.embeddedSegmentEditorWidget
        volume, seg = editor.sourceVolumeNode(), editor.segmentationNode()
        segment_id = editor.currentSegmentID()
        if volume is None or seg is None or not segment_id:
            raise RuntimeError("Select a source volume, a segmentation and a segment in the Segment Editor first")
        return volume, seg, segment_id

    def _points(self, positive):
        """Placed points only: in place mode the point following the mouse is a control point in "preview" state."""
        node = self.pointNodes[positive]
        return [node.GetNthControlPointPositionWorld(n) for n in range(node.GetNumberOfControlPoints())
                if node.GetNthControlPointPositionStatus(n) == node.PositionDefined]

    def onPointsChanged(self, caller=None, event=None):
        """Latest request wins: points placed while a run is going are picked up by one more run after it."""
        if self._busy:
            self._again = True
            return
        if self.logic is None:
            self.ui.statusLabel.text = "Install the dependencies and load a model first"
            return
        self._busy = True
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        try:
            while True:
                self._again = False
                volume, seg, segment_id = self._target()
                job = self.logic.planClicks(volume, seg, segment_id, self._points(True), self._points(False))
                if job is not None:
                    try:
                        result = self._runOnWorker(job.run)
                    except Exception:
                        self.logic.jobFailed(job, volume, seg)
                        raise
                    with slicer.util.RenderBlocker():
                        self.logic.applyJob(job, result, volume, seg)
                    self.ui.statusLabel.text = f"Last click: {result.latency_s:.2f} s (model {result.model_s:.2f} s)"
                if not self._again or self._segmentPending:  # the points shown belong to the old segment
                    break
        except Exception as error:
            slicer.util.errorDisplay(str(error))
        finally:
            self._busy = False
            qt.QApplication.restoreOverrideCursor()
        if self._segmentPending:
            self.onSegmentChanged(self.ui.embeddedSegmentEditorWidget.currentSegmentID())

    def showClicks(self, clicks):
        """Put the segment's clicks into the two point lists without triggering runs."""
        for positive, node in self.pointNodes.items():
            with slicer.util.NodeModify(node):
                self.removeObservers(self.onPointsChanged)
                node.RemoveAllControlPoints()
                for click in clicks:
                    if click.positive == positive:
                        node.AddControlPointWorld(vtk.vtkVector3d(*click.ras))
        self._observePoints()

    def onSegmentChanged(self, segment_id=None):
        if self._busy:  # the running click is written first; then this segment's clicks are shown
            self._segmentPending = True
            return
        self._segmentPending = False
        if self.logic is None or self.logic.session is None or not segment_id:
            return
        try:
            self.showClicks(self.logic.selectTarget(*self._target()))
        except Exception as error:
            self.ui.statusLabel.text = str(error)

    def onUndo(self):
        if self._ready() and self._guard(self.logic.undo) is not None:
            self.showClicks(self.logic.clicks())

    def onRedo(self):
        if self._ready() and self._guard(self.logic.redo) is not None:
            self.showClicks(self.logic.clicks())

    def onReset(self):
        if self._ready() and self._guard(self.logic.resetObject, failed=False) is not False:
            self.showClicks([])

    def setPositiveMode(self):
        self.ui.positivePointPlaceWidget.setPlaceModeEnabled(True)

    def setNegativeMode(self):
        self.ui.negativePointPlaceWidget.setPlaceModeEnabled(True)

    def onFinishSegment(self):
        if self._ready() and self._guard(self.logic.finishSegment) is not None:
            self.showClicks([])

    # --- scans ------------------------------------------------------------------------------------------------
    def _navigate(self, name, *args):
        """Run a logic call that opens a scan: None means no scan left that way; an error is shown once."""
        if not self._ready() or (name != "openFolder" and self.logic.navigator is None):
            return
        nodes = self._guard(getattr(self.logic, name), *args, failed=False)
        if nodes is None:
            slicer.util.infoDisplay("No further scan in this direction (finished scans skipped)." if
                                    self.ui.skipFinishedCheckBox.checked else "No further scan in this direction.")
        elif nodes:
            self._show(nodes)
        self.updateProgress()  # also after finishing the last scan

    def _show(self, nodes):
        volume, seg = nodes
        slicer.util.setSliceViewerLayers(background=volume, fit=True)
        editor = self.ui.embeddedSegmentEditorWidget
        editor.setSegmentationNode(seg)
        editor.setSourceVolumeNode(volume)
        self.showClicks([])
        self.onOpacitySlider(self.ui.opacitySlider.value)
        self.removeObservers(self.onDisplayModified)  # the previous scan's display node is gone
        self.addObserver(seg.GetDisplayNode(), vtk.vtkCommand.ModifiedEvent, self.onDisplayModified)

    def onDataFolder(self, folder):
        self._saveSettings()
        if folder:
            self._navigate("openFolder", folder, self.ui.skipFinishedCheckBox.checked)

    def onNextScan(self):
        self._navigate("nextScan", self.ui.skipFinishedCheckBox.checked)

    def onPrevScan(self):
        self._navigate("previousScan", self.ui.skipFinishedCheckBox.checked)

    def onFinishScan(self):
        self._navigate("finishScan", self.ui.skipFinishedCheckBox.checked)

    # --- opacity, kept in step both ways ----------------------------------------------------------------------
    def onOpacitySlider(self, value):
        seg = self.ui.embeddedSegmentEditorWidget.segmentationNode()  # the folder's scan, or one picked in the editor
        if seg is not None and seg.GetDisplayNode() is not None:
            seg.GetDisplayNode().SetOpacity2DFill(value)
            seg.GetDisplayNode().SetOpacity3D(value)

    def onDisplayModified(self, caller, event=None):
        if abs(caller.GetOpacity2DFill() - self.ui.opacitySlider.value) > 1e-6:
            self.ui.opacitySlider.blockSignals(True)
            self.ui.opacitySlider.value = caller.GetOpacity2DFill()
            self.ui.opacitySlider.blockSignals(False)

    # --- progress ---------------------------------------------------------------------------------------------
    def updateProgress(self):
        nav = self.logic.navigator
        if nav is None:
            return
        done, total = nav.summary()
        self.ui.progressBar.maximum, self.ui.progressBar.value = max(total, 1), done
        self.ui.progressLabel.text = f"Finished: {done} / Total: {total}"
        table = self.ui.progressTable
        table.blockSignals(True)
        table.setRowCount(len(nav.keys))
        finished = nav.finished()
        for row, key in enumerate(nav.keys):
            name = qt.QTableWidgetItem(key)
            name.setFlags(qt.Qt.ItemIsSelectable | qt.Qt.ItemIsEnabled)  # double-click opens the scan, not an editor
            table.setItem(row, 0, name)
            box = qt.QTableWidgetItem()
            box.setFlags(qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsEnabled)
            box.setCheckState(qt.Qt.Checked if key in finished else qt.Qt.Unchecked)
            table.setItem(row, 1, box)
        table.blockSignals(False)

    def onTableDoubleClick(self, row, column):
        self._navigate("openScan", row)

    def onTableItemChanged(self, item):
        if item.column() == 1 and self.logic is not None:
            self._guard(self.logic.setScanFinished, item.row(), item.checkState() == qt.Qt.Checked)
            qt.QTimer.singleShot(0, self.updateProgress)  # rebuilding the table deletes `item`: not inside its signal


class EISegMed3DLogic(ScriptedLoadableModuleLogic):
    """For the Python console: the same calls as the module, e.g.

    logic = slicer.util.getModuleLogic("EISegMed3D") or EISegMed3DLogic()
    logic.loadModel()
    logic.segment(volumeNode, segmentationNode, segmentId, positive=[(r, a, s)], negative=[])
    """

    def __init__(self, scene=None):
        ScriptedLoadableModuleLogic.__init__(self)
        from EISegMed3DLib import InteractiveSegmentationLogic

        self.impl = InteractiveSegmentationLogic(scene or slicer.mrmlScene)

    def __getattr__(self, name):
        if "impl" not in self.__dict__:  # AttributeError (not KeyError), so hasattr() and copy behave
            raise AttributeError(name)
        return getattr(self.__dict__["impl"], name)


class EISegMed3DTest(ScriptedLoadableModuleTest):
    """Drives the real widget end to end inside Slicer (model, folder, clicks, undo, save, progress)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_widget_end_to_end()

    def _make_folder(self):
        import tempfile

        import numpy as np
        import SimpleITK as sitk

        folder = tempfile.mkdtemp(prefix="EISegMed3D-test-")
        for name in ("a", "b"):
            array = np.random.default_rng(0).normal(100, 10, (24, 48, 48)).astype(np.float32)
            array[8:16, 16:32, 16:32] += 200
            sitk.WriteImage(sitk.GetImageFromArray(array), os.path.join(folder, f"{name}.nii.gz"))
        return folder

    def test_widget_end_to_end(self):
        self.delayDisplay("Starting EISegMed3D end-to-end test")
        slicer.util.selectModule("EISegMed3D")
        widget = slicer.modules.EISegMed3DWidget
        widget.ui.defaultModelCheckBox.checked = True  # the bundled model, whatever the saved settings say
        widget.ui.backendComboBox.currentText = "auto"
        widget.ui.deviceComboBox.currentText = "auto"
        widget.onLoadModel()
        self.assertNotEqual(widget.logic.model, None, "the bundled model must load")
        folder = self._make_folder()
        widget.onDataFolder(folder)
        volume, seg = widget.logic.volumeNode, widget.logic.segmentationNode
        segment_id = seg.GetSegmentation().AddEmptySegment("", "object")
        widget.ui.embeddedSegmentEditorWidget.setCurrentSegmentID(segment_id)
        ijk_to_ras = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijk_to_ras)
        point = ijk_to_ras.MultiplyPoint((24, 24, 12, 1))[:3]
        widget.pointNodes[True].AddControlPointWorld(vtk.vtkVector3d(*point))
        array = slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume)
        self.assertGreater(int(array.sum()), 0, "a positive click must paint the segment")
        widget.onUndo()
        self.assertEqual(int(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume).sum()), 0)
        widget.onRedo()
        widget.onFinishScan()
        self.assertTrue(os.path.exists(os.path.join(folder, "a_label.nii.gz")))
        self.assertIn("Finished: 1 / Total: 2", widget.ui.progressLabel.text)
        self.delayDisplay("EISegMed3D end-to-end test passed")
