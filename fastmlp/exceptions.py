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


class StopTraining(Exception):
    """Raised by a ``fit`` callback to end training after the epoch, as early stopping does.

    ``fit`` catches it and returns normally: its message (if any) is in
    ``History.stop_reason``, and a checkpoint of the run is marked finished,
    so that resuming it trains nothing more. Not an error: it derives from
    ``Exception`` alone.

    Examples
    --------
    >>> def stop_when_good(epoch, history):
    ...     if history.train_accuracy[-1] > 0.99:
    ...         raise StopTraining(f"train accuracy {history.train_accuracy[-1]:.3f}")
    """
