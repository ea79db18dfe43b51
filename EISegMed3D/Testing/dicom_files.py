"""Small real DICOM series written with SimpleITK's GDCM writer, for the data-folder and bad-input tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_dicom_series(folder, shape_kji=(5, 8, 7), spacing=(0.8, 0.8, 2.5), origin=(10.0, -20.0, 30.0),
                       shift_per_slice=(0.0, 0.0)):
    """A real DICOM series, one file per slice (IM0000, IM0001, ...), with the tags GDCM needs to group and order
    it. `shift_per_slice` moves each slice in-plane (x, y mm per slice), as a gantry-tilted CT does."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.arange(np.prod(shape_kji), dtype=np.int16).reshape(shape_kji))
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("GDCMImageIO")  # file names without .dcm: say the format explicitly
    writer.KeepOriginalImageUIDOn()
    series_uid = "1.2.826.0.1.3680043.2.1125.1." + str(abs(hash(str(folder))) % 10**12)
    for k in range(shape_kji[0]):
        slice_ = image[:, :, k]
        position = np.array(image.TransformIndexToPhysicalPoint((0, 0, k)))
        position[:2] += np.array(shift_per_slice) * k
        tags = {"0008|0060": "MR", "0020|000d": series_uid + ".0", "0020|000e": series_uid,
                "0020|0037": "1\\0\\0\\0\\1\\0", "0020|0032": "\\".join(f"{v:.4f}" for v in position),
                "0020|0013": str(k + 1), "0028|0030": f"{spacing[1]}\\{spacing[0]}", "0018|0050": str(spacing[2])}
        for tag, value in tags.items():
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"IM{k:04d}"))  # no .dcm suffix: detection must read the file
        writer.Execute(slice_)
    return folder
