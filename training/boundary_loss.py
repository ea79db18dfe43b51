"""Kervadec et al.'s boundary loss (MIDL 2019): the mean of the foreground probability times the reference's signed
distance map. A voxel predicted foreground costs its distance outside the reference edge, one inside earns its depth,
so far leaks and deep holes weigh more than the one-voxel edge error the band-weighted BCE already covers. Shared by
both trainers (training.torch_bridge, training.paddle_trainer): the distances come from the numpy mask."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk


def signed_distance(masks: np.ndarray) -> np.ndarray:
    """[B, 1, D, H, W] reference masks (> 0.5 is inside) -> float32 distance in voxels to the edge, negative inside
    (0 on the inside edge voxels, 1 just outside: Maurer's map). An empty or full example has no edge: all 0."""
    masks = np.asarray(masks) > 0.5
    out = np.zeros(masks.shape, np.float32)
    distance = sitk.SignedMaurerDistanceMapImageFilter()
    distance.SetInsideIsPositive(False)
    distance.SetSquaredDistance(False)
    distance.SetUseImageSpacing(False)  # the patch's voxels: the network's grid, whatever the scan's spacing
    distance.SetNumberOfThreads(1)  # a training process owns one core (threads 1 in the configs)
    for b in range(masks.shape[0]):
        mask = masks[b, 0]
        if mask.any() and not mask.all():
            image = sitk.GetImageFromArray(mask.astype(np.uint8))
            out[b, 0] = sitk.GetArrayFromImage(distance.Execute(image))  # a copy: a view dies with the image
    return out
