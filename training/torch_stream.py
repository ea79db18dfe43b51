"""The training data stream with the voxel work on the trainer's device (GPU when present): `"stream": "torch"`.

Same interface as training.batches.ExampleStream (batch, add_error_clicks, arrays, close), so training.train.run
drives either. What stays on the CPU is cheap and is the engine's and the CPU recipe's own code
(training.stream_plans, optionally `plan_workers` processes a step ahead): the case, the target (label, union or
supervoxel, and its first click, draw for draw as training.sampler._label_target), the ROI
(inference.model_input.choose_roi, zoom and jitter drawn as training.sampler.make_example draws them) and the
scalar draws of every augmentation (numpy, seeded by (seed, step, slot)). The voxel work runs batched on the
device: ROI resampling (grid_sample: trilinear image, nearest labels and supervoxels), the engine's normalisation,
synthetic shapes, flips and axis orders, the intensity augmentations, click balls (inference.clickmaps' rule),
box / lasso region channels, scribbles, and the error-driven click (exact EDT, training.torch_ops.edt); voxel
draws use a torch.Generator seeded by (seed, step). Where it differs from the CPU recipe, see `DIFFERENCES`.
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F

from inference.clickmaps import ball_radius

from . import torch_ops as ops
from .augment import random_curve, wide_scale
from .batches import case_weights
from .hard_objects import attach as attach_hard_objects
from .pseudo_objects import edge_sigma
from .prompt_sim import prism_with_clicks
from .sampler import _prompt_kind, click_channel_names
from .soft_target import axis_overlaps, dense, read_region
from .stream_plans import cpu_part, draw_plan, init_planner, load_source, plan_once, plan_slot, source_of

DIFFERENCES = """\
- Resampling: torch grid_sample instead of scipy affine_transform (trilinear = order 1 with edge replication;
  nearest labels round half to even where scipy rounds half up); values agree to float32 rounding.
- Thick slices: block means (avg_pool, blocks start at the patch edge) and trilinear interpolation back; the CPU
  recipe takes a centred running mean. Blur: Gaussian with replicated edges (scipy reflects). Bias field and down-up
  resolution loss: trilinear interpolation (scipy zoom order 1). Same probabilities and parameter ranges.
- Voxel draws (click positions, noise, texture) come from the torch generator, so a step's examples are not the
  CPU stream's examples draw for draw; case, target, ROI and every probability are.
- Several clicks of one kind (extra positives, a scribble's corners) are distinct voxels (the CPU may repeat one).
- Scribbles: 64 points per stroke segment (the CPU spaces them half a ball radius apart), kept where they lie in
  the scribble's region, so a stroke is as continuous for balls of at least 1.5 voxels.
"""

class TorchExampleStream:
    """Batches of examples made on `device` from cases held there (see the module docstring)."""

    def __init__(self, cases: list[dict], manifest: dict, batch_size: int, seed: int, sampling: str = "case",
                 options: dict | None = None, device=None, planners: int = 0, source: tuple | None = None):
        """`planners` > 0 worker processes draw the next step's cases, targets and ROIs while this step trains
        (`source`: ("pack", path) or ("cache", folder, keys) to load the label maps from); the draws are the same."""
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.manifest, self.batch_size, self.seed, self.options = manifest, batch_size, seed, options or {}
        self.weights = case_weights([case["key"] for case in cases], sampling)
        self.patch = tuple(int(n) for n in manifest["patch_shape"])
        self.names = click_channel_names(manifest)
        self.cases, self.volumes = [], []
        for case in cases:
            self.cases.append(cpu_part(case))
            self.volumes.append(_device_part(case, self.device))
        attach_hard_objects(self.cases, self.options)
        self.pool, self._pending = None, None
        if planners > 0:
            if source is None:
                raise ValueError("planner processes need the cases' source: ('pack', path) or ('cache', folder, keys)")
            import multiprocessing as mp

            self.pool = mp.get_context("spawn").Pool(planners, initializer=init_planner,
                                                     initargs=(source, manifest, sampling, self.options))

    @classmethod
    def from_config(cls, config: dict, keys: list, manifest: dict, device=None) -> "TorchExampleStream":
        """From the carry pack (`"pack"`, training.carry) when the config names one, else from the cache;
        `"plan_workers"`: processes drawing the next step's targets and ROIs meanwhile (0: in this process)."""
        source = source_of(config, keys)
        return cls(load_source(source), manifest, config["batch_size"], config["seed"], config.get("case_sampling", "case"),
                   config.get("sampling"), device, int(config.get("plan_workers", 0)), source)

    # --- the stream interface -------------------------------------------------------------------------------
    def batch(self, step: int) -> dict:
        g = torch.Generator(device=self.device)
        g.manual_seed(int(np.random.SeedSequence([self.seed, step, 7]).generate_state(1)[0]))
        firsts = self._plans(step)
        rngs = []
        for _, state in firsts:
            rngs.append(np.random.default_rng())
            rngs[-1].bit_generator.state = state
        slots = [self._valid_patch(rng, g, plan) for rng, (plan, _) in zip(rngs, firsts)]
        examples = self._assemble(rngs, slots, g)
        examples["generator"] = g
        return examples

    def add_error_clicks(self, examples: dict, predictions) -> dict:
        """Feed the prediction back as the previous mask and add one click in the larger error's deeper half."""
        prediction = torch.as_tensor(predictions, device=self.device).reshape(examples["gt"].shape).bool()
        gt = examples["gt"]
        depth = {}
        for name, error in (("missed", gt & ~prediction), ("extra", prediction & ~gt)):
            d = ops.edt(error, examples["voxel_mm"])
            depth[name] = (d, d.amax((1, 2, 3)))
        use_extra = depth["extra"][1] > depth["missed"][1]  # the missed error first; extra only when deeper
        d = torch.where(use_extra.view(-1, 1, 1, 1), depth["extra"][0], depth["missed"][0])
        top = torch.maximum(depth["extra"][1], depth["missed"][1])
        point, found = ops.pick(d > (top / 2).view(-1, 1, 1, 1), examples["generator"])
        found = found[:, 0] & (top > 0)
        examples = dict(examples)
        examples["previous"] = prediction.float()
        self._add_clicks(examples, point, ~use_extra[:, None], found[:, None])
        return examples

    def arrays(self, examples: dict):
        clicked = examples["valid"].any(1).view(-1, 1, 1, 1)
        maps = {"previous_mask": examples["previous"], "positive_clicks": examples["pos"],
                "negative_clicks": examples["neg"], "region": prism_with_clicks(examples["region"], self.manifest, clicked)}
        clicks = torch.stack([maps[name] for name in self.names], 1)
        return examples["image"][:, None], clicks, examples.get("soft", examples["gt"].float())[:, None]

    def close(self) -> None:
        self.volumes = []
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None

    # --- one slot: case, target, ROI (CPU), resampled patch (device) -----------------------------------------
    def _plans(self, step: int) -> list:
        """Each slot's first (plan, rng state after it); with planner processes, the next step's start meanwhile."""
        seeds = [(self.seed, step, slot) for slot in range(self.batch_size)]
        if self.pool is None:
            return [draw_plan(seed, self.cases, self.weights, self.manifest, self.options) for seed in seeds]
        pending, self._pending = self._pending, None
        plans = pending[1].get() if pending and pending[0] == step else self.pool.map(plan_slot, seeds)
        self._pending = (step + 1, self.pool.map_async(plan_slot, [(self.seed, step + 1, s) for s in range(self.batch_size)]))
        return plans

    def _valid_patch(self, rng, g, plan: dict | None) -> dict:
        for _ in range(1000):
            if plan is None:  # the first draw failed its 20-voxel check: the slot's rng draws again, as batches does
                plan = plan_once(rng, self.cases, self.weights, self.manifest, self.options)
            if plan is None:
                continue
            image, gt, others = self._patch(rng, plan, g)
            if int(gt.sum()) >= 20:  # as make_example: a sliver is no target
                plan.update(image=image, gt=gt, others=others)
                if self.options.get("soft_target"):
                    plan["soft"] = self._soft(plan) if plan["kind"] != "synthetic" else gt.float()
                return plan
            plan = None
        raise RuntimeError("no training example with a target of 20 voxels or more in 1000 draws")

    def _patch(self, rng, plan: dict, g):
        image_volume, label_volume = self.volumes[plan["case"]]
        roi = plan["roi"]
        grid = ops.grid_points(roi.start, roi.step, roi.shape, image_volume.shape[2:], self.device)
        image = F.grid_sample(image_volume, grid, mode="bilinear", padding_mode="border", align_corners=True)[0, 0]
        labels = F.grid_sample(label_volume, grid, mode="nearest", padding_mode="zeros", align_corners=True)[0]
        labels = labels * ops.inside_grid(roi.start, roi.step, roi.shape, label_volume.shape[2:], self.device)
        if plan["kind"] == "synthetic":
            gt = ops.smooth_shape(roi.shape, roi.to_patch(plan["centre"]), plan["semi_mm"] / roi.voxel_mm(plan["spacing"]),
                                  torch.from_numpy(np.linalg.qr(rng.normal(size=(3, 3)))[0].astype(np.float32)),
                                  torch.from_numpy(_centred(rng.normal(size=(4, 4, 4)))), float(rng.uniform(0.0, 0.3)),
                                  self.device)
            image = _paste(rng, image, gt, g, self.options.get("sharp_edge", 0.0))
        else:
            gt = _member(labels[1] if plan["kind"] == "supervoxel" else labels[0], plan["values"])
        others = (labels[0] > 0) & ~gt
        return image, gt, others

    def _soft(self, plan: dict) -> torch.Tensor:
        """training.soft_target.coverage on the device: the covered fraction of each view voxel, by one matrix
        product per axis."""
        label_volume = self.volumes[plan["case"]][1]
        source = label_volume[0, 1 if plan["kind"] == "supervoxel" else 0]
        roi = plan["roi"]
        first, stop = read_region(source.shape, roi, plan["box"])
        out = _member(source[first[0]:stop[0], first[1]:stop[1], first[2]:stop[2]], plan["values"]).float()
        for axis, (index, weight) in enumerate(axis_overlaps(roi, source.shape, first, stop)):
            matrix = torch.from_numpy(dense(index, weight, int(stop[axis] - first[axis]))).to(self.device)
            out = torch.movedim(torch.tensordot(matrix, out, dims=([1], [axis])), 0, axis)
        return out.clamp(0.0, 1.0)

    # --- the batch: geometry, intensity, prompts ---------------------------------------------------------------
    def _assemble(self, rngs, slots, g) -> dict:
        images, gts, others, starts, voxel_mm, softs = [], [], [], [], [], []
        for rng, slot in zip(rngs, slots):
            arrays = [slot["image"], slot["gt"], slot["others"]] + ([slot["soft"]] if "soft" in slot else [])
            moved, start, order = _geometry(rng, arrays, slot["roi"].to_patch(slot["first_scan"]))
            image, gt, other = moved[:3]
            softs.extend(moved[3:])
            images.append(_intensity(rng, image, self.options.get("contrast", "gamma"), g,
                                     self.options.get("intensity_scale")))
            gts.append(gt), others.append(other), starts.append(start)
            voxel_mm.append(slot["roi"].voxel_mm(slot["spacing"])[order])
        gt, other = torch.stack(gts), torch.stack(others)
        batch = len(slots)
        voxel = torch.as_tensor(np.array(voxel_mm), device=self.device)
        radius = [ball_radius(self.manifest, v) for v in voxel_mm]
        examples = {"image": torch.stack(images), "gt": gt, "others": other, "voxel_mm": voxel,
                    "radius": torch.tensor([r for r, _ in radius], dtype=torch.float64, device=self.device),
                    "metric": torch.as_tensor(np.array([m for _, m in radius]), device=self.device),
                    "rois": [slot["roi"] for slot in slots], "keys": [self.cases[slot["case"]]["key"] for slot in slots],
                    "pos": torch.zeros(gt.shape, device=self.device), "neg": torch.zeros(gt.shape, device=self.device),
                    "points": torch.zeros((batch, 0, 3), dtype=torch.float64, device=self.device),
                    "positive": torch.zeros((batch, 0), dtype=torch.bool, device=self.device),
                    "valid": torch.zeros((batch, 0), dtype=torch.bool, device=self.device)}
        if softs:
            examples["soft"] = torch.stack(softs)

        # Refinement of an imperfect mask (10 %), then the first prompt's kind, as make_example draws them.
        refine = [rng.random() < 0.1 for rng in rngs]
        previous = torch.zeros(gt.shape, device=self.device)
        for b, rng in enumerate(rngs):
            if refine[b]:
                previous[b] = _perturbed(rng, gt[b]).float()
        examples["previous"] = previous
        kinds = [None if refine[b] else _prompt_kind(rng, self.options) for b, rng in enumerate(rngs)]
        region = torch.zeros(gt.shape, device=self.device)
        has_region = [False] * batch
        for b, rng in enumerate(rngs):
            if kinds[b] in ("box", "lasso"):
                has_region[b] = _region_prompt(rng, gt[b], kinds[b], region[b], g, self.manifest.get("region_prism", 0.0))
        examples["region"] = region

        # The first click: where the ROI was centred, re-drawn inside the object when resampling moved it off.
        start = torch.as_tensor(np.array(starts), device=self.device)
        use_start = torch.tensor([not refine[b] and not has_region[b] for b in range(batch)], device=self.device)
        inside = _inside(gt, start)
        redraw = use_start & ~inside
        if bool(redraw.any()):
            coin = torch.tensor([rng.random() < 0.4 for rng in rngs], device=self.device)
            start = torch.where(redraw[:, None], _first_positive(gt, voxel, coin, g), start)
        examples["first"], examples["first_valid"] = start, use_start.clone()
        self._add_clicks(examples, start[:, None], torch.ones((batch, 1), dtype=torch.bool, device=self.device),
                         use_start[:, None])

        scribble = [kinds[b] == "scribble" for b in range(batch)]
        if any(scribble):
            self._add_scribbles(examples, rngs, scribble, g)
        initial = [not (has_region[b] and rng.random() < 0.5) and (bool(use_start[b]) or refine[b] or has_region[b])
                   for b, rng in enumerate(rngs)]
        self._add_initial_clicks(examples, rngs, initial, g)
        return examples

    def _add_clicks(self, examples: dict, points, positive, valid) -> None:
        """Append clicks (B, n, 3) and draw their balls into the positive / negative maps."""
        pos, neg = ops.ball_maps(points, positive, valid, examples["gt"].shape[1:], examples["radius"], examples["metric"])
        examples["pos"] = torch.maximum(examples["pos"], pos)
        examples["neg"] = torch.maximum(examples["neg"], neg)
        examples["points"] = torch.cat([examples["points"], points.double()], 1)
        examples["positive"] = torch.cat([examples["positive"], positive], 1)
        examples["valid"] = torch.cat([examples["valid"], valid], 1)

    def _add_initial_clicks(self, examples: dict, rngs, wanted, g) -> None:
        """training.clicks.initial_clicks after the first click: 0-3 more positives, 0-3 negatives on the border
        ring (50 %), other structures (40 %) or the background (10 %)."""
        gt, others = examples["gt"], examples["others"]
        device = self.device
        n_pos = torch.tensor([_geometric(rng, 0.6, 3) if w else 0 for rng, w in zip(rngs, wanted)], device=device)
        ring_width = [int(rng.integers(2, 7)) for rng in rngs]
        n_neg = torch.tensor([_geometric(rng, 0.5, 3) if w else 0 for rng, w in zip(rngs, wanted)], device=device)
        where = torch.tensor([[rng.random() for _ in range(3)] for rng in rngs], device=device)
        points, found = ops.pick(gt, g, 3)
        self._add_clicks(examples, points, torch.ones_like(found), found & (torch.arange(3, device=device) < n_pos[:, None]))
        ring = ops.dilate(gt, ring_width) & ~gt
        choices = (ring, others & ~gt, ~gt)
        for c in range(3):
            code = (where[:, c] >= 0.5).long() + (where[:, c] >= 0.9).long()
            region = torch.stack([choices[int(k)][b] for b, k in enumerate(code.tolist())])
            empty = ~region.flatten(1).any(1)
            region = torch.where(empty.view(-1, 1, 1, 1), ring, region)
            point, ok = ops.pick(region, g)
            self._add_clicks(examples, point, torch.zeros_like(ok), ok & (c < n_neg)[:, None])

    def _add_scribbles(self, examples: dict, rngs, wanted, g, samples: int = 64) -> None:
        """training.prompt_sim.scribble_clicks: a polyline through 2-4 voxels of the object's core (positive, 80 %)
        or of its ring / other structures, as balls along it where it stays in that region."""
        gt, others, device = examples["gt"], examples["others"], self.device
        sign = torch.tensor([rng.random() < 0.8 for rng in rngs], device=device)
        width = [int(rng.integers(2, 6)) for rng in rngs]
        use_others = torch.tensor([rng.random() < 0.5 for rng in rngs], device=device)
        knots = torch.tensor([int(rng.integers(2, 5)) for rng in rngs], device=device)
        core = ops.erode(gt, 1)
        core = torch.where(core.flatten(1).any(1).view(-1, 1, 1, 1), core, gt)
        ring = ops.dilate(gt, width) & ~gt
        other = others & ~gt
        outside = torch.where((use_others & other.flatten(1).any(1)).view(-1, 1, 1, 1), other, ring)
        region = torch.where(sign.view(-1, 1, 1, 1), core, outside)
        corners, ok = ops.pick(region, g, 4)
        ok &= torch.arange(4, device=device) < knots[:, None]
        ok &= torch.tensor(wanted, device=device)[:, None]
        ok &= ok.sum(1, keepdim=True) >= 2
        hi = torch.where(ok[..., None], corners, -np.inf).amax(1)
        lo = torch.where(ok[..., None], corners, np.inf).amin(1)
        axis = (hi - lo).nan_to_num(0.0).argmax(1)
        key = torch.where(ok, corners.gather(2, axis.view(-1, 1, 1).expand(-1, 4, 1))[..., 0], np.inf)
        order = key.argsort(1)
        corners = corners.gather(1, order[..., None].expand(-1, -1, 3))
        ok = ok.gather(1, order)
        t = torch.linspace(0.0, 1.0, samples, device=device, dtype=torch.float64).view(1, 1, -1, 1)
        a, b = corners[:, :-1, None], corners[:, 1:, None]
        points = (a + t * (b - a)).reshape(len(rngs), -1, 3)
        segment_ok = (ok[:, :-1] & ok[:, 1:])[..., None].expand(-1, -1, samples).reshape(len(rngs), -1)
        index = points.round().long()
        shape = gt.shape[1:]
        flat = (index[..., 0] * shape[1] + index[..., 1]) * shape[2] + index[..., 2]
        in_region = region.flatten(1).gather(1, flat.clamp(0, region[0].numel() - 1))
        self._add_clicks(examples, points, sign[:, None].expand_as(segment_ok), segment_ok & in_region)


def _device_part(case: dict, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised image (1, 1, D, H, W), [label, supervoxels] (1, 2, D, H, W)) as float32 on the device.

    The engine's percentile z-score of a dequantised uint8 crop is affine in the stored byte, and trilinear
    resampling commutes with an affine map, so normalising once here equals normalising every patch."""
    stats = case["stats"]
    u8 = torch.from_numpy(np.ascontiguousarray(case["image_u8"])).to(device)
    scale = (stats["hi"] - stats["lo"]) / 255.0
    image = ((stats["lo"] + u8.float() * scale) - stats["mean"]) / stats["std"]
    labels = [torch.from_numpy(np.asarray(case["label"], dtype=np.float32))]
    sv = case.get("supervoxels")
    labels.append(torch.from_numpy(np.asarray(sv, dtype=np.float32)) if sv is not None else torch.zeros(labels[0].shape))
    return image[None, None].contiguous(), torch.stack(labels)[None].to(device)


# --- the device part, per example ---------------------------------------------------------------------------
def _centred(noise: np.ndarray) -> np.ndarray:
    return (noise - noise.mean()).astype(np.float32)


def _paste(rng, image: torch.Tensor, mask: torch.Tensor, g, sharp: float = 0.0) -> torch.Tensor:
    """pseudo_objects.paste_shape: the shape painted with a random contrast, texture and soft edge (or clean)."""
    inside_sd = image.std().clamp_min(1e-6)
    level = image[~mask].median() if bool((~mask).any()) else image.new_zeros(())
    contrast = float(rng.uniform(0.8, 4.0)) * inside_sd * float(rng.choice([-1.0, 1.0]))
    sigma = edge_sigma(rng, sharp)
    alpha = ops.gaussian(mask.float(), sigma) if sigma else mask.float()
    texture = ops.gaussian(torch.randn(image.shape, generator=g, device=image.device), float(rng.uniform(0.5, 2.0)))
    amplitude = float(rng.uniform(0.0, 0.5)) * (1.0 if sigma else 0.0)  # the same draws either way
    fill = level + contrast + amplitude * inside_sd * texture / texture.std().clamp_min(1e-6)
    return image * (1 - alpha) + fill * alpha


def _member(labels: torch.Tensor, values) -> torch.Tensor:
    """Where `labels` holds one of `values` (np.isin on the device)."""
    found = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for value in values:
        found |= labels == float(value)
    return found


def _geometry(rng, arrays, point):
    """augment.augment_geometry: flips and an axis order, alike for the arrays and the point: (arrays, point,
    axis order)."""
    point = np.asarray(point, dtype=np.float64).copy()
    shape = np.array(arrays[0].shape)
    flips = [axis for axis in range(3) if rng.random() < 0.5]
    for axis in flips:
        point[axis] = shape[axis] - 1 - point[axis]
    order = rng.permutation(3)
    moved = [a.flip(flips).permute(*order.tolist()).contiguous() if flips else a.permute(*order.tolist()).contiguous()
             for a in arrays]
    return moved, point[order], order


def _intensity(rng, image: torch.Tensor, contrast: str, g, scale_range=None) -> torch.Tensor:
    """augment.augment_intensity on the device (same probabilities and ranges; see DIFFERENCES)."""
    if rng.random() < 0.3:
        image = ops.thick_slices(image, int(rng.integers(3)), int(rng.integers(2, 6)))
    if contrast == "random" and rng.random() < 0.8:
        image = _randomise_contrast(rng, image)
    elif rng.random() < 0.5:
        lo, hi = image.min(), image.max()
        unit = (image - lo) / (hi - lo).clamp_min(1e-6)
        image = lo + unit ** float(rng.uniform(0.6, 1.6)) * (hi - lo)
    image = image * float(rng.uniform(0.85, 1.15)) + float(rng.uniform(-0.15, 0.15))
    if scale_range is not None:
        image = image * wide_scale(rng, scale_range)
    if rng.random() < 0.5:
        image = image + torch.randn(image.shape, generator=g, device=image.device) * float(rng.uniform(0.02, 0.15))
    return image.float()


def _randomise_contrast(rng, image: torch.Tensor) -> torch.Tensor:
    """augment.randomise_contrast: a random curve (its 64-entry table drawn by augment.random_curve itself), a
    bias field, clipping to the patch's range, then blur or resolution loss."""
    lo, hi = image.min(), image.max()
    span = (hi - lo).clamp_min(1e-6)
    unit = (image - lo) / span
    if rng.random() < 0.7:
        lut = random_curve(rng, np.linspace(0.0, 1.0, 64))
        unit = ops.lookup(unit, torch.as_tensor(lut, dtype=torch.float32, device=image.device))
    if rng.random() < 0.4:
        coarse = torch.as_tensor(rng.normal(0.0, rng.uniform(0.1, 0.35), (3, 3, 3)), dtype=torch.float32, device=image.device)
        unit = unit * ops.resize(coarse, image.shape, align_corners=True).exp()
    image = lo + unit.clamp(0.0, 1.0) * span
    if rng.random() < 0.25:
        if rng.random() < 0.5:
            return ops.gaussian(image, float(rng.uniform(0.4, 1.2)))
        factor = rng.uniform(1.5, 3.0)
        coarse = ops.resize(image, [max(1, round(n / factor)) for n in image.shape], align_corners=True)
        return ops.resize(coarse, image.shape, align_corners=True)
    return image


def _perturbed(rng, gt: torch.Tensor) -> torch.Tensor:
    """sampler.perturbed_mask: too big, too small or shifted by 1-3 voxels."""
    how, steps = rng.integers(3), int(rng.integers(1, 4))
    if how == 0:
        return ops.dilate(gt[None], steps)[0]
    if how == 1:
        return ops.erode(gt[None], steps)[0]
    return torch.roll(gt, tuple(int(s) for s in rng.integers(-steps, steps + 1, size=3)), dims=(0, 1, 2))


def _region_prompt(rng, gt: torch.Tensor, kind: str, out: torch.Tensor, g, prism: float = 0.0) -> bool:
    """prompt_sim.region_prompt into `out`: a box or lasso on an axis plane through a large cross-section (and
    across the patch at `prism`)."""
    axis = int(rng.integers(3))
    keep = rng.uniform(0.3, 0.9)
    areas = gt.sum(tuple(a for a in range(3) if a != axis)).float()
    if float(areas.max()) <= 0:
        return False
    candidates = areas >= keep * areas.max()
    scores = torch.where(candidates, torch.rand(areas.shape, generator=g, device=gt.device), -1.0)
    index = int(scores.argmax())
    section = gt.select(axis, index)[None, None]  # (batch 1, one plane, rows, columns)
    if kind == "lasso":
        steps, coin = int(rng.integers(0, 2)), rng.random() < 0.5
        if steps and coin:
            section = ops.dilate(section, steps, plane_axis=0)
        elif steps:
            eroded = ops.erode(section, steps, plane_axis=0)
            section = eroded if bool(eroded.any()) else section
        filled = ops.fill_holes_2d(section[0], 0)[0]
    else:
        rows, cols = torch.nonzero(section[0, 0], as_tuple=True)
        jitter = rng.integers(-1, 3, 4)
        r0, r1 = max(int(rows.min()) - jitter[0], 0), min(int(rows.max()) + jitter[1], section.shape[2] - 1)
        c0, c1 = max(int(cols.min()) - jitter[2], 0), min(int(cols.max()) + jitter[3], section.shape[3] - 1)
        filled = torch.zeros(section.shape[2:], dtype=torch.bool, device=gt.device)
        filled[r0:r1 + 1, c0:c1 + 1] = True
    if prism > 0:
        out.copy_(filled.float().unsqueeze(axis).expand_as(out) * prism)
    out.select(axis, index).copy_(filled.float())
    return True


def _inside(mask: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    index = points.round().long()
    shape = torch.tensor(mask.shape[1:], device=mask.device)
    ok = ((index >= 0) & (index < shape)).all(1)
    index = torch.minimum(index.clamp_min(0), shape - 1)
    flat = (index[:, 0] * mask.shape[2] + index[:, 1]) * mask.shape[3] + index[:, 2]
    return ok & mask.flatten(1).gather(1, flat[:, None])[:, 0]


def _first_positive(gt: torch.Tensor, voxel_mm: torch.Tensor, uniform: torch.Tensor, g) -> torch.Tensor:
    """clicks.first_positive: 40 % anywhere in the object, 60 % in its deep core (depth > max / 1.7)."""
    depth = ops.edt(gt, voxel_mm)
    top = depth.amax((1, 2, 3)).view(-1, 1, 1, 1)
    core = torch.where(uniform.view(-1, 1, 1, 1) | (top <= 0), gt, depth > top / 1.7)
    return ops.pick(core, g)[0][:, 0]


def _geometric(rng, p_zero: float, cap: int) -> int:
    count = 0
    while count < cap and rng.random() > p_zero:
        count += 1
    return count
