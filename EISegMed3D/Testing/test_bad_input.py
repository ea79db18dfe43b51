"""Bad scans: each is a VolumeError naming the file and the problem, or (NaN / constant intensities) works."""
from __future__ import annotations

import gzip
import os

import numpy as np
import pytest
import SimpleITK as sitk

from inference import Volume, VolumeError


def _scan(shape=(12, 16, 20), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 1000).astype(np.int16)


def _write(path, array, **kwargs):
    sitk.WriteImage(sitk.GetImageFromArray(array, **kwargs), str(path))
    return path


def _assert_error_names(path, *words):
    with pytest.raises(VolumeError) as caught:
        Volume.from_file(path)
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message.lower()
    assert "\n" not in message.strip() or len(message) < 400  # one readable message, not a dump


def test_missing_file(tmp_path):
    _assert_error_names(tmp_path / "nothing.nii.gz", "no such file")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_random_bytes(tmp_path, suffix):
    path = tmp_path / ("garbage" + suffix)
    path.write_bytes(os.urandom(3000))
    _assert_error_names(path, "cannot read")


def test_text_file_named_nifti(tmp_path):
    path = tmp_path / "notes.nii.gz"
    path.write_text("patient list\nnot an image\n")
    _assert_error_names(path, "cannot read")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_truncated_file(tmp_path, suffix):
    """ITK reads a short NIfTI as zeros without complaint: the engine must refuse it."""
    path = _write(tmp_path / ("whole" + suffix), _scan())
    data = path.read_bytes()
    short = tmp_path / ("short" + suffix)
    short.write_bytes(data[: int(len(data) * 0.6)])
    _assert_error_names(short, "truncated")


def test_corrupt_compressed_stream(tmp_path):
    path = _write(tmp_path / "scan.nii.gz", _scan())
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = os.urandom(64)  # damage inside the deflate stream
    data[-8:] = b"\0" * 8  # and its checksum / size trailer
    path.write_bytes(bytes(data))
    with pytest.raises(VolumeError, match=str(path)):
        Volume.from_file(path)


@pytest.mark.parametrize("where", [0.3, 0.5, 0.8])
def test_flipped_bytes_in_a_nii_gz_are_refused_as_damaged_crc(tmp_path, where):
    """Two flipped bytes inside the deflate stream: ITK reads garbage voxels without complaint, the CRC tells."""
    array = _scan((40, 64, 64))
    path = _write(tmp_path / "scan.nii.gz", array)
    data = bytearray(path.read_bytes())
    at = int(len(data) * where)
    data[at] ^= 0xFF
    data[at + 1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert not np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), array)  # what ITK alone gives
    _assert_error_names(path, "damaged (crc)")


@pytest.mark.parametrize("suffix, data_suffix", [(".mha", ".mha"), (".mhd", ".zraw")])
def test_flipped_bytes_in_compressed_metaimage_data_are_refused_as_damaged_crc(tmp_path, suffix, data_suffix):
    """ITK's MetaImage reader ignores the zlib checksum too (its NRRD reader does not)."""
    array = _scan((40, 64, 64))
    path = tmp_path / ("scan" + suffix)
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=True)
    data_file = path.with_suffix(data_suffix)
    data = bytearray(data_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0xFF
    data_file.write_bytes(bytes(data))
    assert not np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), array)  # what ITK alone gives
    _assert_error_names(path, "damaged (crc)")


def test_nii_gz_cut_inside_its_trailer_is_truncated(tmp_path):
    path = _write(tmp_path / "scan.nii.gz", _scan())
    path.write_bytes(path.read_bytes()[:-3])  # every voxel there, the CRC and size trailer cut
    _assert_error_names(path, "truncated")


def test_zero_padding_after_a_nii_gz_is_accepted(tmp_path):
    array = _scan()
    path = _write(tmp_path / "scan.nii.gz", array)
    path.write_bytes(path.read_bytes() + b"\0" * 512)  # some copy tools pad to a block size
    assert np.array_equal(Volume.from_file(path).array, array)


def test_multi_member_gzip_nifti_is_whole(tmp_path):
    """bgzip-style files (several gzip members) are valid: the truncation check must not reject them."""
    array = _scan()
    plain = _write(tmp_path / "scan.nii", array)
    data = plain.read_bytes()
    multi = tmp_path / "multi.nii.gz"
    multi.write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    assert np.array_equal(Volume.from_file(multi).array, array)


def test_2d_image(tmp_path):
    path = _write(tmp_path / "slice.nii.gz", _scan()[0])
    _assert_error_names(path, "3d", "2d")


def test_4d_image(tmp_path):
    series = sitk.JoinSeries([sitk.GetImageFromArray(_scan(seed=s)) for s in range(3)])
    path = tmp_path / "dynamic.nii.gz"
    sitk.WriteImage(series, str(path))
    _assert_error_names(path, "3d", "4d")


def test_4d_image_with_one_time_point_is_its_3d_volume(tmp_path):
    array = _scan()
    path = tmp_path / "one_frame.nrrd"
    sitk.WriteImage(sitk.JoinSeries([sitk.GetImageFromArray(array)]), str(path))
    assert np.array_equal(Volume.from_file(path).array, array)


def test_colour_image(tmp_path):
    path = _write(tmp_path / "rgb.nrrd", np.zeros((4, 5, 6, 3), np.uint8), isVector=True)
    _assert_error_names(path, "one value per voxel")


def test_array_that_is_not_3d():
    with pytest.raises(VolumeError, match="3D"):
        Volume(np.zeros((4, 5)), np.eye(4))
    with pytest.raises(VolumeError, match="invertible"):
        Volume(np.zeros((4, 5, 6)), np.zeros((4, 4)))


# --- intensities the session must survive ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    from inference import load_model

    return load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1)


def _session_on(model, array):
    from inference import InteractiveSession

    session = InteractiveSession(model)
    session.set_volume(Volume(array, np.diag([0.9, 0.9, 2.0, 1.0])))
    return session


def test_nan_image_session_gives_finite_mask(tiny_model, tmp_path):
    array = _scan().astype(np.float32)
    array[:, :8] = np.nan
    path = tmp_path / "nan.nrrd"  # NRRD keeps NaN (ITK's NIfTI reader turns it into 0)
    _write(path, array)
    volume = Volume.from_file(path)
    assert np.isnan(volume.array).any()
    session = _session_on(tiny_model, volume.array)
    result = session.add_click(ijk=(10, 4, 6))  # inside the NaN region
    assert result.mask.dtype == np.uint8 and set(np.unique(result.mask)) <= {0, 1}
    assert result.mask[6, 4, 10] == 1


def test_all_nan_image_is_refused_naming_the_file(tiny_model, tmp_path):
    path = tmp_path / "all_nan.nrrd"
    _write(path, np.full((6, 7, 8), np.nan, np.float32))
    from inference import InteractiveSession

    with pytest.raises(VolumeError, match="all_nan.nrrd.*finite"):
        InteractiveSession(tiny_model).set_volume(Volume.from_file(path))


@pytest.mark.parametrize("value", [0.0, -1024.0, 3e4])
def test_constant_image_session_works(tiny_model, value):
    session = _session_on(tiny_model, np.full((12, 16, 20), value, np.float32))
    result = session.add_click(ijk=(10, 8, 6))
    assert result.mask[6, 8, 10] == 1
    assert 0 < result.mask.sum() < result.mask.size


# --- DICOM series that are not on one regular grid --------------------------------------------------------------

def test_dicom_series_with_a_missing_slice_is_refused_naming_the_gap(tmp_path):
    from dicom_files import write_dicom_series

    series = write_dicom_series(tmp_path / "series", shape_kji=(6, 8, 7), spacing=(0.8, 0.8, 2.5))
    assert Volume.from_file(series).shape == (6, 8, 7)  # whole, it reads
    (series / "IM0003").unlink()
    _assert_error_names(series, "not on a regular grid", "slice 2 (im0002, at 35 mm)", "slice 3 (im0004, at 40 mm)",
                        "5 mm apart instead of 2.5 mm", "1 slice missing")


def test_dicom_series_with_a_duplicate_slice_is_refused(tmp_path):
    from dicom_files import write_dicom_series

    series = write_dicom_series(tmp_path / "series", shape_kji=(5, 8, 7))
    (series / "IM0002b").write_bytes((series / "IM0002").read_bytes())  # the same slice twice
    _assert_error_names(series, "not on a regular grid", "same position")


def test_dicom_series_with_gantry_tilt_is_refused(tmp_path):
    from dicom_files import write_dicom_series

    series = write_dicom_series(tmp_path / "series", shape_kji=(5, 8, 7), shift_per_slice=(0.0, 0.9))
    _assert_error_names(series, "not on a regular grid", "in-plane", "gantry tilt")
