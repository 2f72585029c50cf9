"""Block sizes measured before they are chosen: the numba products under several blockings.

Each value of ``FASTMLP_NUMBA_BLOCKING`` given (``default``: the machine's own, from
its caches) compiles the kernels in a process of its own, with a numba cache of
its own, and times ``gemm_into`` on one core: the products of a fused epoch and
a forward pass at 1024 units (``W`` read in the forward's panels, as it lies for
``delta @ W``, and the weight gradient's transposed ``a``), and at 128. The
values take turns, round after round, so that a machine whose load changes
shifts them all alike; the table gives each one's median GFLOP/s (and range)
and its ratio to the first value, and the load average during the runs::

    python bench/blocking.py default k_block=256 row_tile=96 --rounds 4

``_blocking.py``'s comments quote runs of it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (rows, k, columns) of the products
SHAPES = ((128, 784, 1024), (128, 1024, 1024), (128, 784, 128))

# What one process runs: every product of every shape, best of 5 rounds each.
CHILD = """
import sys, time
import numpy as np
from fastmlp.backends.numba import _api, _kernels as k

shapes = [tuple(map(int, shape.split("x"))) for shape in sys.argv[1:]]
rng = np.random.default_rng(0)
untimed = (np.empty(0, np.float32), np.empty((0, 0), np.float32), np.empty(0, np.int64))
for n, K, m in shapes:
    a = rng.standard_normal((n, K), dtype=np.float32)
    W = rng.standard_normal((m, K), dtype=np.float32)
    delta = rng.standard_normal((n, m), dtype=np.float32)
    products = {  # name: (a, b, out, rows, a_transposed, b_panel, flop)
        "panels": (a, _api._paneled(W), np.empty((n, m), np.float32), n, k.NOT_TRANSPOSED,
                   k.panel_width(np.float32)),
        "as it lies": (delta, W, np.empty((n, K), np.float32), n, k.NOT_TRANSPOSED, K),
        "a transposed": (delta, a, np.empty((m, K), np.float32), m, k.TRANSPOSED, K)}
    for name, (x, b, out, rows, transposed, panel) in products.items():
        def run():
            k.gemm_into(x, b, out, 0, rows, k.PLAIN, *untimed, transposed, panel,
                        k.epilogues(x.dtype))
        run()
        calls = max(1, int(3e8 / (2 * n * K * m)))
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(calls):
                run()
            best = min(best, (time.perf_counter() - start) / calls)
        print(f"{n}x{K}x{m} {name}: {2 * n * K * m / best / 1e9:.1f}", flush=True)
"""


def _shape(text: str) -> tuple[int, int, int]:
    try:
        n, K, m = (int(part) for part in text.split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected ROWSxKxCOLUMNS, e.g. 128x1024x1024") from None
    return n, K, m


def run_once(value: str, shapes, cache: Path) -> dict[str, float]:
    """GFLOP/s by ``"shape kind"`` of one process compiled with blocking ``value``."""
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "NUMBA_CACHE_DIR": str(cache),
           "FASTMLP_NUMBA_BLOCKING": "" if value == "default" else value}
    done = subprocess.run([sys.executable, "-c", CHILD, *("x".join(map(str, s)) for s in shapes)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"FASTMLP_NUMBA_BLOCKING={value!r}: {done.stderr.strip()}")
    results = {}
    for line in done.stdout.splitlines():
        name, rate = line.rsplit(": ", 1)
        results[name] = float(rate)
    return results


def measure(values, shapes=SHAPES, rounds: int = 3, report=print) -> dict:
    """``{value: {product: [GFLOP/s per round]}}`` and the load averages seen, the values
    run in turns, round after round."""
    rates: dict[str, dict[str, list[float]]] = {value: {} for value in values}
    loads = []
    with tempfile.TemporaryDirectory() as folder:
        for round_ in range(rounds):
            for i, value in enumerate(values):
                loads.append(os.getloadavg()[0])
                start = time.perf_counter()
                for name, rate in run_once(value, shapes, Path(folder) / str(i)).items():
                    rates[value].setdefault(name, []).append(rate)
                report(f"round {round_ + 1}, {value}: {time.perf_counter() - start:.1f} s")
    return {"rates": rates, "loads": loads}


def table(measured, values) -> list[str]:
    """The medians (ranges) and ratios to the first value, a line per product."""
    rates, first = measured["rates"], values[0]
    lines = ["GFLOP/s, one core, median (range); ratio of medians to " + first,
             "product".ljust(32) + "".join(value[:22].ljust(24) for value in values)]
    for name in rates[first]:
        cells = []
        for value in values:
            series = rates[value][name]
            ratio = statistics.median(series) / statistics.median(rates[first][name])
            cells.append(f"{statistics.median(series):.0f} ({min(series):.0f}-"
                         f"{max(series):.0f}) {ratio:.2f}".ljust(24))
        lines.append(name.ljust(32) + "".join(cells))
    loads = measured["loads"]
    lines.append(f"load average (1 min) at the runs: {min(loads):.2f}-{max(loads):.2f}")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("values", nargs="+",
                        help="FASTMLP_NUMBA_BLOCKING values, e.g. k_block=256; 'default' "
                             "for the machine's own")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shapes", type=_shape, nargs="+", default=SHAPES,
                        help="ROWSxKxCOLUMNS of the products (default: %(default)s)")
    args = parser.parse_args(argv)
    measured = measure(args.values, args.shapes, args.rounds,
                       report=lambda line: print(line, file=sys.stderr))
    print("\n".join(table(measured, args.values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
