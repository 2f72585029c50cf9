"""Where the time of a training step goes: ``fastmlp profile``.

:func:`profile_training` trains a fresh model for some steps with one backend
through ``fit``'s loop over batches, ``fastmlp.steps.ComposedSteps`` of the
backend's ``forward`` and ``backward``, with a timer that reads the clock
between the phases of every step:

``data``
    Gathering the batch's rows from the raw training set by the shuffled
    order, and scaling them to the model's dtype.
``forward``
    The backend's ``forward`` and the cross-entropy of its output.
``backward``
    The backend's ``backward``: every layer's ``dW`` and ``db``.
``update``
    ``optimizer.step`` on all parameters.
``overhead``
    Everything else in the loop: indexing, the running loss and accuracy, the timers.

When the backend's ``run_steps`` (what ``fit`` runs) is a loop of its own
rather than that one (``matmul``: the same loop into buffers allocated once;
``numba``: its fused epoch), the same batches are trained once more through
it, untimed inside, and its time is reported beside the phases as
``fused``. The numba backend's fused epoch also counts the CPU cycles of its
own parts on every worker thread (products, fused epilogues, update, waiting
at the barrier; see ``fastmlp.backends.numba.PARTS``), and the profile shows
them as ``fused_parts``.

Achieved GFLOP/s count the matrix products only (the FLOP of
:func:`flops_per_sample`) and are set against the machine's FMA peak,
measured on the spot by :func:`fma_peak` (BLAS's rate, :func:`gemm_peak`, is
printed beside it: our kernels can beat it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import numpy as np

from . import backends, datasets, optim
from ._flat import flat_params
from ._validation import check_dtype, check_features, check_labels, check_positive_int
from .exceptions import TrainingDivergedError
from .machine import describe, summary
from .model import MLP
from .steps import Batches, ComposedSteps, Timer, training_inputs

PHASES = ("data", "forward", "backward", "update", "overhead")


def flops_per_sample(layer_sizes: Sequence[int]) -> dict[str, int]:
    """Floating-point operations of the matrix products of one training sample.

    A layer with ``n_in`` inputs and ``n_out`` outputs costs ``2 * n_in * n_out``
    FLOP (one multiply and one add per weight) for each of: its forward product
    ``a @ W.T``, its weight gradient ``delta.T @ a``, and, for every layer but
    the first, the gradient passed to the layer below, ``delta @ W``. Biases,
    ReLU, softmax and the update are linear in the layer widths and not counted.

    Parameters
    ----------
    layer_sizes : sequence of int
        Input size, hidden sizes, number of classes.

    Returns
    -------
    dict
        FLOP per sample for ``'forward'``, ``'backward'`` and ``'total'``.

    Examples
    --------
    >>> flops_per_sample((784, 128, 128, 10))
    {'forward': 236032, 'backward': 271360, 'total': 507392}
    """
    weights = [n_in * n_out for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])]
    forward = 2 * sum(weights)
    backward = 2 * sum(weights) + 2 * sum(weights[1:])
    return {"forward": forward, "backward": backward, "total": forward + backward}


_peaks: dict[tuple, float] = {}


def fma_peak(dtype=np.float32, seconds: float = 0.1, repeats: int = 3,
             threads: int | None = None) -> float:
    """GFLOP/s of the machine's fused multiply-add limit, on ``threads`` cores at once.

    One thread per core runs ``12`` independent vector FMA chains held in
    registers (numba's ``fma_chains``, at the vector width it compiles for) for
    about ``seconds``, all at once, in ``repeats`` rounds; each thread times
    its own run, and the best rate of one core, times the cores, is the peak
    (the cores taken alike, as on a server's CPU; a hybrid CPU's slower cores
    make it an upper bound). No product can run faster, so this, not what BLAS
    reaches, is the 100 % of the ``% peak`` columns. ``threads`` defaults to
    every core (``os.cpu_count()``). Measured once per process for each dtype
    and thread count.

    (Timed around the pool, a round in which the host held one core back for
    the other's run measured one core's rate: a 2-core EPYC under KVM measured
    117 GFLOP/s where it reaches 221-232, and a profile printed its products
    at 167 % of that peak; the sum of the threads' own rates, best of 3 rounds,
    still came out at half of it once, the host slowing one core for all 3.)
    """
    from .backends.numba import _blocking, _kernels, _simd

    cores = threads or os.cpu_count() or 1
    key = ("fma", np.dtype(dtype).name, cores)
    if key not in _peaks:
        x = np.dtype(dtype).type(0.999999)
        lanes = _blocking.TILE.lanes(np.dtype(dtype).itemsize)
        _kernels.fma_chains(1000, x)  # compiled or loaded before the clock starts
        start = time.perf_counter()
        _kernels.fma_chains(1_000_000, x)
        steps = max(1000, int(1_000_000 * seconds / max(time.perf_counter() - start, 1e-6)))
        def rate(_):
            begin = time.perf_counter()
            _kernels.fma_chains(steps, x)
            return 2 * lanes * _simd.PEAK_CHAINS * steps / (time.perf_counter() - begin)

        with ThreadPoolExecutor(cores) as pool:
            best = max(max(pool.map(rate, range(cores))) for _ in range(repeats))
        _peaks[key] = cores * best / 1e9
    return _peaks[key]


def gemm_peak(dtype=np.float32, n: int = 2048, repeats: int = 5,
              threads: int | None = None) -> float:
    """GFLOP/s of the best of ``repeats`` square ``n x n`` ``np.matmul`` calls.

    This is what the BLAS behind NumPy achieves on this machine with
    ``threads`` threads (default: its own default, usually one per core): the
    practical ceiling for the products of a training step. Measured once per
    process for each ``(dtype, n, threads)``.
    """
    key = (np.dtype(dtype).name, n, threads)
    if key not in _peaks:
        from threadpoolctl import threadpool_limits

        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        out = np.empty_like(a)
        with threadpool_limits(limits=threads, user_api="blas"):
            np.matmul(a, b, out=out)
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                np.matmul(a, b, out=out)
                best = min(best, time.perf_counter() - start)
        _peaks[key] = 2 * n**3 / best / 1e9
    return _peaks[key]


@dataclass
class Profile:
    """The result of :func:`profile_training`; ``str()`` gives the printed table.

    Attributes
    ----------
    seconds : dict
        Seconds spent in each of :data:`PHASES`, summed over the steps.
    total_seconds : float
        Wall time of the instrumented steps, measured around the whole loop.
    fused_seconds : float or None
        Wall time of the same batches through the backend's ``run_steps`` (what
        ``fit`` runs); None when that is the loop the phases timed.
    peak_gflops : float
        :func:`fma_peak` for the profile's dtype: the machine's limit.
    gemm_gflops : float or None
        :func:`gemm_peak`: what BLAS reaches on a large square product.
    fused_parts : dict or None
        Seconds of each part of the fused epoch, for a backend that times them
        (numba: its ``PARTS``, the mean of its worker threads); else None.
    machine : dict or None
        What it ran on: :func:`fastmlp.machine.describe`.
    """

    backend: str
    layer_sizes: tuple[int, ...]
    dtype: str
    batch_size: int
    optimizer: str
    steps: int
    samples: int
    seconds: dict[str, float]
    total_seconds: float
    fused_seconds: float | None
    peak_gflops: float
    gemm_gflops: float | None = None
    fused_parts: dict[str, float] | None = None
    machine: dict | None = None
    flops_per_sample: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.flops_per_sample = flops_per_sample(self.layer_sizes)

    @property
    def samples_per_second(self) -> float:
        """Samples per second of the instrumented steps, all phases included."""
        return self.samples / self.total_seconds

    def share(self, phase: str) -> float:
        """Percent of ``total_seconds`` spent in ``phase``."""
        return 100 * self.seconds[phase] / self.total_seconds

    def gflops(self, phase: str = "total") -> float | None:
        """Achieved GFLOP/s of ``'forward'``, ``'backward'``, ``'total'``, ``'fused'``, or
        ``'products'`` (the fused epoch's products alone, when its parts were timed)."""
        if phase == "fused":
            if self.fused_seconds is None:
                return None
            flop, seconds = self.flops_per_sample["total"], self.fused_seconds
        elif phase == "total":
            flop, seconds = self.flops_per_sample["total"], self.total_seconds
        elif phase == "products" and self.fused_parts:
            flop, seconds = self.flops_per_sample["total"], self.fused_parts["products"]
        elif phase in self.flops_per_sample:
            flop, seconds = self.flops_per_sample[phase], self.seconds[phase]
        else:
            return None
        return self.samples * flop / seconds / 1e9 if seconds > 0 else float("inf")

    def to_dict(self) -> dict:
        """Plain JSON-ready data, with the derived rates included."""
        data = asdict(self)
        data["layer_sizes"] = list(self.layer_sizes)
        data["samples_per_second"] = self.samples_per_second
        data["gflops"] = {phase: self.gflops(phase)
                          for phase in ("forward", "backward", "total", "fused")}
        data["fused_samples_per_second"] = (
            None if self.fused_seconds is None else self.samples / self.fused_seconds)
        return data

    def header(self) -> str:
        """One line: the network, dtype, batch, optimizer, work, FMA peak and BLAS's rate."""
        gemm = "" if self.gemm_gflops is None else f", BLAS GEMM {self.gemm_gflops:.0f}"
        return (f"{'-'.join(map(str, self.layer_sizes))} {self.dtype}, batch {self.batch_size}, "
                f"{self.optimizer}, {self.steps} step{'s' * (self.steps != 1)} "
                f"({self.samples:,} samples); "
                f"{self.dtype} FMA peak {self.peak_gflops:.0f} GFLOP/s{gemm}")

    def __str__(self) -> str:
        lines = [summary(self.machine), ""] if self.machine else []
        lines += [f"backend {self.backend}: {self.header()}", "",
                 f"{'phase':<9} {'seconds':>8} {'% total':>8} {'samples/s':>11} "
                 f"{'GFLOP/s':>8} {'% peak':>7}"]
        rows = [(phase, self.seconds[phase]) for phase in PHASES]
        rows.append(("total", self.total_seconds))
        if self.fused_seconds is not None:
            rows.append(("fused", self.fused_seconds))
        for phase, seconds in rows:
            share = "" if phase == "fused" else f"{100 * seconds / self.total_seconds:7.1f}%"
            rate = (f"{self.samples / seconds:11,.0f}" if seconds > 0 and phase != "overhead"
                    else f"{'-':>11}")
            gflops = self.gflops(phase)
            if gflops is None:
                flop_columns = f"{'-':>8} {'-':>7}"
            else:
                flop_columns = f"{gflops:8.1f} {100 * gflops / self.peak_gflops:6.1f}%"
            lines.append(f"{phase:<9} {seconds:8.3f} {share:>8} {rate} {flop_columns}")
        if self.fused_seconds is not None:
            lines.append("")
            lines.append("fused: the same batches through the backend's own run_steps, "
                         "which fit runs, untimed inside (the phases above time fit's loop "
                         "over its forward and backward).")
        if self.fused_parts:
            lines += ["", "the fused epoch's parts (CPU cycles counted on each worker thread, "
                      "their mean):"]
            for part, seconds in self.fused_parts.items():
                share = 100 * seconds / self.fused_seconds
                rate = ""
                if part == "products":
                    gflops = self.gflops("products")
                    rate = f"  {gflops:.1f} GFLOP/s, {100 * gflops / self.peak_gflops:.1f}% peak"
                lines.append(f"  {part:<10} {seconds:8.3f} s {share:6.1f}%{rate}")
        return "\n".join(lines)


def profile_training(backend: str | None = None, *, x=None, y=None, steps: int | None = None,
                     batch_size: int = 128, dtype="float32", hidden=(128, 128),
                     optimizer: str = "adamw", learning_rate: float | None = None,
                     n_classes: int = 10, seed: int = 0, data_dir=None,
                     peak: float | None = None) -> Profile:
    """Train a fresh model for ``steps`` steps and time every phase of every step.

    Parameters
    ----------
    backend : str, optional
        A name from ``fastmlp.available_backends()``; default: the backend in effect.
    x, y : array_like, optional
        Raw training inputs ``(n_samples, n_features)`` and integer labels;
        default: the MNIST training set from ``datasets.load_mnist(data_dir)``.
    steps : int, optional
        Gradient steps to time; default: one epoch. More steps than an epoch
        continue with the next epoch's shuffle.
    batch_size : int
    dtype : float32 or float64
    hidden : sequence of int
        Hidden layer sizes.
    optimizer : str
        A name from ``fastmlp.optim.OPTIMIZERS``, at a constant learning rate.
    learning_rate : float, optional
        Default: the optimizer's.
    n_classes : int
        Labels must lie in ``[0, n_classes)``.
    seed : int
        Seed of the initialisation and the shuffle.
    data_dir : path, optional
        Passed to ``load_mnist`` when ``x`` is not given.
    peak : float, optional
        The 100 % of ``% peak`` in GFLOP/s; default: measured with
        :func:`fma_peak` (and BLAS's rate with :func:`gemm_peak`).

    Returns
    -------
    Profile

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.random((512, 20)), rng.integers(0, 3, 512)
    >>> result = profile_training("matmul", x=x, y=y, hidden=(16,), n_classes=3,
    ...                           batch_size=64, peak=100.0)
    >>> result.steps, result.samples, sorted(result.seconds) == sorted(PHASES)
    (8, 512, True)
    """
    name = backend or backends.get_backend_name()
    module = backends.load_backend(name)
    if x is None:
        (x, y), _ = datasets.load_mnist(data_dir)
    x = np.asarray(x)
    if x.ndim == 3:  # images (n_samples, height, width)
        x = x.reshape(len(x), -1)
    x = check_features(x, x.shape[-1])
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n_samples, n_features), got shape {x.shape}")
    y = check_labels(y, len(x), n_classes)
    check_positive_int(batch_size, "batch_size")
    batch_size = min(int(batch_size), len(x))  # what every batch of an epoch then holds at most
    steps_per_epoch = -(-len(x) // batch_size)
    if steps is None:
        steps = steps_per_epoch
    check_positive_int(steps, "steps")
    model = MLP((x.shape[1], *hidden, n_classes), dtype=check_dtype(dtype), seed=seed)
    model.scaler.fit(x)

    rng = np.random.default_rng(seed)
    epochs = -(-steps // steps_per_epoch)
    batches = [order[begin:begin + batch_size]
               for order in (rng.permutation(len(x)) for _ in range(epochs))
               for begin in range(0, len(x), batch_size)][:steps]

    opt = optim.make_optimizer(optimizer, learning_rate)
    # Overflow on the way to a diverging loss is reported once, as fit does.
    with np.errstate(over="ignore", invalid="ignore"):
        _phased_steps(module, model, opt, x, y, batches[:2], "warm-up")  # JIT, caches, buffers
        seconds, total = _phased_steps(module, model, opt, x, y, batches, "profiled")
        fused, parts = _fused_seconds(module, model, optimizer, learning_rate, x, y, batches)
    return Profile(backend=name, layer_sizes=model.layer_sizes, dtype=model.dtype.name,
                   batch_size=batch_size, optimizer=optimizer, steps=len(batches),
                   samples=sum(len(rows) for rows in batches), seconds=seconds,
                   total_seconds=total, fused_seconds=fused, fused_parts=parts,
                   peak_gflops=fma_peak(model.dtype) if peak is None else peak,
                   gemm_gflops=gemm_peak(model.dtype) if peak is None else None,
                   machine=describe())


class _PhaseTimer(Timer):
    """Seconds of each of :data:`PHASES`, read from the clock as the loop passes them."""

    def __init__(self):
        self.clock = time.perf_counter
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.began = self.last = self.clock()

    def start(self):
        self.stop("overhead")

    def stop(self, phase):
        now = self.clock()
        self.seconds[phase] += now - self.last
        self.last = now

    def total(self) -> float:
        """Seconds since the timer was made; what no phase took goes to ``overhead``."""
        self.stop("overhead")
        return self.last - self.began


class _Parts(Timer):
    """A timer that only takes a fused run's parts."""

    def __init__(self):
        self.parts = {}


def _runs(batches):
    """``batches`` (row indices, each epoch's last one possibly short) as the orders of
    runs of whole batches: a run ends after a short batch, where an epoch ended."""
    size = len(batches[0])
    runs, first = [], 0
    for i, rows in enumerate(batches):
        if len(rows) < size or i == len(batches) - 1:
            runs.append(np.concatenate(batches[first:i + 1]))
            first = i + 1
    return size, runs


def _train_runs(run_steps, model, params, optimizer, x, y, batches, label, timer):
    """Train ``params`` on ``batches`` through ``run_steps`` at the optimizer's learning rate;
    the fused parts that each run reported, if any."""
    size, runs = _runs(batches)
    done_steps = 0
    parts = []
    for order in runs:
        steps = -(-len(order) // size)
        done = run_steps(params, Batches(x, y, order, size, model.scaler, model.dtype),
                         optimizer, np.full(steps, float(optimizer.learning_rate)), timer)
        if done.failed_step >= 0:  # stopped before updating, as fit does
            raise TrainingDivergedError(
                f"training diverged: loss became non-finite at {label} step "
                f"{done_steps + done.failed_step + 1} of {len(batches)}; try a lower "
                f"learning rate")
        done_steps += steps
        if timer.parts:
            parts.append(dict(timer.parts))
    return parts


def _phased_steps(module, model, optimizer, x, y, batches, label):
    """Train on ``batches`` (row indices into raw ``x``) with fit's loop over the backend's
    ``forward`` and ``backward``, timing each phase of each step."""
    run_steps = module.run_steps
    if not isinstance(run_steps, ComposedSteps):
        run_steps = ComposedSteps(module.forward, module.backward)
    x, y = training_inputs(np.asarray(x), model.dtype), np.ascontiguousarray(y)
    timer = _PhaseTimer()
    _train_runs(run_steps, model, model.params, optimizer, x, y, batches, label, timer)
    total = timer.total()
    return timer.seconds, total


def _fused_seconds(module, model, optimizer, learning_rate, x, y, batches):
    """Seconds of the same batches through the backend's ``run_steps``, and of its parts if
    it times them; ``(None, None)`` if that is the loop ``_phased_steps`` timed."""
    run_steps = module.run_steps
    if isinstance(run_steps, ComposedSteps):
        return None, None
    x, y = training_inputs(np.asarray(x), model.dtype), np.ascontiguousarray(y)
    params = flat_params([(W.copy(), b.copy()) for W, b in model.params])
    opt = optim.make_optimizer(optimizer, learning_rate)
    _train_runs(run_steps, model, params, opt, x, y, batches[:2], "warm-up", _Parts())
    start = time.perf_counter()
    runs = _train_runs(run_steps, model, params, opt, x, y, batches, "fused", _Parts())
    seconds = time.perf_counter() - start
    parts = {}
    for run in runs:
        for part, spent in run.items():
            parts[part] = parts.get(part, 0.0) + spent
    return seconds, parts or None


def side_by_side(profiles: list[Profile]) -> str:
    """One table with a column per backend: seconds and share of each phase, then rates."""
    width = 17
    # the last profile's machine: described after every backend ran (numba's layer chosen)
    lines = [summary(profiles[-1].machine), ""] if profiles[-1].machine else []
    lines += [profiles[0].header(), "",
             f"{'':<17}" + "".join(f"{p.backend:>{width}}" for p in profiles)]

    def row(label, cells):
        lines.append(f"{label:<17}" + "".join(f"{cell:>{width}}" for cell in cells))

    for phase in PHASES:
        row(f"{phase} s (%)", [f"{p.seconds[phase]:.3f} ({p.share(phase):4.1f}%)"
                               for p in profiles])
    row("total s", [f"{p.total_seconds:.3f}" for p in profiles])
    row("samples/s", [f"{p.samples_per_second:,.0f}" for p in profiles])
    row("GFLOP/s (% peak)", [_rate(p, "total") for p in profiles])
    row("fused s", ["-" if p.fused_seconds is None else f"{p.fused_seconds:.3f}"
                    for p in profiles])
    row("fused samples/s", ["-" if p.fused_seconds is None
                            else f"{p.samples / p.fused_seconds:,.0f}" for p in profiles])
    row("fused GFLOP/s", [_rate(p, "fused") for p in profiles])
    parts = next((p.fused_parts for p in profiles if p.fused_parts), None)
    for part in parts or ():
        row(f"  {part} s (%)", [f"{p.fused_parts[part]:.3f} "
                                f"({100 * p.fused_parts[part] / p.fused_seconds:4.1f}%)"
                                if p.fused_parts else "-" for p in profiles])
    return "\n".join(lines)


def _rate(profile, phase):
    gflops = profile.gflops(phase)
    if gflops is None:
        return "-"
    return f"{gflops:.1f} ({100 * gflops / profile.peak_gflops:.0f}%)"
