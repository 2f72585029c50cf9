"""The frameworks ``fastmlp bench`` measures against, each in a process of its own.

One module per peer, with the same names: :mod:`fastmlp.peers.torch` (PyTorch
eager) and :mod:`fastmlp.peers.jax` (``jax.jit`` of a whole epoch). Each
defines a ``Peer(layer_sizes, dtype, threads)`` that trains the network
fastmlp trains (ReLU hidden layers, softmax cross-entropy, plain SGD at
learning rate 0.01, shuffled every epoch, the last batch smaller), the way that
framework's users write a fast loop. Its methods: ``trainer(x, y,
batch_size)``, a function timing one epoch, returned after an untimed first
one; ``forward(x)`` and ``predict_one(x)``, seconds; ``get_params()`` and
``set_params(params)``, the parameters in fastmlp's layout. Its attributes:
``version``, ``threads`` (as the framework reports them) and
``threads_set_by``. A peer imports its framework in ``Peer``, once it has
set its threads.

:class:`PeerProcess` runs a peer in ``python -m fastmlp.peers.worker``: its
thread pools, its BLAS and its OpenMP runtime never share a process with
numba's or NumPy's, and ``fastmlp bench`` asks it for one epoch at a time,
so the contenders still take turns.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence

import numpy as np

PEERS = {"torch": "PyTorch", "jax": "JAX"}  # module (and import) name: what its users call it
LEARNING_RATE = 0.01  # fastmlp bench's plain SGD


class PeerError(ChildProcessError):
    """A peer's process failed: its error, or the last lines it wrote before it ended."""


def importable(name: str) -> bool:
    """Whether the framework of peer ``name`` is installed, without importing it."""
    return importlib.util.find_spec(name) is not None


def missing_message(name: str) -> str:
    """The one line saying that peer ``name`` is left out, and which extra installs it."""
    return (f"{PEERS[name]} is not importable, so {name} is not timed: "
            f'pip install "fastmlp[peers]"')


def scaled(x: np.ndarray, dtype) -> np.ndarray:
    """MNIST's usual input scaling, ``(x / 255 - 0.1307) / 0.3081``, as every peer applies it."""
    return ((x / 255.0 - 0.1307) / 0.3081).astype(dtype)


@contextlib.contextmanager
def shared_data(x: np.ndarray, y: np.ndarray) -> Iterator[str]:
    """A temporary directory holding ``x.npy`` and ``y.npy`` for the peers' processes to load."""
    with tempfile.TemporaryDirectory(prefix="fastmlp-bench-") as directory:
        np.save(os.path.join(directory, "x.npy"), np.ascontiguousarray(x))
        np.save(os.path.join(directory, "y.npy"), np.ascontiguousarray(y))
        yield directory


class PeerProcess:
    """Peer ``name`` in a process of its own, answering one request at a time.

    Parameters
    ----------
    name : str
        A key of :data:`PEERS`.
    layer_sizes : sequence of int
    dtype : str
        ``"float32"`` or ``"float64"``.
    threads : int
        The threads it may compute on; the peer sets them before its framework starts.
    data : str
        A directory of :func:`shared_data`.

    Attributes
    ----------
    version : str
        The framework's version, e.g. ``"torch 2.13.0+cpu"``.
    threads : int
        The threads as the peer's framework reports them.
    threads_set_by : str
        How the peer set them.

    Raises
    ------
    PeerError
        When the process fails to start the peer or to answer a request.
    """

    def __init__(self, name: str, layer_sizes: Sequence[int], dtype: str, threads: int,
                 data: str):
        if name not in PEERS:
            raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")
        self.name = name
        self._waiting = True  # for an answer: first, that the peer is ready
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close())
        env = dict(os.environ)
        # The worker imports this very fastmlp, wherever it was imported from.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
            __file__))))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root,
                                                          env.get("PYTHONPATH")]))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "fastmlp.peers.worker", name,
             "--layer-sizes", ",".join(map(str, layer_sizes)), "--dtype", str(dtype),
             "--threads", str(threads), "--data", data],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=env)
        try:
            hello = self._receive()
        except BaseException:
            self.close()
            raise
        self._waiting = False
        self.version = hello["version"]
        self.threads = hello["threads"]
        self.threads_set_by = hello["threads_set_by"]

    def trainer(self, batch_size: int):
        """A function that trains one epoch in the peer's process and returns its seconds.

        The peer trains one untimed epoch first (JAX compiles in it).
        """
        self._ask(do="trainer", batch_size=batch_size)
        return lambda: self._ask(do="epoch")["seconds"]

    def forward(self) -> float:
        """Seconds of the forward pass over all of the data as one batch, the best of 3."""
        return self._ask(do="forward")["seconds"]

    def predict_one(self) -> float:
        """Seconds per call of the prediction of one sample."""
        return self._ask(do="predict")["seconds"]

    def _ask(self, **request) -> dict:
        self._waiting = True
        try:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            pass  # the process has ended: _receive says why
        answer = self._receive()
        self._waiting = False
        return answer

    def _receive(self) -> dict:
        line = self._process.stdout.readline()
        if not line:
            status = self._process.wait()
            raise PeerError(f"{self.name}'s process ended (status {status}) "
                            f"{self._last_words() or 'without a word'}")
        answer = json.loads(line)
        if "error" in answer:
            raise PeerError(f"{self.name}'s process: {answer['error']}")
        return answer

    def _last_words(self) -> str:
        self._stderr.seek(0)
        lines = self._stderr.read().decode(errors="replace").strip().splitlines()
        return f"after: {lines[-1]}" if lines else ""

    def close(self) -> None:
        """End the process and free its pipes.

        An idle process is asked to end, and killed if it has not within 10 s; one
        still working on a request nobody will read (after Ctrl-C or an error) is
        killed at once.
        """
        if self._waiting:
            self._process.kill()
        with contextlib.suppress(OSError):
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        self._stderr.close()

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
