"""The bundled default model on real validation scans from ../shared/data (skipped where that folder is absent)."""
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from inference import InteractiveSession, Volume, load_model
from inference.cli import main as cli_main
from training.evaluation.metrics import dice
from training.evaluation.robot import next_click

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
CASE = DATA / "spine_mri_vertebral_bodies_t2" / "case_008.nii.gz"  # validation split: never trained on

pytestmark = pytest.mark.skipif(not CASE.exists(), reason=f"real data not found at {DATA} (../shared/data beside the checkout)")


@pytest.fixture(scope="module")
def scan_and_label():
    volume = Volume.from_file(CASE)
    label = Volume.from_file(CASE.with_name("case_008_label.nii.gz")).array
    return volume, label


@pytest.mark.parametrize("backend", ["onnx", "paddle"])
def test_default_model_segments_an_unseen_vertebral_body_in_three_clicks(scan_and_label, backend):
    volume, label = scan_and_label
    target = label == 3
    session = InteractiveSession(load_model(backend=backend))
    session.set_volume(volume)
    mask = np.zeros_like(target)
    for _ in range(3):
        ijk, positive = next_click(target, mask, volume.spacing)
        mask = session.add_click(ijk=ijk, positive=positive).mask > 0
    assert dice(mask, target) > 0.85
    # The object stays local: nothing far from the vertebral body is switched on.
    assert not mask[label == 5].any()


def test_cli_segment_writes_the_label_on_the_scan_grid(tmp_path, scan_and_label):
    volume, label = scan_and_label
    scan = tmp_path / CASE.name
    scan.write_bytes(CASE.read_bytes())
    k, j, i = np.argwhere(label == 4).mean(axis=0).round().astype(int)
    assert cli_main(["segment", str(scan), "--click", f"{i},{j},{k}", "--label-value", "4"]) == 0
    written = sitk.ReadImage(str(tmp_path / "case_008_label.nii.gz"))
    original = sitk.ReadImage(str(CASE))
    assert written.GetOrigin() == original.GetOrigin()
    assert written.GetSpacing() == original.GetSpacing()
    assert written.GetDirection() == original.GetDirection()
    mask = sitk.GetArrayFromImage(written)
    assert set(np.unique(mask)) == {0, 4}
    assert dice(mask == 4, label == 4) > 0.8
