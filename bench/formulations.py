"""Two formulations of a training step's products, on one core, beside MKL and OpenBLAS.

By rows, activations are ``(batch, units)``: the forward pass is ``a @ W.T``,
so ``W.T`` is the operand the micro-kernel loads as vectors (a copy of it is
refreshed after every update), the backward ``delta @ W`` loads ``W``, and each
worker takes half of the batch's rows and reads all of every ``W``. By columns
they are ``(units, batch)``:

- forward ``z.T = W @ a.T``: ``W``'s rows are broadcast, ``a.T`` loaded;
- backward ``delta.T[l-1] = W.T @ delta.T[l]``: ``W`` broadcast down its
  columns, with no transposed copy;
- weight gradient ``dW = delta.T @ a``: as today, with ``a`` as rows.

Each output element is the same FMA chain in the same ``k`` order
(``fma(W[j, k], a[i, k])`` is ``fma(a[i, k], W[j, k])``), so both give the
same bits; this checks that on every product before it times anything. (The
fused epoch runs the forward products of layers from ``columns_from`` units by
columns, in a worker's rows transposed; a worker owning half of every layer's
units, ``W``'s rows, their gradient and optimizer state, is the kernels issue's
item 2.)

For widths ``--hidden`` of a 784-H-H-10 network at batch 128, with two
workers, it times one worker's products of one step, hot, in both
formulations, and MKL (``torch.matmul``, if PyTorch is installed) and OpenBLAS
(``np.matmul``) on one thread on each product's own shapes and layouts::

    python bench/formulations.py --hidden 128,512,1024,2048
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from fastmlp.backends.numba import _kernels as k
from fastmlp.backends.numba._api import aligned_empty
from fastmlp.profile import fma_peak

BATCH, WORKERS = 128, 2
DTYPE = np.float32


@njit(nogil=True)
def _repeat(a, b, out, rows, a_transposed, ldb, calls, bias, mask, clocks, epilogue):
    for _ in range(calls):
        k.gemm_into(a, b, out, 0, rows, k.PLAIN, bias, mask, clocks, a_transposed, ldb,
                    epilogue)


def _best(run, calls) -> float:
    """Best seconds per call over 7 runs of ``calls`` calls."""
    run(1)
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        run(calls)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


class Product:
    """``out[:rows] = A @ B`` by ``gemm_into``: ``a`` as it lies or transposed (``A = a.T``),
    ``b`` ``(K, m)`` plain or in panels ``ldb`` wide (``panels``: ``b`` as ``(K, m)``)."""

    def __init__(self, name, a, b, rows, transposed=False, panels=None):
        self.name, self.a, self.rows = name, a, rows
        self.transposed = k.TRANSPOSED if transposed else k.NOT_TRANSPOSED
        self.b, self.ldb = (b, b.shape[1]) if panels is None else panels
        self.plain_b = b
        A = a.T if transposed else a
        self.A = A
        self.out = aligned_empty((A.shape[0], b.shape[1]), DTYPE)
        self.flop = 2 * rows * A.shape[1] * b.shape[1]

    def __call__(self, calls=1, rows=None):
        untimed = (np.empty(0, DTYPE), np.empty((0, 0), DTYPE), np.empty(0, np.int64),
                   k.epilogues(DTYPE))
        _repeat(self.a, self.b, self.out, self.rows if rows is None else rows, self.transposed,
                self.ldb, calls, *untimed)

    def whole(self) -> np.ndarray:
        """Every row of the product (for the bits)."""
        self(rows=self.A.shape[0])
        return self.out.copy()

    def seconds(self) -> float:
        return _best(self, max(1, int(3e8 / self.flop)))

    def library(self, matmul) -> float:
        """Seconds of ``matmul`` on this worker's rows, in the same layouts (``b`` plain)."""
        A = self.A[:self.rows]
        return _best(lambda calls: [matmul(A, self.plain_b) for _ in range(calls)],
                     max(1, int(3e8 / self.flop)))


def _panels(b):
    """``b`` ``(K, m)`` in ``gemm_into``'s panels (each ``panel_width`` columns contiguous),
    as the epoch keeps every ``W.T`` but the first; None where they do not divide ``m``."""
    width = k.panel_width(DTYPE)
    if b.shape[1] % width:
        return None
    flat = np.concatenate([b[:, p:p + width].ravel() for p in range(0, b.shape[1], width)])
    out = aligned_empty(b.shape, DTYPE)
    out.ravel()[:] = flat
    return out, width


def products(hidden, rng):
    """One worker's products of one step, (today's, transposed) in pairs of the same sums."""
    def array(*shape):
        out = aligned_empty(shape, DTYPE)
        out[:] = rng.standard_normal(shape, dtype=DTYPE)
        return out

    def copy_t(x):
        out = aligned_empty(x.shape[::-1], DTYPE)
        out[:] = x.T
        return out

    sizes = [(784, hidden), (hidden, hidden), (hidden, 10)]
    half = BATCH // WORKERS
    pairs = []
    for l, (n_in, n_out) in enumerate(sizes):
        W = array(n_out, n_in)
        a, delta = array(BATCH, n_in), array(BATCH, n_out)
        WT, aT, deltaT = copy_t(W), copy_t(a), copy_t(delta)
        pairs.append((f"forward {l + 1}",
                      Product("a @ W.T", a, WT, half, panels=_panels(WT) if l else None),
                      Product("W @ a.T", W, aT, -(-n_out // WORKERS))))
        if l:
            pairs.append((f"delta {l}", Product("delta @ W", delta, W, half),
                          Product("W.T @ delta.T", W, deltaT, n_in // WORKERS, transposed=True)))
        if l == 0:  # today: the first layer's dW.T, the inputs' half of its rows
            today = Product("x.T @ delta", a, delta, n_in // WORKERS, transposed=True)
        else:
            today = Product("delta.T @ a", delta, a, -(-n_out // WORKERS), transposed=True)
        pairs.append((f"dW {l + 1}", today,
                      Product("delta.T @ a", deltaT, a, -(-n_out // WORKERS))))
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", default="128,512,1024,2048",
                        help="widths H of 784-H-H-10, comma-separated")
    args = parser.parse_args()
    try:
        import torch
    except ImportError:
        torch = None
    peak = fma_peak(DTYPE) / (os.cpu_count() or 1)
    print(f"float32 FMA peak per core: {peak:.0f} GFLOP/s; micro-kernel {k.TILE}; "
          f"GFLOP/s on one core, hot (share of the peak)")
    if torch is not None:
        torch.set_num_threads(1)
        print(f"MKL: torch {torch.__version__}, 1 thread")
    rng = np.random.default_rng(0)
    header = f"{'product':10s} {'today':>22s} {'transposed':>24s} {'OpenBLAS':>9s} {'MKL':>9s}"
    for hidden in map(int, args.hidden.split(",")):
        print(f"\n784-{hidden}-{hidden}-10, batch {BATCH}, one worker of {WORKERS}:\n{header}")
        totals = {"today": 0.0, "transposed": 0.0, "OpenBLAS": 0.0, "MKL": 0.0}
        flop = 0.0
        for name, today, transposed in products(hidden, rng):
            mine = today.whole()
            theirs = transposed.whole()
            if not np.array_equal(mine, theirs.T if name.startswith(("forward", "delta"))
                                  else (theirs.T if name == "dW 1" else theirs)):
                raise AssertionError(f"{name}: the two formulations differ in bits")
            seconds = {"today": today.seconds(), "transposed": transposed.seconds()}
            with threadpool_limits(1):
                seconds["OpenBLAS"] = transposed.library(np.matmul)
            if torch is not None:
                A = torch.from_numpy(transposed.A[:transposed.rows])  # a view: the same layout
                B = torch.from_numpy(transposed.plain_b)
                seconds["MKL"] = _best(
                    lambda calls, A=A, B=B: [torch.matmul(A, B) for _ in range(calls)],
                    max(1, int(3e8 / transposed.flop)))
            cells = []
            for key, product in (("today", today), ("transposed", transposed)):
                rate = product.flop / seconds[key] / 1e9
                cells.append(f"{product.name:>13s} {rate:4.0f} {rate / peak:3.0%}")
            for key in ("OpenBLAS", "MKL"):
                rate = transposed.flop / seconds[key] / 1e9 if key in seconds else float("nan")
                cells.append(f"{rate:5.0f} {rate / peak:3.0%}")
            print(f"{name:10s} " + " ".join(cells))
            for key in totals:
                totals[key] += seconds.get(key, float("nan"))
            flop += today.flop
        print(f"{'the step':10s} " + "  ".join(
            f"{key} {seconds * 1e3:.2f} ms ({flop / seconds / 1e9 / peak:.0%})"
            for key, seconds in totals.items()))


if __name__ == "__main__":
    main()
