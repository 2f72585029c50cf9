"""fastmlp's drop-in estimators against scikit-learn's, side by side: fit time and score.

Both estimators take the same constructor call (fastmlp's are drop-ins), at
scikit-learn's defaults but for a fixed number of epochs:

- classifier: MNIST (pixels / 255), ``MLPClassifier(hidden_layer_sizes=(128,
  128), max_iter=--epochs, n_iter_no_change=--epochs)``, so Adam at learning
  rate 1e-3, batch 200, ``alpha=1e-4``, every epoch run; in each of
  ``--dtypes`` (float32 inputs train float32 weights in both libraries);
- regressor (``--regression N``): ``make_regression(N, 100)``, targets
  standardised, ``MLPRegressor()`` (its ``(100,)`` network) for ``--epochs``.

fastmlp runs on each of ``--backends``; ``--solver adamw`` adds fastmlp's own
recipe (``solver="adamw", learning_rate="onecycle"``, learning rate 3e-3) as
one more fastmlp contender. Every repetition fits each contender once, in
turn, with ``random_state`` set to the repetition's number, so load on the
machine hits all of them alike; the table has the best fit time, the mean
(lowest) test score and the speed-up: scikit-learn's best time over the
contender's. Each contender fits a few hundred rows first (numba compiles, or
loads its compiled code), outside the timing.

Run from the repository root::

    python bench/compare_sklearn.py --repeats 3
    python bench/compare_sklearn.py --dtypes float64 --regression 200000
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

NETWORK = (128, 128)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fit time and test score of fastmlp.sklearn's MLPClassifier and "
                    "MLPRegressor against scikit-learn's, at scikit-learn's defaults.")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fits of each contender; the table shows the best time (default 3)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of every fit (default 5)")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="comma-separated dtypes of the inputs, and so of the weights "
                             "(default float32,float64)")
    parser.add_argument("--backends", default="default,matmul",
                        help="comma-separated fastmlp backends; 'default' is the backend in "
                             "effect, numba unless FASTMLP_BACKEND says otherwise "
                             "(default default,matmul)")
    parser.add_argument("--solver", default="adam", choices=["adam", "adamw"],
                        help="adam: the drop-ins only (default); adamw: also fastmlp's recipe "
                             "(AdamW, one-cycle schedule, learning rate 3e-3) per backend")
    parser.add_argument("--regression", type=int, default=0, metavar="N",
                        help="also MLPRegressor on make_regression(N, 100) (default 0: not)")
    parser.add_argument("--classification", action=argparse.BooleanOptionalAction,
                        default=True, help="MLPClassifier on MNIST (default on)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default: all 60 000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS, OpenMP and numba to N threads for everyone "
                             "(default: as installed, all cores); 1 is steadiest on a "
                             "machine shared with other work")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the MNIST IDX files (default: FASTMLP_DATA, "
                             "then the cache)")
    return parser


def _contenders(args, task: str):
    """``{name: make(seed) -> estimator}`` for ``task`` ('classifier' or 'regressor')."""
    import sklearn.neural_network as sk

    import fastmlp
    import fastmlp.sklearn as fm

    name = {"classifier": "MLPClassifier", "regressor": "MLPRegressor"}[task]
    settings = dict(max_iter=args.epochs, n_iter_no_change=args.epochs)
    if task == "classifier":
        settings["hidden_layer_sizes"] = NETWORK
    contenders = {"scikit-learn": lambda seed: getattr(sk, name)(random_state=seed,
                                                                  **settings)}
    for backend_name in args.backends.split(","):
        backend = fastmlp.get_backend_name() if backend_name == "default" else backend_name
        fastmlp.backends.load_backend(backend)  # ValueError naming the choices
        label = f"fastmlp {backend}" + (" (default)" if backend_name == "default" else "")
        contenders[label] = (lambda seed, backend=backend: getattr(fm, name)(
            random_state=seed, backend=backend, **settings))
        if args.solver == "adamw":
            contenders[label + ", adamw onecycle"] = (
                lambda seed, backend=backend: getattr(fm, name)(
                    random_state=seed, backend=backend, solver="adamw",
                    learning_rate="onecycle", learning_rate_init=3e-3, **settings))
    return contenders


@contextlib.contextmanager
def _numba_threads(count):
    if "numba" not in sys.modules:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _run(contenders, args, train, test) -> dict:
    """Warm every contender up, then fit and score each once per repetition, in turns."""
    (x_train, y_train), (x_test, y_test) = train, test
    for make in contenders.values():  # compile and warm, untimed
        make(0).set_params(max_iter=1).fit(x_train[:512], y_train[:512])
    results = {name: ([], []) for name in contenders}
    for seed in range(args.repeats):
        for name, make in contenders.items():
            estimator = make(seed)
            start = time.perf_counter()
            estimator.fit(x_train, y_train)
            seconds = time.perf_counter() - start
            score = estimator.score(x_test, y_test)
            results[name][0].append(seconds)
            results[name][1].append(score)
            print(f"run {seed + 1}/{args.repeats}  {name:<36} fit {seconds:7.2f} s  "
                  f"test score {score:.4f}", flush=True)
    return results


def _table(title: str, results: dict, args) -> None:
    reference = min(results["scikit-learn"][0])
    print(f"\n{title}, best of {args.repeats}:\n")
    print("| estimator | fit (s) | test score, mean (lowest) | speed-up |")
    print("|---|---:|---:|---:|")
    for name, (seconds, scores) in results.items():
        print(f"| {name} | {min(seconds):.2f} | {np.mean(scores):.4f} ({min(scores):.4f}) | "
              f"{reference / min(seconds):.2f}x |")


def _mnist(args, dtype):
    from fastmlp.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_dir)
    x_train = x_train.reshape(len(x_train), -1)[:args.train_size].astype(dtype) / 255
    x_test = x_test.reshape(len(x_test), -1).astype(dtype) / 255
    return (x_train, y_train[:args.train_size]), (x_test, y_test)


def _regression(args, dtype):
    from sklearn.datasets import make_regression

    X, y = make_regression(n_samples=args.regression + 10_000, n_features=100, noise=1.0,
                           random_state=0)
    y = (y - y.mean()) / y.std()
    X, y = X.astype(dtype), y.astype(dtype)
    n = args.regression
    return (X[:n], y[:n]), (X[n:], y[n:])


def main(argv=None) -> dict:
    """Run the comparisons and print their tables; return ``{(task, dtype): results}``, each
    ``{contender: (seconds, scores)}``."""
    args = _parser().parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning

    threads = "all cores" if args.threads is None else (
        f"{args.threads} thread" + ("s" if args.threads > 1 else ""))
    tasks = ([("classifier", _mnist)] if args.classification else []) + (
        [("regressor", _regression)] if args.regression else [])
    everything = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: as asked
        if args.threads is not None:
            stack.enter_context(threadpool_limits(args.threads))  # BLAS and OpenMP
            stack.enter_context(_numba_threads(args.threads))
        for task, data in tasks:
            for dtype in args.dtypes.split(","):
                train, test = data(args, np.dtype(dtype))
                print(f"{task}, {dtype}:", flush=True)
                results = _run(_contenders(args, task), args, train, test)
                everything[task, dtype] = results
                if task == "classifier":
                    title = (f"MNIST, {len(train[0]):,} training images, MLPClassifier"
                             f"(hidden_layer_sizes={NETWORK}), {args.epochs} epochs of "
                             f"scikit-learn's defaults (adam, learning rate 0.001, batch 200), "
                             f"{dtype}, {threads}; score: test accuracy")
                else:
                    title = (f"make_regression, {len(train[0]):,} x 100, MLPRegressor() "
                             f"(100,), {args.epochs} epochs of scikit-learn's defaults, "
                             f"{dtype}, {threads}; score: R^2 on 10,000 held out")
                _table(title, results, args)
    return everything


if __name__ == "__main__":
    main()
