"""How close to the FMA peak a product can run on this machine, and what that bounds.

The share of the FMA peak a training epoch reaches (``fastmlp bench``) is
bounded by the rate of its products. This measures, one thread on one core,
with every operand already in cache:

- the FMA peak per core (``fastmlp.profile.fma_peak``: independent FMA chains
  in registers, nothing loaded);
- numba's micro-kernel alone, on one tile's worth of data held in L1;
- each product one worker of the fused epoch runs per step at batch 128 on
  784-128-128-10 (two workers: 64 rows, half of the first layer's weight
  gradient), and their sum: the epoch's time if it did nothing but those
  products, hot;
- OpenBLAS's ``sgemm`` on 2048 x 2048 matrices, one thread and all of them.

The last lines give the bound: the epoch's share of the peak if its products
ran as they do here and everything else (gathering the batch, epilogues, the
update, waiting at barriers) took no time. Run from the repository root::

    python bench/kernel_ceiling.py
"""

from __future__ import annotations

import os
import time

import numpy as np
from numba import njit
from threadpoolctl import threadpool_limits

from fastmlp.backends.numba import _kernels as k
from fastmlp.backends.numba._api import aligned_empty
from fastmlp.profile import fma_peak

NOT, TRANSPOSED = k.NOT_TRANSPOSED, k.TRANSPOSED


@njit(nogil=True)
def _repeat(a, b, out, rows, a_transposed, calls, bias, mask, clocks, epilogue):
    for _ in range(calls):
        k.gemm_into(a, b, out, 0, rows, k.PLAIN, bias, mask, clocks, a_transposed, b.shape[1],
                    epilogue)


def _seconds(a, b, out, rows, a_transposed, flop) -> float:
    """Best seconds per call of ``gemm_into`` over 7 runs of about 0.3 s."""
    args = (np.empty(0, a.dtype), np.empty((0, 0), a.dtype), np.empty(0, np.int64),
            k.epilogues(a.dtype))
    _repeat(a, b, out, rows, a_transposed, 1, *args)
    calls = max(10, int(3e9 / flop / 10))
    best = float("inf")
    for _ in range(7):
        start = time.perf_counter()
        _repeat(a, b, out, rows, a_transposed, calls, *args)
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def main() -> None:
    rng = np.random.default_rng(0)

    def array(*shape):
        out = aligned_empty(shape, np.float32)
        out[:] = rng.standard_normal(shape)
        return out

    cores = os.cpu_count() or 1
    peak = fma_peak(np.float32) / cores
    print(f"float32 FMA peak: {peak * cores:.0f} GFLOP/s on {cores} cores, {peak:.0f} per core")
    print(f"numba micro-kernel: {k.TILE}\n")

    K = 192
    rows, cols = k.TILE_ROWS, k.TILE_VECTORS * k.VECTOR_BYTES // 4
    flop = 2 * rows * cols * K
    rate = flop / _seconds(array(rows, K), array(K, cols), array(rows, cols), rows, NOT, flop) / 1e9
    print(f"one tile, {rows} x {cols} x {K}, data in L1: {rate:5.0f} GFLOP/s  "
          f"{rate / peak:4.0%} of one core\n")

    x, w1t, d1 = array(128, 784), array(784, 128), array(128, 128)
    a1, w2t, w2 = array(128, 128), array(128, 128), array(128, 128)
    w3t, d3, w3 = array(128, 10), array(128, 10), array(10, 128)
    products = [  # (name, a, b, out, rows, a transposed, multiply-adds)
        ("forward, layer 1: 64x784 @ 784x128", x, w1t, array(128, 128), 64, NOT, 64 * 784 * 128),
        ("forward, layer 2: 64x128 @ 128x128", a1, w2t, array(128, 128), 64, NOT, 64 * 128 * 128),
        ("forward, layer 3: 64x128 @ 128x10", a1, w3t, array(128, 10), 64, NOT, 64 * 128 * 10),
        ("delta 2: 64x10 @ 10x128", d3, w3, array(128, 128), 64, NOT, 64 * 10 * 128),
        ("delta 1: 64x128 @ 128x128", d1, w2, array(128, 128), 64, NOT, 64 * 128 * 128),
        ("dW1.T: 392 rows of x.T @ delta1", x, d1, array(784, 128), 392, TRANSPOSED,
         392 * 128 * 128),
        ("dW2: 64 rows of delta2.T @ a1", d1, a1, array(128, 128), 64, TRANSPOSED, 64 * 128 * 128),
        ("dW3: 5 rows of delta3.T @ a2", d3, a1, array(10, 128), 5, TRANSPOSED, 5 * 128 * 128),
    ]
    print("one worker's products per step of the fused epoch (batch 128, 2 workers), hot:")
    total_seconds = total_flop = 0.0
    for name, a, b, out, rows, transposed, madds in products:
        seconds = _seconds(a, b, out, rows, transposed, 2 * madds)
        total_seconds += seconds
        total_flop += 2 * madds
        rate = 2 * madds / seconds / 1e9
        print(f"  {name:36s} {seconds * 1e6:7.1f} us  {rate:5.0f} GFLOP/s  {rate / peak:4.0%}")
    rate = total_flop / total_seconds / 1e9
    print(f"  {'all of them':36s} {total_seconds * 1e6:7.1f} us  {rate:5.0f} GFLOP/s  "
          f"{rate / peak:4.0%}\n")

    A, B = (rng.standard_normal((2048, 2048)).astype(np.float32) for _ in range(2))
    for threads in (1, cores):
        with threadpool_limits(threads):
            A @ B
            best = float("inf")
            for _ in range(5):
                start = time.perf_counter()
                A @ B
                best = min(best, time.perf_counter() - start)
        rate = 2 * 2048**3 / best / 1e9
        print(f"OpenBLAS sgemm 2048^3, {threads} thread(s): {rate:5.0f} GFLOP/s  "
              f"{rate / (peak * threads):4.0%} of {threads} core(s)")

    steps = 469  # batches of 128 in MNIST's 60 000 images
    print(f"\nan epoch of products only, {steps} steps: {steps * total_seconds:.3f} s, at most "
          f"{rate_share(total_flop, total_seconds, peak):.0%} of the FMA peak, with every "
          "other part of the step taking no time")


def rate_share(flop, seconds, peak) -> float:
    return flop / seconds / 1e9 / peak


if __name__ == "__main__":
    main()
