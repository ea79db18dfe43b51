"""Data folder: which files are scans (incl. DICOM series folders), label paths, label save/load on the exact grid."""
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # EISegMed3D/ holds the `inference` package

from dicom_files import write_dicom_series  # noqa: E402
from inference.atomic import backup_path  # noqa: E402
from inference.datafolder import (is_dicom_folder, label_path, list_scans, load_label, relative_key,  # noqa: E402
                                  save_label, scan_stem)
from inference.errors import VolumeError  # noqa: E402
from inference.volume import Volume  # noqa: E402


def write_image(path, shape_kji=(4, 5, 6), spacing=(1.0, 1.5, 2.0), origin=(0.0, 0.0, 0.0), direction=None):
    image = sitk.GetImageFromArray(np.arange(np.prod(shape_kji), dtype=np.int16).reshape(shape_kji))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(direction)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return Path(path)


# --- listing ------------------------------------------------------------------------------------------------
def test_list_scans_keeps_scan_types_and_skips_labels_backups_segmentations_and_temp_files(tmp_path):
    for name in ("a.nii.gz", "b.nii", "c.nrrd", "e.mha", "f.mhd",
                 "d.seg.nrrd", "a_label.nii.gz", "a_label.bak.nii.gz", "a.bak.nii.gz", ".a.nii.gz.tmp.nii.gz",
                 ".hidden.nii.gz", "sub/deep.nii.gz"):
        write_image(tmp_path / name)
    assert any(p.suffix in (".raw", ".zraw") for p in tmp_path.iterdir())  # the .mhd's data file is there
    (tmp_path / "UPPER.NII.GZ").write_bytes((tmp_path / "a.nii.gz").read_bytes())  # ITK writes no upper-case names
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "EISegMed3D.json").write_text("{}")
    names = [p.name for p in list_scans(tmp_path)]
    assert names == ["UPPER.NII.GZ", "a.nii.gz", "b.nii", "c.nrrd", "e.mha", "f.mhd"]


def test_dots_in_folder_names_and_double_suffixes(tmp_path):
    folder = tmp_path / "study.2024.v1"
    scan = write_image(folder / "case.v2.nii.gz")
    write_image(folder / "case.v2_label.nii.gz")
    assert scan_stem(scan) == "case.v2"
    assert scan_stem(folder / "UPPER.NII.GZ") == "UPPER"
    assert label_path(scan) == folder / "case.v2_label.nii.gz"
    assert label_path(folder / "x.y.nrrd") == folder / "x.y_label.nii.gz"
    assert list_scans(folder) == [scan]
    assert list_scans(tmp_path) == []  # not recursive: sub-folder files are not listed
    assert [relative_key(p, tmp_path) for p in list_scans(tmp_path, recursive=True)] == ["study.2024.v1/case.v2.nii.gz"]


def test_recursive_listing_is_sorted_by_relative_path_and_skips_hidden_folders(tmp_path):
    for name in ("z.nii.gz", "b/2.nrrd", "b/1.nii", "a/x/y/deep.mha", ".cache/hidden.nii.gz", "a/x/y/deep_label.nii.gz"):
        write_image(tmp_path / name)
    keys = [relative_key(p, tmp_path) for p in list_scans(tmp_path, recursive=True)]
    assert keys == ["a/x/y/deep.mha", "b/1.nii", "b/2.nrrd", "z.nii.gz"]
    assert [relative_key(p, tmp_path) for p in list_scans(tmp_path)] == ["z.nii.gz"]


def test_list_scans_on_a_missing_folder_names_it(tmp_path):
    with pytest.raises(VolumeError, match="nowhere"):
        list_scans(tmp_path / "nowhere")


# --- DICOM series folders -----------------------------------------------------------------------------------
def test_dicom_series_folder_is_one_scan_with_label_next_to_it(tmp_path):
    series = write_dicom_series(tmp_path / "patient.01")
    write_image(tmp_path / "other.nii.gz")
    assert is_dicom_folder(series)
    assert list_scans(tmp_path) == [tmp_path / "other.nii.gz", series]
    assert label_path(series) == tmp_path / "patient.01_label.nii.gz"

    volume = Volume.from_file(series)
    assert volume.shape == (5, 8, 7)
    np.testing.assert_allclose(volume.spacing, (0.8, 0.8, 2.5), atol=1e-4)
    mask = np.zeros(volume.shape, np.uint8)
    mask[1:3, 2:5, 3:6] = 2
    written = save_label(volume, mask)
    assert written == tmp_path / "patient.01_label.nii.gz"
    np.testing.assert_array_equal(load_label(volume), mask)
    assert list_scans(tmp_path) == [tmp_path / "other.nii.gz", series]  # the label is not a scan


def test_dicom_series_found_deeper_only_when_recursive_and_folder_itself_can_be_the_series(tmp_path):
    series = write_dicom_series(tmp_path / "patient" / "series1")
    assert list_scans(tmp_path) == []
    assert list_scans(tmp_path, recursive=True) == [series]
    assert list_scans(tmp_path / "patient") == [series]
    assert list_scans(series) == [series]
    assert relative_key(series, series) == "."


def test_files_named_dcm_that_are_not_dicom_do_not_make_a_series(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dcm").write_bytes(b"\0" * 300)
    assert not is_dicom_folder(tmp_path / "junk")
    assert list_scans(tmp_path) == []


# --- labels -------------------------------------------------------------------------------------------------
def test_save_and_load_label_round_trip_uint8_and_uint16_with_backup(tmp_path):
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    scan = write_image(tmp_path / "my.scans" / "case.v2.nii.gz", spacing=(0.7, 0.9, 3.3),
                       origin=(-100.25, 50.5, 12.0), direction=direction)
    volume = Volume.from_file(scan)
    mask = np.zeros(volume.shape, np.uint8)
    mask[1, 2, 3] = 7
    path = save_label(volume, mask)
    assert path == tmp_path / "my.scans" / "case.v2_label.nii.gz"
    loaded = load_label(volume)
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, mask)
    label_image, scan_image = sitk.ReadImage(str(path)), sitk.ReadImage(str(scan))
    assert label_image.GetSize() == scan_image.GetSize()
    np.testing.assert_allclose(label_image.GetOrigin(), scan_image.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(label_image.GetDirection(), scan_image.GetDirection(), atol=1e-6)

    big = mask.astype(np.uint16)
    big[0, 0, 0] = 300
    save_label(volume, big)
    loaded = load_label(volume, path)
    assert loaded.dtype == np.uint16 and loaded[0, 0, 0] == 300
    np.testing.assert_array_equal(load_label(volume, backup_path(path)), mask)  # previous version kept


@pytest.mark.parametrize("change", [
    {"spacing": (1.0, 1.5, 2.1)},
    {"origin": (0.0, 0.001, 0.0)},
    {"direction": (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0)},
    {"shape_kji": (4, 5, 7)},
])
def test_label_on_another_grid_is_refused_naming_both_files(tmp_path, change):
    scan = write_image(tmp_path / "case.nii.gz")
    other = write_image(tmp_path / "case_label.nii.gz", **change)
    volume = Volume.from_file(scan)
    with pytest.raises(VolumeError) as info:
        load_label(volume)
    assert str(other) in str(info.value) and str(scan) in str(info.value)


def test_label_with_negative_or_fractional_values_is_refused(tmp_path):
    volume = Volume.from_file(write_image(tmp_path / "case.nii.gz"))
    bad = volume.to_sitk(np.full(volume.shape, 0.5, np.float32))
    sitk.WriteImage(bad, str(tmp_path / "case_label.nii.gz"))
    with pytest.raises(VolumeError, match="whole numbers"):
        load_label(volume)


def test_missing_or_corrupt_label_names_the_file(tmp_path):
    volume = Volume.from_file(write_image(tmp_path / "case.nii.gz"))
    with pytest.raises(VolumeError, match="case_label.nii.gz"):
        load_label(volume)
    (tmp_path / "case_label.nii.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(VolumeError, match="case_label.nii.gz"):
        load_label(volume)
