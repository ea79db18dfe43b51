"""InteractiveSession with real exported models (tiny random-weight nets whose logits follow the click channels)."""
from __future__ import annotations

import numpy as np
import pytest

from inference import ClickError, InteractiveSession, SessionError, Volume, load_model
from inference.mask_ops import bounding_box, clean_components, grow_from_click, seeds_in_ball

SHAPE = (14, 40, 44)  # k, j, i


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    return load_model(tiny_model_dir, backend="onnx", device="cpu", threads=1)


def _oblique_matrix() -> np.ndarray:
    angle = np.deg2rad(20.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    matrix = np.eye(4)
    matrix[:3, :3] = rotation @ np.diag([-0.8, 0.8, 2.5])  # flipped i, anisotropic, oblique in-plane
    matrix[:3, 3] = (30.0, -12.0, 55.0)
    return matrix


@pytest.fixture
def volume() -> Volume:
    array = (np.random.default_rng(3).random(SHAPE) * 400 - 200).astype(np.int16)
    return Volume(array, _oblique_matrix())


@pytest.fixture
def session(model, volume) -> InteractiveSession:
    session = InteractiveSession(model)
    session.set_volume(volume)
    return session


def _distance_mm(volume: Volume, ijk) -> np.ndarray:
    """Distance in mm of every voxel centre [k, j, i] from the point ijk."""
    k, j, i = np.meshgrid(*[np.arange(n) for n in volume.shape], indexing="ij")
    offsets = np.stack([i - ijk[0], j - ijk[1], k - ijk[2]], axis=-1).astype(np.float64)
    return np.linalg.norm(offsets @ volume.ijk_to_ras[:3, :3].T, axis=-1)


# --- clicks ---------------------------------------------------------------------------------------------------

def test_click_by_ijk_and_by_ras_give_the_same_mask(model, volume):
    ijk = (20.3, 17.6, 6.4)
    by_ijk, by_ras = InteractiveSession(model), InteractiveSession(model)
    by_ijk.set_volume(volume)
    by_ras.set_volume(volume)
    first = by_ijk.add_click(ijk=ijk).mask.copy()
    second = by_ras.add_click(ras=volume.ijk_to_ras_point(ijk)).mask
    assert first.any()
    assert np.array_equal(first, second)
    np.testing.assert_allclose(by_ras.clicks[0].ijk, ijk, atol=1e-9)


def test_positive_click_makes_foreground_around_the_click(session, volume):
    result = session.add_click(ijk=(22, 20, 7), positive=True)
    distance = _distance_mm(volume, (22, 20, 7))
    assert result.mask.dtype == np.uint8 and result.mask.shape == volume.shape
    assert result.mask[7, 20, 22] == 1
    assert result.mask[distance <= 2.0].all()  # the click ball (3 mm) is foreground
    assert not result.mask[distance > 8.0].any()  # and nothing far away
    assert result.latency_s >= result.model_s > 0 and result.runs >= 1
    assert session.clicks[0].positive and session.clicks[0].ijk == (22.0, 20.0, 7.0)


def test_negative_click_removes_foreground(session, volume):
    block = np.zeros(volume.shape, np.uint8)
    block[3:11, 8:32, 8:36] = 1
    session.set_mask(block)
    result = session.add_click(ijk=(20, 20, 7), positive=False)
    distance = _distance_mm(volume, (20, 20, 7))
    assert result.mask[7, 20, 20] == 0
    assert not result.mask[distance <= 2.0].any()
    assert result.mask[block.astype(bool) & (distance > 8.0)].mean() > 0.9  # the rest of the object stays
    assert not session.clicks[0].positive


def test_click_outside_the_scan_names_the_position(session, volume):
    with pytest.raises(ClickError, match=r"voxel \(i, j, k\) \(50, 3, 2\) is outside the scan of size \(i, j, k\) \(44, 40, 14\)"):
        session.add_click(ijk=(50, 3, 2))
    far = volume.ijk_to_ras_point((10, 10, -3))
    with pytest.raises(ClickError, match="RAS .*outside the scan"):
        session.add_click(ras=far)
    with pytest.raises(ClickError, match="finite"):
        session.add_click(ijk=(np.nan, 1, 1))
    with pytest.raises(ClickError, match="exactly one"):
        session.add_click(ijk=(1, 1, 1), ras=(0, 0, 0))
    assert session.clicks == [] and not session.mask.any() and not session.can_undo


def test_click_on_the_edge_voxel_is_inside(session, volume):
    nk, nj, ni = volume.shape
    result = session.add_click(ijk=(ni - 1, nj - 1, nk - 1))
    assert result.mask[nk - 1, nj - 1, ni - 1] == 1


def test_session_without_a_volume_says_so(model):
    with pytest.raises(SessionError, match="set_volume"):
        InteractiveSession(model).add_click(ijk=(0, 0, 0))


# --- undo / redo ----------------------------------------------------------------------------------------------

def test_undo_redo_restore_exact_masks_and_clicks(session):
    masks, clicks = [session.mask.copy()], [[]]
    for ijk, positive in [((10, 10, 4), True), ((30, 28, 9), True), ((30, 28, 9), False)]:
        session.add_click(ijk=ijk, positive=positive)
        masks.append(session.mask.copy())
        clicks.append(list(session.clicks))
    assert not np.array_equal(masks[1], masks[2])
    for index in (2, 1, 0):
        result = session.undo()
        assert np.array_equal(result.mask, masks[index]) and session.clicks == clicks[index]
    with pytest.raises(SessionError, match="nothing to undo"):
        session.undo()
    for index in (1, 2, 3):
        session.redo()
        assert np.array_equal(session.mask, masks[index]) and session.clicks == clicks[index]
    with pytest.raises(SessionError, match="nothing to redo"):
        session.redo()


def test_new_click_after_undo_drops_the_redo_branch(session):
    session.add_click(ijk=(10, 10, 4))
    session.add_click(ijk=(30, 28, 9))
    session.undo()
    assert session.can_redo
    session.add_click(ijk=(12, 30, 5))
    assert not session.can_redo and len(session.clicks) == 2


def test_undo_with_nothing_and_reset(session):
    with pytest.raises(SessionError, match="nothing to undo"):
        session.undo()
    session.add_click(ijk=(10, 10, 4))
    session.reset()
    assert not session.mask.any() and session.clicks == [] and not session.can_undo


# --- set_mask, changed_box, bookkeeping -----------------------------------------------------------------------

def test_set_mask_continues_from_an_existing_mask(session, volume):
    existing = np.zeros(volume.shape, np.uint8)
    existing[2:6, 5:12, 5:12] = 7  # any non-zero value is the object
    existing[10:13, 30:38, 34:42] = 1  # a second part, far from the click
    session.set_mask(existing)
    assert set(np.unique(session.mask)) == {0, 1}
    with pytest.raises(SessionError):
        session.undo()  # history starts at the given mask
    result = session.add_click(ijk=(14, 8, 4))  # next to the first part
    # the existing object is kept (its voxels are re-decided by the model: check the inside, not every corner)
    assert result.mask[3:5, 6:11, 6:11].all() and result.mask[11, 31:37, 35:41].all()
    assert result.mask[existing > 0].mean() > 0.9
    assert result.mask[4, 8, 14] == 1 and result.mask.sum() > (existing > 0).sum()
    session.undo()
    assert np.array_equal(session.mask, (existing > 0).astype(np.uint8))
    with pytest.raises(SessionError, match="does not match"):
        session.set_mask(np.zeros((2, 2, 2), np.uint8))


def test_changed_box_covers_every_changed_voxel(session, volume):
    previous = session.mask.copy()
    for ijk, positive in [((15, 12, 5), True), ((28, 25, 8), True), ((15, 12, 5), False)]:
        result = session.add_click(ijk=ijk, positive=positive)
        changed = previous != result.mask
        box = result.changed_box
        inside = np.zeros(volume.shape, bool)
        inside[box] = True
        assert changed.any() and not (changed & ~inside).any()
        assert bounding_box(changed) == box  # and it is tight
        previous = result.mask.copy()
    undone = session.undo()
    assert bounding_box(previous != undone.mask) == undone.changed_box


def test_mask_box_bookkeeping_matches_the_mask(session, volume):
    """The session keeps the object's box incrementally (a click must not scan the whole mask): check it."""
    steps = [lambda: session.add_click(ijk=(10, 10, 4)), lambda: session.add_click(ijk=(33, 30, 10)),
             session.undo, session.undo, session.redo,
             lambda: session.add_click(ijk=(10, 10, 4), positive=False), session.reset,
             lambda: session.set_mask(np.pad(np.ones((2, 3, 4), np.uint8), [(5, 7), (9, 28), (1, 39)])),
             lambda: session.add_click(ijk=(3, 10, 6), positive=False)]
    for step in steps:
        step()
        assert session._mask_box == bounding_box(session.mask)


# --- clean-up -------------------------------------------------------------------------------------------------

def test_clean_components_keeps_positive_and_drops_negative_only():
    mask = np.zeros((20, 20, 20), np.uint8)
    mask[2:5, 2:5, 2:5] = 1  # A: positive click
    mask[8:11, 8:11, 8:11] = 1  # B: negative click only
    mask[0:3, 14:17, 14:17] = 1  # C: no click, touches the region border
    mask[14:17, 3:6, 10:13] = 1  # D: no click, overlaps the previous mask
    mask[13:16, 13:16, 13:16] = 1  # E: no click, interior, new
    mask[4:7, 12:15, 3:6] = 1  # F: positive and negative click
    previous = np.zeros_like(mask)
    previous[15, 4, 11] = 1
    kept = clean_components(mask, [(3, 3, 3), (5, 13, 4)], [(9, 9, 9), (5, 14, 5), (14, 14, 14.2)], previous)
    assert kept.dtype == np.uint8
    assert kept[2:5, 2:5, 2:5].all() and kept[4:7, 12:15, 3:6].all()  # A, F
    assert not kept[8:11, 8:11, 8:11].any()  # B
    assert kept[0:3, 14:17, 14:17].all() and kept[14:17, 3:6, 10:13].all()  # C, D
    assert not kept[13:16, 13:16, 13:16].any()  # E (also holds a negative click)
    kept_no_negative = clean_components(mask, [(3, 3, 3)], [], previous)
    assert not kept_no_negative[13:16, 13:16, 13:16].any()  # E has no reason to stay either way
    assert kept_no_negative[8:11, 8:11, 8:11].sum() == 0  # B: interior, new, no click


def test_clean_components_uses_26_connectivity_and_ignores_points_outside():
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1, 1, 1] = mask[2, 2, 2] = 1  # corner-touching: one component
    kept = clean_components(mask, [(1, 1, 1), (50, 0, 0), (-3, 1, 1)], [])
    assert kept[2, 2, 2] == 1
    assert not clean_components(mask, [], [(2, 2, 2)]).any()
    assert not clean_components(np.zeros((3, 3, 3), np.uint8), [(1, 1, 1)]).any()


def test_a_positive_click_in_a_hole_of_the_object_keeps_it_and_fills_that_hole():
    """A network may mark an object all around a click but leave the clicked voxel below threshold (seen on a
    large bright ellipsoid): the click's component is then the enclosing shell, not nothing."""
    grid = np.indices((24, 24, 24)) - 12
    radius = np.sqrt((grid ** 2).sum(0))
    shell = ((radius <= 9) & (radius > 2)).astype(np.uint8)  # a ball with a small hole at its centre
    other = np.zeros_like(shell)
    other[0:3, 0:3, 20:23] = 1  # an unrelated hollow-free blob in a corner: untouched by the fill
    kept = clean_components(shell | other, [(12, 12, 12)], [])
    assert kept.dtype == np.uint8
    np.testing.assert_array_equal(kept[3:21, 3:21, 3:21], (radius <= 9)[3:21, 3:21, 3:21])  # shell kept, hole filled
    assert kept[0:3, 0:3, 20:23].all()  # the corner blob touches the border: kept as before
    # a click in the background outside the object fills nothing and keeps nothing new
    outside = clean_components(shell, [(1, 12, 12)], [])
    assert not outside.any()
    # a hole without a positive click in it stays a hole
    assert clean_components(shell, [(12, 12, 19)], [])[12, 12, 12] == 0


def test_a_positive_click_in_an_open_gap_keeps_what_the_network_marked_within_its_ball():
    """Candidates answered a long bright ellipsoid with a mask that wraps the click with an open gap at it (p 0.185
    at the click, the mask one voxel away): no component held the click and the user got nothing."""
    grid = np.indices((24, 24, 24)) - 12
    radius = np.sqrt((grid ** 2).sum(0))
    cup = ((radius <= 9) & (radius > 1.5) & (grid[2] > -1)).astype(np.uint8)  # open towards -i at the click
    cup[11:14, 11:14, 12:] = 0  # and a channel out to +i: no enclosed hole at the click
    far = np.zeros_like(cup)
    far[12, 12, 3:5] = 1  # marked 8 mm from the click: not within its 3 mm ball
    mask, click = cup | far, (12.0, 12.0, 11.0)
    assert not mask[12, 12, 11] and not clean_components(mask, [click], []).any()  # what the engine did before
    seeds = seeds_in_ball(mask, click, 3.0, (1.0, 1.0, 1.0))
    assert len(seeds) and np.sqrt(((seeds - click) ** 2).sum(1)).max() <= 3.0 and mask[tuple(seeds.astype(int).T)].all()
    kept = clean_components(mask, np.vstack([[click], seeds]), [])
    np.testing.assert_array_equal(kept, cup)  # the cup kept whole, the far blob not
    # thick slices: the same 3 mm stay on the click's own 3.5 mm slice
    thick = seeds_in_ball(mask, click, 3.0, (3.5, 1.0, 1.0))
    assert len(thick) and (thick[:, 0] == 12).all() and len(thick) < len(seeds)
    # a click the answer holds needs no seeds; nor does one outside the array
    assert mask[12, 8, 14] and seeds_in_ball(mask, (12.0, 8.0, 14.0), 3.0, (1.0, 1.0, 1.0)).shape == (0, 3)
    assert seeds_in_ball(mask, (12.0, 12.0, 40.0), 3.0, (1.0, 1.0, 1.0)).shape == (0, 3)


def test_hole_filling_in_the_mask_box_equals_filling_the_whole_array():
    """The fill is computed in the mask's bounding box only; the holes it fills are those of the whole array."""
    from scipy import ndimage

    from inference.mask_ops import _FULL, _fill_holes_under

    rng = np.random.default_rng(3)
    for trial in range(20):
        mask = np.zeros((30, 32, 34), bool)  # the object away from the array's corner: its box starts inside
        mask[6:26, 5:27, 7:31] = ndimage.gaussian_filter(rng.random((20, 22, 24)), 1.5) > 0.5
        mask[rng.integers(14, 26):, :, :rng.integers(8, 22)] = False  # objects off the centre, some at the border
        deep = np.argwhere(ndimage.binary_erosion(mask, iterations=2))
        for k, j, i in deep[rng.choice(len(deep), 3)]:
            mask[k, j, i:i + 2] = False  # cavities: enclosed background
        holes, count = ndimage.label(ndimage.binary_fill_holes(mask) & ~mask, structure=_FULL)
        assert count > 0  # the case worth testing: enclosed background
        points = np.vstack([np.argwhere(~mask)[rng.choice((~mask).sum(), 20)],
                            np.argwhere(holes > 0)[rng.choice((holes > 0).sum(), 2)]])
        clicked = sorted({int(v) for v in holes[tuple(points.T)] if v})
        expected = mask | np.isin(holes, clicked) if clicked else mask
        np.testing.assert_array_equal(_fill_holes_under(mask.astype(np.uint8), points) > 0, expected)


def test_session_drops_a_component_holding_only_a_negative_click(session, volume):
    """End to end: a far-away blob of the previous mask that gets a negative click is removed."""
    existing = np.zeros(volume.shape, np.uint8)
    existing[5:9, 15:25, 15:25] = 1
    session.set_mask(existing)
    result = session.add_click(ijk=(20, 20, 7), positive=False)
    assert result.mask[7, 20, 20] == 0


# --- legacy profile --------------------------------------------------------------------------------------------

def test_legacy_profile_session_on_a_small_volume(legacy_model_files):
    graph, params = legacy_model_files
    model = load_model(graph, params_path=params, backend="paddle", device="cpu", threads=1, legacy_grid=(64, 64, 12))
    assert model.manifest["profile"] == "legacy"
    array = (np.random.default_rng(5).random((10, 50, 70)) * 2000).astype(np.int16)
    volume = Volume(array, np.diag([-0.7, -0.7, 3.0, 1.0]))
    session = InteractiveSession(model)
    session.set_volume(volume)
    result = session.add_click(ijk=(35, 25, 5))
    assert result.mask[5, 25, 35] == 1
    assert 0 < result.mask.sum() < result.mask.size // 4
    by_ras = InteractiveSession(model)
    by_ras.set_volume(volume)
    assert np.array_equal(by_ras.add_click(ras=volume.ijk_to_ras_point((35, 25, 5))).mask, result.mask)
    session.undo()
    assert not session.mask.any()


class RecordingModel:
    """The real legacy model, keeping a copy of each input it is given."""

    def __init__(self, model):
        self.model, self.manifest, self.inputs = model, model.manifest, []

    def predict(self, image, clicks):
        self.inputs.append(clicks.copy())
        return self.model.predict(image, clicks)


def test_legacy_profile_feeds_back_its_own_soft_output(legacy_model_files):
    """The original model was fed sigmoid(last logits), not a thresholded mask: the session does the same."""
    graph, params = legacy_model_files
    model = RecordingModel(load_model(graph, params_path=params, backend="paddle", device="cpu", threads=1,
                                      legacy_grid=(64, 64, 12)))
    volume = Volume((np.random.default_rng(6).random((10, 50, 70)) * 2000).astype(np.int16), np.diag([0.7, 0.7, 3.0, 1.0]))
    session = InteractiveSession(model)
    session.set_volume(volume)
    session.add_click(ijk=(35, 25, 5))
    first_logits = model.model.predict(*_legacy_inputs(session, model))
    session.add_click(ijk=(20, 20, 5), positive=False)
    fed_back = model.inputs[-1][0, 0]
    assert not np.isin(fed_back, (0.0, 1.0)).all()  # soft, not binary
    np.testing.assert_allclose(fed_back, 1 / (1 + np.exp(-first_logits[0, 0])), atol=1e-5)
    session.undo()  # after undo the next click sees the first click's soft output again
    session.add_click(ijk=(20, 20, 5), positive=False)
    np.testing.assert_allclose(model.inputs[-1][0, 0], fed_back, atol=1e-6)


def _legacy_inputs(session, model):
    """The inputs of the first click again (the recorder holds its click channels; the image is recomputed)."""
    from inference.model_input import choose_roi, model_inputs

    roi = choose_roi(model.manifest, session.volume.shape, session.volume.spacing[::-1], [c.kji for c in session.clicks])
    image, _ = model_inputs(session.volume.array, session._stats, None, session.clicks, roi,
                            session.volume.spacing[::-1], model.manifest)
    return image, model.inputs[0]


def test_probability_of_extreme_logits_is_exact_and_silent():
    import warnings

    from inference.session import probability

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old 1 / (1 + exp(-x)) raised "overflow encountered in exp" here
        p = probability(np.array([-1000.0, 0.0, 1000.0], dtype=np.float32))
    np.testing.assert_array_equal(p, [0.0, 0.5, 1.0])
    assert p.dtype == np.float32


def _long_object_with_a_doubtful_click():
    """Probabilities as a trained network gave them on a long bright ellipsoid cut by the view on both sides: the
    two ends sure (0.9), the middle around the click in doubt (0.4), the rest background (0.02). The doubtful middle
    runs through the object's whole cross-section, so no hole encloses the click."""
    probability = np.full((20, 20, 60), 0.02, np.float32)
    probability[6:14, 6:14, 2:24] = 0.9
    probability[6:14, 6:14, 24:36] = 0.4
    probability[6:14, 6:14, 36:58] = 0.9
    return probability, (10.0, 10.0, 30.0)


def test_a_positive_click_whose_voxel_is_in_doubt_keeps_what_is_joined_to_it():
    probability, click = _long_object_with_a_doubtful_click()
    thresholded = (probability > 0.5).astype(np.uint8)
    # the clean-up alone gives the user nothing for a click on an obvious object (what the engine did before)
    assert not clean_components(thresholded, [click], []).any()
    kept = clean_components(grow_from_click(thresholded, probability, click), [click], [])
    assert kept.sum() == 8 * 8 * 56 and kept[10, 10, 30] and not kept[0, 0, 0]


def test_growing_from_a_click_leaves_sure_answers_alone():
    probability, click = _long_object_with_a_doubtful_click()
    thresholded = (probability > 0.5).astype(np.uint8)
    background = probability.copy()
    background[6:14, 6:14, 24:36] = 0.2  # the network says "not here" at the click: a positive click may be wrong
    assert np.array_equal(grow_from_click(thresholded, background, click), thresholded)
    inside = (probability > 0.3).astype(np.uint8)  # the clicked voxel already in the mask: nothing to add
    assert np.array_equal(grow_from_click(inside, probability, click), inside)
    assert np.array_equal(grow_from_click(thresholded, probability, (10.0, 10.0, 99.0)), thresholded)
