"""The multilayer perceptron: parameters, prediction, saving and loading."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import numpy as np

from . import backends
from ._atomic import atomic_write
from ._validation import check_dtype, check_features, check_labels
from .exceptions import ModelFileError
from .functional import cross_entropy
from .preprocessing import InputScaler

FORMAT_VERSION = 1


class MLP:
    """A fully connected network: ReLU hidden layers, softmax output.

    Parameters
    ----------
    layer_sizes : sequence of int
        Input size, hidden sizes, number of classes; at least two entries.
    dtype : float32 or float64
        Dtype of the parameters and of every computation.
    seed : int, optional
        Seed of the He (Kaiming) normal initialisation.
    standardize : bool
        Standardise inputs with the mean and standard deviation of all
        training values, whatever their dtype (see ``InputScaler``); without
        it, inputs reach the network as they are, cast to ``dtype``.

    Attributes
    ----------
    params : list of (W, b)
        ``W`` of shape ``(n_out, n_in)``, ``b`` of shape ``(n_out,)``.
    scaler : InputScaler
        Applied to every input before the network.

    Examples
    --------
    >>> import numpy as np, fastmlp
    >>> model = fastmlp.MLP((4, 8, 3), seed=0)
    >>> model.predict_proba(np.ones((2, 4))).shape
    (2, 3)
    """

    def __init__(self, layer_sizes: Sequence[int] = (784, 128, 128, 10), *,
                 dtype=np.float32, seed: int | None = None, standardize: bool = True):
        sizes = tuple(int(n) for n in layer_sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(
                f"layer_sizes needs an input and an output size, all >= 1, got {tuple(layer_sizes)}"
            )
        self.layer_sizes = sizes
        self.dtype = check_dtype(dtype)
        self.scaler = InputScaler(standardize)
        rng = np.random.default_rng(seed)
        # He initialisation keeps the variance of ReLU activations constant across layers.
        self.params = [
            ((rng.standard_normal((n_out, n_in)) * np.sqrt(2.0 / n_in)).astype(self.dtype),
             np.zeros(n_out, self.dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ]

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_classes(self) -> int:
        return self.layer_sizes[-1]

    def _prepare(self, x):
        return self.scaler.transform(check_features(x, self.n_features), self.dtype)

    def predict_proba(self, x) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_features) or (n_features,)
            Raw inputs (for example ``uint8`` images flattened to 784 values).

        Returns
        -------
        ndarray, shape (n_samples, n_classes) or (n_classes,)
        """
        x = check_features(x, self.n_features)
        backend = backends.get_backend()
        if x.ndim == 1 and hasattr(backend, "predict_one"):
            # one sample skips the batch machinery; the kernel applies the scaling
            return backend.predict_one(self.params, x, *self.scaler.affine())
        return backend.forward(self.params, self.scaler.transform(x, self.dtype))[0]

    def _proba(self, x):
        # x is already scaled
        return backends.get_backend().forward(self.params, x)[0]

    def predict(self, x):
        """Most probable class: an int array of shape ``(n_samples,)``, or an int for one sample."""
        probs = self.predict_proba(x)
        return int(probs.argmax()) if probs.ndim == 1 else probs.argmax(axis=1)

    def loss(self, x, y) -> float:
        """Mean cross-entropy on ``(x, y)``."""
        x = self._prepare(x)
        y = check_labels(y, 1 if x.ndim == 1 else x.shape[0], self.n_classes)
        return cross_entropy(self._proba(x), y)

    def score(self, x, y) -> float:
        """Accuracy on ``(x, y)``, between 0 and 1."""
        x = self._prepare(x)
        y = check_labels(y, 1 if x.ndim == 1 else x.shape[0], self.n_classes)
        return float(np.mean(np.atleast_1d(self._proba(x).argmax(-1)) == y))

    def fit(self, x, y, **kwargs):
        """Train on ``(x, y)``; see ``fastmlp.train.fit`` for the keyword arguments.

        Returns
        -------
        History
        """
        from .train import fit

        return fit(self, x, y, **kwargs)

    def save(self, path) -> None:
        """Write the model to ``path`` as ``.npz``, atomically.

        The file holds the weights, the layer sizes, the dtype, the input
        scaler and a format version. It is written to a temporary file in the
        same directory and renamed over ``path``, so a crash never leaves a
        half-written model.
        """
        path = os.fspath(path)
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "layer_sizes": np.array(self.layer_sizes),
            "dtype": np.array(self.dtype.name),
            "standardize": np.array(self.scaler.standardize),
            "scaler_mean": np.array(self.scaler.mean),
            "scaler_std": np.array(self.scaler.std),
        }
        for l, (W, b) in enumerate(self.params):
            arrays[f"W{l}"] = W
            arrays[f"b{l}"] = b
        with atomic_write(path) as file:
            np.savez(file, **arrays)

    @classmethod
    def load(cls, path) -> MLP:
        """Read a model written by ``save``.

        Raises
        ------
        ModelFileError
            If the file is missing, not an ``.npz`` written by fastmlp, of an
            unknown format version, or its arrays are inconsistent.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise ModelFileError(f"model file {path} does not exist") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ModelFileError(f"cannot read model file {path}: {exc}") from None
        if "format_version" not in arrays:
            raise ModelFileError(f"{path} is not a fastmlp model file (no format_version)")
        version = int(arrays["format_version"])
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has model format version {version}; this fastmlp reads {FORMAT_VERSION}"
            )
        try:
            model = cls(arrays["layer_sizes"], dtype=str(arrays["dtype"]),
                        standardize=bool(arrays["standardize"]))
            model.scaler.mean = float(arrays["scaler_mean"])
            model.scaler.std = float(arrays["scaler_std"])
            model.scaler.fitted = True
            for l, (W, b) in enumerate(model.params):
                W_saved, b_saved = arrays[f"W{l}"], arrays[f"b{l}"]
                if W_saved.shape != W.shape or b_saved.shape != b.shape:
                    raise ModelFileError(
                        f"{path}: layer {l} has shapes {W_saved.shape}, {b_saved.shape}; "
                        f"layer_sizes say {W.shape}, {b.shape}"
                    )
                if not (np.isfinite(W_saved).all() and np.isfinite(b_saved).all()):
                    raise ModelFileError(f"{path}: layer {l} has NaN or inf weights")
                model.params[l] = (W_saved.astype(model.dtype), b_saved.astype(model.dtype))
        except KeyError as exc:
            raise ModelFileError(f"{path} is missing array {exc.args[0]!r}") from None
        except ValueError as exc:
            if isinstance(exc, ModelFileError):
                raise
            raise ModelFileError(f"{path}: {exc}") from None
        return model
