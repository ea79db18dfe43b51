"""Writing one object into an existing multi-label map: only its own label value changes, the backup is the whole
previous map (issue 10, item 1). The CLI, the engine's save_object and the demo follow the same rule."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from inference import Volume
from inference.atomic import backup_path
from inference.cli import main
from inference.datafolder import label_path
from inference.errors import VolumeError

REAL_CASE = Path(__file__).resolve().parents[3] / "shared" / "data" / "spine_mri_vertebral_bodies_t2" / "case_000.nii.gz"


def _read(path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _segment(argv, capsys) -> str:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def labelled_scan(tmp_path):
    """A scan (oblique-free, anisotropic) and its label file holding values 1, 2 and 5 in separate blocks."""
    array = (np.random.default_rng(3).random((14, 32, 36)) * 400).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 0.9, 2.0))
    image.SetOrigin((5.0, -12.0, 30.0))
    scan = tmp_path / "case.nii.gz"
    sitk.WriteImage(image, str(scan))
    label = np.zeros(array.shape, np.uint8)
    label[2:6, 2:10, 2:10] = 1
    label[4:10, 12:22, 12:22] = 2
    label[8:12, 24:30, 26:34] = 5
    sitk.WriteImage(Volume.from_file(scan).to_sitk(label), str(label_path(scan)))
    return scan, label


# --- merge rule -----------------------------------------------------------------------------------------------

def test_merge_object_replaces_only_its_own_value():
    from inference.datafolder import merge_object

    previous = np.array([[[0, 1, 2, 3, 3, 0]]], np.uint8)
    mask = np.array([[[1, 1, 0, 1, 0, 0]]], np.uint8)
    kept = merge_object(previous, mask, 3)
    np.testing.assert_array_equal(kept.label, [[[3, 1, 2, 3, 0, 0]]])  # old 3 outside the mask -> 0; 1 and 2 stay
    assert (kept.kept_voxels, kept.overwritten_voxels) == (1, 0)
    taken = merge_object(previous, mask, 3, overwrite_other_labels=True)
    np.testing.assert_array_equal(taken.label, [[[3, 3, 2, 3, 0, 0]]])
    assert (taken.kept_voxels, taken.overwritten_voxels) == (0, 1)
    wide = merge_object(previous, mask, 300)
    assert wide.label.dtype == np.uint16 and wide.label[0, 0, 0] == 300 and wide.label[0, 0, 2] == 2
    np.testing.assert_array_equal(merge_object(None, mask, 4).label, mask * 4)
    with pytest.raises(VolumeError, match="1..65535"):
        merge_object(previous, mask, 0)


def test_save_object_refuses_a_label_on_another_grid_and_leaves_it(labelled_scan, tmp_path):
    from inference.datafolder import save_object

    scan, _ = labelled_scan
    volume = Volume.from_file(scan)
    other = tmp_path / "other_label.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 4, 5), np.uint8)), str(other))
    before = other.read_bytes()
    with pytest.raises(VolumeError, match="not on the grid"):
        save_object(volume, np.ones(volume.shape, np.uint8), 3, other)
    assert other.read_bytes() == before and not backup_path(other).exists()


# --- the CLI on a multi-label map -----------------------------------------------------------------------------

def test_segment_keeps_other_labels_and_a_full_backup(labelled_scan, tiny_model_dir, capsys):
    scan, original = labelled_scan
    target, backup = label_path(scan), backup_path(label_path(scan))
    common = ["--model", tiny_model_dir, "--backend", "onnx", "--threads", "1"]
    others = original > 0

    # A positive click in the background and one inside label 2: value 3 appears, label 2's voxel stays 2.
    out = _segment(["segment", scan, "--click", "30,5,3", "--click", "16,16,6", "--label-value", "3", *common], capsys)
    first = _read(target)
    np.testing.assert_array_equal(first[others], original[others])  # 1, 2 and 5 untouched, overlap included
    assert first[3, 5, 30] == 3 and first[6, 16, 16] == 2
    assert set(np.unique(first)) == {0, 1, 2, 3, 5}
    assert "kept" in out and "--overwrite-other-labels" in out
    np.testing.assert_array_equal(_read(backup), original)  # the backup is the whole previous map

    # Again with value 3 elsewhere: the old object 3 is replaced, the backup is the whole map of the first run.
    _segment(["segment", scan, "--click", "4,28,12", "--label-value", "3", *common], capsys)
    second = _read(target)
    np.testing.assert_array_equal(second[others], original[others])
    assert second[12, 28, 4] == 3 and second[3, 5, 30] in (0, 3)
    np.testing.assert_array_equal(second == 3, (second == 3) & ~others)
    np.testing.assert_array_equal(_read(backup), first)

    # Asked for explicitly, the object takes the voxels of other labels it covers.
    out = _segment(["segment", scan, "--click", "30,27,10", "--label-value", "4", "--overwrite-other-labels",
                    *common], capsys)
    third = _read(target)
    assert third[10, 27, 30] == 4 and "overwrote" in out
    untouched = third != 4
    np.testing.assert_array_equal(third[untouched & (second != 4)], second[untouched & (second != 4)])


def test_segment_refuses_an_existing_label_on_another_grid_before_the_model_runs(labelled_scan, tmp_path, capsys):
    scan, _ = labelled_scan
    wrong = tmp_path / "wrong_label.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 4, 5), np.uint8)), str(wrong))
    before = wrong.read_bytes()
    code = main(["segment", str(scan), "--click", "3,3,3", "--out", str(wrong), "--model", str(tmp_path / "no_model")])
    err = capsys.readouterr().err
    assert code == 2 and str(wrong) in err and "not on the grid" in err  # not the missing model: checked first
    assert wrong.read_bytes() == before


@pytest.mark.skipif(not REAL_CASE.is_file(), reason=f"needs ../shared/data ({REAL_CASE} absent)")
def test_segment_on_a_real_multilabel_spine_map_keeps_the_other_vertebrae(tmp_path, capsys):
    """The issue's reproduction: T2 spine MRI with 7 vertebral bodies; relabel L3 (value 3), then L4 (value 4)."""
    scan = tmp_path / REAL_CASE.name
    shutil.copyfile(REAL_CASE, scan)
    shutil.copyfile(label_path(REAL_CASE), label_path(scan))
    original = _read(label_path(scan))
    assert set(np.unique(original)) == set(range(8))
    _segment(["segment", scan, "--click", "169,197,45", "--label-value", "3", "--backend", "onnx"], capsys)
    first = _read(label_path(scan))
    _segment(["segment", scan, "--click", "130,206,41", "--label-value", "4", "--backend", "onnx"], capsys)
    second = _read(label_path(scan))
    for value in (1, 2, 5, 6, 7):
        np.testing.assert_array_equal(second == value, original == value)
    assert set(np.unique(second)) == set(range(8))
    np.testing.assert_array_equal(_read(backup_path(label_path(scan))), first)  # full map, not just {0, 3}
    for value in (3, 4):  # the model's object is the vertebral body the click is in
        new, old = second == value, original == value
        assert 2 * np.count_nonzero(new & old) / (np.count_nonzero(new) + np.count_nonzero(old)) > 0.6
