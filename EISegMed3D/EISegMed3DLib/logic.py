"""InteractiveSegmentationLogic: clicks on MRML nodes -> the engine -> the selected segment. No Qt here.

The scene is passed in (slicer.mrmlScene in Slicer, a vtkMRMLScene in tests). Model runs are split into
plan (main thread, reads MRML) -> job.run() (any thread, engine only) -> apply (main thread, writes MRML), so the
widget can run the middle part on the worker thread; `segment()` does all three in one call for scripts.
"""
from __future__ import annotations

import numpy as np

from inference.errors import SessionError
from . import clicks as click_store
from .geometry import engine_volume, full_box, scan_to_segmentation
from .prompts import engineItem
from .scan_io import ScanFolderMixin
from .segment_writer import apply_mask, read_segment
from .session_state import ClickJob, Target, click_runner, diff_box, digest


class InteractiveSegmentationLogic(ScanFolderMixin):
    def __init__(self, scene, editor_node=None, before_write=None):
        self.scene = scene
        self.editorNode = editor_node  # Segment Editor parameter node: its overwrite / editable-area settings apply
        # Called once before each write that changes a segment: in Slicer the Segment Editor's saveStateForUndo,
        # so the editor's Undo steps back over click results too.
        self.beforeWrite = before_write
        self.model = None
        self.session = None
        self.lastResult = None
        self._volume_key = None
        self._targets = {}
        self._current: Target | None = None
        self._init_folder()

    # --- model -------------------------------------------------------------------------------------------------
    def loadModel(self, path=None, paramsPath=None, backend="auto", device="auto", threads=None) -> str:
        """Load (and warm up) the bundled default, a model folder, or the original's .pdmodel + .pdiparams."""
        from inference import InteractiveSession, load_model

        model = load_model(path, backend=backend, device=device, threads=threads, params_path=paramsPath)
        self.model, self.session = model, InteractiveSession(model)
        self._volume_key, self._current, self._targets = None, None, {}
        return model.describe()

    def modelDescription(self) -> str:
        return self.model.describe() if self.model is not None else "no model loaded"

    # --- which segment ---------------------------------------------------------------------------------------
    def selectTarget(self, volumeNode, segmentationNode, segmentId) -> list:
        """Make this segment the one clicks edit; returns its clicks (world RAS) for the point lists."""
        if self.session is None:
            raise SessionError("no model loaded: load a model first")
        if segmentationNode.GetSegmentation().GetSegment(segmentId) is None:
            raise SessionError(f"segmentation {segmentationNode.GetName()} has no segment {segmentId!r}")
        volume_key = (volumeNode.GetID(), volumeNode.GetImageData().GetMTime() if volumeNode.GetImageData() else 0)
        if volume_key != self._volume_key:
            self.session.set_volume(engine_volume(volumeNode))
            self._volume_key, self._current = volume_key, None
        key = (volumeNode.GetID(), segmentationNode.GetID(), segmentId)
        if self._current is not None and self._current.key == key:
            self._follow_outside_edits(volumeNode, segmentationNode)
            return click_store.only_clicks(self._current.applied)
        target = self._targets.get(key)
        if target is None:
            segment = segmentationNode.GetSegmentation().GetSegment(segmentId)
            target = Target(key, None, click_store.read_tag(segment))
            self._targets[key] = target
        self._current = target
        self._reseed(target, self._segment_content(volumeNode, segmentationNode, segmentId))
        return click_store.only_clicks(target.applied)

    def clicks(self) -> list:
        """The clicks of the current segment (world RAS), without its other prompts (prompts.py)."""
        return click_store.only_clicks(self._current.applied) if self._current is not None else []

    def _segment_content(self, volumeNode, segmentationNode, segmentId) -> np.ndarray:
        shape = self.session.volume.shape
        return read_segment(segmentationNode, segmentId, scan_to_segmentation(volumeNode, segmentationNode), full_box(shape))

    def _reseed(self, target: Target, content: np.ndarray) -> None:
        """Continue from the segment as it is: refine an existing segment, or resume after an outside edit."""
        self.session.set_mask(content)
        target.seed, target.base, target.redo, target.digest = content, len(target.applied), [], digest(content)
        volumeNode, segmentationNode = self._nodes(target)
        target.mtime = labelmap_mtime(segmentationNode, target.key[2])

    def _follow_outside_edits(self, volumeNode, segmentationNode) -> None:
        """Reseed when the segment was edited with Segment Editor effects since our last write.

        The labelmap's modified time answers without reading the volume-sized segment on every click; only when
        it moved is the content read and compared.
        """
        target = self._current
        if labelmap_mtime(segmentationNode, target.key[2]) == target.mtime:
            return
        content = self._segment_content(volumeNode, segmentationNode, target.key[2])
        if digest(content) != target.digest:
            self._reseed(target, content)
        else:
            target.mtime = labelmap_mtime(segmentationNode, target.key[2])

    # --- clicks ----------------------------------------------------------------------------------------------
    def planClicks(self, volumeNode, segmentationNode, segmentId, positive=(), negative=()) -> ClickJob | None:
        """Compare the wanted points with those applied; None when nothing has to run."""
        self.selectTarget(volumeNode, segmentationNode, segmentId)
        target = self._current
        append_only, ordered = click_store.plan(target.applied, click_store.make_clicks(positive, negative))
        if append_only and len(ordered) == len(target.applied):
            return None
        as_ijk = [engineItem(volumeNode, c) for c in ordered]  # clicks, and boxes / lassos / scribbles kept in order
        mtime = labelmap_mtime(segmentationNode, segmentId)  # an edit while the job runs moves it
        if append_only:
            return ClickJob(target, ordered, click_runner(self.session, as_ijk[len(target.applied):], None), mtime)
        baked = sum(1 for c in target.applied[:target.base] if c in ordered)  # clicks already inside the seed
        target.base = baked
        return ClickJob(target, ordered, click_runner(self.session, as_ijk[baked:], target.seed), mtime)

    def applyJob(self, job: ClickJob, result, volumeNode, segmentationNode):
        """Write a finished job into its segment (main thread). Returns the result, or None when the segment was
        edited (e.g. painted with the Segment Editor) while the job ran: then nothing is written, the edit becomes
        the base of the segment, and planning the same points again runs the new clicks on top of it."""
        target = job.target
        segment_id = target.key[2]
        if self.scene.GetNodeByID(target.key[1]) is not segmentationNode or \
                segmentationNode.GetSegmentation().GetSegment(segment_id) is None:
            self.forgetTargets()
            raise SessionError(f"segment {segment_id!r} was removed while the model ran: the result was dropped")
        if labelmap_mtime(segmentationNode, segment_id) != job.mtime:
            self._reseed(target, self._segment_content(volumeNode, segmentationNode, segment_id))
            return None
        target.applied, target.redo = list(job.ordered), []
        self._write(target, result.box, volumeNode, segmentationNode)
        self.lastResult = result
        self._clicks_since_save += result.clicks
        return result

    def jobFailed(self, job: ClickJob, volumeNode, segmentationNode) -> None:
        """After an error the session holds the segment's mask again; keep the click list in step."""
        content = self._segment_content(volumeNode, segmentationNode, job.target.key[2])
        self._reseed(job.target, content)

    def segment(self, volumeNode, segmentationNode, segmentId, positive=(), negative=()):
        """Run the points (world RAS) on the segment and write the result; returns the JobResult or None."""
        job = self.planClicks(volumeNode, segmentationNode, segmentId, positive, negative)
        return None if job is None else self.runJob(job, volumeNode, segmentationNode)

    def runJob(self, job: ClickJob, volumeNode, segmentationNode):
        """Run a planned job on this thread and write it (scripts, tests; the widget uses the worker thread)."""
        try:
            result = job.run()
        except Exception:
            self.jobFailed(job, volumeNode, segmentationNode)
            raise
        return self.applyJob(job, result, volumeNode, segmentationNode)

    def _write(self, target: Target, box, volumeNode, segmentationNode) -> None:
        if any(s.stop <= s.start for s in box):
            return
        segment_id = target.key[2]
        to_seg = scan_to_segmentation(volumeNode, segmentationNode)
        apply_mask(segmentationNode, segment_id, to_seg, box, self.session.mask[box], self.editorNode,
                   self.session.volume.array, self.beforeWrite)
        target.digest, target.mtime = "", labelmap_mtime(segmentationNode, segment_id)  # content read only if it moves
        click_store.write_tag(segmentationNode.GetSegmentation().GetSegment(segment_id), target.applied)

    # --- undo / redo / reset -----------------------------------------------------------------------------------
    def _nodes(self, target: Target):
        return self.scene.GetNodeByID(target.key[0]), self.scene.GetNodeByID(target.key[1])

    def canUndo(self) -> bool:
        return self._current is not None and self.session.can_undo and len(self._current.applied) > self._current.base

    def canRedo(self) -> bool:
        return self._current is not None and self.session.can_redo and bool(self._current.redo)

    def undo(self):
        """Undo the last click of the current segment (the point list follows: see clicks())."""
        if not self.canUndo():
            raise SessionError("nothing to undo for this segment")
        target = self._current
        result = self.session.undo()
        target.redo.append(target.applied.pop())
        self._write(target, result.changed_box, *self._nodes(target))
        return result

    def redo(self):
        if not self.canRedo():
            raise SessionError("nothing to redo for this segment")
        target = self._current
        result = self.session.redo()
        target.applied.append(target.redo.pop())
        self._write(target, result.changed_box, *self._nodes(target))
        return result

    def resetObject(self) -> None:
        """Drop the current segment's clicks and give it back the content it had before them."""
        target = self._current
        if target is None:
            return
        before = self.session.mask.copy()
        self.session.set_mask(target.seed)
        target.applied, target.redo, target.base = [], [], 0
        self._write(target, diff_box(before, self.session.mask), *self._nodes(target))
        click_store.write_tag(self._nodes(target)[1].GetSegmentation().GetSegment(target.key[2]), [])

    def finishSegment(self) -> int:
        """The object is done: forget its clicks (the segment keeps its content). Returns how many it had."""
        target = self._current
        if target is None:
            return 0
        count = len(target.applied)
        segmentation_node = self._nodes(target)[1]
        if segmentation_node is not None:
            click_store.write_tag(segmentation_node.GetSegmentation().GetSegment(target.key[2]), [])
        self._targets.pop(target.key, None)
        self._current = None
        return count

    def forgetTargets(self) -> None:
        """Called when nodes go away (scan switch, scene close): no state may point at removed nodes."""
        self._targets, self._current, self._volume_key = {}, None, None


def labelmap_mtime(segmentationNode, segmentId) -> int:
    segment = segmentationNode.GetSegmentation().GetSegment(segmentId) if segmentationNode is not None else None
    image = segment.GetRepresentation("Binary labelmap") if segment is not None else None
    return image.GetMTime() if image is not None else -1
