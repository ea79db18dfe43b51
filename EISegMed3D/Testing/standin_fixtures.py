"""A small source data folder for the stand-in makers' tests (benchmarks/*_standin.py)."""
from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk


def write_source(folder):
    """A 16 x 40 x 40 scan (k, j, i), 1 x 0.8 x 0.8 mm, an oblique direction, a bright box labelled 3."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    array = rng.normal(10.0, 2.0, (16, 40, 40)).astype(np.float32)
    label = np.zeros(array.shape, np.uint8)
    label[5:11, 12:20, 15:30] = 3
    array[label > 0] += 100.0
    images = []
    for values in (array, label):
        image = sitk.GetImageFromArray(values)
        image.SetSpacing((0.8, 0.8, 1.0))
        image.SetOrigin((-5.0, 12.0, 30.0))
        image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
        images.append(image)
    sitk.WriteImage(images[0], str(folder / "case_000.nii.gz"))
    sitk.WriteImage(images[1], str(folder / "case_000_label.nii.gz"))
    meta = {"name": "src", "cases": [{"case": "case_000", "image": "case_000.nii.gz", "label": "case_000_label.nii.gz"}]}
    (folder / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return images
