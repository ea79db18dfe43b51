"""MRML-facing logic of the EISegMed3D Slicer module (no Qt): usable in Slicer, its console and headless tests."""
from .logic import InteractiveSegmentationLogic
from .worker import Outcome, Worker

__all__ = ["InteractiveSegmentationLogic", "Worker", "Outcome"]
