"""How long a first ``fastmlp train --epochs 1`` takes, numba's cache empty: the whole process.

The first run on a machine compiles numba's kernels into its cache. This times
``python -m fastmlp train --epochs 1 --quiet``, wall clock from start to exit, in
new processes:

- ``cold``: with ``NUMBA_CACHE_DIR`` a new, empty directory (the first run);
- ``warm``: right after, on the cache the cold run filled (every later run);
- ``matmul``: ``--backend matmul``, which compiles nothing, for scale.

Each of ``--trees`` (source trees: this checkout, say, and a worktree of an
earlier commit) runs cold then warm, in turns, ``--runs`` times, so that a slow
moment of a shared machine hits all of them alike; the table has the least,
median and greatest seconds of each. The issue's target: a first run within
5 s in all.

Run from the repository root::

    python bench/first_run.py --runs 5
    git worktree add ../before HEAD~3
    python bench/first_run.py --runs 5 --trees .,../before
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Wall-clock seconds of a first and a later `fastmlp train --epochs 1`, "
                    "numba's cache empty and filled, per source tree.")
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    parser.add_argument("--trees", default=".",
                        help="comma-separated source trees whose fastmlp runs, each ahead on "
                             "PYTHONPATH (default: . , this checkout)")
    parser.add_argument("--backend", default="numba",
                        help="the backend of the cold and warm runs (default numba)")
    parser.add_argument("--matmul", action=argparse.BooleanOptionalAction, default=True,
                        help="also time --backend matmul, which compiles nothing (default on)")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the MNIST IDX files, passed to fastmlp train "
                             "(default: FASTMLP_DATA, then the cache)")
    return parser


def _seconds(tree: Path, cache: str, backend: str, data_dir: str | None) -> float:
    """Wall-clock seconds of one ``fastmlp train --epochs 1`` of ``tree``'s fastmlp with
    numba's cache in ``cache`` (OSError naming the run if it fails)."""
    command = [sys.executable, "-m", "fastmlp", "train", "--epochs", "1", "--quiet",
               "--backend", backend]
    if data_dir is not None:
        command += ["--data-dir", str(Path(data_dir).resolve())]
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache,
               PYTHONPATH=os.pathsep.join([str(tree)] + ([path] if path else [])))
    start = time.perf_counter()
    # run in tree: python -m puts the working directory ahead of PYTHONPATH
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tree)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise OSError(f"fastmlp train in {tree} exited {done.returncode}: "
                      f"{done.stderr.strip().splitlines()[-1:]}")
    return seconds


def main(argv=None) -> dict:
    """Time the runs and print the table; ``{label: [seconds, ...]}``."""
    args = _parser().parse_args(argv)
    trees = [Path(tree).resolve() for tree in args.trees.split(",")]
    for tree in trees:
        if not (tree / "fastmlp" / "__init__.py").is_file():
            raise SystemExit(f"first_run.py: error: {tree} holds no fastmlp package")
    labels = {tree: (tree.name if len(trees) > 1 else "") for tree in trees}
    times: dict[str, list[float]] = {}
    for run in range(args.runs):
        for tree in trees:
            with tempfile.TemporaryDirectory(prefix="fastmlp-first-run-") as cache:
                for kind in ("cold", "warm"):
                    label = f"{args.backend} {kind} {labels[tree]}".rstrip()
                    seconds = _seconds(tree, cache, args.backend, args.data_dir)
                    times.setdefault(label, []).append(seconds)
                    print(f"run {run + 1}/{args.runs}  {label:<32} {seconds:6.2f} s", flush=True)
        if args.matmul:
            with tempfile.TemporaryDirectory(prefix="fastmlp-first-run-") as cache:
                seconds = _seconds(trees[0], cache, "matmul", args.data_dir)
            times.setdefault("matmul", []).append(seconds)
            print(f"run {run + 1}/{args.runs}  {'matmul':<32} {seconds:6.2f} s", flush=True)
    print(f"\n`fastmlp train --epochs 1`, whole process, {args.runs} runs each "
          f"(cold: numba's cache empty; warm: the run after):\n")
    print("| run | least (s) | median (s) | greatest (s) |")
    print("|---|---:|---:|---:|")
    for label, seconds in times.items():
        print(f"| {label} | {min(seconds):.2f} | {statistics.median(seconds):.2f} | "
              f"{max(seconds):.2f} |")
    return times


if __name__ == "__main__":
    main()
