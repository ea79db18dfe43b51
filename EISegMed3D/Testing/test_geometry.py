"""Volume geometry: RAS <-> IJK exactness, file round trips, LPS vs RAS, label grids and DICOM series."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import SimpleITK as sitk
from hypothesis import given, settings
from hypothesis import strategies as st

from inference import Volume, VolumeError

# --- strategies ---------------------------------------------------------------------------------------------

_unit = st.floats(-1.0, 1.0, allow_nan=False)
_spacing = st.floats(0.2, 6.0, allow_nan=False)
_coord = st.floats(-500.0, 500.0, allow_nan=False)


def _rotation(q) -> np.ndarray:
    """Rotation matrix of a (not necessarily unit) quaternion; falls back to identity near zero."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q)
    w, x, y, z = q / n if n > 1e-3 else (1.0, 0.0, 0.0, 0.0)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


@st.composite
def ijk_to_ras_matrices(draw) -> np.ndarray:
    """Random oblique direction (rotation), optional axis flips, anisotropic spacing, any origin."""
    rotation = _rotation(draw(st.tuples(_unit, _unit, _unit, _unit)))
    flips = np.array(draw(st.tuples(*[st.sampled_from([1.0, -1.0])] * 3)))
    spacing = np.array(draw(st.tuples(_spacing, _spacing, _spacing)))
    matrix = np.eye(4)
    matrix[:3, :3] = rotation * flips * spacing
    matrix[:3, 3] = draw(st.tuples(_coord, _coord, _coord))
    return matrix


@st.composite
def axis_aligned_matrices(draw) -> np.ndarray:
    """Axis permutations and flips with anisotropic spacing: what most scans have."""
    permutation = np.eye(3)[list(draw(st.permutations([0, 1, 2])))]
    flips = np.array(draw(st.tuples(*[st.sampled_from([1.0, -1.0])] * 3)))
    matrix = np.eye(4)
    matrix[:3, :3] = permutation * flips * np.array(draw(st.tuples(_spacing, _spacing, _spacing)))
    matrix[:3, 3] = draw(st.tuples(_coord, _coord, _coord))
    return matrix


def _volume(matrix, shape=(4, 5, 6), dtype=np.int16, seed=0) -> Volume:
    array = np.random.default_rng(seed).integers(-1000, 3000, size=shape).astype(dtype)
    return Volume(array, matrix)


# --- RAS <-> IJK ----------------------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None)
@given(matrix=ijk_to_ras_matrices(), ijk=st.tuples(*[st.integers(0, 511)] * 3))
def test_ras_ijk_round_trip_exact_at_voxel_centres(matrix, ijk):
    volume = _volume(matrix)
    ras = volume.ijk_to_ras_point(ijk)
    back = volume.ras_to_ijk_point(ras)
    np.testing.assert_allclose(back, ijk, atol=1e-7)
    assert np.array_equal(np.round(back).astype(int), ijk)


@settings(max_examples=60, deadline=None)
@given(matrix=ijk_to_ras_matrices(), ijk=st.tuples(*[st.integers(0, 5)] * 3))
def test_to_sitk_grid_agrees_with_itk_physical_points(matrix, ijk):
    """ITK's own index->physical mapping (LPS) of the converted image equals our RAS with x, y negated."""
    volume = _volume(matrix, shape=(6, 6, 6))
    image = volume.to_sitk()
    lps = np.array(image.TransformIndexToPhysicalPoint(tuple(int(v) for v in ijk)))
    np.testing.assert_allclose(lps * [-1, -1, 1], volume.ijk_to_ras_point(ijk), atol=1e-6)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, rtol=1e-12)


def test_spacing_and_direction_of_flipped_anisotropic_grid():
    matrix = np.diag([-0.5, 0.8, -5.0, 1.0])
    matrix[:3, 3] = (10, 20, 30)
    volume = _volume(matrix)
    np.testing.assert_allclose(volume.spacing, (0.5, 0.8, 5.0))
    np.testing.assert_allclose(volume.direction, np.diag([-1.0, 1.0, -1.0]))
    np.testing.assert_allclose(volume.ijk_to_ras_point((2, 1, 3)), (10 - 1.0, 20 + 0.8, 30 - 15.0))


# --- file round trips -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
@settings(max_examples=8, deadline=None)
@given(matrix=ijk_to_ras_matrices())
def test_file_round_trip_keeps_matrix_and_array(tmp_path_factory, suffix, matrix):
    volume = _volume(matrix, shape=(3, 4, 5))
    path = tmp_path_factory.mktemp("rt") / ("scan" + suffix)
    sitk.WriteImage(volume.to_sitk(), str(path))
    back = Volume.from_file(path)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, atol=1e-5)
    assert back.array.dtype == volume.array.dtype
    assert np.array_equal(back.array, volume.array)
    assert back.path == path


def _write_nifti1(path, array_kji: np.ndarray, affine: np.ndarray) -> None:
    """A minimal NIfTI-1 file written by hand (sform only): an independent source of a known RAS affine."""
    nk, nj, ni = array_kji.shape
    header = bytearray(352)
    struct.pack_into("<i", header, 0, 348)
    struct.pack_into("<8h", header, 40, 3, ni, nj, nk, 1, 1, 1, 1)
    struct.pack_into("<hh", header, 70, 4, 16)  # datatype int16, bitpix
    pixdim = [1.0, *np.linalg.norm(affine[:3, :3], axis=0), 1, 1, 1, 1]
    struct.pack_into("<8f", header, 76, *pixdim)
    struct.pack_into("<f", header, 108, 352.0)  # vox_offset
    struct.pack_into("<f", header, 112, 1.0)  # scl_slope
    struct.pack_into("<hh", header, 252, 0, 2)  # qform_code 0, sform_code 2 (aligned)
    struct.pack_into("<12f", header, 280, *affine[:3, :4].ravel())
    header[344:348] = b"n+1\0"
    with gzip.open(path, "wb") as handle:
        handle.write(bytes(header) + np.ascontiguousarray(array_kji, dtype="<i2").tobytes())


def test_known_nifti_affine_is_read_as_ras(tmp_path):
    """NIfTI stores RAS; ITK reports LPS. A hand-written affine must come back unchanged as our IJK-to-RAS."""
    affine = np.array([[-0.75, 0.0, 0.0, 12.5],
                       [0.0, 0.0, 2.0, -40.0],
                       [0.0, -0.5, 0.0, 7.25],
                       [0.0, 0.0, 0.0, 1.0]])
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    path = tmp_path / "known.nii.gz"
    _write_nifti1(path, array, affine)
    volume = Volume.from_file(path)
    np.testing.assert_allclose(volume.ijk_to_ras_point((0, 0, 0)), (12.5, -40.0, 7.25), atol=1e-5)
    np.testing.assert_allclose(volume.ijk_to_ras, affine, atol=1e-5)
    assert np.array_equal(volume.array, array)
    assert volume.array[1, 2, 3] == 23  # array index [k, j, i]


def test_sitk_written_nifti_lps_origin_maps_to_negated_ras(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((2, 3, 4), np.int16))
    image.SetOrigin((10.0, 20.0, 30.0))  # LPS
    image.SetSpacing((1.0, 2.0, 3.0))
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))  # row-major; columns: i -> +P, j -> +S, k -> +L (LPS)
    path = tmp_path / "lps.nii.gz"
    sitk.WriteImage(image, str(path))
    volume = Volume.from_file(path)
    np.testing.assert_allclose(volume.ijk_to_ras_point((0, 0, 0)), (-10.0, -20.0, 30.0), atol=1e-5)
    np.testing.assert_allclose(volume.ijk_to_ras_point((1, 0, 0)), (-10.0, -21.0, 30.0), atol=1e-5)  # P = -A
    np.testing.assert_allclose(volume.ijk_to_ras_point((0, 1, 0)), (-10.0, -20.0, 32.0), atol=1e-5)  # S
    np.testing.assert_allclose(volume.ijk_to_ras_point((0, 0, 1)), (-13.0, -20.0, 30.0), atol=1e-5)  # L = -R


# --- labels -----------------------------------------------------------------------------------------------------

def _scan_and_label(folder, matrix) -> tuple:
    """(scan image, label image, mask) as SimpleITK reads them back: a scan file, then its label written by us."""
    scan_path = folder / "scan.nii.gz"
    sitk.WriteImage(_volume(matrix, shape=(5, 6, 7)).to_sitk(), str(scan_path))
    scan = Volume.from_file(scan_path)
    mask = np.zeros(scan.shape, np.uint8)
    mask[1:3, 2:5, 3:6] = 1
    label_path = scan.write_label(folder / "scan_label.nii.gz", mask)
    return sitk.ReadImage(str(scan_path)), sitk.ReadImage(str(label_path)), mask


@settings(max_examples=15, deadline=None)
@given(matrix=axis_aligned_matrices())
def test_write_label_is_on_the_exact_grid(tmp_path_factory, matrix):
    """SimpleITK reads bit-identical origin, spacing and direction from the scan and from our label."""
    original, written, mask = _scan_and_label(tmp_path_factory.mktemp("label"), matrix)
    assert written.GetSize() == original.GetSize()
    assert written.GetOrigin() == original.GetOrigin()
    assert written.GetSpacing() == original.GetSpacing()
    assert written.GetDirection() == original.GetDirection()
    assert written.GetPixelID() == sitk.sitkUInt8
    assert np.array_equal(sitk.GetArrayFromImage(written), mask)


@settings(max_examples=8, deadline=None)
@given(matrix=ijk_to_ras_matrices())
def test_write_label_on_oblique_grid_matches_to_nifti_precision(tmp_path_factory, matrix):
    """NIfTI keeps an oblique direction as a float32 quaternion: SimpleITK's own read-write already moves it ~1e-8."""
    original, written, _ = _scan_and_label(tmp_path_factory.mktemp("label"), matrix)
    assert written.GetSize() == original.GetSize()
    np.testing.assert_allclose(written.GetOrigin(), original.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(written.GetSpacing(), original.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), original.GetDirection(), atol=1e-6)


def test_write_label_keeps_backup_and_widens_for_large_values(tmp_path):
    volume = _volume(np.diag([0.5, 0.5, 2.0, 1.0]))
    path = tmp_path / "case_label.nii.gz"
    first = np.zeros(volume.shape, np.uint8)
    first[0, 0, 0] = 1
    volume.write_label(path, first)
    second = np.full(volume.shape, 300, np.int32)
    volume.write_label(path, second)
    assert sitk.ReadImage(str(path)).GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), second)
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "case_label.bak.nii.gz"))), first)


def test_write_label_of_wrong_shape_names_the_file(tmp_path):
    volume = _volume(np.eye(4))
    with pytest.raises(VolumeError, match="case_label.nii.gz"):
        volume.write_label(tmp_path / "case_label.nii.gz", np.zeros((1, 2, 3), np.uint8))
    assert not (tmp_path / "case_label.nii.gz").exists()


# --- DICOM ------------------------------------------------------------------------------------------------------

def _write_dicom_series(folder, volume: Volume) -> None:
    """One file per slice with the tags a series reader needs (position, orientation, UIDs, instance number)."""
    image = volume.to_sitk()
    direction = image.GetDirection()
    orientation = "\\".join(f"{v:.10f}" for v in (direction[0], direction[3], direction[6],
                                                      direction[1], direction[4], direction[7]))
    series_uid = "1.2.826.0.1.3680043.2.1125.1.4242"
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_image = image[:, :, k]
        position = image.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT", "0008|0016": "1.2.840.10008.5.1.4.1.1.2",
            "0008|0018": f"{series_uid}.{k + 1}", "0020|000d": series_uid + ".0", "0020|000e": series_uid,
            "0020|0013": str(k + 1), "0020|0032": "\\".join(f"{v:.10f}" for v in position),
            "0020|0037": orientation, "0028|0030": f"{image.GetSpacing()[1]:.10f}\\{image.GetSpacing()[0]:.10f}",
            "0018|0050": f"{image.GetSpacing()[2]:.10f}",
        }
        for key, value in tags.items():
            slice_image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"slice_{k:03d}.dcm"))
        writer.Execute(slice_image)


def test_dicom_series_folder_is_read_with_its_geometry(tmp_path):
    matrix = np.eye(4)
    matrix[:3, :3] = _rotation((0.9, 0.1, -0.2, 0.3)) * [0.7, 0.7, 2.5]
    matrix[:3, 3] = (-20.0, 35.5, 100.0)
    volume = _volume(matrix, shape=(5, 8, 9))
    folder = tmp_path / "series.dir"
    folder.mkdir()
    _write_dicom_series(folder, volume)
    back = Volume.from_file(folder)
    assert back.shape == volume.shape
    assert np.array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, atol=1e-4)
    assert back.path == folder


def test_folder_without_dicom_is_a_volume_error_naming_it(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(VolumeError, match=str(tmp_path)):
        Volume.from_file(tmp_path)
