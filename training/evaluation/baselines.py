"""Classic seeded segmenters driven by the same simulated clicks as the engine.

Both baselines have the engine session's interface (set_volume, add_click(ijk=, positive=) -> ClickResult), so
the evaluation loop drives all methods identically. Every click adds a seed ball (3 mm radius, at least one
voxel); positive clicks seed the object (label 1), negative clicks and the faces of the region the algorithm
runs on seed the background (label 2). The region is the box around all clicks padded by `pad_mm`: Slicer's
"Grow from seeds" likewise works on the seeds' extent plus a margin, and a whole 380x380x77 scan per click
would measure the crop size, not the method. Each click recomputes from all seeds, as Slicer does.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from inference.clickmaps import draw_ball
from inference.mask_ops import bounding_box
from inference.session import ClickResult

OBJECT, BACKGROUND = 1, 2
SEED_RADIUS_MM = 3.0
PAD_MM = 30.0


class SeededSegmenter:
    """Clicks -> seed label map on a padded box around the clicks -> `_segment` -> full-grid mask."""

    name = "seeded"
    face_layers = 1  # voxel layers on each face of the region seeded as background

    def __init__(self, pad_mm: float = PAD_MM, seed_radius_mm: float = SEED_RADIUS_MM):
        self.pad_mm = pad_mm
        self.seed_radius_mm = seed_radius_mm
        self.volume = None
        self.mask = None
        self.clicks: list[tuple[np.ndarray, bool]] = []

    def set_volume(self, volume) -> None:
        self.volume = volume
        self.mask = np.zeros(volume.shape, dtype=np.uint8)
        self.clicks = []

    def add_click(self, ijk=None, positive: bool = True) -> ClickResult:
        started = time.perf_counter()
        self.clicks.append((np.asarray(ijk, dtype=np.float64)[::-1], bool(positive)))
        box = self._region()
        seeds = self._seeds(box)
        image = np.nan_to_num(self.volume.array[box].astype(np.float32))
        tick = time.perf_counter()
        inside = self._segment(image, seeds, self.volume.spacing[::-1])
        algorithm_s = time.perf_counter() - tick
        before = self.mask
        self.mask = np.zeros(self.volume.shape, dtype=np.uint8)
        self.mask[box] = inside
        changed = bounding_box(before != self.mask) or tuple(slice(0, 0) for _ in range(3))
        return ClickResult(self.mask, changed, time.perf_counter() - started, algorithm_s, 1)

    def _region(self) -> tuple:
        """(k, j, i) slices: the clicks' bounding box padded by pad_mm, clipped to the scan."""
        points = np.array([p for p, _ in self.clicks])
        pad = np.ceil(self.pad_mm / self.volume.spacing[::-1]).astype(int)
        lo = np.maximum(np.floor(points.min(axis=0)).astype(int) - pad, 0)
        hi = np.minimum(np.ceil(points.max(axis=0)).astype(int) + pad + 1, self.volume.shape)
        return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))

    def _seeds(self, box: tuple) -> np.ndarray:
        shape = tuple(s.stop - s.start for s in box)
        seeds = np.zeros(shape, dtype=np.uint8)
        _mark_faces(seeds, BACKGROUND, self.face_layers)
        spacing = np.asarray(self.volume.spacing[::-1], dtype=np.float64)
        radius = max(self.seed_radius_mm, float(spacing.min()))
        origin = np.array([s.start for s in box])
        for label in (BACKGROUND, OBJECT):  # object balls last: a click overrides the face seeds
            ball = np.zeros(shape, dtype=np.float32)
            for point, positive in self.clicks:
                if positive == (label == OBJECT):
                    draw_ball(ball, point - origin, radius, spacing)
                    ball[tuple(np.clip(np.round(point - origin).astype(int), 0, np.array(shape) - 1))] = 1
            seeds[ball > 0] = label
        return seeds

    def _segment(self, image: np.ndarray, seeds: np.ndarray, spacing_kji) -> np.ndarray:
        raise NotImplementedError


def _mark_faces(seeds: np.ndarray, value: int, layers: int) -> None:
    for axis in range(3):
        index = [slice(None)] * 3
        index[axis] = slice(0, layers)
        seeds[tuple(index)] = value
        index[axis] = slice(seeds.shape[axis] - layers, seeds.shape[axis])
        seeds[tuple(index)] = value


class GrowCutSegmenter(SeededSegmenter):
    """3D Slicer's "Grow from seeds" (vtkImageGrowCutSegment from slicer-core)."""

    name = "growcut"
    face_layers = 2  # the filter never grows from the outermost voxel layer: seed the second one too

    def __init__(self, pad_mm: float = PAD_MM, seed_radius_mm: float = SEED_RADIUS_MM, distance_penalty: float = 0.0):
        super().__init__(pad_mm, seed_radius_mm)
        self.distance_penalty = distance_penalty  # Slicer's "seed locality", 0 by default there too
        import slicer  # noqa: F401  slicer-core loads here (seconds, once), not inside the first timed click

    def _segment(self, image, seeds, spacing_kji):
        import slicer

        grow = slicer.vtkImageGrowCutSegment()
        grow.SetIntensityVolume(_to_vtk(image, spacing_kji))
        grow.SetSeedLabelVolume(_to_vtk(seeds, spacing_kji))
        grow.SetDistancePenalty(self.distance_penalty)
        grow.Update()
        from vtk.util import numpy_support

        labels = numpy_support.vtk_to_numpy(grow.GetOutput().GetPointData().GetScalars()).reshape(image.shape)
        return (labels == OBJECT).astype(np.uint8)


class RandomWalkerSegmenter(SeededSegmenter):
    """scikit-image's random walker on the same region and seeds."""

    name = "random_walker"

    def __init__(self, pad_mm: float = PAD_MM, seed_radius_mm: float = SEED_RADIUS_MM, beta: float = 130.0):
        super().__init__(pad_mm, seed_radius_mm)
        self.beta = beta

    def _segment(self, image, seeds, spacing_kji):
        from skimage.segmentation import random_walker

        lo, hi = np.percentile(image, (0.5, 99.5))
        data = np.clip((image - lo) / max(hi - lo, 1e-6), 0.0, 1.0)  # beta is tuned for [0, 1] intensities
        with warnings.catch_warnings():  # "probability range outside [0, 1]": round-off of the iterative solver
            warnings.simplefilter("ignore", UserWarning)
            labels = random_walker(data, seeds.astype(np.int32), beta=self.beta, mode="cg_j", tol=1e-3,
                                   spacing=tuple(float(s) for s in spacing_kji))
        return (labels == OBJECT).astype(np.uint8)


def _to_vtk(array_kji: np.ndarray, spacing_kji):
    """vtkImageData on the array's grid (VTK orders x=i fastest, which is C order of [k, j, i])."""
    import vtk
    from vtk.util import numpy_support

    image = vtk.vtkImageData()
    image.SetDimensions(array_kji.shape[2], array_kji.shape[1], array_kji.shape[0])
    image.SetSpacing(*(float(s) for s in spacing_kji[::-1]))
    scalars = numpy_support.numpy_to_vtk(np.ascontiguousarray(array_kji).ravel(), deep=True)
    image.GetPointData().SetScalars(scalars)
    return image


BASELINES = {"growcut": GrowCutSegmenter, "random_walker": RandomWalkerSegmenter}
