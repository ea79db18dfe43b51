"""Prompts for `eiseg-med3d segment` beyond clicks: --box, --box-ras, --lasso-file, --scribble-file.

    --box I,J,K,I,J,K        two opposite corners in voxel indices sharing one index (the slice), e.g. same k
    --box-ras R,A,S,R,A,S    the same in RAS mm (the plane: the voxel index the two corners share)
    --box FILE.json          a Slicer ROI markup (.mrk.json; the box on its mid plane across its thinnest side),
                             a line markup (two opposite corners) or a simple JSON file (below)
    --lasso-file FILE[:-]    a closed curve markup (.mrk.json) or simple JSON: a filled contour on one plane
    --scribble-file FILE[:-] a curve or line markup (.mrk.json) or simple JSON: a stroke; ':-' makes it negative

Markup files hold LPS or RAS per their "coordinateSystem"; both are read. A curve is taken through its control
points as a polyline (Slicer draws a smooth curve through them; place points densely on tight bends). A file with
several markups gives several prompts, in order.

Simple JSON: one object or a list of objects, "coordinates" "ras" (default), "lps" or "ijk":
    {"coordinates": "ijk", "points": [[i, j, k], ...], "positive": true}          lasso or scribble
    {"coordinates": "ras", "corners": [[r, a, s], [r, a, s]], "normal": [0, 0, 1]}  box ("normal" or
    "plane": three points, optional when the corners share a voxel index)
"""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ClickError

LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
KINDS = ("box", "box-ras", "lasso-file", "scribble-file")
_MARKUP_TYPES = {"box": ("ROI", "Line"), "lasso": ("ClosedCurve",), "scribble": ("Curve", "Line")}


@dataclass
class PromptCall:
    """One session call: `getattr(session, method)(**kwargs)`; `source` names where it came from in messages."""

    method: str  # add_click, add_box, add_lasso, add_scribble
    kwargs: dict = field(default_factory=dict)
    source: str = ""

    @property
    def what(self) -> str:
        return self.method.removeprefix("add_")


class _PromptAction(argparse.Action):
    """Appends to the same list as --click, so prompts and clicks run in the order given."""

    def __call__(self, parser, namespace, value, option_string=None):
        clicks = getattr(namespace, "clicks", None) or []
        clicks.append((option_string.lstrip("-"), value))
        namespace.clicks = clicks


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--box", action=_PromptAction, dest="clicks", metavar="I,J,K,I,J,K|FILE.json",
                        help="a box around the object on one slice: two opposite corners (voxel indices sharing "
                             "the slice index) or a markup / JSON file (repeatable)")
    parser.add_argument("--box-ras", action=_PromptAction, dest="clicks", metavar="R,A,S,R,A,S",
                        help="a box by two opposite corners in RAS mm (repeatable)")
    parser.add_argument("--lasso-file", action=_PromptAction, dest="clicks", metavar="FILE[:-]",
                        help="closed curve markup (.mrk.json) or JSON: a filled contour on one slice (repeatable)")
    parser.add_argument("--scribble-file", action=_PromptAction, dest="clicks", metavar="FILE[:-]",
                        help="curve / line markup (.mrk.json) or JSON: a stroke; ':-' makes it negative (repeatable)")


def prompt_calls(kind: str, text: str) -> list[PromptCall]:
    """The session calls for one --box / --box-ras / --lasso-file / --scribble-file value."""
    if kind in ("box", "box-ras") and not text.strip().lower().endswith(".json"):
        return [_inline_box(text, "ras" if kind == "box-ras" else "ijk")]
    if kind == "box-ras":
        raise ClickError(f"--box-ras {text!r}: expected six numbers r,a,s,r,a,s (give files with --box)")
    path, positive = _sign_suffix(text) if kind != "box" else (text, True)
    return read_prompt_file(Path(path), {"box": "box", "lasso-file": "lasso", "scribble-file": "scribble"}[kind], positive)


def check_inside(volume, call: PromptCall) -> None:
    """Every point of the prompt inside the scan (checked before the model loads)."""
    for coords in ("ijk", "ras"):
        if call.kwargs.get(coords) is None:
            continue
        points = np.asarray(call.kwargs[coords], dtype=np.float64).reshape(-1, 3)
        for number, point in enumerate(points, start=1):
            ijk = volume.ras_to_ijk_point(point) if coords == "ras" else point
            if not volume.contains_ijk(ijk):
                raise ClickError(f"{call.source}: point {number} = voxel (i, j, k) ({', '.join(f'{v:.6g}' for v in ijk)}) "
                                 f"is outside the scan {volume.path} of size (i, j, k) {volume.shape[::-1]}")


def describe(call: PromptCall, session, result) -> str:
    """'box 1 (+) from FILE: 120 ms ...', numbered among the session's prompts of the same kind."""
    sign = "-" if call.kwargs.get("positive") is False else "+"
    number = sum(type(p) is type(session.prompts[-1]) for p in session.prompts)
    return (f"{call.what} {number} ({sign}) from {call.source}: {result.latency_s * 1000:.0f} ms (model "
            f"{result.model_s * 1000:.0f} ms, {result.runs} run{'s' if result.runs != 1 else ''}), "
            f"object {int(result.mask.sum())} voxels")


# --- parsing --------------------------------------------------------------------------------------------------

def _sign_suffix(text: str) -> tuple[str, bool]:
    if text.endswith(":-"):
        return text[:-2], False
    return (text[:-2] if text.endswith(":+") else text), True


def _inline_box(text: str, coords: str) -> PromptCall:
    option = "--box-ras" if coords == "ras" else "--box"
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 6:
        axes = "r,a,s,r,a,s" if coords == "ras" else "i,j,k,i,j,k"
        raise ClickError(f"{option} {text!r}: expected six numbers {axes} (two opposite corners) or a .json file")
    return PromptCall("add_box", {coords: (tuple(values[:3]), tuple(values[3:]))}, f"{option} {text}")


def read_prompt_file(path: Path, want: str, positive: bool = True) -> list[PromptCall]:
    """Session calls from a Slicer markups file or a simple JSON file; every problem names the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClickError(f"{path}: no such {want} file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ClickError(f"{path}: not a readable JSON {want} file ({error})") from error
    try:
        if isinstance(data, dict) and "markups" in data:
            calls = [_from_markup(m, want, positive) for m in data["markups"]]
        else:
            calls = [_from_simple(entry, want, positive) for entry in (data if isinstance(data, list) else [data])]
    except (KeyError, TypeError, ValueError) as error:
        raise ClickError(f"{path}: {error}") from error
    if not calls:
        raise ClickError(f"{path}: holds no {want}")
    for number, call in enumerate(calls, start=1):
        call.source = f"{path}" if len(calls) == 1 else f"{path} #{number}"
    return calls


def _points(values, what: str, coords: str = "ras") -> np.ndarray:
    points = np.asarray(values, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or not np.all(np.isfinite(points)):
        raise ValueError(f"{what} must be a list of [x, y, z] numbers")
    return points * LPS_TO_RAS if coords == "lps" else points


def _call(want: str, coords: str, points: np.ndarray, positive: bool, extra=None) -> PromptCall:
    key = "ijk" if coords == "ijk" else "ras"
    if want == "box":
        if len(points) != 2:
            raise ValueError(f"a box takes two opposite corners, found {len(points)} points")
        return PromptCall("add_box", {key: tuple(map(tuple, points)), **(extra or {})})
    minimum = 3 if want == "lasso" else 1
    if len(points) < minimum:
        raise ValueError(f"a {want} needs at least {minimum} points, found {len(points)}")
    return PromptCall(f"add_{want}", {key: [tuple(p) for p in points], "positive": positive})


def _from_simple(entry, want: str, positive: bool) -> PromptCall:
    if not isinstance(entry, dict):
        raise ValueError("expected a JSON object (or a list of them) with 'points' or 'corners'")
    coords = str(entry.get("coordinates", "ras")).lower()
    if coords not in ("ras", "lps", "ijk"):
        raise ValueError(f"coordinates {entry.get('coordinates')!r}: use 'ras', 'lps' or 'ijk'")
    key = "corners" if want == "box" else "points"
    if key not in entry:
        raise ValueError(f"a {want} entry needs '{key}'")
    extra = {}
    if want == "box":
        if "normal" in entry:
            normal = _points([entry["normal"]], "normal")[0]
            extra["normal"] = tuple(normal * LPS_TO_RAS if coords == "lps" else normal)
        if "plane" in entry:
            extra["plane"] = tuple(map(tuple, _points(entry["plane"], "plane", coords)))
    sign = bool(entry.get("positive", True)) and positive
    return _call(want, coords, _points(entry[key], key, coords), sign, extra)


def _from_markup(markup: dict, want: str, positive: bool) -> PromptCall:
    kind = markup.get("type")
    if kind not in _MARKUP_TYPES[want]:
        raise ValueError(f"markup {markup.get('name', '')!r} of type {kind!r} is not a {want} "
                         f"(a {want} is a {' or '.join(_MARKUP_TYPES[want])} markup)")
    coords = str(markup.get("coordinateSystem", "LPS")).lower()
    if coords not in ("lps", "ras"):
        raise ValueError(f"coordinateSystem {markup.get('coordinateSystem')!r}: expected LPS or RAS")
    if kind == "ROI":
        return _roi_box(markup, coords)
    defined = [p["position"] for p in markup.get("controlPoints", [])
               if p.get("positionStatus", "defined") == "defined"]
    return _call(want, coords, _points(defined, "control point positions", coords) if defined else np.zeros((0, 3)),
                 positive)


def _roi_box(markup: dict, coords: str) -> PromptCall:
    """A ROI markup -> the rectangle on its mid plane across its thinnest side, edges along its axes."""
    centre = _points([markup["center"]], "center", coords)[0]
    axes = np.asarray(markup.get("orientation", np.eye(3).ravel()), dtype=np.float64).reshape(3, 3)
    if coords == "lps":
        axes = LPS_TO_RAS[:, None] * axes
    size = np.asarray(markup["size"], dtype=np.float64)
    thin = int(np.argmin(size))
    first, second = [a for a in range(3) if a != thin]
    if size[first] <= 0 or size[second] <= 0:
        raise ValueError(f"ROI size {size.tolist()} spans no rectangle")
    half = size[first] / 2 * axes[:, first] + size[second] / 2 * axes[:, second]
    plane = (tuple(centre), tuple(centre + axes[:, first]), tuple(centre + axes[:, second]))
    return PromptCall("add_box", {"ras": (tuple(centre - half), tuple(centre + half)), "plane": plane})
