"""``fastmlp bench``: fastmlp's backends against plain NumPy, PyTorch, JAX and the FMA peak.

:func:`compare` trains one network in float32 (or float64) with plain SGD and
measures, per backend and batch size, the best epoch time of several, then the
forward pass over the whole training set as one batch, and single-sample
``predict``. The peers, PyTorch (eager) and JAX (``jax.jit`` of a whole epoch,
``lax.scan`` over its steps), join when they are importable, each in a process
of its own (:mod:`fastmlp.peers`). Every contender computes on the same number
of threads. :func:`sweep` does it for networks of several hidden widths, and
:func:`plot_widths` draws their GFLOP/s against the width, with the FMA peak.

The contenders take turns, epoch by epoch, so read the numbers as ratios:
absolute times move by 20-30 % between runs on a shared machine.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from . import __version__, backends, peers
from ._timing import per_call, timed
from ._validation import check_dtype
from .machine import describe, summary, usable_cpus
from .model import MLP
from .profile import flops_per_sample, fma_peak, gemm_peak

NUMPY_BASELINE = "matmul"  # plain NumPy: one BLAS call per product
# The "vs" columns, how many times faster than each of these, and their headings.
REFERENCES = {NUMPY_BASELINE: "vs numpy", **{name: f"vs {name}" for name in peers.PEERS}}


@dataclass
class Comparison:
    """Results of :func:`compare` for one network; ``str()`` gives the printed tables.

    Attributes
    ----------
    epoch_seconds : dict
        ``{batch_size: {contender: best seconds per epoch}}``.
    forward_seconds : dict
        ``{contender: seconds}`` for the forward pass over all samples at once.
    predict_seconds : dict
        ``{contender: seconds}`` per single-sample predict call.
    threads : int or None
        The threads every contender computed on, and the FMA peak was measured on.
    contenders : dict
        ``{contender: {"version", "threads", "threads_set_by", "process"}}``:
        what each one ran, the threads as it reported them, how they were set,
        and ``"own"`` for a peer in a process of its own (else ``"bench"``).
    """

    layer_sizes: tuple[int, ...]
    samples: int
    peak_gflops: float
    gemm_gflops: float | None = None
    threads: int | None = None
    contenders: dict[str, dict] = field(default_factory=dict)
    machine: dict | None = None
    dtype: str = "float32"
    epoch_seconds: dict[int, dict[str, float]] = field(default_factory=dict)
    forward_seconds: dict[str, float] = field(default_factory=dict)
    predict_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def epoch_gflop(self) -> float:
        """GFLOP of one epoch's matrix products (:func:`fastmlp.profile.flops_per_sample`)."""
        return self.samples * flops_per_sample(self.layer_sizes)["total"] / 1e9

    def gflops(self, batch_size: int, contender: str) -> float:
        """GFLOP/s of ``contender``'s best epoch at ``batch_size``."""
        return self.epoch_gflop / self.epoch_seconds[batch_size][contender]

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
        """The inverse of :meth:`to_dict`, e.g. for a run saved as JSON.

        A run saved before the peers ran in processes of their own gives its
        ``torch_version`` as the ``torch`` contender's version.
        """
        data = dict(data)
        data["layer_sizes"] = tuple(data["layer_sizes"])
        data["epoch_seconds"] = {int(batch): seconds
                                 for batch, seconds in data.get("epoch_seconds", {}).items()}
        torch_version = data.pop("torch_version", None)
        if torch_version is not None:
            data["contenders"] = {**data.get("contenders", {}),
                                  "torch": {"version": f"torch {torch_version}"}}
        return cls(**data)

    def context_lines(self) -> list[str]:
        """What it ran on: the machine, the FMA peak and threads, each contender's version."""
        lines = [summary(self.machine)] if self.machine else []
        if self.machine and self.machine.get("numba_settings"):
            lines += numba_settings_lines(self.machine["numba_settings"])
        gemm = "" if self.gemm_gflops is None else f", BLAS GEMM {self.gemm_gflops:.0f}"
        on = "" if self.threads is None else f" on {threads_text(self.threads)}"
        lines.append(f"{self.dtype} FMA peak{on} {self.peak_gflops:.0f} GFLOP/s{gemm}")
        if self.contenders:
            lines.append("contenders:" if self.threads is None
                         else f"contenders, each on {threads_text(self.threads)}:")
            lines += [f"  {name:<7} {_contender(about)}" for name, about in self.contenders.items()]
        return lines

    def table_lines(self) -> list[str]:
        """The network, then the tables: epochs, the forward pass, single predicts."""
        lines = [f"{'-'.join(map(str, self.layer_sizes))} {self.dtype}, plain SGD, "
                 f"{self.samples:,} samples per epoch ({self.epoch_gflop:.1f} GFLOP)", ""]
        vs = "".join(f" {heading:>9}" for heading in REFERENCES.values())
        header = (f"{'backend':<8} {'batch':>5} {'s/epoch':>8} {'samples/s':>10} {'GFLOP/s':>8} "
                  f"{'% peak':>7}{vs}")
        lines += [header, "-" * len(header)]
        for batch_size, seconds in self.epoch_seconds.items():
            for name, value in seconds.items():
                gflops = self.epoch_gflop / value
                rate = self.samples / value
                lines.append(f"{name:<8} {batch_size:>5} {value:8.3f} {rate:10,.0f} "
                             f"{gflops:8.1f} {100 * gflops / self.peak_gflops:6.1f}%"
                             + _ratios(seconds, value))
        if self.forward_seconds:
            forward = self.forward_seconds
            lines += ["", f"forward of all {self.samples:,} samples as one batch:",
                      f"{'backend':<8} {'seconds':>8}{vs}"]
            lines += [f"{name:<8} {value:8.3f}" + _ratios(forward, value)
                      for name, value in forward.items()]
        if self.predict_seconds:
            lines += ["", "single-sample predict of one raw image:",
                      f"{'backend':<8} {'µs/call':>8}"]
            lines += [f"{name:<8} {1e6 * value:8.1f}"
                      for name, value in self.predict_seconds.items()]
        return lines

    def __str__(self) -> str:
        return "\n".join([*self.context_lines(), "", *self.table_lines()])


def _ratios(seconds: dict, value: float) -> str:
    """The ``vs`` columns: how many times faster than each reference, or '-'."""
    return "".join(f" {seconds[reference] / value:8.2f}x" if reference in seconds
                   else f" {'-':>9}" for reference in REFERENCES)


def threads_text(threads: int) -> str:
    """``"1 thread"``, ``"2 threads"``."""
    return f"{threads} thread" + ("" if threads == 1 else "s")


# numba's _blocking.NO_ALIAS (not imported: a saved run's lines need no numba)
_NO_ALIAS = 1 << 30


def numba_settings_lines(numba: dict) -> list[str]:
    """The numba backend's tile, blocking and thresholds (its ``settings()``) as lines;
    a saved run from before some of them were recorded shows those it has."""
    caches = numba.get("caches")
    read = ""
    if caches:
        ways = f" {caches['l1d_ways']}-way" if caches.get("l1d_ways") else ""
        read = (f" (from L1d {caches['l1d'] >> 10} KiB{ways}, L2 {caches['l2'] >> 10} KiB, "
                f"{caches['source']})")
    lines = [f"numba backend: {numba['tile']} register tiles (FASTMLP_NUMBA_TILE), "
             f"{numba['row_tile']} rows per cache tile, k in passes of {numba['k_block']}"
             f"{read}"]
    if "forward_tile" in numba:
        narrow = (f" (blocks of up to {numba['narrow_vectors']} vectors)"
                  if "narrow_vectors" in numba else "")
        alias = (f" (1 where k is a multiple of {numba['rows_dot_alias']})"
                 if numba.get("rows_dot_alias", _NO_ALIAS) < _NO_ALIAS else "")
        lines.append(f"  forward tile {numba['forward_tile']} rows, panels "
                     f"{numba['panel_width']} float32 wide, one-vector tile "
                     f"{numba['column_tile_rows']} rows{narrow}, rows_dot groups "
                     f"{numba['rows_dot_groups']}{alias}, gather ahead "
                     f"{numba['gather_ahead']} (FASTMLP_NUMBA_BLOCKING)")
    if "columns_from" in numba:
        fewer = (f" for workers of fewer than {numba['pack_rows']} rows a batch"
                 if "pack_rows" in numba else "")
        lines.append(f"  forward products by columns from {numba['columns_from']} units{fewer}, "
                     f"{numba['column_rows']} rows at a time (FASTMLP_NUMBA_BLOCKING)")
    if "b_block" in numba:
        lines.append(f"  b read by every row tile {numba['b_block'] >> 10} KiB at a time, "
                     f"copied into panels from {numba['pack_rows']} rows where its rows "
                     f"lie a multiple of {numba['pack_stride']} bytes apart "
                     "(FASTMLP_NUMBA_BLOCKING)")
    if "refresh_bytes" in numba:
        lines.append(f"  W's panels refreshed by the update {numba['refresh_bytes'] >> 10} KiB "
                     "of rows at a time (FASTMLP_NUMBA_BLOCKING)")
    lines.append(f"  products of >= {numba['parallel_work']:,} multiply-adds split across "
                 "threads (FASTMLP_NUMBA_PARALLEL_WORK)")
    overrides = numba.get("overrides")
    if overrides:
        lines.append("  overridden: " + ", ".join(f"{name}={value}"
                                                  for name, value in overrides.items()))
    return lines


def _contender(about: dict) -> str:
    """One contender's line: its version, threads and process."""
    line = about.get("version", "?")
    if "threads" in about:
        line += f"; {threads_text(about['threads'])} ({about['threads_set_by']})"
    if about.get("process") == "own":
        line += ", in a process of its own"
    return line


@dataclass
class Sweep:
    """Results of :func:`sweep`: a :class:`Comparison` per hidden width; ``str()`` prints them.

    Attributes
    ----------
    runs : list of Comparison
        In the order of the widths.
    """

    runs: list[Comparison]

    @property
    def widths(self) -> list[int]:
        """The hidden width of each run (its networks are ``n_features-W-W-n_classes``)."""
        return [run.layer_sizes[1] for run in self.runs]

    def to_dict(self) -> dict:
        """``{"runs": [Comparison.to_dict(), ...]}``, JSON-ready."""
        return {"runs": [run.to_dict() for run in self.runs]}

    @classmethod
    def from_dict(cls, data: dict) -> Sweep:
        """The inverse of :meth:`to_dict`; a lone :meth:`Comparison.to_dict` is a sweep of one.

        Examples
        --------
        >>> one = Comparison((4, 3), samples=10, peak_gflops=1.0)
        >>> Sweep.from_dict(one.to_dict()) == Sweep.from_dict(Sweep([one]).to_dict())
        True
        """
        if "runs" not in data:
            return cls([Comparison.from_dict(data)])
        return cls([Comparison.from_dict(run) for run in data["runs"]])

    def width_table_lines(self) -> list[str]:
        """GFLOP/s and the share of the FMA peak of each contender's epochs, by width."""
        first = self.runs[0]
        network = "-".join([str(first.layer_sizes[0]), "W", "W", str(first.layer_sizes[-1])])
        lines = [f"GFLOP/s of an epoch and its share of the {first.dtype} FMA peak "
                 f"({first.peak_gflops:.0f} GFLOP/s), by the hidden width W of {network}:"]
        header = f"{'backend':<8} {'batch':>5}" + "".join(f" {width:>12}" for width in self.widths)
        lines += [header, "-" * len(header)]
        for batch_size, name in _rows(self.runs):
            cells = []
            for run in self.runs:
                if name in run.epoch_seconds.get(batch_size, {}):
                    gflops = run.gflops(batch_size, name)
                    cells.append(f" {gflops:7.1f} {100 * gflops / run.peak_gflops:3.0f}%")
                else:
                    cells.append(f" {'-':>12}")
            lines.append(f"{name:<8} {batch_size:>5}" + "".join(cells))
        return lines

    def __str__(self) -> str:
        lines = self.runs[0].context_lines()
        for run in self.runs:
            lines += ["", *run.table_lines()]
        if len(self.runs) > 1:
            lines += ["", *self.width_table_lines()]
        return "\n".join(lines)


def _rows(runs: Sequence[Comparison]) -> list[tuple[int, str]]:
    """Every (batch size, contender) timed in any of ``runs``: by batch size, and the
    contenders of each in the order first met."""
    rows = {}
    for run in runs:
        for batch_size, seconds in run.epoch_seconds.items():
            rows.update(dict.fromkeys((batch_size, name) for name in seconds))
    return sorted(rows, key=lambda row: row[0])


def max_threads() -> int:
    """The most threads a contender may be given: the CPUs this process may run on,
    or ``NUMBA_NUM_THREADS`` where that is lower."""
    import numba

    return min(usable_cpus(), numba.config.NUMBA_NUM_THREADS)


def check_threads(threads: int | None) -> int:
    """``threads``, or :func:`max_threads` for None; ``ValueError`` outside 1 to that."""
    most = max_threads()
    if threads is None:
        return most
    if not 1 <= threads <= most:
        raise ValueError(f"threads must be between 1 and {most}, the CPUs this process may "
                         f"run on (or NUMBA_NUM_THREADS where lower), got {threads}")
    return threads


@contextlib.contextmanager
def limited_threads(threads: int):
    """numba's threads (``numba.set_num_threads``, of the calling thread) and every BLAS's
    (threadpoolctl) at ``threads`` inside the block, as they were after it.

    Yields a function that limits the BLAS libraries loaded since, to call
    before timing: numba loads SciPy's OpenBLAS, where SciPy is installed, the
    first time it compiles or loads a kernel.
    """
    import numba
    from threadpoolctl import threadpool_limits

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        with contextlib.ExitStack() as limits:
            def limit_blas():
                limits.enter_context(threadpool_limits(limits=threads, user_api="blas"))

            limit_blas()
            yield limit_blas
    finally:
        numba.set_num_threads(before)


def _backend_contender(name: str) -> dict:
    """What backend ``name`` runs, and its threads, inside :func:`limited_threads`."""
    if name == "numba":
        import numba

        from .backends.numba import num_threads

        # the threads its kernels run on: numba's count, capped as num_threads says
        return {"version": f"fastmlp {__version__}, numba {numba.__version__}",
                "threads": num_threads(), "threads_set_by": "numba.set_num_threads",
                "process": "bench"}
    from threadpoolctl import threadpool_info

    blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    return {"version": f"fastmlp {__version__}, numpy {np.__version__}",
            "threads": max(blas, default=1), "threads_set_by": "threadpoolctl, for BLAS",
            "process": "bench"}


def compare(x: np.ndarray, y: np.ndarray, *, backend_names: Sequence[str] | None = None,
            batch_sizes: Sequence[int] = (32, 128, 1000), epochs: int = 4,
            peer_names: Sequence[str] = tuple(peers.PEERS), threads: int | None = None,
            layer_sizes: Sequence[int] = (784, 128, 128, 10),
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
    peer_names : sequence of str
        Peers (``"torch"``, ``"jax"``: :data:`fastmlp.peers.PEERS`) to time
        too, each in a process of its own; those not importable are left out
        (:func:`fastmlp.peers.importable`).
    threads : int, optional
        The threads of every contender, and of the FMA peak. Default: the CPUs
        this process may run on (:func:`max_threads`).
    layer_sizes : sequence of int
    report : callable, optional
        Called with each line of progress (one per finished batch size).
    dtype : float32 or float64
        Of every contender's parameters and arithmetic (the peers' too), and of the FMA peak.

    Returns
    -------
    Comparison

    Raises
    ------
    fastmlp.peers.PeerError
        When a peer's process fails.
    """
    x = x.reshape(len(x), -1)
    dtype = check_dtype(dtype)
    threads = check_threads(threads)
    names = backend_names or [b for b in backends.available_backends() if b != "loop"]
    for name in names:
        backends.load_backend(name)  # an unknown name fails before any timing
    for name in peer_names:
        if name not in peers.PEERS:
            raise ValueError(f"unknown peer {name!r}; choose from {', '.join(peers.PEERS)}")
    peer_names = [name for name in peer_names if peers.importable(name)]
    with contextlib.ExitStack() as stack:
        limit_blas = stack.enter_context(limited_threads(threads))
        result = Comparison(tuple(layer_sizes), len(x), fma_peak(dtype, threads=threads),
                            gemm_gflops=gemm_peak(dtype, threads=threads), threads=threads,
                            dtype=dtype.name)
        running = {}
        if peer_names:
            data = stack.enter_context(peers.shared_data(x, y))
            for name in peer_names:
                running[name] = stack.enter_context(
                    peers.PeerProcess(name, layer_sizes, dtype.name, threads, data))
        for batch_size in batch_sizes:
            contenders = {name: _FastmlpEpoch(name, x, y, batch_size, layer_sizes, dtype)
                          for name in names}
            contenders.update({name: peer.trainer(batch_size) for name, peer in running.items()})
            limit_blas()  # and any BLAS the warm-up epochs loaded
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
        limit_blas()
        for name in names:
            result.forward_seconds[name] = _forward_seconds(name, x, layer_sizes, dtype)
            result.predict_seconds[name] = _predict_seconds(name, x, layer_sizes, dtype)
        for name, peer in running.items():
            result.forward_seconds[name] = peer.forward()
            result.predict_seconds[name] = peer.predict_one()
        # after the contenders ran: every BLAS loaded, numba's layer chosen, threads as they ran
        limit_blas()
        result.contenders = {name: _backend_contender(name) for name in names}
        result.contenders.update({name: {"version": peer.version, "threads": peer.threads,
                                         "threads_set_by": peer.threads_set_by,
                                         "process": "own"} for name, peer in running.items()})
        result.machine = describe()
    if "numba" in names:
        result.machine["numba_settings"] = backends.load_backend("numba").settings()
    return result


def sweep(x: np.ndarray, y: np.ndarray, *, widths: Sequence[int] = (128,),
          n_classes: int | None = None, report: Callable[[str], None] | None = None,
          **options) -> Sweep:
    """:func:`compare` on the networks ``n_features-W-W-n_classes``, for each hidden width ``W``.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_features)
    y : ndarray of int, shape (n_samples,)
    widths : sequence of int
        The width ``W`` of both hidden layers, one network each, in turn.
    n_classes : int, optional
        Default: ``y.max() + 1``.
    report : callable, optional
        Called with each line of progress, which names the network.
    **options
        The other parameters of :func:`compare` but ``layer_sizes``.

    Returns
    -------
    Sweep
    """
    x = x.reshape(len(x), -1)
    n_classes = n_classes or int(np.max(y)) + 1
    runs = []
    for width in widths:
        layer_sizes = (x.shape[1], width, width, n_classes)
        label = "-".join(map(str, layer_sizes))
        runs.append(compare(x, y, layer_sizes=layer_sizes, **options,
                            report=None if report is None
                            else lambda line, label=label: report(f"{label}, {line}")))
    return Sweep(runs)


class _FastmlpEpoch:
    """One backend training with plain SGD, as ``fastmlp train --optimizer sgd`` does."""

    def __init__(self, backend, x, y, batch_size, layer_sizes, dtype):
        self.backend, self.x, self.y, self.batch_size = backend, x, y, batch_size
        self.model = MLP(layer_sizes, dtype=dtype, seed=0)
        self()  # warm up: JIT, caches, page faults

    def __call__(self) -> float:
        with backends.use_backend(self.backend):
            history = self.model.fit(self.x, self.y, epochs=1, batch_size=self.batch_size,
                                     optimizer="sgd", learning_rate=peers.LEARNING_RATE,
                                     schedule="constant")
        return history.seconds[0]


def _forward_seconds(name, x, layer_sizes, dtype, repeats=3):
    model = MLP(layer_sizes, dtype=dtype, seed=0)
    X = model.scaler.fit(x).transform(x, dtype)
    module = backends.load_backend(name)
    module.forward(model.params, X[:100])
    return min(timed(lambda: module.forward(model.params, X)) for _ in range(repeats))


def _predict_seconds(name, x, layer_sizes, dtype, calls=2000):
    model = MLP(layer_sizes, dtype=dtype, seed=0)
    model.scaler.fit(x[:1000])
    sample = x[0]
    with backends.use_backend(name):
        return per_call(lambda: model.predict(sample), calls)


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


def plot_widths(result: Sweep, path: str | os.PathLike) -> None:
    """Draw each contender's GFLOP/s against the hidden width into the image file ``path``.

    One panel per batch size, a line per contender, the widths on a log
    scale; the FMA peak is a horizontal line (the share of it on the right
    axis), BLAS's GEMM rate a dotted one. Needs matplotlib (the ``plot``
    extra); the format comes from the suffix, and the file is written atomically.
    """
    image_format = plot_format(path)
    rows = _rows(result.runs)
    if not rows:
        raise ValueError("nothing to plot: no batch size was timed")
    from matplotlib.figure import Figure

    batch_sizes = list(dict.fromkeys(batch_size for batch_size, _ in rows))
    names = list(dict.fromkeys(name for _, name in rows))
    first = result.runs[0]
    peak, gemm = first.peak_gflops, first.gemm_gflops
    fig = Figure(figsize=(4.5 + 3.5 * len(batch_sizes), 5), layout="constrained")
    axes = fig.subplots(1, len(batch_sizes), sharey=True, squeeze=False)[0]
    threads = "" if first.threads is None else f", {threads_text(first.threads)}"
    for ax, batch_size in zip(axes, batch_sizes):
        for i, name in enumerate(names):
            points = [(width, run.gflops(batch_size, name))
                      for width, run in zip(result.widths, result.runs)
                      if name in run.epoch_seconds.get(batch_size, {})]
            if points:
                ax.plot(*zip(*points), marker="o", color=f"C{i}", label=name)
        ax.axhline(peak, color="black", label=f"{first.dtype} FMA peak ({peak:.0f}{threads})")
        if gemm is not None:
            ax.axhline(gemm, color="gray", linestyle=":", label=f"BLAS GEMM 2048³ ({gemm:.0f})")
        ax.set_xscale("log", base=2)
        ax.set_xticks(result.widths, [str(width) for width in result.widths])
        ax.minorticks_off()
        ax.set_ylim(0, 1.08 * peak)
        ax.set_xlabel("hidden width W")
        ax.set_title(f"batch {batch_size}")
    axes[0].set_ylabel("GFLOP/s of an epoch")
    share = axes[-1].secondary_yaxis("right", functions=(lambda g: 100 * g / peak,
                                                         lambda pct: pct * peak / 100))
    share.set_ylabel("% of the FMA peak")
    legend = {}  # label: handle, over every panel (a contender may be timed at one batch only)
    for ax in axes:
        legend.update({label: handle for handle, label in zip(*ax.get_legend_handles_labels())
                       if label not in legend})
    order = sorted(legend, key=lambda label: names.index(label) if label in names else len(names))
    fig.legend([legend[label] for label in order], order, loc="outside lower center",
               ncol=min(len(order), 4), fontsize=8)
    network = f"{first.layer_sizes[0]}-W-W-{first.layer_sizes[-1]}"
    fig.suptitle(f"One epoch of {network}, {first.dtype}, plain SGD, "
                 f"{first.samples:,} samples (higher is better)")
    from .plots import save_figure

    save_figure(fig, path, image_format)
