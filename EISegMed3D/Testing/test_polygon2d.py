"""The 2D polygon tests behind a box or lasso: along many parallel lines (a prism across a patch) they must say what
the point-by-point test says, including points exactly on edges and at vertices."""
from __future__ import annotations

import numpy as np
import pytest

from inference.polygon2d import EDGE_EPS, edge_distance, inside_along_lines, inside_polygon


def _lines(rng, step, lines=300):
    first = np.vstack([rng.integers(-12, 13, (lines // 2, 2)).astype(np.float64),  # lattice points: on edges, vertices
                       rng.uniform(-12, 12, (lines - lines // 2, 2))])
    return first, np.asarray(step, dtype=np.float64)


def _pointwise(first, step, count, outline):
    points = first[:, None, :] + np.arange(count)[None, :, None] * step
    return inside_polygon(points.reshape(-1, 2), outline).reshape(len(first), count)


L_SHAPE = np.array([[-8, -6], [4, -6], [4, -1], [-2, -1], [-2, 7], [-8, 7]], dtype=np.float64)
STAR = np.array([[np.cos(a) * r, np.sin(a) * r] for a, r in zip(np.linspace(0, 2 * np.pi, 14, endpoint=False),
                                                                  [9, 3.5] * 7)])


@pytest.mark.parametrize("outline", [L_SHAPE, STAR], ids=["L-shape", "star"])
@pytest.mark.parametrize("step", [(1.0, 0.0), (0.5, 0.5), (0.3, -0.7), (1e-3, 2e-4), (0.0, 1.0), (1e-12, 0.0)])
def test_inside_along_lines_is_the_pointwise_test(outline, step):
    rng = np.random.default_rng(7)
    first, step = _lines(rng, step)
    start = first - 12 * np.asarray(step)  # lines that cross the whole polygon
    expected = _pointwise(start, step, 25, outline)
    np.testing.assert_array_equal(inside_along_lines(start, step, 25, outline), expected)
    assert expected.any() and not expected.all()


def test_points_on_edges_and_vertices_count_as_inside_along_lines():
    first = np.array([[-8.0, -10.0], [4.0, -10.0], [0.0, -6.0 - 20 * 0.5], [-5.0, -1.0 - 8]])
    step = np.array([0.0, 1.0])  # columns running along the L's vertical edges, through its vertices
    inside = inside_along_lines(first, step, 25, L_SHAPE)
    points = first[:, None, :] + np.arange(25)[None, :, None] * step
    on = edge_distance(points.reshape(-1, 2), L_SHAPE).reshape(4, 25) <= EDGE_EPS
    assert on[:2].sum() >= 10 and (inside | ~on).all()  # every point of the outline is inside
    np.testing.assert_array_equal(inside, _pointwise(first, step, 25, L_SHAPE))
