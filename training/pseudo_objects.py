"""Class-agnostic targets beyond the label maps, so the network learns "the thing under the click" rather than a
vertebra-sized blob: supervoxels of every training image, unions of neighbouring labels, and synthetic smooth shapes
pasted onto real backgrounds (nnInteractive trains on supervoxels and label unions, arXiv 2503.08373).

    python -m training.pseudo_objects --cache runs/cache   # supervoxels of every cached case (once, ~2 s a case)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage

SUPERVOXEL_MM = 2.0  # SLIC runs on a 2 mm grid: 8-30x faster than at 1 mm, and 2 mm is finer than the objects kept
MIN_CM3, MAX_CM3 = 0.5, 100.0
MEAN_CM3 = 8.0
# Only supervoxels whose border is an edge: SLIC also cuts flat tissue into arbitrary cells, and a cell with no visible
# border teaches the network to stop anywhere, which is the loose boundary the spine masks show. A cell is kept when
# its border's mean gradient over its interior's is in the top EDGE_KEEP of the case's cells.
EDGE_KEEP = 0.5


def supervoxels(image: np.ndarray, spacing_kji, mean_cm3: float = MEAN_CM3) -> np.ndarray:
    """3D SLIC supervoxels (uint16 labels on the image's grid, 0 = dropped: under 0.5 or over 100 cm³)."""
    from skimage import exposure
    from skimage.segmentation import slic

    spacing = np.asarray(spacing_kji, dtype=np.float64)
    factor = np.maximum(SUPERVOXEL_MM / spacing, 1.0)
    coarse = ndimage.zoom(image.astype(np.float32), 1.0 / factor, order=1)
    # Histogram-equalised, so that soft-tissue contrasts of CT (a few % of its range) count as much as MR's: on the
    # plain percentile range SLIC cut CT soft tissue into a grid of cubes.
    coarse = exposure.equalize_hist(coarse, nbins=1024).astype(np.float32)
    volume_cm3 = coarse.size * np.prod(spacing * factor) / 1000.0
    labels = slic(coarse, n_segments=max(8, int(volume_cm3 / mean_cm3)), compactness=0.1, channel_axis=None,
                  spacing=spacing * factor, start_label=1, enforce_connectivity=True)
    sizes_cm3 = np.bincount(labels.ravel()) * np.prod(spacing * factor) / 1000.0
    keep = (sizes_cm3 >= MIN_CM3) & (sizes_cm3 <= MAX_CM3)
    keep[0] = False
    keep &= distinct_cells(coarse, labels, keep)
    labels = np.where(keep[labels], labels, 0)
    # Back onto the image grid (nearest), exactly its shape.
    index = [np.minimum((np.arange(n) / f).astype(int), c - 1) for n, f, c in zip(image.shape, factor, labels.shape)]
    return labels[np.ix_(*index)].astype(np.uint16)


def edge_ratio(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per label value (index = value): mean gradient magnitude on the label's border voxels over that inside it
    (NaN for a value absent or without a border)."""
    from skimage.segmentation import find_boundaries

    grad = ndimage.gaussian_gradient_magnitude(image.astype(np.float32), 1.0)
    border = find_boundaries(labels, connectivity=1, mode="thick")  # both sides of every face between two labels
    index = np.arange(int(labels.max()) + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        on_border = np.asarray(ndimage.mean(grad, labels=np.where(border, labels, 0), index=index), np.float64)
        inside = np.asarray(ndimage.mean(grad, labels=np.where(border, 0, labels), index=index), np.float64)
        return on_border / np.maximum(inside, 1e-6)


def distinct_cells(image: np.ndarray, labels: np.ndarray, candidates: np.ndarray, keep: float = EDGE_KEEP) -> np.ndarray:
    """Boolean per label value: a candidate whose border stands out (edge_ratio in the top `keep` of candidates)."""
    ratio = edge_ratio(image, labels)
    scored = candidates & np.isfinite(ratio)
    if not scored.any():
        return scored
    threshold = np.quantile(ratio[scored], 1.0 - keep)
    return scored & (ratio >= threshold)


def supervoxel_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / (key.replace("/", "__") + ".supervoxels.npz")


def neighbour_values(label: np.ndarray, box: tuple, value: int, reach: int = 4) -> np.ndarray:
    """The other label values within `reach` voxels of object `value` (candidates for a union of two neighbours)."""
    grown = tuple(slice(max(s.start - reach, 0), s.stop + reach) for s in box)
    local = label[grown]
    near = ndimage.binary_dilation(local == value, iterations=reach) & (local != value) & (local > 0)
    return np.unique(local[near])


def neighbour_value(rng, label: np.ndarray, box: tuple, value: int, reach: int = 4) -> int | None:
    """A random other label value within `reach` voxels of object `value` (for a union of two neighbours)."""
    values = neighbour_values(label, box, value, reach)
    return int(rng.choice(values)) if values.size else None


def smooth_shape(rng, shape, centre, semi_axes_vox) -> np.ndarray:
    """A random smooth solid on the patch grid: a rotated ellipsoid whose surface is bent by low-frequency noise
    (defined in the ellipsoid's own normalised frame, so the bending scales with the object, not the patch)."""
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij"), -1) - np.asarray(centre, np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    unit = (grid @ q.astype(np.float32)) / np.asarray(semi_axes_vox, np.float32)
    radius = np.sqrt((unit ** 2).sum(-1))
    noise = rng.normal(size=(4, 4, 4)).astype(np.float32)
    noise -= noise.mean()
    where = np.moveaxis((np.clip(unit, -1.5, 1.5) + 1.5) * (3.0 / 3.0), -1, 0)  # [-1.5, 1.5] -> noise index [0, 3]
    bumps = ndimage.map_coordinates(noise, where.reshape(3, -1), order=1, mode="nearest").reshape(radius.shape)
    return radius < 1.0 + rng.uniform(0.0, 0.3) * bumps


def edge_sigma(rng, sharp: float = 0.0) -> float:
    """The blur of a pasted shape's edge in voxels, 0 for a clean shape (a step edge and a flat fill, as the engine's
    percentile clip makes of a small bright object). A model that only ever saw blurred, textured shapes read a step
    edge a voxel inside (a bright 6 mm sphere: 54 % of its volume, Dice 0.70; blurred by 0.6 voxel, 0.93) and left a
    hole at a click on a flat fill: `sharp` is the share of clean shapes. No extra draw when it is 0 (earlier recipes
    draw as before)."""
    sigma = rng.uniform(0.3, 1.5)
    return 0.0 if sharp and rng.random() < sharp else sigma


def paste_shape(rng, image: np.ndarray, mask: np.ndarray, sharp: float = 0.0) -> np.ndarray:
    """Paint `mask` into a normalised image with a random contrast (brighter or darker), texture and soft edge;
    with probability `sharp` a clean shape, flat with a step edge: see edge_sigma."""
    inside_sd = float(image.std()) or 1.0
    level = float(np.median(image[~mask])) if (~mask).any() else 0.0
    contrast = rng.uniform(0.8, 4.0) * inside_sd * rng.choice([-1.0, 1.0])
    sigma = edge_sigma(rng, sharp)
    alpha = ndimage.gaussian_filter(mask.astype(np.float32), sigma) if sigma else mask.astype(np.float32)
    texture = ndimage.gaussian_filter(rng.normal(size=image.shape).astype(np.float32), rng.uniform(0.5, 2.0))
    amplitude = rng.uniform(0.0, 0.5) * (1.0 if sigma else 0.0)  # the same draws either way
    fill = level + contrast + amplitude * inside_sd * texture / max(float(texture.std()), 1e-6)
    return (image * (1 - alpha) + fill * alpha).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Supervoxels of every cached training case (class-agnostic targets).")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--redo", action="store_true", help="recompute existing supervoxel files (a changed recipe)")
    args = parser.parse_args(argv)
    for path in sorted(args.cache.glob("*.npz")):
        if path.name.endswith(".supervoxels.npz"):
            continue
        target = path.with_name(path.name[:-4] + ".supervoxels.npz")
        if target.exists() and not args.redo:
            continue
        with np.load(path) as npz:
            labels = supervoxels(npz["image_u8"], npz["spacing_kji"])
        tmp = target.with_name(target.name + ".tmp.npz")
        np.savez_compressed(tmp, supervoxels=labels)
        tmp.replace(target)
        print(f"{path.name}: {len(np.unique(labels)) - 1} supervoxels")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
