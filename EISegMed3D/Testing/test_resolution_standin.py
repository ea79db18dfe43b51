"""benchmarks/resolution_standin.py: validation scans on a finer slice-plane grid keep their extent and objects."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from benchmarks.resolution_standin import make
from standin_fixtures import write_source


def _corners(image: sitk.Image) -> np.ndarray:
    """Physical positions of the outer corners of the first and last voxel (the grid's extent)."""
    size = np.array(image.GetSize())
    return np.array([image.TransformContinuousIndexToPhysicalPoint((c - 0.5).tolist()) for c in (np.zeros(3), size)])


def test_the_slice_plane_gets_twice_as_fine_with_the_same_extent_and_object(tmp_path):
    image, label = write_source(tmp_path / "src")
    out = make(tmp_path / "src", tmp_path / "fine", None, 2.0, noise=False)
    new_image, new_label = (sitk.ReadImage(str(out / n)) for n in ("case_000.nii.gz", "case_000_label.nii.gz"))
    assert new_image.GetSize() == (80, 80, 16)  # the two largest axes (i, j) split; the slice axis stays
    np.testing.assert_allclose(new_image.GetSpacing(), (0.4, 0.4, 1.0), rtol=1e-6)
    np.testing.assert_allclose(_corners(new_image), _corners(image), atol=1e-4)
    np.testing.assert_allclose(new_image.GetDirection(), image.GetDirection(), atol=1e-6)
    # each old voxel becomes exactly 2 x 2 new ones with its label: the same object, the same volume in mm3
    old, new = sitk.GetArrayFromImage(label), sitk.GetArrayFromImage(new_label)
    np.testing.assert_array_equal(new, np.repeat(np.repeat(old, 2, axis=1), 2, axis=2))
    assert json.loads((out / "dataset.json").read_text())["name"] == "src_fine"


def test_noise_makes_the_smaller_voxels_as_noisy_as_their_size_says(tmp_path):
    write_source(tmp_path / "src")
    plain = make(tmp_path / "src", tmp_path / "plain", None, 2.0, noise=False)
    noisy = make(tmp_path / "src", tmp_path / "noisy", None, 2.0, noise=True)
    a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(f / "case_000.nii.gz"))) for f in (plain, noisy))
    added = (b - a).std()
    # the object's own noise is sd 2 (its neighbour differences / sqrt 2); a voxel 4 times smaller: sd x 2, i.e.
    # sqrt(2^2 - 1) x 2 added on top of what the interpolated image keeps
    assert 3.0 < added < 4.0
    np.testing.assert_allclose(b.mean(), a.mean(), atol=0.05)
