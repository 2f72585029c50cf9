"""fastmlp's backends against plain NumPy, PyTorch and the machine's FMA peak: ``fastmlp bench``.

Trains the network in float32 (or float64) with plain SGD on MNIST and measures, per backend
and batch size, the best epoch time of several, then the forward pass over the
whole training set as one batch, and single-sample ``predict``. PyTorch (eager,
same network, loss, optimizer and batching) joins when ``torch`` is importable.

Every number of one run comes from the same process and the contenders take
turns, so read them as ratios: absolute times move by 20-30 % between runs on
a shared machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backends
from ._validation import check_dtype
from .machine import describe, summary
from .model import MLP
from .profile import flops_per_sample, fma_peak, gemm_peak

NUMPY_BASELINE = "matmul"  # plain NumPy: one BLAS call per product


@dataclass
class Comparison:
    """Results of :func:`compare`; ``str()`` gives the printed tables.

    Attributes
    ----------
    epoch_seconds : dict
        ``{batch_size: {contender: best seconds per epoch}}``.
    forward_seconds : dict
        ``{contender: seconds}`` for the forward pass over all samples at once.
    predict_seconds : dict
        ``{contender: seconds}`` per single-sample predict call.
    """

    layer_sizes: tuple[int, ...]
    samples: int
    peak_gflops: float
    gemm_gflops: float | None = None
    torch_version: str | None = None
    machine: dict | None = None
    dtype: str = "float32"
    epoch_seconds: dict[int, dict[str, float]] = field(default_factory=dict)
    forward_seconds: dict[str, float] = field(default_factory=dict)
    predict_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def epoch_gflop(self) -> float:
        return self.samples * flops_per_sample(self.layer_sizes)["total"] / 1e9

    def to_dict(self) -> dict:
        """Every field as JSON-ready values (batch sizes become string keys).

        Examples
        --------
        >>> result = Comparison((4, 3), samples=10, peak_gflops=1.0,
        ...                     epoch_seconds={32: {"matmul": 0.5}})
        >>> Comparison.from_dict(result.to_dict()) == result
        True
        """
        data = asdict(self)
        data["layer_sizes"] = list(self.layer_sizes)
        data["epoch_seconds"] = {str(batch): seconds
                                 for batch, seconds in self.epoch_seconds.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Comparison:
        """The inverse of :meth:`to_dict`, e.g. for a run saved as JSON."""
        data = dict(data)
        data["layer_sizes"] = tuple(data["layer_sizes"])
        data["epoch_seconds"] = {int(batch): seconds
                                 for batch, seconds in data.get("epoch_seconds", {}).items()}
        return cls(**data)

    def __str__(self) -> str:
        lines = [summary(self.machine)] if self.machine else []
        if self.machine and self.machine.get("numba_settings"):
            numba = self.machine["numba_settings"]
            lines.append(f"numba backend: {numba['tile']} register tiles (FASTMLP_NUMBA_TILE), "
                         f"{numba['row_tile']} rows per cache tile, k in passes of "
                         f"{numba['k_block']}, products of >= {numba['parallel_work']:,} "
                         "multiply-adds split across threads (FASTMLP_NUMBA_PARALLEL_WORK)")
        gemm = "" if self.gemm_gflops is None else f", BLAS GEMM {self.gemm_gflops:.0f}"
        lines += [f"{'-'.join(map(str, self.layer_sizes))} {self.dtype}, plain SGD, "
                 f"{self.samples:,} samples per epoch ({self.epoch_gflop:.1f} GFLOP); "
                 f"{self.dtype} FMA peak {self.peak_gflops:.0f} GFLOP/s{gemm}"
                 + (f"; torch {self.torch_version}" if self.torch_version else ""), ""]
        header = (f"{'backend':<8} {'batch':>5} {'s/epoch':>8} {'samples/s':>10} {'GFLOP/s':>8} "
                  f"{'% peak':>7} {'vs numpy':>9} {'vs torch':>9}")
        lines += [header, "-" * len(header)]
        for batch_size, seconds in self.epoch_seconds.items():
            for name, value in seconds.items():
                gflops = self.epoch_gflop / value
                rate = self.samples / value
                lines.append(f"{name:<8} {batch_size:>5} {value:8.3f} {rate:10,.0f} "
                             f"{gflops:8.1f} {100 * gflops / self.peak_gflops:6.1f}% "
                             f"{_ratio(seconds, NUMPY_BASELINE, value)} "
                             f"{_ratio(seconds, 'torch', value)}")
        if self.forward_seconds:
            forward = self.forward_seconds
            lines += ["", f"forward of all {self.samples:,} samples as one batch:",
                      f"{'backend':<8} {'seconds':>8} {'vs numpy':>9} {'vs torch':>9}"]
            lines += [f"{name:<8} {value:8.3f} {_ratio(forward, NUMPY_BASELINE, value)} "
                      f"{_ratio(forward, 'torch', value)}" for name, value in forward.items()]
        if self.predict_seconds:
            lines += ["", "single-sample predict of one raw image:",
                      f"{'backend':<8} {'µs/call':>8}"]
            lines += [f"{name:<8} {1e6 * value:8.1f}"
                      for name, value in self.predict_seconds.items()]
        return "\n".join(lines)


def _ratio(seconds: dict, reference: str, value: float) -> str:
    """How many times faster than ``reference`` (the ``vs`` columns), or '-'."""
    if reference not in seconds:
        return f"{'-':>9}"
    return f"{seconds[reference] / value:8.2f}x"


def compare(x: np.ndarray, y: np.ndarray, *, backend_names: Sequence[str] | None = None,
            batch_sizes: Sequence[int] = (32, 128, 1000), epochs: int = 4,
            with_torch: bool = True, layer_sizes: Sequence[int] = (784, 128, 128, 10),
            report: Callable[[str], None] | None = None, dtype="float32") -> Comparison:
    """Time training epochs, the full forward pass and single predicts, contender by contender.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_features)
        Raw training inputs (uint8 images or floats).
    y : ndarray of int, shape (n_samples,)
    backend_names : list of str, optional
        Default: every available backend but the slow reference ``loop``.
    batch_sizes : sequence of int
    epochs : int
        Timed epochs per contender, taken in turns; the best counts.
    with_torch : bool
        Add PyTorch when it is importable.
    layer_sizes : sequence of int
    report : callable, optional
        Called with each line of progress (one per finished batch size).
    dtype : float32 or float64
        Of every contender's parameters and arithmetic (PyTorch's too), and of the FMA peak.

    Returns
    -------
    Comparison
    """
    x = x.reshape(len(x), -1)
    dtype = check_dtype(dtype)
    names = backend_names or [b for b in backends.available_backends() if b != "loop"]
    for name in names:
        backends.load_backend(name)  # an unknown name fails before any timing
    torch = None
    if with_torch:
        with contextlib.suppress(ImportError):
            torch = Torch(layer_sizes, dtype)
    result = Comparison(tuple(layer_sizes), len(x), fma_peak(dtype),
                        gemm_gflops=gemm_peak(dtype),
                        torch_version=torch.torch.__version__ if torch else None,
                        dtype=dtype.name)
    for batch_size in batch_sizes:
        contenders = {name: _FastmlpEpoch(name, x, y, batch_size, layer_sizes, dtype)
                      for name in names}
        if torch is not None:
            contenders["torch"] = torch.trainer(x, y, batch_size)
        # In turns, so a slow spell of the machine hits every contender alike.
        best = dict.fromkeys(contenders, float("inf"))
        for _ in range(epochs):
            for name, epoch in contenders.items():
                time.sleep(0.2)  # let the previous contender's spinning thread pools go idle
                best[name] = min(best[name], epoch())
        result.epoch_seconds[batch_size] = best
        if report is not None:
            report(f"batch {batch_size}: " + ", ".join(f"{name} {seconds:.3f} s"
                                                      for name, seconds in best.items()))
    for name in names:
        result.forward_seconds[name] = _forward_seconds(name, x, layer_sizes, dtype)
        result.predict_seconds[name] = _predict_seconds(name, x, layer_sizes, dtype)
    if torch is not None:
        result.forward_seconds["torch"] = torch.forward(x)
        result.predict_seconds["torch"] = torch.predict_one(x)
    result.machine = describe()  # after the contenders ran: every BLAS loaded, numba's layer chosen
    if "numba" in names:
        result.machine["numba_settings"] = backends.load_backend("numba").settings()
    return result


class _FastmlpEpoch:
    """One backend training with plain SGD, as ``fastmlp train --optimizer sgd`` does."""

    def __init__(self, backend, x, y, batch_size, layer_sizes, dtype):
        self.backend, self.x, self.y, self.batch_size = backend, x, y, batch_size
        self.model = MLP(layer_sizes, dtype=dtype, seed=0)
        self()  # warm up: JIT, caches, page faults

    def __call__(self) -> float:
        with backends.use_backend(self.backend):
            history = self.model.fit(self.x, self.y, epochs=1, batch_size=self.batch_size,
                                     optimizer="sgd", learning_rate=0.01, schedule="constant")
        return history.seconds[0]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _per_call(fn, calls: int) -> float:
    """Median over 5 runs of the mean seconds of ``calls`` calls."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


def _forward_seconds(name, x, layer_sizes, dtype, repeats=3):
    model = MLP(layer_sizes, dtype=dtype, seed=0)
    X = model.scaler.fit(x).transform(x, dtype)
    module = backends.load_backend(name)
    module.forward(model.params, X[:100])
    return min(_timed(lambda: module.forward(model.params, X)) for _ in range(repeats))


def _predict_seconds(name, x, layer_sizes, dtype, calls=2000):
    model = MLP(layer_sizes, dtype=dtype, seed=0)
    model.scaler.fit(x[:1000])
    sample = x[0]
    with backends.use_backend(name):
        for _ in range(10):
            model.predict(sample)
        return _per_call(lambda: model.predict(sample), calls)


class Torch:
    """The same network, loss, optimizer and batching in PyTorch eager mode."""

    def __init__(self, layer_sizes, dtype=np.float32):
        import torch

        self.torch = torch
        self.dtype = np.dtype(dtype)
        torch.manual_seed(0)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out))
            if i < len(layer_sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        if self.dtype == np.float64:
            self.net = self.net.double()

    def _tensor(self, x):
        return self.torch.from_numpy(((x / 255.0 - 0.1307) / 0.3081).astype(self.dtype))

    def trainer(self, x, y, batch_size):
        """A function that trains one epoch and returns its seconds (after one warm-up)."""
        torch = self.torch
        X = self._tensor(x)
        Y = torch.from_numpy(y.astype(np.int64))
        optimizer = torch.optim.SGD(self.net.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(0)

        def epoch():
            start = time.perf_counter()
            order = torch.randperm(len(X), generator=generator)
            Xe, Ye = X[order], Y[order]
            for begin in range(0, len(X), batch_size):
                optimizer.zero_grad()
                loss = loss_fn(self.net(Xe[begin:begin + batch_size]), Ye[begin:begin + batch_size])
                loss.backward()
                optimizer.step()
            return time.perf_counter() - start

        epoch()
        return epoch

    def forward(self, x, repeats=3):
        X = self._tensor(x)
        with self.torch.no_grad():
            self.net(X[:100])
            return min(_timed(lambda: self.net(X)) for _ in range(repeats))

    def predict_one(self, x, calls=2000):
        sample = self._tensor(x[0])
        with self.torch.no_grad():
            return _per_call(lambda: int(self.net(sample).argmax()), calls)


def plot_format(path) -> str:
    """The image format ``plot`` will write to ``path``, checked before any timing.

    ``fastmlp.plots.check_plot_path``: the format comes from the file name's
    suffix (``png`` when it has none); ``ImportError`` naming the ``plot``
    extra without matplotlib, ``ValueError`` for a missing directory or an
    unknown format.
    """
    from .plots import check_plot_path

    return check_plot_path(path)


def plot(result: Comparison, path: str | os.PathLike) -> None:
    """Draw ``result`` as bar charts into the image file ``path`` (format from its suffix).

    Needs matplotlib (``pip install matplotlib``, the ``plot`` extra). Left:
    training throughput per batch size; right: the full forward pass. The
    file is written atomically.
    """
    image_format = plot_format(path)
    if not result.epoch_seconds:
        raise ValueError("nothing to plot: no batch size was timed")
    from matplotlib.figure import Figure

    names = list(next(iter(result.epoch_seconds.values())))
    fig = Figure(figsize=(11, 4))
    left, right = fig.subplots(1, 2, width_ratios=(3, 1.3))
    width = 0.8 / len(names)
    positions = np.arange(len(result.epoch_seconds))
    for i, name in enumerate(names):
        rates = [result.samples / seconds[name] / 1e3 for seconds in result.epoch_seconds.values()]
        left.bar(positions + i * width, rates, width, label=name)
    left.set_xticks(positions + width * (len(names) - 1) / 2,
                    [f"batch {batch}" for batch in result.epoch_seconds])
    left.set_ylabel("training samples/s (thousands)")
    left.set_title(f"One epoch, {result.dtype}, plain SGD (higher is better)")
    left.legend()
    forward = result.forward_seconds
    right.bar(list(forward), list(forward.values()),
              color=[f"C{names.index(name)}" if name in names else "gray" for name in forward])
    right.set_ylabel("seconds")
    right.set_title(f"Forward of {result.samples:,} samples (lower is better)", fontsize=10)
    fig.tight_layout()
    from .plots import save_figure

    save_figure(fig, path, image_format)
