"""EISeg-Med3D engine: clicks in, 3D mask out. Slicer-free (numpy, SimpleITK, Paddle Inference, ONNX Runtime).

Public API (stable, used by the Slicer module, the CLI, evaluation and user scripts)::

    from inference import Volume, load_model, InteractiveSession
"""
from .errors import ClickError, EISegError, ModelError, ProgressError, SaveError, SessionError, VolumeError


def __getattr__(name):
    # Heavy packages (SimpleITK, paddle, onnxruntime) load on first use only, so training workers that need
    # just the ROI and click-map code run where those packages are absent.
    if name == "Volume":
        from .volume import Volume

        return Volume
    if name == "load_model":
        from .model import load_model

        return load_model
    if name in ("InteractiveSession", "ClickResult"):
        from . import session

        return getattr(session, name)
    raise AttributeError(name)


__all__ = [
    "Volume", "load_model", "InteractiveSession", "ClickResult",
    "EISegError", "VolumeError", "ModelError", "ClickError", "SessionError", "ProgressError", "SaveError",
]
