"""Errors the engine raises: each message names the file or input and what is wrong with it."""
from .atomic import SaveError


class EISegError(Exception):
    """Base class of every error raised on purpose by the engine."""


class VolumeError(EISegError):
    """A scan or label file cannot be read or is not a usable 3D image."""


class ModelError(EISegError):
    """A model package or model file is missing, tampered with or does not match its manifest."""


class ClickError(EISegError):
    """A click is outside the scan or otherwise unusable."""


class SessionError(EISegError):
    """The interactive session was asked something it cannot do (no volume, nothing to undo, ...)."""


class ProgressError(EISegError):
    """The progress file of a data folder cannot be read or written."""


__all__ = ["EISegError", "VolumeError", "ModelError", "ClickError", "SessionError", "ProgressError", "SaveError"]
