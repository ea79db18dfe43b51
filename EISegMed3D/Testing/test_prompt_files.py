"""Prompt files for the CLI: Slicer's own markups files (written here by slicer-core's storage nodes, LPS and RAS)
and simple JSON; `eiseg-med3d segment --box / --lasso-file / --scribble-file` end to end on a real model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from inference import ClickError
from inference.cli import main
from inference.prompt_files import prompt_calls, read_prompt_file
from test_cli import scan  # noqa: F401 - the LPS-oriented, permuted, anisotropic scan fixture


def _write_markup(node, path, system: str):
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
    scene = node.GetScene()
    storage = (slicer.vtkMRMLMarkupsROIJsonStorageNode() if node.IsA("vtkMRMLMarkupsROINode")
               else slicer.vtkMRMLMarkupsJsonStorageNode())
    scene.AddNode(storage)
    storage.SetCoordinateSystem(getattr(slicer.vtkMRMLStorageNode, f"CoordinateSystem{system}"))
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    return path


_SCENES = []  # a node's scene must outlive the helper that made it


def _scene():
    slicer = pytest.importorskip("slicer", reason="slicer-core is not installed (pip install slicer-core)")
    _SCENES.append(slicer.vtkMRMLScene())
    return slicer, _SCENES[-1]


def _curve(kind: str, points):
    slicer, scene = _scene()
    node = getattr(slicer, f"vtkMRMLMarkups{kind}Node")()
    scene.AddNode(node)
    import vtk

    for p in points:
        node.AddControlPoint(vtk.vtkVector3d(*p))
    return node


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_slicer_roi_markup_is_the_box_on_its_mid_plane(tmp_path, system):
    import vtk

    slicer, scene = _scene()
    roi = slicer.vtkMRMLMarkupsROINode()
    scene.AddNode(roi)
    angle = np.deg2rad(30.0)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    matrix = vtk.vtkMatrix4x4()
    for r in range(3):
        for c in range(3):
            matrix.SetElement(r, c, rotation[r, c])
        matrix.SetElement(r, 3, (-3.0, 12.0, 104.0)[r])
    roi.SetAndObserveObjectToNodeMatrix(matrix)
    roi.SetSize([8.0, 0.0, 6.0])  # flat along its second axis: a rectangle on an oblique plane
    calls = read_prompt_file(_write_markup(roi, tmp_path / "box.mrk.json", system), "box")
    assert len(calls) == 1 and calls[0].method == "add_box"
    a, b = np.array(calls[0].kwargs["ras"])
    centre = np.array([-3.0, 12.0, 104.0])
    half = 4.0 * rotation[:, 0] + 3.0 * rotation[:, 2]
    np.testing.assert_allclose(a, centre - half, atol=1e-9)
    np.testing.assert_allclose(b, centre + half, atol=1e-9)
    plane = np.array(calls[0].kwargs["plane"])
    np.testing.assert_allclose(plane[1] - plane[0], rotation[:, 0], atol=1e-9)
    np.testing.assert_allclose(plane[2] - plane[0], rotation[:, 2], atol=1e-9)


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_slicer_closed_curve_and_curve_markups(tmp_path, system):
    outline = [(10.0, -30.0, 101.0), (4.0, -30.0, 108.0), (-2.0, -30.0, 100.0)]
    lasso = read_prompt_file(_write_markup(_curve("ClosedCurve", outline), tmp_path / "l.mrk.json", system), "lasso")
    assert lasso[0].method == "add_lasso" and lasso[0].kwargs["positive"] is True
    np.testing.assert_allclose(lasso[0].kwargs["ras"], outline, atol=1e-9)
    stroke = [(1.0, -35.0, 103.0), (5.0, -33.0, 104.0)]
    path = _write_markup(_curve("Curve", stroke), tmp_path / "s.mrk.json", system)
    scribble = prompt_calls("scribble-file", f"{path}:-")
    assert scribble[0].method == "add_scribble" and scribble[0].kwargs["positive"] is False
    np.testing.assert_allclose(scribble[0].kwargs["ras"], stroke, atol=1e-9)


def test_a_markup_of_the_wrong_type_is_named(tmp_path):
    path = _write_markup(_curve("Curve", [(0, 0, 0), (1, 1, 1)]), tmp_path / "curve.mrk.json", "LPS")
    with pytest.raises(ClickError, match=r"curve\.mrk\.json: markup .* of type 'Curve' is not a lasso \(a lasso is a ClosedCurve markup\)"):
        read_prompt_file(path, "lasso")


def test_simple_json_prompts(tmp_path):
    path = tmp_path / "strokes.json"
    path.write_text(json.dumps([{"coordinates": "ijk", "points": [[1, 2, 3], [4, 5, 3]]},
                                {"coordinates": "LPS", "points": [[1, 2, 3]], "positive": False}]))
    calls = read_prompt_file(path, "scribble")
    assert [c.kwargs.get("ijk") for c in calls] == [[(1.0, 2.0, 3.0), (4.0, 5.0, 3.0)], None]
    assert calls[1].kwargs["ras"] == [(-1.0, -2.0, 3.0)] and calls[1].kwargs["positive"] is False
    assert [c.source for c in calls] == [f"{path} #1", f"{path} #2"]
    box = tmp_path / "box.json"
    box.write_text(json.dumps({"coordinates": "lps", "corners": [[1, 2, 3], [5, 6, 3]], "normal": [0, 0, 1]}))
    (call,) = read_prompt_file(box, "box")
    assert call.kwargs == {"ras": ((-1.0, -2.0, 3.0), (-5.0, -6.0, 3.0)), "normal": (0.0, 0.0, 1.0)}
    assert prompt_calls("box", "1,2,3,4,5,3")[0].kwargs == {"ijk": ((1.0, 2.0, 3.0), (4.0, 5.0, 3.0))}


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON lasso file"),
    ('{"coordinates": "xyz", "points": []}', "coordinates 'xyz': use 'ras', 'lps' or 'ijk'"),
    ('{"points": [[1, 2, 3], [4, 5, 6]]}', "a lasso needs at least 3 points, found 2"),
    ('{"points": [[1, 2], [4, 5]]}', r"points must be a list of \[x, y, z\] numbers"),
    ("[]", "holds no lasso"),
])
def test_bad_prompt_files_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ClickError, match=rf"bad\.json: .*{message}|bad\.json: {message}"):
        read_prompt_file(path, "lasso")


def test_bad_inline_box():
    with pytest.raises(ClickError, match=r"--box '1,2,3': expected six numbers i,j,k,i,j,k"):
        prompt_calls("box", "1,2,3")


# --- end to end -----------------------------------------------------------------------------------------------

def _run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_segment_with_a_box_a_lasso_a_scribble_and_a_click(scan, region_model_dir, tmp_path, capsys):
    from inference import Volume

    volume = Volume.from_file(scan)
    lasso = tmp_path / "outline.json"
    lasso.write_text(json.dumps({"coordinates": "ijk", "points": [[8, 8, 4], [20, 8, 4], [14, 20, 4]]}))
    stroke = _write_markup(_curve("Curve", [volume.ijk_to_ras_point(p) for p in ((25, 20, 8), (28, 25, 8))]),
                           tmp_path / "stroke.mrk.json", "LPS")
    out_file = tmp_path / "object.nii.gz"
    code, out, err = _run(["segment", scan, "--box", "10,10,6,22,24,6", "--click", "30,5,2",
                           "--lasso-file", lasso, "--scribble-file", f"{stroke}:-", "--out", out_file,
                           "--model", region_model_dir, "--backend", "onnx", "--threads", "1"], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if not line.startswith(("model:", "wrote"))]
    assert [line.split(" (")[0] for line in lines[:4]] == ["box 1", "click 1", "lasso 1", "scribble 1"]
    assert "(-) from " in lines[3] and str(stroke) in lines[3]
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(out_file)))
    assert label[6, 12:22, 12:20].all()  # the box's slice inside the box
    assert label[4, 10, 12] == 1  # the lasso's slice inside the lasso


def test_segment_box_on_a_model_without_region_fails_before_writing(scan, tiny_model_dir, tmp_path, capsys):
    out_file = tmp_path / "object.nii.gz"
    code, _, err = _run(["segment", scan, "--box", "10,10,6,22,24,6", "--out", out_file,
                         "--model", tiny_model_dir, "--backend", "onnx", "--threads", "1"], capsys)
    assert code == 2
    assert "model tiny-test has no 'region' input; boxes need a model trained with them" in err
    assert not out_file.exists()


def test_segment_prompt_outside_the_scan_is_refused_before_the_model_loads(scan, tmp_path, capsys):
    lasso = tmp_path / "outline.json"
    lasso.write_text(json.dumps({"coordinates": "ijk", "points": [[8, 8, 4], [80, 8, 4], [14, 20, 4]]}))
    code, _, err = _run(["segment", scan, "--lasso-file", lasso, "--model", tmp_path / "no-model"], capsys)
    assert code == 2 and f"{lasso}: point 2 = voxel (i, j, k) (80, 8, 4) is outside the scan" in err
