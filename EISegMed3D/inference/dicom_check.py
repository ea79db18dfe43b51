"""Refuses a DICOM series whose slices do not lie on one regular grid: a missing slice, a duplicate, gantry tilt.

ITK reads such a series with an averaged slice spacing and only prints a warning on stderr, so a label saved on
it would land on a wrong grid. The check reads only the headers: each file's ImagePositionPatient (0020,0032)
projected on the slice normal from ImageOrientationPatient (0020,0037), in the order ITK stacks the files.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

POSITION, ORIENTATION = "0020|0032", "0020|0037"
TOL_MM = 0.01  # positions are decimal strings in mm; real scanners agree to far better than this
TOL_FRACTION = 0.01  # of the slice step, for thick slices
_LISTED = 3  # gaps named in one message


def _numbers(reader: sitk.ImageFileReader, tag: str, count: int, name: str) -> np.ndarray:
    if not reader.HasMetaDataKey(tag):
        raise ValueError(f"file {name} has no {'ImagePositionPatient' if tag == POSITION else 'ImageOrientationPatient'} "
                         f"({tag.replace('|', ',')}), so missing slices cannot be ruled out")
    try:
        values = np.array([float(v) for v in reader.GetMetaData(tag).strip().split("\\")])
    except ValueError:
        values = np.array([])
    if values.size != count:
        raise ValueError(f"file {name}: unreadable {tag.replace('|', ',')} {reader.GetMetaData(tag).strip()!r}")
    return values


def _geometry(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(positions [n, 3], orientations [n, 6]) from the files' headers (pixel data are not read)."""
    positions, orientations = [], []
    for file in files:
        reader = sitk.ImageFileReader()
        reader.SetImageIO("GDCMImageIO")
        reader.SetFileName(file)
        reader.LoadPrivateTagsOff()
        reader.ReadImageInformation()
        name = Path(file).name
        positions.append(_numbers(reader, POSITION, 3, name))
        orientations.append(_numbers(reader, ORIENTATION, 6, name))
    return np.array(positions), np.array(orientations)


def _step_problems(files: list[str], along: np.ndarray, step: float, tol: float) -> list[str]:
    names = [Path(f).name for f in files]
    problems = []
    for index, delta in enumerate(np.diff(along)):
        if abs(delta - step) <= tol:
            continue
        where = (f"slice {index} ({names[index]}, at {along[index]:.4g} mm) and slice {index + 1} "
                 f"({names[index + 1]}, at {along[index + 1]:.4g} mm)")
        if abs(delta) <= tol:
            problems.append(f"{where} lie at the same position (a duplicate slice or a second series)")
        elif delta / step > 1:
            missing = delta / step - 1
            problems.append(f"{where} are {delta:.4g} mm apart instead of {step:.4g} mm: "
                            f"{missing:.3g} slice{'s' if round(missing) != 1 else ''} missing")
        else:
            problems.append(f"{where} are {delta:.4g} mm apart instead of {step:.4g} mm")
    return problems


def series_grid_problem(files: list[str]) -> str | None:
    """What keeps the slices of `files` (in reading order) off one regular grid; None when they are regular."""
    if len(files) < 2:
        return None  # a single (possibly multi-frame) file: ITK reads its own geometry
    try:
        positions, orientations = _geometry(files)
    except ValueError as exc:
        return str(exc)
    odd = np.flatnonzero(np.abs(orientations - orientations[0]).max(axis=1) > 1e-4)
    if odd.size:
        return (f"slice {odd[0]} ({Path(files[odd[0]]).name}) has another orientation than slice 0 "
                f"({Path(files[0]).name}): {orientations[odd[0]].round(4).tolist()} vs {orientations[0].round(4).tolist()}")
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    normal /= np.linalg.norm(normal)
    along = positions @ normal
    step = float(np.median(np.diff(along)))
    if abs(step) <= TOL_MM:
        return f"most of the {len(files)} slices lie at the same position (several series or repeated scans in one folder)"
    tol = max(TOL_MM, TOL_FRACTION * abs(step))
    problems = _step_problems(files, along, step, tol)
    if problems:
        more = f"; and {len(problems) - _LISTED} more" if len(problems) > _LISTED else ""
        return "; ".join(problems[:_LISTED]) + more
    sideways = np.diff(positions, axis=0) - np.outer(np.diff(along), normal)
    shift = np.linalg.norm(sideways, axis=1)
    if shift.max() > tol:
        index = int(np.argmax(shift))
        return (f"slice {index + 1} ({Path(files[index + 1]).name}) is shifted {shift[index]:.4g} mm in-plane from "
                f"slice {index}: the slices are not stacked along their normal (gantry tilt or a mixed series)")
    return None
