"""fastmlp: a fast, readable multilayer perceptron for MNIST, with interchangeable backends.

>>> import fastmlp
>>> (x_train, y_train), (x_test, y_test) = fastmlp.datasets.load_mnist()  # doctest: +SKIP
>>> model = fastmlp.MLP((784, 128, 128, 10), seed=0)
>>> model.fit(x_train.reshape(-1, 784), y_train, epochs=15)               # doctest: +SKIP
>>> model.score(x_test.reshape(-1, 784), y_test)                          # doctest: +SKIP
"""

from . import datasets, optim
from .backends import (
    available_backends,
    get_backend,
    get_backend_name,
    set_backend,
    use_backend,
)
from .exceptions import (
    CheckpointError,
    ChecksumError,
    DataError,
    ModelFileError,
    PerformanceWarning,
    StopTraining,
    TrainingDivergedError,
)
from .functional import backward, cross_entropy, forward, log_softmax, softmax
from .model import MLP
from .train import History, fit

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "History",
    "fit",
    "forward",
    "backward",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "available_backends",
    "get_backend",
    "get_backend_name",
    "set_backend",
    "use_backend",
    "datasets",
    "optim",
    "DataError",
    "CheckpointError",
    "ChecksumError",
    "ModelFileError",
    "PerformanceWarning",
    "StopTraining",
    "TrainingDivergedError",
]
