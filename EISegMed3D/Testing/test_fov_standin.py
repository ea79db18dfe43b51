"""benchmarks/fov_standin.py: validation scans with a wider or tighter field of view keep their geometry and labels."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from benchmarks.fov_standin import make
from standin_fixtures import write_source


def _labelled_points(label: sitk.Image) -> set:
    """Physical positions (rounded to 0.01 mm) of the labelled voxels."""
    array = sitk.GetArrayFromImage(label)
    return {tuple(np.round(np.array(label.TransformIndexToPhysicalPoint([int(i), int(j), int(k)])), 2))
            for k, j, i in np.argwhere(array > 0)}


def test_a_wider_field_keeps_every_label_where_it_was_and_raises_the_objects_z(tmp_path, capsys):
    image, label = write_source(tmp_path / "src")
    out = make(tmp_path / "src", tmp_path / "pad", None, "pad", 1.5, 15.0)
    new_image, new_label = (sitk.ReadImage(str(out / n)) for n in ("case_000.nii.gz", "case_000_label.nii.gz"))
    assert new_image.GetSize() == (60, 60, 16)  # the two long axes grow by half; the short one stays
    np.testing.assert_allclose(new_image.GetDirection(), image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(new_image.GetSpacing(), image.GetSpacing(), rtol=1e-6)
    assert _labelled_points(new_label) == _labelled_points(label)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(new_label)[:, 10:50, 10:50], sitk.GetArrayFromImage(label))
    before, after = (float(v) for v in capsys.readouterr().out.split("z ")[1].split()[0:3:2])
    assert after > before + 0.2
    assert json.loads((out / "dataset.json").read_text())["name"] == "src_fov_pad"


def test_a_tight_field_is_cut_to_the_labels_with_the_margin(tmp_path):
    image, label = write_source(tmp_path / "src")
    out = make(tmp_path / "src", tmp_path / "crop", None, "crop", 1.5, 2.0)
    new_label = sitk.ReadImage(str(out / "case_000_label.nii.gz"))
    # 2 mm: 2 voxels along k (1 mm), 3 along j and i (0.8 mm), clipped at the scan's edge
    assert new_label.GetSize() == (15 + 6, 8 + 6, 6 + 4)
    assert _labelled_points(new_label) == _labelled_points(label)
