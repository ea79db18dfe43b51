"""The evaluation protocol's simulated user: it lives in the engine (inference/robot.py), where the demo uses it."""
from inference.robot import (EDGE_DEPTH_MM, FIRST_CLICKS, VARIANTS, deepest_voxel, edge_click, largest_component,
                             mm_sampling, next_click)

__all__ = ["EDGE_DEPTH_MM", "FIRST_CLICKS", "VARIANTS", "deepest_voxel", "edge_click", "largest_component",
           "mm_sampling", "next_click"]
