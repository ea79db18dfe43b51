"""Coordinates between Slicer nodes and the engine's scan grid (i, j, k voxels; arrays indexed [k, j, i]).

The scan grid is the volume node's own IJK grid. Slicer places a node in world coordinates through its parent
transform, so points in world RAS go through the inverse of the volume's parent transform before RAS -> IJK,
and the scan grid maps into a segmentation through the transform between the two nodes' parents.
"""
from __future__ import annotations

import numpy as np
import vtk

import slicer
from inference.errors import VolumeError
from inference.volume import Volume


def to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def to_vtk(array: np.ndarray) -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            matrix.SetElement(r, c, float(array[r, c]))
    return matrix


def ijk_to_ras(volume_node) -> np.ndarray:
    """The volume's IJK -> RAS matrix in its own (parent) frame."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return to_numpy(matrix)


def transform_between(source_node, target_node) -> np.ndarray:
    """4x4 matrix from the frame of source_node to that of target_node (None = world); linear transforms only."""
    source = source_node.GetParentTransformNode() if source_node is not None else None
    target = target_node.GetParentTransformNode() if target_node is not None else None
    matrix = vtk.vtkMatrix4x4()
    if not slicer.vtkMRMLTransformNode.GetMatrixTransformBetweenNodes(source, target, matrix):
        names = " / ".join(n.GetName() for n in (source_node, target_node) if n is not None)
        raise VolumeError(f"{names}: a non-linear (warping) parent transform is applied; harden it first "
                          "(Data module -> right-click the transform -> Harden transform)")
    return to_numpy(matrix)


def scan_to_segmentation(volume_node, segmentation_node) -> np.ndarray:
    """Scan IJK -> the segmentation's own coordinate frame (where its labelmaps live)."""
    return transform_between(volume_node, segmentation_node) @ ijk_to_ras(volume_node)


def world_to_ijk(volume_node, ras_world) -> np.ndarray:
    """Continuous (i, j, k) on the scan grid of a world RAS point (e.g. a markups control point)."""
    world_to_local = transform_between(None, volume_node)
    ras_to_ijk = np.linalg.inv(ijk_to_ras(volume_node))
    return (ras_to_ijk @ world_to_local @ np.append(np.asarray(ras_world, dtype=np.float64), 1.0))[:3]


def ijk_to_world(volume_node, ijk) -> np.ndarray:
    local_to_world = transform_between(volume_node, None)
    return (local_to_world @ ijk_to_ras(volume_node) @ np.append(np.asarray(ijk, dtype=np.float64), 1.0))[:3]


def engine_volume(volume_node, path=None) -> Volume:
    """The engine's view of a volume node: its voxels [k, j, i] and local IJK -> RAS (clicks arrive as IJK)."""
    image = volume_node.GetImageData() if volume_node is not None else None
    if image is None or image.GetNumberOfPoints() == 0:
        name = volume_node.GetName() if volume_node is not None else "volume"
        raise VolumeError(f"{name}: the volume node holds no image data")
    if image.GetNumberOfScalarComponents() != 1:
        raise VolumeError(f"{volume_node.GetName()}: expected one value per voxel, "
                          f"got {image.GetNumberOfScalarComponents()} (colour or vector volume)")
    return Volume(slicer.util.arrayFromVolume(volume_node), ijk_to_ras(volume_node), path)


def full_box(shape_kji) -> tuple:
    return tuple(slice(0, int(n)) for n in shape_kji)
