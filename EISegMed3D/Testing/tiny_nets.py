"""Random-weight test networks with the engine's I/O, built deterministically (used by conftest fixtures).

Their logits depend strongly on the click channels (logits ~ 8 * (positive - negative) + 4 * (previous - 0.5)
plus a small image term), so tests can check that a positive click turns the voxels around it foreground.
"""
from __future__ import annotations

import paddle

TINY_PATCH = (32, 32, 32)


class TinyClickNet(paddle.nn.Layer):
    """image (N,1,*) + clicks (N,C,*) -> logits (N,1,*); C = 3 ([previous, positive, negative]) or 2 ([positive, negative])."""

    def __init__(self, click_channels: int = 3, width: int = 4):
        super().__init__()
        self.click_channels = click_channels
        self.conv1 = paddle.nn.Conv3D(1 + click_channels, width, 3, padding=1)
        self.conv2 = paddle.nn.Conv3D(width, 1, 3, padding=1)

    def forward(self, image, clicks):
        features = self.conv2(paddle.nn.functional.relu(self.conv1(paddle.concat([image, clicks], axis=1))))
        c = self.click_channels
        positive, negative = clicks[:, c - 2:c - 1], clicks[:, c - 1:c]
        previous = clicks[:, 0:1] if c == 3 else paddle.zeros_like(positive)
        return 0.25 * features + 8.0 * (positive - negative) + 4.0 * (previous - 0.5)


def make_tiny_net(click_channels: int = 3, seed: int = 0) -> TinyClickNet:
    paddle.seed(seed)
    net = TinyClickNet(click_channels)
    net.eval()
    return net


def tiny_manifest(patch=TINY_PATCH, name: str = "tiny-test") -> dict:
    """The CONTEXT.md manifest layout for a 32^3 random-weight test model."""
    return {
        "format_version": 1,
        "name": name,
        "description": "random-weight tiny 3D net exported by a test fixture (not a real segmenter)",
        "inputs": [{"name": "image", "channels": ["image"]},
                   {"name": "clicks", "channels": ["previous_mask", "positive_clicks", "negative_clicks"]}],
        "output": {"name": "logits", "meaning": "foreground logit per voxel; sigmoid then threshold"},
        "axis_order": "kji",
        "patch_shape": list(patch),
        "spacing_policy": {"type": "roi_isotropic", "initial_roi_mm": 32.0, "margin": 1.4, "min_roi_mm": 24.0,
                           "max_zoom_out": 3},
        "normalization": {"type": "percentile_zscore", "lower": 0.5, "upper": 99.5},
        "click_radius_mm": 3.0, "click_radius_min_voxels": 1.5, "threshold": 0.5,
        "training": {"data": "none (random weights)", "steps": 0},
        "validation": {},
    }


class BrightNet(paddle.nn.Layer):
    """A segmenter of "the bright thing in view": logits = 4 * (image - 1) on the z-scored image, plus the click
    balls, so the session's zoom-out and ROI choices can be tested against an object of known extent."""

    def forward(self, image, clicks):
        return 4.0 * (image - 1.0) + 8.0 * (clicks[:, 1:2] - clicks[:, 2:3])
