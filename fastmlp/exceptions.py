"""Exceptions raised by fastmlp.

Each subclasses the built-in a NumPy or scikit-learn user would catch for the
same problem, so ``except ValueError`` keeps working.
"""


class DataError(ValueError):
    """A data file is missing, corrupt, truncated or not what it claims to be."""


class ChecksumError(DataError):
    """A data file's SHA-256 does not match the published checksum."""


class ModelFileError(ValueError):
    """A saved model file cannot be read back."""


class TrainingDivergedError(FloatingPointError):
    """The training loss became NaN or infinite."""


class PerformanceWarning(UserWarning):
    """A slower path runs than the one asked for (for example a fused epoch falls back)."""


class CheckpointError(ValueError):
    """A training checkpoint cannot be read, or was written by another configuration."""
