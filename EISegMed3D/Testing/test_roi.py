"""Region of interest: exact linear resampling, round trip to the scan, mm click balls, cost bounded by the crop."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.clickmaps import Click, click_maps, draw_ball
from inference.model_input import choose_roi, model_inputs
from inference.normalize import intensity_stats
from inference.roi import Roi, isotropic_roi, sample, to_scan

MANIFEST = {
    "patch_shape": [24, 24, 24], "axis_order": "kji",
    "spacing_policy": {"type": "roi_isotropic", "initial_roi_mm": 48.0, "margin": 1.4, "min_roi_mm": 24.0, "max_zoom_out": 3},
    "normalization": {"type": "percentile_zscore", "lower": 0.5, "upper": 99.5},
    "click_radius_mm": 3.0, "click_radius_min_voxels": 1.0, "threshold": 0.5,
}
COEF = np.array([0.7, -1.3, 2.1])  # ramp value = COEF . (k, j, i) + 5


def _ramp(shape) -> np.ndarray:
    k, j, i = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    return (COEF[0] * k + COEF[1] * j + COEF[2] * i + 5.0).astype(np.float32)


def _ramp_at(points_kji) -> np.ndarray:
    return np.tensordot(points_kji, COEF, axes=([-1], [0])) + 5.0


def _patch_points(roi: Roi) -> np.ndarray:
    """Scan index (k, j, i) of every patch voxel centre, shape (*patch, 3)."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in roi.shape], indexing="ij"), axis=-1)
    return roi.start + grid * roi.step


_spacing = st.floats(0.3, 5.0)


@settings(max_examples=40, deadline=None)
@given(spacing=st.tuples(_spacing, _spacing, _spacing), size_mm=st.floats(5.0, 40.0),
       centre=st.tuples(*[st.floats(0.3, 0.7)] * 3))
def test_sampling_a_linear_ramp_is_exact(spacing, size_mm, centre):
    """Linear interpolation reproduces a linear function wherever the ROI lies inside the scan."""
    shape = (30, 40, 50)
    spacing_kji = np.array(spacing)
    half = size_mm / 2 / spacing_kji
    centre_kji = np.array(centre) * (np.array(shape) - 1)
    centre_kji = np.clip(centre_kji, half, np.array(shape) - 1 - half)  # keep the ROI inside the scan
    roi = isotropic_roi(centre_kji, centre_kji, spacing_kji, (8, 9, 10), size_mm)
    if np.any(roi.start < 0) or np.any(roi.end > np.array(shape) - 1):
        return  # ROI larger than the scan along some axis: edge clamping applies, not this property
    patch = sample(_ramp(shape), roi)
    assert patch.shape == (8, 9, 10)
    np.testing.assert_allclose(patch, _ramp_at(_patch_points(roi)), rtol=1e-5, atol=1e-3)


def test_isotropic_roi_on_anisotropic_scan_is_a_cube_in_mm():
    spacing_kji = np.array([5.0, 0.5, 0.8])
    roi = isotropic_roi((10, 50, 40), (10, 50, 40), spacing_kji, (16, 16, 16), 32.0)
    np.testing.assert_allclose(roi.voxel_mm(spacing_kji), [2.0, 2.0, 2.0])
    extent_mm = (roi.end - roi.start) * spacing_kji
    np.testing.assert_allclose(extent_mm, [30.0, 30.0, 30.0])  # 15 steps of 2 mm between outer voxel centres
    np.testing.assert_allclose((roi.start + roi.end) / 2, [10, 50, 40])


@settings(max_examples=25, deadline=None)
@given(spacing=st.tuples(_spacing, _spacing, _spacing), size_mm=st.floats(6.0, 30.0))
def test_to_scan_of_sample_is_identity_inside_the_roi(spacing, size_mm):
    shape = (40, 40, 40)
    spacing_kji = np.array(spacing)
    roi = isotropic_roi((20, 20, 20), (20, 20, 20), spacing_kji, (12, 12, 12), min(size_mm, 38 * spacing_kji.min()))
    scan = _ramp(shape)
    box, values = to_scan(sample(scan, roi), roi, shape)
    index = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"), axis=-1)
    inside = np.all((index >= roi.start - 1e-9) & (index <= roi.end + 1e-9), axis=-1)
    assert inside.any()
    np.testing.assert_allclose(values[inside], scan[box][inside], rtol=1e-5, atol=1e-3)


def test_scan_box_covers_the_roi_faces_and_stays_in_the_scan():
    roi = Roi(np.array([-3.0, 2.0, 10.5]), np.array([2.0, 0.5, 1.0]), (4, 4, 4))
    box = roi.scan_box((20, 20, 12))
    # k: faces at -4 .. 4 -> voxels 0..4; j: faces 1.75 .. 3.75 -> 2..3; i: faces 10 .. 14 -> 10..11 (scan ends)
    assert box == (slice(0, 5), slice(2, 4), slice(10, 12))


# --- click balls in millimetres ------------------------------------------------------------------------------------

def test_click_ball_on_thick_slices_is_round_in_mm():
    """Spacing (i, j, k) = (0.5, 0.5, 5) mm: a 3 mm ball spans ~6 mm in every direction, not 5 slices."""
    shape = (20, 200, 200)
    spacing_kji = np.array([5.0, 0.5, 0.5])
    click = Click((100.0, 100.0, 10.0), True)
    manifest = dict(MANIFEST, patch_shape=[48, 48, 48])
    roi = choose_roi(manifest, shape, spacing_kji, [click.kji])
    positive, negative = click_maps([click], roi, spacing_kji, manifest)
    assert not negative.any()
    np.testing.assert_allclose(roi.voxel_mm(spacing_kji), [1.0, 1.0, 1.0])  # isotropic patch voxels
    # the click sits at the patch centre (23.5, 23.5, 23.5): a round ball is the same under any axis permutation
    assert positive.sum() > 0
    assert np.array_equal(positive, positive.transpose(1, 0, 2)) and np.array_equal(positive, positive.transpose(2, 1, 0))
    box, values = to_scan(positive, roi, shape)
    on_scan = np.nonzero(values > 0.5)
    extent_mm = [(np.ptp(on_scan[axis]) + 1) * spacing_kji[axis] for axis in range(3)]
    assert extent_mm[0] <= 5.0  # one slice thick, not 5 slices
    assert 5.0 <= extent_mm[1] <= 7.5 and 5.0 <= extent_mm[2] <= 7.5  # ~6 mm across in-plane
    assert {10} == set(on_scan[0] + box[0].start)


def test_draw_ball_uses_the_per_axis_metric():
    target = np.zeros((9, 31, 31), np.float32)
    draw_ball(target, (4, 15, 15), 3.0, np.array([5.0, 0.5, 0.5]))
    k, j, i = np.nonzero(target)
    assert set(k) == {4}  # 5 mm to the next slice is outside a 3 mm ball
    assert np.ptp(j) == 12 and np.ptp(i) == 12  # +-6 voxels of 0.5 mm
    assert target.sum() == np.sum([(dj * dj + di * di) * 0.25 <= 9.0 for dj in range(-6, 7) for di in range(-6, 7)])


def test_click_radius_has_a_minimum_in_patch_voxels():
    """On a coarse ROI (8 mm voxels) a 3 mm ball would vanish; it keeps click_radius_min_voxels voxels."""
    manifest = dict(MANIFEST, click_radius_min_voxels=1.5)
    roi = Roi(np.zeros(3), np.full(3, 8.0), (10, 10, 10))
    positive, _ = click_maps([Click((40.0, 40.0, 40.0), True)], roi, np.ones(3), manifest)
    # radius 1.5 * 8 = 12 mm: centre, 6 face neighbours (8 mm), 12 edge neighbours (11.3 mm), no corners (13.9 mm)
    assert positive.sum() == 1 + 6 + 12
    assert positive[5, 5, 5] == 1 and positive[4, 4, 5] == 1 and positive[4, 4, 4] == 0


# --- cost bounded by the crop ----------------------------------------------------------------------------------------

class CountingArray(np.ndarray):
    """An array that records the number of elements of every region read through indexing."""

    def __array_finalize__(self, obj):
        self.reads = getattr(obj, "reads", None)

    def __getitem__(self, key):
        result = super().__getitem__(key)
        if self.reads is not None:
            self.reads.append(int(np.size(result)))
        return result


def _huge_ramp(shape) -> CountingArray:
    """A virtual scan of any size (no memory: a broadcast view) whose value is its i index."""
    array = np.broadcast_to(np.arange(shape[2], dtype=np.float32), shape).view(CountingArray)
    array.reads = []
    return array


def test_sample_reads_only_the_crop_whatever_the_scan_size():
    spacing_kji = np.array([1.0, 0.8, 0.8])
    reads = {}
    for shape in [(60, 64, 64), (4000, 4000, 4000)]:
        scan = _huge_ramp(shape)
        roi = choose_roi(MANIFEST, shape, spacing_kji, [(30.0, 30.0, 30.0)])
        patch = sample(scan, roi)
        np.testing.assert_allclose(patch[0, 0], roi.start[2] + np.arange(24) * roi.step[2], atol=1e-3)
        reads[shape] = sum(scan.reads)
    assert 0 < reads[(60, 64, 64)] == reads[(4000, 4000, 4000)]
    assert reads[(4000, 4000, 4000)] <= (48 / 0.8 + 4) ** 2 * (48 + 4)  # the 48 mm ROI plus interpolation margin


def test_model_inputs_read_only_the_crop_of_image_and_mask():
    shape = (3000, 3000, 3000)
    spacing_kji = np.array([1.0, 1.0, 1.0])
    scan = _huge_ramp(shape)
    mask = np.broadcast_to(np.uint8(0), shape).view(CountingArray)
    mask.reads = []
    stats = intensity_stats(np.arange(100, dtype=np.float32).reshape(4, 5, 5), MANIFEST["normalization"])
    click = Click((1500.0, 1500.0, 1500.0), True)
    roi = choose_roi(MANIFEST, shape, spacing_kji, [click.kji])
    image, clicks = model_inputs(scan, stats, mask, [click], roi, spacing_kji, MANIFEST)
    assert image.shape == (1, 1, 24, 24, 24) and clicks.shape == (1, 3, 24, 24, 24)
    limit = (48 + 4) ** 3
    assert 0 < sum(scan.reads) <= limit and 0 < sum(mask.reads) <= limit
    assert clicks[0, 1].sum() > 0 and not clicks[0, 0].any() and not clicks[0, 2].any()


# --- the ROI follows the object --------------------------------------------------------------------------------------

def test_roi_grows_with_the_mask():
    shape = (100, 300, 300)
    spacing_kji = np.array([2.0, 0.7, 0.7])
    click = [(50.0, 150.0, 150.0)]
    first = choose_roi(MANIFEST, shape, spacing_kji, click)  # nothing known yet: the initial 48 mm
    small = choose_roi(MANIFEST, shape, spacing_kji, click, (slice(45, 56), slice(130, 171), slice(130, 171)))
    large = choose_roi(MANIFEST, shape, spacing_kji, click, (slice(30, 71), slice(60, 241), slice(60, 241)))
    np.testing.assert_allclose(first.voxel_mm(spacing_kji), [2.0, 2.0, 2.0])
    assert np.all(large.step > small.step)
    # 181 voxels * 0.7 mm in-plane is the largest extent, times margin 1.4, over 24 patch voxels
    np.testing.assert_allclose(large.voxel_mm(spacing_kji), [181 * 0.7 * 1.4 / 24] * 3)
    # the ROI holds the whole mask box
    assert np.all(large.start <= [30, 60, 60]) and np.all(large.end >= [70, 240, 240])
    # zooming out widens it further
    assert np.all(choose_roi(MANIFEST, shape, spacing_kji, click, None, zoom=1.5).step > first.step)


def test_roi_never_below_the_minimum_size():
    spacing_kji = np.array([1.0, 1.0, 1.0])
    tiny = choose_roi(MANIFEST, (50, 50, 50), spacing_kji, [(25.0, 25.0, 25.0)], (slice(25, 26),) * 3)
    np.testing.assert_allclose(tiny.voxel_mm(spacing_kji), [24.0 / 24] * 3)


def test_roi_past_the_size_limit_refines_around_the_latest_click():
    manifest = {**MANIFEST, "spacing_policy": {**MANIFEST["spacing_policy"], "max_roi_mm": 60.0}}
    shape, spacing_kji = (100, 300, 300), np.array([2.0, 0.7, 0.7])
    clicks = [(50.0, 100.0, 100.0), (50.0, 200.0, 210.0)]  # 100+ voxels apart: far beyond 60 mm
    roi = choose_roi(manifest, shape, spacing_kji, clicks, (slice(30, 71), slice(60, 241), slice(60, 241)))
    np.testing.assert_allclose(roi.voxel_mm(spacing_kji), [60.0 / 24] * 3)
    centre = (roi.start + roi.end) / 2
    np.testing.assert_allclose(centre, clicks[-1])
    # below the limit nothing changes
    small = [(50.0, 150.0, 150.0)]
    assert np.allclose(choose_roi(manifest, shape, spacing_kji, small).step, choose_roi(MANIFEST, shape, spacing_kji, small).step)


@settings(max_examples=60, deadline=None)
@given(in_shape=st.tuples(*[st.integers(1, 30)] * 3), out_shape=st.tuples(*[st.integers(1, 40)] * 3),
       scale=st.tuples(*[st.floats(0.1, 4.0)] * 3), offset=st.tuples(*[st.floats(-6.0, 6.0, allow_subnormal=False)] * 3),
       mode=st.sampled_from(["nearest", "constant"]))
def test_separable_linear_matches_ndimage_affine_transform(in_shape, out_shape, scale, offset, mode):
    """The fast path of sample/to_scan gives ndimage's values, edges and outside-the-scan handling included."""
    from scipy import ndimage

    from inference.roi import separable_linear

    array = np.random.default_rng(sum(in_shape)).normal(size=in_shape).astype(np.float32)
    reference = ndimage.affine_transform(array, scale, offset=offset, output_shape=out_shape, order=1, mode=mode,
                                         cval=0.0, prefilter=False)
    got = separable_linear(array, scale, offset, out_shape, outside_zero=mode == "constant")
    assert got.shape == reference.shape and got.dtype == np.float32
    if mode == "constant":  # on an edge up to float rounding ndimage's answer depends on its own rounding: not compared
        grids = np.meshgrid(*[o + s * np.arange(n) for o, s, n in zip(offset, scale, out_shape)], indexing="ij")
        rounding = np.any([(np.abs(g) < 1e-6) | (np.abs(g - (n - 1)) < 1e-6) for g, n in zip(grids, in_shape)], axis=0)
        got, reference = got[~rounding], reference[~rounding]
    np.testing.assert_allclose(got, reference, atol=1e-5)


def test_separable_linear_keeps_a_voxel_on_the_edge_up_to_float_rounding():
    """19 * 1.1 + 1.1 = 22.000000000000004: the scan's last voxel (index 22) was read as outside, 0."""
    from inference.roi import separable_linear

    array = np.arange(1, 24, dtype=np.float32).reshape(1, 23, 1)
    got = separable_linear(array, (1.0, 1.1, 1.0), (0.0, 1.1, 0.0), (1, 20, 1), outside_zero=True)
    assert got[0, 19, 0] == pytest.approx(23.0)
    assert separable_linear(array, (1.0, 1.0, 1.0), (0.0, 22.01, 0.0), (1, 1, 1), outside_zero=True)[0, 0, 0] == 0.0
