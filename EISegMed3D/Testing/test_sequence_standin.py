"""benchmarks/sequence_standin.py: the unseen-sequence stand-in for the adaptation benchmark (issue 11)."""
from __future__ import annotations

import json
import os

import numpy as np
import SimpleITK as sitk

from benchmarks.sequence_standin import make, t1_like


def test_the_curve_keeps_air_dark_and_turns_the_brightest_tissue_darker_than_the_middle():
    rng = np.random.default_rng(0)
    air = rng.uniform(0, 5, 4000)
    tissue = rng.uniform(60, 120, 4000)   # middle grey (bone marrow on the water image)
    fluid = rng.uniform(220, 255, 2000)  # brightest (CSF, discs)
    out = t1_like(np.concatenate([air, tissue, fluid]).reshape(10, 20, 50))
    out = out.ravel()
    assert out[:4000].max() < 0.1 * out[4000:8000].mean()  # air stays the darkest
    assert out[8000:].mean() < 0.6 * out[4000:8000].mean()  # bright fluid now darker than tissue
    assert 0.0 <= out.min() and out.max() <= 255.0


def test_air_above_a_zero_padding_stays_dark_with_an_air_percentile():
    """The T2 folder: a thin zero border, air at ~35 over most of the scan. Taken from the minimum, air sat at
    the curve's peak and came out the brightest; from the 5th percentile it stays dark."""
    rng = np.random.default_rng(1)
    padding = np.zeros(500)
    air = rng.uniform(32, 38, 8000)
    tissue = rng.uniform(90, 150, 2000)
    fluid = rng.uniform(220, 255, 500)
    image = np.concatenate([padding, air, tissue, fluid]).reshape(11, 20, 50)
    out = t1_like(image, air_percentile=5).ravel()
    air_out, tissue_out, fluid_out = out[500:8500], out[8500:10500], out[10500:]
    assert air_out.mean() < 0.1 * tissue_out.mean()
    assert fluid_out.mean() < 0.6 * tissue_out.mean()
    assert t1_like(image).ravel()[500:8500].mean() > 0.5 * t1_like(image).ravel()[8500:10500].mean()  # the old way


def _write_case(folder, name, value):
    image = sitk.GetImageFromArray(np.full((6, 7, 8), value, np.uint8))
    image.SetSpacing((0.8, 0.9, 3.0))
    image.SetOrigin((10.0, -5.0, 2.0))
    image.SetDirection((0, 0, 1, 1, 0, 0, 0, 1, 0))
    sitk.WriteImage(image, str(folder / f"{name}.nii.gz"))
    label = sitk.GetImageFromArray(np.ones((6, 7, 8), np.uint8))
    label.CopyInformation(image)
    sitk.WriteImage(label, str(folder / f"{name}_label.nii.gz"))
    return {"case": name, "image": f"{name}.nii.gz", "label": f"{name}_label.nii.gz"}


def test_make_leaves_out_the_base_models_training_cases_and_keeps_geometry(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    cases = [_write_case(source, f"case_{n:03d}", 40 + n) for n in range(3)]
    (source / "dataset.json").write_text(json.dumps({"name": "src", "cases": cases}))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["src/case_001"], "val": []}))

    out = make(source, tmp_path / "derived", split)

    meta = json.loads((out / "dataset.json").read_text())
    assert [c["case"] for c in meta["cases"]] == ["case_000", "case_002"]
    assert meta["derived_from"] == str(source.resolve())
    assert not (out / "case_001.nii.gz").exists()
    original = sitk.ReadImage(str(source / "case_002.nii.gz"))
    derived = sitk.ReadImage(str(out / "case_002.nii.gz"))
    assert derived.GetSize() == original.GetSize()
    assert np.allclose(derived.GetSpacing(), original.GetSpacing())
    assert np.allclose(derived.GetOrigin(), original.GetOrigin())
    assert np.allclose(derived.GetDirection(), original.GetDirection())
    assert os.path.islink(out / "case_002_label.nii.gz")
    assert os.path.realpath(out / "case_002_label.nii.gz") == str((source / "case_002_label.nii.gz").resolve())
