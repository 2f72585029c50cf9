"""Input scaling, fitted on training data and stored with the model."""

from __future__ import annotations

import numpy as np


class InputScaler:
    """Scale raw inputs to the model's dtype.

    ``uint8`` images are mapped to ``[0, 1]`` by dividing by 255; other inputs
    are taken as they are. With ``standardize=True`` the result is then shifted
    and scaled by the mean and standard deviation of all training values (one
    scalar each, as in the classic MNIST recipe ``(x - 0.1307) / 0.3081``).

    Parameters
    ----------
    standardize : bool
        Learn a mean and standard deviation in ``fit`` and apply them.
    """

    def __init__(self, standardize: bool = True):
        self.standardize = standardize
        self.mean = 0.0
        self.std = 1.0
        self.fitted = False

    def fit(self, x) -> InputScaler:
        """Learn the mean and standard deviation of ``x`` (after uint8 → [0, 1])."""
        if self.standardize:
            x = np.asarray(x)
            unit = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
            self.mean = float(unit.mean())
            std = float(unit.std())
            self.std = std if std > 0 else 1.0
        self.fitted = True
        return self

    def affine(self, input_dtype) -> tuple[float, float]:
        """``(scale, offset)`` such that the scaled input is ``scale * x + offset``."""
        # (x * unit - mean) / std
        unit = 1 / 255 if input_dtype == np.uint8 else 1.0
        return unit / self.std, -self.mean / self.std

    def transform(self, x, dtype) -> np.ndarray:
        """Return ``x`` scaled, as a new array of ``dtype`` (never a view of ``x``)."""
        dtype = np.dtype(dtype)
        x = np.asarray(x)
        scale, offset = self.affine(x.dtype)
        out = np.multiply(x, dtype.type(scale), dtype=dtype)
        if offset:
            out += dtype.type(offset)
        return out

from .images import to_mnist as to_mnist  # noqa: E402  (re-exported: pictures to MNIST digits)
