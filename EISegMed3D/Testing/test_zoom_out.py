"""Zooming out when the object runs past the ROI: the next view is centred on what was found, not on the click,
so it stays as fine as the object allows (a real exported model that answers with the bright voxels in view)."""
from __future__ import annotations

import numpy as np
import pytest

from inference import InteractiveSession, Volume, load_model
from inference.model_input import choose_roi, widened_roi
from tiny_nets import tiny_manifest

CUBOID = (slice(10, 38), slice(30, 50), slice(30, 50))  # k, j, i: 28 x 20 x 20 mm on a 1 mm grid


@pytest.fixture(scope="module")
def bright_scan() -> Volume:
    array = np.zeros((80, 80, 80), np.float32)
    array[CUBOID] = 1000.0
    return Volume(array)  # 1 mm voxels


def test_an_off_centre_click_on_a_long_object_ends_in_a_view_centred_on_it(bright_model_dir, bright_scan):
    session = InteractiveSession(load_model(bright_model_dir, backend="onnx", device="cpu", threads=1))
    session.set_volume(bright_scan)
    result = session.add_click(ijk=(40.0, 40.0, 34.0))  # 4 voxels from the cuboid's far end along k
    truth = np.zeros(bright_scan.shape, bool)
    truth[CUBOID] = True
    mask = result.mask > 0
    assert result.runs >= 2 and (mask == truth).mean() > 0.999 and (mask & truth).sum() / truth.sum() > 0.97
    # zoomed out around the click it ended in a 48 mm (1.5 mm voxels) or 72 mm view; centred on the find, 32-40 mm
    assert session.last_roi.voxel_mm(bright_scan.spacing[::-1]).max() <= 40.0 / 32


def test_the_widened_view_holds_a_find_cut_on_one_side_and_grows_around_the_click_when_cut_on_both():
    manifest = tiny_manifest()  # patch 32, initial 32 mm, margin 1.4
    spacing = np.ones(3)
    click = np.array([[34.0, 40.0, 40.0]])
    first = choose_roi(manifest, (80, 80, 80), spacing, click)
    one_side = np.zeros(first.shape, bool)
    one_side[0:20, 8:24, 8:24] = True  # cut at the low k face only: an object off-centre of the click
    wider = widened_roi(manifest, spacing, first, one_side, click)
    assert wider.voxel_mm(spacing)[0] * 32 == pytest.approx(32.0)  # 20 x 1.4 < 32: a shifted view of the same size
    assert wider.start[0] < first.start[0]  # moved towards the cut
    found_lo, found_hi = first.start + np.array([0, 8, 8]) * first.step, first.start + np.array([19, 23, 23]) * first.step
    assert np.all(wider.start <= found_lo) and np.all(wider.end >= found_hi)
    mask_box = (slice(0, 60), slice(30, 50), slice(30, 50))  # the current mask is longer still
    capped = widened_roi(manifest, spacing, first, one_side, click, mask_box)
    assert capped.voxel_mm(spacing)[0] * 32 == pytest.approx(32 * 1.5)  # at most one zoom step at a time
    both = np.zeros(first.shape, bool)
    both[:, 8:24, 8:24] = True  # cut at both k faces: longer than the view, its ends unknown
    assert widened_roi(manifest, spacing, first, both, click) is None  # the session zooms out around the click:
    grown = choose_roi(manifest, (80, 80, 80), spacing, click, zoom=1.5)
    assert grown.voxel_mm(spacing)[0] * 32 == pytest.approx(32 * 1.5)
    np.testing.assert_allclose((grown.start + grown.end) / 2, click[0])  # around the click, not the find


def test_an_object_larger_than_the_largest_view_is_refined_around_the_latest_prompt():
    manifest = tiny_manifest()
    manifest["spacing_policy"]["max_roi_mm"] = 40.0
    spacing = np.ones(3)
    click = np.array([[20.0, 40.0, 40.0]])
    first = choose_roi(manifest, (200, 80, 80), spacing, click, focus_kji=click)
    found = np.zeros(first.shape, bool)
    found[:, 2:30, 2:30] = True  # cut at the low k face only, towards the prompt at k = 150 far beyond the view
    found[-1] = False
    wider = widened_roi(manifest, spacing, first, found, np.vstack([[[150.0, 40.0, 40.0]], click]),
                        focus_kji=click)
    assert wider.voxel_mm(spacing)[0] * 32 == pytest.approx(40.0)
    np.testing.assert_allclose((wider.start + wider.end) / 2, click[0])
