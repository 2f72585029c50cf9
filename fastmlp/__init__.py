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


def _installed_version() -> str:
    """The version of the installed distribution: pyproject.toml's ``version``, the one source.

    The metadata an install (``pip install``, editable or not) records is what
    pip, ``fastmlp --version`` and this read. A source tree imported without
    being installed has none, and gets ``"0+unknown"``: a valid PEP 440
    version that sorts below every release, so no check of a minimum version
    passes by accident.
    """
    from importlib import metadata  # here: importing it costs `import fastmlp` about 20 ms

    try:
        return metadata.version("fastmlp")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def __getattr__(name: str):
    # fastmlp.__version__, looked up when asked for (PEP 562), as attrs does
    if name == "__version__":
        return _installed_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

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
