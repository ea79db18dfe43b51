"""benchmarks/region_drawing.py: it times the drawings it names, and the prism it times is the one the engine draws."""
from __future__ import annotations

import numpy as np

from benchmarks.region_drawing import MARK_END, MARK_START, PATCH, measure, render, shapes


def test_each_shape_is_timed_as_slice_and_prism_and_the_prism_crosses_the_patch():
    rows = measure(repeats=1)
    assert [r["shape"] for r in rows] == list(shapes())
    for row in rows:
        assert row["slice"]["median_ms"] > 0 and row["prism"]["median_ms"] > 0
        # a slice is one voxel layer of the footprint; the prism is that footprint on every layer (~64 of them)
        assert 40 * row["slice"]["voxels"] < row["prism"]["voxels"] < np.prod(PATCH)
    text = render(rows, "python benchmarks/region_drawing.py", "a test machine")
    assert text.startswith(MARK_START) and text.endswith(MARK_END) and text.count("\n| ") == 5
