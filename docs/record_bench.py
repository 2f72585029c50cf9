"""Record a real ``fastmlp bench --json`` run in ``docs/_data/`` for the performance page.

Runs ``fastmlp bench --json`` on the MNIST training set and saves what it
prints (the results and the machine they ran on,
`fastmlp.benchmark.Sweep.to_dict`) with the time, the commit and the
machine's load average before and after. The page shows two runs: the
defaults (784-128-128-10; every backend but ``loop``, batch sizes 32, 128 and
1000, the best of 4 epochs, PyTorch and JAX when importable), saved as
``bench.json``::

    FASTMLP_DATA=../shared/data/mnist python docs/record_bench.py

and the width sweep, saved as ``bench_sweep.json``::

    FASTMLP_DATA=../shared/data/mnist python docs/record_bench.py \
        --out docs/_data/bench_sweep.json --hidden 128,512,1024,2048 --batch-sizes 128 \
        --backends matmul,numba --epochs 2

Each takes minutes; other arguments go to ``fastmlp bench`` (``--no-torch``,
or ``--samples 2000 --epochs 1 --out /tmp/bench.json`` for a quick try).
``docs/make_performance.py`` turns the files into the page's tables and plots;
nothing on that page is typed in by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from fastmlp.benchmark import Sweep

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False,
                                     epilog="Other arguments are passed to fastmlp bench.")
    parser.add_argument("--out", type=Path, default=HERE / "_data" / "bench.json")
    args, bench_args = parser.parse_known_args(argv)
    bench = ["fastmlp", "bench", "--json", *bench_args]
    load_before = os.getloadavg()
    # its progress lines reach stderr as they come; stdout is the JSON alone
    run = subprocess.run([sys.executable, "-m", *bench], stdout=subprocess.PIPE, text=True)
    if run.returncode:
        return run.returncode
    load_after = os.getloadavg()
    result = json.loads(run.stdout)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE,
                            capture_output=True, text=True).stdout.strip()
    record = {
        "command": shlex.join(["python", "docs/record_bench.py",
                               *(sys.argv[1:] if argv is None else argv)]),
        "bench_command": shlex.join(bench),
        "recorded_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "fastmlp_commit": commit or None,
        # Other work on the machine slows some rows: the 1-minute load average says how busy it was.
        "load_average_before": round(load_before[0], 2),
        "load_average_after": round(load_after[0], 2),
        "result": result,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(Sweep.from_dict(result))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
