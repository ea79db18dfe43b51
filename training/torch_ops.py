"""Voxel operations of the training recipe as batched torch ops (GPU when present), for training.torch_stream.

Tensors are (B, D, H, W) per-example patches; `g` is a torch.Generator on the patches' device, so a step's
draws depend only on its seed. scipy's conventions are kept where they matter: binary dilation and erosion use
the 6-neighbour cross and count the outside as background; the distance transform is exact (Euclidean, voxel size
per axis) with the patch border counting as outside, as training.clicks._depth computes it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

def _cross(device, dims: int = 3, plane_axis: int | None = None) -> torch.Tensor:
    """The 6-neighbour cross (scipy's default structure) as a conv3d kernel; with `plane_axis`, the 4-neighbour
    cross of the plane across that axis (2D morphology of one slice)."""
    kernel = torch.zeros((3, 3, 3), device=device)
    kernel[1, 1, 1] = 1
    for axis in range(3):
        if axis == plane_axis:
            continue
        index = [1, 1, 1]
        for end in (0, 2):
            index[axis] = end
            kernel[tuple(index)] = 1
    return kernel[None, None]


def dilate(mask: torch.Tensor, iterations, plane_axis: int | None = None) -> torch.Tensor:
    """scipy.ndimage.binary_dilation(mask, iterations=n) per example (`iterations`: int or one per example)."""
    return _morph(mask, iterations, plane_axis, erode=False)


def erode(mask: torch.Tensor, iterations, plane_axis: int | None = None) -> torch.Tensor:
    """scipy.ndimage.binary_erosion(mask, iterations=n) per example (the outside counts as background)."""
    return _morph(mask, iterations, plane_axis, erode=True)


def _morph(mask, iterations, plane_axis, erode: bool):
    steps = torch.as_tensor(iterations, device=mask.device).reshape(-1).expand(mask.shape[0])
    kernel = _cross(mask.device, plane_axis=plane_axis)
    full = float(kernel.sum())
    x = mask[:, None].float()
    for it in range(int(steps.max()) if steps.numel() else 0):
        hits = F.conv3d(x, kernel, padding=1)
        grown = (hits >= full - 0.5) if erode else (hits > 0.5)
        x = torch.where((it < steps).view(-1, 1, 1, 1, 1), grown.float(), x)
    return x[:, 0] > 0.5


def edt(mask: torch.Tensor, spacing) -> torch.Tensor:
    """Exact Euclidean distance of every voxel of `mask` (B, D, H, W) to the nearest voxel outside it (the patch
    border counts as outside), `spacing` (B, 3) in mm. The separable squared-distance transform: the first axis by
    nearest-background index scans (cummax / cummin), the others by the lower envelope min_j f(j) + (s (i - j))²
    over a window |i - j| <= sqrt(max f) / s, which holds every minimiser (j = i already gives f(i)), so the work is
    proportional to the deepest distance, not to the patch size."""
    batch = mask.shape[0]
    spacing = torch.as_tensor(spacing, dtype=torch.float32, device=mask.device).reshape(-1, 3).expand(batch, 3)
    inside = F.pad(mask, (1, 1, 1, 1, 1, 1))
    n = inside.shape[1]
    index = torch.arange(n, device=mask.device).view(1, n, 1, 1)
    left = torch.where(inside, -n, index).cummax(1).values
    right = torch.where(inside, 2 * n, index).flip(1).cummin(1).values.flip(1)
    f = (torch.minimum(index - left, right - index).float() * spacing[:, 0].view(-1, 1, 1, 1)) ** 2
    for axis in (2, 3):
        s = spacing[:, axis - 1].view(-1, 1, 1, 1)
        reach = min(int(torch.ceil(f.max().sqrt() / spacing[:, axis - 1].min()).item()), f.shape[axis] - 1)
        g = f.clone()
        for d in range(1, reach + 1):
            step = (d * s) ** 2
            ahead, behind = f.narrow(axis, 0, f.shape[axis] - d), f.narrow(axis, d, f.shape[axis] - d)
            g.narrow(axis, d, f.shape[axis] - d).copy_(torch.minimum(g.narrow(axis, d, f.shape[axis] - d), ahead + step))
            g.narrow(axis, 0, f.shape[axis] - d).copy_(torch.minimum(g.narrow(axis, 0, f.shape[axis] - d), behind + step))
        f = g
    return f[:, 1:-1, 1:-1, 1:-1].sqrt()


def pick(mask: torch.Tensor, g: torch.Generator, count: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """`count` distinct uniformly random voxels of each example's mask: (B, count, 3) indices and (B, count)
    found (False where the mask has fewer voxels)."""
    flat = mask.reshape(mask.shape[0], -1)
    scores = torch.rand(flat.shape, generator=g, device=mask.device)
    scores = torch.where(flat, scores, -1.0)
    best, index = scores.topk(count, dim=1)
    shape = mask.shape[1:]
    points = torch.stack([index // (shape[1] * shape[2]), (index // shape[2]) % shape[1], index % shape[2]], -1)
    return points.double(), best >= 0


def ball_maps(points: torch.Tensor, positive: torch.Tensor, valid: torch.Tensor, shape, radius: torch.Tensor,
              metric: torch.Tensor, chunk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative click maps (B, *shape) as inference.clickmaps.draw_ball draws them: voxels whose
    metric-scaled distance to a click is within `radius` (float64, so voxels exactly on the sphere agree)."""
    batch = points.shape[0]
    device = points.device
    axes = [torch.arange(n, device=device, dtype=torch.float64) for n in shape]
    maps = torch.zeros((2, batch) + tuple(shape), dtype=torch.bool, device=device)
    r2 = (radius.double() ** 2).view(batch, 1, 1, 1, 1)
    for start in range(0, points.shape[1], chunk):
        p, v = points[:, start:start + chunk], valid[:, start:start + chunk]
        if not bool(v.any()):
            continue
        terms = [((axes[a].view(1, 1, -1) - p[..., a:a + 1]) * metric[:, a].double().view(-1, 1, 1)) ** 2
                 for a in range(3)]
        dist2 = terms[0][..., :, None, None] + terms[1][..., None, :, None] + terms[2][..., None, None, :]
        inside = dist2 <= r2
        for sign, which in ((0, positive), (1, ~positive)):
            keep = (v & which[:, start:start + chunk]).view(batch, -1, 1, 1, 1)
            maps[sign] |= (inside & keep).any(1)
    return maps[0].float(), maps[1].float()


def gaussian(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """scipy.ndimage.gaussian_filter of one (D, H, W) volume (truncate 4; edges replicated, scipy reflects)."""
    radius = max(1, int(4.0 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, device=volume.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = volume[None, None].float()
    for axis in range(3):
        size = [1, 1, 1]
        size[axis] = kernel.numel()
        pad = [0] * 6
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = radius
        out = F.conv3d(F.pad(out, pad, mode="replicate"), kernel.view(1, 1, *size))
    return out[0, 0]


def resize(volume: torch.Tensor, shape, align_corners: bool) -> torch.Tensor:
    """Trilinear resampling of one (D, H, W) volume to `shape`."""
    return F.interpolate(volume[None, None], size=tuple(int(n) for n in shape), mode="trilinear",
                         align_corners=align_corners)[0, 0]


def thick_slices(volume: torch.Tensor, axis: int, factor: int) -> torch.Tensor:
    """Average blocks of `factor` voxels along `axis` and interpolate back (augment.thick_slices on the device)."""
    kernel = [1, 1, 1]
    kernel[axis] = factor
    coarse = F.avg_pool3d(volume[None, None], kernel, stride=kernel, ceil_mode=True, count_include_pad=False)[0, 0]
    return resize(coarse, volume.shape, align_corners=False)


def lookup(unit: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """np.interp(unit, linspace(0, 1, len(lut)), lut) on the device (unit clipped to [0, 1])."""
    position = unit.clamp(0, 1) * (lut.numel() - 1)
    low = position.floor().long().clamp(max=lut.numel() - 2)
    weight = position - low
    return lut[low] * (1 - weight) + lut[low + 1] * weight


def fill_holes_2d(section: torch.Tensor, plane_axis: int) -> torch.Tensor:
    """scipy.ndimage.binary_fill_holes of every plane across `plane_axis` of one (D, H, W) mask: the background
    reached from the plane's border (4-neighbour flood on the device) stays out, everything else is in."""
    outside = ~section
    border = torch.zeros_like(section)
    for axis in range(3):
        if axis != plane_axis:
            index = [slice(None)] * 3
            for end in (0, -1):
                index[axis] = end
                border[tuple(index)] = True
    reached = outside & border
    while True:
        for _ in range(16):
            reached = dilate(reached[None], 1, plane_axis)[0] & outside
        grown = dilate(reached[None], 1, plane_axis)[0] & outside
        if bool((grown == reached).all()):
            return ~reached
        reached = grown


def grid_points(roi_start, roi_step, shape, case_shape, device) -> torch.Tensor:
    """grid_sample's (1, D, H, W, 3) grid (x = i, y = j, z = k, align_corners=True) for the ROI x = start + p step."""
    coords = []
    for axis in range(3):
        index = float(roi_start[axis]) + torch.arange(shape[axis], device=device, dtype=torch.float64) * float(roi_step[axis])
        coords.append((2.0 * index / max(case_shape[axis] - 1, 1) - 1.0).float())
    k, j, i = torch.meshgrid(*coords, indexing="ij")
    return torch.stack([i, j, k], -1)[None]


def inside_grid(roi_start, roi_step, shape, case_shape, device) -> torch.Tensor:
    """(D, H, W) True where the ROI point lies within [0, n - 1] on every axis: scipy's constant mode gives cval
    beyond that even for order 0, where grid_sample would round -0.3 to voxel 0."""
    inside = []
    for axis in range(3):
        index = float(roi_start[axis]) + torch.arange(shape[axis], device=device, dtype=torch.float64) * float(roi_step[axis])
        inside.append((index >= 0) & (index <= case_shape[axis] - 1))
    return inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]


def smooth_shape(shape, centre, semi_axes_vox, q: torch.Tensor, noise: torch.Tensor, bend: float, device) -> torch.Tensor:
    """pseudo_objects.smooth_shape on the device: a rotated ellipsoid bent by trilinear 4x4x4 noise in its frame."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) - float(c) for n, c in zip(shape, centre)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1)
    unit = (grid @ q.to(device)) / torch.as_tensor(semi_axes_vox, dtype=torch.float32, device=device)
    radius = unit.square().sum(-1).sqrt()
    where = (unit.clamp(-1.5, 1.5) + 1.5) / 3.0 * 2.0 - 1.0  # noise index [0, 3] -> [-1, 1]
    bumps = F.grid_sample(noise.to(device)[None, None], where.flip(-1)[None], mode="bilinear",
                          padding_mode="border", align_corners=True)[0, 0]
    return radius < 1.0 + bend * bumps
