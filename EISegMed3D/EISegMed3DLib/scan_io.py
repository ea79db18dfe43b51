"""Data-folder work for the logic: open / switch / finish scans, load and save labels, keep the progress file.

Scans are read with the engine's reader (inference.volume.Volume), so Slicer and the engine see the same grid.
Only nodes created here are ever removed.
"""
from __future__ import annotations

import time

import slicer
from inference.datafolder import load_label, save_label
from inference.volume import Volume
from .folder_navigator import FolderNavigator
from .geometry import engine_volume, to_vtk
from .labels import add_label_segments, label_from_segments


class ScanFolderMixin:
    def _init_folder(self) -> None:
        self.navigator: FolderNavigator | None = None
        self.volumeNode = None
        self.segmentationNode = None
        self._scan_volume: Volume | None = None
        self._created: list = []  # IDs of nodes this logic added (the only ones it may remove)
        self._clicks_since_save = 0
        self._opened_at = time.monotonic()
        self._saved_state = None

    # --- folder and scans --------------------------------------------------------------------------------------
    def openFolder(self, folder, skipFinished: bool = True, recursive: bool = False):
        """Open a data folder at the scan where the user left off; returns (volumeNode, segmentationNode)."""
        self.closeScan(save=True)
        self.navigator = FolderNavigator(folder, recursive=recursive)
        return self.openScan(self.navigator.start_index(skipFinished))

    def openScan(self, index: int):
        """Save the open scan, then load scan `index` with its label (if any) into new nodes."""
        nav = self.navigator
        volume = Volume.from_file(nav.scan(index))  # read first: a bad file leaves the open scan as it is
        self.closeScan(save=True)
        nav.index = index
        name = nav.key(index).replace("/", "_")
        volume_node = self._add_node("vtkMRMLScalarVolumeNode", name)
        slicer.util.updateVolumeFromArray(volume_node, volume.array)
        volume_node.SetIJKToRASMatrix(to_vtk(volume.ijk_to_ras))
        segmentation_node = self._add_node("vtkMRMLSegmentationNode", name + " segmentation")
        segmentation_node.SetReferenceImageGeometryParameterFromVolumeNode(volume_node)
        for node in (volume_node, segmentation_node):
            node.CreateDefaultDisplayNodes()
        if nav.label(index).exists():
            add_label_segments(segmentation_node, volume_node, load_label(volume, nav.label(index)),
                               nav.progress.label_table())
        self.volumeNode, self.segmentationNode, self._scan_volume = volume_node, segmentation_node, volume
        self._clicks_since_save, self._opened_at = 0, time.monotonic()
        self._saved_state = self._content_state()
        nav.progress.set_left_off(nav.key(index))
        return volume_node, segmentation_node

    def nextScan(self, skipFinished: bool = True):
        return self._step(+1, skipFinished)

    def previousScan(self, skipFinished: bool = True):
        return self._step(-1, skipFinished)

    def _step(self, step: int, skip_finished: bool):
        """Open the neighbouring scan; None (and the current scan stays open) at either end of the list."""
        index = self.navigator.neighbour(step, skip_finished)
        return None if index is None else self.openScan(index)

    def finishScan(self, skipFinished: bool = True):
        """Save the label, mark the scan finished and open the next one (None when none is left)."""
        self.saveLabel()
        self.navigator.progress.mark_finished(self.navigator.key())
        return self.nextScan(skipFinished)

    def setScanFinished(self, index: int, finished: bool) -> None:
        self.navigator.progress.mark_finished(self.navigator.key(index), finished)

    # --- labels ------------------------------------------------------------------------------------------------
    def saveLabel(self):
        """Write `<scan>_label.nii.gz` on the scan grid (atomic, backup kept), the label table and the progress."""
        nav = self.navigator
        if nav is None or nav.index is None or self.segmentationNode is None:
            return None
        volume = engine_volume(self.volumeNode, path=nav.scan())
        label, table = label_from_segments(self.segmentationNode, self.volumeNode, nav.progress.label_table())
        path = save_label(volume, label, nav.label())
        if table != nav.progress.label_table():
            nav.progress.set_labels(table)
        seconds = time.monotonic() - self._opened_at
        nav.progress.record_scan(nav.key(), clicks=self._clicks_since_save, seconds=seconds)
        self._clicks_since_save, self._opened_at = 0, time.monotonic()
        self._saved_state = self._content_state()
        return path

    def _content_state(self):
        """A cheap fingerprint of the segmentation's content (modified times and segment list)."""
        node = self.segmentationNode
        if node is None:
            return None
        segmentation = node.GetSegmentation()
        times = []
        for segment_id in segmentation.GetSegmentIDs():
            image = segmentation.GetSegment(segment_id).GetRepresentation("Binary labelmap")
            times.append((segment_id, segmentation.GetSegment(segment_id).GetName(), image.GetMTime() if image else 0))
        return tuple(times)

    def labelNeedsSaving(self) -> bool:
        return self.segmentationNode is not None and (self._content_state() != self._saved_state or self._clicks_since_save > 0)

    def autosave(self):
        """Save when something changed (scan switch, scene close, module cleanup, timer)."""
        return self.saveLabel() if self.labelNeedsSaving() else None

    # --- nodes -------------------------------------------------------------------------------------------------
    def _add_node(self, class_name: str, name: str):
        node = self.scene.AddNewNodeByClass(class_name, name)
        self._created.append(node.GetID())
        return node

    def closeScan(self, save: bool = True) -> None:
        """Autosave, then remove the nodes this logic created for the scan (and nothing else)."""
        if save and self.navigator is not None:
            self.autosave()
        self.forgetTargets()
        for node_id in self._created:
            node = self.scene.GetNodeByID(node_id)
            if node is not None:
                self.scene.RemoveNode(node)
        self._created = []
        self.volumeNode = self.segmentationNode = self._scan_volume = None
