"""A random-weight test network taking the 4th "region" click channel (boxes and lassos), with the engine's I/O.

Logits ~ 8 * (positive - negative + region) + 4 * (previous - 0.5) plus a small image term, so a test can see
where the session drew each channel from the mask it returns.
"""
from __future__ import annotations

import copy

import paddle

from tiny_nets import TINY_PATCH, tiny_manifest

REGION_CHANNELS = ["previous_mask", "positive_clicks", "negative_clicks", "region"]


class TinyRegionNet(paddle.nn.Layer):
    def __init__(self, width: int = 4):
        super().__init__()
        self.conv1 = paddle.nn.Conv3D(5, width, 3, padding=1)
        self.conv2 = paddle.nn.Conv3D(width, 1, 3, padding=1)

    def forward(self, image, clicks):
        features = self.conv2(paddle.nn.functional.relu(self.conv1(paddle.concat([image, clicks], axis=1))))
        previous, positive, negative, region = (clicks[:, c:c + 1] for c in range(4))
        return 0.25 * features + 8.0 * (positive - negative + region) + 4.0 * (previous - 0.5)


def make_region_net(seed: int = 0) -> TinyRegionNet:
    paddle.seed(seed)
    net = TinyRegionNet()
    net.eval()
    return net


def region_manifest(patch=TINY_PATCH, name: str = "tiny-region-test") -> dict:
    manifest = copy.deepcopy(tiny_manifest(patch, name))
    manifest["inputs"][1]["channels"] = list(REGION_CHANNELS)
    return manifest
