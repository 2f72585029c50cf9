"""fastmlp's drop-in MLPClassifier against scikit-learn's: the same model from the same seed?

On all of MNIST (pixels / 255, float64, ``random_state=0``, scikit-learn's
default ``(100,)`` network), after one epoch of ``adam`` and of ``sgd`` and
after ``max_iter=5`` of ``lbfgs``: per layer, the largest absolute difference
of ``coefs_`` over the largest absolute coefficient of scikit-learn's, for
each fastmlp backend; and both ``loss_``.

Run from the repository root::

    python bench/agree_sklearn.py --backends loop,einsum,matmul,numba
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Relative differences of fastmlp.sklearn.MLPClassifier's coefs_ from "
                    "scikit-learn's, trained from the same seed on MNIST.")
    parser.add_argument("--backends", default="loop,einsum,matmul,numba",
                        help="comma-separated fastmlp backends (default all four)")
    parser.add_argument("--solvers", default="adam,sgd,lbfgs", help="default adam,sgd,lbfgs")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default: all 60 000)")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the MNIST IDX files (default: FASTMLP_DATA, "
                             "then the cache)")
    return parser


def main(argv=None) -> dict:
    """Print one line per solver and backend; return ``{(solver, backend): differences}``."""
    args = _parser().parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier as ScikitLearnMLP

    from fastmlp.datasets import load_mnist
    from fastmlp.sklearn import MLPClassifier

    (x, y), _ = load_mnist(args.data_dir)
    X, y = x.reshape(len(x), -1)[:args.train_size] / 255.0, y[:args.train_size]
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for solver in args.solvers.split(","):
            settings = dict(solver=solver, random_state=0,
                            max_iter=5 if solver == "lbfgs" else 1)
            start = time.perf_counter()
            theirs = ScikitLearnMLP(**settings).fit(X, y)
            their_seconds = time.perf_counter() - start
            for backend in args.backends.split(","):
                start = time.perf_counter()
                ours = MLPClassifier(backend=backend, **settings).fit(X, y)
                seconds = time.perf_counter() - start
                differences = [float(np.abs(a - b).max() / np.abs(b).max())
                               for a, b in zip(ours.coefs_, theirs.coefs_)]
                results[solver, backend] = differences
                print(f"{solver} {backend}: coefs_ per layer "
                      f"{[f'{d:.1e}' for d in differences]}, loss_ {ours.loss_:.12f} vs "
                      f"{theirs.loss_:.12f}, fit {seconds:.1f}s vs scikit-learn "
                      f"{their_seconds:.1f}s", flush=True)
    return results


if __name__ == "__main__":
    main()
