"""EISeg-Med3D: interactive 3D segmentation by clicks (module, widget, console logic and self-test).

The widget is thin: all MRML work is in EISegMed3DLib (tested headless on slicer-core), all model work in the
`inference` engine. Model runs happen on one worker thread; a qt.QTimer polls it from the GUI thread, so no
nested event loop runs inside a markups callback. Package installs run pip as a subprocess, polled the same way.
"""
import importlib
import importlib.util
import logging
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

import qt
import slicer
import vtk
from slicer.ScriptedLoadableModule import *
from slicer.util import VTKObservationMixin

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # the engine (`inference`) and EISegMed3DLib live next to this file
    sys.path.insert(0, _HERE)

SHORTCUTS = (  # key, widget method, help text; none clashes with the Segment Editor (z/y, q/w, digits), the
    # slice views, Slicer's menus or the desktops' own keys (GNOME / Windows: Ctrl+Alt+arrows switch workspaces or
    # rotate the screen), see EISegMed3D/Testing/test_module_text.py
    ("p", "setPositiveMode", "positive point mode"),
    ("n", "setNegativeMode", "negative point mode"),
    ("Ctrl+Alt+Z", "onUndo", "undo last click"),
    ("Ctrl+Alt+Y", "onRedo", "redo click"),
    ("Ctrl+Alt+R", "onReset", "reset object"),
    ("e", "onFinishSegment", "finish (end) segment"),
    ("Ctrl+Alt+F", "onFinishScan", "finish scan"),
    ("Ctrl+Alt+PgDown", "onNextScan", "next scan"),
    ("Ctrl+Alt+PgUp", "onPrevScan", "previous scan"),
    ("Shift+B", "onBoxPrompt", "draw a box (model with a region input)"),
    ("l", "onLassoPrompt", "draw a lasso"),
    ("Shift+L", "onNegativeLassoPrompt", "draw a negative lasso (not the object)"),
    ("d", "onScribblePrompt", "draw a scribble"),
    ("Shift+D", "onNegativeScribblePrompt", "draw a negative scribble"),
)
SETTINGS = "EISegMed3D/"
DIALOG_AFTER_S = 2.0
POLL_MS = 20
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
                           "masking settings). Drag or delete a point to re-run. Box, Lasso and Scribble draw a "
                           "prompt on one slice of any view (right-click or double-click ends a lasso or scribble). "
                           f"Shortcuts (active while the module is shown):<ul>{keys}</ul>")
        parent.acknowledgementText = "A from-scratch successor of EISeg-Med3D (PaddleSeg, Apache-2.0)."


class EISegMed3DWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.worker = None
        self.shortcuts = []
        self.pointNodes = {}
        self.pointsWatch = None  # EISegMed3DLib.clicks.PointsWatch, once the library imports
        self._run = None  # the model run in flight: dict(request, done, started, generation, dialog, cancelled)
        self._again = False  # points changed while a run was in flight: plan once more after it
        self._segmentPending = False
        self._generation = 0  # bumped on scene close: a result computed for the closed scene is dropped
        self._masking = {}  # the Segment Editor's masking settings, carried over a scene close
        self._install = None  # the pip run in flight: dict(process, lines, dialog, then, timer)
        self._lastStatus = None

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
        # An embedded editor keeps no undo states unless asked (saveStateForUndo is then a no-op); the Segment
        # Editor module itself (SegmentEditor.py) asks for 10 before setting the scene.
        editor.setMaximumNumberOfUndoStates(10)
        editor.setUndoEnabled(True)
        editor.setMRMLScene(slicer.mrmlScene)
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(POLL_MS)
        self.pollTimer.connect("timeout()", self._pollRun)
        self._setupPoints()
        self._setupNodes()
        self._makeLogic()
        self._restoreSettings()
        self.adapt = AdaptController(self)  # "Adapt model to this folder" under Model Settings (issue 11)
        self.prompts = PromptController(self)  # Box / Lasso / Scribble buttons (issue 12)
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

            InteractiveSegmentationLogic, Worker  # the imports above are lazy: this really loads the engine
        except ImportError as error:
            self._status(f"Missing Python package {error.name}: press 'Install dependencies...'")
            return False
        editor = self.ui.embeddedSegmentEditorWidget
        # saveStateForUndo (a public slot of qMRMLSegmentEditorWidget) before each write, as effects do before
        # they modify a segment: the editor's Undo then steps back over click results too.
        self.logic = InteractiveSegmentationLogic(slicer.mrmlScene, editor.mrmlSegmentEditorNode(),
                                                  before_write=editor.saveStateForUndo)
        self.worker = Worker()
        self._status("")
        return True

    def _status(self, message):
        """One line under the controls: for what the user should know but need not click away (no dialog)."""
        self.ui.statusLabel.text = message
        if message and message != self._lastStatus:
            logging.info(f"EISegMed3D: {message}")
        self._lastStatus = message

    def _setupPoints(self):
        for positive, widget in ((True, self.ui.positivePointPlaceWidget), (False, self.ui.negativePointPlaceWidget)):
            widget.setMRMLScene(slicer.mrmlScene)
            widget.placeMultipleMarkups = widget.ForcePlaceMultipleMarkups  # persistent placement
            widget.buttonsVisible = False
            widget.placeButton().show()
            widget.placeButton().setToolButtonStyle(qt.Qt.ToolButtonTextBesideIcon)  # tool buttons hide text by default
            widget.placeButton().setText("Positive Point" if positive else "Negative Point")

    def _setupNodes(self):
        """(Re)create the editor's parameter node and the two point lists: closing the scene removes them.

        They are hidden from the Data module and never saved (no "save changes?" on exit for them); the user's
        masking settings of the previous editor node are restored on the new one.
        """
        from EISegMed3DLib.helper_nodes import add_helper_node, restore_masking_settings

        editorNode = add_helper_node(slicer.mrmlScene, "vtkMRMLSegmentEditorNode", "EISegMed3D editor")
        self.ui.embeddedSegmentEditorWidget.setMRMLSegmentEditorNode(editorNode)  # sets effect defaults only
        restore_masking_settings(editorNode, self._masking)
        if self.logic is not None:
            self.logic.editorNode = editorNode
        self.removeObservers(self.onPointsChanged)
        for positive, widget, color in ((True, self.ui.positivePointPlaceWidget, (0.1, 0.85, 0.1)),
                                        (False, self.ui.negativePointPlaceWidget, (0.9, 0.1, 0.1))):
            node = add_helper_node(slicer.mrmlScene, "vtkMRMLMarkupsFiducialNode", "positive" if positive else "negative")
            node.CreateDefaultDisplayNodes()
            node.GetDisplayNode().SetSelectedColor(*color)
            node.GetDisplayNode().SetColor(*color)
            node.GetDisplayNode().SetPointLabelsVisibility(False)
            widget.setCurrentNode(node)
            self.pointNodes[positive] = node
        self._observePoints()

    def _observePoints(self):
        from EISegMed3DLib.clicks import PointsWatch

        if self.pointsWatch is None:
            self.pointsWatch = PointsWatch()
        self.pointsWatch.reset(list(self.pointNodes.values()))
        for node in self.pointNodes.values():
            # PointRemovedEvent also fires each time the place preview point leaves a view: pointsWatch sorts out
            # whether the placed points really changed.
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
        self.autosave()  # leaving the module is a natural stopping point
        self._removeShortcuts()
        for widget in (self.ui.positivePointPlaceWidget, self.ui.negativePointPlaceWidget):
            widget.setPlaceModeEnabled(False)
        self.prompts.cancel()
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
        for timer in ("autosaveTimer", "pollTimer"):
            if hasattr(self, timer):
                getattr(self, timer).stop()
        if self._install is not None:
            self._install["timer"].stop()
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
        if hasattr(self, "adapt"):
            self.adapt.cleanup()  # a running adaptation stops with a checkpoint
        if hasattr(self, "prompts"):
            self.prompts.cancel()

    def onSceneStartClose(self, caller=None, event=None):
        from EISegMed3DLib.helper_nodes import masking_settings

        self._generation += 1  # a model run still in flight belongs to the closing scene: its result is dropped
        self._again = False
        self._masking = masking_settings(self.ui.embeddedSegmentEditorWidget.mrmlSegmentEditorNode())
        self.prompts.cancel()  # the drawing's helper node goes with the scene
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

    @property
    def busy(self):
        """A model run or a package install is in flight."""
        return self._run is not None or self._install is not None

    def _ready(self):
        """Whether a user action may run now: the logic exists, and no model run is using the session."""
        if self._install is not None:
            self._status("Installing Python packages: wait until pip has finished")
            return False
        if self.logic is None and not (self.ensureDependencies() and self._makeLogic()):
            return False
        if self._run is not None:
            self._status("Busy: wait until the model run has finished")
            return False
        return True

    def _startRun(self, job, done, sceneBound=True):
        """Run `job` on the worker; `done(outcome, cancelled)` is called on the GUI thread when it is over (not
        for a scene-bound job whose scene was closed meanwhile).

        Nothing waits here: pollTimer checks the worker every POLL_MS, so the markups callback that started the
        run returns at once (a nested processEvents loop would let a scene close or a paint stroke in between).
        A wait dialog appears only after DIALOG_AFTER_S.
        """
        request = self.worker.submit(job)
        self._run = {"request": request, "done": done, "started": time.monotonic(),
                     "generation": self._generation if sceneBound else None, "dialog": None, "cancelled": False}
        qt.QApplication.setOverrideCursor(qt.Qt.WaitCursor)
        self.pollTimer.start()

    def _pollRun(self):
        run = self._run
        if run is None:
            self.pollTimer.stop()
            return
        outcome = self.worker.poll(run["request"])
        if outcome is None:
            if run["dialog"] is None and time.monotonic() - run["started"] > DIALOG_AFTER_S:
                run["dialog"] = self._waitDialog(run)
            return
        self.pollTimer.stop()
        if run["dialog"] is not None:
            run["dialog"].close()
        qt.QApplication.restoreOverrideCursor()
        self._run = None
        if run["generation"] not in (None, self._generation):
            self._status("The scene was closed while the model ran: its result was dropped")
        else:
            try:
                run["done"](outcome, run["cancelled"])
            except Exception as error:
                slicer.util.errorDisplay(str(error))
        if self._segmentPending:
            self.onSegmentChanged(self.ui.embeddedSegmentEditorWidget.currentSegmentID())
        if self._again:
            self._requestRun()
        self.prompts.runPending()  # a box / lasso / scribble drawn while the model ran

    def _waitDialog(self, run):
        """Window-modal (input to the main window waits) but no nested loop: show() returns at once."""
        dialog = qt.QProgressDialog(slicer.util.mainWindow())
        dialog.setWindowTitle("EISegMed3D")
        dialog.setLabelText("EISegMed3D is running the model...")
        dialog.setMinimum(0)
        dialog.setMaximum(0)  # busy indicator
        dialog.setCancelButtonText("Ignore result")
        dialog.setWindowModality(qt.Qt.WindowModal)

        def cancel():
            run["cancelled"] = True
            dialog.setLabelText("The result will be ignored: waiting for the model to finish...")

        dialog.connect("canceled()", cancel)
        dialog.show()
        return dialog

    # --- dependencies -------------------------------------------------------------------------------------------
    def ensureDependencies(self, force=False, paddle=False, then=None):
        """True when the runtime packages are importable. Otherwise ask, then install them in the background
        (pip in a subprocess, its output in a wait dialog, the GUI keeps running) and return False; `then()` runs
        once the install has succeeded. Paddle only when it is needed."""
        modules = ("paddle",) if paddle else ("filelock", "onnxruntime", "SimpleITK", "scipy")  # filelock: not bundled
        missing = [name for name in modules if importlib.util.find_spec(name) is None]
        if not missing and not force:
            return True
        if self._install is not None:
            self._status("Installing Python packages: wait until pip has finished")
            return False
        if slicer.app.testingEnabled():  # as slicer.pydeps.pip_ensure: tests never change the Python environment
            self._status(f"Missing Python packages ({', '.join(missing)}): not installed in testing mode")
            return False
        requirements = self.resourcePath("requirements-paddle.txt" if paddle else "requirements.txt")
        what = ("Paddle (paddlepaddle, CPU build, about 200 MB), needed for the Paddle backend and the original "
                "model's .pdmodel files" if paddle else "ONNX Runtime, SimpleITK, filelock and scipy")
        if not slicer.util.confirmOkCancelDisplay(
                f"EISegMed3D needs {what}.\nInstall now into Slicer's Python? (pip runs in the background.)"
                + ("\nFor a GPU build of Paddle see Resources/requirements-paddle.txt." if paddle else "")):
            self._status("Installation declined: press 'Install dependencies...' when you want EISegMed3D to work")
            return False
        self._startInstall(requirements, then)
        return False

    @staticmethod
    def _pythonSlicer():
        """Slicer's own Python launcher, as slicer.util.pip_install finds it (on PATH inside Slicer)."""
        found = shutil.which("PythonSlicer")
        if found:
            return found
        return os.path.join(os.path.dirname(sys.executable), "PythonSlicer" + (".exe" if os.name == "nt" else ""))

    def _startInstall(self, requirements, then=None):
        # A list: a single string would be split like a shell line, breaking paths with spaces or backslashes.
        command = [self._pythonSlicer(), "-m", "pip", "install", "-r", requirements]
        flags = subprocess.CREATE_NO_WINDOW if os.name == "nt" else 0
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   encoding="utf-8", errors="replace", creationflags=flags)  # a bad byte must not stop the reader
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line.rstrip()) for line in process.stdout], daemon=True,
                         name="EISegMed3D pip output").start()  # the reader never touches Qt
        dialog = qt.QProgressDialog(slicer.util.mainWindow())
        dialog.setWindowTitle("EISegMed3D: installing Python packages")
        dialog.setLabelText("Starting pip...")
        dialog.setMinimum(0)
        dialog.setMaximum(0)
        dialog.setCancelButtonText("Hide")  # pip goes on; its last line stays in the module's status line
        dialog.setWindowModality(qt.Qt.NonModal)
        dialog.show()
        timer = qt.QTimer()
        timer.setInterval(200)
        self._install = {"process": process, "lines": lines, "log": [], "dialog": dialog, "then": then, "timer": timer}
        timer.connect("timeout()", self._pollInstall)
        timer.start()

    def _pollInstall(self):
        install = self._install
        while True:
            try:
                line = install["lines"].get_nowait()
            except queue.Empty:
                break
            install["log"].append(line)
            logging.info(f"pip: {line}")
            if line.strip():
                install["dialog"].setLabelText(line[:120])
                self._status(f"Installing Python packages: {line[:100]}")
        code = install["process"].poll()
        if code is None:
            return
        install["timer"].stop()
        install["dialog"].close()
        self._install = None
        if code != 0:
            tail = "\n".join(install["log"][-15:])
            self._status("Installing the Python packages failed: see the Python console")
            slicer.util.errorDisplay(f"pip could not install the packages (exit code {code}).", detailedText=tail)
            return
        importlib.invalidate_caches()
        self._status("Python packages installed")
        if self._makeLogic() and install["then"] is not None:
            install["then"]()

    # --- model ------------------------------------------------------------------------------------------------
    def onLoadModel(self):
        if not (self.ensureDependencies(then=self.onLoadModel) and self._ready()):
            return
        self._saveSettings()
        ui = self.ui
        path = None if ui.defaultModelCheckBox.checked else (ui.modelPathLineEdit.currentPath or None)
        params = ui.paramPathLineEdit.currentPath or None
        backend, device = ui.backendComboBox.currentText, ui.deviceComboBox.currentText
        needs_paddle = backend == "paddle" or (path or "").endswith(".pdmodel")
        if needs_paddle and not self.ensureDependencies(paddle=True, then=self.onLoadModel):
            return
        self._status("Loading the model...")
        self._startRun(lambda: self.logic.loadModel(path, params, backend, device), self._modelLoaded, sceneBound=False)

    def _modelLoaded(self, outcome, cancelled=False):
        if outcome.error is not None:
            self._status("")
            slicer.util.errorDisplay(f"Could not load the model: {outcome.error}")
            return
        self.ui.modelInfoLabel.text = outcome.result
        self._status("Model loaded: place points")
        self.prompts.updateButtons()  # a box needs a model with a region input
        self._segmentPending = True  # show the clicks of the segment selected meanwhile

    # --- clicks -----------------------------------------------------------------------------------------------
    def _target(self):
        editor = self.ui.embeddedSegmentEditorWidget
        volume, seg = editor.sourceVolumeNode(), editor.segmentationNode()
        segment_id = editor.currentSegmentID()
        if volume is None or seg is None or not segment_id:
            raise RuntimeError("Select a source volume, a segmentation and a segment in the Segment Editor first")
        return volume, seg, segment_id

    def _points(self, positive):
        from EISegMed3DLib.clicks import defined_points

        return defined_points(self.pointNodes[positive])

    def onPointsChanged(self, caller=None, event=None):
        """A point was placed, dragged or deleted (not the place preview coming and going)."""
        if self.pointsWatch is not None and not self.pointsWatch.changed(list(self.pointNodes.values())):
            return
        self._requestRun()

    def _requestRun(self):
        """Latest request wins: points placed while a run is going are picked up by one more run after it.
        What stops a run (no model, no segment) goes to the status line once, never a dialog per mouse move."""
        if self._run is not None:
            self._again = True
            return
        self._again = False
        if self._install is not None:
            self._status("Installing Python packages: points run once the model is loaded")
            return
        if self.logic is None or self.logic.session is None:
            self._status("Load a model first (Model Settings -> Load Static Model)")
            return
        try:
            volume, seg, segment_id = self._target()
            job = self.logic.planClicks(volume, seg, segment_id, self._points(True), self._points(False))
        except Exception as error:
            self._status(str(error))
            return
        if job is not None:
            self._startRun(job.run, lambda outcome, cancelled: self._clickDone(job, volume, seg, outcome, cancelled))

    def _clickDone(self, job, volume, seg, outcome, cancelled):
        if outcome.error is not None or outcome.superseded or cancelled:
            self.logic.jobFailed(job, volume, seg)  # the session holds the segment again
            if outcome.error is not None:
                raise outcome.error
            self._status("Model result ignored")
            return
        with slicer.util.RenderBlocker():
            written = self.logic.applyJob(job, outcome.result, volume, seg)
        if written is None:  # painted while the model ran: run the new points again, on top of the edit
            self._status("The segment was edited while the model ran: running the points again on top of the edit")
            self._again = True
            return
        result = outcome.result
        self._status(f"Last click: {result.latency_s:.2f} s (model {result.model_s:.2f} s)")

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
        if self._run is not None:  # the running click is written first; then this segment's clicks are shown
            self._segmentPending = True
            return
        self._segmentPending = False
        if self.logic is None or self.logic.session is None or not segment_id:
            return
        try:
            self.showClicks(self.logic.selectTarget(*self._target()))
        except Exception as error:
            self._status(str(error))

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

    # --- box / lasso / scribble (PromptController) --------------------------------------------------------------
    def onBoxPrompt(self):
        self.prompts.toggle("box", True)

    def onLassoPrompt(self):
        self.prompts.toggle("lasso", True)

    def onNegativeLassoPrompt(self):
        self.prompts.toggle("lasso", False)

    def onScribblePrompt(self):
        self.prompts.toggle("scribble", True)

    def onNegativeScribblePrompt(self):
        self.prompts.toggle("scribble", False)

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
            self.adapt.folderOpened(folder)

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


class AdaptController:
    """"Adapt model to this folder" under Model Settings (issue 11). Runs `eiseg-med3d adapt` as a separate
    process (QProcess: the GUI stays free, the user keeps annotating), shows its progress, can be cancelled (the
    process checkpoints; pressing the button again offers to resume), and when it ends shows before/after on the
    held-back scans and offers the adapted model only when it was better. The choice is kept in the folder's
    progress file. The Qt-free part (command, progress lines, result, offer) is EISegMed3DLib.adapt_runner."""

    def __init__(self, widget):
        self.widget = widget
        self.process = None
        self.folder = None
        self.lines, self.errors = [], []
        self.button = qt.QPushButton("Adapt model to this folder")
        self.button.toolTip = ("Fine-tune the model in use on this folder's finished scans, on this computer, in the "
                               "background; the latest finished scans are held back to check the result")
        self.minutes = qt.QSpinBox()
        self.minutes.minimum, self.minutes.maximum, self.minutes.value = 1, 600, 10
        self.minutes.suffix = " min"
        self.minutes.toolTip = "Training time (the check on the held-back scans comes on top)"
        self.cancelButton = qt.QPushButton("Stop")
        self.cancelButton.toolTip = "Stop after the current step; a checkpoint is kept and can be resumed"
        self.cancelButton.enabled = False
        self.bar = qt.QProgressBar()
        self.bar.visible = False
        self.label = qt.QLabel("")
        self.label.wordWrap = True
        row = qt.QHBoxLayout()
        for item in (self.button, self.minutes, self.cancelButton):
            row.addWidget(item)
        layout = widget.ui.modelCollapsibleButton.layout()
        layout.addLayout(row)
        layout.addWidget(self.bar)
        layout.addWidget(self.label)
        self.button.connect("clicked()", self.onAdapt)
        self.cancelButton.connect("clicked()", self.onCancel)

    def _dataFolder(self):
        nav = self.widget.logic.navigator if self.widget.logic is not None else None
        return None if nav is None else str(nav.folder)

    def _modelInUse(self):
        ui = self.widget.ui
        path = None if ui.defaultModelCheckBox.checked else (ui.modelPathLineEdit.currentPath or None)
        return path if path and os.path.isfile(os.path.join(path, "model.json")) else None  # a package, not a .pdmodel

    def onAdapt(self):
        from EISegMed3DLib.adapt_runner import adapt_command, adapt_environment, missing_requirements, stopped_run

        if self.process is not None:
            return
        folder = self._dataFolder()
        if folder is None:
            slicer.util.errorDisplay("Open a data folder (Data Folder) and finish some scans first.")
            return
        if not self._ensureRequirements(missing_requirements()):
            return
        resume = False
        stopped = stopped_run(folder)
        if stopped is not None:
            resume = slicer.util.confirmYesNoDisplay(f"A stopped adaptation of this folder exists ({stopped.name}).\n"
                                                     "Resume it? (No starts a new one.)")
        try:
            env = adapt_environment(dict(os.environ))
        except RuntimeError as error:
            slicer.util.errorDisplay(str(error))
            return
        command = adapt_command(self.widget._pythonSlicer(), folder, self.minutes.value, self._modelInUse(), resume)
        environment = qt.QProcessEnvironment.systemEnvironment()
        for key, value in env.items():
            environment.insert(key, value)
        process = qt.QProcess()
        process.setProcessEnvironment(environment)
        process.connect("readyReadStandardOutput()", self._readOutput)
        process.connect("readyReadStandardError()", self._readErrors)
        process.connect("finished(int,QProcess::ExitStatus)", self._finished)
        self.process, self.folder, self.lines, self.errors = process, folder, [], []
        self.button.enabled, self.cancelButton.enabled = False, True
        self.bar.visible, self.bar.value = True, 0
        self.label.text = "Starting the adaptation..."
        logging.info(f"EISegMed3D adapt: {' '.join(command)}")
        process.start(command[0], command[1:])

    def _ensureRequirements(self, missing):
        """Ask before installing what adapting needs (pip in the background); True when nothing is missing."""
        if not missing:
            return True
        if slicer.app.testingEnabled():
            self.widget._status(f"Adapting needs {', '.join(missing)}: not installed in testing mode")
            return False
        if not slicer.util.confirmOkCancelDisplay(
                f"Adapting the model needs {', '.join(missing)} (Paddle and the ONNX exporter, a few hundred MB).\n"
                "Install now into Slicer's Python? (pip runs in the background.) For faster training on a CPU, "
                "'pip install torch' in Slicer's Python as well."):
            return False
        import tempfile

        requirements = os.path.join(tempfile.mkdtemp(prefix="eiseg_adapt_"), "requirements-adapt.txt")
        with open(requirements, "w", encoding="utf-8") as handle:
            handle.write("\n".join(missing) + "\n")
        self.widget._startInstall(requirements, then=self.onAdapt)
        return False

    @staticmethod
    def _text(array):
        data = array.data()
        return data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")

    def _readOutput(self):
        from EISegMed3DLib.adapt_runner import parse_progress

        for line in self._text(self.process.readAllStandardOutput()).splitlines():
            self.lines.append(line)
            parsed = parse_progress(line)
            if parsed is not None:
                self.bar.value, self.label.text = parsed
            elif line.strip():
                logging.info(f"EISegMed3D adapt: {line}")

    def _readErrors(self):
        text = self._text(self.process.readAllStandardError())
        self.errors = (self.errors + [part for part in text.replace("\r", "\n").splitlines() if part.strip()])[-40:]

    def onCancel(self):
        if self.process is None:
            return
        self.label.text = "Stopping after the current training step (a checkpoint is kept)..."
        self.cancelButton.enabled = False
        self.process.terminate()  # SIGTERM: the command stops after its step with a checkpoint
        process = self.process
        qt.QTimer.singleShot(60000, lambda: process.kill() if process is self.process else None)

    def cleanup(self):
        if self.process is not None:
            self.process.terminate()
            self.process.waitForFinished(30000)

    def _finished(self, code, status):
        from EISegMed3DLib.adapt_runner import package_from_output, read_result, result_text
        from inference.model_choice import remember_choice

        self._readOutput()
        folder, lines = self.folder, self.lines
        self.process = None
        self.button.enabled, self.cancelButton.enabled, self.bar.visible = True, False, False
        package = package_from_output(lines) if code == 0 else None
        if package is None:
            stopped = code == 130 or status == qt.QProcess.CrashExit
            self.label.text = ("Adaptation stopped: press the button again to resume it." if stopped else
                               "Adaptation failed: see the message.")
            if not stopped:
                slicer.util.errorDisplay("Adapting the model failed.", detailedText="\n".join(self.errors[-15:]))
            return
        result = read_result(package)
        text = result_text(result)
        self.label.text = text.splitlines()[-2]
        if not result.offer:
            slicer.util.infoDisplay(text, windowTitle="EISegMed3D: adapted model")
            return
        use = slicer.util.confirmYesNoDisplay(text, windowTitle="EISegMed3D: adapted model")
        self.widget._guard(remember_choice, folder, package, use)
        if use:
            self.useModel(str(package))

    def useModel(self, package):
        ui = self.widget.ui
        ui.defaultModelCheckBox.checked = False
        ui.modelPathLineEdit.currentPath = package
        self.widget.onLoadModel()

    def folderOpened(self, folder):
        """Load the adapted model the user chose for this folder, if any (remembered in its progress file)."""
        from inference.model_choice import chosen_model

        try:
            package = chosen_model(folder)
        except Exception as error:  # a malformed progress file is reported where the folder is read
            logging.warning(f"EISegMed3D: {error}")
            return
        if package is not None and self._modelInUse() != str(package):
            self.widget._status(f"Using the adapted model chosen for this folder: {package.name}")
            self.useModel(str(package))


class PromptController:
    """The Box / Lasso / Scribble buttons (issue 12): each starts drawing a prompt on one slice of any view for the
    selected segment; when Slicer ends the placement the prompt runs on the worker like a click (same busy guard,
    undo, outside-edit check). A prompt finished while the model runs waits for it. The Qt-free part (markups
    node, place mode, reading the prompt, which model takes which prompt) is EISegMed3DLib.prompt_placement."""

    BUTTONS = (("box", "promptBoxButton"), ("lasso", "promptLassoButton"), ("scribble", "promptScribbleButton"))

    def __init__(self, widget):
        self.widget = widget
        self.placement = None  # EISegMed3DLib.prompt_placement.PromptPlacement, made on first use (engine imports)
        self.pending = []  # (WorldPrompt, (volume, segmentation, segment ID)) waiting for the worker
        ui = widget.ui
        for kind, name in self.BUTTONS:
            getattr(ui, name).connect("clicked()",
                                      lambda kind=kind: self.toggle(kind, not ui.promptNegativeCheckBox.checked))
        self.updateButtons()

    def toggle(self, kind, positive):
        """Start drawing; the same button (or key) again while drawing that prompt cancels it."""
        if self.placement is not None and self.placement.kind == kind and self.placement.positive == positive:
            self.placement.cancel()
            return
        self.start(kind, positive)

    def start(self, kind, positive):
        w = self.widget
        if w.logic is None and not (w.ensureDependencies() and w._makeLogic()):
            return self.updateButtons()
        from EISegMed3DLib.prompt_placement import PromptPlacement, prompt_availability  # needs the engine's packages

        enabled, why = prompt_availability(w.logic, kind, positive)
        if not enabled:
            w._status(why)
            return self.updateButtons()
        try:
            w._target()  # a segment must be selected to draw for
        except RuntimeError as error:
            w._status(str(error))
            return self.updateButtons()
        if self.placement is None:
            app = slicer.app.applicationLogic()
            self.placement = PromptPlacement(slicer.mrmlScene, app.GetInteractionNode(), app.GetSelectionNode(),
                                             self._ended, defer=lambda fn: qt.QTimer.singleShot(0, fn))
        self.placement.start(kind, positive)
        w._status(why)
        self.updateButtons()

    def _ended(self, prompt, message):
        w = self.widget
        if message:
            w._status(message)
        self.updateButtons()
        if prompt is None:
            return
        try:
            target = w._target()  # the segment selected when the drawing ended, even if it runs later
        except RuntimeError as error:
            w._status(str(error))
            return
        self.pending.append((prompt, target))
        self.runPending()

    def runPending(self):
        """Run the next drawn prompt unless the worker or pip is busy (called again when a run is over)."""
        from EISegMed3DLib.prompts import planPrompt

        w = self.widget
        if not self.pending or w._run is not None or w._install is not None:
            return
        prompt, target = self.pending.pop(0)
        volume, seg, segment_id = target
        try:
            job = planPrompt(w.logic, volume, seg, segment_id, prompt)
        except Exception as error:  # e.g. the segment was removed meanwhile
            w._status(str(error))
            return
        w._status(f"Running the {prompt.kind}...")
        w._startRun(job.run, lambda outcome, cancelled: self._done(job, (prompt, target), outcome, cancelled))

    def _done(self, job, entry, outcome, cancelled):
        prompt, (volume, seg, _) = entry
        w = self.widget
        if outcome.error is not None or outcome.superseded or cancelled:
            w._clickDone(job, volume, seg, outcome, cancelled)  # the same recovery as a failed click
            return
        with slicer.util.RenderBlocker():
            written = w.logic.applyJob(job, outcome.result, volume, seg)
        if written is None:  # painted while the model ran: run the prompt again, on top of the edit
            self.pending.insert(0, entry)
            w._status(f"The segment was edited while the model ran: running the {prompt.kind} again on top of the edit")
            return
        result = outcome.result
        w._status(f"Last {prompt.kind}: {result.latency_s:.2f} s (model {result.model_s:.2f} s)")

    def updateButtons(self):
        """Enabled when the loaded model takes the prompt; the tooltip says how to draw it, or why not."""
        w, ui = self.widget, self.widget.ui
        drawing = self.placement.kind if self.placement is not None else None
        keys = {method: key for key, method, _ in SHORTCUTS}
        for kind, name in self.BUTTONS:
            button = getattr(ui, name)
            if w.logic is None or w.logic.session is None:
                enabled, why = False, "Load a model first (Model Settings -> Load Static Model)"
            else:
                from EISegMed3DLib.prompt_placement import prompt_availability

                enabled, why = prompt_availability(w.logic, kind)
            key = keys[f"on{kind.capitalize()}Prompt"]
            negative = keys.get(f"onNegative{kind.capitalize()}Prompt")
            button.enabled = enabled
            button.toolTip = why + (f" [{key}" + (f", negative {negative}]" if negative else "]") if enabled else "")
            button.checked = drawing == kind

    def cancel(self):
        """Scene close, leaving the module, reload: nothing drawn is kept or run."""
        self.pending = []
        if self.placement is not None:
            self.placement.cancel()


class EISegMed3DLogic(ScriptedLoadableModuleLogic):
    """For the Python console, without the module's widget (slicer.util.getModuleLogic needs the widget):

    import EISegMed3D
    logic = EISegMed3D.EISegMed3DLogic()
    logic.loadModel()
    logic.segment(volumeNode, segmentationNode, segmentId, positive=[(r, a, s)], negative=[])  # world RAS mm

    Other segments are left untouched here (no Segment Editor masking settings: set logic.editorNode to a
    vtkMRMLSegmentEditorNode to apply its overwrite and editable-area settings).
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
    """Drives the real widget end to end inside Slicer (model, folder, clicks, undo, save, progress), plus the
    behaviour only the application has: hover without a segment, a scene close during a run, the editor's undo,
    exit autosave, masking settings kept over a scene close, and the console example."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self._ensureDependencies()
        for test in (self.test_widget_end_to_end, self.test_hover_without_a_segment_opens_no_dialog,
                     self.test_scene_close_during_a_run_drops_the_result, self.test_masking_settings_survive_close,
                     self.test_console_example_without_the_widget, self.test_prompts_drawn_in_the_widget):
            self.setUp()
            test()

    def _ensureDependencies(self):
        """Testing mode never installs from the widget (nor does slicer.pydeps.pip_ensure, Slicer >= 5.11): the
        test installs what is missing itself, so it passes on a fresh Slicer 5.12 too."""
        needed = ("filelock", "onnxruntime", "SimpleITK", "scipy")
        if any(importlib.util.find_spec(name) is None for name in needed):
            slicer.util.pip_install(["-r", os.path.join(_HERE, "Resources", "requirements.txt")])
            importlib.invalidate_caches()

    def _widget(self):
        slicer.util.selectModule("EISegMed3D")
        widget = slicer.modules.EISegMed3DWidget
        self.assertTrue(widget._makeLogic(), "the engine's packages must import")
        return widget

    def _waitIdle(self, widget, timeout=120.0):
        """Test only: let the event loop run until the widget's model runs are over."""
        deadline = time.monotonic() + timeout
        while widget._run is not None or widget._again:
            self.assertLess(time.monotonic(), deadline, "the model run did not finish")
            slicer.app.processEvents()
            time.sleep(0.01)

    def _waitPrompt(self, widget, timeout=120.0):
        """Test only: let the event loop run until the drawn prompt was read (deferred) and its run is over."""
        deadline = time.monotonic() + timeout
        prompts = widget.prompts
        while prompts.placement.node is not None or prompts.pending or widget._run is not None or widget._again:
            self.assertLess(time.monotonic(), deadline, "the prompt did not run")
            slicer.app.processEvents()
            time.sleep(0.01)

    def _loadModel(self, widget):
        widget.ui.defaultModelCheckBox.checked = True  # the bundled model, whatever the saved settings say
        widget.ui.backendComboBox.currentText = "auto"
        widget.ui.deviceComboBox.currentText = "auto"
        widget.onLoadModel()
        self._waitIdle(widget)
        self.assertNotEqual(widget.logic.model, None, "the bundled model must load")

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

    def _openFolderWithSegment(self, widget):
        folder = self._make_folder()
        widget.onDataFolder(folder)
        volume, seg = widget.logic.volumeNode, widget.logic.segmentationNode
        segment_id = seg.GetSegmentation().AddEmptySegment("", "object")
        widget.ui.embeddedSegmentEditorWidget.setCurrentSegmentID(segment_id)
        ijk_to_ras = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijk_to_ras)
        return folder, volume, seg, segment_id, ijk_to_ras.MultiplyPoint((24, 24, 12, 1))[:3]

    def test_widget_end_to_end(self):
        self.delayDisplay("Starting EISegMed3D end-to-end test")
        widget = self._widget()
        self._loadModel(widget)
        folder, volume, seg, segment_id, point = self._openFolderWithSegment(widget)
        editor = widget.ui.embeddedSegmentEditorWidget
        widget.pointNodes[True].AddControlPointWorld(vtk.vtkVector3d(*point))
        self.assertIsNotNone(widget._run, "the click runs on the worker, the callback returned at once")
        self._waitIdle(widget)
        array = slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume)
        self.assertGreater(int(array.sum()), 0, "a positive click must paint the segment")
        editor.undo()  # the Segment Editor's own undo steps back over the click (saveStateForUndo before writes)
        self.assertEqual(int(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume).sum()), 0)
        editor.redo()
        self.assertGreater(int(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume).sum()), 0)
        widget.onUndo()
        self.assertEqual(int(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume).sum()), 0)
        widget.onRedo()
        for node in (*widget.pointNodes.values(), editor.mrmlSegmentEditorNode()):
            self.assertTrue(node.GetHideFromEditors() and not node.GetSaveWithScene())
        widget.exit()  # leaving the module autosaves
        self.assertTrue(os.path.exists(os.path.join(folder, "a_label.nii.gz")), "exit() must save the label")
        widget.enter()
        widget.onFinishScan()
        self.assertIn("Finished: 1 / Total: 2", widget.ui.progressLabel.text)
        self.delayDisplay("EISegMed3D end-to-end test passed")

    def test_prompts_drawn_in_the_widget(self):
        """Box / Lasso / Scribble: markups placed as Slicer's place mode leaves them, the end of placement as a
        right-click gives it, the result in the segment, undo and redo through the module; sagittal and coronal
        slices. The bundled model has no region input, so the box is refused (the box itself is covered headless
        in Testing/test_prompt_placement.py with a region model)."""
        widget = self._widget()
        self._loadModel(widget)
        folder, volume, seg, segment_id, point = self._openFolderWithSegment(widget)
        ui = widget.ui
        interaction = slicer.app.applicationLogic().GetInteractionNode()
        ijk_to_ras = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijk_to_ras)

        def ras(i, j, k):
            return vtk.vtkVector3d(*ijk_to_ras.MultiplyPoint((i, j, k, 1))[:3])

        def voxels(segment=segment_id):
            return int(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment, volume).sum())

        self.assertFalse(ui.promptBoxButton.enabled)
        self.assertIn("'region' input", ui.promptBoxButton.toolTip)
        widget.onBoxPrompt()
        self.assertIn("'region' input", ui.statusLabel.text)
        self.assertTrue(ui.promptLassoButton.enabled and ui.promptScribbleButton.enabled)

        widget.onLassoPrompt()  # positive lasso on the sagittal slice i = 24 around the bright block
        lasso = widget.prompts.placement.node
        self.assertTrue(lasso.IsA("vtkMRMLMarkupsClosedCurveNode") and ui.promptLassoButton.checked)
        self.assertEqual(interaction.GetCurrentInteractionMode(), interaction.Place)
        for j, k in ((17, 9), (31, 9), (31, 15), (17, 15)):
            lasso.AddControlPointWorld(ras(24, j, k))
        interaction.SwitchToViewTransformMode()  # what a right-click or double-click in the view does
        self._waitPrompt(widget)
        after_lasso = voxels()
        self.assertGreater(after_lasso, 0, "a positive lasso must paint the segment")
        self.assertIsNone(lasso.GetScene(), "the drawn markup is removed once read")
        self.assertFalse(ui.promptLassoButton.checked)

        widget.onNegativeScribblePrompt()  # a negative stroke across the block on the coronal slice j = 24
        stroke = widget.prompts.placement.node
        for i, k in ((17, 12), (24, 12), (31, 12)):
            stroke.AddControlPointWorld(ras(i, 24, k))
        interaction.SwitchToViewTransformMode()
        self._waitPrompt(widget)
        self.assertEqual([p.kind for p in widget.logic._current.applied], ["lasso", "scribble"])
        widget.onUndo()
        self.assertEqual(voxels(), after_lasso)
        widget.onUndo()
        self.assertEqual(voxels(), 0)
        widget.onRedo()
        self.assertEqual(voxels(), after_lasso)

        widget.onLassoPrompt()  # the point buttons take over: the unfinished lasso goes
        unfinished = widget.prompts.placement.node
        unfinished.AddControlPointWorld(ras(20, 20, 12))
        widget.setPositiveMode()
        self.assertIsNone(unfinished.GetScene())
        self.assertIn("cancelled", ui.statusLabel.text)

        widget.onFinishSegment()
        second = seg.GetSegmentation().AddEmptySegment("", "second")
        ui.embeddedSegmentEditorWidget.setCurrentSegmentID(second)
        widget.onScribblePrompt()  # a positive stroke along the block on the sagittal slice i = 20
        stroke = widget.prompts.placement.node
        for j, k in ((18, 10), (24, 12), (30, 14)):
            stroke.AddControlPointWorld(ras(20, j, k))
        interaction.SwitchToViewTransformMode()
        self._waitPrompt(widget)
        self.assertGreater(voxels(second), 0, "a positive scribble must paint the selected segment")
        self._boxInTheYellowView()

    def _boxInTheYellowView(self):
        """A box drawn in the application's own sagittal view, as its markups widget places the corners (preview,
        then click, in that view), is the rectangle of the two corners on that view's plane. Read only: the bundled
        model takes no box."""
        import numpy as np

        from EISegMed3DLib.prompt_placement import PromptPlacement

        app = slicer.app.applicationLogic()
        ended = []
        placement = PromptPlacement(slicer.mrmlScene, app.GetInteractionNode(), app.GetSelectionNode(),
                                    lambda prompt, message: ended.append((prompt, message)),
                                    defer=lambda fn: qt.QTimer.singleShot(0, fn))  # as the widget's
        yellow = slicer.app.layoutManager().sliceWidget("Yellow").mrmlSliceNode()
        xy_to_ras = yellow.GetXYToRAS()
        corners = [np.array(xy_to_ras.MultiplyPoint((x, y, 0, 1))[:3]) for x, y in ((20, 30), (90, 60))]
        roi = placement.start("box")
        display = roi.GetDisplayNode()
        for corner in corners:
            event = slicer.vtkMRMLInteractionEventData()
            event.SetWorldPosition(list(corner))
            index = display.UpdateActiveControlPointWorld(-1, event, [1, 0, 0, 0, 1, 0, 0, 0, 1], yellow.GetID(), "",
                                                          roi.PositionPreview)
            display.UpdateActiveControlPointWorld(index, event, [1, 0, 0, 0, 1, 0, 0, 0, 1], yellow.GetID(), "",
                                                  roi.PositionDefined)
        app.GetInteractionNode().SwitchToViewTransformMode()
        deadline = time.monotonic() + 10.0
        while not ended and time.monotonic() < deadline:
            slicer.app.processEvents()
        ((prompt, message),) = ended
        self.assertIsNone(message)
        points = np.array(prompt.points)
        slice_to_ras = yellow.GetSliceToRAS()
        normal = np.array([slice_to_ras.GetElement(r, 2) for r in range(3)])
        origin = np.array([slice_to_ras.GetElement(r, 3) for r in range(3)])
        self.assertLess(float(np.abs((points - origin) @ normal).max()), 1e-3, "the box lies on the sagittal slice")
        for corner in corners:
            self.assertLess(float(np.linalg.norm(points - corner, axis=1).min()), 1e-3, "a clicked corner")
        self.assertIsNone(roi.GetScene())

    def test_hover_without_a_segment_opens_no_dialog(self):
        widget = self._widget()
        shown = []
        original = slicer.util.errorDisplay
        slicer.util.errorDisplay = lambda *args, **kwargs: shown.append(args)
        try:
            widget.ui.embeddedSegmentEditorWidget.setCurrentSegmentID("")
            node = widget.pointNodes[True]
            for _ in range(5):  # the place preview point entering and leaving a view, as on mouse moves
                index = node.AddControlPoint(vtk.vtkVector3d(1.0, 2.0, 3.0))
                node.SetNthControlPointPosition(index, 1.0, 2.0, 3.0, node.PositionPreview)
                node.RemoveNthControlPoint(index)
            node.AddControlPoint(vtk.vtkVector3d(4.0, 5.0, 6.0))  # a real click, still without a segment
        finally:
            slicer.util.errorDisplay = original
        self.assertEqual(shown, [], "no modal dialog while hovering or clicking without a segment")
        self.assertIsNone(widget._run)
        self.assertTrue(widget.ui.statusLabel.text, "the reason is in the status line")
        widget.showClicks([])

    def test_scene_close_during_a_run_drops_the_result(self):
        widget = self._widget()
        self._loadModel(widget)
        folder, volume, seg, segment_id, point = self._openFolderWithSegment(widget)
        widget.pointNodes[True].AddControlPointWorld(vtk.vtkVector3d(*point))
        self.assertIsNotNone(widget._run)
        slicer.mrmlScene.Clear(0)  # File -> Close Scene while the model runs
        self._waitIdle(widget)
        self.assertIn("dropped", widget.ui.statusLabel.text)
        self.assertIsNone(widget.logic.segmentationNode)
        self.assertIsNotNone(widget.ui.embeddedSegmentEditorWidget.mrmlSegmentEditorNode())

    def test_masking_settings_survive_close(self):
        widget = self._widget()
        editorNode = widget.ui.embeddedSegmentEditorWidget.mrmlSegmentEditorNode()
        editorNode.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
        editorNode.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedOutsideAllSegments)
        slicer.mrmlScene.Clear(0)
        editorNode = widget.ui.embeddedSegmentEditorWidget.mrmlSegmentEditorNode()
        self.assertEqual(editorNode.GetOverwriteMode(), slicer.vtkMRMLSegmentEditorNode.OverwriteNone)
        self.assertEqual(editorNode.GetMaskMode(), slicer.vtkMRMLSegmentationNode.EditAllowedOutsideAllSegments)
        self.assertIs(widget.logic.editorNode, editorNode)
        editorNode.SetOverwriteMode(slicer.vtkMRMLSegmentEditorNode.OverwriteAllSegments)
        editorNode.SetMaskMode(slicer.vtkMRMLSegmentationNode.EditAllowedEverywhere)

    def test_console_example_without_the_widget(self):
        """The example of the README and of EISegMed3DLogic's docstring, as typed into the console."""
        import numpy as np

        import EISegMed3D as module

        logic = module.EISegMed3DLogic()
        logic.loadModel()
        volume = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "case01")
        array = np.random.default_rng(0).normal(100, 10, (24, 48, 48)).astype(np.float32)
        array[8:16, 16:32, 16:32] += 200
        slicer.util.updateVolumeFromArray(volume, array)
        seg = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode")
        seg.CreateDefaultDisplayNodes()
        seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        segment_id = seg.GetSegmentation().AddEmptySegment("L3")
        ijk_to_ras = vtk.vtkMatrix4x4()
        volume.GetIJKToRASMatrix(ijk_to_ras)
        result = logic.segment(volume, seg, segment_id, positive=[ijk_to_ras.MultiplyPoint((24, 24, 12, 1))[:3]])
        self.assertIsNotNone(result)
        self.assertGreater(int(slicer.util.arrayFromSegmentBinaryLabelmap(seg, segment_id, volume).sum()), 0)
