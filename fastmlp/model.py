"""The multilayer perceptron: parameters, prediction, saving and loading."""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import numpy as np

from . import backends, family
from ._atomic import atomic_write
from ._flat import flat_params
from ._npz import ArrayHeader, read_array, read_headers
from ._validation import (
    check_dtype,
    check_features,
    check_positive_int,
    check_targets,
    refuse_sparse,
)
from .exceptions import ModelFileError
from .functional import log_softmax
from .preprocessing import InputScaler

if TYPE_CHECKING:
    from collections.abc import Callable

    from .train import History

FORMAT_VERSION = 2
# Version 1 predates the input rule of InputScaler: it divided uint8 inputs by
# 255 and took other dtypes as they were.

# The arrays of a model file besides its layers' W0, b0, W1, ...: name, and the
# kinds of dtype (numpy's dtype.kind) and the shape each must have.
_METADATA = {
    "format_version": ("iu", ()),
    "layer_sizes": ("iu", None),  # 1-D
    "dtype": ("U", ()),
    "standardize": ("b", ()),
    "scaler_fitted": ("b", ()),
    "scaler_mean": ("f", ()),
    "scaler_std": ("f", ()),
}
_KINDS = {"iu": "integer", "U": "string", "b": "boolean", "f": "floating-point"}
# Arrays a file holds only for a network other than ReLU + softmax (so that such a file
# is refused by a fastmlp that would read it as one): name -> default when missing.
_FAMILY = {"activation": "relu", "output": "softmax"}

# Rows per batch of predict_proba: as fast as one call over MNIST's 60 000; ~45 MB of work.
PREDICT_BATCH_SIZE = 10_000


def _in_words(n_bytes: int) -> str:
    """``n_bytes`` as ``summary`` shows a size: 40 bytes, 462.0 KiB, 3.0 MiB."""
    for power, unit in ((2, "MiB"), (1, "KiB")):
        if n_bytes >= 1024 ** power:
            return f"{n_bytes / 1024 ** power:,.1f} {unit}"
    return f"{n_bytes} bytes"


class MLP:
    """A fully connected network: ReLU hidden layers and a softmax output by default.

    Parameters
    ----------
    layer_sizes : sequence of int
        Input size, hidden sizes, number of outputs (classes for softmax);
        at least two entries.
    activation : str, default 'relu'
        What follows every hidden layer: ``'identity'``, ``'logistic'``,
        ``'tanh'``, ``'relu'`` or ``'leaky_relu'`` (``fastmlp.family``).
    output : str, default 'softmax'
        What follows the last layer, and so what the model is and which loss
        trains it: ``'softmax'`` (classes, cross-entropy), ``'logistic'``
        (one unit: a binary classifier; several: independent labels,
        binary cross-entropy), ``'identity'`` (regression, squared error) or
        ``'exp'`` (counts or rates, Poisson loss). See the user guide's
        "Activations and outputs" for what ``predict`` returns for each.
    dtype : float32 or float64
        Dtype of the parameters and of every computation.
    seed : int, optional
        Seed of the normal initialisation: He (Kaiming, variance ``2 /
        n_in``) for ReLU and leaky ReLU, Glorot (Xavier, ``2 / (n_in +
        n_out)``) for the other activations.
    standardize : bool
        Standardise inputs with the mean and standard deviation of all
        training values, whatever their dtype (see ``InputScaler``); without
        it, inputs reach the network as they are, cast to ``dtype``.

    Attributes
    ----------
    params : list of (W, b)
        ``W`` of shape ``(n_out, n_in)``, ``b`` of shape ``(n_out,)``: views, in
        order, into one flat vector, which a fused epoch updates in place
        (assigning other arrays works too; training copies them into one vector).
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
                 activation: str = "relu", output: str = "softmax",
                 dtype=np.float32, seed: int | None = None, standardize: bool = True):
        sizes = tuple(int(n) for n in layer_sizes)
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(
                f"layer_sizes needs an input and an output size, all >= 1, got {tuple(layer_sizes)}"
            )
        self.layer_sizes = sizes
        self.activation = family.check_activation(activation)
        self.output = family.check_output(output)
        self.dtype = check_dtype(dtype)
        self.scaler = InputScaler(standardize)
        rng = np.random.default_rng(seed)
        # He initialisation keeps the variance of ReLU activations constant across layers,
        # Glorot's that of activations linear around 0 (tanh, logistic, identity).
        he = activation in ("relu", "leaky_relu")
        self.params = flat_params([
            ((rng.standard_normal((n_out, n_in))
              * np.sqrt(2.0 / (n_in if he else n_in + n_out))).astype(self.dtype),
             np.zeros(n_out, self.dtype))
            for n_in, n_out in zip(sizes[:-1], sizes[1:])
        ])

    def __setstate__(self, state):
        # a copy or an unpickled model gets its parameters back as views of one vector;
        # a model pickled before the family existed is ReLU + softmax
        self.__dict__.update({**_FAMILY, **state})
        self.params = flat_params(self.params)

    @property
    def _family(self) -> dict:
        """``activation=`` and ``output=`` for a backend, or nothing for ReLU + softmax
        (so that a backend without them still runs the default network)."""
        if (self.activation, self.output) == ("relu", "softmax"):
            return {}
        return {"activation": self.activation, "output": self.output}

    @property
    def n_features(self) -> int:
        return self.layer_sizes[0]

    @property
    def n_classes(self) -> int:
        """The network's outputs: the classes of a softmax output, the labels of a
        logistic one, the targets of a regression."""
        return self.layer_sizes[-1]

    @property
    def n_outputs(self) -> int:
        """The number of units of the last layer (``n_classes``, by a name for any output)."""
        return self.layer_sizes[-1]

    def __repr__(self) -> str:
        # the architecture as a constructor call, as scikit-learn and PyTorch show theirs;
        # the weights and the fitted scaler are in summary()
        standardize = "" if self.scaler.standardize else ", standardize=False"
        chosen = "".join(f", {name}={getattr(self, name)!r}" for name, default in _FAMILY.items()
                         if getattr(self, name) != default)
        return f"MLP({self.layer_sizes!r}{chosen}, dtype={self.dtype.name!r}{standardize})"

    def summary(self, file: TextIO | None = None) -> None:
        """Print a table of the network, as Keras's ``Model.summary`` does.

        One row per layer: the output's shape (``N`` samples), the shapes of
        ``W`` and ``b``, the parameter count and the activation; then the
        total, its size in the model's dtype, the input scaling and the
        backend in effect where this is called (the model holds none: the
        backend runs whichever model it is given).

        Parameters
        ----------
        file : file-like, optional
            Where to write the table; standard output by default.

        Examples
        --------
        >>> import fastmlp
        >>> with fastmlp.use_backend("matmul"):
        ...     fastmlp.MLP((784, 128, 128, 10)).summary()
        MLP((784, 128, 128, 10), dtype='float32')
        layer    output    W           b       parameters  activation
        input    (N, 784)                               0  standardize (not fitted)
        dense 1  (N, 128)  (128, 784)  (128,)     100,480  relu
        dense 2  (N, 128)  (128, 128)  (128,)      16,512  relu
        dense 3  (N, 10)   (10, 128)   (10,)        1,290  softmax
        total parameters: 118,282 (462.0 KiB of float32)
        backend: matmul
        """
        scaler = self.scaler
        if not scaler.standardize:
            scaling = f"none (cast to {self.dtype.name})"
        elif scaler.fitted:
            scaling = f"standardize (mean {scaler.mean:.4g}, std {scaler.std:.4g})"
        else:
            scaling = "standardize (not fitted)"
        rows = [("layer", "output", "W", "b", "parameters", "activation"),
                ("input", f"(N, {self.n_features})", "", "", "0", scaling)]
        last = len(self.params) - 1
        for l, (W, b) in enumerate(self.params):
            rows.append((f"dense {l + 1}", f"(N, {W.shape[0]})", str(W.shape), str(b.shape),
                         f"{W.size + b.size:,}", self.output if l == last else self.activation))
        widths = [max(len(row[column]) for row in rows) for column in range(5)]
        lines = ["  ".join([*(cell.rjust(width) if column == 4 else cell.ljust(width)
                              for column, (cell, width) in enumerate(zip(row, widths))),
                            row[5]]).rstrip()
                 for row in rows]
        total = sum(W.size + b.size for W, b in self.params)
        print("\n".join([
            repr(self), *lines,
            f"total parameters: {total:,} ({_in_words(total * self.dtype.itemsize)} of "
            f"{self.dtype.name})",
            f"backend: {backends.get_backend_name()}"]), file=file)

    def _prepare(self, x):
        return self.scaler.transform(check_features(x, self.n_features), self.dtype)

    def predict_proba(self, x, *, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """Class probabilities (softmax output), or each label's probability (logistic output).

        The network's outputs as they are: rows summing to 1 for softmax; for
        a logistic output, the probability that each label (the one label of
        a binary classifier, shape ``(n_samples, 1)``) is 1.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_features) or (n_features,)
            Raw inputs (for example ``uint8`` images flattened to 784 values).
            May be a memory-mapped array (``np.load(path, mmap_mode="r")``,
            ``np.memmap``) larger than memory: it is read in batches.
        batch_size : int, default 10 000
            Rows scaled and run through the network at a time. Memory beyond
            ``x`` and the result stays bounded by a few copies of one batch
            (about 45 MB for a float32 model of 784 inputs at the default,
            twice that in float64), and the result is that of one call over
            all rows up to rounding: BLAS may sum in another order for another
            number of rows.

        Returns
        -------
        ndarray, shape (n_samples, n_classes) or (n_classes,)

        Raises
        ------
        ValueError
            For a regression model (identity or exp output), whose outputs are
            values, not probabilities: ``predict`` gives them.
        """
        self._need_probabilities("predict_proba")
        return self._in_batches(self._proba_of_rows, x, batch_size)

    def _need_probabilities(self, method: str) -> None:
        if self.output not in ("softmax", "logistic"):
            raise ValueError(f"{method} needs a softmax or logistic output; this model's output "
                             f"is {self.output!r}, a regression: predict gives its values")

    def predict_values(self, x, *, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """The network's outputs for any output function: probabilities or predicted values.

        ``x`` and ``batch_size`` are as in ``predict_proba``.

        Returns
        -------
        ndarray, shape (n_samples, n_outputs) or (n_outputs,)
        """
        return self._in_batches(self._proba_of_rows, x, batch_size)

    def predict_log_proba(self, x, *, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
        """Logarithms of the class probabilities, finite where ``predict_proba`` underflows to 0.

        The log-softmax of the output layer's logits ``z`` (see ``fastmlp.log_softmax``),
        ``z - max(z) - log(sum(exp(z - max(z))))``, rather than the logarithm of
        ``predict_proba``: a class whose probability underflows to 0 (a logit
        more than about 104 below the largest in float32, 745 in float64) gets
        its log-probability, a large negative number, where ``log`` of the
        probability would be ``-inf``. The hidden layers run on the backend in
        effect, as in ``predict_proba``.

        Parameters
        ----------
        x : array_like, shape (n_samples, n_features) or (n_features,)
            Raw inputs, as in ``predict_proba``.
        batch_size : int, default 10 000
            Rows run through the network at a time, as in ``predict_proba``.

        Returns
        -------
        ndarray, shape (n_samples, n_classes) or (n_classes,)
            In the model's dtype; ``np.exp`` of it is ``predict_proba`` up to rounding.

        Examples
        --------
        A logit gap of 200 puts one probability below float32's smallest number:

        >>> import numpy as np, fastmlp
        >>> model = fastmlp.MLP((1, 2), standardize=False)
        >>> W, b = model.params[0]
        >>> W[:] = [[1.0], [-1.0]]
        >>> model.predict_proba([100.0])
        array([1., 0.], dtype=float32)
        >>> model.predict_log_proba([100.0])
        array([   0., -200.], dtype=float32)
        """
        self._need_probabilities("predict_log_proba")
        return self._in_batches(self._log_proba_of_rows, x, batch_size)

    def _in_batches(self, of_rows, x, batch_size: int) -> np.ndarray:
        """``of_rows`` (one prediction per row of checked inputs), ``batch_size`` rows at a time."""
        check_positive_int(batch_size, "batch_size")
        refuse_sparse(x)
        x = np.asarray(x)
        if x.ndim == 2 and x.shape[0] > batch_size:
            check_features(x[:1], self.n_features)  # each batch is checked for NaN below
            out = np.empty((x.shape[0], self.n_classes), self.dtype)
            for begin in range(0, x.shape[0], batch_size):
                out[begin:begin + batch_size] = of_rows(
                    check_features(x[begin:begin + batch_size], self.n_features))
            return out
        return of_rows(check_features(x, self.n_features))

    def _proba_of_rows(self, x):
        backend = backends.get_backend()
        if hasattr(backend, "predict_one") and (x.ndim == 1 or x.shape[0] == 1):
            # one sample (or a batch of one, as a server gets a request) skips the
            # batch machinery; the kernel applies the scaling, with the same bits
            probs = backend.predict_one(self.params, x.reshape(-1), *self.scaler.affine(),
                                        **self._family)
            return probs if x.ndim == 1 else probs[None]
        return backend.forward(self.params, self.scaler.transform(x, self.dtype),
                               **self._family)[0]

    def _log_proba_of_rows(self, x):
        # The backend's forward pass hands back the output layer's input (the
        # contract's cache), and one product makes its logits: einsum's own loop,
        # which sums each row the same way wherever it lies in the batch, as the
        # numba and loop backends do. The softmax forward computes too is 10
        # units' work against the hidden layers'.
        cache = backends.get_backend().forward(self.params, self.scaler.transform(x, self.dtype),
                                               **self._family)[1]
        W, b = self.params[-1]
        z = np.einsum("...i,oi->...o", cache[-2], W)
        z += b
        if self.output == "logistic":
            # log(1 / (1 + exp(-z))) = -log(1 + exp(-z)), finite for any z
            return -np.logaddexp(z.dtype.type(0), -z)
        return log_softmax(z)

    def _proba(self, x):
        # x is already scaled
        return backends.get_backend().forward(self.params, x, **self._family)[0]

    def predict(self, x, *, batch_size: int = PREDICT_BATCH_SIZE):
        """Classes, labels or values, as the output function makes the model one:

        - softmax: the most probable class, an int array of shape ``(n_samples,)``
          (an int for one sample);
        - logistic with one unit (a binary classifier): class 1 where its
          probability is above 1/2, else 0, with the same shapes as softmax's;
        - logistic with several units (multilabel): a 0/1 int array of shape
          ``(n_samples, n_outputs)``, each label 1 where its probability is above 1/2;
        - identity or exp (regression): the predicted values, shape
          ``(n_samples, n_outputs)`` (``(n_outputs,)`` for one sample) in the
          model's dtype.

        ``x`` and ``batch_size`` are as in ``predict_proba``.
        """
        out = self.predict_values(x, batch_size=batch_size)
        return self._decide(out)

    def _decide(self, out):
        """``predict``'s answer from the network's outputs ``out`` (1-D for one sample)."""
        if self.output == "softmax" or (self.output == "logistic" and self.n_outputs == 1):
            classes = out.argmax(axis=-1) if self.output == "softmax" else (out[..., 0] > 0.5)
            return int(classes) if out.ndim == 1 else classes.astype(np.int64)
        if self.output == "logistic":
            return (out > 0.5).astype(np.int64)
        return out

    def loss(self, x, y) -> float:
        """The mean loss of the output on ``(x, y)``: cross-entropy (softmax), binary
        cross-entropy (logistic), squared error / 2 (identity) or Poisson (exp); see
        ``fastmlp.family.LOSSES``. ``y`` is as ``fit`` takes it."""
        x = self._prepare(x)
        y = check_targets(y, 1 if x.ndim == 1 else x.shape[0], self.n_outputs, self.output,
                          self.dtype)
        return family.LOSSES[self.output](self._proba(x), y)

    def score(self, x, y) -> float:
        """Accuracy on ``(x, y)`` for a classifier, R² for a regression.

        Softmax: the share of samples whose most probable class is ``y``.
        Logistic: the share of samples whose every label is right (scikit-learn's
        subset accuracy; a binary classifier's accuracy). Identity and exp:
        the coefficient of determination ``1 - sum (y - p)**2 / sum (y -
        mean y)**2``, averaged over outputs, as scikit-learn's regressors score.
        """
        x = self._prepare(x)
        n = 1 if x.ndim == 1 else x.shape[0]
        y = check_targets(y, n, self.n_outputs, self.output, self.dtype)
        out = np.atleast_2d(self._proba(x))
        if self.output in ("softmax", "logistic"):
            return family.HITS[self.output](out, y) / n
        y = np.atleast_2d(y).astype(np.float64)
        residual = ((y - out) ** 2).sum(axis=0)
        total = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
        # scikit-learn's r2_score: a constant target scores 1 if predicted exactly, else 0
        r2 = np.where(total > 0, 1 - residual / np.where(total > 0, total, 1),
                      np.where(residual == 0, 1.0, 0.0))
        return float(r2.mean())

    def fit(self, x, y, *, epochs: int = 15, batch_size: int = 128, optimizer="adamw",
            learning_rate: float | None = None, weight_decay: float | None = None,
            schedule: str = "onecycle",
            validation_data=None, seed: int | None = 0,
            early_stopping: bool = False, validation_fraction: float = 0.1,
            monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
            restore_best: bool = True, anneal_epochs: int = 5,
            checkpoint: str | os.PathLike | None = None, resume: bool = False,
            log_csv: str | os.PathLike | None = None,
            callback: Callable[[int, History], None] | None = None,
            verbose: int | str = 0, validation_name: str = "val",
            sample_weight=None, class_weight=None, check_finite: bool = True) -> History:
        """Train on ``(x, y)`` in place: ``fastmlp.fit(self, x, y, ...)``.

        Every parameter, its default and what it does is :func:`fastmlp.fit`'s
        (``fastmlp.train.fit``), which this calls with all of them.

        Returns
        -------
        History
            One entry per epoch: see :func:`fastmlp.fit`.
        """
        from .train import fit

        return fit(self, x, y, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                   learning_rate=learning_rate, weight_decay=weight_decay, schedule=schedule,
                   validation_data=validation_data, seed=seed, early_stopping=early_stopping,
                   validation_fraction=validation_fraction, monitor=monitor,
                   patience=patience, min_delta=min_delta, restore_best=restore_best,
                   anneal_epochs=anneal_epochs, checkpoint=checkpoint, resume=resume,
                   log_csv=log_csv, callback=callback, verbose=verbose,
                   validation_name=validation_name, sample_weight=sample_weight,
                   class_weight=class_weight, check_finite=check_finite)

    def to_onnx(self, path, *, dtype=None) -> None:
        """Write the network as an ONNX graph taking raw float32 pixel values.

        See ``fastmlp.export.to_onnx``, which this calls; needs the ``onnx``
        extra (``pip install "fastmlp[onnx]"``).
        """
        from .export import to_onnx

        to_onnx(self, path, dtype=dtype)

    def save(self, path) -> None:
        """Write the model to ``path`` as ``.npz``, atomically.

        The file holds the weights, the layer sizes, the dtype, the input
        scaler and a format version, and, for a network other than ReLU +
        softmax, its ``activation`` and ``output`` (so an older fastmlp, which
        would read the network as ReLU + softmax, refuses the file). It is
        written to a temporary file in the same directory and renamed over
        ``path``, so a crash never leaves a half-written model.
        """
        path = os.fspath(path)
        arrays = {
            **{name: np.array(getattr(self, name)) for name, default in _FAMILY.items()
               if (self.activation, self.output) != ("relu", "softmax")},
            "format_version": np.array(FORMAT_VERSION),
            "layer_sizes": np.array(self.layer_sizes),
            "dtype": np.array(self.dtype.name),
            "standardize": np.array(self.scaler.standardize),
            "scaler_fitted": np.array(self.scaler.fitted),
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

        Every claim the file makes (layer sizes, array shapes, dtype, scaler)
        is checked against the arrays it holds before anything is allocated,
        so a corrupt or hostile file fails fast with a message naming the
        problem, never with a ``MemoryError``.

        Raises
        ------
        ModelFileError
            If the file is missing, not an ``.npz`` written by fastmlp, of
            another format version (format 1, of fastmlp before the input rule
            of ``InputScaler``, included), or its arrays are inconsistent,
            missing, extra or not finite.
        """
        try:
            file_length = os.path.getsize(path)
            with zipfile.ZipFile(path) as archive:
                return cls._read(archive, read_headers(archive, file_length), path)
        except ModelFileError:
            raise
        except FileNotFoundError:
            raise ModelFileError(f"model file {path} does not exist") from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise ModelFileError(f"cannot read model file {path}: {exc}") from None

    @classmethod
    def _read(cls, archive: zipfile.ZipFile, headers: dict[str, ArrayHeader], path) -> MLP:
        """The model in ``archive``, checked against ``headers`` before any weight is read."""

        def metadata(name):
            header = headers.get(name)
            if header is None:
                raise ModelFileError(f"{path} is missing array {name!r}")
            kinds, shape = _METADATA[name]
            if header.dtype.kind not in kinds or (
                    len(header.shape) != 1 if shape is None else header.shape != shape):
                form = "a 1-D array" if shape is None else "a scalar"
                raise ModelFileError(
                    f"{path}: {name} must be {form} of {_KINDS[kinds]} type, "
                    f"got shape {header.shape} of {header.dtype}"
                )
            return read_array(archive, header)

        if "format_version" not in headers:
            raise ModelFileError(f"{path} is not a fastmlp model file (no format_version)")
        version = int(metadata("format_version"))
        if version == 1:
            raise ModelFileError(
                f"{path} was saved by an older fastmlp (model format 1) under the old input rule, "
                "which divided uint8 inputs by 255 and took other dtypes as they were; it cannot "
                "be converted without knowing the dtype it was trained on: retrain the model, or "
                "re-save it in format 2 as docs/user_guide/model_files.md shows"
            )
        if version != FORMAT_VERSION:
            raise ModelFileError(
                f"{path} has model format version {version}; this fastmlp reads {FORMAT_VERSION}"
            )
        sizes = tuple(int(n) for n in metadata("layer_sizes"))
        if len(sizes) < 2 or min(sizes) < 1:
            raise ModelFileError(
                f"{path}: layer_sizes must hold an input and an output size, all >= 1, got {sizes}"
            )
        layers = [(f"W{l}", f"b{l}") for l in range(len(sizes) - 1)]
        for name in [*_METADATA, *(name for layer in layers for name in layer)]:
            if name not in headers:
                raise ModelFileError(f"{path} is missing array {name!r}")
        extra = sorted(set(headers) - set(_METADATA) - set(_FAMILY)
                       - {name for layer in layers for name in layer})
        if extra:
            raise ModelFileError(
                f"{path} holds arrays {', '.join(map(repr, extra))} that are not part of a model "
                f"with layer_sizes {sizes} ({len(layers)} layers)"
            )
        chosen = {}
        for name, default in _FAMILY.items():
            header = headers.get(name)
            if header is None:
                chosen[name] = default  # files of before the family: ReLU + softmax
                continue
            if header.dtype.kind != "U" or header.shape != ():
                raise ModelFileError(f"{path}: {name} must be a scalar of string type, "
                                     f"got shape {header.shape} of {header.dtype}")
            value = str(read_array(archive, header))
            try:
                chosen[name] = (family.check_activation if name == "activation"
                                else family.check_output)(value)
            except ValueError as exc:
                raise ModelFileError(f"{path}: {exc}") from None
        dtype_name = str(metadata("dtype"))
        if dtype_name not in ("float32", "float64"):
            raise ModelFileError(f"{path}: dtype must be float32 or float64, got {dtype_name!r}")
        scaler = InputScaler(bool(metadata("standardize")))
        scaler.fitted = bool(metadata("scaler_fitted"))
        scaler.mean, scaler.std = float(metadata("scaler_mean")), float(metadata("scaler_std"))
        if not math.isfinite(scaler.mean):
            raise ModelFileError(f"{path}: scaler_mean is {scaler.mean}; it must be finite")
        if not (math.isfinite(scaler.std) and scaler.std > 0):
            raise ModelFileError(f"{path}: scaler_std is {scaler.std}; it must be finite and > 0")
        for l, (W_name, b_name) in enumerate(layers):
            W, b = headers[W_name], headers[b_name]
            want = (sizes[l + 1], sizes[l]), (sizes[l + 1],)
            if (W.shape, b.shape) != want:
                raise ModelFileError(
                    f"{path}: layer {l} has shapes {W.shape}, {b.shape}; "
                    f"layer_sizes say {want[0]}, {want[1]}"
                )
            if W.dtype.kind != "f" or b.dtype.kind != "f":
                raise ModelFileError(
                    f"{path}: layer {l} holds {W.dtype} and {b.dtype}; weights must be floats"
                )
        params = []
        for l, names in enumerate(layers):
            W, b = (read_array(archive, headers[name]) for name in names)
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise ModelFileError(f"{path}: layer {l} has NaN or inf weights")
            params.append((W.astype(dtype_name, copy=False), b.astype(dtype_name, copy=False)))
        return cls._from_params(params, scaler, **chosen)

    @classmethod
    def _from_params(cls, params: list, scaler: InputScaler, activation: str = "relu",
                     output: str = "softmax") -> MLP:
        """A model of ``params`` (checked, all of one float dtype), ``scaler`` and the
        family, without random initialisation."""
        model = cls.__new__(cls)
        model.activation, model.output = activation, output
        model.layer_sizes = (params[0][0].shape[1], *(W.shape[0] for W, _ in params))
        model.dtype = params[0][0].dtype
        model.scaler = scaler
        model.params = flat_params(params)
        return model
