"""MRML-facing logic of the EISegMed3D Slicer module (no Qt): usable in Slicer, its console and headless tests.

The logic and the worker are imported on first use (PEP 562): they need the engine's packages, which the module
may still have to install, while the small helpers (clicks, helper_nodes) need only Slicer itself.
"""
__all__ = ["InteractiveSegmentationLogic", "Worker", "Outcome"]


def __getattr__(name):
    if name == "InteractiveSegmentationLogic":
        from .logic import InteractiveSegmentationLogic

        return InteractiveSegmentationLogic
    if name in ("Worker", "Outcome"):
        from . import worker

        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
