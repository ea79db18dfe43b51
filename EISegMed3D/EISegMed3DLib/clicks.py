"""The clicks of one segment: world RAS points with a sign, kept in a segment tag so a segment can be resumed."""
from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np
import vtk

CLICKS_TAG = "EISegMed3D.clicks"
SAME_POINT_MM = 1e-3  # a control point that moved less than this is the same click


class WorldClick(NamedTuple):
    ras: tuple  # world RAS mm
    positive: bool


def make_clicks(positive=(), negative=()) -> list:
    return [WorldClick(tuple(float(v) for v in p), True) for p in positive] + \
           [WorldClick(tuple(float(v) for v in p), False) for p in negative]


def _same(a: WorldClick, b: WorldClick) -> bool:
    return a.positive == b.positive and np.linalg.norm(np.subtract(a.ras, b.ras)) < SAME_POINT_MM


def plan(applied: list, wanted: list) -> tuple:
    """Compare the clicks already applied with the points now wanted.

    Returns (append_only, ordered): when every applied click is still there unchanged, `ordered` is the applied
    list plus the new points (only those need to run); otherwise a point was moved or deleted and `ordered`
    (surviving clicks in their old order, then new points) must be replayed from the seed.
    """
    remaining = list(wanted)
    kept = []
    for click in applied:
        if not isinstance(click, WorldClick):  # a box, lasso or scribble (prompts.py): not in the point lists, kept
            kept.append(click)
            continue
        match = next((w for w in remaining if _same(w, click)), None)
        if match is not None:
            remaining.remove(match)
            kept.append(click)
    return len(kept) == len(applied), kept + remaining


def only_clicks(applied: list) -> list:
    """The clicks of an applied list that may also hold other prompts."""
    return [c for c in applied if isinstance(c, WorldClick)]


def read_tag(segment) -> list:
    """Clicks stored on a segment (empty when none or unreadable: a damaged tag must not block editing)."""
    text = vtk.reference("")
    if segment is None or not segment.GetTag(CLICKS_TAG, text):
        return []
    try:
        return [WorldClick(tuple(float(v) for v in c["ras"]), bool(c["positive"])) for c in json.loads(str(text))]
    except (ValueError, TypeError, KeyError):
        return []


def write_tag(segment, clicks: list) -> None:
    if segment is None:
        return
    clicks = only_clicks(clicks)  # other prompts are not kept in the tag (the segment holds their result)
    if clicks:
        segment.SetTag(CLICKS_TAG, json.dumps([{"ras": list(c.ras), "positive": c.positive} for c in clicks]))
    else:
        segment.RemoveTag(CLICKS_TAG)


def defined_points(node) -> list:
    """World RAS of the placed points of a markups node: in place mode the point following the mouse is a
    control point in "preview" state, which is not a click."""
    return [tuple(node.GetNthControlPointPositionWorld(n)) for n in range(node.GetNumberOfControlPoints())
            if node.GetNthControlPointPositionStatus(n) == node.PositionDefined]


class PointsWatch:
    """Tells real point changes from the place preview's comings and goings.

    Slicer adds a preview control point while the mouse is over a view in place mode and removes it (firing
    PointRemovedEvent) whenever the mouse leaves the view; only a change of the placed points may start a run.
    """

    def __init__(self):
        self._seen = None

    def changed(self, nodes) -> bool:
        """Whether the placed points differ from when this was last asked (or last `reset`)."""
        now = tuple(tuple(defined_points(node)) for node in nodes)
        if now == self._seen:
            return False
        self._seen = now
        return True

    def reset(self, nodes) -> None:
        """Take the points as they are now as seen (after the module itself filled the lists)."""
        self._seen = tuple(tuple(defined_points(node)) for node in nodes)
