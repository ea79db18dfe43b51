"""Markups as prompts beyond clicks: a ROI (box), a closed curve (lasso), a curve or line (scribble). No Qt here.

Markups are read in world RAS (through their parent transforms) on the main thread and turned into engine calls
on the scan's voxel grid, so the worker thread never touches MRML. A prompt joins the segment's applied list like
a click: undo / redo, replay after a moved click and outside-edit detection work the same way (logic.py).

    prompt = promptFromMarkup(roiNode)                  # or closed curve / curve / line, positive=False for a stroke
    result = runPrompt(logic, volumeNode, segmentationNode, segmentId, prompt)
    logic.undo()
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from inference.errors import ClickError
from inference.session import InteractiveSession
from .clicks import WorldClick
from .geometry import to_numpy, world_to_ijk
from .session_state import ClickJob, click_runner

KINDS = ("box", "lasso", "scribble")


@dataclass(frozen=True)
class WorldPrompt:
    """A box (its 4 rectangle corners, in order), a lasso (its outline) or a scribble (its stroke), world RAS."""

    kind: str
    points: tuple  # ((r, a, s), ...)
    positive: bool = True


def boxFromROI(roiNode) -> WorldPrompt:
    """The rectangle on the ROI's mid plane across its thinnest side (a ROI drawn flat on a slice is that slice's
    rectangle), edges along the ROI's axes, in world RAS."""
    object_to_world = to_numpy(roiNode.GetObjectToWorldMatrix())
    size = np.array(roiNode.GetSize(), dtype=np.float64)
    world_size = size * np.linalg.norm(object_to_world[:3, :3], axis=0)
    thin = int(np.argmin(world_size))
    first, second = [a for a in range(3) if a != thin]
    if size[first] <= 0 or size[second] <= 0:
        raise ClickError(f"{roiNode.GetName()}: ROI of size {size.tolist()} spans no rectangle")
    if world_size[thin] > 0 and min(world_size[first], world_size[second]) <= world_size[thin] * (1 + 1e-6):
        # Slicer pads a ROI drawn on a slice to its shorter side: then two sides tie and either could be the slice
        raise ClickError(f"{roiNode.GetName()}: ROI of size {size.tolist()} has no single thinnest side, so its slice "
                         "plane is unknown: set its size across the slice to 0, or draw it with the module's Box button")
    corners = []  # in object coordinates the ROI is centred on the origin, along its own axes
    for du, dv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        offset = np.zeros(4)
        offset[first], offset[second], offset[3] = du * size[first] / 2, dv * size[second] / 2, 1.0
        corners.append(object_to_world @ offset)
    return WorldPrompt("box", tuple(tuple(float(v) for v in c[:3]) for c in corners))


def lassoFromClosedCurve(curveNode, positive: bool = True) -> WorldPrompt:
    """The closed curve as displayed (its interpolated points, world RAS) as a filled contour."""
    points = _curve_points_world(curveNode)
    if len(points) < 3:
        raise ClickError(f"{curveNode.GetName()}: a lasso needs at least 3 points, the curve has {len(points)}")
    return WorldPrompt("lasso", points, bool(positive))


def scribbleFromCurve(curveNode, positive: bool = True) -> WorldPrompt:
    """An open curve (as displayed) or a line markup as a stroke."""
    points = _curve_points_world(curveNode)
    if not points:
        raise ClickError(f"{curveNode.GetName()}: the curve has no points yet")
    return WorldPrompt("scribble", points, bool(positive))


def promptFromMarkup(markupNode, positive: bool = True) -> WorldPrompt:
    """ROI -> box, closed curve -> lasso, curve or line -> scribble."""
    if markupNode.IsA("vtkMRMLMarkupsROINode"):
        return boxFromROI(markupNode)
    if markupNode.IsA("vtkMRMLMarkupsClosedCurveNode"):
        return lassoFromClosedCurve(markupNode, positive)
    if markupNode.IsA("vtkMRMLMarkupsCurveNode") or markupNode.IsA("vtkMRMLMarkupsLineNode"):
        return scribbleFromCurve(markupNode, positive)
    raise ClickError(f"{markupNode.GetName()}: a {markupNode.GetClassName()} is not a prompt "
                     "(use a ROI for a box, a closed curve for a lasso, a curve or line for a scribble)")


def _curve_points_world(node) -> tuple:
    if node.IsA("vtkMRMLMarkupsCurveNode"):  # closed curves too: the interpolated curve the user sees
        curve = node.GetCurvePointsWorld()
        if curve is not None and curve.GetNumberOfPoints() > 0:
            points = [curve.GetPoint(n) for n in range(curve.GetNumberOfPoints())]
            if node.IsA("vtkMRMLMarkupsClosedCurveNode") and len(points) > 1 and np.allclose(points[0], points[-1]):
                points = points[:-1]  # the closing point repeats the first
            return tuple(tuple(float(v) for v in p) for p in points)
    points = []
    for n in range(node.GetNumberOfControlPoints()):
        if node.GetNthControlPointPositionStatus(n) == node.PositionDefined:
            position = [0.0, 0.0, 0.0]
            node.GetNthControlPointPositionWorld(n, position)
            points.append(tuple(position))
    return tuple(points)


# --- into the engine ------------------------------------------------------------------------------------------

def engineItem(volumeNode, entry):
    """A click or prompt of a segment's applied list as the worker's job item (read on the main thread): a click as
    (ijk, positive), a prompt as a call taking the session."""
    if isinstance(entry, WorldClick):
        return tuple(world_to_ijk(volumeNode, entry.ras)), entry.positive
    ijk = [tuple(float(v) for v in world_to_ijk(volumeNode, p)) for p in entry.points]
    if entry.kind == "box":
        return partial(InteractiveSession.add_box, ijk=(ijk[0], ijk[2]), plane=(ijk[0], ijk[1], ijk[3]))
    if entry.kind == "lasso":
        return partial(InteractiveSession.add_lasso, ijk=ijk, positive=entry.positive)
    if entry.kind == "scribble":
        return partial(InteractiveSession.add_scribble, ijk=ijk, positive=entry.positive)
    raise ClickError(f"unknown prompt kind {entry.kind!r} (one of {KINDS})")


def planPrompt(logic, volumeNode, segmentationNode, segmentId, prompt: WorldPrompt) -> ClickJob:
    """A job adding `prompt` to the segment's clicks and prompts (run it on the worker, then logic.applyJob)."""
    from .logic import labelmap_mtime

    logic.selectTarget(volumeNode, segmentationNode, segmentId)
    target = logic._current
    item = engineItem(volumeNode, prompt)
    return ClickJob(target, list(target.applied) + [prompt], click_runner(logic.session, [item], None),
                    labelmap_mtime(segmentationNode, segmentId))


def runPrompt(logic, volumeNode, segmentationNode, segmentId, prompt: WorldPrompt):
    """Plan, run and write one prompt in one call (scripts, tests); returns the JobResult or None (see applyJob)."""
    return logic.runJob(planPrompt(logic, volumeNode, segmentationNode, segmentId, prompt), volumeNode, segmentationNode)
