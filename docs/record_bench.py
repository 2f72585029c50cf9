"""Record a real ``fastmlp bench`` run as ``docs/_data/bench.json`` for the performance page.

Runs :func:`fastmlp.benchmark.compare` with the defaults of ``fastmlp bench``
(every backend but ``loop``, batch sizes 32, 128 and 1000, the best of 4
epochs, PyTorch when it is importable) on the MNIST training set, and saves
the result with the machine it ran on and the text ``fastmlp bench`` prints::

    FASTMLP_DATA=../shared/data/mnist python docs/record_bench.py

It takes a few minutes. ``docs/make_performance.py`` turns the file into the
page's tables and plot; nothing on that page is typed in by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

from fastmlp.benchmark import compare
from fastmlp.datasets import load_mnist

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "_data" / "bench.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    (x_train, y_train), _ = load_mnist()
    x_train = x_train.reshape(len(x_train), -1)
    result = compare(x_train, y_train,
                     report=lambda line: print(line, file=sys.stderr, flush=True))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                            capture_output=True, text=True).stdout.strip()
    record = {
        "command": "FASTMLP_DATA=../shared/data/mnist python docs/record_bench.py",
        "recorded_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "fastmlp_commit": commit or None,
        # Other work on the machine slows some rows: the 1-minute load average says how busy it was.
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "printed": str(result),
        "result": result.to_dict(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(result)
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
