"""Scribbles, boxes and lassos: the drawing functions, and the session with real exported models.

The geometry tests compare the channels the session hands to the model with an independent computation in RAS
millimetres (plane distance of each patch voxel centre, inside test in the plane), on oblique anisotropic scans
read from disk (LPS on file, RAS in the engine).
"""
from __future__ import annotations

import inspect
import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from inference import ClickError, InteractiveSession, Volume, load_model
from inference.clickmaps import ball_radius
from inference.model_input import PLANAR_REACH, choose_roi
from inference.prompts import Box, Lasso, Scribble, box_corners, plane_of, region_channel, scribble_points
from tiny_prompt_nets import REGION_CHANNELS, region_manifest

SHAPE = (30, 56, 48)  # k, j, i


class Recording:
    """The real model, keeping the inputs of each run so a test can see what the session drew."""

    def __init__(self, model):
        self.model, self.manifest, self.calls = model, model.manifest, []

    def predict(self, image, clicks):
        self.calls.append((image.copy(), clicks.copy()))
        return self.model.predict(image, clicks)

    def channel(self, name: str, run: int = -1) -> np.ndarray:
        """The named input channel of one model run (default: the last; the first is before any zoom-out)."""
        return self.calls[run][1][0, self.manifest["inputs"][1]["channels"].index(name)]


@pytest.fixture(scope="module")
def region_model(region_model_dir):
    return load_model(region_model_dir, backend="onnx", device="cpu", threads=1)


@pytest.fixture(scope="module")
def click_model(tiny_model_dir):
    return load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1)


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    x, y, z = axis
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return c * np.eye(3) + s * cross + (1 - c) * np.outer(axis, axis)


@pytest.fixture(scope="module")
def oblique_volume(tmp_path_factory) -> Volume:
    """An oblique (rotated about a tilted axis), anisotropic scan, written to NIfTI and read back."""
    matrix = np.eye(4)
    matrix[:3, :3] = _rotation((0.3, -0.4, 1.0), 27.0) @ np.diag([0.7, 0.9, 2.5])
    matrix[:3, 3] = (-14.0, 22.0, -31.0)
    array = (np.random.default_rng(5).random(SHAPE) * 300).astype(np.int16)
    path = tmp_path_factory.mktemp("oblique") / "scan.nii.gz"
    sitk.WriteImage(Volume(array, matrix).to_sitk(), str(path))
    volume = Volume.from_file(path)
    np.testing.assert_allclose(volume.ijk_to_ras, matrix, atol=1e-5)
    return volume


def _session(model, volume):
    recording = Recording(model)
    session = InteractiveSession(recording)
    session.set_volume(volume)
    return session, recording


def _patch_centres_ras(session) -> np.ndarray:
    """RAS of every patch voxel centre of the latest run, shape (*patch, 3)."""
    roi = session.last_roi
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in roi.shape], indexing="ij"), axis=-1)
    kji = roi.start + grid * roi.step
    ijk1 = np.concatenate([kji[..., ::-1], np.ones(kji.shape[:-1] + (1,))], axis=-1)
    return (ijk1 @ session.volume.ijk_to_ras.T)[..., :3]


def _check_region(session, region, polygon_ras) -> int:
    """`region` (patch) holds the voxels within half a patch voxel of the convex polygon's plane whose projection
    lies inside it; a voxel exactly half a voxel away (plane halfway between layers) on one side only."""
    polygon = np.asarray(polygon_ras, dtype=np.float64)
    centres = _patch_centres_ras(session)
    voxel_mm = session.last_roi.voxel_mm(session.volume.spacing[::-1])
    assert np.allclose(voxel_mm, voxel_mm[0])  # isotropic patch: half a voxel is the same in every direction
    normal = np.cross(polygon[1] - polygon[0], polygon[2] - polygon[0])
    normal /= np.linalg.norm(normal)
    distance = (centres - polygon[0]) @ normal
    near = np.abs(distance) < voxel_mm[0] / 2 - 1e-6
    tie = np.abs(np.abs(distance) - voxel_mm[0] / 2) <= 1e-6
    inside = np.ones(near.shape, bool)
    for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):  # convex: on the inner side of every edge
        inside &= (np.cross(b - a, centres - a) @ normal) >= -1e-9
    region = region > 0
    assert region[near & inside].all()
    assert not region[~((near | tie) & inside)].any()
    assert len(np.unique(np.sign(distance[region & tie]))) <= 1  # one voxel layer when the plane is halfway
    return int(region.sum())


# --- drawing functions ----------------------------------------------------------------------------------------

def test_region_channel_fills_an_axial_l_shape_exactly():
    polygon = np.array([[5, 2, 2], [5, 2, 9], [5, 5, 9], [5, 5, 5], [5, 10, 5], [5, 10, 2]], dtype=np.float64)
    region = region_channel((12, 12, 12), polygon + [0.2, 0, 0])  # plane 0.2 voxel off slice 5: slice 5 only
    expected = np.zeros((12, 12, 12), np.float32)
    expected[5, 2:6, 2:10] = 1  # edges included
    expected[5, 2:11, 2:6] = 1
    assert region.dtype == np.float32
    np.testing.assert_array_equal(region, expected)


def test_region_channel_on_an_anisotropic_grid_takes_one_thick_slice():
    # Metric (k, j, i) = (4, 1, 1) mm: a plane 1.5 mm above slice 3 is within half a voxel (2 mm) of it only.
    square = np.array([[3.375, 1, 1], [3.375, 1, 6], [3.375, 6, 6], [3.375, 6, 1]])
    region = region_channel((8, 8, 8), square, metric=(4.0, 1.0, 1.0))
    assert set(np.unique(np.nonzero(region)[0])) == {3}
    assert region[3].sum() == 36


def _oblique_rectangle():
    """A 12 x 8 rectangle on an oblique plane through a 21^3 grid, and each grid voxel centre's offset from its centre
    along the plane's normal and its two edges."""
    normal = np.array([0.5, -0.3, 0.8]) / np.linalg.norm([0.5, -0.3, 0.8])
    u = np.cross(normal, [1.0, 0, 0]); u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    centre = np.array([10.3, 9.7, 10.1])
    rectangle = np.array([centre + a * u + b * v for a, b in ((-6, -4), (6, -4), (6, 4), (-6, 4))])
    grid = np.stack(np.meshgrid(*[np.arange(21)] * 3, indexing="ij"), axis=-1) - centre
    return rectangle, grid @ normal, grid @ u, grid @ v


def test_region_channel_on_an_oblique_plane_matches_the_plane_distance():
    rectangle, across, along_u, along_v = _oblique_rectangle()
    region = region_channel((21, 21, 21), rectangle)
    expected = (np.abs(across) <= 0.5) & (np.abs(along_u) <= 6) & (np.abs(along_v) <= 4)
    np.testing.assert_array_equal(region > 0, expected)
    assert expected.sum() > 80


def test_region_channel_prism_extrudes_the_polygon_across_the_grid_below_the_plane_value():
    polygon = np.array([[5, 2, 2], [5, 2, 9], [5, 5, 9], [5, 5, 5], [5, 10, 5], [5, 10, 2]], dtype=np.float64)
    region = region_channel((12, 12, 12), polygon + [0.2, 0, 0], prism=0.5)
    footprint = np.zeros((12, 12), bool)
    footprint[2:6, 2:10] = footprint[2:11, 2:6] = True
    expected = np.where(footprint, 0.5, 0.0)[None].repeat(12, axis=0).astype(np.float32)
    expected[5][footprint] = 1.0
    np.testing.assert_array_equal(region, expected)
    # a second prompt's prism never lowers what is drawn: the first plane stays 1.0
    square = np.array([[2, 3, 3], [2, 3, 7], [2, 7, 7], [2, 7, 3]], dtype=np.float64)
    region_channel((12, 12, 12), square, out=region, prism=0.5)
    assert region[5][footprint].min() == 1.0 and region[2, 3:8, 3:8].min() == 1.0


def test_region_channel_prism_on_an_oblique_plane_follows_the_normal():
    rectangle, distance, along_u, along_v = _oblique_rectangle()
    region = region_channel((21, 21, 21), rectangle, prism=0.25)
    across = (np.abs(along_u) <= 6) & (np.abs(along_v) <= 4)
    on_plane = across & (np.abs(distance) <= 0.5)
    np.testing.assert_array_equal(region == 1.0, on_plane)
    np.testing.assert_array_equal(region == 0.25, across & ~on_plane)
    assert (across & ~on_plane).sum() > 10 * on_plane.sum()  # it reaches far across the plane


def test_region_channel_refuses_a_polygon_on_one_line():
    with pytest.raises(ValueError, match="one line"):
        region_channel((8, 8, 8), [[1, 1, 1], [2, 2, 2], [3, 3, 3]])


def test_scribble_points_are_at_most_spacing_apart_in_the_metric():
    points = np.array([[0, 0, 0], [0, 0, 10], [3, 0, 10]], dtype=np.float64)
    dense = scribble_points(points, 1.5, metric=(2.0, 1.0, 1.0))
    steps = np.linalg.norm(np.diff(dense, axis=0) * [2.0, 1.0, 1.0], axis=1)
    assert steps.max() <= 1.5 + 1e-9
    for vertex in points:
        assert np.min(np.linalg.norm(dense - vertex, axis=1)) < 1e-12
    np.testing.assert_array_equal(scribble_points(points[:1], 1.0), points[:1])


def test_box_corners_make_a_rectangle_on_the_plane():
    corners = box_corners((0, 0, 5), (4, 3, 5.0), normal=(0, 0, 2), edge=(1, 0, 0.3))
    np.testing.assert_allclose(corners, [[0, 0, 5], [4, 0, 5], [4, 3, 5], [0, 3, 5]], atol=1e-12)
    with pytest.raises(ValueError, match="opposite corners"):
        box_corners((0, 0, 5), (4, 0, 5.0), normal=(0, 0, 1), edge=(1, 0, 0))


def test_plane_of_reports_how_far_points_leave_the_plane():
    _, normal, off = plane_of([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0.4]])
    assert abs(abs(normal[2]) - 1) < 0.1 and 0.05 < off < 0.2


def test_roi_of_a_box_is_its_extent_times_the_margin_not_the_initial_size():
    manifest = region_manifest()  # initial 32 mm, margin 1.4, min 24 mm
    corners = np.array([[7, 5, 10], [7, 5, 30], [7, 20, 30], [7, 20, 10]], dtype=np.float64)  # k, j, i
    roi = choose_roi(manifest, (40, 40, 40), np.ones(3), corners, extent_known=True)
    # 21 voxels of 1 mm, x margin, x the reach across the plane (PLANAR_REACH)
    np.testing.assert_allclose(roi.voxel_mm(np.ones(3)) * 32, [21 * 1.4 * PLANAR_REACH] * 3)
    np.testing.assert_allclose((roi.start + roi.end) / 2, [7, 12.5, 20])  # centred on the box: the object may
    assert roi.end[0] - roi.start[0] > 20  # extend beyond the slice, so the ROI reaches as far along the normal


def test_roi_of_a_box_reaches_across_its_plane_as_far_as_the_object_is_wide():
    """An object as long across the plane as it is wide, drawn on an off-centre slice, fits the first ROI
    (before: the ROI's reach across the plane was 0.7 x the width, and a second, zoomed-out run was needed)."""
    manifest = region_manifest()
    corners = np.array([[30, 5, 10], [30, 5, 30], [30, 25, 30], [30, 25, 10]], dtype=np.float64)  # 21 x 21 on k = 30
    roi = choose_roi(manifest, (80, 40, 40), np.ones(3), corners, extent_known=True)
    assert roi.start[0] <= 30 - 21 and roi.end[0] >= 30 + 21
    after_a_mask = choose_roi(manifest, (80, 40, 40), np.ones(3), corners,
                              (slice(12, 45), slice(5, 26), slice(10, 31)), extent_known=True)
    np.testing.assert_allclose(after_a_mask.voxel_mm(np.ones(3)) * 32, [33 * 1.4] * 3)  # 3D extent known: no reach


def test_a_region_larger_than_the_roi_limit_is_still_seen_whole():
    manifest = region_manifest()
    manifest["spacing_policy"]["max_roi_mm"] = 40.0
    corners = np.array([[7, 0, 0], [7, 0, 59], [7, 49, 59], [7, 49, 0]], dtype=np.float64)
    roi = choose_roi(manifest, (20, 60, 60), np.ones(3), corners, focus_kji=corners, extent_known=True)
    assert roi.start[2] <= 0 and roi.end[2] >= 59  # the whole box, at coarser resolution
    click_roi = choose_roi(manifest, (20, 60, 60), np.ones(3), np.vstack([corners, [[7, 30, 30]]]),
                           focus_kji=[[7, 30, 30]], extent_known=True)
    np.testing.assert_allclose(click_roi.voxel_mm(np.ones(3)) * 32, [40.0] * 3)  # a click after it refines locally


# --- the session: geometry on an oblique, anisotropic scan ----------------------------------------------------

def test_lasso_on_a_sagittal_plane_of_an_oblique_scan_lands_on_it(region_model, oblique_volume):
    session, recording = _session(region_model, oblique_volume)
    triangle_ijk = np.array([[24.3, 12.2, 6.1], [24.3, 41.7, 9.4], [24.3, 22.6, 21.3]])  # the plane i = 24.3
    triangle_ras = np.array([oblique_volume.ijk_to_ras_point(p) for p in triangle_ijk])
    result = session.add_lasso(ras=triangle_ras)
    assert _check_region(session, recording.channel("region"), triangle_ras) > 40
    assert not recording.channel("positive_clicks").any()  # a lasso goes to the region channel of such a model
    np.testing.assert_allclose(session.prompts[0].polygon_ijk, triangle_ijk, atol=1e-9)
    centroid = np.round(triangle_ijk.mean(axis=0)).astype(int)
    assert result.mask[centroid[2], centroid[1], 24] == 1  # the scan voxels on the plane inside the lasso
    assert not result.mask[:, :, :20].any() and not result.mask[:, :, 29:].any()


def test_lasso_on_an_oblique_plane_lands_on_it(region_model, oblique_volume):
    session, recording = _session(region_model, oblique_volume)
    centre = oblique_volume.ijk_to_ras_point((23.7, 27.2, 14.6))
    normal = np.array([0.4, 0.7, -0.5]) / np.linalg.norm([0.4, 0.7, -0.5])
    u = np.cross(normal, (0, 0, 1.0)); u /= np.linalg.norm(u)
    v = np.cross(normal, u)
    angles = np.deg2rad([0, 70, 150, 215, 290])
    pentagon = np.array([centre + 9 * np.cos(a) * u + 7 * np.sin(a) * v for a in angles])  # convex, counter-clockwise
    session.add_lasso(ras=pentagon)
    assert _check_region(session, recording.channel("region"), pentagon) > 30


def test_box_with_a_plane_on_an_oblique_view_is_that_rectangle(region_model, oblique_volume):
    session, recording = _session(region_model, oblique_volume)
    centre = oblique_volume.ijk_to_ras_point((22.1, 30.4, 13.2))
    right, up = _rotation((1, 1, 0), 35.0) @ [1.0, 0, 0], _rotation((1, 1, 0), 35.0) @ [0, 1.0, 0]  # a slice view
    a, b = centre - 8 * right - 5 * up, centre + 8 * right + 5 * up
    session.add_box(ras=(a, b), plane=(centre, centre + right, centre + up))
    rectangle = [a, a + 16 * right, b, a + 10 * up]
    assert _check_region(session, recording.channel("region"), rectangle) > 30
    assert isinstance(session.prompts[0], Box)


def test_a_model_with_region_prism_gets_the_box_extruded_across_its_oblique_plane(region_model_dir, oblique_volume,
                                                                                   tmp_path):
    folder = tmp_path / "prism_model"
    shutil.copytree(region_model_dir, folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    (folder / "model.json").write_text(json.dumps({**manifest, "region_prism": 0.5}), encoding="utf-8")
    session, recording = _session(load_model(folder, backend="onnx", device="cpu", threads=1), oblique_volume)
    centre = oblique_volume.ijk_to_ras_point((22.1, 30.4, 13.2))
    right, up = _rotation((1, 1, 0), 35.0) @ [1.0, 0, 0], _rotation((1, 1, 0), 35.0) @ [0, 1.0, 0]
    a, b = centre - 8 * right - 5 * up, centre + 8 * right + 5 * up
    session.add_box(ras=(a, b), plane=(centre, centre + right, centre + up))
    region = recording.channel("region")
    assert set(np.unique(region)) == {0.0, 0.5, 1.0}
    assert _check_region(session, region == 1.0, [a, a + 16 * right, b, a + 10 * up]) > 20
    flat = (_patch_centres_ras(session) - centre) @ np.stack([right, up], axis=1)  # in the box's plane, mm
    across = (np.abs(flat[..., 0]) <= 8 - 1e-6) & (np.abs(flat[..., 1]) <= 5 - 1e-6)
    edge = (np.abs(np.abs(flat[..., 0]) - 8) <= 1e-6) | (np.abs(np.abs(flat[..., 1]) - 5) <= 1e-6)
    assert (region[across] > 0).all() and not (region[~across & ~edge] > 0).any()
    assert (region == 0.5).sum() > 10 * (region == 1.0).sum()
    # the network reads the prism; the engine's own use of the box (seeds) stays on the plane
    session.add_lasso(ras=[a, a + 16 * right, b], positive=False)
    assert set(np.unique(recording.channel("negative_clicks"))) <= {0.0, 1.0}


def test_the_prism_takes_its_with_clicks_value_once_the_user_clicks(region_model_dir, oblique_volume, tmp_path):
    folder = tmp_path / "prism_model"
    shutil.copytree(region_model_dir, folder)
    manifest = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    (folder / "model.json").write_text(json.dumps({**manifest, "region_prism": 0.5, "region_prism_with_clicks": 0.2}),
                                       encoding="utf-8")
    session, recording = _session(load_model(folder, backend="onnx", device="cpu", threads=1), oblique_volume)
    session.add_box(ijk=((20, 20, 14), (32, 34, 14)))
    alone = recording.channel("region")
    assert set(np.unique(alone)) == {0.0, 0.5, 1.0}
    session.add_box(ijk=((22, 22, 16), (30, 30, 16)))  # a second box is not a click: the prism stays
    assert set(np.unique(recording.channel("region"))) == {0.0, 0.5, 1.0}
    session.add_click(ijk=(26, 27, 18))
    clicked = recording.channel("region")
    np.testing.assert_allclose(np.unique(clicked), [0.0, 0.2, 1.0], rtol=1e-6)
    assert (clicked == 1.0).any()  # the boxes' planes stay at 1.0


def test_box_in_voxel_indices_on_an_axial_slice(region_model, oblique_volume):
    session, recording = _session(region_model, oblique_volume)
    result = session.add_box(ijk=((14.0, 20.0, 12.0), (30.0, 36.0, 12.0)))  # same k: the axial slice 12
    corners = np.array(session.prompts[0].corners_ijk)
    np.testing.assert_allclose(corners, [[14, 20, 12], [30, 20, 12], [30, 36, 12], [14, 36, 12]], atol=1e-9)
    assert _check_region(session, recording.channel("region"), [oblique_volume.ijk_to_ras_point(c) for c in corners]) > 40
    assert result.mask[12, 22:35, 16:29].mean() > 0.95  # the slice inside the box is the object
    assert not result.mask[:, :16].any() and not result.mask[:, 40:].any()
    assert not result.mask[[0, 1, 2, 21, 22, 23]].any()


# --- the session: prompts, undo, redo, clicks -----------------------------------------------------------------

def test_prompts_mix_with_clicks_and_undo_redo(region_model, oblique_volume):
    session, _ = _session(region_model, oblique_volume)
    after_click = session.add_click(ijk=(10, 10, 5)).mask.copy()
    after_box = session.add_box(ijk=((20, 20, 14), (32, 34, 14))).mask.copy()
    result = session.add_scribble(ijk=[(26, 8, 20), (34, 12, 20)], positive=False)
    assert [type(p).__name__ for p in session.prompts] == ["Click", "Box", "Scribble"]
    assert [c.ijk for c in session.clicks] == [(10.0, 10.0, 5.0)]
    assert after_box[14, 25, 25] == 1 and after_box[5, 10, 10] == 1  # the box kept the click's object
    assert not np.array_equal(after_box, after_click)
    box = result.changed_box
    assert all(s.stop >= s.start for s in box)
    undone = session.undo()
    np.testing.assert_array_equal(undone.mask, after_box)
    session.undo()
    np.testing.assert_array_equal(session.mask, after_click)
    assert [type(p).__name__ for p in session.prompts] == ["Click"]
    redone = session.redo()
    np.testing.assert_array_equal(redone.mask, after_box)
    changed = np.zeros(SHAPE, bool)
    changed[redone.changed_box] = True
    assert not (after_box != after_click)[~changed].any()  # the changed box holds every changed voxel
    assert isinstance(session.prompts[-1], Box)


def test_box_needs_a_model_with_a_region_channel(click_model, oblique_volume):
    session, _ = _session(click_model, oblique_volume)
    with pytest.raises(ClickError, match="model tiny-test has no 'region' input; boxes need a model trained with them"):
        session.add_box(ijk=((14, 20, 12), (30, 36, 12)))
    assert session.prompts == [] and not session.can_undo


def test_lasso_without_a_region_channel_is_its_filled_area_in_the_positive_channel(click_model, oblique_volume):
    session, recording = _session(click_model, oblique_volume)
    square = np.array([[15.0, 18.0, 11.2], [29.0, 18.0, 11.2], [29.0, 33.0, 11.2], [15.0, 33.0, 11.2]])
    ras = [oblique_volume.ijk_to_ras_point(p) for p in square]
    result = session.add_lasso(ras=ras)
    assert recording.manifest["inputs"][1]["channels"] == ["previous_mask", "positive_clicks", "negative_clicks"]
    assert _check_region(session, recording.channel("positive_clicks"), ras) > 40
    assert result.mask[11, 20:31, 17:27].all()
    session.add_lasso(ras=ras, positive=False)  # a negative lasso: its area in the negative channel
    assert _check_region(session, recording.channel("negative_clicks"), ras) > 40
    np.testing.assert_array_equal(recording.channel("positive_clicks"), recording.channel("negative_clicks"))


def test_scribble_is_balls_of_the_click_radius_along_the_stroke(click_model, oblique_volume):
    session, recording = _session(click_model, oblique_volume)
    stroke = np.array([[12.0, 14.0, 9.0], [30.0, 20.0, 12.0], [33.0, 38.0, 15.0]])
    session.add_scribble(ras=[oblique_volume.ijk_to_ras_point(p) for p in stroke])
    centres = _patch_centres_ras(session)
    ras = np.array([oblique_volume.ijk_to_ras_point(p) for p in stroke])
    distance = np.full(centres.shape[:-1], np.inf)
    for a, b in zip(ras[:-1], ras[1:]):
        t = np.clip(((centres - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        distance = np.minimum(distance, np.linalg.norm(centres - (a + t[..., None] * (b - a)), axis=-1))
    radius, _ = ball_radius(click_model.manifest, session.last_roi.voxel_mm(oblique_volume.spacing[::-1]))
    positive = recording.channel("positive_clicks") > 0
    assert positive[distance <= 0.96 * radius].all()  # balls at most half a radius apart cover the stroke
    assert not positive[distance > radius + 1e-6].any()
    assert isinstance(session.prompts[0], Scribble) and len(session.prompts[0].points_ijk) == 3


def test_bad_prompts_get_clear_errors(region_model, oblique_volume):
    session, _ = _session(region_model, oblique_volume)
    with pytest.raises(ClickError, match="lasso of 2 points: a plane needs at least 3 points"):
        session.add_lasso(ijk=[(1, 1, 1), (5, 5, 1)])
    with pytest.raises(ClickError, match="lasso points are not on one plane"):
        session.add_lasso(ijk=[(5, 5, 5), (20, 5, 5), (20, 20, 5), (5, 20, 9)])
    with pytest.raises(ClickError, match=r"box corner 2 at voxel \(i, j, k\) \(60, 20, 5\) is outside the scan"):
        session.add_box(ijk=((5, 5, 5), (60, 20, 5)))
    with pytest.raises(ClickError, match="share no single voxel index"):
        session.add_box(ijk=((5, 5, 5), (20, 20, 9)))
    with pytest.raises(ClickError, match="two opposite corners, got 3"):
        session.add_box(ijk=((5, 5, 5), (20, 20, 5), (1, 1, 5)))
    with pytest.raises(ClickError, match="scribble"):
        session.add_scribble(ijk=[])
    assert session.prompts == []


def test_prompt_objects_replay_through_add_prompt(region_model, oblique_volume):
    first, _ = _session(region_model, oblique_volume)
    first.add_lasso(ijk=[(15, 18, 11), (29, 18, 11), (22, 33, 11)])
    first.add_scribble(ijk=[(20, 25, 4), (24, 27, 5)], positive=False)
    second, _ = _session(region_model, oblique_volume)
    for prompt in first.prompts:
        second.add_prompt(prompt)
    np.testing.assert_array_equal(first.mask, second.mask)
    with pytest.raises(ClickError, match="not a prompt"):
        second.add_prompt(("not", "one"))


# --- the project's network with a 4th click channel -------------------------------------------------------------

def test_interactive_vnet_with_a_region_channel_exports_and_takes_a_box(tmp_path, oblique_volume):
    from training.export import export_model
    from training.network import InteractiveVNet, build_network

    if "click_channels" not in inspect.signature(InteractiveVNet).parameters:
        pytest.skip("training/network.py has no click_channels option yet (the training issue adds it)")
    import paddle

    paddle.seed(0)
    net = build_network({"network": {"click_channels": 4, "base": 2, "levels": 2, "depths": (1, 1, 1)}})
    manifest = region_manifest(patch=(16, 16, 16), name="vnet-region")
    export_model(net, tmp_path, manifest, (16, 16, 16), formats=("onnx",))
    model = load_model(tmp_path, backend="onnx", device="cpu", threads=1)
    assert model.manifest["inputs"][1]["channels"] == REGION_CHANNELS
    session, recording = _session(model, oblique_volume)
    result = session.add_box(ijk=((14.0, 20.0, 12.0), (30.0, 36.0, 12.0)))
    assert recording.calls[-1][1].shape == (1, 4, 16, 16, 16) and recording.channel("region", run=0).sum() > 10
    assert result.mask.shape == SHAPE and result.runs >= 1


def test_a_stroke_longer_than_the_largest_roi_runs_in_windows_at_the_fine_grid(tiny_model_dir, tmp_path):
    """A 13 cm stroke with a 32 mm largest ROI: windows of 32 mm along it (not one coarse 18 cm ROI), each with
    the click-sized ball; the mask follows the whole stroke as a thin tube, and the mask outside the windows stays."""
    import copy

    model = load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1)
    recording = Recording(model)
    recording.manifest = copy.deepcopy(model.manifest)
    recording.manifest["spacing_policy"]["max_roi_mm"] = 32.0
    array = (np.random.default_rng(2).random((24, 40, 150)) * 100).astype(np.int16)
    volume = Volume(array, np.diag([1.0, 1.0, 1.0, 1.0]))
    session = InteractiveSession(recording)
    session.set_volume(volume)
    stroke = np.array([[10.0, 20.0, 12.0], [80.0, 30.0, 12.0], [140.0, 10.0, 12.0]])  # (i, j, k), 13 cm
    from inference.model_input import stroke_windows

    boxes = [w.scan_box(volume.shape) for w in stroke_windows(recording.manifest, volume.shape, (1.0, 1.0, 1.0),
                                                              stroke[:, ::-1])]
    covered = np.zeros(volume.shape, bool)
    for box in boxes:
        covered[box] = True
    union = tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))
    inside_union = np.zeros(volume.shape, bool)
    inside_union[union] = True
    spot = np.argwhere(inside_union & ~covered)[0]  # in the windows' box, under no window: kept as it was
    existing = np.zeros(volume.shape, np.uint8)
    existing[tuple(spot)] = 1
    session.set_mask(existing)
    result = session.add_scribble(ijk=stroke)
    assert result.runs == len(recording.calls) >= 4
    np.testing.assert_allclose(session.last_roi.voxel_mm(volume.spacing[::-1]), 1.0)  # 32 mm over 32 voxels
    mask = result.mask > 0
    for i in range(10, 141, 5):  # the tube follows the stroke end to end
        j = int(round(np.interp(i, stroke[:, 0], stroke[:, 1])))
        assert mask[12, j, i], f"stroke point i={i} not in the mask"
    assert mask[12, :, 80].sum() <= 9  # thin: the 3 mm ball of a fine grid, not a coarse grid's blob
    assert mask[tuple(spot)]
    assert session.undo().mask[12, 30, 80] == 0


def test_a_scribble_takes_one_view_where_a_click_zooms_out(tiny_model_dir):
    """Every voxel found (threshold 0): the find touches each inner face of the view. A click zooms out (more
    runs); a scribble answers from its one view (before: 3 runs, ~100 ms each on the 2-core machine)."""
    import copy

    recording = Recording(load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1))
    recording.manifest = copy.deepcopy(recording.manifest)
    recording.manifest["threshold"] = 0.0
    volume = Volume((np.random.default_rng(4).random((90, 90, 90)) * 100).astype(np.int16), np.eye(4))
    session = InteractiveSession(recording)
    session.set_volume(volume)
    assert session.add_click(ijk=(45, 45, 45)).runs > 1
    session.reset()
    result = session.add_scribble(ijk=[(38.0, 45.0, 45.0), (52.0, 47.0, 45.0)])
    assert result.runs == 1 and result.mask[45, 46, 45]
