"""A scan as numpy array [k, j, i] plus its exact IJK-to-RAS geometry; reading and writing via SimpleITK."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .atomic import atomic_write
from .dicom_check import series_grid_problem
from .errors import VolumeError
from .metaimage_check import metaimage_problem
from .nifti_check import nifti_problem

# ITK works in LPS; Slicer and this engine in RAS. The two differ by flipping the first two axes.
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


class Volume:
    """A 3D scan: `array` indexed [k, j, i] and the 4x4 matrix mapping voxel centres (i, j, k) to RAS mm."""

    def __init__(self, array_kji: np.ndarray, ijk_to_ras: np.ndarray | None = None, path: str | os.PathLike | None = None):
        array_kji = np.asarray(array_kji)
        if array_kji.ndim != 3:
            raise VolumeError(f"{path or 'array'}: expected a 3D image, got {array_kji.ndim}D with shape {array_kji.shape}")
        matrix = np.eye(4) if ijk_to_ras is None else np.asarray(ijk_to_ras, dtype=np.float64)
        if matrix.shape != (4, 4) or abs(np.linalg.det(matrix[:3, :3])) < 1e-12:
            raise VolumeError(f"{path or 'array'}: IJK-to-RAS must be an invertible 4x4 matrix")
        self.array = array_kji
        self.ijk_to_ras = matrix
        self.ras_to_ijk = np.linalg.inv(matrix)
        self.path = Path(path) if path is not None else None

    # --- geometry -------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape (k, j, i)."""
        return tuple(self.array.shape)

    @property
    def spacing(self) -> np.ndarray:
        """Voxel size in mm along (i, j, k)."""
        return np.linalg.norm(self.ijk_to_ras[:3, :3], axis=0)

    @property
    def direction(self) -> np.ndarray:
        """Unit column vectors of the i, j, k axes in RAS."""
        return self.ijk_to_ras[:3, :3] / self.spacing

    def ras_to_ijk_point(self, ras) -> np.ndarray:
        """Continuous (i, j, k) of a RAS point; integers are voxel centres."""
        return (self.ras_to_ijk @ np.append(np.asarray(ras, dtype=np.float64), 1.0))[:3]

    def ijk_to_ras_point(self, ijk) -> np.ndarray:
        return (self.ijk_to_ras @ np.append(np.asarray(ijk, dtype=np.float64), 1.0))[:3]

    def contains_ijk(self, ijk) -> bool:
        """True when the point lies inside the scan (within half a voxel of the outer voxel centres)."""
        ijk = np.asarray(ijk, dtype=np.float64)
        size_ijk = np.array(self.shape[::-1])
        return bool(np.all(ijk >= -0.5) and np.all(ijk <= size_ijk - 0.5))

    def same_grid(self, other: "Volume", tol: float = 1e-4) -> bool:
        return self.shape == other.shape and np.allclose(self.ijk_to_ras, other.ijk_to_ras, atol=tol)

    # --- SimpleITK conversion -------------------------------------------------------------------------------
    @classmethod
    def from_sitk(cls, image: sitk.Image, path=None) -> "Volume":
        name = path or "image"
        if image.GetDimension() == 4 and image.GetSize()[3] == 1:
            image = image[:, :, :, 0]
        if image.GetDimension() != 3:
            raise VolumeError(f"{name}: expected a 3D image, got {image.GetDimension()}D with size {image.GetSize()}")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise VolumeError(f"{name}: expected one value per voxel, got {image.GetNumberOfComponentsPerPixel()} (colour or vector image)")
        spacing = np.array(image.GetSpacing())
        direction = np.array(image.GetDirection()).reshape(3, 3)
        lps = np.eye(4)
        lps[:3, :3] = direction * spacing
        lps[:3, 3] = image.GetOrigin()
        return cls(sitk.GetArrayFromImage(image), LPS_TO_RAS @ lps, path)

    def to_sitk(self, array_kji: np.ndarray | None = None) -> sitk.Image:
        """A SimpleITK image of `array_kji` (default: this scan) on exactly this scan's grid."""
        array_kji = self.array if array_kji is None else np.asarray(array_kji)
        if array_kji.shape != self.shape:
            raise VolumeError(f"{self.path or 'volume'}: array shape {array_kji.shape} does not match the scan {self.shape}")
        image = sitk.GetImageFromArray(array_kji)
        lps = LPS_TO_RAS @ self.ijk_to_ras
        image.SetSpacing(tuple(float(s) for s in self.spacing))
        image.SetDirection(tuple(float(v) for v in (lps[:3, :3] / self.spacing).ravel()))
        image.SetOrigin(tuple(float(v) for v in lps[:3, 3]))
        return image

    # --- files ----------------------------------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "Volume":
        """Read a NIfTI / NRRD / MHA / MHD file or a folder holding one DICOM series."""
        path = Path(path)
        if not path.exists():
            raise VolumeError(f"{path}: no such file or folder")
        # ITK reads short NIfTI data as zeros and never checks the gzip / zlib checksums
        problem = (nifti_problem(path) or metaimage_problem(path)) if path.is_file() else None
        if problem:
            raise VolumeError(f"{path}: {problem}")
        try:
            image = _read_dicom_folder(path) if path.is_dir() else sitk.ReadImage(str(path))
        except RuntimeError as exc:
            reason = str(exc).strip().splitlines()
            # ITK's first line is only the source location of the throw; the reason is on the ERROR line.
            detail = next((line.split("ERROR:", 1)[-1] for line in reason if "ERROR" in line), reason[-1] if reason else "")
            raise VolumeError(f"{path}: cannot read image (corrupt, truncated or not an image): {detail.strip()[:200]}") from exc
        return cls.from_sitk(image, path)

    def write_label(self, path: str | os.PathLike, mask_kji: np.ndarray) -> Path:
        """Write a label map on exactly this scan's grid: atomic rename, previous version kept as backup."""
        mask_kji = np.asarray(mask_kji)
        if mask_kji.shape != self.shape:
            raise VolumeError(f"{path}: label shape {mask_kji.shape} does not match the scan {self.shape}")
        dtype = np.uint8 if mask_kji.size == 0 or mask_kji.max() < 256 else np.uint16
        image = self.to_sitk(mask_kji.astype(dtype))
        return atomic_write(path, lambda tmp: sitk.WriteImage(image, str(tmp), useCompression=True))


def _read_dicom_folder(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    series = reader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise VolumeError(f"{folder}: folder holds no DICOM series")
    if len(series) > 1:
        raise VolumeError(f"{folder}: folder holds {len(series)} DICOM series; put each series in its own folder")
    files = reader.GetGDCMSeriesFileNames(str(folder), series[0])
    problem = series_grid_problem(list(files))
    if problem:  # ITK would read it with an averaged spacing and only warn
        raise VolumeError(f"{folder}: DICOM series is not on a regular grid, so it is not read (a label would land "
                          f"on a wrong grid): {problem}")
    reader.SetFileNames(files)
    return reader.Execute()
